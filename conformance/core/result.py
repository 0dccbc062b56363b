"""The outcome of one check on one case.

A :class:`CheckResult` carries the measured violation (a number with units),
the tolerance it was held to, the verdict and a message a scientist can act on.
Checks *measure*; :func:`judge` turns a table of measured errors into a verdict.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("passed", "failed", "skipped", "error", "not run")
OUTCOMES = ("passed", "failed", "error", "xfailed", "xpassed", "skipped", "not run")
#: Severity of a check or of one measured field, as OpenKIM's test categories:
#: ``mandatory`` physics every potential must obey (symmetries, conservation,
#: continuity of E and F), ``consistency`` agreement a sound implementation has
#: (bit-identical repeats, declared receptive field, ...), ``informational``
#: measured and reported, never failed (continuity order, noise floor, range).
SEVERITIES = ("mandatory", "consistency", "informational")


@dataclass
class CheckResult:
    """Verdict of one check on one test case.

    Attributes
    ----------
    check, case, family : str
        Check name (``rotation_invariance``), case name (``bulk_Cu_fcc``) and
        check family (``symmetry``).
    status : str
        One of ``passed``, ``failed``, ``skipped``, ``error``, or ``not run``
        (selected, but the run ended before it: interrupted, stopped early;
        ``message`` says why).
    measured : float or None
        The measured violation in ``unit`` (for several fields: the field whose
        ratio measured/tolerance is largest).
    tolerance : float or None
        Tolerance the measured value was held to, same unit.
    unit : str
        Unit of ``measured`` and ``tolerance`` (``eV``, ``eV/Å``, ``eV/Å³``, ...).
    n_calls : int
        Number of model evaluations the check made.
    message : str
        What broke, by how much, and a reproducer; or why it was skipped.
    details : dict
        JSON-serialisable extras (per-field error table, curves for plots).
    quantity : str
        Name of the measured quantity (``max |ΔF|``, ``|drift| of E_tot``).
    severity : str
        The check's severity (:data:`SEVERITIES`).
    findings : list of str
        Fields beyond their reference value at a severity that does not fail the
        run (informational, or consistency with ``fail_on="mandatory"``): reported,
        not failed.
    xfail : str or None
        Reason, when the item is declared a known failure in the configuration.
    calc_seconds : float
        Time (s) spent inside the model's calculator during this item.
    """

    check: str
    case: str
    family: str
    status: str
    measured: float | None = None
    tolerance: float | None = None
    unit: str = ""
    n_calls: int = 0
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    quantity: str = ""
    xfail: str | None = None
    calc_seconds: float = 0.0
    severity: str = "mandatory"
    findings: list = field(default_factory=list)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    @property
    def outcome(self) -> str:
        """The status seen through known failures: ``xfailed`` (failed or error
        as declared), ``xpassed`` (declared but passed: the declaration is
        stale, which counts as a failure, like pytest's strict xfail), or the
        status."""
        if self.xfail:
            if self.status in ("failed", "error"):
                return "xfailed"
            if self.status == "passed":
                return "xpassed"
        return self.status

    @property
    def ok(self) -> bool:
        """True unless the check failed or errored (a declared known failure is ok)."""
        return self.outcome in ("passed", "skipped", "xfailed")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN/inf become None)."""
        d = dataclasses.asdict(self)
        for key in ("measured", "tolerance"):
            if d[key] is not None and not math.isfinite(d[key]):
                d[key] = None
        d["details"] = _jsonable(d["details"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CheckResult":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _jsonable(obj):
    """Convert numpy scalars/arrays nested in dicts/lists to plain Python."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


@dataclass(frozen=True)
class Field:
    """One measured error next to its tolerance, e.g. forces under rotation.

    ``error`` and ``tolerance`` share ``unit``; ``where`` says where the worst
    error occurred (e.g. ``atom 3``), for the failure message. ``severity``
    (one of :data:`SEVERITIES`) overrides the check's own for this field: an
    ``informational`` field beyond its tolerance is a finding, not a failure.
    """

    name: str
    error: float
    tolerance: float
    unit: str
    where: str = ""
    severity: str | None = None

    @property
    def ratio(self) -> float:
        if not math.isfinite(self.error):
            return math.inf
        if self.tolerance > 0:
            return self.error / self.tolerance
        return math.inf if self.error > 0 else 0.0  # 0/0 is a pass, not NaN

    @property
    def ok(self) -> bool:
        return math.isfinite(self.error) and self.error <= self.tolerance


@dataclass
class Verdict:
    """What a check returns: fields measured, plus context for the message.

    The runner adds check/case/family/n_calls and turns it into a
    :class:`CheckResult`.
    """

    fields: list[Field]
    what: str = ""
    reproducer: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def counts_at(severity: str, fail_on: str = "consistency") -> bool:
    """Whether a violation at ``severity`` fails the item when the run fails on
    ``fail_on`` and everything more severe (informational never fails)."""
    if severity == "informational":
        return False
    return SEVERITIES.index(severity) <= SEVERITIES.index(fail_on)


@dataclass
class Judgement:
    """What :func:`judge` makes of a verdict."""

    status: str
    measured: float | None
    tolerance: float | None
    unit: str
    message: str
    quantity: str
    findings: list


def judge(verdict: Verdict, severity: str = "mandatory", fail_on: str = "consistency") -> Judgement:
    """Apply tolerances at the check's ``severity``.

    A field beyond its tolerance fails the item when its severity (its own, else
    the check's) counts at ``fail_on`` (:func:`counts_at`); otherwise it is a
    *finding*, listed in the message and in ``findings``. The reported field is
    the failing one with the largest ratio error/tolerance, else the field
    closest to its tolerance among those that count.
    """
    if not verdict.fields:
        raise ValueError("a verdict needs at least one measured field")
    level = {id(f): (f.severity or severity) for f in verdict.fields}
    counting = [f for f in verdict.fields if counts_at(level[id(f)], fail_on)]
    failing = [f for f in counting if not f.ok]
    noted = [f for f in verdict.fields if not f.ok and f not in failing]
    worst = max(failing or counting or verdict.fields, key=lambda f: f.ratio)
    status = "failed" if failing else "passed"
    lines = []
    if failing:
        head = (f"{worst.name} = {_quantity(worst.error, worst.unit)} > tolerance "
                f"{_quantity(worst.tolerance, worst.unit)}")
        if worst.where:
            head += f" at {worst.where}"
        if verdict.what:
            head += f" for {verdict.what}"
        lines.append(head)
    else:
        lines.append(
            f"max {worst.name} {_quantity(worst.error, worst.unit)} <= "
            f"{_quantity(worst.tolerance, worst.unit)}"
            + (f" for {verdict.what}" if verdict.what else "")
        )
    findings = [f"{level[id(f)]}: {f.name} = {_quantity(f.error, f.unit)} beyond "
                f"{_quantity(f.tolerance, f.unit)}" + (f" at {f.where}" if f.where else "")
                for f in noted]
    lines.extend(f"{line} (reported, not failed)" for line in findings)
    if verdict.note:
        lines.append(verdict.note)
    if len(verdict.fields) > 1:
        lines.append(field_table(verdict.fields, level, fail_on))
    if failing and verdict.reproducer:
        lines.append("reproducer:\n" + verdict.reproducer)
    return Judgement(status, worst.error, worst.tolerance, worst.unit, "\n".join(lines), worst.name,
                     findings)


def _quantity(value: float, unit: str) -> str:
    return f"{value:.3g} {unit}" if unit and unit != "1" else f"{value:.3g}"


def field_table(fields: list[Field], level: dict | None = None, fail_on: str = "consistency") -> str:
    """Small fixed-width table: field, max error, tolerance, unit, ok / FAIL /
    NOTE (beyond tolerance at a severity that does not fail)."""
    rows = [("field", "max error", "tolerance", "unit", "")]
    for f in fields:
        sev = (level or {}).get(id(f), f.severity or "mandatory")
        mark = "ok" if f.ok else ("FAIL" if counts_at(sev, fail_on) else "NOTE")
        rows.append((f.name, f"{f.error:.3g}", f"{f.tolerance:.3g}", f.unit, mark))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
