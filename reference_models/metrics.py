"""Errors of a model on labelled structures."""

from __future__ import annotations

import numpy as np
from ase.stress import full_3x3_to_voigt_6_stress

__all__ = ["rmse", "force_std", "EV_PER_A3_TO_GPA"]

EV_PER_A3_TO_GPA = 160.21766208


def rmse(model, structures) -> dict:
    """Root-mean-square errors of a model's ``evaluate`` against stored labels.

    Parameters
    ----------
    model : object with ``evaluate(atoms) -> dict(energy, forces, virial)``
    structures : sequence of ase.Atoms
        With energy, forces and (optionally) stress labels.

    Returns
    -------
    dict
        ``energy`` in eV/atom, ``forces`` in eV/Å (per component), ``stress`` in eV/Å³
        (per Voigt component; NaN if no structure has a stress label).
    """
    de, df, ds = [], [], []
    for atoms in structures:
        out = model.evaluate(atoms)
        ref = atoms.calc.results
        de.append((out["energy"] - ref["energy"]) / len(atoms))
        df.append((out["forces"] - ref["forces"]).ravel())
        if "stress" in ref and atoms.cell.rank == 3:
            v = full_3x3_to_voigt_6_stress(out["virial"]) / abs(atoms.cell.volume)
            ds.append(v - ref["stress"])
    return dict(energy=float(np.sqrt(np.mean(np.square(de)))),
                forces=float(np.sqrt(np.mean(np.concatenate(df) ** 2))),
                stress=float(np.sqrt(np.mean(np.square(ds)))) if ds else float("nan"))


def force_std(structures) -> float:
    """Standard deviation of all force components (eV/Å): the scale of force errors."""
    return float(np.std(np.concatenate([a.get_forces().ravel() for a in structures])))
