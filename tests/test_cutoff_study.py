"""The cutoff-error study (docs/studies/cutoff_error.py): its reference values, the key
numbers quoted in docs/studies/cutoff_error.md, and the plot."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

STUDY = Path(__file__).resolve().parents[1] / "docs" / "studies"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("cutoff_error", STUDY / "cutoff_error.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def result(study):
    return study.study()


def test_references_madelung_and_cohesive_energies(study, result):
    assert result["madelung"] == pytest.approx(1.747564594633, abs=1e-9)
    assert result["metal_cohesive"] == pytest.approx(-3.551, abs=1e-3)  # TB-SMA Cu, ~ expt. 3.49 eV
    assert result["ionic_reference"] == pytest.approx(-3.959, abs=1e-3)  # -7.92 eV per NaCl pair
    # the converged truncated sums agree with the Ewald reference
    assert study.ionic_energy(25.0, "damped")[0] == pytest.approx(result["ionic_reference"], abs=1e-8)
    assert study.metal_energy(20.0)[0] == pytest.approx(result["metal_cohesive"], abs=1e-11)
    # Born-Mayer prefactor puts the crystal in equilibrium at r0
    r = study.NACL_R0 * np.array([0.999, 1.001])
    e = [-result["madelung"] * study.COULOMB / (2 * x)
         + 3 * study.born_mayer_prefactor() * np.exp(-x / study.BORN_MAYER_RHO) for x in r]
    assert abs(e[1] - e[0]) < 1e-6


def test_metal_error_decays_exponentially(result):
    metal = dict(zip((5, 6, 8, 10, 12, 15, 20), result["table"]["metal (TB-SMA Cu)"]))
    assert metal[6] == pytest.approx(7.5e-3, rel=0.02)
    assert metal[8] == pytest.approx(4.7e-4, rel=0.02)
    assert metal[10] == pytest.approx(1.4e-5, rel=0.02)
    decay_length = 4.0 / np.log(metal[6] / metal[10])
    assert decay_length == pytest.approx(0.64, abs=0.01)
    assert result["cutoff_1meV"]["metal (TB-SMA Cu)"] == pytest.approx(7.7, abs=0.05)


def test_ionic_error_decays_much_more_slowly(result):
    table = result["table"]
    metal = np.array(table["metal (TB-SMA Cu)"])
    plain = np.array(table["NaCl, plain truncation"])
    neutral = np.array(table["NaCl, neutral (Wolf α=0)"])
    assert (plain > 5).all()                        # never converges
    assert (neutral > 0.3).all() and (neutral < 1).all()
    assert (neutral / metal)[1] == pytest.approx(128, rel=0.02)   # 6 Å
    assert (neutral / metal)[3] > 5e4                               # 10 Å
    assert result["cutoff_1meV"]["NaCl, neutral (Wolf α=0)"] is None
    assert result["cutoff_1meV"]["NaCl, plain truncation"] is None
    assert result["cutoff_1meV"]["NaCl, damped Wolf (α=0.2/Å)"] == pytest.approx(13.0, abs=0.05)
    at29 = result["errors"]["NaCl, neutral (Wolf α=0)"][result["rc"] >= 29.0].max()
    assert at29 == pytest.approx(0.18, abs=0.01)


def test_the_document_quotes_the_current_table(study, result):
    text = (STUDY / "cutoff_error.md").read_text(encoding="utf-8")
    assert study.markdown_table(result) in text
    assert (STUDY / "cutoff_error.png").stat().st_size > 10_000


def test_plot_is_written_with_the_agg_backend(study, result, tmp_path):
    out = study.plot(result, tmp_path / "err.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
