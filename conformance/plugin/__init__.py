"""pytest glue: the plugin's hooks (:mod:`.hooks`, the ``pytest11`` entry point)
and the collection target (:mod:`.suite`). The only layer that imports pytest's
hook machinery; everything it runs is in :mod:`conformance.run`.
"""
