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


def test_chgnet_native_batches_equal_one_at_a_time_evaluation():
    """adapters.batching on CHGNet: the same numbers in one batch as one by one."""
    import numpy as np
    from ase.build import bulk

    from adapters.batching import with_native_batching
    from conformance.core.model import Model

    import torch

    entry, _ = _entry("CHGNet-Si")
    # MACE's float64 calculator leaves torch's default dtype at float64 after its audits in
    # this process; CHGNet's layers are float32
    torch.set_default_dtype(torch.float32)
    model = Model(with_native_batching(entry.factory(), force=True))
    rng = np.random.default_rng(0)
    structures = [bulk("Si", "diamond", a=5.43, cubic=True) for _ in range(4)]
    for atoms in structures:
        atoms.rattle(0.05, rng=rng)
    many = model.evaluate_many(structures, ("energy", "forces", "stress"))
    assert model.n_calls == 4
    one = [model.evaluate(atoms, ("energy", "forces", "stress")) for atoms in structures]
    for x, y in zip(many, one):   # float32 model: within its round-off
        assert abs(x["energy"] - y["energy"]) < 1e-5 * abs(y["energy"])
        np.testing.assert_allclose(x["forces"], y["forces"], atol=1e-5)
        np.testing.assert_allclose(x["stress"], y["stress"], atol=1e-7)
