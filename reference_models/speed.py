"""Side-by-side speed of the reference models and ASE's EMT (energy + forces).

``python -m reference_models.speed`` prints atoms/s of every model and EMT on the same
864-atom Cu fcc cell (``bulk('Cu', 'fcc', a=3.6, cubic=True).repeat(6)``, rattled), the
ratio to EMT, and the time per atom from 108 to 6912 atoms (linear scaling).

Every call gets new, slightly displaced positions.  EMT is timed twice: with one
calculator whose neighbour list (built with a skin) is reused between calls, as in MD
("EMT steady", the harder reference), and with a new calculator per call ("EMT fresh").
The reference models keep no state between calls.

Both run on one core: BLAS is limited to one thread (unless the environment already sets
``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``) before numpy is
imported.  The models' matrices are small, so extra BLAS threads buy nothing on an idle
machine and, on a busy one, wait for each other (a matrix product then takes 10x longer
and the ratio to EMT halves).
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from ase.build import bulk  # noqa: E402
from ase.calculators.emt import EMT  # noqa: E402

from . import available, load  # noqa: E402


def cell(repeat: int, seed: int = 0):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
    atoms.rattle(0.05, seed=seed)
    return atoms


def seconds_per_call(calc, atoms, repeats: int, step: float = 0.002, seed: int = 1,
                     factory=None) -> float:
    """Best-of-3 mean wall time of energy + forces, positions displaced before each call.

    ``factory`` (a callable returning a calculator) gives every call a new calculator.
    """
    rng = np.random.default_rng(seed)
    base = atoms.positions.copy()
    work = atoms.copy()
    work.calc = calc if factory is None else factory()
    work.get_forces()  # warm-up
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            if factory is not None:
                work.calc = factory()
            work.positions = base + rng.normal(0, step, base.shape)
            work.get_potential_energy()
            work.get_forces()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    atoms = cell(6)
    n = len(atoms)
    emt_fresh = seconds_per_call(None, atoms, args.repeats, factory=EMT)
    emt_steady = seconds_per_call(EMT(), atoms, args.repeats)
    print(f"{n} atoms, energy + forces")
    print(f"  {'EMT fresh':22s} {n / emt_fresh:9.0f} atoms/s")
    print(f"  {'EMT steady (NL reuse)':22s} {n / emt_steady:9.0f} atoms/s")
    for name in available():
        t = seconds_per_call(load(name), atoms, args.repeats)
        print(f"  {name:22s} {n / t:9.0f} atoms/s   x{emt_steady / t:4.2f} EMT steady   "
              f"x{emt_fresh / t:4.2f} EMT fresh")
    print("time per atom vs size (linear model):")
    calc = load("linear")
    ref = None
    for repeat in (3, 6, 12):
        big = cell(repeat)
        t = seconds_per_call(calc, big, max(1, args.repeats * 27 // repeat**3 + 1))
        ref = ref or t / len(big)
        print(f"  {len(big):5d} atoms  {1e6 * t / len(big):7.2f} µs/atom  "
              f"({t / len(big) / ref:4.2f} x the 108-atom value)")


if __name__ == "__main__":
    main()
