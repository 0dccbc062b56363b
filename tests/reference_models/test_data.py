import numpy as np
import pytest

from reference_models import data


@pytest.fixture(scope="module")
def shipped():
    return data.load()


def test_shipped_file_is_small_and_complete(shipped):
    assert data.DATA_FILE.stat().st_size < 5e6
    assert 200 <= len(shipped) <= 1000
    assert len(shipped) == sum(c.n_trajectories * c.n_frames for c in data.PLAN)
    kinds = {(a.info["system"], a.info["config_type"]) for a in shipped}
    for system in ("Cu", "CuAu"):
        for config in ("md_bulk", "strain", "vacancy", "surface", "cluster", "dimer"):
            assert (system, config) in kinds
    dimers = [a for a in shipped if a.info["config_type"] == "dimer"]
    assert {str(a.symbols) for a in dimers} == {"Cu2", "CuAu", "Au2"}


def test_plan_metadata_present(shipped):
    temperatures = {a.info["temperature"] for a in shipped}
    assert max(temperatures) >= 2000  # above EMT's melting point
    for atoms in shipped:
        for key in ("system", "config_type", "temperature", "strain", "trajectory",
                    "frame", "fidelity", "oracle", "seed"):
            assert key in atoms.info
        assert np.shape(atoms.info["strain"]) == (6,)
        assert atoms.get_forces().shape == (len(atoms), 3)
        if atoms.info["config_type"] in ("cluster", "dimer", "atom"):
            assert not atoms.pbc.any()
            assert "stress" not in atoms.calc.results
        else:
            assert atoms.get_stress().shape == (6,)
    strains = np.array([a.info["strain"] for a in shipped if a.info["config_type"] == "strain"])
    assert np.abs(strains[:, 3:]).max() > 0.01 and np.abs(strains[:, :3]).max() > 0.03


def test_regenerates_to_round_off(shipped):
    """Same plan and seed give the same structures and labels; labels agree to
    float64 round-off (forces are stored to 8 decimals; the last digit of an EMT stress depends on the BLAS/SIMD
    summation order of the machine, seen: 1e-16 relative)."""
    select = [0, 31, len(data.trajectories()) - 1]  # Cu MD, a strain series, a dimer scan
    fresh = data.generate(select=select)
    tids = {a.info["trajectory"] for a in fresh}
    stored = [a for a in shipped if a.info["trajectory"] in tids]
    assert len(fresh) == len(stored) > 0
    for new, old in zip(fresh, stored):
        assert new.info.keys() == old.info.keys()
        for key, value in old.info.items():
            np.testing.assert_array_equal(new.info[key], value)
        assert str(new.symbols) == str(old.symbols)
        np.testing.assert_allclose(new.positions, old.positions, rtol=0, atol=1e-12)
        np.testing.assert_allclose(new.get_forces(), old.get_forces(), rtol=0, atol=5.1e-9)  # 8 decimals
        assert new.get_potential_energy() == pytest.approx(old.get_potential_energy(), rel=1e-13)
        if old.pbc.all():
            np.testing.assert_allclose(new.get_stress(), old.get_stress(), rtol=1e-12, atol=1e-15)


def test_labels_consistent_with_stored_positions(shipped):
    atoms = shipped[7]
    relabelled = data.label(atoms.copy())
    np.testing.assert_allclose(relabelled.get_forces(), atoms.get_forces(), atol=1e-8)
    assert relabelled.get_potential_energy() == pytest.approx(atoms.get_potential_energy(), abs=1e-9)


def test_split_by_trajectory(shipped):
    train, test = data.split_by_trajectory(shipped)
    assert len(train) + len(test) == len(shipped)
    train_ids = {a.info["trajectory"] for a in train}
    test_ids = {a.info["trajectory"] for a in test}
    assert not train_ids & test_ids
    assert 0.1 < len(test) / len(shipped) < 0.35
    assert {a.info["system"] for a in test} == {"Cu", "CuAu"}
    # every plan condition with several trajectories has one in each set
    conditions = {a.info["condition"] for a in test}
    assert conditions == {a.info["condition"] for a in shipped
                          if a.info["config_type"] not in ("dimer", "atom")}
    again = data.split_by_trajectory(shipped)[1]
    assert [a.info["trajectory"] for a in again] == [a.info["trajectory"] for a in test]


def test_low_fidelity_is_biased_and_noisy(shipped):
    sample = shipped[:6]
    low = data.low_fidelity_labels(sample, seed=3)
    assert all(a.info["fidelity"] == "low" for a in low)
    diff = np.array([lo.get_potential_energy() - hi.get_potential_energy()
                     for lo, hi in zip(low, sample)])
    assert np.all(np.abs(diff) > 1e-3)
    again = data.low_fidelity_labels(sample, seed=3)
    assert [a.get_potential_energy() for a in again] == [a.get_potential_energy() for a in low]


def test_split_command_writes_labelled_train_test_and_plan(tmp_path):
    from conformance.audits.data import read_labelled

    data.main(["--split", str(tmp_path / "demo")])
    train = read_labelled(tmp_path / "demo" / "train.extxyz", species=["Cu", "Au"])
    test = read_labelled(tmp_path / "demo" / "test.extxyz", species=["Cu", "Au"])
    assert (len(train), len(test)) == (530, 164)
    assert not {a.info["trajectory"] for a in train} & {a.info["trajectory"] for a in test}
    assert (tmp_path / "demo" / "plan.json").read_text() == data.DATA_FILE.with_name("plan.json").read_text()
