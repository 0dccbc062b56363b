"""Fixed short-range repulsion.

Moved to :mod:`conformance.featurize.repulsion` (the suite's featurisation, which the reference models build
on); this module re-exports it so existing imports keep working.
"""

from conformance.featurize.repulsion import *  # noqa: F401,F403
from conformance.featurize.repulsion import __all__  # noqa: F401
