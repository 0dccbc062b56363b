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
    """Set of check names with a failed or error result."""
    return {r.check for r in report.results if not r.ok}
