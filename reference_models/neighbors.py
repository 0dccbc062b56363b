"""Neighbour lists from vesin.

Moved to :mod:`conformance.featurize.neighbors` (the suite's featurisation, which the reference models build
on); this module re-exports it so existing imports keep working.
"""

from conformance.featurize.neighbors import *  # noqa: F401,F403
from conformance.featurize.neighbors import __all__  # noqa: F401
