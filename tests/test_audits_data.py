"""Data files for the audits: clear errors for bad files, and the data family end to end
(``conformance.audit`` and ``pytest --mlip-train/--mlip-test`` in an empty directory)."""

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from conformance import audit
from conformance.audits.data import (DataError, check_labelled, labels, read_labelled,
                                     structure_errors)


def _labelled(symbol="Cu", n=3, seed=0):
    frames = []
    for k in range(n):
        atoms = bulk(symbol, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=seed + k)
        atoms.calc = EMT()
        atoms.get_forces()
        frames.append(atoms)
    return frames


def test_a_file_without_forces_names_the_file_and_the_frames(tmp_path):
    frames = _labelled()
    unlabelled = frames[1].copy()          # no calculator: no energy, no forces
    energy_only = frames[2].copy()
    energy_only.info["energy"] = -1.0
    path = tmp_path / "train.extxyz"
    write(path, [frames[0], unlabelled, energy_only])
    with pytest.raises(DataError) as info:
        read_labelled(path)
    message = str(info.value)
    assert str(path) in message
    assert "no energy in frame 1" in message and "no forces in frames 1, 2 of 3" in message
    assert isinstance(info.value, ValueError)


def test_unknown_species_empty_missing_and_unreadable_files(tmp_path):
    path = tmp_path / "alloy.extxyz"
    write(path, _labelled("Cu", 2) + _labelled("Ni", 1))
    with pytest.raises(DataError, match=r"alloy.extxyz: species not known to the model: "
                                        r"Ni \(frame 2\); the model knows Cu, Au"):
        read_labelled(path, species=["Cu", "Au"])
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.extxyz: empty file"):
        read_labelled(empty)
    with pytest.raises(DataError, match="nothere.extxyz: no such file"):
        read_labelled(tmp_path / "nothere.extxyz")
    garbage = tmp_path / "garbage.extxyz"
    garbage.write_text("hello\nworld\n")
    with pytest.raises(DataError, match="garbage.extxyz: cannot read structures"):
        read_labelled(garbage)
    with pytest.raises(DataError, match="training set: no structures"):
        check_labelled([], "training set")


def test_labels_from_info_and_arrays_and_model_errors():
    atoms = bulk("Cu", cubic=True)
    atoms.rattle(0.05, seed=1)
    work = atoms.copy()
    work.calc = EMT()
    atoms.info["energy"] = work.get_potential_energy()
    atoms.arrays["forces"] = work.get_forces()
    atoms.info["stress"] = work.get_stress(voigt=False)
    lab = labels(atoms)
    assert set(lab) == {"energy", "forces", "stress"} and lab["stress"].shape == (6,)
    checked = check_labelled([atoms])
    assert checked[0].calc.results["energy"] == lab["energy"] and atoms.calc is None
    errors = structure_errors(EMT(), checked)
    assert errors["energy_error"].abs().max() < 1e-12 and errors["force_rmse"].max() < 1e-12


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    """Cu bulk MD: two trajectories per temperature for training, a third for testing,
    and a leaky test set holding two training frames."""
    from reference_models import data

    md = [a for a in data.load() if (a.info["system"], a.info["config_type"]) == ("Cu", "md_bulk")]
    train = [a for a in md if a.info["replica"] in (0, 1)]
    test = [a for a in md if a.info["replica"] == 2]
    folder = tmp_path_factory.mktemp("data")
    write(folder / "train.extxyz", train)
    write(folder / "test.extxyz", test)
    write(folder / "leaky.extxyz", test[:5] + train[3:5])
    return folder, len(train), len(test)


def test_audit_runs_the_data_family_on_files(data_files):
    folder, n_train, n_test = data_files
    report = audit("ase:EMT", species=["Cu", "Au"], checks=["data"],
                   train=str(folder / "train.extxyz"), test=str(folder / "leaky.extxyz"))
    df = report.df.set_index("check")
    assert set(df.index) == {"mahalanobis_leakage", "influential_outliers", "sampling_coverage",
                             "cutoff_convergence"}
    assert report["cutoff_convergence[train_test]"].status == "skipped"      # optional
    assert set(df["case"]) == {"train_test"}
    leak = report["mahalanobis_leakage[train_test]"]
    assert leak.status == "failed" and leak.measured == pytest.approx(2 / 7)
    assert "test 5 ~ train 3" in leak.message and "--mlip-train=" in leak.message
    assert leak.n_calls == 7                                   # one per test structure
    assert leak.details["pairs"]["train_index"] == [3, 4]
    clean = audit("ase:EMT", species=["Cu", "Au"], checks=["mahalanobis_leakage"],
                  train=str(folder / "train.extxyz"), test=str(folder / "test.extxyz"))
    assert clean["mahalanobis_leakage[train_test]"].status == "passed"


def test_without_data_files_there_is_no_data_item():
    report = audit(EMT(), species=["Cu"], checks=["data"])
    assert len(report.df) == 0


def test_only_a_training_set_skips_the_leakage_check(data_files):
    folder, _, _ = data_files
    report = audit("ase:EMT", species=["Cu", "Au"], checks=["mahalanobis_leakage"],
                   train=str(folder / "train.extxyz"))
    result = report["mahalanobis_leakage[train_test]"]
    assert result.status == "skipped" and "--mlip-test" in result.message


def test_a_bad_data_file_is_an_error_result_naming_it(tmp_path):
    path = tmp_path / "nickel.extxyz"
    write(path, _labelled("Ni", 3))
    report = audit("ase:EMT", species=["Cu"], checks=["sampling_coverage"], train=str(path))
    result = report["sampling_coverage[train_test]"]
    assert result.status == "error"
    assert result.message.startswith("input error: ") and "Traceback" not in result.message
    assert "nickel.extxyz: species not known to the model: Ni (frames 0, 1, 2)" in result.message


def test_pytest_in_an_empty_directory_with_train_and_test_files(pytester, data_files):
    folder, _, _ = data_files
    result = pytester.runpytest_subprocess(
        "--mlip-model=ase:EMT", "--mlip-species=Cu,Au", f"--mlip-train={folder / 'train.extxyz'}",
        f"--mlip-test={folder / 'leaky.extxyz'}", "--mlip-checks=data", "--mlip-report=r.json",
        "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*mahalanobis_leakage?train_test? (data) FAILED*",
                                 "*leaked test fraction = 0.286 > tolerance 0*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("passed", 0) == 3
    results = json.loads((pytester.path / "r.json").read_text())["results"]
    assert {r["check"] for r in results} == {"mahalanobis_leakage", "influential_outliers",
                                            "sampling_coverage", "cutoff_convergence"}
    leak = next(r for r in results if r["check"] == "mahalanobis_leakage")
    assert leak["details"]["n_leaked"] == 2 and np.isclose(leak["measured"], 2 / 7)
