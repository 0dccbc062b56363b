"""Molecular-dynamics helpers for the ``dynamics`` check family.

The model is driven by ASE's integrators (``VelocityVerlet``, ``Langevin``)
through :class:`AuditedCalculator`, a thin ASE calculator that forwards every
force call to the model's calculator, reused from step to step as in a user's
run (no ``reset()``): the calls are counted and timed, the per-call timeout
applies, and a NaN/inf or an exception from the model becomes a
:class:`~conformance.core.model.ModelError` that :func:`run_md` records with the
step at which it happened.

Units: ASE's (eV, Å, amu, ASE time; 1 ASE time unit = ``1 / ase.units.fs``
≈ 10.18 fs). Times stored here are in fs, energies in eV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_numbers

from ..core.model import Model, ModelError, validate

#: Melting points (K) of the elemental solids at 1 atm, used to set the hot-MD
#: temperature (CRC Handbook of Chemistry and Physics values, rounded; C: graphite
#: at its triple point).
MELTING_POINT_K = {
    "H": 14.0, "He": 1.0, "Li": 454.0, "Be": 1560.0, "B": 2349.0, "C": 4600.0, "N": 63.0,
    "O": 54.0, "F": 53.0, "Ne": 25.0, "Na": 371.0, "Mg": 923.0, "Al": 933.0, "Si": 1687.0,
    "P": 317.0, "S": 388.0, "Cl": 172.0, "Ar": 84.0, "K": 337.0, "Ca": 1115.0, "Sc": 1814.0,
    "Ti": 1941.0, "V": 2183.0, "Cr": 2180.0, "Mn": 1519.0, "Fe": 1811.0, "Co": 1768.0,
    "Ni": 1728.0, "Cu": 1358.0, "Zn": 693.0, "Ga": 303.0, "Ge": 1211.0, "As": 1090.0,
    "Se": 494.0, "Br": 266.0, "Kr": 116.0, "Rb": 312.0, "Sr": 1050.0, "Y": 1799.0, "Zr": 2128.0,
    "Nb": 2750.0, "Mo": 2896.0, "Ru": 2607.0, "Rh": 2237.0, "Pd": 1828.0, "Ag": 1235.0,
    "Cd": 594.0, "In": 430.0, "Sn": 505.0, "Sb": 904.0, "Te": 723.0, "I": 387.0, "Xe": 161.0,
    "Cs": 302.0, "Ba": 1000.0, "La": 1193.0, "Ce": 1068.0, "Hf": 2506.0, "Ta": 3290.0,
    "W": 3695.0, "Re": 3459.0, "Os": 3306.0, "Ir": 2719.0, "Pt": 2041.0, "Au": 1337.0,
    "Hg": 234.0, "Tl": 577.0, "Pb": 601.0, "Bi": 544.0, "U": 1405.0,
}
FALLBACK_MELTING_POINT_K = 1000.0  # said in the check's message when used
HOT_FACTOR = 1.5  # hot MD runs at 1.5 x the melting point

#: 5 fs is a safe velocity-Verlet step for Cu (63.5 amu) near room temperature
#: (shortest phonon period ~ 135 fs, i.e. > 25 steps per period); lighter
#: species get dt ∝ sqrt(mass) (vibrational period ∝ sqrt(m) at fixed stiffness).
REFERENCE_TIMESTEP_FS = 5.0
REFERENCE_MASS = 63.546
ROOM_TEMPERATURE_K = 300.0
DEFAULT_FRICTION_PER_FS = 0.01  # Langevin friction (1/fs), ASE docs' typical value


def default_timestep_fs(atoms: Atoms) -> float:
    """Velocity-Verlet time step (fs) for the lightest species of ``atoms``.

    >>> from ase import Atoms
    >>> round(default_timestep_fs(Atoms("Cu2")), 3)
    5.0
    >>> round(default_timestep_fs(Atoms("H2")), 2)
    0.63
    """
    m = float(np.min(atoms.get_masses()))
    return REFERENCE_TIMESTEP_FS * math.sqrt(m / REFERENCE_MASS)


#: Velocity-Verlet steps per period of the stiffest mode (ω_max·dt = 2π/30 ≈ 0.21 rad,
#: a tenth of the stability limit ω·dt = 2); see :func:`stiffest_mode_timestep_fs`.
STEPS_PER_PERIOD = 30
LANCZOS_STEPS = 8  # Hessian-vector products (2 model calls each)
HESSIAN_STEP = 0.01  # Å, largest atomic displacement of a finite-difference Hessian-vector product


def hessian_vector_product(forces, atoms: Atoms, v: np.ndarray, step: float = HESSIAN_STEP) -> np.ndarray:
    """Mass-weighted Hessian M^-1/2 H M^-1/2 times ``v`` (3N,), in eV/(Å² amu),
    by central differences of ``forces(atoms) -> (N, 3)`` along the Cartesian
    direction M^-1/2 v scaled so that the largest atomic displacement is
    ``step`` Å (2 force calls)."""
    root_m = np.sqrt(atoms.get_masses())[:, None]
    u = v.reshape(-1, 3) / root_m
    h = step / float(np.linalg.norm(u, axis=1).max())
    plus, minus = atoms.copy(), atoms.copy()
    plus.positions += h * u
    minus.positions -= h * u
    hu = -(forces(plus) - forces(minus)) / (2 * h)
    return (hu / root_m).ravel()


def largest_eigenvalue(matvec, n: int, rng: np.random.Generator, steps: int = LANCZOS_STEPS) -> float:
    """Largest eigenvalue of a symmetric operator on R^n from ``steps`` Lanczos
    iterations (full reorthogonalisation) started from a random vector."""
    q = rng.normal(size=n)
    basis = [q / np.linalg.norm(q)]
    alpha, beta = [], []
    for j in range(min(steps, n)):
        w = matvec(basis[j])
        alpha.append(float(basis[j] @ w))
        for b in basis:  # full reorthogonalisation (Gram-Schmidt twice over a few vectors)
            w -= (b @ w) * b
        for b in basis:
            w -= (b @ w) * b
        norm = float(np.linalg.norm(w))
        if norm < 1e-12 * max(abs(alpha[-1]), 1e-300) or j == min(steps, n) - 1:
            break
        beta.append(norm)
        basis.append(w / norm)
    t = np.diag(alpha) + np.diag(beta[:len(alpha) - 1], 1) + np.diag(beta[:len(alpha) - 1], -1)
    return float(np.linalg.eigvalsh(t).max())


def stiffest_mode_timestep_fs(forces, atoms: Atoms, rng: np.random.Generator,
                              steps_per_period: int = STEPS_PER_PERIOD) -> dict:
    """Time step (fs) from the model's stiffest vibration at ``atoms``.

    The largest eigenvalue λ (eV/(Å² amu)) of the mass-weighted Hessian, from
    :data:`LANCZOS_STEPS` Lanczos iterations on finite-difference
    Hessian-vector products (2 × LANCZOS_STEPS force calls), gives ω_max =
    sqrt(λ) and the shortest period T = 2π/ω_max; dt = T / ``steps_per_period``.

    Returns dict with ``dt_fs`` (None when λ ≤ 0), ``omega_max_per_fs`` (rad/fs),
    ``frequency_THz``, ``period_fs`` and ``n_calls``.
    """
    n_calls = [0]

    def counted(a):
        n_calls[0] += 1
        return forces(a)

    lam = largest_eigenvalue(lambda v: hessian_vector_product(counted, atoms, v), 3 * len(atoms), rng)
    if not lam > 0:
        return {"dt_fs": None, "omega_max_per_fs": 0.0, "frequency_THz": 0.0, "period_fs": math.inf,
                "n_calls": n_calls[0]}
    omega = math.sqrt(lam) * units.fs  # rad/fs
    period = 2 * math.pi / omega
    return {"dt_fs": period / steps_per_period, "omega_max_per_fs": omega,
            "frequency_THz": omega / (2 * math.pi) * 1e3, "period_fs": period, "n_calls": n_calls[0]}


def melting_point_K(symbol: str) -> float:
    """Melting point (K) from :data:`MELTING_POINT_K`, else 1000 K."""
    return MELTING_POINT_K.get(symbol, FALLBACK_MELTING_POINT_K)


#: Hot-MD temperature (K) of molecules: melting points say nothing about a molecule
#: (1.5 Tm would be 6900 K with carbon, 21 K for H2); 1000 K is a combustion-like
#: temperature at which bonds vibrate far into anharmonicity without breaking.
MOLECULE_HOT_TEMPERATURE_K = 1000.0


def hot_temperature_K(symbols: Sequence[str]) -> float:
    """1.5 x the highest melting point among ``symbols`` (K).

    >>> hot_temperature_K(["Cu", "Au"])
    2037.0
    """
    return HOT_FACTOR * max(melting_point_K(s) for s in set(symbols))


def reference_pair_distance(symbols: Sequence[str]) -> np.ndarray:
    """(Z, Z) table of reference bond lengths (Å), indexed by atomic number.

    The bond length of a pair A-B is the mean of the nearest-neighbour
    distances of A and B in their ASE reference crystals (no model call).
    """
    from .structures import nearest_neighbour_distance

    species = sorted(set(symbols))
    table = np.full((119, 119), np.nan)
    nn = {s: nearest_neighbour_distance(s) for s in species}
    for a in species:
        for b in species:
            table[atomic_numbers[a], atomic_numbers[b]] = 0.5 * (nn[a] + nn[b])
    return table


class AuditedCalculator(Calculator):
    """ASE calculator that drives the audited model the way an MD user does.

    Every ``calculate`` is one counted, timed, validated model call returning
    energy (eV) and forces (N, 3) eV/Å; errors surface as ``ModelError``. With
    ``reuse=True`` (the default) the model's own calculator evaluates each step
    without ``reset()`` in between, so whatever it keeps from step to step
    (neighbour lists with a skin, caches) is exercised as in a user's run; with
    ``reuse=False`` each step is a fresh :meth:`Model.evaluate`.
    """

    implemented_properties = ["energy", "free_energy", "forces"]
    nolabel = True

    def __init__(self, model: Model, reuse: bool = True):
        super().__init__()
        self.model = model
        self.reuse = reuse
        self._boxed: Atoms | None = None  # what a periodic-only model sees, kept from step to step

    @property
    def box_cell(self) -> list | None:
        """The fixed vacuum box (9 floats, Å) a periodic-only model sees, or None."""
        return None if self._boxed is None else self._boxed.cell.array.ravel().tolist()

    def model_input(self, atoms: Atoms) -> Atoms:
        """``atoms`` as the model takes it: itself, or for a periodic-only model
        the same atoms in a vacuum box (:meth:`Model.adapt`) whose cell is fixed
        at the first step, so the model sees one continuous trajectory."""
        if self.model.adapt(atoms) is atoms:
            return atoms
        if self._boxed is None or len(self._boxed) != len(atoms):
            self._boxed = self.model.boxed(atoms)
        boxed = self._boxed.copy()
        boxed.positions = atoms.positions
        boxed.numbers = atoms.numbers
        return boxed

    def check_state(self, atoms, tol=1e-15):
        """Exact comparison with the last evaluated structure (ASE's tolerant
        comparison costs more than a small model call)."""
        old = self.atoms
        if old is None or len(old) != len(atoms):
            return list(all_changes)
        same = (np.array_equal(old.positions, atoms.positions)
                and np.array_equal(old.numbers, atoms.numbers)
                and np.array_equal(old.cell.array, atoms.cell.array)
                and np.array_equal(old.pbc, atoms.pbc))
        return [] if same else list(all_changes)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.reuse:
            calc = self.model.calc
            work = self.model_input(self.atoms)
            with self.model.calling(work, how=", in MD (one instance, no reset between steps)"):
                raw = {p: calc.get_property(p, work) for p in ("energy", "forces")}
            out = validate(raw, len(self.atoms))
        else:
            out = self.model.evaluate(self.atoms, ("energy", "forces"))
        self.results = {"energy": out["energy"], "free_energy": out["energy"], "forces": out["forces"]}


@dataclass
class Event:
    """Something that went wrong during a run: what, when (step, time) and details."""

    kind: str
    step: int
    time_fs: float
    message: str


@dataclass
class MDRun:
    """Per-step record of one MD run.

    Attributes
    ----------
    label : str
        ``"NVE velocity Verlet, dt = 5 fs"``.
    dt_fs : float
    n_atoms : int
    time_fs, epot, ekin, temperature : (n_steps + 1,) arrays (fs, eV, eV, K)
    momentum : (n_steps + 1, 3) total linear momentum (amu Å / ASE time)
    angular_momentum : (n_steps + 1, 3) about the centre of mass
    momentum_scale, angular_scale : (n_steps + 1,) Σ|p_i| and Σ|r_i - r_com||p_i|
    max_force : (n_steps + 1,) largest atomic force (eV/Å)
    frames : list of Atoms sampled along the run (with energy, forces, momenta)
    event : Event or None
        First failure seen by the monitor, or the model error that stopped the run.
    model_error : ModelError or None
    """

    label: str
    dt_fs: float
    n_atoms: int
    time_fs: np.ndarray = field(default_factory=lambda: np.zeros(0))
    epot: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ekin: np.ndarray = field(default_factory=lambda: np.zeros(0))
    temperature: np.ndarray = field(default_factory=lambda: np.zeros(0))
    momentum: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    angular_momentum: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    momentum_scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    angular_scale: np.ndarray = field(default_factory=lambda: np.zeros(0))
    max_force: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frames: list = field(default_factory=list)
    event: Event | None = None
    model_error: ModelError | None = None

    @property
    def etot(self) -> np.ndarray:
        return self.epot + self.ekin

    @property
    def n_steps(self) -> int:
        return len(self.time_fs) - 1

    def when(self, step: int) -> str:
        return f"step {step} (t = {step * self.dt_fs:.4g} fs)"

    def trace(self, max_points: int = 200) -> dict:
        """Energy trace for plots: time (fs), Etot, Epot, Ekin (eV), T (K), ≤ max_points."""
        idx = decimate(len(self.time_fs), max_points)
        return {"time_fs": self.time_fs[idx], "etot_eV": self.etot[idx], "epot_eV": self.epot[idx],
                "ekin_eV": self.ekin[idx], "temperature_K": self.temperature[idx],
                "n_atoms": self.n_atoms, "dt_fs": self.dt_fs, "label": self.label}


Monitor = Callable[[int, Atoms, np.ndarray], "Event | None"]


def decimate(n: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` evenly spread indices of range(n), first and last included."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def snapshot(atoms: Atoms, energy: float, forces: np.ndarray, step: int, dt_fs: float,
             box_cell: list | None = None) -> Atoms:
    """A copy of ``atoms`` carrying its energy, forces, momenta, step and time, and
    the vacuum box the model saw it in (``info["model_box"]``, 9 floats, Å) when
    it was evaluated boxed (:meth:`AuditedCalculator.model_input`)."""
    frame = atoms.copy()
    frame.calc = SinglePointCalculator(frame, energy=energy, forces=forces.copy())
    frame.info.update(step=step, time_fs=step * dt_fs)
    if box_cell is not None:
        frame.info["model_box"] = list(box_cell)
    return frame


def as_model_saw_it(frame: Atoms) -> Atoms:
    """``frame`` in the vacuum box the model evaluated it in during the run (the
    same input, so a fresh evaluation differs only by what the calculator kept),
    or the frame itself when the model saw it unboxed."""
    box = frame.info.get("model_box")
    if box is None:
        return frame
    out = frame.copy()
    out.set_cell(np.reshape(box, (3, 3)), scale_atoms=False)
    out.pbc = True
    return out


def run_md(model: Model, atoms: Atoms, dyn, n_steps: int, dt_fs: float, label: str,
           monitor: Monitor | None = None, n_frames: int = 200, progress=None) -> MDRun:
    """Run ``dyn`` (an ASE MD object on ``atoms``) for ``n_steps``, recording every step.

    ``atoms.calc`` is replaced by an :class:`AuditedCalculator` on ``model``
    (the model's calculator is reset once, then reused for every step).
    The run stops early at the first :class:`Event` returned by
    ``monitor(step, atoms, forces)`` or at a model error (recorded in
    ``run.event`` / ``run.model_error``, never raised). About ``n_frames``
    frames are kept, plus the last one. ``progress(done, total, label)`` is called
    after every step (the pytest plugin shows it for long runs).
    """
    if hasattr(model.calc, "reset"):
        model.calc.reset()
    audited = atoms.calc = AuditedCalculator(model)
    n = len(atoms)
    every = max(1, n_steps // n_frames)
    rows: dict[str, list] = {k: [] for k in ("epot", "ekin", "p", "L", "ps", "Ls", "fmax")}
    run = MDRun(label=label, dt_fs=dt_fs, n_atoms=n)
    isolated = not atoms.pbc.any()
    masses = atoms.get_masses()
    step = 0
    energy, forces = math.nan, np.zeros((n, 3))
    try:
        for step, _ in enumerate(dyn.irun(n_steps)):
            energy = atoms.get_potential_energy()
            forces = atoms.get_forces()
            p = atoms.get_momenta()
            rows["epot"].append(energy)
            rows["ekin"].append(0.5 * float(np.sum(p * p / masses[:, None])))
            rows["p"].append(p.sum(axis=0))
            rows["ps"].append(float(np.linalg.norm(p, axis=1).sum()))
            if isolated:
                r = atoms.positions - atoms.get_center_of_mass()
                rows["L"].append(np.cross(r, p).sum(axis=0))
                rows["Ls"].append(float((np.linalg.norm(r, axis=1) * np.linalg.norm(p, axis=1)).sum()))
            rows["fmax"].append(float(np.sqrt((forces * forces).sum(axis=1)).max()) if n else 0.0)
            if step % every == 0:
                run.frames.append(snapshot(atoms, energy, forces, step, dt_fs, audited.box_cell))
            if progress is not None:
                progress(step + 1, n_steps + 1, label.split(",")[0])
            if monitor is not None:
                event = monitor(step, atoms, forces)
                if event is not None:
                    run.event = event
                    break
    except ModelError as exc:
        failed = len(rows["epot"])  # the step whose forces could not be computed
        run.model_error = exc
        run.event = Event("model error", failed, failed * dt_fs, str(exc))
        step = failed - 1
    if run.frames and run.frames[-1].info["step"] != step and rows["epot"]:
        run.frames.append(snapshot(atoms, energy, forces, step, dt_fs, audited.box_cell))
    m = len(rows["epot"])
    run.time_fs = np.arange(m) * dt_fs
    run.epot = np.asarray(rows["epot"], dtype=float)
    run.ekin = np.asarray(rows["ekin"], dtype=float)
    dof = max(3 * n - (3 if n > 1 else 0), 1)
    run.temperature = 2 * run.ekin / (dof * units.kB)
    run.momentum = np.asarray(rows["p"], dtype=float).reshape(-1, 3)
    run.momentum_scale = np.asarray(rows["ps"], dtype=float)
    run.angular_momentum = np.asarray(rows["L"], dtype=float).reshape(-1, 3)
    run.angular_scale = np.asarray(rows["Ls"], dtype=float)
    run.max_force = np.asarray(rows["fmax"], dtype=float)
    atoms.calc = None
    return run


def linear_fit(t: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares slope of y(t) and the residuals y - fit."""
    if len(t) < 2:
        return 0.0, np.zeros_like(y)
    slope, intercept = np.polyfit(t, y, 1)
    return float(slope), y - (slope * t + intercept)


def pair_distances(atoms: Atoms, cutoff: float, full: bool = True):
    """Pairs within ``cutoff`` (Å) from vesin: int64 arrays i, j and distances d.

    Handles isolated (zero cell), slab and small periodic cells; vesin's uint64
    indices are cast to int64.
    """
    import vesin

    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=full)
    i, j, d = nl.compute(np.ascontiguousarray(atoms.positions, dtype=float),
                         np.asarray(atoms.cell.array, dtype=float), [bool(p) for p in atoms.pbc],
                         quantities="ijd")
    return i.astype(np.int64), j.astype(np.int64), np.asarray(d, dtype=float)


def closest_pairs(atoms: Atoms, cutoff: float):
    """Pairs closer than ``cutoff`` (Å), each once: arrays i, j, d."""
    if len(atoms) < 2 or cutoff <= 0:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    return pair_distances(atoms, cutoff, full=False)


def coordination(atoms: Atoms, cutoffs: np.ndarray) -> np.ndarray:
    """Coordination number of each atom: neighbours j with d_ij < cutoffs[Z_i, Z_j]."""
    n = len(atoms)
    if n < 2:
        return np.zeros(n)
    rmax = float(np.nanmax(cutoffs))
    i, j, d = pair_distances(atoms, rmax)
    z = atoms.numbers
    ok = d < cutoffs[z[i], z[j]]
    return np.bincount(i[ok], minlength=n).astype(float)


def rdf(frames: Sequence[Atoms], r_max: float, bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution g(r) averaged over ``frames`` (bin centres Å, g).

    Periodic frames are normalised by the ideal-gas density; isolated frames
    return the pair-distance histogram normalised to unit area (a shape
    comparison, not an absolute g(r)).
    """
    edges = np.linspace(0.0, r_max, bins + 1)
    hist = np.zeros(bins)
    for frame in frames:
        if len(frame) < 2:
            continue
        if frame.pbc.any():
            d = pair_distances(frame, r_max)[2]
        else:
            diff = frame.positions[:, None, :] - frame.positions[None, :, :]
            dist = np.sqrt((diff ** 2).sum(-1))
            d = dist[np.triu_indices(len(frame), 1)]
            d = np.concatenate([d, d])
        hist += np.histogram(d, edges)[0]
    centres = 0.5 * (edges[1:] + edges[:-1])
    if not frames or hist.sum() == 0:
        return centres, hist
    frame = frames[0]
    if frame.pbc.all() and frame.cell.rank == 3:
        n = len(frame)
        shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
        density = n / frame.get_volume()
        return centres, hist / (len(frames) * n * density * shell)
    return centres, hist / (hist.sum() * (edges[1] - edges[0]))


def artifact_dir(report_dir: Path | None) -> Path:
    """Where trajectories of failed runs go: ``report_dir`` or ./mlip-conformance-artifacts/."""
    path = Path(report_dir) if report_dir is not None else Path("mlip-conformance-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_trajectory(frames: Sequence[Atoms], path: Path) -> Path:
    """Write ``frames`` as extended XYZ (energies, forces, momenta per frame)."""
    from ase.io import write

    write(str(path), list(frames), format="extxyz")
    return path
