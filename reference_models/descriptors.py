"""Atom-centred density-expansion descriptors with analytic derivatives.

Moved to :mod:`conformance.featurize.descriptors` (the suite's featurisation, which the reference models build
on); this module re-exports it so existing imports keep working.
"""

from conformance.featurize.descriptors import *  # noqa: F401,F403
from conformance.featurize.descriptors import __all__  # noqa: F401
from conformance.featurize.descriptors import (ATOM_CHUNK, CHUNK, _chunks,  # noqa: F401
                                                _scatter_matrix)
