"""The real-model acceptance corpus: every correct third-party potential ends
CONFORMANT or with exactly its written expected findings, and its broken twin is
caught by the family that names the defect.

A full audit of each model (every family, default options), as a user runs it.
"""

import pytest

from conformance import audit
from tests.corpus.models import CORPUS
from tests.corpus.twins import TWINS


@pytest.mark.filterwarnings("ignore::UserWarning")  # matscipy's Tersoff warns from numpy.where
@pytest.mark.parametrize("entry", CORPUS, ids=[m.name for m in CORPUS])
def test_correct_model_is_conformant_or_has_only_its_expected_findings(entry):
    report = audit(entry.factory(), species=list(entry.species), xfail=dict(entry.expected))
    unexpected = [f"{r.check}[{r.case}] {r.outcome}: {r.message.splitlines()[0]}"
                  for r in report.results if not r.ok]
    assert not unexpected, "\n".join(unexpected)
    assert report.passed and report.verdict().startswith("CONFORMANT")
    assert not report.metadata.get("checks_not_run"), report.verdict()  # every family ran
    counts = report.counts()
    assert counts["passed"] >= 0.8 * len(report), counts  # skips are the exception


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", list(TWINS), ids=list(TWINS))
def test_broken_twin_is_caught_by_the_family_that_names_the_defect(name):
    entry = next(m for m in CORPUS if m.name == name)
    make, family = TWINS[name]
    report = audit(make(), species=list(entry.species), checks=[family])
    failed = [r for r in report.results if r.status == "failed"]
    errors = [r for r in report.results if r.status == "error"]
    assert not errors, "\n".join(r.message for r in errors)
    assert failed, f"{name}'s twin passed every {family} item"
    assert {r.family for r in failed} == {family}
    assert all("rerun: pytest" in r.message or "reproducer" in r.message for r in failed)
