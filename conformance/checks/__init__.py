"""Check families. Importing this package registers every check.

Nothing here imports pytest: the checks are plain functions
``(model, case, ctx, rng) -> Verdict`` (see :mod:`conformance.registry`).
"""

from . import symmetry  # noqa: F401
