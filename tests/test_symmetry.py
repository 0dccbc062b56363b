"""Symmetry family: correct models pass, each broken zoo model is caught by the
check meant for it and by no unrelated check."""

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones

from conformance import audit
from conformance.checks._equivariance import Equivariance, Image
from conformance.core.model import Model
from conformance.core.tolerances import Tolerances
from conformance.run.runner import CheckContext
from conformance.toolkit import strategies as strat
from conformance.toolkit import transforms as tf
from conformance.toolkit.structures import find_case
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


def engine(case="bulk_Cu_fcc"):
    """The symmetry engine on an exactly equivariant toy (SmoothPair) at float64."""
    return Equivariance(Model(SmoothPair()), find_case(case, ["Cu"]), CheckContext(tol=Tolerances()))


def test_engine_passes_exact_output_rules_and_catches_a_wrong_one():
    """Outputs declared as they transform (energy scalar, forces vectors, stress
    R σ Rᵀ, extensive over images) agree to round-off on an exactly equivariant
    model; a declaration that gets one rule wrong fails on that output only."""
    sym = engine()
    r = tf.rotation_matrix([1.0, 2.0, 3.0], 0.7)
    order = np.roll(np.arange(len(sym.atoms)), 1)
    right = [Image(tf.rotate(sym.atoms, r), matrix=r), Image(tf.permute(sym.atoms, order), order=order),
             Image(tf.supercell(sym.atoms, (2, 1, 1)), images=2)]
    for image in right:
        fields = sym.fields(image)
        assert [f.name for f in fields] == ["|ΔE|", "max |ΔF|", "max |Δσ|"]
        assert all(f.ok and f.error < 1e-10 for f in fields), fields
    invariant = {f.name: f.ok for f in sym.fields(Image(tf.rotate(sym.atoms, r)))}  # forces, stress unrotated
    assert invariant == {"|ΔE|": True, "max |ΔF|": False, "max |Δσ|": False}
    unpermuted = {f.name: f.ok for f in sym.fields(Image(tf.permute(sym.atoms, order)))}
    assert unpermuted == {"|ΔE|": True, "max |ΔF|": False, "max |Δσ|": True}
    mirrored, rotated = tf.right_handed(tf.rotate(sym.atoms, -r)), tf.rotate(sym.atoms, r)  # -1 · (R x) and R x
    parity = {f.name: f.ok for f in sym.fields(Image(mirrored, matrix=tf.INVERSION, reference=rotated))}
    assert parity == {"|ΔE|": True, "max |ΔF|": True, "max |Δσ|": True}
    even = {f.name: f.ok for f in sym.fields(Image(mirrored, reference=rotated))}
    assert even == {"|ΔE|": True, "max |ΔF|": False, "max |Δσ|": True}  # forces are odd, stress even


def rotation_code(rot):
    return f"atoms2 = transforms.rotate(atoms, {rot.code()})"


def test_engine_search_names_the_operation_that_breaks_a_declared_rule():
    def search(act, **kwargs):
        return engine(case="cluster_Cu13").search(np.random.default_rng(0), strat.rotations(), act, rotation_code,
                                                  "random rotations", **kwargs)

    good = search(lambda rot, atoms: Image(tf.rotate(atoms, rot.matrix), matrix=rot.matrix))
    assert all(f.ok for f in good.fields) and good.what.endswith("random rotations of cluster_Cu13")
    bad = search(lambda rot, atoms: Image(tf.rotate(atoms, rot.matrix)), explain="forces declared invariant")
    assert [f.name for f in bad.fields if not f.ok] == ["max |ΔF|"]
    assert bad.what.startswith("rotation axis=") and bad.note == "forces declared invariant"
    assert "transforms.rotate(atoms, transforms.rotation_matrix(" in bad.reproducer
