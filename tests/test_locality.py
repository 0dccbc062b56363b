"""Locality family: correct models pass, the leaking, non-extensive and
mean-field zoo models are caught and told apart, the control bites, and
long-range models get their range reported instead of a failure."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from conformance import audit
from conformance.checks.locality import gap_test, margin, sphere_from_crystal
from conformance.core.model import Model
from conformance.core.tolerances import Tolerances
from tests.conftest import failed_checks, statuses
from tests.zoo.base import SmoothPair
from tests.zoo.smoothness import LeakyCutoff, MeanField, NonExtensive

LOCALITY = ["locality"]


@pytest.mark.parametrize("calc", [EMT(), LennardJones(sigma=2.3, epsilon=0.4, rc=6.0, smooth=True),
                                  SmoothPair()], ids=["EMT", "LJ", "SmoothPair"])
def test_correct_models_pass_every_locality_item(calc):
    report = audit(calc, species=["Cu", "Au"], checks=LOCALITY)
    assert sorted(report.df["check"]) == ["extensivity"] * 2 + ["locality"] * 2
    assert statuses(report) == {"passed"}, report
    for case in ("bulk_Cu_fcc", "bulk_Au_fcc"):
        r = report[f"locality[{case}]"]
        assert r.details["control_dF"] > 1e-3  # the control moved the central force
        assert r.details["gap_max_dF"] < 1e-10 and r.details["dF_beyond_2R"] < 1e-10
    extensive = report["extensivity[slab_Cu_fcc111]"]
    assert extensive.details["E_two"] == pytest.approx(2 * extensive.details["E_one"], abs=1e-9)


def test_leaky_cutoff_fails_locality_with_the_reach_named():
    report = audit(LeakyCutoff(), species=["Cu"], checks=LOCALITY + ["dimer_curve"])
    assert failed_checks(report) == {"locality", "extensivity", "dimer_curve"}
    r = report["locality[bulk_Cu_fcc]"]
    assert "forces on the near fragment change by up to" in r.message
    assert "across a vacuum gap move: the model interacts beyond its cutoff 4.000 Å" in r.message
    assert "the energy of the central atom changes by" in r.message
    assert 4.3 <= r.details["gap_reach"] < 6.0  # felt from inside the true 6 Å range
    assert r.details["gap"] == pytest.approx(4.3, abs=1e-3)  # tight: r_c + m
    # a pair model's force range is r_c itself: nothing beyond 2 r_c is felt
    assert r.details["dF_beyond_2R"] == 0.0
    assert "has not vanished beyond the declared cutoff 4.000 Å" in report["dimer_curve[dimer_Cu2]"].message
    assert "interactions reach beyond the cutoff" in report["extensivity[cluster_Cu13]"].message


def test_non_extensive_energy_fails_extensivity_not_locality():
    report = audit(NonExtensive(), species=["Cu", "Au"], checks=LOCALITY)
    assert failed_checks(report) == {"extensivity"}
    r = report["extensivity[cluster_Au6Cu7]"]
    assert r.status == "failed"
    assert r.message.startswith("two copies: |ΔE| = 0.211 eV > tolerance")
    assert "the energy is not extensive" in r.message
    assert "forces change" not in r.message  # a constant moves no force
    assert "not extensive" in report["extensivity[slab_Cu_fcc111]"].message


def test_mean_field_term_is_caught_by_spectators_and_the_gap_test():
    """A global term fails extensivity (spectators) and locality's gap test (it crosses
    vacuum); with no receptive field declared, the response beyond 2 r_c in the bulk
    sphere is a finding (a message-passing model shows the same), not the failure."""
    report = audit(MeanField(), species=["Cu"], checks=LOCALITY)
    assert failed_checks(report) == {"extensivity", "locality"}
    r = report["extensivity[cluster_Cu13]"]
    rows = {line.split("  ")[1]: line for line in r.message.splitlines() if line.startswith("  two copies")
            or line.startswith("  spectators")}
    assert rows["two copies: |ΔE|"].endswith("ok") and rows["two copies: max |ΔF|"].endswith("ok")
    assert rows["spectators: max |ΔF|"].endswith("FAIL")
    assert "a global (mean-field) term" in r.message
    loc = report["locality[bulk_Cu_fcc]"]
    assert loc.message.startswith("max |ΔF| across the vacuum gap = 0.0476 eV/Å > tolerance")
    assert loc.findings[0].startswith("informational: |ΔF| central atom, atoms beyond 2R moved = 0.00311 eV/Å")
    assert "when only atoms more than 2R + m = 10.30 Å away move (r_c = 5.000 Å)" in loc.message
    assert "declare mlip_tags = {'receptive_field': layers × r_c}" in loc.message


def test_a_declared_receptive_field_is_what_the_range_is_judged_against():
    """Message passing (here: a model whose force range is 2 × 2 r_c, the pair energy of
    second neighbours' environments) passes with receptive_field = 2 r_c declared and
    reports a finding without it; declaring R = r_c makes the 2R response a failure."""
    from tests.zoo.locality import TwoHop

    undeclared = audit(TwoHop(), species=["Cu"], checks=["locality"])["locality[bulk_Cu_fcc]"]
    assert undeclared.status == "passed" and undeclared.findings
    declared = audit(TwoHop(mlip_receptive_field=2 * TwoHop().cutoff), species=["Cu"],
                     checks=["locality"])["locality[bulk_Cu_fcc]"]
    assert declared.status == "passed" and not declared.findings, declared.message
    assert declared.details["receptive_field_declared"] and declared.details["dF_beyond_2R"] < 1e-10
    too_small = audit(TwoHop(mlip_receptive_field=TwoHop().cutoff), species=["Cu"],
                      checks=["locality"])["locality[bulk_Cu_fcc]"]
    assert too_small.status == "failed" and "(receptive field R = 3 Å (declared))" in too_small.message


def test_a_control_too_weak_to_conclude_is_inconclusive_not_a_failure():
    """A model that feels nothing cannot be told from a local one: after the stronger
    controls (0.2 Å, four neighbours) the item is skipped as inconclusive, with numbers."""
    r = audit(SmoothPair(D=0.0), species=["Cu"], checks=["locality"])["locality[bulk_Cu_fcc]"]
    assert r.status == "skipped"
    assert r.message.startswith("inconclusive: the force on the central atom changed by only 0 eV/Å when "
                                "its 4 nearest neighbours moved by 0.2 Å")


def test_a_weak_response_gets_a_stronger_control_before_judging():
    """A soft float32 model (forces ~1e-3 of SmoothPair's, like MACE with random weights):
    the 0.05 Å control is too weak against 10 × the float32 tolerance, the 0.2 Å one decides."""
    r = audit(SmoothPair(D=3e-4), species=["Cu"], checks=["locality"],
              precision="float32")["locality[bulk_Cu_fcc]"]
    assert r.status == "passed", r.message
    assert "moved by 0.2 Å" in r.message and r.details["control_dF"] > 0


def test_long_range_model_reports_its_reach_instead_of_failing():
    class Global(MeanField):
        mlip_tags = {"strictly_local": False}

    report = audit(Global(), species=["Cu"], checks=LOCALITY)
    assert set(report.df.loc[report.df["check"] == "extensivity", "status"]) == {"skipped"}
    r = report["locality[bulk_Cu_fcc]"]
    assert r.status == "passed"
    assert "model tagged strictly_local=False: the force on the central atom responds to atoms out to" in r.message
    profile = r.details["profile"]
    assert len(profile) == 3 and all(d > 1e-8 for _, d in profile)  # felt in every shell
    assert "out to 11.3 Å (the edge of the probed sphere)" in r.message
    assert r.n_calls == 1 + len(profile)


def test_gap_test_geometry_is_tight_at_the_cutoff():
    atoms = bulk("Au", cubic=True).repeat((2, 2, 2))
    model = Model(SmoothPair())
    tol = Tolerances("float64")
    field, note, details = gap_test(model, atoms, 5.0, margin(5.0), tol, np.random.default_rng(0))
    assert details["gap"] == pytest.approx(5.0 + margin(5.0), abs=1e-3)
    assert field.ok and note == "" and model.n_calls == 2
    cluster, c = sphere_from_crystal(atoms, 7.0)
    d = np.linalg.norm(cluster.positions, axis=1)
    assert d[c] == 0.0 and d.max() <= 7.0 and not cluster.pbc.any()
