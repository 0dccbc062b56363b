"""Reading and validating labelled data sets, and a model's errors on them.

Every data audit starts here: :func:`read_labelled` reads a file (any format
``ase.io`` reads, all frames) and :func:`check_labelled` validates structures
already in memory. Both raise :class:`DataError` (a ``ValueError``) with a
message naming the file, the frame and what is missing, so a user can fix the
file rather than debug a traceback:

* the file is missing, unreadable or holds no structure;
* a frame has no energy or no forces (labels are read from the frame's
  calculator results, as the extxyz reader stores them, or from
  ``info["energy"]`` / ``arrays["forces"]``);
* a frame contains species the model (or descriptor) does not know.

Labels keep ASE's units: energy eV, forces (N, 3) eV/Å, stress Voigt
(xx, yy, zz, yz, xz, xy) eV/Å³.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from ase.stress import full_3x3_to_voigt_6_stress

from ..core.model import InputError

__all__ = ["DataError", "read_labelled", "check_labelled", "labels", "structure_errors",
           "error_summary", "species_of"]

REQUIRED = ("energy", "forces")


class DataError(InputError):
    """A data file or data set cannot be audited (empty, unlabelled, unknown species)."""


def _frames_text(indices: Sequence[int], limit: int = 5) -> str:
    shown = ", ".join(str(i) for i in indices[:limit])
    more = len(indices) - limit
    return shown + (f" (and {more} more)" if more > 0 else "")


def labels(atoms) -> dict:
    """Energy, forces and (if present) stress labels of one structure.

    Reads ``atoms.calc.results`` (what ``ase.io`` attaches for extxyz and most
    formats) and falls back to ``atoms.info["energy"]``, ``atoms.arrays["forces"]``
    and ``atoms.info["stress"]``.

    Returns
    -------
    dict
        Subset of ``energy`` (float, eV), ``forces`` ((N, 3), eV/Å),
        ``stress`` ((6,) Voigt, eV/Å³); missing labels are absent.
    """
    out = {}
    results = getattr(getattr(atoms, "calc", None), "results", None) or {}
    energy = results.get("energy", atoms.info.get("energy"))
    if energy is not None:
        out["energy"] = float(energy)
    forces = results.get("forces", atoms.arrays.get("forces"))
    if forces is not None:
        out["forces"] = np.asarray(forces, dtype=float).reshape(len(atoms), 3)
    stress = results.get("stress", atoms.info.get("stress"))
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape == (3, 3):
            stress = full_3x3_to_voigt_6_stress(stress)
        if stress.shape == (6,):
            out["stress"] = stress
    return out


def species_of(structures: Iterable) -> list[str]:
    """Chemical symbols present, ordered by atomic number."""
    from ase.data import chemical_symbols

    numbers = set()
    for atoms in structures:
        numbers.update(np.unique(atoms.numbers).tolist())
    return [chemical_symbols[z] for z in sorted(numbers)]


def check_labelled(structures, source: str = "data set", species: Sequence[str] | None = None,
                   require: Sequence[str] = REQUIRED, first_frame: int = 0,
                   copy: bool = True) -> list:
    """Validate labelled structures; return copies carrying a SinglePointCalculator.

    Parameters
    ----------
    structures : sequence of ase.Atoms
    source : str
        Name used in error messages (the file path, "training set", ...).
    species : sequence of str, optional
        Species the model or descriptor knows; any other element is an error.
    require : sequence of str
        Labels every frame must have (default energy and forces).
    first_frame : int
        Frame number of the first structure in ``source`` (messages count from it).
    copy : bool
        False: return the structures themselves (frames just read from a file, which
        nothing else holds), their labels moved onto a calculator where needed.

    Returns
    -------
    list of ase.Atoms
        Fresh copies (the input is not modified) whose ``calc.results`` hold the
        labels, so the design matrix (:mod:`conformance.featurize.design`) can read them.

    Raises
    ------
    DataError
        Empty set, a frame without a required label, unknown species, or a
        label with non-finite values.
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    structures = list(structures)
    if not structures:
        raise DataError(f"{source}: no structures (empty data set)")
    out, missing, bad_species, nonfinite = [], {}, {}, []
    known = None if species is None else set(species)
    for k, atoms in enumerate(structures, start=first_frame):
        if len(atoms) == 0:
            raise DataError(f"{source}: frame {k} has no atoms")
        lab = labels(atoms)
        for name in require:
            if name not in lab:
                missing.setdefault(name, []).append(k)
        if known is not None:
            extra = set(atoms.get_chemical_symbols()) - known
            for s in extra:
                bad_species.setdefault(s, []).append(k)
        if any(not np.all(np.isfinite(v)) for v in lab.values()):
            nonfinite.append(k)
        results = getattr(getattr(atoms, "calc", None), "results", None) or {}
        if copy or any(name not in results for name in lab):
            target = atoms.copy() if copy else atoms
            target.calc = SinglePointCalculator(target, **lab) if lab else None
            out.append(target)
        else:          # labels already on the frame's calculator
            out.append(atoms)
    if missing:
        parts = [f"no {name} in frame{'s' if len(idx) > 1 else ''} {_frames_text(idx)}"
                 for name, idx in missing.items()]
        raise DataError(f"{source}: {'; '.join(parts)} of {len(structures)}; the data audits "
                        f"need {' and '.join(require)} labels on every frame (e.g. extxyz written "
                        "from Atoms with a calculator attached)")
    if bad_species:
        parts = [f"{s} (frame{'s' if len(idx) > 1 else ''} {_frames_text(idx)})"
                 for s, idx in sorted(bad_species.items())]
        raise DataError(f"{source}: species not known to the model: {', '.join(parts)}; "
                        f"the model knows {', '.join(species)}")
    if nonfinite:
        raise DataError(f"{source}: non-finite (NaN or inf) labels in frames "
                        f"{_frames_text(nonfinite)}")
    return out


def read_labelled(path, species: Sequence[str] | None = None, require: Sequence[str] = REQUIRED,
                  index: str = ":") -> list:
    """Read every frame of a labelled data file and validate it.

    Parameters
    ----------
    path : str or Path
        Any format ``ase.io.read`` understands (extxyz, traj, ...).
    species, require
        See :func:`check_labelled`.
    index : str
        Frames to read (ase.io slice syntax), default all.

    Returns
    -------
    list of ase.Atoms

    Raises
    ------
    DataError
        File missing, unreadable or empty, or invalid frames (message names the file).
    """
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (no structures)")
    try:
        frames = read(path, index=index)
    except Exception as exc:  # ase raises many exception types for bad files
        raise DataError(f"{path}: cannot read structures: {type(exc).__name__}: {exc}") from exc
    if not isinstance(frames, list):
        frames = [frames]
    return check_labelled(frames, str(path), species, require)


def structure_errors(model, structures) -> pd.DataFrame:
    """Per-structure errors of a model against the stored labels.

    Parameters
    ----------
    model : conformance.core.model.Model or ASE calculator
        Evaluated on copies of the structures (a calculator is wrapped in a
        :class:`~conformance.core.model.Model`, so model errors raise ``ModelError``).
    structures : sequence of ase.Atoms
        Labelled (see :func:`labels`).

    Returns
    -------
    pandas.DataFrame
        One row per structure: ``n_atoms``, ``energy_error`` (predicted minus
        label, eV/atom), ``force_sse`` (sum of squared force-component errors,
        eV²/Å²), ``n_force`` (3N) and ``force_rmse`` (eV/Å).
    """
    from ..core.model import Model

    if not isinstance(model, Model):
        model = Model(model)
    rows = []
    for k, atoms in enumerate(structures):
        lab = labels(atoms)
        missing = [name for name in REQUIRED if name not in lab]
        if missing:
            raise DataError(f"structure {k} ({atoms.get_chemical_formula()}) has no "
                            f"{' and no '.join(missing)} label to compare the model with")
        out = model.evaluate(atoms, ("energy", "forces"))
        n = len(atoms)
        sse = float(np.sum((out["forces"] - lab["forces"]) ** 2))
        rows.append(dict(n_atoms=n, energy_error=(out["energy"] - lab["energy"]) / n,
                         force_sse=sse, n_force=3 * n, force_rmse=np.sqrt(sse / (3 * n))))
    return pd.DataFrame(rows)


def error_summary(errors: pd.DataFrame, subsets: dict) -> pd.DataFrame:
    """RMSE of energy (eV/atom) and forces (eV/Å) on named subsets of structures.

    Parameters
    ----------
    errors : pandas.DataFrame
        From :func:`structure_errors`.
    subsets : dict of str -> boolean mask
        E.g. ``{"all": ..., "without leaked": ..., "leaked": ...}``.

    Returns
    -------
    pandas.DataFrame
        Columns ``subset``, ``n_structures``, ``energy_rmse`` (eV/atom) and
        ``force_rmse`` (eV/Å, over all force components); NaN for empty subsets.
    """
    rows = []
    for name, mask in subsets.items():
        sub = errors[np.asarray(mask, dtype=bool)]
        n = len(sub)
        rows.append(dict(subset=name, n_structures=n,
                         energy_rmse=float(np.sqrt(np.mean(sub["energy_error"] ** 2))) if n
                         else float("nan"),
                         force_rmse=float(np.sqrt(sub["force_sse"].sum() / sub["n_force"].sum()))
                         if n else float("nan")))
    return pd.DataFrame(rows)
