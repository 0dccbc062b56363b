"""A synthetic labelled data set of any size for the data-audit benchmarks.

``python benchmarks/synthetic.py --n 100000`` writes ``benchmarks/data/n100000/``:
extxyz shards of training and test frames, and ``truth.json`` with what was planted.

Structures are small (2-8 atoms) so that a million EMT-labelled frames take minutes:

* **crystals** -- fcc (conventional 4-atom or primitive 1-atom cell doubled), bcc
  (2 atoms) and hcp (2 atoms) cells of Cu and Au with random occupation, lattice
  constant scaled by a random factor in [0.95, 1.05] (Vegard's law between the
  elements' EMT lattice constants) and every atom rattled by a random amplitude in
  [0.02, 0.12] Å; some cells repeated to 8 atoms;
* **clusters** -- 3-8 atoms placed one by one at a bond length (2.3-2.9 Å) from a
  random earlier atom and no closer than 2.1 Å to any, no cell.

Labels: energy (eV), forces (eV/Å) and, for periodic cells, stress (eV/Å³) of ASE's
EMT, computed by :func:`emt_batch` -- ASE's EMT equations vectorised over the pairs of
a whole batch of frames, with vesin neighbour lists (equal to ``ase.calculators.emt``
to ~1e-13, tested; ~100x faster than one ASE calculator call per 5-atom frame). Frame
``k`` is a pure function of ``(seed, k)``, so any size is a prefix of any larger one.

Planted, recorded in ``truth.json``:

* **leaks** -- ``leak_fraction`` (1 %) of the test frames are copies of random training
  frames: exact duplicates, translated + rotated + permuted copies, and copies rattled
  by 1e-3 Å (labels recomputed), in equal parts;
* **corrupted labels** -- ``corrupt_fraction`` (0.01 %, at least 2) of the training
  frames: +1 eV on the energy (half of them) or +-3 eV/Å added to one force component
  (the other half).

The split is 90 % training, 10 % test, written in shards of ``shard_size`` frames
(``train-0000.extxyz``, ..., ``test-0000.extxyz``, ...) with a fast writer that ASE's
extxyz reader reads back (labels as its single-point results).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

SPECIES = ("Cu", "Au")
#: EMT equilibrium fcc lattice constants (Å)
LATTICE = {"Cu": 3.59, "Au": 4.06}
DATA_DIR = Path(__file__).with_name("data")
TEST_FRACTION = 0.1
LEAK_FRACTION = 0.01
CORRUPT_FRACTION = 1e-4


def _emt_parameters():
    """ASE EMT's per-element constants, indexed by atomic number, and its cutoff."""
    from ase.calculators.emt import EMT, beta, parameters
    from ase.data import atomic_numbers
    from ase.units import Bohr

    calc = EMT()
    from ase import Atoms

    calc.initialize(Atoms([s for s in SPECIES]))
    table = {}
    for key in ("E0", "s0", "V0", "eta2", "kappa", "lambda", "n0", "inv12gamma1",
                "neghalfv0overgamma2"):
        values = np.zeros(100)
        for k, z in enumerate(calc.par["Z"]):
            values[int(z)] = calc.par[key][k]
        table[key] = values
    del parameters, atomic_numbers, Bohr
    return table, calc.rc, calc.rc_list, calc.acut, beta


def emt_batch(frames) -> list[dict]:
    """EMT labels of many frames at once (ASE's EMT equations, vectorised over pairs).

    Parameters
    ----------
    frames : sequence of ase.Atoms
        Elements of :data:`SPECIES`; periodic or isolated.

    Returns
    -------
    list of dict
        Per frame ``energy`` (eV), ``forces`` ((N, 3) eV/Å) and, for cells of rank 3,
        ``stress`` ((6,) Voigt, eV/Å³), as ``ase.calculators.emt.EMT`` gives them.
    """
    import vesin

    par, rc, rc_list, acut, beta = _emt_parameters_cached()
    offsets = np.cumsum([0] + [len(a) for a in frames])
    z = np.concatenate([a.numbers for a in frames])
    ii, jj, dd, ss = [], [], [], []
    for k, atoms in enumerate(frames):
        nl = vesin.NeighborList(cutoff=rc_list, full_list=True)
        i, j, d = nl.compute(np.ascontiguousarray(atoms.positions, dtype=float),
                             np.asarray(atoms.cell.array, dtype=float),
                             [bool(p) for p in atoms.pbc], quantities="ijD")
        ii.append(np.asarray(i, dtype=np.int64) + offsets[k])
        jj.append(np.asarray(j, dtype=np.int64) + offsets[k])
        dd.append(np.asarray(d, dtype=float).reshape(-1, 3))
        ss.append(np.full(len(i), k))
    i, j, d, owner = (np.concatenate(x) for x in (ii, jj, dd, ss))
    n = offsets[-1]
    r = np.sqrt(np.einsum("pa,pa->p", d, d))
    zi, zj = z[i], z[j]
    w = 1.0 / (1.0 + np.exp(acut * (r - rc)))
    dwdroverw = acut * (w - 1.0)
    chi = par["n0"][zj] / par["n0"][zi]
    s0i, s0j = par["s0"][zi], par["s0"][zj]
    dsigma1s = np.exp(-par["eta2"][zj] * (r - beta * s0j)) * chi * w
    dsigma1o = np.exp(-par["eta2"][zi] * (r - beta * s0i)) / chi * w
    dsigma2s = np.exp(-par["kappa"][zj] * (r / beta - s0j)) * chi * w
    dsigma2o = np.exp(-par["kappa"][zi] * (r / beta - s0i)) / chi * w
    sigma1 = np.bincount(i, dsigma1s, minlength=n)
    has = sigma1 > 0
    e0, v0, eta2 = par["E0"][z], par["V0"][z], par["eta2"][z]
    lmd, kappa = par["lambda"][z], par["kappa"][z]
    ds = np.zeros(n)
    ds[has] = -np.log(sigma1[has] * par["inv12gamma1"][z][has]) / (beta * eta2[has])
    expl = np.exp(-lmd * ds)
    sixv0 = 6.0 * v0 * np.exp(-kappa * ds)
    energies = np.where(has, e0 * (1.0 + lmd * ds) * expl + sixv0, 0.0)
    deds = np.zeros(n)
    deds[has] = ((-e0 * lmd * lmd * ds * expl - kappa * sixv0)[has]
                 / (-beta * eta2[has] * sigma1[has]))
    es = par["neghalfv0overgamma2"][zi] * dsigma2s
    eo = par["neghalfv0overgamma2"][zj] * dsigma2o
    energies += 0.5 * np.bincount(i, es + eo, minlength=n)
    dedr = (deds[i] * dsigma1s * (dwdroverw - par["eta2"][zj])
            + deds[j] * dsigma1o * (dwdroverw - par["eta2"][zi])
            + es * (dwdroverw - par["kappa"][zj] / beta)
            + eo * (dwdroverw - par["kappa"][zi] / beta))
    f = (dedr / r)[:, None] * d
    energies -= e0
    forces = np.stack([np.bincount(i, f[:, a], minlength=n) for a in range(3)], axis=1)
    virial = np.stack([np.bincount(owner, 0.5 * d[:, a] * f[:, b], minlength=len(frames))
                       for a in range(3) for b in range(3)], axis=1).reshape(-1, 3, 3)
    out = []
    for k, atoms in enumerate(frames):
        sl = slice(offsets[k], offsets[k + 1])
        labels = dict(energy=float(energies[sl].sum()), forces=forces[sl].copy())
        if atoms.cell.rank == 3 and atoms.pbc.all():
            s = 0.5 * (virial[k] + virial[k].T) / atoms.get_volume()
            labels["stress"] = s.flat[[0, 4, 8, 5, 2, 1]]
        out.append(labels)
    return out


_PARAMETERS = None


def _emt_parameters_cached():
    global _PARAMETERS
    if _PARAMETERS is None:
        _PARAMETERS = _emt_parameters()
    return _PARAMETERS


@functools.lru_cache(maxsize=None)
def _unit_cell(kind: str):
    """Cell of a lattice kind at fcc lattice constant 1 Å (scaled per frame)."""
    from ase.build import bulk

    if kind == "fcc":
        return bulk("Cu", "fcc", a=1.0, cubic=True)
    if kind == "fcc_primitive":
        return bulk("Cu", "fcc", a=1.0).repeat((2, 1, 1))
    if kind == "bcc":
        return bulk("Cu", "bcc", a=0.794, cubic=True)
    return bulk("Cu", "hcp", a=1 / np.sqrt(2), c=1.633 / np.sqrt(2))


def _crystal(rng):
    kind = str(rng.choice(["fcc", "fcc_primitive", "bcc", "hcp"]))
    x_au = rng.uniform()
    a = LATTICE["Cu"] * rng.uniform(0.95, 1.05) + x_au * (LATTICE["Au"] - LATTICE["Cu"])
    atoms = _unit_cell(kind).copy()
    atoms.set_cell(atoms.cell.array * a, scale_atoms=True)
    if len(atoms) <= 2 and rng.uniform() < 0.5:
        atoms = atoms.repeat((2, 2, 1) if len(atoms) == 2 else (2, 2, 2))[:8]
    symbols = np.where(rng.uniform(size=len(atoms)) < x_au, "Au", "Cu")
    atoms.set_chemical_symbols(symbols.tolist())
    atoms.positions += rng.normal(0.0, rng.uniform(0.02, 0.12), atoms.positions.shape)
    atoms.info["config_type"] = f"crystal_{kind}"
    return atoms


def _cluster(rng):
    from ase import Atoms

    n = int(rng.integers(3, 9))
    positions = [np.zeros(3)]
    while len(positions) < n:
        base = positions[rng.integers(len(positions))]
        direction = rng.normal(size=3)
        trial = base + rng.uniform(2.3, 2.9) * direction / np.linalg.norm(direction)
        if min(np.linalg.norm(trial - p) for p in positions) > 2.1:
            positions.append(trial)
    symbols = np.where(rng.uniform(size=n) < rng.uniform(), "Au", "Cu")
    atoms = Atoms(symbols.tolist(), positions=np.array(positions))
    atoms.info["config_type"] = "cluster"
    return atoms


def structure(seed: int, k: int):
    """Unlabelled frame ``k`` of the data set of ``seed`` (2-8 atoms; 30 % clusters)."""
    rng = np.random.default_rng([seed, k])
    return _cluster(rng) if rng.uniform() < 0.3 else _crystal(rng)


def label(atoms, calc=None) -> dict:
    """EMT labels of one frame with an ASE calculator (default ``EMT()``); the reference
    :func:`emt_batch` is tested against."""
    from ase.calculators.emt import EMT

    atoms = atoms.copy()
    atoms.calc = EMT() if calc is None else calc
    out = dict(energy=float(atoms.get_potential_energy()), forces=atoms.get_forces().copy())
    if atoms.pbc.all():
        out["stress"] = atoms.get_stress().copy()
    return out


def extxyz_frame(atoms, labels: dict) -> str:
    """One extended-XYZ frame (header with labels, species, positions, forces)."""
    head = []
    if atoms.pbc.any():
        lattice = " ".join(f"{v:.10f}" for v in atoms.cell.array.ravel())
        head.append(f'Lattice="{lattice}"')
    head.append("Properties=species:S:1:pos:R:3:forces:R:3")
    head.append(f"energy={labels['energy']:.12f}")
    if "stress" in labels:
        head.append('stress="' + " ".join(f"{v:.12e}" for v in _voigt_to_full(labels["stress"])) + '"')
    for key in ("config_type",):
        if key in atoms.info:
            head.append(f"{key}={atoms.info[key]}")
    head.append('pbc="' + " ".join("T" if p else "F" for p in atoms.pbc) + '"')
    lines = [str(len(atoms)), " ".join(head)]
    for s, p, f in zip(atoms.get_chemical_symbols(), atoms.positions, labels["forces"]):
        lines.append(f"{s} {p[0]:.10f} {p[1]:.10f} {p[2]:.10f} {f[0]:.10f} {f[1]:.10f} {f[2]:.10f}")
    return "\n".join(lines) + "\n"


def _voigt_to_full(v):
    xx, yy, zz, yz, xz, xy = v
    return [xx, xy, xz, xy, yy, yz, xz, yz, zz]


def _moved(atoms, rng):
    """Translated, rotated and permuted copy (cell rotated with it)."""
    from scipy.spatial.transform import Rotation

    new = atoms.copy()
    rot = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    new.positions = new.positions @ rot.T + rng.normal(0.0, 2.0, 3)
    if new.pbc.any():
        new.set_cell(new.cell.array @ rot.T, scale_atoms=False)
        new.wrap()
    return new[rng.permutation(len(new))]


def _frame(seed: int, split: str, k: int, n_train: int, leak_of: dict):
    """Unlabelled frame ``k`` of a split (test leaks are copies of training frames)."""
    if split == "train":
        return structure(seed, k)
    if k not in leak_of:
        return structure(seed, n_train + k)
    source, how = leak_of[k]
    atoms = structure(seed, source)
    r = np.random.default_rng([seed, k, 5])
    if how == "moved":
        atoms = _moved(atoms, r)
    elif how == "rattled":
        atoms.positions += r.normal(0.0, 1e-3, atoms.positions.shape)
    return atoms


def _corrupt(labels: dict, kind: str | None, seed: int, k: int) -> None:
    """+1 eV on the energy, or +-3 eV/Å on one force component (in place)."""
    if kind == "energy":
        labels["energy"] += 1.0
    elif kind == "forces":
        r = np.random.default_rng([seed, k, 3])
        labels["forces"][r.integers(len(labels["forces"])), r.integers(3)] += \
            3.0 * r.choice([-1.0, 1.0])


def generate(n: int, out: Path, seed: int = 0, shard_size: int = 20_000,
             progress: bool = True) -> dict:
    """Write ``n`` frames (90 % train, 10 % test) as extxyz shards under ``out``.

    Returns the planted truth (also written to ``out/truth.json``).
    """
    out.mkdir(parents=True, exist_ok=True)
    n_test = int(round(TEST_FRACTION * n))
    n_train = n - n_test
    rng = np.random.default_rng([seed, n, 7])
    n_corrupt = max(2, int(round(CORRUPT_FRACTION * n_train)))
    corrupt = np.sort(rng.choice(n_train, n_corrupt, replace=False))
    corrupt_kind = {int(k): ("energy" if j % 2 == 0 else "forces") for j, k in enumerate(corrupt)}
    n_leak = max(3, int(round(LEAK_FRACTION * n_test)))
    leak_test = np.sort(rng.choice(n_test, n_leak, replace=False))
    leak_train = rng.choice(n_train, n_leak, replace=False)
    leak_of = {int(t): (int(s), ("duplicate", "moved", "rattled")[j % 3])
               for j, (t, s) in enumerate(zip(leak_test, leak_train))}
    truth = dict(n=n, n_train=n_train, n_test=n_test, seed=seed, shard_size=shard_size,
                 corrupted={str(k): v for k, v in corrupt_kind.items()},
                 leaks={str(t): dict(train=s, kind=kind) for t, (s, kind) in leak_of.items()})
    t0 = time.perf_counter()
    written = 0
    for split, count in (("train", n_train), ("test", n_test)):
        for shard, start in enumerate(range(0, count, shard_size)):
            path = out / f"{split}-{shard:04d}.extxyz"
            frames = [_frame(seed, split, k, n_train, leak_of)
                      for k in range(start, min(start + shard_size, count))]
            chunks = []
            for b in range(0, len(frames), 2000):
                batch = frames[b:b + 2000]
                for offset, (atoms, labels) in enumerate(zip(batch, emt_batch(batch))):
                    k = start + b + offset
                    if split == "train":
                        _corrupt(labels, corrupt_kind.get(k), seed, k)
                    chunks.append(extxyz_frame(atoms, labels))
            written += len(frames)
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(chunks))
            tmp.replace(path)
            if progress:
                rate = written / (time.perf_counter() - t0)
                print(f"{path.name}: {written}/{n} frames, {rate:.0f} frames/s", flush=True)
    (out / "truth.json").write_text(json.dumps(truth))
    return truth


def dataset(n: int, seed: int = 0, root: Path = DATA_DIR) -> Path:
    """Folder of the data set of ``n`` frames, generated on first use (cached)."""
    out = root / f"n{n}-s{seed}"
    if not (out / "truth.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        ignore = root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")
        generate(n, out, seed)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description="write a synthetic EMT-labelled data set")
    parser.add_argument("--n", type=int, required=True, help="frames (train + test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(dataset(args.n, args.seed))


if __name__ == "__main__":
    main()
