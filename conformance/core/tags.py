"""What a model is, as far as the checks need to know (like scikit-learn's tags).

Tags are inferred from the calculator (``implemented_properties``) and from
attributes the model may declare (``species``, ``cutoff``, ``precision``) and
can be overridden by a ``mlip_tags`` dict attribute on the calculator, e.g.::

    class MyCalc(Calculator):
        implemented_properties = ["energy", "forces"]
        species = ["Cu", "Ni"]
        cutoff = 5.0            # Å
        precision = "float32"
        mlip_tags = {"deterministic": False, "thread_safe": False}

Conditions on tags live in the check generator (``registry.skip_reason``),
never inside a check.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Tags:
    """Model capabilities and declared properties.

    Attributes
    ----------
    properties : frozenset of str
        ASE property names the model implements (``energy``, ``forces``, ...).
    species : tuple of str
        Chemical symbols the model supports (empty: unknown).
    cutoff : float or None
        Declared interaction cutoff radius (Å); None if not declared.
    precision : {"float64", "float32"}
    conservative : bool
        Forces are claimed to be the negative energy gradient.
    strictly_local : bool
        No interaction beyond ``cutoff`` (False for long-range models).
    periodic_only : bool
        The model needs a periodic cell (CHGNet, M3GNet, matscipy's Manybody):
        isolated cases are evaluated in a periodic box with vacuum. Declared, or
        inferred by a probe when the model raises on a structure without cell.
    receptive_field : float or None
        Distance (Å) over which an atom's force can depend on others: layers ×
        per-layer cutoff for a message-passing model; None: 2 × ``cutoff``
        (a local many-body model), else measured and reported by ``locality``.
    deterministic : bool or None
        Repeated evaluation gives bit-identical results. None (not declared):
        repeats that differ within the precision's round-off are reported, not
        failed; True: bit-identical required; False: held to the shared
        tolerances.
    thread_safe : bool
        Separate instances may run concurrently in threads.
    """

    properties: frozenset = frozenset({"energy", "forces"})
    species: tuple = ()
    cutoff: float | None = None
    precision: str = "float64"
    conservative: bool = True
    strictly_local: bool = True
    periodic_only: bool = False
    receptive_field: float | None = None
    deterministic: bool | None = None
    thread_safe: bool = True

    @property
    def has_stress(self) -> bool:
        return "stress" in self.properties

    def replace(self, **changes: Any) -> "Tags":
        return dataclasses.replace(self, **changes)


TAG_NAMES = tuple(f.name for f in dataclasses.fields(Tags))


def declared_cutoff(value: Any) -> float | None:
    """A declared cutoff (Å) as one radius: the largest of a per-pair array
    (matscipy's Tersoff declares ``[R, S, ...]``), None if absent or invalid."""
    try:
        import numpy as np

        radii = np.asarray(value, dtype=float).ravel()
    except (TypeError, ValueError):
        return None
    radii = radii[np.isfinite(radii)] if radii.size else radii
    if not radii.size or value is None or isinstance(value, bool) or radii.max() <= 0:
        return None
    return float(radii.max())


def infer_tags(calc: Any, overrides: Mapping[str, Any] | None = None,
               declared_by_source: Mapping[str, Any] | None = None) -> Tags:
    """Tags of a calculator: implemented properties, declared attributes, overrides.

    ``overrides`` (e.g. from the command line) win over the calculator's own
    ``mlip_tags``, which win over its attributes (``species``, ``cutoff``,
    ``precision``), which win over ``declared_by_source`` (the same attributes
    declared on the factory or class the calculator came from) and inference.
    """
    props = frozenset(getattr(calc, "implemented_properties", ("energy", "forces")))
    values: dict[str, Any] = {"properties": props}
    values.update({k: v for k, v in (declared_by_source or {}).items() if v is not None})
    species = getattr(calc, "species", None)
    if species:
        values["species"] = tuple(species)
    cutoff = declared_cutoff(getattr(calc, "cutoff", None))
    if cutoff:
        values["cutoff"] = cutoff
    precision = getattr(calc, "precision", None)
    if precision in ("float64", "float32"):
        values["precision"] = precision
    declared = dict(getattr(calc, "mlip_tags", None) or {})
    declared.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(declared) - set(TAG_NAMES)
    if unknown:
        raise ValueError(f"unknown tags {sorted(unknown)}; known: {', '.join(TAG_NAMES)}")
    values.update(declared)
    if "species" in values:
        values["species"] = tuple(values["species"])
    if "properties" in values:
        values["properties"] = frozenset(values["properties"])
    return Tags(**values)
