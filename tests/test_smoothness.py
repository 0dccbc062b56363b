"""Smoothness family: correct models pass, each cutoff defect is caught by the
check meant for it and told apart in the message; the scan helpers measure
what they claim."""

import re

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from conformance import audit
from conformance.toolkit import scans
from conformance.checks.smoothness import N_ANGLE, N_CROSS, N_DIMER, N_STRAIN, REFINE_CALLS
from conformance.core.model import Model
from conformance.core.tolerances import TABLE
from tests.conftest import failed_checks, statuses
from tests.zoo.base import SmoothPair
from tests.zoo.smoothness import ShiftedLJ, ShortRangeHole, TruncatedLJ

SMOOTHNESS = ["smoothness"]
CORRECT = [EMT(), LennardJones(sigma=2.3, epsilon=0.4, rc=6.0, smooth=True), SmoothPair()]
IDS = ["EMT", "LJ", "SmoothPair"]
EMT_LIST_CUTOFF = 5.876798323827276  # ASE EMT: rc + 0.5 Å with rc = β s0(Au) (√3 + 2)/2


@pytest.mark.parametrize("calc", CORRECT, ids=IDS)
def test_correct_models_pass_every_smoothness_item(calc):
    report = audit(calc, species=["Cu", "Au"], checks=SMOOTHNESS)
    # dimer (once per model), trimer, strain and crossing on both bulk cases, compression on
    # both bulk cases and the cluster
    assert sorted(report.df["check"]) == sorted(["dimer_curve", "trimer_angle"] + 2 * ["strain_scan"]
                                               + 2 * ["cutoff_crossing"] + 3 * ["compression_scan"])
    assert statuses(report) == {"passed"}, report
    dimer = report["dimer_curve[dimer_CuAu]"]
    assert set(dimer.details["pairs"]) == {"Cu-Cu", "Cu-Au", "Au-Au"}
    n_detect = 3 * (int((12.0 - 1.2) / 0.25) + 1 + 8) + 2
    assert dimer.n_calls <= 3 * (N_DIMER + REFINE_CALLS) + 2 + n_detect
    # the cutoff is detected once per model (dimer_curve runs first); later items reuse it
    bounds = {"trimer_angle": N_ANGLE + REFINE_CALLS, "strain_scan": 2 * (N_STRAIN + REFINE_CALLS),
              "cutoff_crossing": N_CROSS + REFINE_CALLS, "compression_scan": 45}
    for r in report.results:
        if r.check in bounds:
            assert r.n_calls <= bounds[r.check], r


def test_emt_step_at_its_list_cutoff_is_measured_and_below_the_tolerances():
    model = Model(EMT(), tags=Model(EMT()).tags.replace(species=("Cu", "Au")))
    est = scans.detect_cutoff(model, ["Cu", "Au"], 1e-9, 1e-8)
    assert est.radius == pytest.approx(EMT_LIST_CUTOFF, abs=2e-3)  # the hard truncation is found
    below = scans.dimer_curve(model, "Cu", "Cu", [EMT_LIST_CUTOFF - 1e-9, EMT_LIST_CUTOFF + 1e-9])
    step_e, step_f = abs(below.energy[0] - below.energy[1]), abs(below.force[0] - below.force[1])
    assert 1e-5 < step_e < 2e-5 and 2e-4 < step_f < 3e-4  # the values quoted in the tolerance reasons
    assert step_e < TABLE["smooth_energy_atol"].float64 / 5
    assert step_f < TABLE["smooth_force_atol"].float64 / 3


def test_truncated_energy_is_an_energy_jump_at_the_cutoff():
    report = audit(TruncatedLJ(), species=["Cu"], checks=SMOOTHNESS)
    assert failed_checks(report) == {"dimer_curve", "trimer_angle", "strain_scan", "cutoff_crossing"}
    r = report["dimer_curve[dimer_Cu2]"]
    assert r.message.startswith("energy jump = 0.00506 eV > tolerance")
    assert "energy jumps by +0.00506 eV at r = 6.000 Å (Cu-Cu dimer" in r.message
    assert "a discontinuity, not a steep wall" in r.message
    assert r.details["pairs"]["Cu-Cu"]["metrics"]["energy_jump_r"] == pytest.approx(6.0, abs=1e-3)
    # the end-to-end distance crosses 6 Å twice (θ = 130.8° and 229.2°): either is the worst
    assert re.search("energy jumps by [+-]0.00506 eV at θ = (130.76|229.24)°", report["trimer_angle[trimer_Cu3]"].message)
    crossing = report["cutoff_crossing[bulk_Cu_fcc]"]
    assert "energy jumps by +0.00506 eV at d = 6.0000 Å" in crossing.message
    strain = report["strain_scan[bulk_Cu_fcc]"].message
    for item in ("trimer_angle[trimer_Cu3]", "cutoff_crossing[bulk_Cu_fcc]", "strain_scan[bulk_Cu_fcc]"):
        assert report[item].status == "failed", item
    assert "energy jumps by +0.00506 eV at ε = " in strain and "energy jumps by +0.00506 eV at γ = " in strain


def test_shifted_energy_is_a_force_jump_not_an_energy_jump():
    report = audit(ShiftedLJ(), species=["Cu"], checks=SMOOTHNESS)
    assert failed_checks(report) == {"dimer_curve", "trimer_angle", "strain_scan", "cutoff_crossing"}
    r = report["dimer_curve[dimer_Cu2]"]
    # the floor is 1e-3 x the pair's largest pull (0.417 eV/Å), below smooth_force_atol
    assert r.message.startswith("force jump = 0.00504 eV/Å > tolerance 0.000417 eV/Å at r = 6.000 Å")
    assert "force jumps by +0.00504 eV/Å at r = 6.000 Å (Cu-Cu dimer) while the energy is continuous" in r.message
    assert "energy jumps" not in r.message
    energy_row = [line for line in r.message.splitlines() if line.strip().startswith("energy jump ")]
    assert energy_row and energy_row[0].rstrip().endswith("ok")
    for item in ("strain_scan[bulk_Cu_fcc]", "cutoff_crossing[bulk_Cu_fcc]", "trimer_angle[trimer_Cu3]"):
        assert "energy jumps" not in report[item].message
        assert "while the energy is continuous there" in report[item].message


def test_ase_lennard_jones_without_smoothing_is_caught_as_a_force_jump():
    r = audit(LennardJones(sigma=2.3, epsilon=0.4, rc=6.0), species=["Cu"],
              checks=["dimer_curve"])["dimer_curve[dimer_Cu2]"]
    assert r.status == "failed" and "force jumps by" in r.message and "energy jumps" not in r.message


@pytest.mark.parametrize("rc, jump", [(7.5, 1.3e-3), (6.0, 5.1e-3), (5.0, 1.5e-2)])
def test_energy_jumps_of_1e3_to_1e2_eV_fail(rc, jump):
    r = audit(TruncatedLJ(rc=rc), species=["Cu"], checks=["dimer_curve"])["dimer_curve[dimer_Cu2]"]
    metrics = r.details["pairs"]["Cu-Cu"]["metrics"]
    assert r.status == "failed" and "energy jumps by" in r.message
    assert abs(metrics["energy_jump_eV"]) == pytest.approx(jump, rel=0.05)
    assert metrics["energy_jump_r"] == pytest.approx(rc, abs=2e-3)


def test_short_range_hole_fails_the_repulsion_criterion_only():
    report = audit(ShortRangeHole(), species=["Cu"], checks=SMOOTHNESS)
    assert failed_checks(report) == {"dimer_curve", "compression_scan"}  # the hole, by both scans
    r = report["dimer_curve[dimer_Cu2]"]
    assert r.message.startswith("short-range hole depth = ")
    assert "attractive hole at short range: going inward from r = 1.6" in r.message
    assert "the Cu-Cu energy falls by 2.4" in r.message
    metrics = r.details["pairs"]["Cu-Cu"]["metrics"]
    assert metrics["well_r"] == pytest.approx(2.55, abs=0.05)  # the bond, not the hole, is the well
    assert metrics["spearman_repulsive"] < 0 and metrics["energy_minima"] == 2
    assert "energy jump" not in r.message.split("\n")[0]


def test_dimer_details_hold_curves_and_a_plot_with_the_cutoff():
    r = audit(SmoothPair(), species=["Cu"], checks=["dimer_curve"])["dimer_curve[dimer_Cu2]"]
    pair = r.details["pairs"]["Cu-Cu"]
    assert len(pair["r"]) == len(pair["energy"]) == len(pair["force"]) == N_DIMER
    assert r.details["cutoff"] == 5.0 and r.details["cutoff_source"] == "declared"
    (plot,) = r.details["plots"]
    assert plot["vlines"][0]["x"] == 5.0 and {s["label"] for s in plot["series"]} == {"energy (left axis)", "force (right axis)"}
    m = pair["metrics"]
    assert m["energy_minima"] == 1 and m["force_sign_flips"] == 1 and m["tortuosity"] == pytest.approx(1.0)
    assert m["spearman_repulsive"] == -1.0 and m["well_r"] == pytest.approx(2.55, abs=0.03)
    assert m["vanishes_beyond"] == pytest.approx(5.0, abs=0.03)


def test_detected_cutoff_is_reported_for_models_that_declare_none():
    r = audit(LennardJones(sigma=2.3, epsilon=0.4, rc=6.0, smooth=True), species=["Cu"],
              checks=["dimer_curve"])["dimer_curve[dimer_Cu2]"]
    assert r.details["cutoff_source"] == "detected"
    assert r.details["cutoff"] == pytest.approx(6.0, abs=2e-3)
    assert "effective cutoff 6.00" in r.message


# --------------------------------------------------------------------------- scan helpers

def test_jump_test_tells_a_jump_from_a_steep_wall_and_from_a_kink():
    x = np.linspace(0.0, 1.0, 201)
    wall = 50 * np.exp(-20 * x)                    # 1/e length 0.05 Å = 10 grid steps
    kink = np.where(x < 0.5012, 0.0, 0.3 * (x - 0.5012))
    jump = wall + np.where(x < 0.5012, 0.0, 1e-3)
    for curve, found in ((wall, False), (kink, False), (jump, True)):
        d, _ = scans.worst_jump(curve, 1e-4, x=x)
        assert d.found is found
    d, flagged = scans.worst_jump(jump, 1e-4, x=x)
    assert d.size == pytest.approx(1e-3, rel=0.05) and d.x_lo < 0.5012 < d.x_hi
    assert flagged.sum() == 1


def test_refinement_resolves_a_narrow_smooth_feature_and_confirms_a_jump():
    def fermi(x):
        return 1.0 / (1.0 + np.exp((x - 0.5037) / 0.003))  # EMT-like: narrower than the grid step

    x = np.linspace(0.0, 1.0, 101)
    calls = []

    def sample(v, step=0.0):
        calls.append(v)
        return {"y": fermi(v) + (step if v > 0.73 else 0.0)}

    coarse = scans.worst_jump(fermi(x), 1e-4)[0]
    assert coarse.found  # on the coarse grid it looks like a jump
    cont = scans.refined_jumps(sample, x, {"y": fermi(x)}, {"y": 1e-4})
    assert not cont.worst["y"].found and not cont.jumps.any() and not cont.steep["y"]
    assert 0 < cont.calls == len(calls) <= 3 * 3 * 13  # every suspected interval, <= 3 levels each
    y = fermi(x) + np.where(x > 0.73, 2e-3, 0.0)
    cont = scans.refined_jumps(lambda v: sample(v, 2e-3), x, {"y": y}, {"y": 1e-4})
    # a jump keeps its size on grids 8x, 64x and 512x finer: confirmed
    assert cont.worst["y"].found and cont.worst["y"].levels == 3 and cont.jumps.sum() == 1
    assert abs(cont.worst["y"].exponent) < 0.01
    assert cont.worst["y"].size == pytest.approx(2e-3, rel=1e-3) and cont.worst["y"].x_lo <= 0.73 < cont.worst["y"].x_hi


def test_a_steep_continuous_onset_is_reported_not_failed():
    # y = (x - x0)^0.57 beyond x0: continuous with an infinite slope (Tersoff's bond order
    # switching on, n = 0.787); flagged on every grid, but its size shrinks by 8^0.57 = 3.3
    x0 = 0.40123
    x = np.linspace(0.0, 1.0, 101)

    def onset(v):
        return 0.05 * np.clip(np.asarray(v) - x0, 0.0, None) ** 0.57

    cont = scans.refined_jumps(lambda v: {"y": onset(v)}, x, {"y": onset(x)}, {"y": 1e-5})
    assert scans.worst_jump(onset(x), 1e-5)[0].found  # the coarse test alone would fail it
    assert not cont.worst["y"].found and not cont.jumps.any()
    (steep,) = cont.steep["y"]
    assert steep.levels == 3 and steep.exponent == pytest.approx(0.57, abs=0.05)
    assert abs(steep.x_mid - x0) < 2 * (steep.x_hi - steep.x_lo)  # located within a sub-step (h/512)
    # a jump of the same size at the same place is confirmed
    cont = scans.refined_jumps(lambda v: {"y": onset(v) + 0.01 * (np.asarray(v) > x0)}, x,
                               {"y": onset(x) + 0.01 * (x > x0)}, {"y": 1e-5})
    assert cont.worst["y"].found and cont.jumps.sum() == 1 and not cont.steep["y"]


def test_suspicions_beyond_the_call_budget_are_unrefined_not_failed():
    x = np.linspace(0.0, 1.0, 101)
    steps = np.floor(x * 10) * 1e-2  # ten genuine jumps
    # a budget of 100 calls: an interval is refined while its 3 levels (39 calls) still fit
    cont = scans.refined_jumps(lambda v: {"y": np.floor(v * 10) * 1e-2}, x, {"y": steps}, {"y": 1e-4},
                               max_calls=100)
    assert cont.jumps.sum() == 2 and cont.calls == 78
    assert len(cont.unrefined) == 7  # the 10th jump lies in the last interval, which is not tested
    assert cont.worst["y"].found  # the two confirmed ones fail


def test_shape_metrics_of_a_morse_curve():
    r = np.linspace(1.0, 6.0, 200)
    x = np.exp(-1.3 * (r - 2.5))
    e = 0.4 * (x * x - 2 * x)
    f = 0.4 * 2 * 1.3 * (x * x - x)  # -dE/dr
    assert scans.count_minima(e, 1e-6) == 1
    assert scans.sign_flips(f, 1e-6) == 1
    assert scans.tortuosity(e) == pytest.approx(1.0)
    well = scans.main_well(r, e, 1e-6, 2.3)
    assert r[well] == pytest.approx(2.5, abs=0.03)
    assert scans.spearman(r[: well + 1], e[: well + 1]) == -1.0
    assert scans.repulsion_hole(e, well)[0] == 0.0
    d4, d2 = scans.fd_derivative(e, r[1] - r[0])
    assert np.abs(d4 + f[2:-2]).max() < 1e-4
    holed = e - 8 * np.exp(-(((r - 1.3) / 0.1) ** 2))
    depth, i, j = scans.repulsion_hole(holed, scans.main_well(r, holed, 1e-6, 2.3))
    assert depth > 1 and r[i] < r[j] < 2.0


def test_vanishing_radius_and_pair_bookkeeping():
    assert scans.species_pairs(["Au"]) == [("Au", "Au")]
    assert scans.vanishing_radius(np.arange(5.0), np.array([1, 1, 0, 1e-12, 0.0]), np.zeros(5), 1e-9, 1e-9) == 2.0
    assert scans.vanishing_radius(np.arange(3.0), np.ones(3), np.zeros(3), 1e-9, 1e-9) is None
    atoms = scans.dimer("Cu", "Au", 2.5)
    assert isinstance(atoms, Atoms) and atoms.get_distance(0, 1) == 2.5 and not atoms.pbc.any()


def test_analyse_dimer_is_a_pure_function_of_a_curve():
    from conformance.checks.smoothness import analyse_dimer
    from conformance.core.tolerances import Tolerances

    r = np.linspace(1.0, 6.0, 200)
    x = np.exp(-1.3 * (r - 2.5))
    e = np.where(r < 5.0, 0.4 * (x * x - 2 * x), 0.0)   # truncated Morse: jumps by 0.03 eV at 5 Å
    f = np.where(r < 5.0, 0.4 * 2 * 1.3 * (x * x - x), 0.0)
    curve = scans.DimerCurve(("Cu", "Cu"), r, e, f, -7.0)
    fields, notes, metrics = analyse_dimer(curve, scans.CutoffEstimate(5.0, "declared"), Tolerances("float64"))
    by_name = {fl.name: fl for fl in fields}
    assert not by_name["energy jump"].ok and by_name["short-range hole depth"].ok
    assert notes[0].startswith("energy jumps by +0.0301 eV at r = 5.0")
    assert "on the 0.025 Å scan grid" in notes[0]
    assert metrics["energy_minima"] == 1 and metrics["force_sign_flips"] == 1


def test_a_many_body_hole_under_compression_is_caught_where_the_dimer_scan_sees_none():
    from tests.zoo.smoothness import DensityHole

    report = audit(DensityHole(), species=["Cu"], checks=["compression_scan", "dimer_curve"],
                   structure_kinds=["dimer", "cluster", "bulk"])
    assert report["dimer_curve[dimer_Cu2]"].status == "passed"  # one neighbour never opens it
    assert report["compression_scan[cluster_Cu13]"].status == "passed"  # 6 neighbours: barely
    bulk = report["compression_scan[bulk_Cu_fcc]"]
    assert bulk.status == "failed" and bulk.measured == pytest.approx(1.91, abs=0.01) and bulk.n_calls == 45
    assert "short-range hole: compressing bulk_Cu_fcc uniformly from s = 0.762 to s = 0.713" in bulk.message
    assert "from conformance.checks.compression import compressed" in bulk.message  # reproducer
    ok = audit(SmoothPair(), species=["Cu"], checks=["compression_scan"], structure_kinds=["cluster", "bulk"])
    assert statuses(ok) == {"passed"}
    assert ok["compression_scan[bulk_Cu_fcc]"].details["wall_eV_per_atom"] == pytest.approx(21.36, abs=0.01)


def test_compression_catches_a_pair_hole_too():
    bulk = audit(ShortRangeHole(), species=["Cu"], checks=["compression_scan"],
                 structure_kinds=["bulk"])["compression_scan[bulk_Cu_fcc]"]
    assert bulk.status == "failed" and bulk.measured == pytest.approx(17.6, abs=0.1)


def test_a_steep_c2_switch_in_a_three_body_term_passes_and_its_hard_cut_twin_fails():
    # the switch of the angular term is 0.5 Å wide: on the 2.2° angle grid it spans ~4 points
    # and looks like a jump there; every suspected interval is refined, so it passes
    from tests.zoo.smoothness import SwitchedThreeBody

    ok = audit(SwitchedThreeBody(), species=["Cu"], checks=["trimer_angle"])["trimer_angle[trimer_Cu3]"]
    assert ok.status == "passed" and ok.details["refinement_calls"] > 0, ok.message
    hard = SwitchedThreeBody()
    hard.hard = True
    r = audit(hard, species=["Cu"], checks=["trimer_angle"])["trimer_angle[trimer_Cu3]"]
    assert r.status == "failed" and r.measured == pytest.approx(2.56, abs=0.01)
    assert "(end-to-end 3.300 Å)" in r.message and r.details["continuity_order"] == "none"
