"""Shared fixtures for the suite's own tests."""

import os

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

pytest_plugins = ["pytester"]


@pytest.fixture
def emt():
    from ase.calculators.emt import EMT

    return EMT()


def failed_checks(report):
    """Set of check names with a failed result; an error (a crashed check) is never a catch."""
    errors = [r for r in report.results if r.status == "error"]
    assert not errors, "\n".join(r.message for r in errors)
    return {r.check for r in report.results if r.status == "failed"}


def statuses(report) -> set:
    """Set of result statuses: {"passed"} when every item ran and passed (no skip)."""
    return set(report.df["status"])


def n_model_checks() -> int:
    """Number of registered checks that audit a model (not the data, not the regression family)."""
    from conformance.core.registry import all_checks

    return sum(c.family not in ("data", "regression") for c in all_checks().values())
