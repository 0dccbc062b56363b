"""Outputs of a model on a fixed set of structures, and the worst differences between two sets.

Measure, then judge: the regression family (:mod:`conformance.checks.regression`)
evaluates a model on the audit's seeded cases plus a few variants
(:func:`output_structures`), then compares those outputs with another model's
(``--mlip-compare``) or with a golden file's (``--mlip-golden``) by
:func:`worst_differences`, which returns, per property, the structure where the
difference is largest relative to its tolerance.

Tolerances per structure of N atoms (the names are rows of
:mod:`conformance.core.tolerances`), with ``k = noise_factor`` and the noise floor of
the lower-precision model (:mod:`conformance.toolkit.noise`, zero for float64):

* energy: ``energy_atol × N + k × noise.energy + noise.resolution`` (eV);
* forces: ``force_atol + force_rtol × max|F| + k × noise.forces`` (eV/Å), max|F|
  of the expected outputs;
* stress: ``stress_atol + stress_rtol × max|σ| + k × noise.stress`` (eV/Å³).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from ..core.cases import Case, case_rng, case_tags
from ..core.result import Field
from .noise import Noise
from .transforms import strained

#: Standard deviation (Å) of the extra rattle of the ``~rattled`` variants: off
#: equilibrium, so that every atom carries a force of ~1 eV/Å.
VARIANT_RATTLE = 0.1
#: Largest component of the random symmetric strain of the ``~strained`` variants.
VARIANT_STRAIN = 0.02
#: Properties compared, with their units.
UNITS = {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å³"}
VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")


def variant(case: Case, which: str, seed: int) -> Case:
    """A reproducible variant of ``case``: ``"rattled"`` (every atom moved by a normal
    displacement of standard deviation :data:`VARIANT_RATTLE` Å) or ``"strained"``
    (cell and atoms deformed by ``1 + ε``, ε symmetric with components up to
    :data:`VARIANT_STRAIN`; fully periodic cases only).

    Parameters
    ----------
    case : Case
    which : {"rattled", "strained"}
    seed : int
        The run's seed; the variant's generator is seeded by (seed, ``name~which``).

    Returns
    -------
    Case
        Named ``<case>~<which>``, of the case's kind and tags.
    """
    name = f"{case.name}~{which}"
    rng = case_rng(seed, name)
    atoms = case.copy()
    if which == "rattled":
        atoms.positions = atoms.positions + rng.normal(0.0, VARIANT_RATTLE, atoms.positions.shape)
    elif which == "strained":
        if atoms.cell.rank != 3:
            raise ValueError(f"{case.name}: only a cell of rank 3 can be strained")
        eps = rng.uniform(-VARIANT_STRAIN, VARIANT_STRAIN, (3, 3))
        eps = 0.5 * (eps + eps.T)
        atoms = strained(atoms, eps)   # eps symmetric
    else:
        raise ValueError(f"unknown variant {which!r}: rattled or strained")
    return Case(name, case.kind, atoms, case_tags(case.kind, atoms), case.note)


def output_structures(cases: Sequence[Case], seed: int) -> list[Case]:
    """The structures a differential or golden-file audit evaluates: every case, a
    rattled variant of each case with more than one atom, and a strained variant of
    each fully periodic case (:func:`variant`), in that order per case."""
    out = []
    for case in cases:
        out.append(case)
        if len(case) > 1:
            out.append(variant(case, "rattled", seed))
        if case.atoms.cell.rank == 3 and case.atoms.pbc.all():
            out.append(variant(case, "strained", seed))
    return out


def properties_of(model, case: Case) -> tuple[str, ...]:
    """``("energy", "forces")``, plus ``"stress"`` when the model has stress and the
    case is periodic in all three directions."""
    props = ("energy", "forces")
    if model.tags.has_stress and "periodic3" in case.tags:
        props += ("stress",)
    return props


def evaluate_outputs(model, structures: Sequence[Case], properties: Callable | None = None,
                     errors: dict | None = None) -> dict[str, dict]:
    """``{name: {"energy": float eV, "forces": (N, 3) eV/Å, "stress": (6,) eV/Å³}}``.

    Parameters
    ----------
    model : conformance.core.model.Model
    structures : sequence of Case
    properties : callable ``(model, case) -> tuple``, optional
        Properties per structure (default :func:`properties_of`).
    errors : dict, optional
        Filled with ``{name: message}`` for every structure the model could not
        evaluate (``ModelError``, ``MissingProperty``); those are left out of the
        result. Without it, the first such exception is raised.
    """
    from ..core.model import MissingProperty, ModelError

    properties = properties or properties_of
    out = {}
    for case in structures:
        try:
            got = model.evaluate(case.copy(), properties(model, case))
        except (ModelError, MissingProperty) as exc:
            if errors is None:
                raise
            errors[case.name] = f"{type(exc).__name__}: {exc}"
            continue
        out[case.name] = {k: (float(v) if k == "energy" else np.asarray(v, dtype=float))
                          for k, v in got.items()}
    return out


@dataclass(frozen=True)
class Difference:
    """The largest difference of one property on one structure, and its tolerance.

    Attributes
    ----------
    property : {"energy", "forces", "stress"}
    error : float
        ``|ΔE|`` (eV), ``max_i |ΔF_i|`` (eV/Å) or ``max |Δσ_k|`` (eV/Å³).
    tolerance : float
        Same unit.
    structure : str
        Name of the structure (``bulk_Cu_fcc~rattled``).
    where : str
        ``atom 3`` or ``component xy``; empty for the energy.
    """

    property: str
    error: float
    tolerance: float
    structure: str
    where: str = ""

    @property
    def ratio(self) -> float:
        if self.tolerance > 0:
            return self.error / self.tolerance
        return np.inf if self.error > 0 else 0.0

    @property
    def unit(self) -> str:
        return UNITS[self.property]


def differences(expected: Mapping, got: Mapping, tol, n_atoms: int, noise: Noise | None = None,
                structure: str = "", resolution: bool = True) -> list[Difference]:
    """One :class:`Difference` per property present in both output dicts.

    Parameters
    ----------
    expected, got : dict
        ``energy`` (eV), ``forces`` (N, 3) eV/Å, ``stress`` (6,) eV/Å³.
    tol : Tolerances or mapping
        ``energy_atol`` (eV/atom), ``force_atol`` (eV/Å), ``force_rtol``,
        ``stress_atol`` (eV/Å³), ``stress_rtol``, ``noise_factor``.
    n_atoms : int
    noise : Noise, optional
        Noise floor added to the tolerances (float32 models).
    structure : str
        Name written into each Difference.
    resolution : bool
        Add the float32 energy spacing ``noise.resolution`` to the energy tolerance
        (two separate evaluations); the symmetry checks compare without it.
    """
    noise = noise or Noise()
    k = tol["noise_factor"]
    out = []
    if "energy" in expected and "energy" in got:
        out.append(Difference("energy", abs(float(got["energy"]) - float(expected["energy"])),
                              tol["energy_atol"] * n_atoms + k * noise.energy
                              + (noise.resolution if resolution else 0.0), structure))
    if "forces" in expected and "forces" in got:
        f0 = np.asarray(expected["forces"], dtype=float)
        diff = np.linalg.norm(np.asarray(got["forces"], dtype=float) - f0, axis=1)
        i = int(np.argmax(diff)) if len(diff) else 0
        out.append(Difference("forces", float(diff[i]) if len(diff) else 0.0,
                              tol["force_atol"] + tol["force_rtol"] * (float(np.abs(f0).max()) if f0.size else 0.0)
                              + k * noise.forces, structure, f"atom {i}"))
    if "stress" in expected and "stress" in got:
        s0 = np.asarray(expected["stress"], dtype=float)
        diff = np.abs(np.asarray(got["stress"], dtype=float) - s0)
        j = int(np.argmax(diff))
        out.append(Difference("stress", float(diff[j]),
                              tol["stress_atol"] + tol["stress_rtol"] * float(np.abs(s0).max())
                              + k * noise.stress, structure, f"component {VOIGT[j]}"))
    return out


def worst_differences(expected: Mapping[str, Mapping], got: Mapping[str, Mapping], tol,
                      n_atoms: Mapping[str, int], noise: Mapping[str, Noise] | None = None
                      ) -> dict[str, Difference]:
    """Per property, the structure whose difference is largest relative to its tolerance.

    Parameters
    ----------
    expected, got : mapping structure name -> outputs
        Only structures present in both are compared.
    tol : Tolerances or mapping (see :func:`differences`)
    n_atoms : mapping structure name -> number of atoms
    noise : mapping structure name -> Noise, optional

    Returns
    -------
    dict property -> Difference, in the order energy, forces, stress (those compared).
    """
    noise = noise or {}
    worst: dict[str, Difference] = {}
    for name in expected:
        if name not in got:
            continue
        for d in differences(expected[name], got[name], tol, n_atoms[name], noise.get(name), name):
            if d.property not in worst or d.ratio > worst[d.property].ratio:
                worst[d.property] = d
    return {p: worst[p] for p in UNITS if p in worst}


def as_fields(worst: Mapping[str, Difference], prefix: str = "") -> list[Field]:
    """The worst differences as report fields (``|ΔE|`` eV, ``|ΔF|`` eV/Å: the largest
    per-atom norm, ``|Δσ|`` eV/Å³: the largest component)."""
    names = {"energy": "|ΔE|", "forces": "|ΔF|", "stress": "|Δσ|"}
    return [Field(prefix + names[p], d.error, d.tolerance, d.unit,
                  f"{d.structure} {d.where}".strip()) for p, d in worst.items()]
