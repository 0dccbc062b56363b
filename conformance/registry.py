"""The check registry: ``@check`` and the generator of (check, case) pairs.

A check is a function ``f(model, case, tol, rng) -> Verdict`` registered with
its family, the properties it needs, the case tags it applies to, the unit of
its measured value and a statement of how many model calls it makes. The same
registry feeds :func:`conformance.audit` (no pytest) and the pytest plugin.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from .structures import ANY, Case
from .tags import Tags

FAMILIES = ("symmetry", "conservation", "hygiene", "smoothness", "locality", "dynamics", "data")


@dataclass(frozen=True)
class CheckSpec:
    """A registered check.

    Attributes
    ----------
    name, family : str
    func : callable ``(model, case, tol, rng) -> Verdict``
    needs : frozenset of str
        Properties the model must implement (``energy``, ``forces``, ``stress``).
    cases : frozenset of str
        Case tags it applies to (``isolated``, ``periodic``, ``bulk``, ...);
        a case is used when it carries at least one of them.
    requires : callable ``Tags -> str | None``
        Extra condition on the model; returns a skip reason or None.
    calls : str
        Number of model calls, e.g. ``"1 + n_examples"``.
    unit : str
        Unit of the headline measured value.
    severity : str
        ``mandatory``, ``consistency`` or ``informational``
        (:data:`conformance.result.SEVERITIES`); a field may override it.
    """

    name: str
    family: str
    func: Callable
    needs: frozenset
    cases: frozenset
    requires: Callable[[Tags], str | None] | None = None
    calls: str = ""
    unit: str = ""
    severity: str = "mandatory"

    @property
    def doc(self) -> str:
        return inspect.getdoc(self.func) or ""

    @property
    def summary(self) -> str:
        return self.doc.split("\n\n")[0].replace("\n", " ")

    def applies_to(self, case: Case) -> bool:
        return bool(self.cases & case.tags)

    def skip_reason(self, tags: Tags) -> str | None:
        """Why this check cannot run on a model with these tags (or None)."""
        missing = self.needs - tags.properties
        if missing:
            return f"model does not implement {', '.join(sorted(missing))}"
        if self.requires is not None:
            return self.requires(tags)
        return None


REGISTRY: dict[str, CheckSpec] = {}


def check(family: str, needs: Iterable[str] = ("energy", "forces"), cases: Iterable[str] = ANY,
          requires: Callable[[Tags], str | None] | None = None, calls: str = "", unit: str = "",
          severity: str = "mandatory"):
    """Register a check function under its own name.

    Example
    -------
    >>> from conformance.registry import check
    >>> @check(family="symmetry", cases={"isolated"}, calls="2", unit="eV")
    ... def my_check(model, case, tol, rng):
    ...     '''Energy is unchanged by doing nothing.'''
    >>> from conformance.registry import REGISTRY
    >>> REGISTRY.pop("my_check").family
    'symmetry'
    """
    from .result import SEVERITIES

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {FAMILIES}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; known: {SEVERITIES}")

    def register(func):
        name = func.__name__
        if name in REGISTRY and REGISTRY[name].func is not func:
            raise ValueError(f"check {name!r} registered twice")
        REGISTRY[name] = CheckSpec(name, family, func, frozenset(needs), frozenset(cases),
                                   requires, calls, unit, severity)
        return func

    return register


def all_checks() -> dict[str, CheckSpec]:
    """Every registered check (imports the families first), ordered by family
    as in :data:`FAMILIES`, then by definition order."""
    import conformance.checks  # noqa: F401

    order = sorted(REGISTRY.values(), key=lambda c: FAMILIES.index(c.family))
    return {c.name: c for c in order}


def select(names: Sequence[str] | None = None) -> list[CheckSpec]:
    """Checks whose name or family is in ``names`` (all when None/empty).

    Raises ValueError naming unknown entries.
    """
    checks = all_checks()
    if not names:
        return list(checks.values())
    known = set(checks) | {c.family for c in checks.values()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown checks or families {unknown}; families: "
                         f"{', '.join(sorted({c.family for c in checks.values()}))}; "
                         f"checks: {', '.join(sorted(checks))}")
    wanted = set(names)
    return [c for c in checks.values() if c.name in wanted or c.family in wanted]


def generate(checks: Sequence[CheckSpec], cases: Sequence[Case]) -> list[tuple[CheckSpec, Case]]:
    """Every applicable (check, case) pair, in a stable order (check, then case)."""
    return [(c, case) for c in checks for case in cases if c.applies_to(case)]
