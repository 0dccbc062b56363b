"""Quintic switching function (C2 cutoff).

Moved to :mod:`conformance.featurize.switching` (the suite's featurisation, which the reference models build
on); this module re-exports it so existing imports keep working.
"""

from conformance.featurize.switching import *  # noqa: F401,F403
from conformance.featurize.switching import __all__  # noqa: F401
