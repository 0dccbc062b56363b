"""Mahalanobis leakage: planted duplicates and near-duplicates are flagged, an
independent test set (the shipped split by trajectory) is not."""

import numpy as np
import pandas as pd
import pytest
from ase.build import bulk, make_supercell
from scipy.spatial.transform import Rotation

from conformance.audits.data import DataError
from conformance.audits.leakage import (Whitener, deduplicate, ledoit_wolf_shrinkage,
                                        mahalanobis_leakage, structure_descriptors)


@pytest.fixture(scope="module")
def split():
    from reference_models import data

    return data.split_by_trajectory(data.load())


@pytest.fixture(scope="module")
def descriptors(split):
    train, test = split
    return structure_descriptors(train), structure_descriptors(test)


def _rattled(atoms, rng, sigma=1e-3):
    new = atoms.copy()
    new.positions += rng.normal(0.0, sigma, new.positions.shape)
    return new


def _moved(atoms, seed):
    """Translated, rotated (cell with it) and permuted copy: the same structure."""
    new = atoms.copy()
    rot = Rotation.random(random_state=seed).as_matrix()
    new.positions = new.positions @ rot.T + [1.3, -0.7, 2.1]
    if new.pbc.any():
        new.set_cell(new.cell.array @ rot.T, scale_atoms=False)
        new.wrap()
    return new[np.random.default_rng(seed).permutation(len(new))]


def test_independent_test_split_does_not_leak(split, descriptors):
    train, test = split
    report = mahalanobis_leakage(*descriptors)
    assert report.n_leaked == 0, report.summary()
    assert report.n_train == len(train) and report.n_test == len(test)
    # the closest independent structure is clearly above the threshold
    assert report.ratio.min() > 1.3 * report.threshold
    assert report.pairs.empty and report.leaked_fraction == 0.0


def test_every_rattled_training_structure_is_flagged(split, descriptors):
    train, _ = split
    rng = np.random.default_rng(0)
    copies = structure_descriptors([_rattled(a, rng) for a in train])
    report = mahalanobis_leakage(descriptors[0], copies)
    assert report.n_leaked == len(train)
    assert (report.pairs.sort_values("test_index")["train_index"].to_numpy()
            == np.arange(len(train))).all()
    assert report.pairs["relative"].max() < 0.9


def test_planted_copies_in_the_test_set_are_found_with_their_originals(split):
    train, test = split
    rng = np.random.default_rng(1)
    picks = [0, 57, 133, 250, 311, 420, len(train) - 1]
    planted = ([train[k].copy() for k in picks[:2]]                      # duplicates
               + [_rattled(train[k], rng) for k in picks[2:5]]           # 1e-3 Å
               + [_moved(train[k], k) for k in picks[5:]])               # symmetry copies
    mixed = list(test) + planted
    report = mahalanobis_leakage(train, mixed)
    pairs = report.pairs.sort_values("test_index")
    assert pairs["test_index"].tolist() == list(range(len(test), len(mixed)))
    assert pairs["train_index"].tolist() == picks
    exact = pairs[pairs["test_index"].isin([len(test), len(test) + 1, len(mixed) - 2,
                                             len(mixed) - 1])]
    assert (exact["distance"] < 1e-9).all()
    assert "7 of" in report.summary()


def test_supercell_of_a_training_structure_is_the_same_data(split):
    train, test = split
    k = next(i for i, a in enumerate(train) if a.info["config_type"] == "md_bulk")
    big = make_supercell(train[k], np.diag([2, 1, 1]))
    report = mahalanobis_leakage(train, [big] + list(test[:5]))
    assert report.pairs["test_index"].tolist() == [0]
    assert report.pairs["train_index"].tolist() == [k]


def test_model_errors_with_and_without_leaked_structures(split, descriptors):
    train, test = split
    x_train, x_test = descriptors
    planted = np.vstack([x_test, x_train[:4]])
    # a memorising model: exact on the copies of training structures, 10 meV/atom off elsewhere
    errors = pd.DataFrame(dict(energy_error=np.r_[np.full(len(x_test), 0.01), np.zeros(4)],
                               force_sse=np.r_[np.full(len(x_test), 96 * 0.04), np.zeros(4)],
                               n_force=96))
    report = mahalanobis_leakage(x_train, planted, test_errors=errors)
    table = report.errors.set_index("subset")
    assert table.loc["leaked", "n_structures"] == 4
    assert table.loc["without leaked", "energy_rmse"] == pytest.approx(0.01)
    assert table.loc["all", "energy_rmse"] < table.loc["without leaked", "energy_rmse"]
    assert table.loc["without leaked", "force_rmse"] == pytest.approx(0.2)


def test_model_is_evaluated_on_test_structures(split):
    from ase.calculators.emt import EMT

    from conformance.audits.data import check_labelled

    train, test = split
    copy = check_labelled([train[3]])          # a labelled copy
    report = mahalanobis_leakage(train[:60], copy + list(test[:3]), model=EMT())
    table = report.errors.set_index("subset")
    assert table.loc["leaked", "n_structures"] == 1
    assert table.loc["all", "energy_rmse"] < 1e-6      # EMT is the oracle of the labels
    with pytest.raises(DataError, match="structure 0 .* has no energy and no forces label"):
        mahalanobis_leakage(train[:60], [train[3].copy()], model=EMT())


def test_species_absent_from_training_is_off_support_not_a_leak(split):
    train, _ = split
    cu_only = [a for a in train if set(a.get_chemical_symbols()) == {"Cu"}][:80]
    gold = bulk("Au", cubic=True).repeat(2)
    from reference_models.descriptors import Descriptor

    from conformance.audits.leakage import LEAKAGE_DESCRIPTOR

    d = Descriptor(["Cu", "Au"], **LEAKAGE_DESCRIPTOR)
    report = mahalanobis_leakage(cu_only, [gold, cu_only[0].copy()], descriptor=d)
    assert report.off_support.tolist() == [True, False]
    assert report.pairs["test_index"].tolist() == [1]


def test_exact_duplicates_inside_the_training_set_are_merged_and_counted(descriptors):
    x_train, x_test = descriptors
    doubled = np.vstack([x_train, x_train[:5]])
    report = mahalanobis_leakage(doubled, np.vstack([x_test, x_train[7:8]]))
    assert report.train_duplicates == 5
    assert report.pairs["test_index"].tolist() == [len(x_test)]
    unique, rep = deduplicate(np.array([[0.0], [1.0], [0.0], [2.0], [1.0]]))
    assert unique.tolist() == [0, 1, 3] and rep.tolist() == [0, 1, 0, 3, 1]


def test_chunking_and_threads_do_not_change_the_result(descriptors):
    a = mahalanobis_leakage(*descriptors)
    b = mahalanobis_leakage(*descriptors, chunk_size=7, workers=1)
    np.testing.assert_array_equal(a.nn_index, b.nn_index)
    np.testing.assert_allclose(a.nn_distance, b.nn_distance, rtol=1e-12)
    assert a.threshold == b.threshold


def test_whitened_distance_is_the_regularised_mahalanobis_distance():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 8)) @ rng.normal(size=(8, 8)) * [1, 10, 100, 1, 1, 1e-3, 1, 1]
    x[:, 3] = 2.5                                   # a constant column is set aside
    w = Whitener.fit(x)
    keep = np.arange(8) != 3
    z = (x[:, keep] - x[:, keep].mean(0)) / x[:, keep].std(0)
    corr = z.T @ z / len(z)
    reg = (1 - w.shrinkage) * corr + w.shrinkage * np.trace(corr) / 7 * np.eye(7)
    diff = z[1] - z[2]
    expected = np.sqrt(diff @ np.linalg.solve(reg, diff))
    assert w.distance(x[1:2], x[2:3])[0] == pytest.approx(expected, rel=1e-10)
    assert w.dimension == 7
    assert w.off_support(np.r_[x[0:1], x[0:1] + [0, 0, 0, 1, 0, 0, 0, 0]]).tolist() == [False, True]


def test_ledoit_wolf_intensity_against_its_definition():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(30, 5)) @ np.diag([3.0, 1.0, 1.0, 0.5, 0.2])
    z -= z.mean(0)
    n, p = z.shape
    s = z.T @ z / n
    mu = np.trace(s) / p
    d2 = np.sum((s - mu * np.eye(p)) ** 2)
    b2 = sum(np.sum((np.outer(zk, zk) - s) ** 2) for zk in z) / n ** 2
    assert ledoit_wolf_shrinkage(z) == pytest.approx(min(b2, d2) / d2, rel=1e-12)
    iso = rng.normal(size=(2000, 4))
    assert ledoit_wolf_shrinkage(iso - iso.mean(0)) > 0.5       # identity target is right


def test_bad_inputs_raise_data_errors():
    with pytest.raises(DataError, match="training set: no structures"):
        mahalanobis_leakage([], [bulk("Cu")])
    with pytest.raises(DataError, match="at least 2"):
        Whitener.fit(np.zeros((1, 3)))
    with pytest.raises(DataError, match="differ in width"):
        mahalanobis_leakage(np.random.default_rng(0).normal(size=(10, 3)), np.zeros((2, 4)))
    with pytest.raises(DataError, match="unsupported species"):
        from reference_models.descriptors import Descriptor

        structure_descriptors([bulk("Ni")], Descriptor(["Cu"]))
