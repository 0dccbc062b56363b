"""Tolerances per precision, each with the reason for its size.

One table, keyed by name, holds a float64 and a float32 value and a written
reason. Check families add their rows with :func:`define` next to the check
that uses them; the README's tolerance table is printed from this registry
(``python -m conformance.core.tolerances``). Users override any value globally or
per check in ``[tool.mlip-conformance]``::

    [tool.mlip-conformance.tolerances]
    force_atol = 1e-6                      # every check
    [tool.mlip-conformance.tolerances.rotation_invariance]
    force_atol = 1e-5                      # one check
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

PRECISIONS = ("float64", "float32")


@dataclass(frozen=True)
class Tolerance:
    """A named tolerance with one value per precision and its reason."""

    name: str
    unit: str
    float64: float
    float32: float
    reason: str


TABLE: dict[str, Tolerance] = {}


def define(name: str, unit: str, float64: float, float32: float, reason: str) -> Tolerance:
    """Register a tolerance row (idempotent for identical rows)."""
    row = Tolerance(name, unit, float64, float32, reason)
    old = TABLE.get(name)
    if old is not None and old != row:
        raise ValueError(f"tolerance {name!r} defined twice with different values")
    TABLE[name] = row
    return row


# Rows shared by several families. Round-off model: float64 eps = 2.2e-16,
# float32 eps = 1.2e-7; a model sums O(10-100) neighbour terms per atom of
# O(1-10) eV or eV/Å, so honest round-off is ~1e-13 (float64) and ~1e-6
# (float32) in those units. Defaults sit ~1e4 (float64) and ~10 (float32)
# above that, so noise passes and any real symmetry break (>= 1e-6 relative)
# fails.
define("energy_atol", "eV/atom", 1e-9, 2e-5,
       "per-atom energy difference between structures that must have equal energy; "
       "round-off of a sum of ~100 terms of ~5 eV is ~1e-13 (float64) / ~1e-6 (float32); "
       "scaled by the number of atoms")
define("force_atol", "eV/Å", 1e-8, 2e-5,
       "absolute floor for force differences; float32 pair sums carry ~1e-6 eV/Å noise, "
       "a float32 model losing precision in absolute coordinates (1000 Å offset) errs by ~1e-4")
define("force_rtol", "1", 1e-8, 1e-5,
       "force difference relative to the largest force component of the case")
define("stress_atol", "eV/Å³", 1e-10, 1e-6,
       "absolute floor for stress differences (1e-10 eV/Å³ = 1.6e-5 MPa)")
define("stress_rtol", "1", 1e-8, 1e-5,
       "stress difference relative to the largest stress component of the case")


class Tolerances:
    """Tolerance values for one precision, with user overrides.

    Parameters
    ----------
    precision : {"float64", "float32"}
    overrides : mapping name -> value, applied to every check
    per_check : mapping check name -> (mapping name -> value)
    """

    def __init__(self, precision: str = "float64", overrides: Mapping[str, float] | None = None,
                 per_check: Mapping[str, Mapping[str, float]] | None = None, check: str | None = None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        self.overrides = dict(overrides or {})
        self.per_check = {k: dict(v) for k, v in (per_check or {}).items()}
        self.check = check
        for name in list(self.overrides) + [n for v in self.per_check.values() for n in v]:
            if name not in TABLE:
                raise KeyError(f"unknown tolerance {name!r}; known: {', '.join(sorted(TABLE))}")

    def for_check(self, check: str) -> "Tolerances":
        """The same tolerances as seen by ``check`` (per-check overrides applied)."""
        return Tolerances(self.precision, self.overrides, self.per_check, check)

    def __getitem__(self, name: str) -> float:
        if self.check is not None and name in self.per_check.get(self.check, {}):
            return float(self.per_check[self.check][name])
        if name in self.overrides:
            return float(self.overrides[name])
        try:
            row = TABLE[name]
        except KeyError:
            raise KeyError(f"unknown tolerance {name!r}") from None
        return float(getattr(row, self.precision))

    def as_dict(self) -> dict[str, float]:
        """Effective values of every tolerance (for the report)."""
        return {name: self[name] for name in sorted(TABLE)}

    def __repr__(self) -> str:
        return f"Tolerances({self.precision!r}, overrides={self.overrides}, per_check={self.per_check})"


def markdown_table() -> str:
    """The tolerance table as Markdown (for the README)."""
    from .registry import load_families

    load_families()  # the families define their rows

    lines = ["| name | unit | float64 | float32 | why |", "|---|---|---|---|---|"]
    for row in sorted(TABLE.values(), key=lambda r: r.name):
        lines.append(f"| `{row.name}` | {row.unit} | {row.float64:g} | {row.float32:g} | {row.reason} |")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    from conformance.core.tolerances import markdown_table as _table  # the registry's own module

    print(_table())
