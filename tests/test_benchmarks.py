"""Smoke test of the asv benchmarks: they are discovered and the cheap ones run."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("asv") is None, reason="asv not installed")
def test_asv_discovers_and_checks_every_benchmark():
    out = subprocess.run(["asv", "check", "--python=same"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No problems found" in out.stdout


def test_cheap_benchmarks_run_in_process():
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench_checks import CheckFamilies
    from benchmarks.bench_md import VelocityVerletStep
    from benchmarks.bench_models import CostSplit, EnergyForces

    split = CostSplit()
    split.setup(108)
    split.time_neighbor_list(108)
    split.time_descriptors(108)
    ef = EnergyForces()
    ef.setup("linear", 108)
    ef.time_energy_forces("linear", 108)
    md = VelocityVerletStep()
    md.setup("emt", 108)
    assert 0 <= md.track_outside_calculator("emt", 108) < 100
    fam = CheckFamilies()
    fam.setup("symmetry")
    assert 50 < fam.track_calc_share("symmetry") <= 100
