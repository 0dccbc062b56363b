"""Profiles: ``quick`` costs about half of ``standard`` on the static families and
still catches the broken models of the zoo that ``standard`` catches; ``standard``
is the documented audit; ``thorough`` measures more."""

import pytest
from ase.calculators.emt import EMT

from conformance import audit
from conformance.core.profiles import PROFILES
from tests.conftest import failed_checks
from tests.zoo import conservation, hygiene, smoothness, symmetry

STATIC = ["symmetry", "conservation", "hygiene", "smoothness", "locality"]
HYGIENE_KINDS = ["dimer", "cluster", "bulk"]

#: (broken model, species, checks, structure kinds, the checks that must fail): as their
#: own tests audit them under the standard profile (tests/test_<family>.py)
ZOO = [
    (symmetry.IndexDependent, ["Cu", "Au"], ["symmetry"], None, {"permutation_invariance"}),
    (symmetry.Anisotropic, ["Cu", "Au"], ["symmetry"], None, {"rotation_invariance"}),
    (symmetry.Chiral, ["Cu", "Au"], ["symmetry"], None, {"inversion_invariance"}),
    (symmetry.MinimumImage, ["Cu", "Au"], ["symmetry"], None, {"supercell_consistency"}),
    (symmetry.SignedVolume, ["Cu", "Au"], ["symmetry"], None, {"left_handed_cell"}),
    (conservation.ScaledForces, ["Cu", "Au"], ["conservation"], None, {"force_consistency"}),
    (conservation.WrongStressSign, ["Cu", "Au"], ["conservation"], None, {"stress_consistency"}),
    (conservation.RotationalField, ["Cu", "Au"], ["conservation"], None,
     {"net_torque", "force_consistency"}),
    (conservation.DirectForce, ["Cu", "Au"], ["conservation"], None, {"force_consistency"}),
    (hygiene.StaleCache, ["Cu"], ["hygiene"], HYGIENE_KINDS, {"stale_cache", "walk_history"}),
    (hygiene.VerletLastCall, ["Cu"], ["hygiene"], HYGIENE_KINDS, {"walk_history"}),
    (hygiene.MutatesInput, ["Cu"], ["hygiene"], HYGIENE_KINDS, {"input_untouched"}),
    (hygiene.SharedBuffer, ["Cu"], ["hygiene"], HYGIENE_KINDS, {"thread_safety"}),
    (hygiene.Leaky, ["Cu"], ["hygiene"], HYGIENE_KINDS, {"memory_growth"}),
    (smoothness.TruncatedLJ, ["Cu"], ["smoothness"], None,
     {"dimer_curve", "trimer_angle", "strain_scan", "cutoff_crossing"}),
    (smoothness.ShiftedLJ, ["Cu"], ["smoothness"], None,
     {"dimer_curve", "trimer_angle", "strain_scan", "cutoff_crossing"}),
    (smoothness.ShortRangeHole, ["Cu"], ["smoothness"], None, {"dimer_curve", "compression_scan"}),
    (smoothness.DensityHole, ["Cu"], ["smoothness"], None, {"compression_scan"}),
    (smoothness.LeakyCutoff, ["Cu"], ["locality", "dimer_curve"], None,
     {"locality", "extensivity", "dimer_curve"}),
    (smoothness.NonExtensive, ["Cu", "Au"], ["locality"], None, {"extensivity"}),
    (smoothness.MeanField, ["Cu"], ["locality"], None, {"extensivity", "locality"}),
]
#: one per family in the default run; all of them with -m slow
DEFAULT = {"Anisotropic", "ScaledForces", "VerletLastCall", "TruncatedLJ", "DensityHole"}


def _zoo_params():
    for cls, species, checks, kinds, expected in ZOO:
        marks = () if cls.__name__ in DEFAULT else (pytest.mark.slow,)
        yield pytest.param(cls, species, checks, kinds, expected, id=cls.__name__, marks=marks)


@pytest.mark.parametrize("cls, species, checks, kinds, expected", list(_zoo_params()))
def test_quick_catches_what_standard_catches(cls, species, checks, kinds, expected):
    options = {"structure_kinds": kinds} if kinds else {}
    report = audit(cls(), species=species, checks=checks, profile="quick", **options)
    assert failed_checks(report) == expected, report


def test_quick_static_audit_costs_about_half_and_thorough_measures_more():
    calls = {}
    for name in ("quick", "standard"):
        report = audit(EMT(), species=["Cu"], checks=STATIC, profile=name)
        assert report.passed, report
        calls[name] = report.metadata["model_calls"]
    # EMT, Cu: 850 against 1451 (the dimer scan keeps its 200 points: F = -dE/dr is judged by
    # finite differences, which EMT's steep cutoff function needs resolved)
    assert calls["quick"] <= 900 and calls["quick"] < 0.6 * calls["standard"]
    thorough = audit(EMT(), species=["Cu"], checks=["compression_scan", "rotation_invariance"],
                     structure_kinds=["bulk"], profile="thorough")
    by_check = {r.check: r.n_calls for r in thorough.results}
    assert by_check["compression_scan"] == PROFILES["thorough"].points(45) == 90
    assert thorough["rotation_invariance[bulk_Cu_fcc]"].details["examples_tried"] == 12


def test_an_unknown_profile_is_a_usage_error():
    from conformance.run.config import ConfigError, build_config

    with pytest.raises(ConfigError, match="profile must be one of quick, standard, thorough"):
        build_config({"profile": "fast"})


def test_many_species_get_a_covering_sample_of_pairs_linear_in_their_number():
    from tests.zoo.base import SmoothPair

    metals = ["Cu", "Ag", "Au", "Ni", "Pd", "Pt", "Al", "Pb", "Rh", "Ir", "Ca", "Sr"]   # 78 pairs
    r = audit(SmoothPair(), species=metals, checks=["dimer_curve"], structure_kinds=["dimer"],
              profile="quick")["dimer_curve[dimer_CuAg]"]
    scanned = set(r.details["pairs"])
    assert len(scanned) == 24 and r.status == "passed"                # 12 homonuclear + a 12-cycle
    assert {f"{s}-{s}" for s in metals} <= scanned
    partners = {s: sum(s in label.split("-") for label in scanned - {f"{s}-{s}"}) for s in metals}
    assert set(partners.values()) == {2}                               # each element meets two others
    assert "24 of the 78 species pairs scanned" in r.message and "(seed 0)" in r.message
    thorough = audit(SmoothPair(), species=metals[:4], checks=["dimer_curve"], structure_kinds=["dimer"],
                     profile="thorough")["dimer_curve[dimer_CuAg]"]
    assert len(thorough.details["pairs"]) == 10                       # 4 species: all pairs
