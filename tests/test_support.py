"""Models that cannot take a class of structures as given: boxed in vacuum when that
works (one informational finding), one failure and skipped items when it does not."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import fcc111

from conformance import audit
from conformance.core.boxing import in_vacuum_box
from conformance.core.model import Model
from tests.conftest import statuses
from tests.zoo.base import SmoothPair
from tests.zoo.support import BulkOnly, NeedsCell

ISOLATED_CHECKS = ["structure_support", "net_torque", "rotation_invariance", "force_consistency",
                   "stress_consistency", "dimer_curve"]


def test_a_model_that_needs_a_cell_is_boxed_with_one_finding_and_no_errors():
    report = audit(NeedsCell(), species=["Cu"], checks=ISOLATED_CHECKS)
    assert "error" not in statuses(report) and report.passed, report
    s = report["structure_support[classes]"]
    assert s.status == "passed" and len(s.findings) == 1
    assert s.findings[0].startswith("informational: isolated: needs a vacuum box")
    assert "model raised LinAlgError: Singular matrix" in s.message
    assert "declare mlip_tags = {'periodic_only': True}" in s.message
    assert s.details["support"]["isolated"]["status"] == "boxed"
    assert s.details["support"]["periodic"]["status"] == "native"
    # the isolated checks kept their meaning: torque of the cluster measured, rotations compared
    torque = report["net_torque[cluster_Cu13]"]
    assert torque.status == "passed" and torque.measured < 1e-10
    assert report["rotation_invariance[cluster_Cu13]"].measured < 1e-10


def test_boxed_results_equal_the_isolated_ones():
    """For a local model, a molecule in a box with vacuum >= 2 r_c + 2 Å is the molecule."""
    from conformance.toolkit.structures import find_case

    atoms = find_case("cluster_Cu13", ["Cu"]).copy()
    plain = Model(SmoothPair()).evaluate(atoms)
    boxed = Model(NeedsCell()).evaluate(atoms)
    assert boxed["energy"] == pytest.approx(plain["energy"], abs=1e-12)
    np.testing.assert_allclose(boxed["forces"], plain["forces"], atol=1e-12)


def test_declared_periodic_only_boxes_without_probing():
    class Declared(NeedsCell):
        mlip_tags = {"periodic_only": True}

    model = Model(Declared())
    assert model.boxed_classes == {"isolated", "partly periodic"}
    out = model.evaluate(Atoms("Cu2", positions=[[0, 0, 0], [2.3, 0, 0]]))
    assert model.n_calls == 1 and out["forces"].shape == (2, 3)


def test_a_class_that_fails_even_boxed_is_one_failure_and_its_items_are_skipped():
    report = audit(BulkOnly(), species=["Cu"], checks=["structure_support", "net_force"])
    s = report["structure_support[classes]"]
    assert s.status == "failed"
    assert s.message.startswith("isolated: cannot be evaluated = 1 > tolerance 0.5")
    assert "partly periodic structures: the model raised on slab_Cu_fcc111" in s.message
    assert "this model handles bulk crystals only" in s.message
    assert "--mlip-structure-kinds" in s.message
    skipped = [r for r in report.results if r.status == "skipped"]
    assert {r.case for r in skipped} == {"dimer_Cu2", "trimer_Cu3", "cluster_Cu13", "slab_Cu_fcc111",
                                         "wire_Cu_fcc100"}
    assert all("(see structure_support[classes])" in r.message for r in skipped)
    assert report["net_force[bulk_Cu_fcc]"].status == "passed"
    assert sum(r.status in ("failed", "error") for r in report.results) == 1  # one finding, not ten errors


@pytest.mark.parametrize("vacuum", [6.0, 12.0])
def test_vacuum_box_leaves_at_least_the_vacuum_between_images(vacuum):
    rng = np.random.default_rng(0)
    cluster = Atoms("Cu8", positions=rng.uniform(-3, 3, (8, 3)))
    slab = fcc111("Cu", (2, 2, 3), vacuum=1.0)
    for atoms in (cluster, slab):
        boxed = in_vacuum_box(atoms, vacuum)
        assert boxed.pbc.all() and np.allclose(boxed.positions, atoms.positions)
        for k in np.flatnonzero(~atoms.pbc):
            i, j = [d for d in range(3) if d != k]
            normal = np.cross(boxed.cell[i], boxed.cell[j])
            normal /= np.linalg.norm(normal)
            h = boxed.positions @ normal
            assert abs(boxed.cell[k] @ normal) - (h.max() - h.min()) >= vacuum - 1e-9
        for k in np.flatnonzero(atoms.pbc):
            assert np.allclose(boxed.cell[k], atoms.cell[k])
