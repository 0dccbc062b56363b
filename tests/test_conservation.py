"""Conservation family: correct models pass, each broken zoo model is caught by
the check meant for it, messages say what broke, by how much and how to
reproduce it."""

import re

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from conformance import audit
from conformance.checks.conservation import (fd_directions, net_torque_vector, periodic_strains,
                                             simpson_residual, strained)
from tests.conftest import failed_checks, statuses
from tests.zoo.base import SmoothPair
from tests.zoo.conservation import (DirectForce, DirectForceOnly, ExternalField, RotationalField,
                                    ScaledForces, StressNoVolume, StressOnCluster, WrongStressSign)
from tests.zoo.faulty import NoStress, Raising, ReturnsNaN
from tests.zoo.symmetry import Float32EMT

CONSERVATION = ["conservation"]
SPECIES = ["Cu", "Au"]


def lj():
    return LennardJones(sigma=2.3, epsilon=0.4, rc=6.0, smooth=True)


@pytest.mark.parametrize("calc", [EMT(), lj(), SmoothPair()], ids=["EMT", "LJ", "SmoothPair"])
def test_correct_models_pass_every_conservation_item(calc):
    report = audit(calc, species=SPECIES, checks=CONSERVATION)
    assert statuses(report) <= {"passed", "skipped"}, report    # skips: checked below
    df = report.df
    counts = df.groupby("check").size().to_dict()
    assert counts == {"net_force": 9, "net_torque": 3, "force_consistency": 9, "stress_consistency": 9}
    # every periodic stress item ran, except where the model has no stress for slabs/wires
    skipped = set(df.loc[df["status"] == "skipped", "case"])
    assert skipped <= {"slab_Cu_fcc111", "wire_Cu_fcc100"}
    fc = df[df["check"] == "force_consistency"]
    assert (fc["n_calls"] == 7).all()  # 1 + 2 × 3 directions, no confirmation needed
    assert (fc["measured"] < 0.5 * fc["tolerance"]).all()


def test_stress_items_run_on_slab_and_wire_for_models_with_stress():
    report = audit(EMT(), species=["Cu"], checks=["stress_consistency"])
    status = dict(zip(report.df["case"], report.df["status"]))
    assert status["slab_Cu_fcc111"] == status["wire_Cu_fcc100"] == "passed"
    assert report["stress_consistency[slab_Cu_fcc111]"].n_calls == 7  # 3 in-plane strains
    assert report["stress_consistency[wire_Cu_fcc100]"].n_calls == 3  # only the axial strain exists
    assert report["stress_consistency[cluster_Cu13]"].n_calls == 2  # energy first (the model must work), then the stress request
    assert "stress is absent, as it should be" in report["stress_consistency[cluster_Cu13]"].message


@pytest.mark.parametrize("model, expected", [
    (ScaledForces(), {"force_consistency"}),
    (WrongStressSign(), {"stress_consistency"}),
    (StressNoVolume(), {"stress_consistency"}),
    (StressOnCluster(), {"stress_consistency"}),
    (ExternalField(), {"net_force"}),
    # a rotational force field is not a gradient: force_consistency must fail as well
    (RotationalField(), {"net_torque", "force_consistency"}),
    (DirectForce(), {"force_consistency"}),
    (DirectForceOnly(), {"force_consistency"}),
], ids=lambda x: type(x).__name__ if not isinstance(x, set) else "")
def test_broken_model_caught_by_its_check_only(model, expected):
    report = audit(model, species=SPECIES, checks=CONSERVATION)
    assert failed_checks(report) == expected, report
    assert set(report.df["status"]) <= {"passed", "failed", "skipped"}


def test_scaled_forces_pass_symmetry_and_hygiene():
    report = audit(ScaledForces(), species=["Cu"], checks=["symmetry", "net_force", "net_torque"],
                   structure_kinds=["trimer", "cluster", "bulk", "small_cell"])
    assert statuses(report) == {"passed"}, report


def test_scaled_forces_message_says_ratio_direction_and_reproduces():
    r = audit(ScaledForces(), species=SPECIES, checks=["force_consistency"],
              structure_kinds=["cluster"])["force_consistency[cluster_Au6Cu7]"]
    assert r.status == "failed"
    assert r.message.startswith("|F·u + dE/dh| / |F·u| = 0.0476")
    assert "at direction 0 (along F)" in r.message
    assert "(ratio 1.05)" in r.message
    assert "retried at step 3.33333e-05 and 1e-05 Å" in r.message
    assert r.n_calls == 19  # 7, then 6 more at step/3 and 6 at step/10 to confirm
    code = r.message.split("reproducer:\n")[1].split("\nrerun:")[0]
    assert "calc = ...  # your calculator" in code
    scope = {}
    exec(code.replace("calc = ...", "calc = ScaledForces()").replace("print(", "result = ("),
         {"ScaledForces": ScaledForces}, scope)
    de, fu = scope["result"]
    assert fu / de == pytest.approx(1.05, rel=1e-4)  # -F·u = 1.05 dE/dh


def test_direct_force_caught_by_jacobian_symmetry_even_without_energy():
    report = audit(DirectForceOnly(), species=SPECIES, checks=["force_consistency"])
    assert report["force_consistency[dimer_CuAu]"].status == "passed"  # a central pair force is a gradient
    r = report["force_consistency[cluster_Au6Cu7]"]
    assert r.status == "failed"
    assert r.message.startswith("|u·Jv - v·Ju| / |u·Jv|typ = ")
    assert "F·u + dE/dh" not in r.message  # no energy, no directional test
    assert re.search(r"max \|∮F·dr\| = [0-9.e-]+ eV", r.message)
    assert failed_checks(report) == {"force_consistency"}
    with_energy = audit(DirectForce(), species=SPECIES, checks=["force_consistency"],
                        structure_kinds=["cluster"])
    msg = with_energy["force_consistency[cluster_Au6Cu7]"].message
    assert "|F·u + dE/dh| / |F·u|      " in msg and msg.count("FAIL") == 2


def test_model_declaring_non_conservative_still_runs_and_fails():
    class Declared(DirectForce):
        mlip_tags = {"conservative": False}

    report = audit(Declared(), species=["Cu"], checks=["force_consistency"], structure_kinds=["bulk"])
    r = report["force_consistency[bulk_Cu_fcc]"]
    assert r.status == "failed"
    assert "declares conservative=False (direct forces): this finding is its declared design" in r.message


def test_net_force_and_torque_messages_give_vectors():
    r = audit(ExternalField(), species=SPECIES, checks=["net_force"],
              structure_kinds=["bulk"])["net_force[bulk_Cu_fcc]"]
    assert r.message.startswith("|ΣF| = 0.862 eV/Å > tolerance ")
    assert "ΣF = [ 0.64, -0.32,  0.48] eV/Å over 32 atoms of bulk_Cu_fcc" in r.message
    t = audit(RotationalField(), species=SPECIES, checks=["net_torque"])["net_torque[dimer_CuAu]"]
    assert t.status == "failed" and t.unit == "eV"
    assert "about the centre of mass of dimer_CuAu" in t.message
    assert "np.cross(r, F - F.mean(axis=0))" in t.message


def test_torque_ignores_the_net_force():
    from ase import Atoms

    atoms = Atoms("CuAu", positions=[[0, 0, 0], [2.5, 0, 0]])
    forces = np.array([[0.0, 0.3, 0.0], [0.0, 0.3, 0.0]])  # pure net force
    assert np.allclose(net_torque_vector(atoms, forces), 0.0)


def test_stress_sign_and_volume_messages():
    sign = audit(WrongStressSign(), species=["Cu"], checks=["stress_consistency"],
                 structure_kinds=["bulk"])["stress_consistency[bulk_Cu_fcc]"]
    assert sign.status == "failed" and sign.unit == "eV/Å³"
    sigma_eps = float(re.search(r"σ:ε = (\S+) eV/Å³", sign.message).group(1))
    assert sign.measured == pytest.approx(2 * abs(sigma_eps), rel=1e-3)  # wrong sign: off by 2σ:ε
    assert "set_cell(atoms.cell.array @ (np.eye(3) + eta * eps).T, scale_atoms=True)" in sign.message
    novol = audit(StressNoVolume(), species=["Cu"], checks=["stress_consistency"],
                  structure_kinds=["bulk"])["stress_consistency[bulk_Cu_fcc]"]
    assert novol.measured / novol.tolerance > 1e4
    cluster = audit(StressOnCluster(), species=["Cu"], checks=["stress_consistency"],
                    structure_kinds=["dimer", "cluster", "bulk"])
    assert cluster["stress_consistency[bulk_Cu_fcc]"].status == "passed"
    msg = cluster["stress_consistency[cluster_Cu13]"].message
    assert msg.startswith("max |σ| returned without cell = ")
    assert "raise PropertyNotImplementedError instead" in msg


def test_stress_reproducer_shows_the_sign_error(capsys):
    r = audit(WrongStressSign(), species=["Cu"], checks=["stress_consistency"],
              structure_kinds=["small_cell"])["stress_consistency[small_cell_Cu2]"]
    code = r.message.split("reproducer:\n")[1].split("\nrerun:")[0]
    exec(code.replace("calc = ...", "calc = WrongStressSign()"), {"WrongStressSign": WrongStressSign})
    a, b = map(float, capsys.readouterr().out.split())
    assert a == pytest.approx(-b, rel=1e-4) and abs(a) > 1e-3


def test_model_without_stress_is_skipped_with_reason():
    report = audit(NoStress(), species=["Cu"], checks=["stress_consistency"], structure_kinds=["bulk"])
    r = report["stress_consistency[bulk_Cu_fcc]"]
    assert r.status == "skipped" and r.message == "model does not implement stress"


def test_model_errors_are_error_results():
    report = audit(Raising(), species=["Cu"], checks=CONSERVATION, structure_kinds=["dimer", "bulk"])
    assert set(report.df["status"]) == {"error", "skipped"}  # skipped: Raising has no stress
    assert all("CUDA out of memory (simulated)" in r.message for r in report.results if r.status == "error")
    nan = audit(ReturnsNaN(), species=["Cu"], checks=["net_force", "force_consistency"],
                structure_kinds=["bulk"])
    assert set(nan.df["status"]) == {"error"}
    assert "non-finite forces" in nan.results[0].message


def test_float32_model_passes_at_float32_and_is_flagged_at_float64():
    ok = audit(Float32EMT(), species=SPECIES, checks=CONSERVATION)  # declares precision float32
    assert ok.passed, ok
    strict = audit(Float32EMT(), species=["Cu"], checks=["force_consistency"], precision="float64",
                   structure_kinds=["bulk"])
    assert "failed" in statuses(strict) and "error" not in statuses(strict)


def test_tolerance_overrides_reach_the_check():
    loose = audit(ScaledForces(), species=["Cu"], checks=["force_consistency"], structure_kinds=["bulk"],
                  tolerances={"force_consistency_rtol": 0.1})
    assert loose.passed
    step = audit(SmoothPair(), species=["Cu"], checks=["force_consistency"], structure_kinds=["bulk"],
                 tolerances={"fd_step": 1e-3})
    assert "step 0.001 Å" in step.results[0].message


def test_fd_directions_are_orthogonal_unit_rms_and_start_along_forces():
    rng = np.random.default_rng(1)
    forces = rng.normal(size=(5, 3))
    u = fd_directions(forces, 3, rng)
    flat = u.reshape(3, -1)
    assert np.allclose(flat @ flat.T, 5 * np.eye(3))
    assert np.vdot(flat[0], forces.ravel()) == pytest.approx(np.sqrt(5) * np.linalg.norm(forces))


def test_simpson_residual_is_exact_for_a_quartic_energy_in_h():
    # E(s) = s^3 + 2 s^2 - s along the segment; g = -E'(s)
    E = lambda s: s**3 + 2 * s**2 - s  # noqa: E731
    g = lambda s: -(3 * s**2 + 4 * s - 1)  # noqa: E731
    h = 0.3
    assert simpson_residual(E(h), E(-h), g(h), g(0), g(-h), h) == pytest.approx(0.0, abs=1e-12)


def test_periodic_strains_stay_in_the_periodic_directions():
    from ase.build import fcc111

    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    eps = periodic_strains(slab.cell.array, slab.pbc, 5, np.random.default_rng(0))
    assert eps.shape == (3, 3, 3)  # xx, yy, xy only
    assert np.allclose(eps[:, 2, :], 0) and np.allclose(eps[:, :, 2], 0)
    assert np.allclose(np.einsum("iab,jab->ij", eps, eps), np.eye(3))
    moved = strained(slab, 0.01 * eps[0])
    assert np.allclose(moved.positions[:, 2], slab.positions[:, 2])


def test_reproducer_of_a_spec_run_loads_the_model_and_runs_as_printed():
    r = audit("tests.zoo.conservation:ScaledForces", species=SPECIES, checks=["force_consistency"],
              structure_kinds=["cluster"])["force_consistency[cluster_Au6Cu7]"]
    assert r.status == "failed"
    code = r.message.split("reproducer:\n")[1].split("\nrerun:")[0]
    assert "calc = adapters.load('tests.zoo.conservation:ScaledForces').calc" in code
    scope = {}
    exec(code.replace("print(", "result = ("), {}, scope)
    de, fu = scope["result"]
    assert fu / de == pytest.approx(1.05, rel=1e-4)


def test_float32_noise_widens_the_finite_difference_tolerance_but_scaled_forces_still_fail():
    """Energy rounding enters a finite difference as δE/h: a correct float32 model with
    1e-4 eV/Å rounding noise passes against its measured noise floor, fails without it;
    forces 5 % too large on a clean float32 model are still caught."""
    from tests.zoo.symmetry import RoundingNoise

    noisy = audit(RoundingNoise(), species=["Cu"], checks=["force_consistency"])
    assert statuses(noisy) == {"passed"}, noisy
    assert "noise floor |ΔE|" in noisy["force_consistency[bulk_Cu_fcc]"].message
    table_only = audit(RoundingNoise(), species=["Cu"], checks=["force_consistency"],
                       tolerances={"noise_factor": 0})
    assert "failed" in statuses(table_only)
    scaled = audit(ScaledForces(), species=["Cu"], checks=["force_consistency"], precision="float32")
    r = scaled["force_consistency[bulk_Cu_fcc]"]
    assert r.status == "failed" and r.measured > 5 * r.tolerance  # 0.048 vs 0.0059


def test_a_float32_energys_own_spacing_bounds_the_finite_difference():
    """A deterministic float32 energy of ~256 eV moves in steps of 3e-5 eV: along a weak
    direction its central difference is quantized by ulp/2h (3e-3 eV/Å at h = 5 mÅ),
    which repeats and jitters do not reveal; the check allows it (MACE with random
    weights in float32 failed here), and 2 % too large forces are still caught."""
    from tests.zoo.symmetry import Float32Energy

    class ScaledFloat32(Float32Energy):
        def calculate(self, *args, **kwargs):
            super().calculate(*args, **kwargs)
            self.results["forces"] = 1.02 * self.results["forces"]

    ok = audit(Float32Energy(), species=["Cu"], checks=["force_consistency"], structure_kinds=["bulk"])
    r = ok["force_consistency[bulk_Cu_fcc]"]
    assert r.status == "passed" and r.measured == pytest.approx(0.00556, abs=1e-5), r.message
    assert "energy resolution 3.1e-05 eV" in r.message  # |E| = 256 eV
    # without the resolution term the tolerance would be 0.00201: it failed
    bad = audit(ScaledFloat32(), species=["Cu"], checks=["force_consistency"],
                structure_kinds=["bulk"])["force_consistency[bulk_Cu_fcc]"]
    assert bad.status == "failed" and bad.measured > 1.5 * bad.tolerance, bad.message
