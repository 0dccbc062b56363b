"""Golden files: a model's outputs on fixed structures, written once and compared later.

A golden file is JSON: a header (format, model spec, model class, package versions,
precision, seed, species, the tolerance per property, date) and one line per
structure holding the structure itself (atomic numbers, positions in Å, cell in Å,
pbc) and the outputs (``energy`` eV, ``forces`` (N, 3) eV/Å, ``stress`` (6,) Voigt
xx, yy, zz, yz, xz, xy eV/Å³ where the model has it). Floats are written with
Python's shortest round-trip representation, so reading gives back the numbers
written to the bit. The structures are stored, not rebuilt: a later version of the
suite that builds its cases differently still compares the same structures.

>>> import io, numpy as np
>>> from ase import Atoms
>>> from conformance.core.cases import Case
>>> atoms = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.3]])
>>> case = Case("dimer_Cu2", "dimer", atoms, frozenset({"dimer", "isolated"}))
>>> out = {"dimer_Cu2": {"energy": -0.5, "forces": np.array([[0, 0, 1.0], [0, 0, -1.0]])}}
>>> text = golden_text({"model": "ase:EMT"}, [case], out)
>>> header, structures, outputs = parse_golden(text)
>>> header["model"], structures[0].name, float(outputs["dimer_Cu2"]["forces"][1, 2])
('ase:EMT', 'dimer_Cu2', -1.0)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from ase import Atoms

from ..core.cases import Case, case_tags

FORMAT = "mlip-conformance golden outputs 1"
#: Tolerance rows a golden file records (their values at the precision of the run
#: that wrote it).
TOLERANCE_NAMES = ("energy_atol", "force_atol", "force_rtol", "stress_atol", "stress_rtol",
                   "noise_factor")


class GoldenError(ValueError):
    """A golden file that cannot be read (message names the file and the problem)."""


def _record(case: Case, outputs: Mapping) -> dict:
    atoms = case.atoms
    rec = {"name": case.name, "kind": case.kind, "numbers": atoms.numbers.tolist(),
           "pbc": [bool(p) for p in atoms.pbc], "cell": atoms.cell.array.tolist(),
           "positions": atoms.positions.tolist()}
    for key in ("energy", "forces", "stress"):
        if key in outputs:
            value = outputs[key]
            rec[key] = float(value) if key == "energy" else np.asarray(value, dtype=float).tolist()
    return rec


def golden_text(header: Mapping, structures: Sequence[Case], outputs: Mapping[str, Mapping]) -> str:
    """The JSON text of a golden file: ``header`` indented, one line per structure.

    Parameters
    ----------
    header : mapping
        Model spec, versions, tolerances... (JSON-serialisable).
    structures : sequence of Case
        In the order to write; those without outputs are left out.
    outputs : mapping structure name -> outputs (see module docstring)
    """
    head = dict(header, format=FORMAT)
    lines = [json.dumps(_record(c, outputs[c.name]), separators=(",", ":"))
             for c in structures if c.name in outputs]
    body = json.dumps(head, indent=1, sort_keys=True)[:-2]  # without the closing "\n}"
    return body + ',\n "structures": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"


def write_golden(path, header: Mapping, structures: Sequence[Case],
                 outputs: Mapping[str, Mapping]) -> Path:
    """Write a golden file (see :func:`golden_text`); returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(golden_text(header, structures, outputs), encoding="utf-8")
    return path


def parse_golden(text: str, source: str = "golden file") -> tuple[dict, list[Case], dict]:
    """``(header, structures, outputs)`` of a golden file's text.

    Returns
    -------
    header : dict
    structures : list of Case
        Rebuilt from the stored numbers, positions, cell and pbc.
    outputs : dict structure name -> {"energy": float, "forces": (N, 3), "stress": (6,)}

    Raises
    ------
    GoldenError
        Not JSON, another format, or a structure record without its fields.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GoldenError(f"{source}: not a JSON golden file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GoldenError(f"{source}: not a golden file of this suite (format "
                          f"{data.get('format') if isinstance(data, dict) else None!r}, "
                          f"expected {FORMAT!r})")
    structures, outputs = [], {}
    for rec in data.pop("structures", []):
        try:
            atoms = Atoms(numbers=rec["numbers"], positions=rec["positions"], cell=rec["cell"],
                          pbc=rec["pbc"])
            structures.append(Case(rec["name"], rec["kind"], atoms, case_tags(rec["kind"], atoms)))
            outputs[rec["name"]] = {k: (float(rec[k]) if k == "energy" else np.asarray(rec[k], float))
                                    for k in ("energy", "forces", "stress") if k in rec}
        except (KeyError, TypeError, ValueError) as exc:
            raise GoldenError(f"{source}: a structure record is incomplete "
                              f"({type(exc).__name__}: {exc})") from None
    return data, structures, outputs


def read_golden(path) -> tuple[dict, list[Case], dict]:
    """:func:`parse_golden` of the file at ``path``."""
    path = Path(path)
    return parse_golden(path.read_text(encoding="utf-8"), str(path))


def package_versions(calc) -> dict[str, str]:
    """Versions of ase, numpy and of the package the calculator's class comes from
    (its top-level module's ``__version__``, else the version of the distribution
    that installs it; ``unknown`` when neither is known)."""
    import importlib
    from importlib import metadata

    versions = {}
    top = type(calc).__module__.split(".")[0]
    for name in dict.fromkeys(("ase", "numpy", top)):
        try:
            versions[name] = str(importlib.import_module(name).__version__)
            continue
        except Exception:
            pass
        for dist in [name] + metadata.packages_distributions().get(name, []):
            try:
                versions[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        versions.setdefault(name, "unknown")
    return versions
