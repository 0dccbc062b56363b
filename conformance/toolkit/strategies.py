"""Hypothesis strategies for symmetry operations, and a seeded worst-case search.

Checks draw their random rotations, permutations and translations from a
:class:`Space` through :func:`search`: a cheap seeded numpy draw while every
example passes, and, once one violates the tolerance, a deterministic
hypothesis search (seeded, no example database) over the same space that
shrinks the violation to a minimal example for the failure message. Model
calls are bounded: ``examples`` while sampling, at most ``shrink_budget`` more
while shrinking.
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

from ..core.result import Field
from .transforms import mirror_matrix, rotation_matrix, same_species_permutation

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


@dataclass(frozen=True)
class Space:
    """A space of symmetry operations: a hypothesis ``strategy`` (used to shrink
    a violation to a minimal example) and ``sample(rng)``, a cheap numpy draw
    from the same space (used while no violation is found)."""

    strategy: Any
    sample: Callable[[np.random.Generator], Any]


def axes():
    """Unit-ish 3-vectors (norm ≥ 0.2 before normalisation), shrinking to small integers."""
    return st.tuples(_unit, _unit, _unit).filter(lambda v: math.sqrt(sum(x * x for x in v)) >= 0.2)


def _sample_axis(rng) -> tuple:
    while True:
        v = rng.uniform(-1.0, 1.0, 3)
        if np.linalg.norm(v) >= 0.2:
            return tuple(float(x) for x in v)


def rotations(min_angle_deg: float = 5.0) -> Space:
    """Proper rotations with angle in [min_angle, 180]° (never the identity)."""
    return Space(st.builds(Rotation, axes(), st.floats(min_angle_deg, 180.0)),
                 lambda rng: Rotation(_sample_axis(rng), float(rng.uniform(min_angle_deg, 180.0))))


def improper_rotations(min_angle_deg: float = 5.0) -> Space:
    """Inversion, mirrors and rotoinversions (all have det = -1)."""
    def sample(rng):
        kind = int(rng.integers(3))
        if kind == 0:
            return Inversion()
        if kind == 1:
            return Mirror(_sample_axis(rng))
        return Rotation(_sample_axis(rng), float(rng.uniform(min_angle_deg, 180.0)), True)

    strategy = st.one_of(
        st.just(Inversion()),
        st.builds(Mirror, axes()),
        st.builds(Rotation, axes(), st.floats(min_angle_deg, 180.0), st.just(True)),
    )
    return Space(strategy, sample)


def permutations(numbers: Sequence[int], same_species: bool = True) -> Space:
    """Non-identity permutations of atom indices.

    ``same_species=True`` maps each atom onto one of the same species (the
    structure is unchanged, only the order); otherwise the whole list is
    reordered, species travelling with their atoms.
    """
    numbers = np.asarray(numbers)
    n = len(numbers)
    identity = list(range(n))
    if n < 2:
        raise ValueError("a single atom has no permutation")
    if not same_species:
        def sample_all(rng):
            while True:
                p = rng.permutation(n)
                if p.tolist() != identity:
                    return tuple(int(i) for i in p)

        return Space(st.permutations(range(n)).filter(lambda p: list(p) != identity).map(tuple),
                     sample_all)
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

    strategy = st.tuples(*[st.permutations(g) for g in groups]).map(assemble).filter(
        lambda p: list(p) != identity)
    return Space(strategy, lambda rng: tuple(int(i) for i in same_species_permutation(numbers, rng)))


def one_of(*spaces: Space) -> Space:
    """Union of spaces (sampled uniformly)."""
    return Space(st.one_of([s.strategy for s in spaces]),
                 lambda rng: spaces[int(rng.integers(len(spaces)))].sample(rng))


@dataclass(frozen=True)
class Translation:
    """A rigid translation by ``vector`` (Å), then optionally wrapping the atoms
    back into the cell (periodic directions only)."""

    vector: tuple
    wrap: bool = False

    def __str__(self) -> str:
        v = "[" + ", ".join(f"{x:.4g}" for x in self.vector) + "]"
        return f"translation by {v} Å" + (", atoms wrapped into the cell" if self.wrap else "")

    def __iter__(self):  # unpacks as (vector, wrap)
        return iter((self.vector, self.wrap))


def translations(max_length: float = 10.0, wrap: bool = False) -> Space:
    """Translations with vector components (Å) in [-max_length, max_length];
    ``wrap=True`` also tries wrapping the atoms into the cell."""
    c = st.floats(-max_length, max_length, allow_nan=False, allow_infinity=False)
    vectors = st.tuples(c, c, c).filter(lambda v: max(abs(x) for x in v) > 1e-3)
    flags = st.booleans() if wrap else st.just(False)

    def sample(rng):
        v = tuple(float(x) for x in rng.uniform(-max_length, max_length, 3))
        return Translation(v, bool(rng.integers(2)) if wrap else False)

    return Space(st.builds(Translation, vectors, flags), sample)


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


def search(space: Space, measure: Callable[[Any], list[Field]], seed: int, examples: int,
           shrink_budget: int = 25) -> SearchOutcome:
    """Try ``examples`` random draws from ``space``; shrink a violation.

    While every draw passes, examples come from ``space.sample`` (a numpy
    draw: no hypothesis overhead on the common, passing path). After the first
    violation, hypothesis searches ``space.strategy`` with at most
    ``shrink_budget`` more model calls and shrinks to a minimal failing
    example; if it finds none, the random violation is reported.

    ``measure(example)`` returns the list of Fields for that example (calling
    the model). Model errors propagate.
    """
    worst: dict[str, Field] = {}

    def record(fields):
        for f in fields:
            if f.name not in worst or f.ratio > worst[f.name].ratio:
                worst[f.name] = f
        return any(not f.ok for f in fields)

    rng = np.random.default_rng(seed)
    tried = 0
    failure = None
    for _ in range(examples):
        example = space.sample(rng)
        fields = measure(example)
        tried += 1
        if record(fields):
            failure = (example, fields)
            break
    if failure is None:
        return SearchOutcome(worst, None, tried)

    state = {"calls": 0, "error": None}
    seen: dict[str, bool] = {}
    failing_fields: dict[str, list] = {}

    def violates(example) -> bool:
        key = repr(example)
        if key not in seen:
            seen[key] = _violates(example, key)
        return seen[key]

    def _violates(example, key) -> bool:
        if state["error"] is not None:
            return True
        if state["calls"] >= shrink_budget:
            return False
        state["calls"] += 1
        try:
            fields = measure(example)
        except Exception as exc:  # stop the search, re-raise below
            state["error"] = exc
            return True
        if any(not f.ok for f in fields):
            failing_fields[key] = fields
            return True
        return False

    conf = settings(max_examples=shrink_budget, database=None, deadline=None,
                    phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    try:
        minimal = find(space.strategy, violates, settings=conf, random=random.Random(seed))
    except NoSuchExample:
        minimal = None
    if state["error"] is not None:
        raise state["error"]
    if minimal is not None and repr(minimal) in failing_fields:
        failure = (minimal, failing_fields[repr(minimal)])
    return SearchOutcome(worst, failure, tried + state["calls"])
