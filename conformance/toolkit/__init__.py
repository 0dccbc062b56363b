"""The measuring toolkit: structures, transforms and the instruments checks use.

Case builders (:mod:`.structures`), symmetry operations (:mod:`.transforms`),
sampled and shrunk transformations (:mod:`.strategies`), scans with refinement
(:mod:`.scans`), molecular dynamics (:mod:`.md`), relaxation (:mod:`.relax`)
and noise floors (:mod:`.noise`). Builds on :mod:`conformance.core` only.
"""
