"""The symmetry family's engine, in the spirit of e3nn's ``equivariance_error``.

A symmetry is declared as an :class:`Image`: the transformed structure and how
the reference outputs map onto it (:func:`conformance.toolkit.transforms.map_outputs`:
energy a scalar, forces per-atom vectors, stress a rank-2 tensor).
:class:`Equivariance` evaluates both, compares them with the tolerance table and
builds the :class:`Verdict` for one operation or for random operations from a
:class:`~conformance.toolkit.strategies.Space`. Transforms are computed in float64.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from ase import Atoms

from ..core.result import Verdict
from ..toolkit import strategies as strat
from ..toolkit import transforms as tf
from ..toolkit.noise import Noise, noise_floor
from ._compare import case_reproducer, compare, properties_for

COMPARE = "\n# evaluate both structures with calc and compare energy, mapped forces and stress"


class Image(NamedTuple):
    """A transformed structure ``atoms`` and how the outputs of ``reference``
    (default: the case) map onto it: ``matrix`` (3, 3), ``order`` and ``images``
    as in :func:`~conformance.toolkit.transforms.map_outputs`."""

    atoms: Atoms
    matrix: np.ndarray = tf.IDENTITY
    order: Sequence[int] | None = None
    images: int = 1
    reference: Atoms | None = None


def scaled_noise(noise: Noise, n: int) -> Noise:
    """The noise floor of an n-fold supercell: energy noise grows like n, forces stay."""
    return Noise(noise.energy * n, noise.forces, noise.stress, noise.measured, noise.resolution * n)


class Equivariance:
    """The engine on one case of a model (``Model``, ``Case``, ``CheckContext``):
    reference outputs (evaluated once, when first needed), noise floor, verdicts."""

    def __init__(self, model, case, ctx):
        self.model, self.case, self.ctx = model, case, ctx
        self.props = properties_for(model, case)
        self.atoms = case.copy()
        self.noise = noise_floor(model, case, self.props)

    @cached_property
    def ref(self) -> dict:
        """The model's outputs on the case (1 model call)."""
        return self.model.evaluate(self.atoms, self.props)

    def fields(self, image: Image, prefix: str = "") -> list:
        """Fields comparing the model on ``image.atoms`` with its mapped reference
        outputs (1 model call, 2 with a ``reference`` structure)."""
        base = self.ref if image.reference is None else self.model.evaluate(image.reference, self.props)
        expected = tf.map_outputs(base, image.matrix, image.order, image.images)
        return compare(expected, self.model.evaluate(image.atoms, self.props), self.ctx.tol, len(image.atoms),
                       prefix=prefix, noise=scaled_noise(self.noise, image.images))

    def reproducer(self, code: str) -> str:
        """Python rebuilding the case as ``atoms``, then ``code`` (building ``atoms2``)."""
        return case_reproducer(self.case, self.ctx, code + COMPARE)

    def judge(self, image: Image, what: str, code: str, explain: str = "") -> Verdict:
        """Verdict on one operation: ``what`` names it, ``code`` reproduces it,
        ``explain`` is the note when it fails."""
        fields = self.fields(image)
        return Verdict(fields, what=f"{what} of {self.case.name}", reproducer=self.reproducer(code),
                       note=explain if any(not f.ok for f in fields) else "")

    def search(self, rng: np.random.Generator, space: strat.Space, act: Callable[[Any, Atoms], Image],
               code: Callable[[Any], str], label: str, describe: Callable[[Any], str] = str,
               explain: str = "") -> Verdict:
        """Verdict on random operations from ``space`` (a violation shrunk to a minimal
        one): ``act(example, atoms)`` is an example's :class:`Image` of the case,
        ``code(example)`` Python reproducing it, ``describe(example)`` its name in
        a failure, ``label`` what was tried, ``explain`` the note of a failure."""
        outcome = strat.search(space, lambda example: self.fields(act(example, self.atoms)),
                               seed=int(rng.integers(2**32)), examples=self.ctx.examples)
        details = {"examples_tried": outcome.examples_tried, "noise_floor": self.noise.as_dict()}
        note = self.noise.describe() if self.noise.measured else ""
        if outcome.failure is None:
            return Verdict(list(outcome.worst.values()), note=note, details=details,
                           what=f"{outcome.examples_tried} {label} of {self.case.name}")
        example, fields = outcome.failure
        return Verdict(fields, what=f"{describe(example)} on {self.case.name}",
                       note="\n".join(filter(None, (explain, note))), reproducer=self.reproducer(code(example)),
                       details=dict(details, example=str(example)))
