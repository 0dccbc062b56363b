"""The torch part of the real-model corpus (optional extra, not in the default run).

    python -m pip install -e ".[test,models]"
    python -m pytest -m models tests/corpus      # tens of minutes on 2 cores

Every model ends CONFORMANT or with exactly its written expected findings; each
broken twin (the same model with one realistic defect) is caught by the family
that names the defect. Skips cleanly when the extra is not installed.
"""

import pytest

from conformance import audit
from tests.corpus import twins
from tests.corpus.torch_models import TORCH_CORPUS, available

pytestmark = [pytest.mark.models, pytest.mark.filterwarnings("ignore")]


def _entry(name):
    entry, packages, options = next(t for t in TORCH_CORPUS if t[0].name == name)
    if not available(*packages):
        pytest.skip(f"{name} needs {', '.join(packages)}: pip install -e '.[models]'")
    return entry, options


@pytest.mark.parametrize("name", [t[0].name for t in TORCH_CORPUS])
def test_torch_model_is_conformant_or_has_only_its_expected_findings(name):
    entry, options = _entry(name)
    report = audit(entry.factory(), species=list(entry.species), xfail=dict(entry.expected), **options)
    unexpected = [f"{r.check}[{r.case}] {r.outcome}: {r.message.splitlines()[0]}"
                  for r in report.results if not r.ok]
    assert not unexpected, "\n".join(unexpected)
    assert report.passed


#: torch model -> (twin wrapper, family that must catch it)
TORCH_TWINS = {
    "CHGNet-Si": (twins.Anisotropic, "symmetry"),
    "SevenNet-0-Si": (twins.FlippedStress, "conservation"),
    "ANI-1x-CHNO": (twins.NetForceBias, "conservation"),
    "MACE-random-f64-Cu": (twins.PositionsOnlyCache, "hygiene"),
    "MACE-random-f32-Cu": (twins.ScaledForces, "conservation"),
    "GFN2-xTB-CHNO": (twins.ScaledForces, "conservation"),
}


@pytest.mark.parametrize("name", list(TORCH_TWINS))
def test_torch_twin_is_caught_by_the_family_that_names_the_defect(name):
    entry, options = _entry(name)
    wrap, family = TORCH_TWINS[name]
    options = {k: v for k, v in options.items() if k != "checks"}
    report = audit(wrap(entry.factory()), species=list(entry.species), checks=[family], **options)
    failed = [r for r in report.results if r.status == "failed"]
    assert failed, f"{name}'s twin passed every {family} item"
    assert {r.family for r in failed} == {family}
