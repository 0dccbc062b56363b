"""Symmetry family: correct models pass, each broken zoo model is caught by the
check meant for it and by no unrelated check."""

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from conformance import audit
from tests.conftest import failed_checks, statuses
from tests.zoo.base import SmoothPair
from tests.zoo.symmetry import (Anisotropic, CancellingFloat32, Chiral, FixedImageRange, Float32EMT,
                                HarmonicTrap, IndexDependent, MinimumImage, NaiveFloat32EMT, RoundingNoise,
                                SignedVolume)

SYMMETRY = ["symmetry"]


@pytest.mark.parametrize("calc", [EMT(), LennardJones(sigma=2.3, epsilon=0.4, rc=6.0, smooth=True),
                                  SmoothPair()], ids=["EMT", "LJ", "SmoothPair"])
def test_correct_models_pass_every_symmetry_item(calc):
    report = audit(calc, species=["Cu", "Au"], checks=SYMMETRY)
    assert len(report) == 63
    assert statuses(report) == {"passed"}, report
    # a real comparison happened: measured errors are tiny but recorded
    df = report.df
    assert (df["measured"] < 1e-10).all()
    assert (df["n_calls"] >= 2).all()


@pytest.mark.parametrize("model, expected", [
    (IndexDependent(), {"permutation_invariance"}),
    (Anisotropic(), {"rotation_invariance"}),
    (Chiral(), {"inversion_invariance"}),
    (MinimumImage(), {"supercell_consistency"}),
    (SignedVolume(), {"left_handed_cell"}),
    # an absolute-position term necessarily also changes periodic images
    (HarmonicTrap(), {"translation_invariance", "large_offset", "supercell_consistency",
                      "cell_basis_invariance"}),
], ids=lambda x: type(x).__name__ if not isinstance(x, set) else "")
def test_broken_model_caught_by_its_check_only(model, expected):
    report = audit(model, species=["Cu", "Au"], checks=SYMMETRY)
    assert failed_checks(report) == expected, report


def test_fixed_image_range_caught_by_cell_basis_on_cells_larger_than_cutoff():
    report = audit(FixedImageRange(), species=["Cu"], checks=SYMMETRY,
                   structure_kinds=["dimer", "trimer", "cluster", "bulk", "slab", "wire"])
    assert failed_checks(report) == {"cell_basis_invariance"}
    assert report["cell_basis_invariance[bulk_Cu_fcc]"].status == "failed"


def test_minimum_image_bug_only_shows_in_small_cells():
    big = audit(MinimumImage(r_on=2.9, rc=3.4), species=["Cu"], checks=SYMMETRY)  # 3.4 Å < L/2 = 3.6 Å
    assert big["supercell_consistency[bulk_Cu_fcc]"].status == "passed"
    assert big["supercell_consistency[small_cell_Cu2]"].status == "failed"


def test_rotation_message_names_field_operation_case_and_reproducer():
    r = audit(Anisotropic(), species=["Cu"], checks=["rotation_invariance"])["rotation_invariance[bulk_Cu_fcc]"]
    assert r.status == "failed"
    assert r.message.startswith("max |ΔF| = ")
    assert "> tolerance" in r.message and "for rotation axis=" in r.message
    assert "on bulk_Cu_fcc" in r.message
    assert "transforms.rotate(atoms, transforms.rotation_matrix(" in r.message
    assert "rerun: pytest" in r.message
    assert r.unit == "eV/Å" and r.measured > 1e-3 > 1e-7 > r.tolerance


def test_reproducer_reproduces_the_violation():
    r = audit(Anisotropic(), species=["Cu"], checks=["rotation_invariance"])["rotation_invariance[bulk_Cu_fcc]"]
    code = r.message.split("reproducer:\n")[1].split("\nrerun:")[0]
    scope = {}
    exec(code, scope)
    a, b = scope["atoms"], scope["atoms2"]
    a.calc, b.calc = Anisotropic(), Anisotropic()
    assert abs(a.get_potential_energy() - b.get_potential_energy()) > 1e-6  # tolerance: 3e-8 eV


def test_inversion_check_isolates_parity_from_rotation():
    report = audit(Anisotropic(), species=["Cu"], checks=["inversion_invariance"])
    assert report.passed
    chiral = audit(Chiral(), species=["Cu"], checks=["inversion_invariance"])
    r = chiral["inversion_invariance[cluster_Cu13]"]
    assert r.status == "failed" and "compared with the proper rotation" in r.message


def test_float32_model_passes_at_float32_and_is_flagged_at_float64():
    ok = audit(Float32EMT(), species=["Cu"], checks=SYMMETRY)  # declares precision float32
    assert ok.passed, ok
    strict = audit(Float32EMT(), species=["Cu"], checks=["rotation_invariance"], precision="float64")
    assert "failed" in statuses(strict) and "error" not in statuses(strict)


def test_float32_absolute_coordinates_pass_large_offset_with_the_precision_loss_reported():
    """Casting absolute coordinates to float32 loses ε|x| of precision 1000 Å from
    the origin: allowed (ε × offset × force constant), named, with the crossing offset."""
    report = audit(NaiveFloat32EMT(), species=["Cu"], checks=SYMMETRY)
    assert failed_checks(report) == set()
    r = report["large_offset[bulk_Cu_fcc]"]
    assert r.status == "passed" and len(r.findings) == 1
    assert r.findings[0].startswith("informational: max |ΔF| from float32 absolute coordinates = ")
    d = r.details
    assert 1e-5 < d["allowance"]["max |ΔF|"] < 1e-2 and 0.5 < d["growth_exponent"] < 1.5
    assert 10 < d["crossing_offset"] < 990  # the error crosses the offset-free tolerance on the way
    assert "float32 precision at 995 Å" in r.message


def test_precision_loss_beyond_float32_rounding_is_caught_by_large_offset_only():
    report = audit(CancellingFloat32(), species=["Cu"], checks=SYMMETRY)
    assert failed_checks(report) == {"large_offset"}
    r = report["large_offset[bulk_Cu_fcc]"]
    assert r.measured > 10 * r.tolerance and r.details["growth_exponent"] > 1.5
    assert "exceeds what float32 rounding of absolute coordinates explains" in r.message


def test_float32_rounding_noise_is_judged_against_the_models_own_noise_floor():
    """A correct float32 model with 1e-4 eV/Å rounding noise fails the table's float32
    tolerance (2e-5 eV/Å) but passes against its measured noise floor, reported with
    the item; a real symmetry break (Anisotropic at float32) still fails."""
    checks = ["rotation_invariance", "permutation_invariance", "inversion_invariance"]
    report = audit(RoundingNoise(), species=["Cu"], checks=checks)
    assert statuses(report) == {"passed"}, report
    r = report["rotation_invariance[bulk_Cu_fcc]"]
    noise = r.details["noise_floor"]
    assert noise["measured"] and 5e-5 < noise["forces"] < 4e-4
    assert 2e-5 < r.measured < r.tolerance and "noise floor |ΔE|" in r.message
    table_only = audit(RoundingNoise(), species=["Cu"], checks=checks, tolerances={"noise_factor": 0})
    assert "failed" in statuses(table_only)
    broken = audit(Anisotropic(), species=["Cu"], checks=["rotation_invariance"], precision="float32")
    assert broken["rotation_invariance[bulk_Cu_fcc]"].measured > 30 * broken["rotation_invariance[bulk_Cu_fcc]"].tolerance


def test_same_seed_same_results_different_seed_different_transforms():
    a = audit(Anisotropic(), species=["Cu"], checks=["rotation_invariance"], seed=3).df
    b = audit(Anisotropic(), species=["Cu"], checks=["rotation_invariance"], seed=3).df
    c = audit(Anisotropic(), species=["Cu"], checks=["rotation_invariance"], seed=4).df
    assert np.array_equal(a["measured"].to_numpy(), b["measured"].to_numpy())
    assert list(a["message"]) == list(b["message"])
    assert not np.array_equal(a["measured"].to_numpy(), c["measured"].to_numpy())


def test_model_calls_are_bounded():
    report = audit(Anisotropic(), species=["Cu"], checks=SYMMETRY, examples=4)
    # 1 reference + 4 examples + at most 25 shrinking calls (+ lattice shift pair)
    assert report.df["n_calls"].max() <= 1 + 4 + 25 + 2
