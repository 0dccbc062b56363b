"""The conformance suite as a pytest collection target.

``pytest --mlip-model=SPEC`` adds this file to the collected paths; the
plugin (:mod:`conformance.plugin.hooks`) turns it into one item per (check, case).
It holds no test functions itself. Explicit form::

    pytest --pyargs conformance.plugin.suite --mlip-model=ase:EMT --mlip-species=Cu
"""
