"""Which classes of structure a model can evaluate: isolated, partly periodic, periodic.

A model that raises on a whole class of structures (CHGNet and matscipy's
``Manybody`` on anything without a cell) would otherwise give one identical
error per item of that class. The session probes each class once, on the
smallest case of the class, before any check runs (≤ 3 model calls, plus one
more per class that needs a box):

* ``native``: evaluates as given;
* ``boxed``: raises as given, evaluates in a periodic vacuum box
  (:mod:`conformance.core.boxing`) — the model is then tagged ``periodic_only`` and
  every structure of the class is boxed;
* ``unsupported``: raises even in a box — the class's cases leave the run and
  the ``structure_support`` item is the one finding that names the class, the
  error and the declaration that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.boxing import CLASSES, structure_class
from ..core.cases import PSEUDO_KINDS
from ..core.model import MissingProperty, Model, ModelError


@dataclass(frozen=True)
class ClassSupport:
    """Outcome of probing one class on one case."""

    cls: str
    status: str          # native | boxed | unsupported
    case: str
    error: str = ""      # what the model raised as given (boxed, unsupported)
    boxed_error: str = ""  # what it raised in a box (unsupported)


def probe_support(model: Model, cases) -> dict[str, ClassSupport]:
    """Probe every class present among ``cases`` on its smallest case (energy and forces).

    A model declaring ``periodic_only`` is boxed without probing the non-periodic
    classes. Learns ``periodic_only`` on ``model`` when boxing is what works.
    """
    support: dict[str, ClassSupport] = {}
    for cls in CLASSES:
        members = [c for c in cases if c.kind not in PSEUDO_KINDS and structure_class(c.atoms) == cls]
        if not members:
            continue
        case = min(members, key=len)
        if cls in model.boxed_classes:  # declared periodic_only
            support[cls] = ClassSupport(cls, "boxed", case.name, model.boxing_reason or "declared")
            continue
        atoms = case.copy()
        try:
            model.evaluate(atoms, ("energy", "forces"), adapt=False)
            support[cls] = ClassSupport(cls, "native", case.name)
            continue
        except (ModelError, MissingProperty) as exc:
            error = str(exc)
            if exc.__cause__ is None:  # a timeout, NaN or wrong shape: the items report it
                support[cls] = ClassSupport(cls, "native", case.name)
                continue
        if cls == "periodic":
            support[cls] = ClassSupport(cls, "unsupported", case.name, error)
            continue
        try:
            model.evaluate(model.boxed(atoms), ("energy", "forces"), adapt=False)
        except (ModelError, MissingProperty) as exc:
            support[cls] = ClassSupport(cls, "unsupported", case.name, error, str(exc))
            continue
        model.learn_boxing(cls, error)
        support[cls] = ClassSupport(cls, "boxed", case.name, error)
    return support


def unsupported_kinds(support: dict[str, ClassSupport], cases) -> set[str]:
    """Case names whose class the model cannot evaluate at all, when another class
    works (a model that evaluates nothing is not missing a class: its items run
    and report their own errors)."""
    bad = {cls for cls, s in support.items() if s.status == "unsupported"}
    if len(bad) == len(support):
        return set()
    return {c.name for c in cases if c.kind not in PSEUDO_KINDS and structure_class(c.atoms) in bad}
