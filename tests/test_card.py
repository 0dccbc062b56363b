"""The audit card: Markdown and a self-contained HTML file, rendered in a real browser."""

import re
import shutil
import subprocess

import numpy as np
import pytest
from ase.calculators.emt import EMT

from conformance import audit
from tests.zoo.symmetry import Anisotropic

DEMO_PLOT = {"title": "dimer Cu-Cu", "xlabel": "r (Å)", "ylabel": "E (eV)",
             "series": [{"x": [2.0, 3.0, 4.0, 5.0], "y": [1.0, -0.5, -0.1, 0.0], "label": "Cu-Cu"}],
             "vlines": [{"x": 4.5, "label": "cutoff"}]}


@pytest.fixture(scope="module")
def failing_report():
    report = audit(Anisotropic(), species=["Cu"], checks=["rotation_invariance", "large_offset"])
    report.results[0].details["plots"] = [DEMO_PLOT]
    return report


def test_html_card_is_self_contained_with_plots(failing_report, tmp_path):
    pytest.importorskip("matplotlib")
    text = failing_report.write(tmp_path / "card.html").read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", text), "external resource in the card"
    assert text.count("data:image/png;base64,") == 2  # overview + the dimer plot
    assert "NOT CONFORMANT: 7 failed — PARTIAL: 27 of 29 model checks not run (families conservation" in text
    assert "<h2>Findings</h2>" in text and "href='#rotation_invariance-bulk_Cu_fcc'" in text
    assert "rotation_invariance" in text and "max |ΔF| = " in text
    assert "versions" in text and "ase 3." in text


def test_markdown_card_lists_findings(failing_report):
    md = failing_report.to_markdown()
    assert "**NOT CONFORMANT: 7 failed — PARTIAL: 27 of 29 model checks not run (families conservation" in md
    assert "### rotation_invariance[bulk_Cu_fcc] — failed" in md
    assert "| symmetry | 7 | 7 | 0 | 0 | 0 | 0 |" in md
    assert "| force_atol | 1e-08 | eV/Å |" in md


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.browser
def test_html_card_renders_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium on this machine (.ci/run installs Debian's chromium)")
    report = audit(EMT(), species=["Cu"], checks=["large_offset"])
    report.results[0].details["plots"] = [DEMO_PLOT]
    card = report.write(tmp_path / "card.html")
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars"]
    dom = subprocess.run([browser, *flags, "--dump-dom", card.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    assert "CONFORMANT: 7 passed, 0 skipped" in dom and "large_offset" in dom
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1000,700", card.as_uri()],
                   capture_output=True, timeout=120, check=True)
    from matplotlib.image import imread

    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (700, 1000)
    assert pixels.std() > 0.05  # not a blank page
    # the green verdict badge (#1a7f37) is drawn near the top of the page
    green = np.all(np.abs(pixels[:200] - np.array([0x1a, 0x7f, 0x37]) / 255) < 0.03, axis=-1)
    assert green.sum() > 500
