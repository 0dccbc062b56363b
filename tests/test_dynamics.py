"""Dynamics family: correct models survive MD, each MD-breaking zoo model is
caught by the check meant for it, with when and how in the message."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.io import read

from conformance import audit
from conformance.checks import dynamics
from conformance.run.config import RunConfig
from conformance.run.session import open_session
from tests.conftest import failed_checks, statuses
from tests.zoo.dynamics import (ForceBias, HardCutoff, NaNAfter, ScaledForces, ShortRangeHole,
                                StiffPair, ThinSkinVerletLastCall, WallHole)
from tests.zoo.faulty import NoStress

DYNAMICS = ["dynamics"]
SHORT = 60  # steps per run in the fast tests (NVE: 60 at dt and 120 at dt/2)


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(tmp_path, monkeypatch):
    """Trajectories of failed runs go to ./mlip-conformance-artifacts: keep them out of the repo."""
    monkeypatch.chdir(tmp_path)


class StiffNoStress(StiffPair):
    """A correct model without stress (molecule-style calculator)."""

    implemented_properties = ["energy", "free_energy", "forces"]


@pytest.mark.parametrize("calc, species", [(EMT(), ["Cu", "Au"]), (EMT(), ["Cu"]), (StiffPair(), ["Cu"])],
                         ids=["EMT-CuAu", "EMT-Cu", "StiffPair"])
def test_correct_models_pass_every_dynamics_item(calc, species):
    report = audit(calc, species=species, checks=DYNAMICS, md_steps=SHORT)
    n_alloy = len(species) > 1
    assert len(report) == (3 + 3 + 4 if n_alloy else 2 + 2 + 2)
    assert statuses(report) == {"passed"}, report
    df = report.df.set_index(["check", "case"])
    assert (df.loc["momentum_conservation", "measured"] < 1e-12).all()
    # NVE at dt/2 shrinks the fluctuation ~4x (velocity Verlet, smooth conservative model)
    for r in report.results:
        if r.check == "nve_energy_drift":
            assert 3.5 < r.details["sigma_shrink_factor"] < 4.5, r.message
    assert not Path("mlip-conformance-artifacts").exists()  # nothing failed, nothing written


def test_models_without_stress_run_every_check():
    report = audit(NoStress(), species=["Cu"], checks=["nve_energy_drift", "momentum_conservation"],
                   md_steps=SHORT, structure_kinds=["bulk"])
    hot = audit(StiffNoStress(), species=["Cu"], checks=["hot_nvt_stability"], md_steps=SHORT,
                structure_kinds=["bulk"])
    assert report.passed and hot.passed, (report, hot)
    assert len(report) == 2 and len(hot) == 1


@pytest.mark.slow
def test_emt_default_lengths_pass_and_report_the_numbers():
    report = audit(EMT(), species=["Cu", "Au"], checks=DYNAMICS)
    assert statuses(report) == {"passed"}, report
    r = report["nve_energy_drift[bulk_Cu_fcc]"]
    assert r.details["dt_fs"] == pytest.approx(3.63, abs=0.01)  # T_min / 30 (was 5 fs)
    assert abs(r.details["drift_meV_per_atom_ps"]["dt"]) < 0.05
    assert 3.8 < r.details["sigma_shrink_factor"] < 4.2
    assert r.details["fluctuation_ratio"]["dt"] < 0.02


def test_hole_at_short_range_is_a_collapse_at_high_temperature_only():
    hot = audit(ShortRangeHole(), species=["Cu"], checks=["hot_nvt_stability"], md_steps=200,
                structure_kinds=["bulk"])
    r = hot["hot_nvt_stability[bulk_Cu_fcc]"]
    assert r.status == "failed"
    assert "collapse" in r.message
    assert re.search(r"at step \d+ \(t = [\d.]+ fs\)", r.message)
    assert "stopped at step" in r.message and "Langevin NVT at 2037 K" in r.message
    assert r.details["event"]["kind"] == "collapse (short-range hole)"
    assert r.details["event"]["step"] < 200
    # the flat -3 eV hole: a pair at its edge must climb 3.1 eV to get back to the bond
    assert re.match(r"Cu-Cu dimer trap inside the wall = 3.\d+ eV > tolerance 0.01 eV at r = 1.\d+-2.56 Å", r.message)
    assert "collapse into a short-range hole: the Cu-Cu dimer energy has a minimum of -3 eV" in r.message
    # the bond length is the well nearest the crystal's bond, not the hole at short range
    bond = r.details["dimer_bond_length_A"]["Cu-Cu"]
    assert 2.3 < bond < 2.8
    path = re.search(r"trajectory: (\S+\.extxyz)", r.message).group(1)
    frames = read(path, ":")
    assert frames[-1].info["step"] == r.details["event"]["step"]
    # control: at 300 K the hole is never visited
    cold = audit(ShortRangeHole(), species=["Cu"], checks=["nve_energy_drift", "momentum_conservation"],
                 md_steps=SHORT, structure_kinds=["bulk"])
    assert cold.passed, cold


def test_hole_inside_the_repulsive_wall_is_named_when_a_hot_run_falls_into_it():
    """WallHole is StiffPair from 2.2 Å outwards, with a second minimum of -6.2 eV at 1.86 Å behind
    a 0.54 eV barrier. At 1.5 Tm a pair crosses within 160 fs; the stiff inner wall of the hole
    then gives |F| = 61 eV/Å, which alone would read as a 'force blow-up': the dimer scan between
    the closest approach and the bond names the hole instead."""
    r = audit(WallHole(), species=["Cu"], checks=["hot_nvt_stability"],
              structure_kinds=["bulk"])["hot_nvt_stability[bulk_Cu_fcc]"]
    assert r.status == "failed" and r.details["event"]["kind"] == "collapse (short-range hole)"
    assert r.message.startswith("Cu-Cu dimer trap inside the wall = 6.68 eV > tolerance 0.01 eV at r = 1.78-2.56 Å "
                                "(closest approach: atoms 21 and 30 at step 72 (t = 158.6 fs))"), r.message
    assert ("collapse into a short-range hole: the Cu-Cu dimer energy has a minimum of -6.19 eV at 1.85 Å "
            "(0.72 × the bond, inside the repulsive wall) behind a 6.68 eV rise towards the bond") in r.message
    assert "force blow-up: |F| = 60.9 eV/Å on atom 30 (Cu) at step 72" in r.message
    assert r.n_calls == 41 + 16 + 73 + 5  # dimer scan, stiffest mode, steps 0-72, fresh frames
    # the correct StiffPair it is built on: no trap, and cold MD never reaches the hole
    assert audit(StiffPair(), species=["Cu"], checks=["hot_nvt_stability"], md_steps=SHORT,
                 structure_kinds=["bulk"]).passed
    cold = audit(WallHole(), species=["Cu"], checks=["nve_energy_drift"], md_steps=SHORT, structure_kinds=["bulk"])
    assert cold.passed, cold


def test_wall_trap_measures_the_climb_out_of_a_hole():
    r = np.linspace(1.0, 2.5, 16)
    wall = np.exp(-3 * (r - 2.5))  # falls monotonically to the bond at 2.5 Å
    assert dynamics.wall_trap(r, wall, 1.0, 2.5) == (0.0, 0)
    holed = wall - 8 * np.exp(-((r - 1.6) / 0.15) ** 2)
    depth, k = dynamics.wall_trap(r, holed, 1.0, 2.5)
    brute = max(holed[m:].max() - holed[m] for m in range(len(r)))
    assert r[k] == pytest.approx(1.7) and depth == pytest.approx(brute)
    assert depth == pytest.approx(0.920, abs=1e-3)
    assert dynamics.wall_trap(r, holed, 1.9, 2.5)[0] == 0.0  # the run never got inside the barrier


def test_discontinuous_cutoff_is_caught_by_nve_as_energy_jumps():
    report = audit(HardCutoff(), species=["Cu"], checks=["nve_energy_drift", "momentum_conservation"],
                   md_steps=SHORT, structure_kinds=["bulk"])
    assert "nve_energy_drift" in failed_checks(report)
    assert report["momentum_conservation[bulk_Cu_fcc]"].status == "passed"
    r = report["nve_energy_drift[bulk_Cu_fcc]"]
    assert r.status == "failed"
    assert "E_tot jumps by up to" in r.message
    assert "the energy is discontinuous along the trajectory" in r.message
    assert r.details["sigma_shrink_factor"] < 2  # not the 4x of integration error
    assert "trajectory (dt = 5 fs): " in r.message


def test_scaled_forces_are_diagnosed_as_non_conservative():
    report = audit(ScaledForces(), species=["Cu"], checks=["nve_energy_drift", "momentum_conservation"],
                   md_steps=SHORT, structure_kinds=["bulk", "cluster"])
    assert failed_checks(report) == {"nve_energy_drift"}  # the forces still sum to zero
    for case in ("bulk_Cu_fcc", "cluster_Cu13"):
        r = report[f"nve_energy_drift[{case}]"]
        assert r.status == "failed"
        match = re.search(r"the forces act like (\d\.\d+) × \(-∇E\)", r.message)
        assert match and float(match.group(1)) == pytest.approx(1.1, abs=0.002), r.message
        assert "not the gradient of the reported energy" in r.message


def test_force_bias_is_caught_by_momentum_and_named_in_nve():
    report = audit(ForceBias(), species=["Cu"], checks=["nve_energy_drift", "momentum_conservation"],
                   md_steps=SHORT, structure_kinds=["bulk", "cluster"])
    assert failed_checks(report) == {"nve_energy_drift", "momentum_conservation"}
    r = report["momentum_conservation[bulk_Cu_fcc]"]
    assert r.status == "failed"
    assert r.message.startswith("|ΔP| / Σ|p_i| = ")
    # 32 atoms x bias (0.02, -0.01, 0.005) eV/Å
    assert "mean net force [0.64, -0.32, 0.16] eV/Å" in r.message
    assert "Newton's third law" in r.message
    assert "total momentum is not conserved" in report["nve_energy_drift[bulk_Cu_fcc]"].message
    cluster = report["momentum_conservation[cluster_Cu13]"]
    assert "|ΔL| / Σ|r_i||p_i|" in cluster.message  # angular momentum is followed on clusters


def test_history_along_the_run_is_seen_by_comparing_frames_with_fresh_evaluations():
    """MD drives one calculator instance without reset(), as users do; 5 frames of the run are
    evaluated afresh. A Verlet list with the wrong rebuild test and a 0.05 Å skin misses 4th-shell
    pairs that 300 K vibrations bring inside its 5 Å cutoff."""
    from tests.zoo.hygiene import VerletList

    class ThinSkinVerletList(VerletList):
        skin = 0.05

    report = audit(ThinSkinVerletLastCall(), species=["Cu"], checks=["nve_energy_drift"], md_steps=SHORT,
                   structure_kinds=["bulk"])
    r = report.results[0]
    assert r.status == "failed"
    match = re.match(r"fresh vs run: max \|ΔF\| = (\S+) eV/Å > tolerance \S+ eV/Å at step (\d+) for NVE", r.message)
    assert match and 0.01 < float(match.group(1)) < 0.1, r.message
    assert "the calculator carries history from step to step" in r.message
    assert r.details["drift_meV_per_atom_ps"]["dt"] < 1  # conservative all the same: drift cannot see it
    assert r.n_calls == 16 + 3 * SHORT + 2 + 5  # stiffest mode, the two runs, 5 fresh frames
    correct = audit(ThinSkinVerletList(), species=["Cu"], checks=["nve_energy_drift"], md_steps=SHORT,
                    structure_kinds=["bulk"])
    assert correct.passed, correct


def test_nan_mid_run_is_an_error_naming_the_step():
    model = NaNAfter()
    model.after = 41  # the session's probe of the periodic class takes the first call
    report = audit(model, species=["Cu"], checks=["nve_energy_drift"], md_steps=SHORT,
                   structure_kinds=["bulk"])
    r = report["nve_energy_drift[bulk_Cu_fcc]"]
    assert r.status == "error"
    assert "non-finite forces" in r.message
    # NaN from the check's 41st call: 16 calls estimate the stiffest mode, then steps 0-23 are fine
    assert re.search(r"at step 24 \(t = [\d.]+ fs\) of NVE velocity Verlet", r.message), r.message
    assert r.n_calls == 41
    path = re.search(r"trajectory up to the failure: (\S+\.extxyz)", r.message).group(1)
    assert read(path, ":")[-1].info["step"] == 23


def test_trace_and_plots_are_bounded_and_serialisable():
    report = audit(EMT(), species=["Cu"], checks=DYNAMICS, md_steps=250, md_timestep=2.0,
                   structure_kinds=["cluster"])
    assert statuses(report) == {"passed"}, report
    nve = report["nve_energy_drift[cluster_Cu13]"].details
    trace = nve["trace"]
    assert set(trace) >= {"time_fs", "etot_eV", "epot_eV", "ekin_eV", "temperature_K"}
    assert len(trace["time_fs"]) <= 200 and trace["time_fs"][-1] == pytest.approx(250 * 2.0)
    assert nve["trace_half_dt"]["time_fs"][-1] == pytest.approx(500 * 1.0)
    assert np.allclose(np.asarray(trace["etot_eV"]), np.asarray(trace["epot_eV"]) + np.asarray(trace["ekin_eV"]))
    for r in report.results:
        assert r.details["plots"], r.check
        json.dumps(r.to_dict())  # JSON-ready for the report


def test_options_temperature_and_report_dir(tmp_path):
    config = RunConfig(species=("Cu",), checks=("hot_nvt_stability",), md_steps=200, md_temperature=3000.0,
                       structure_kinds=("bulk",))
    session = open_session(config, ShortRangeHole(), report_dir=tmp_path / "out")
    report = session.run()
    r = report["hot_nvt_stability[bulk_Cu_fcc]"]
    assert r.details["temperature_K"] == 3000.0 and "Langevin NVT at 3000 K" in r.message
    assert r.status == "failed"
    assert (tmp_path / "out" / "ShortRangeHole-hot_nvt_stability-bulk_Cu_fcc.extxyz").is_file()


def test_same_seed_same_trajectory():
    a = audit(EMT(), species=["Cu"], checks=["hot_nvt_stability"], md_steps=40, structure_kinds=["cluster"])
    b = audit(EMT(), species=["Cu"], checks=["hot_nvt_stability"], md_steps=40, structure_kinds=["cluster"])
    c = audit(EMT(), species=["Cu"], checks=["hot_nvt_stability"], md_steps=40, structure_kinds=["cluster"],
              seed=1)
    ta, tb, tc = (x.results[0].details["trace"]["etot_eV"] for x in (a, b, c))
    assert np.array_equal(ta, tb) and not np.array_equal(ta, tc)


class _Ctx:
    def __init__(self, **options):
        from conformance.core.profiles import PROFILES

        self.config = RunConfig(**options)
        self.profile = PROFILES[self.config.profile]


def test_lengths_and_time_steps():
    from ase import Atoms

    assert dynamics.steps_for(_Ctx(), "hot") == dynamics.DEFAULT_STEPS["hot"]
    assert dynamics.steps_for(_Ctx(md_long=True), "nve") == 20 * dynamics.DEFAULT_STEPS["nve"]
    assert dynamics.steps_for(_Ctx(md_long=True, md_steps=7), "nve") == 7
    assert dynamics.steps_for(_Ctx(profile="quick"), "hot") == dynamics.DEFAULT_STEPS["hot"] // 2
    assert dynamics.steps_for(_Ctx(profile="thorough"), "nve") == 20 * dynamics.DEFAULT_STEPS["nve"]
    cu = Atoms("Cu2")
    assert dynamics.timestep_for(_Ctx(), cu) == pytest.approx(5.0, rel=1e-3)
    assert dynamics.timestep_for(_Ctx(), cu, 2037.0) == pytest.approx(2.5, rel=1e-3)  # at most halved
    assert dynamics.timestep_for(_Ctx(), cu, 600.0) == pytest.approx(5.0 * np.sqrt(0.5), rel=1e-3)
    assert dynamics.timestep_for(_Ctx(md_timestep=1.0), cu, 2037.0) == 1.0


def test_time_step_follows_the_stiffest_mode_capped_by_the_mass_based_default():
    from ase.calculators.lj import LennardJones

    from conformance.core.model import Model
    from conformance.toolkit.structures import build_cases

    def chosen(calc, species, kind, **options):
        model = Model(calc)
        atoms = next(c for c in build_cases(species) if c.kind == kind).copy()
        dt, info = dynamics.chosen_timestep(model, _Ctx(**options), atoms)
        return dt, info, model.n_calls

    # EMT Cu: stiffest mode at 9.18 THz (T_min = 109 fs, exact Hessian: 109.0 fs): dt = 3.63 fs, not 5 fs
    dt, info, calls = chosen(EMT(), ["Cu"], "bulk")
    assert dt == pytest.approx(3.63, abs=0.01) and calls == 16
    assert info["dt_source"] == "stiffest mode" and info["shortest_period_fs"] == pytest.approx(109.0, abs=0.5)
    assert info["why"].startswith("dt = 3.63 fs = T_min/30, shortest period T_min = 109 fs (9.18 THz")
    # EMT Au: T_min = 251 fs -> 8.37 fs, just under the mass-based 8.8 fs
    assert chosen(EMT(), ["Au"], "bulk")[0] == pytest.approx(8.37, abs=0.01)
    # smooth LJ argon: soft (T_min = 433 fs would allow 14.4 fs): the mass-based 3.96 fs stays
    argon = LennardJones(sigma=3.4, epsilon=0.0104, rc=8.5, smooth=True)
    dt, info, _ = chosen(argon, ["Ar"], "bulk")
    assert dt == pytest.approx(3.96, abs=0.01) and info["dt_source"] == "mass-based default"
    assert "the mass-based default (5 fs × sqrt(m_min/m_Cu)); shortest period T_min = 433 fs" in info["why"]
    # StiffPair (alpha = 2.5 /Å): 15 THz, dt = 2.2 fs
    assert chosen(StiffPair(), ["Cu"], "bulk")[0] == pytest.approx(2.20, abs=0.01)
    # the user's step wins, without a model call
    dt, info, calls = chosen(EMT(), ["Cu"], "bulk", md_timestep=1.0)
    assert (dt, calls, info["why"]) == (1.0, 0, "dt = 1 fs from --mlip-md-timestep")


def test_soft_van_der_waals_bonds_get_a_collapse_bound_scaled_with_their_length():
    """Smooth LJ argon (dimer bond 3.82 Å) at 1.5 T_m in the crystal's volume compresses
    bonds by up to 0.66 Å on 100 fs averages: thermal, not a collapse; its bound is 25 % of
    the bond, 0.95 Å."""
    from ase.calculators.lj import LennardJones

    argon = LennardJones(sigma=3.4, epsilon=0.0104, rc=8.5, smooth=True)
    report = audit(argon, species=["Ar"], checks=["hot_nvt_stability"])
    assert statuses(report) == {"passed"}, report
    r = report["hot_nvt_stability[bulk_Ar_fcc]"]
    assert r.message.startswith("max bond compression (100 fs mean) 0.66 Å <= 0.956 Å")
    assert r.details["dimer_bond_length_A"]["Ar-Ar"] == pytest.approx(2 ** (1 / 6) * 3.4, rel=5e-3)  # smooth tail shifts it
