"""Sampling coverage: plan cells without training data, and extrapolating test structures."""

import json

import numpy as np
import pytest
from ase.build import bulk

from conformance.audits.data import DataError
from conformance.audits.sampling import (configuration_axes, load_plan, observed_cells,
                                         plan_cells, sampling_coverage)


@pytest.fixture(scope="module")
def shipped():
    from reference_models import data

    structures = data.load()
    return structures, data.split_by_trajectory(structures)


def _condition(atoms):
    return (atoms.info["system"], atoms.info["config_type"], atoms.info["temperature"])


def test_axes_of_the_shipped_frames(shipped):
    structures, _ = shipped
    seen = {}
    for atoms in structures:
        axes = configuration_axes(atoms)
        seen.setdefault(axes["config_type"], []).append(axes)
    assert {a["strain_kind"] for a in seen["md_bulk"]} == {"none"}
    assert {a["strain_kind"] for a in seen["strain"]} == {"hydrostatic", "shear"}
    assert all(abs(a["strain_hydrostatic"]) <= 0.06 for a in seen["strain"])
    assert {a["vacancies"] for a in seen["vacancy"]} == {1, 2}
    assert {a["surface"] for a in seen["surface"]} == {"111", "100"}
    assert {a["n_atoms"] for a in seen["cluster"]} == {13, 38}
    alloy = next(a for a in seen["md_bulk"] if a["system"] == "CuAu")
    assert alloy["x_Au"] in (0.25, 0.5) and alloy["x_Cu"] == 1 - alloy["x_Au"]


def test_every_shipped_frame_falls_in_a_plan_cell_and_the_full_set_covers_the_plan(shipped):
    from reference_models import data

    structures, _ = shipped
    report = sampling_coverage(structures, plan=data.PLAN)
    assert report.unplanned_train == []
    cells = report.cells
    assert len(cells) > 40 and cells["cell"].is_unique
    assert report.n_uncovered == 0, report.summary()
    assert len(report.extrapolation) == 0          # no test set


def test_a_condition_missing_from_training_is_an_uncovered_cell(shipped):
    from reference_models import data

    _, (train, test) = shipped
    gone = ("CuAu", "vacancy", 700.0)
    assert any(_condition(a) == gone for a in test)
    before = set(sampling_coverage(train, test, plan=data.PLAN).uncovered["cell"])
    report = sampling_coverage([a for a in train if _condition(a) != gone], test, plan=data.PLAN)
    uncovered = report.uncovered.set_index("cell")
    new = set(uncovered.index) - before
    assert new == {"CuAu/vacancy/T700/xAu0.25/vac1", "CuAu/vacancy/T700/xAu0.5/vac1"}, \
        report.summary()
    assert (uncovered.loc[sorted(new), "n_test"] > 0).all()
    assert "CuAu/vacancy/T700/xAu0.5/vac1" in report.summary()


def test_strain_ranges_are_cells_of_their_own():
    cells = plan_cells([dict(system="Cu", config_type="strain", temperature=500,
                             options={"strain": "hydrostatic", "size": 0.06})], strain_bins=2)
    assert cells["cell"].tolist() == ["Cu/strain/T500/hydrostatic[-0.06,+0)",
                                      "Cu/strain/T500/hydrostatic[+0,+0.06]"]
    compressed = bulk("Cu", cubic=True)
    compressed.info.update(system="Cu", config_type="strain", temperature=500.0,
                           strain=np.array([-0.05, -0.05, -0.05, 0, 0, 0]))
    copies = [compressed.copy() for _ in range(3)]
    for k, atoms in enumerate(copies):
        atoms.rattle(0.05, seed=k)
    report = sampling_coverage(copies,
                               plan=[dict(system="Cu", config_type="strain", temperature=500,
                                          options={"strain": "hydrostatic", "size": 0.06})])
    assert report.cells["n_train"].tolist() == [3, 0]
    assert report.uncovered["cell"].tolist() == ["Cu/strain/T500/hydrostatic[+0,+0.06]"]


def test_plan_file_and_cells_given_directly(tmp_path, shipped):
    from reference_models import data

    structures, _ = shipped
    path = tmp_path / "plan.json"
    path.write_text(data.PLAN_FILE.read_text())
    from_file = plan_cells(load_plan(path))
    assert from_file["cell"].tolist() == plan_cells(data.PLAN)["cell"].tolist()
    direct = [{"cell": "hot Cu", "criteria": {"system": "Cu", "temperature": [1400, 3000]}},
              {"cell": "Cu at 5000 K", "criteria": {"system": "Cu", "temperature": 5000}}]
    report = sampling_coverage(structures, plan=direct)
    assert report.cells.set_index("cell")["n_train"].to_dict()["Cu at 5000 K"] == 0
    assert report.cells.set_index("cell")["n_train"].to_dict()["hot Cu"] > 0
    with pytest.raises(DataError, match="cannot read sampling plan"):
        load_plan(tmp_path / "missing.json")


def test_observed_cells_report_test_only_conditions(shipped):
    _, (train, test) = shipped
    gone = ("Cu", "md_bulk", 1100.0)
    report = sampling_coverage([a for a in train if _condition(a) != gone], test,
                               plan="observed")
    assert report.uncovered["cell"].tolist() == ["Cu/md_bulk/T1100"]
    assert observed_cells([configuration_axes(train[0])])["cell"].tolist() == [
        "Cu/md_bulk/T300"]


def test_structures_far_from_the_training_set_extrapolate(shipped):
    _, (train, test) = shipped
    md = [a for a in train if a.info["config_type"] in ("md_bulk", "strain", "vacancy")]
    far = [a for a in test if a.info["config_type"] in ("cluster", "surface")][:6]
    near = [a for a in test if a.info["config_type"] == "md_bulk"][:6]
    report = sampling_coverage(md, near + far, plan="observed")
    ex = report.extrapolation
    assert ex["extrapolating"].tolist() == [False] * 6 + [True] * 6, ex
    assert (ex["percentile"].iloc[6:] == 100).all()
    assert report.extrapolating_fraction == 0.5


def test_species_absent_from_training_is_off_support(shipped):
    from reference_models.descriptors import Descriptor

    from conformance.audits.leakage import LEAKAGE_DESCRIPTOR

    _, (train, _) = shipped
    cu = [a for a in train if set(a.get_chemical_symbols()) == {"Cu"}][:60]
    gold = bulk("Au", cubic=True).repeat(2)
    report = sampling_coverage(cu, [gold], plan="observed",
                               descriptor=Descriptor(["Cu", "Au"], **LEAKAGE_DESCRIPTOR))
    assert report.extrapolation["off_support"].tolist() == [True]
    assert report.extrapolation["extrapolating"].tolist() == [True]


def test_descriptor_arrays_give_the_extrapolation_part_only():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 4))
    test = np.vstack([rng.normal(size=(5, 4)), [[8.0, 8.0, 8.0, 8.0]]])
    report = sampling_coverage(train, test, train_groups=np.arange(300) // 3)
    assert report.cells is None and report.n_uncovered == 0
    assert report.extrapolation["extrapolating"].tolist()[-1]
    assert json.dumps(report.to_dict())


def test_the_check_passes_a_split_of_the_plan_and_fails_a_test_set_outside_it(shipped, tmp_path):
    from ase.io import write

    from conformance import audit

    _, (train, test) = shipped
    md = [a for a in train if a.info["config_type"] in ("md_bulk", "strain", "vacancy")]
    near = [a for a in test if a.info["config_type"] in ("md_bulk", "strain", "vacancy")]
    far = [a for a in test if a.info["config_type"] in ("cluster", "surface")][:8]
    for name, frames in (("train", md), ("near", near), ("far", near[:12] + far)):
        write(tmp_path / f"{name}.extxyz", frames)
    results = {name: audit("ase:EMT", species=["Cu", "Au"], checks=["sampling_coverage"],
                           train=str(tmp_path / "train.extxyz"),
                           test=str(tmp_path / f"{name}.extxyz"))["sampling_coverage[train_test]"]
               for name in ("near", "far")}
    near_result, far_result = results["near"], results["far"]
    # held-out random-alloy trajectories pass the 99 % quantile (13 of 100 flagged) but only
    # one strained frame lies beyond twice it
    assert near_result.status == "passed", near_result.message
    assert near_result.details["extrapolating_fraction"] == pytest.approx(0.13)
    assert near_result.details["far_fraction"] == pytest.approx(0.01)
    # every cluster and surface frame lies beyond twice the bulk training spread (and their
    # two conditions, seen only in the test set, are uncovered cells)
    assert far_result.status == "failed" and far_result.details["far_fraction"] == pytest.approx(8 / 20)
    assert "test fraction beyond 2x the training spread  0.4 " in far_result.message
    assert far_result.quantity == "uncovered plan cells" and far_result.measured == 2
