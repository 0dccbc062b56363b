"""Numbers with their units, as the report, the card and the terminal show them."""

from __future__ import annotations

import math


def fmt_value(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3g}"


def with_unit(x: float | None, unit: str) -> str:
    """``3.2e-08 eV``; no unit for dimensionless quantities."""
    value = fmt_value(x)
    return f"{value} {unit}" if unit and unit != "1" and value != "-" else value
