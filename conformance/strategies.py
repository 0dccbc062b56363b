"""Hypothesis strategies for symmetry operations, and a seeded worst-case search.

Checks draw their random rotations, permutations and translations from these
strategies through :func:`search`, which runs hypothesis deterministically
(seeded, no example database) and, when some example violates the tolerance,
shrinks it to a minimal one for the failure message. The number of model
calls is bounded: ``examples`` while generating, at most ``shrink_budget``
more while shrinking a failure.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from .result import Field
from .transforms import mirror_matrix, rotation_matrix

_unit = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)


@dataclass(frozen=True)
class Rotation:
    """A rotation about ``axis`` by ``angle_deg`` degrees, optionally followed by
    inversion (``improper=True``, det = -1)."""

    axis: tuple
    angle_deg: float
    improper: bool = False

    @property
    def matrix(self) -> np.ndarray:
        r = rotation_matrix(self.axis, math.radians(self.angle_deg))
        return -r if self.improper else r

    def __str__(self) -> str:
        axis = "[" + ", ".join(f"{a:.4g}" for a in self.axis) + "]"
        kind = "improper rotation (rotation then inversion)" if self.improper else "rotation"
        return f"{kind} axis={axis} angle={self.angle_deg:.4g}°"

    def code(self) -> str:
        m = "transforms.rotation_matrix({}, np.radians({!r}))".format(list(self.axis), self.angle_deg)
        return f"-{m}" if self.improper else m


@dataclass(frozen=True)
class Mirror:
    """Reflection through the plane with normal ``normal`` (det = -1)."""

    normal: tuple

    @property
    def matrix(self) -> np.ndarray:
        return mirror_matrix(self.normal)

    def __str__(self) -> str:
        return "mirror normal=[" + ", ".join(f"{a:.4g}" for a in self.normal) + "]"

    def code(self) -> str:
        return f"transforms.mirror_matrix({list(self.normal)})"


@dataclass(frozen=True)
class Inversion:
    """Inversion through the origin, r -> -r."""

    @property
    def matrix(self) -> np.ndarray:
        return -np.eye(3)

    def __str__(self) -> str:
        return "inversion"

    def code(self) -> str:
        return "transforms.INVERSION"


def axes():
    """Unit-ish 3-vectors (norm ≥ 0.2 before normalisation), shrinking to small integers."""
    return st.tuples(_unit, _unit, _unit).filter(lambda v: math.sqrt(sum(x * x for x in v)) >= 0.2)


def rotations(min_angle_deg: float = 5.0):
    """Proper rotations with angle in [min_angle, 180]° (never the identity)."""
    return st.builds(Rotation, axes(), st.floats(min_angle_deg, 180.0))


def improper_rotations(min_angle_deg: float = 5.0):
    """Inversion, mirrors and rotoinversions (all have det = -1)."""
    return st.one_of(
        st.just(Inversion()),
        st.builds(Mirror, axes()),
        st.builds(Rotation, axes(), st.floats(min_angle_deg, 180.0), st.just(True)),
    )


def permutations(numbers: Sequence[int], same_species: bool = True):
    """Non-identity permutations of atom indices.

    ``same_species=True`` maps each atom onto one of the same species (the
    structure is unchanged, only the order); otherwise the whole list is
    reordered, species travelling with their atoms.
    """
    numbers = np.asarray(numbers)
    n = len(numbers)
    if not same_species:
        return st.permutations(range(n)).filter(lambda p: list(p) != list(range(n))).map(tuple)
    groups = [np.flatnonzero(numbers == z).tolist() for z in np.unique(numbers)]
    groups = [g for g in groups if len(g) > 1]
    if not groups:
        raise ValueError("no species has two atoms: nothing to permute")

    def assemble(perms):
        order = list(range(n))
        for g, p in zip(groups, perms):
            for i, j in zip(g, p):
                order[i] = j
        return tuple(order)

    return st.tuples(*[st.permutations(g) for g in groups]).map(assemble).filter(
        lambda p: list(p) != list(range(n)))


def translations(max_length: float = 10.0):
    """Translation vectors (Å) with components in [-max_length, max_length]."""
    c = st.floats(-max_length, max_length, allow_nan=False, allow_infinity=False)
    return st.tuples(c, c, c).filter(lambda v: max(abs(x) for x in v) > 1e-3)


@dataclass
class SearchOutcome:
    """Result of :func:`search`.

    ``worst``: per field name, the largest error seen (Field); ``failure``: the
    shrunk failing example and its fields, or None when every example passed;
    ``examples_tried``: number of examples evaluated.
    """

    worst: dict
    failure: tuple[Any, list[Field]] | None
    examples_tried: int


def search(strategy, measure: Callable[[Any], list[Field]], seed: int, examples: int,
           shrink_budget: int = 25) -> SearchOutcome:
    """Try ``examples`` draws of ``strategy``; shrink the first violation found.

    ``measure(example)`` returns the list of Fields for that example (calling the
    model). Model errors propagate after the search stops.
    """
    worst: dict[str, Field] = {}
    state = {"calls": 0, "error": None, "failing": None}
    seen: dict[str, bool] = {}

    def violates(example) -> bool:
        key = repr(example)
        if key not in seen:
            seen[key] = _violates(example)
        return seen[key]

    def _violates(example) -> bool:
        if state["error"] is not None:
            return True
        limit = examples + (shrink_budget if state["failing"] is not None else 0)
        if state["calls"] >= limit:
            return False
        state["calls"] += 1
        try:
            fields = measure(example)
        except Exception as exc:  # stop the search, re-raise below
            state["error"] = exc
            return True
        for f in fields:
            if f.name not in worst or f.ratio > worst[f.name].ratio:
                worst[f.name] = f
        if any(not f.ok for f in fields):
            state["failing"] = (example, fields)  # shrinking only tries smaller ones
            return True
        return False

    conf = settings(max_examples=max(examples, 1), database=None, deadline=None,
                    phases=[Phase.generate, Phase.shrink], derandomize=False,
                    suppress_health_check=list(HealthCheck))
    try:
        find(strategy, violates, settings=conf, random=random.Random(seed))
    except NoSuchExample:
        pass
    if state["error"] is not None:
        raise state["error"]
    return SearchOutcome(worst, state["failing"], state["calls"])
