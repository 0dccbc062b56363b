"""Training data for the reference models: EMT labels on a configuration-sampling plan.

The oracle is ASE's EMT (``ase.calculators.emt.EMT``).  :data:`PLAN` lists the
conditions sampled for pure Cu and a random Cu–Au alloy; every condition yields four
independent Langevin trajectories (one random stream per trajectory, derived from the
global seed and the trajectory's position in the plan), and each trajectory a few
snapshots after equilibration:

========== ======================================================================
config     what is sampled
========== ======================================================================
md_bulk    fcc bulk (32 atoms) at 300 K to 2400 K, above EMT's melting point
strain     snapshots of fcc bulk MD at 500 K, each under its own random homogeneous
           strain: hydrostatic +-6 % or traceless shear +-5 % (symmetric tensor)
vacancy    bulk with one or two vacancies, MD at 700 K and 1300 K
surface    fcc(111) and fcc(100) slabs, 4 layers + vacuum (periodic cell), 300/900 K
cluster    isolated 13- and 38-atom clusters (no cell), 300 K and 800 K
dimer      isolated Cu-Cu, Cu-Au, Au-Au dimers from 1.9 to 5.4 Å (12 points, training
           only): the short-range wall and the approach to dissociation
atom       one isolated Cu and one Au atom (training only): the reference energies
========== ======================================================================

Every frame carries its plan in ``atoms.info``: ``system``, ``config_type``,
``temperature`` (K), ``strain`` (Voigt, xx yy zz yz xz xy), ``trajectory`` (id string),
``condition`` (index of the plan line), ``replica``, ``frame``, ``fidelity`` ("high" for
the oracle), ``oracle`` and ``seed``.  Labels are
energy (eV), forces (eV/Å) and, for cells of rank 3, stress (eV/Å³), computed on the
positions exactly as written to the file (they are round-tripped through the extxyz text
first), so reading the file back gives self-consistent data.

``python -m reference_models.data`` regenerates the shipped file bit for bit.

A low-fidelity version of the oracle (:func:`low_fidelity_labels`) adds a smooth
systematic bias (a Morse pair potential) and Gaussian noise to EMT, for the
multi-fidelity example of :mod:`reference_models.linear`.
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.build import bulk, fcc100, fcc111
from ase.calculators.emt import EMT
from ase.calculators.morse import MorsePotential
from ase.calculators.singlepoint import SinglePointCalculator
from ase.cluster import Icosahedron, Octahedron
from ase.constraints import FixCom
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import thermalize_momenta
from ase.stress import full_3x3_to_voigt_6_stress

from conformance.toolkit.transforms import strained

__all__ = [
    "PLAN", "Condition", "DATA_FILE", "generate", "generate_trajectory", "load",
    "split_by_trajectory", "low_fidelity_labels", "trajectories", "LATTICE",
]

DATA_DIR = Path(__file__).with_name("data")
DATA_FILE = DATA_DIR / "emt_cu_au.extxyz"
PLAN_FILE = DATA_DIR / "plan.json"
SEED = 20240611
#: EMT equilibrium fcc lattice constants in Å (alloys use Vegard's law)
LATTICE = {"Cu": 3.59, "Au": 4.06}
TIMESTEP_FS = 2.0
FRICTION_PER_FS = 0.02
EQUILIBRATION_STEPS = 100
STEPS_BETWEEN_FRAMES = 40


@dataclass(frozen=True)
class Condition:
    """One line of the sampling plan.

    Attributes
    ----------
    system : str
        "Cu" or "CuAu" (random fcc alloy).
    config_type : str
        md_bulk, strain, vacancy, surface or cluster.
    temperature : float
        Langevin temperature in K.
    n_trajectories : int
        Independent trajectories for this condition.
    n_frames : int
        Snapshots kept per trajectory.
    options : dict
        Condition-specific settings (``au_fraction``, ``strain`` kind and size,
        ``vacancies``, ``surface``, ``cluster``).
    """

    system: str
    config_type: str
    temperature: float
    n_trajectories: int = 4
    n_frames: int = 4
    options: dict = field(default_factory=dict)


def _plan() -> list[Condition]:
    plan = []
    for system, au in (("Cu", 0.0), ("CuAu", 0.25), ("CuAu", 0.5)):
        base = {"au_fraction": au}
        temps = (300, 700, 1100, 1500, 2400) if system == "Cu" else (300, 900, 1500, 2400)
        plan += [Condition(system, "md_bulk", t, options=base) for t in temps]
        plan += [Condition(system, "strain", 500, options={**base, "strain": kind, "size": size})
                 for kind, size in (("hydrostatic", 0.06), ("shear", 0.05))]
        plan += [Condition(system, "vacancy", t, options={**base, "vacancies": v})
                 for t, v in ((700, 1), (1300, 2))]
        if au == 0.5:
            continue
        plan += [Condition(system, "surface", t, options={**base, "surface": s})
                 for s in ("111", "100") for t in (300, 900)]
        plan += [Condition(system, "cluster", t, options={**base, "cluster": c})
                 for c in ("ico13", "octa38") for t in (300, 800)]
    # isolated dimers: the short-range wall and the approach to dissociation
    plan += [Condition(system, "dimer", 0.0, 1, 12, {"pair": pair})
             for system, pair in (("Cu", "CuCu"), ("CuAu", "CuAu"), ("CuAu", "AuAu"))]
    # isolated atoms: all descriptors vanish, so they pin the reference energies e0
    plan += [Condition(system, "atom", 0.0, 1, 1, {"pair": element})
             for system, element in (("Cu", "Cu"), ("CuAu", "Au"))]
    return plan


#: Dimer distances (Å) of the plan's dimer scans.
DIMER_DISTANCES = (1.9, 5.4)


#: The configuration-sampling plan of the shipped data set.
PLAN: list[Condition] = _plan()


def trajectories(plan=None) -> list[tuple[int, Condition, int]]:
    """Enumerate (trajectory index, condition, replica) over a plan, in file order."""
    plan = PLAN if plan is None else plan
    out = []
    for condition in plan:
        for replica in range(condition.n_trajectories):
            out.append((len(out), condition, replica))
    return out


def _condition_index(condition: Condition, plan=None) -> int:
    plan = PLAN if plan is None else plan
    return next(k for k, c in enumerate(plan) if c is condition)


def _lattice(au_fraction: float) -> float:
    return (1 - au_fraction) * LATTICE["Cu"] + au_fraction * LATTICE["Au"]


def _substitute(atoms, au_fraction: float, rng):
    n_au = int(round(au_fraction * len(atoms)))
    if n_au:
        atoms.symbols[rng.choice(len(atoms), n_au, replace=False)] = "Au"
    return atoms


def _random_strain(kind: str, size: float, rng) -> np.ndarray:
    """Symmetric strain tensor (3, 3): hydrostatic (scalar) or shear (traceless)."""
    if kind == "hydrostatic":
        return np.eye(3) * rng.uniform(-size, size)
    eps = rng.uniform(-size, size, (3, 3))
    eps = 0.5 * (eps + eps.T)
    return eps - np.trace(eps) / 3 * np.eye(3)


def initial_structure(condition: Condition, rng):
    """Starting structure of one trajectory and its strain (Voigt, 6).

    Parameters
    ----------
    condition : Condition
    rng : numpy.random.Generator

    Returns
    -------
    atoms : ase.Atoms
    strain : ndarray, shape (6,)
        Strain of the starting structure in Voigt order xx, yy, zz, yz, xz, xy (zero:
        strained frames get their own strain, see :func:`generate_trajectory`).
    """
    opt = condition.options
    au = opt.get("au_fraction", 0.0)
    a = _lattice(au)
    eps = np.zeros((3, 3))
    if condition.config_type == "surface":
        build = fcc111 if opt["surface"] == "111" else fcc100
        atoms = build("Cu", (3, 3, 4), a=a, vacuum=5.0, periodic=True)
    elif condition.config_type == "cluster":
        if opt["cluster"] == "ico13":
            atoms = Icosahedron("Cu", 2, latticeconstant=a)
        else:
            atoms = Octahedron("Cu", 4, cutoff=1, latticeconstant=a)
        atoms.center()
    else:
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(2)
    atoms = _substitute(atoms, au, rng)
    if condition.config_type == "vacancy":
        del atoms[sorted(rng.choice(len(atoms), opt["vacancies"], replace=False).tolist())]
    return atoms, _voigt(eps)


def _voigt(eps) -> np.ndarray:
    return full_3x3_to_voigt_6_stress(eps)





def _round_trip(atoms):
    """Atoms exactly as they read back from extxyz (positions and cell as written)."""
    clean = atoms.copy()
    clean.calc = None
    clean.info = {}
    clean.set_momenta(None)
    clean.set_constraint()
    buffer = io.StringIO()
    write(buffer, clean, format="extxyz")
    buffer.seek(0)
    return read(buffer, format="extxyz")


def label(atoms, calculator=None):
    """Attach oracle energy, forces and (cell of rank 3) stress as a SinglePointCalculator."""
    calculator = EMT() if calculator is None else calculator
    work = atoms.copy()
    work.calc = calculator
    results = {"energy": work.get_potential_energy(), "forces": work.get_forces()}
    if work.cell.rank == 3 and work.pbc.all():
        results["stress"] = work.get_stress(voigt=True)
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def generate_trajectory(index: int, condition: Condition, replica: int, seed: int = SEED,
                        condition_index: int = -1):
    """Frames of one trajectory of the plan (deterministic in ``seed`` and ``index``).

    Returns
    -------
    list of ase.Atoms
        Labelled snapshots with the plan in ``info``.
    """
    rng = np.random.default_rng([seed, index])
    tid = f"{condition.system}/{condition.config_type}/T{condition.temperature:g}/{index:03d}"
    meta = dict(system=condition.system, config_type=condition.config_type,
                temperature=float(condition.temperature), trajectory=tid,
                condition=condition_index, replica=replica, fidelity="high", oracle="EMT",
                seed=seed)
    if condition.config_type in ("dimer", "atom"):
        return _dimer_scan(condition, rng, meta)
    atoms, strain = initial_structure(condition, rng)
    atoms.calc = EMT()
    thermalize_momenta(atoms, condition.temperature, rng=rng)
    atoms.set_constraint(FixCom())
    dyn = Langevin(atoms, TIMESTEP_FS * units.fs, temperature_K=condition.temperature,
                   friction=FRICTION_PER_FS / units.fs, fixcm=False, rng=rng)
    frames = []
    dyn.run(EQUILIBRATION_STEPS)
    for frame in range(condition.n_frames):
        if frame:
            dyn.run(STEPS_BETWEEN_FRAMES)
        frame_strain = strain
        snapshot = atoms
        if condition.config_type == "strain":
            # every frame its own random strain of the thermal snapshot: the strain
            # range is covered by all trajectories, not one value per trajectory
            eps = _random_strain(condition.options["strain"], condition.options["size"], rng)
            snapshot, frame_strain = strained(atoms, eps), _voigt(eps)
        snap = label(_round_trip(snapshot))
        snap.info.update(meta, strain=frame_strain, frame=frame)
        frames.append(snap)
    return frames


def _dimer_scan(condition: Condition, rng, meta):
    """Isolated dimers at evenly spaced distances along random directions (or one atom)."""
    a, b = condition.options["pair"][:2], condition.options["pair"][2:]
    frames = []
    for frame, r in enumerate(np.linspace(*DIMER_DISTANCES, condition.n_frames)):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        atoms = Atoms([a, b], positions=[np.zeros(3), r * direction]) if b else Atoms(a)
        snap = label(_round_trip(atoms))
        snap.info.update(meta, strain=np.zeros(6), frame=frame)
        frames.append(snap)
    return frames


def generate(seed: int = SEED, plan=None, select=None):
    """Generate the data set.

    Parameters
    ----------
    seed : int
        Global seed.
    plan : list of Condition, optional
        Defaults to :data:`PLAN`.
    select : iterable of int, optional
        Only these trajectory indices (for a quick reproducibility check).

    Returns
    -------
    list of ase.Atoms
    """
    keep = None if select is None else set(select)
    frames = []
    for index, condition, replica in trajectories(plan):
        if keep is None or index in keep:
            frames += generate_trajectory(index, condition, replica, seed,
                                          _condition_index(condition, plan))
    return frames


def to_text(frames) -> str:
    """extxyz text of labelled frames (the shipped file format)."""
    buffer = io.StringIO()
    write(buffer, frames, format="extxyz")
    return buffer.getvalue()


def load(path=None):
    """Read the shipped (or another) data file.

    Returns
    -------
    list of ase.Atoms
        With SinglePointCalculator labels and the plan in ``info``.
    """
    return read(DATA_FILE if path is None else path, index=":", format="extxyz")


def split_by_trajectory(structures, test_fraction: float = 0.25, seed: int = 0):
    """Split into train and test sets by whole trajectories, stratified by plan line.

    Trajectories are grouped by their plan condition (``info["condition"]``: system,
    configuration type, temperature and options); within each group about
    ``test_fraction`` of the trajectories (at least one when the group has two or more)
    go to the test set.  The test set is thus sampled with the same plan as the training
    set, and no test frame has a correlated sibling from its own trajectory in training.

    Returns
    -------
    train, test : list of ase.Atoms
    """
    rng = np.random.default_rng(seed)
    groups: dict = {}
    for atoms in structures:
        info = atoms.info
        key = info.get("condition", (info["system"], info["config_type"]))
        tid = info["trajectory"]
        if tid not in groups.setdefault(key, []):
            groups[key].append(tid)
    test_ids = set()
    for key in sorted(groups, key=str):
        ids = sorted(groups[key])
        n_test = int(round(test_fraction * len(ids)))
        if len(ids) >= 2:
            n_test = max(n_test, 1)
        test_ids.update(rng.permutation(ids)[:n_test].tolist())
    train = [a for a in structures if a.info["trajectory"] not in test_ids]
    test = [a for a in structures if a.info["trajectory"] in test_ids]
    return train, test


#: Low-fidelity oracle: EMT + Morse pair bias + Gaussian label noise.
LOW_FIDELITY = dict(morse_epsilon=0.005, morse_r0=2.7, morse_rho0=5.0, morse_r1=4.0,
                    morse_r2=5.2, noise_energy_per_atom=0.002, noise_force=0.03,
                    noise_stress=0.0005)


def low_fidelity_labels(structures, seed: int = 1, **overrides):
    """Relabel structures with a cheap, biased and noisy version of the oracle.

    ``E_low = E_EMT + E_Morse + noise`` with a weak smooth Morse pair potential
    (``morse_*`` in :data:`LOW_FIDELITY`, eV and Å) as the systematic bias, and
    independent Gaussian noise of ``noise_energy_per_atom * sqrt(N)`` (eV) on energies,
    ``noise_force`` (eV/Å) on forces and ``noise_stress`` (eV/Å³) on stresses.

    Returns
    -------
    list of ase.Atoms
        Copies with ``info["fidelity"] = "low"``.
    """
    p = {**LOW_FIDELITY, **overrides}
    rng = np.random.default_rng(seed)
    out = []
    for atoms in structures:
        new = atoms.copy()
        new.info = dict(atoms.info, fidelity="low", oracle="EMT+Morse+noise")
        label(new)
        bias = new.copy()
        bias.calc = MorsePotential(epsilon=p["morse_epsilon"], r0=p["morse_r0"],
                                   rho0=p["morse_rho0"], r1=p["morse_r1"], r2=p["morse_r2"])
        n = len(new)
        results = {
            "energy": new.get_potential_energy() + bias.get_potential_energy()
            + rng.normal(0, p["noise_energy_per_atom"] * np.sqrt(n)),
            "forces": new.get_forces() + bias.get_forces()
            + rng.normal(0, p["noise_force"], (n, 3)),
        }
        if "stress" in new.calc.results:
            results["stress"] = (new.get_stress() + bias.get_stress()
                                 + rng.normal(0, p["noise_stress"], 6))
        new.calc = SinglePointCalculator(new, **results)
        out.append(new)
    return out


def _plan_record(seed: int) -> dict:
    return dict(
        seed=seed, oracle="ase.calculators.emt.EMT", lattice=LATTICE,
        timestep_fs=TIMESTEP_FS, friction_per_fs=FRICTION_PER_FS,
        equilibration_steps=EQUILIBRATION_STEPS, steps_between_frames=STEPS_BETWEEN_FRAMES,
        conditions=[dict(system=c.system, config_type=c.config_type,
                         temperature=c.temperature, n_trajectories=c.n_trajectories,
                         n_frames=c.n_frames, options=c.options) for c in PLAN],
        low_fidelity=LOW_FIDELITY,
    )


def write_split(folder, structures=None, seed: int = 0) -> tuple[Path, Path]:
    """Write the shipped data split by trajectory as ``train.extxyz`` and ``test.extxyz``
    (with the sampling plan as ``plan.json``) into ``folder``: ready-made files for the
    data audits (``--mlip-train``/``--mlip-test``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train, test = split_by_trajectory(load() if structures is None else structures, seed=seed)
    paths = folder / "train.extxyz", folder / "test.extxyz"
    for path, frames in zip(paths, (train, test)):
        path.write_text(to_text(frames))
    (folder / "plan.json").write_text(DATA_FILE.with_name("plan.json").read_text())
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Regenerate the reference-model data set (bit-for-bit from the seed), or "
                    "write its train/test split for the data audits.")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=DATA_FILE,
                        help="where to write the regenerated data (default: the shipped file)")
    parser.add_argument("--split", type=Path, metavar="DIR",
                        help="write train.extxyz, test.extxyz and plan.json of the shipped data "
                             "(split by trajectory) into DIR instead of regenerating")
    args = parser.parse_args(argv)
    if args.split is not None:
        train, test = write_split(args.split)
        print(f"wrote {train} and {test} (split by trajectory) and {args.split / 'plan.json'}")
        return
    frames = []
    for index, condition, replica in trajectories():
        frames += generate_trajectory(index, condition, replica, args.seed,
                                      _condition_index(condition))
        print(f"trajectory {index:3d} {frames[-1].info['trajectory']:28s} "
              f"{len(frames):4d} frames", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_text(frames))
    args.out.with_name("plan.json").write_text(json.dumps(_plan_record(args.seed), indent=1))
    print(f"wrote {len(frames)} frames, {sum(len(a) for a in frames)} atoms to {args.out}")


if __name__ == "__main__":
    main()
