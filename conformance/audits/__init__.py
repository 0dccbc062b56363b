"""Data-set audits: leakage, influential outliers and sampling coverage.

Pure functions on lists of ``ase.Atoms`` (or precomputed descriptor arrays)
returning report objects with pandas DataFrames; the ``data`` check family
(:mod:`conformance.checks.data`) runs them on ``--mlip-train``/``--mlip-test``.

* :func:`mahalanobis_leakage` -- test structures that are (near-)copies of
  training structures (:mod:`.leakage`);
* :func:`influential_outliers` -- training structures with an outsized grouped
  Cook's distance in the linear reference fit, pruned and refitted
  (:mod:`.outliers`);
* :func:`sampling_coverage` -- cells of a configuration-sampling plan without
  training data, and test structures far from all training data (:mod:`.sampling`);
* :func:`cutoff_convergence` -- test error of the linear reference fit against
  its cutoff radius (:mod:`.cutoff`; optional in the ``data`` family);
* :func:`read_labelled` / :class:`DataError` -- reading and validating data
  files (:mod:`.data`);
* :func:`audit_data` -- the three audits on files of any size, read in partitions
  (:mod:`.stream`) and run as a Dask graph on a local cluster or a running scheduler
  (:mod:`.engine`; Cook's distance in two passes, :mod:`.influence`; exact and
  approximate nearest-neighbour indexes, :mod:`.neighbours`).
"""

from __future__ import annotations

_LAZY = {
    "DataError": "data", "read_labelled": "data", "check_labelled": "data",
    "structure_errors": "data", "labels": "data",
    "mahalanobis_leakage": "leakage", "LeakageReport": "leakage", "Whitener": "leakage",
    "structure_descriptors": "leakage",
    "influential_outliers": "outliers", "grouped_cooks_distance": "outliers",
    "OutlierReport": "outliers", "CooksDistance": "outliers",
    "sampling_coverage": "sampling", "CoverageReport": "sampling", "plan_cells": "sampling",
    "configuration_axes": "sampling",
    "cutoff_convergence": "cutoff", "CutoffReport": "cutoff",
    "audit_data": "engine", "DataAudit": "engine",
    "partitions": "stream", "read_partition": "stream", "Partition": "stream",
    "coverage_from_index": "sampling", "leakage_from_index": "leakage",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'conformance.audits' has no attribute {name!r}")
