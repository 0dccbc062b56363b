"""The check registry: ``@check`` and the generator of (check, case) pairs.

A check is a function ``f(model, case, tol, rng) -> Verdict`` registered with
its family, the properties it needs, the case tags it applies to, the unit of
its measured value and a statement of how many model calls it makes. The same
registry feeds :func:`conformance.audit` (no pytest) and the pytest plugin.

Families are found, not imported by name: the suite's own are the modules of
the package :data:`BUILTIN_FAMILIES`; an installed package adds one through the
entry-point group :data:`ENTRY_POINT_GROUP` (the entry point's name is the
family, its value the module that registers the family's checks)::

    [project.entry-points."mlip_conformance.checks"]
    phonons = "mypkg.phonon_checks"
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Callable, Iterable, Sequence

from .cases import ANY, Case, validate_case_tags
from .tags import Tags

FAMILIES = ("symmetry", "conservation", "hygiene", "smoothness", "locality", "dynamics", "data",
            "regression")
#: The package whose modules are the suite's own families (imported by :func:`load_families`).
BUILTIN_FAMILIES = "conformance.checks"
#: Entry-point group of third-party check families (name: family, value: module).
ENTRY_POINT_GROUP = "mlip_conformance.checks"
#: Families added by installed packages, in the order they were loaded.
PLUGIN_FAMILIES: list[str] = []


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
        (:data:`conformance.core.result.SEVERITIES`); a field may override it.
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
    >>> from conformance.core.registry import check
    >>> @check(family="symmetry", cases={"isolated"}, calls="2", unit="eV")
    ... def my_check(model, case, tol, rng):
    ...     '''Energy is unchanged by doing nothing.'''
    >>> from conformance.core.registry import REGISTRY
    >>> REGISTRY.pop("my_check").family
    'symmetry'
    """
    from .result import SEVERITIES

    if family not in known_families():
        raise ValueError(f"unknown family {family!r}; known: {known_families()} (a new family is "
                         f"declared as an entry point of the group {ENTRY_POINT_GROUP!r})")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; known: {SEVERITIES}")

    def register(func):
        name = func.__name__
        if name in REGISTRY and REGISTRY[name].func is not func:
            raise ValueError(f"check {name!r} registered twice")
        REGISTRY[name] = CheckSpec(name, family, func, frozenset(needs), validate_case_tags(cases),
                                   requires, calls, unit, severity)
        return func

    return register


def known_families() -> tuple[str, ...]:
    """The suite's families, then those added by installed packages."""
    return FAMILIES + tuple(PLUGIN_FAMILIES)


def load_families() -> None:
    """Import the suite's families and every family of the entry-point group
    :data:`ENTRY_POINT_GROUP` (idempotent: imports happen once)."""
    importlib.import_module(BUILTIN_FAMILIES)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in known_families():
            PLUGIN_FAMILIES.append(point.name)
        try:
            point.load()
        except Exception as exc:
            raise ImportError(f"check family {point.name!r} (entry point {point.value!r} of "
                              f"{ENTRY_POINT_GROUP!r}) could not be imported: "
                              f"{type(exc).__name__}: {exc}") from exc


def all_checks() -> dict[str, CheckSpec]:
    """Every registered check (loads the families first), ordered by family as
    in :func:`known_families`, then by definition order."""
    load_families()
    families = known_families()
    order = sorted(REGISTRY.values(), key=lambda c: families.index(c.family))
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
