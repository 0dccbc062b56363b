"""Seeded, cached structures and helpers shared by the benchmarks."""

from __future__ import annotations

import functools
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


@functools.lru_cache(maxsize=None)
def _cu_cell(n_atoms: int, seed: int = 0):
    from ase.build import bulk

    repeat = round((n_atoms / 4) ** (1 / 3))
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
    if len(atoms) != n_atoms:
        raise ValueError(f"no cubic fcc cell with {n_atoms} atoms")
    atoms.rattle(0.05, seed=seed)
    return atoms


def cu_cell(n_atoms: int, seed: int = 0):
    """Rattled (0.05 Å) fcc Cu cube of 4·k³ atoms (108, 864, 6912, ...), a fresh copy."""
    return _cu_cell(n_atoms, seed).copy()


def make_calculator(name: str):
    """``emt`` or a reference model name (``linear``, ``nn``)."""
    if name == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    import reference_models

    return reference_models.load(name)


def energy_and_forces(calc, atoms, rng) -> None:
    """One energy+forces evaluation at freshly displaced positions (no cache reuse)."""
    atoms.positions = atoms.positions + rng.normal(0.0, 1e-3, atoms.positions.shape)
    atoms.calc = calc
    atoms.get_potential_energy()
    atoms.get_forces()


def best_time(func, repeats: int = 3) -> float:
    """Best wall time (s) of ``repeats`` calls of ``func()``."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return best
