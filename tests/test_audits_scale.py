"""Data audits at scale: streamed partitions on Dask give the in-memory audits' findings,
on a local cluster and on a running scheduler; bad shards are named and the good
partitions kept; the approximate neighbour index agrees with the exact one."""

import sys

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from benchmarks.synthetic import emt_batch, extxyz_frame, structure
from conformance.audits import engine
from conformance.audits.data import DataError
from conformance.audits.engine import audit_data
from conformance.audits.leakage import (Moments, Whitener, fourth_moment, mahalanobis_leakage,
                                        structure_descriptors)
from conformance.audits.outliers import influential_outliers
from conformance.audits.sampling import sampling_coverage
from conformance.audits.stream import expand_paths, partitions, read_partition

SPECIES = ["Cu", "Au"]


def _labelled(indices, seed=7):
    """Synthetic EMT-labelled frames (2-8 atoms) with their labels attached."""
    frames = [structure(seed, int(k)) for k in indices]
    for atoms, labels in zip(frames, emt_batch(frames)):
        atoms.calc = SinglePointCalculator(atoms, **labels)
    return frames


def _write(path, frames, corrupt=()):
    text = []
    for k, atoms in enumerate(frames):
        labels = dict(atoms.calc.results)
        if k in corrupt:
            labels["energy"] += 1.0
        text.append(extxyz_frame(atoms, labels))
    path.write_text("".join(text))


@pytest.fixture(autouse=True)
def _fresh_engine_cache():
    engine._DONE.clear()
    yield
    engine._DONE.clear()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """120 training frames in three shards (frame 50 with +1 eV on its energy), 30 test
    frames of which 3 copy training frames."""
    folder = tmp_path_factory.mktemp("shards")
    train = _labelled(range(120))
    test = _labelled(range(1000, 1027)) + [train[k].copy() for k in (5, 64, 101)]
    for atoms, k in zip(test[27:], (5, 64, 101)):
        atoms.calc = SinglePointCalculator(atoms, **train[k].calc.results)
    for s in range(3):
        _write(folder / f"train-{s}.extxyz", train[40 * s:40 * (s + 1)],
               corrupt=(10,) if s == 1 else ())
    _write(folder / "test.extxyz", test)
    corrupted = [a.copy() for a in train]
    labels = dict(train[50].calc.results, energy=train[50].calc.results["energy"] + 1.0)
    corrupted[50].calc = SinglePointCalculator(corrupted[50], **labels)
    for atoms, source in zip(corrupted, train):
        if atoms.calc is None:
            atoms.calc = SinglePointCalculator(atoms, **source.calc.results)
    return folder, corrupted, test


def test_streamed_audit_on_a_local_cluster_equals_the_in_memory_audits(shards):
    folder, train, test = shards
    calls = []
    result = audit_data(str(folder / "train-*.extxyz"), str(folder / "test.extxyz"),
                        species=SPECIES, dask="threads:2", partition_size=25,
                        progress=lambda done, total, what: calls.append((done, total, what)))
    assert result.n_train == 120 and result.n_test == 30 and result.n_partitions == 8
    assert result.workers == 2 and result.index == "exact"
    assert ("features", 8) in {(what, total) for _, total, what in calls}
    assert ("influence", 6) in {(what, total) for _, total, what in calls}
    assert result.peak_memory["client"] > 50 and result.peak_memory["largest worker"] > 50
    # the in-memory audits on the same frames, read back from the files (positions
    # rounded to the file's 10 decimals)
    train_l = [a for p in partitions(str(folder / "train-*.extxyz")) for a in read_partition(p)]
    test_l = read_partition(partitions(str(folder / "test.extxyz"))[0])
    leak = mahalanobis_leakage(train_l, test_l)
    assert sorted(leak.pairs["test_index"]) == sorted(result.leakage.pairs["test_index"]) \
        == [27, 28, 29]
    assert sorted(result.leakage.pairs["train_index"]) == sorted(leak.pairs["train_index"]) \
        == [5, 64, 101]
    np.testing.assert_allclose(result.leakage.nn_distance, leak.nn_distance, rtol=1e-9,
                               atol=1e-12)
    assert result.leakage.threshold == pytest.approx(leak.threshold, rel=1e-9)
    out = influential_outliers(train_l, test_l)
    cooks = out.table["cooks_distance"]
    np.testing.assert_allclose(result.outliers.table["cooks_distance"], cooks, rtol=1e-6,
                               atol=1e-9 * cooks.max())       # sums in another order
    # 120 small structures for 424 parameters: the +1 eV frame is flagged (not gross)
    assert result.outliers.flagged == out.flagged and 50 in out.flagged
    assert result.outliers.label_errors == out.label_errors
    assert result.outliers.table.loc[50, "robust_z"] == pytest.approx(
        out.table.loc[50, "robust_z"], rel=1e-6)
    np.testing.assert_allclose(result.outliers.errors["forces"], out.errors["forces"], rtol=1e-6)
    cover = sampling_coverage(train_l, test_l, plan="observed")
    assert result.coverage.cells["cell"].tolist() == cover.cells["cell"].tolist()
    assert result.coverage.cells["n_train"].tolist() == cover.cells["n_train"].tolist()
    assert result.coverage.threshold == pytest.approx(cover.threshold, rel=1e-9)
    assert result.coverage.extrapolating_fraction == cover.extrapolating_fraction


def test_the_same_graph_runs_on_a_running_distributed_scheduler(shards):
    from distributed import LocalCluster

    folder, _, _ = shards
    local = audit_data(str(folder / "train-*.extxyz"), str(folder / "test.extxyz"),
                       species=SPECIES, dask="threads:1", partition_size=40,
                       audits=("leakage", "coverage"))
    engine._DONE.clear()
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0",
                      scheduler_kwargs={"dashboard": False}) as cluster:
        before = cluster.scheduler.transition_counter
        remote = audit_data(str(folder / "train-*.extxyz"), str(folder / "test.extxyz"),
                            species=SPECIES, dask=cluster.scheduler_address, partition_size=40,
                            audits=("leakage", "coverage"))
        assert cluster.scheduler.transition_counter - before >= 4 * 3   # 4 tasks ran there
        assert cluster.status.name == "running"                        # and it was left running
    assert remote.workers == 1
    assert remote.leakage.pairs.equals(local.leakage.pairs)
    assert remote.coverage.threshold == local.coverage.threshold


def test_above_the_exact_limit_the_approximate_index_finds_the_same_leaks(shards):
    folder, _, _ = shards
    args = (str(folder / "train-*.extxyz"), str(folder / "test.extxyz"))
    exact = audit_data(*args, species=SPECIES, dask="threads:1", audits=("leakage", "coverage"))
    engine._DONE.clear()
    approximate = audit_data(*args, species=SPECIES, dask="threads:1", exact_limit=10,
                             audits=("leakage", "coverage"))
    assert (exact.index, approximate.index) == ("exact", "approximate")
    # the same (test, train) pairs; their order by distance may differ among near-duplicates
    # (distances ~1e-6 apart in the float32 index)
    found = [report.leakage.pairs.sort_values("test_index")[["test_index", "train_index"]]
             .values.tolist() for report in (approximate, exact)]
    assert found[0] == found[1] and exact.leakage.n_leaked == 3
    np.testing.assert_allclose(approximate.leakage.nn_distance, exact.leakage.nn_distance,
                               rtol=1e-4, atol=1e-5)                  # float32 index
    assert approximate.coverage.threshold == pytest.approx(exact.coverage.threshold, rel=1e-4)


def test_bad_shards_are_named_with_their_frames_and_good_partitions_are_kept(shards, tmp_path):
    folder, train, _ = shards
    good = _labelled(range(200, 230))
    _write(tmp_path / "a-good.extxyz", good)
    unlabelled = [a.copy() for a in good[:5]]                  # frame 3 has no calculator
    for k, atoms in enumerate(unlabelled):
        if k != 3:
            atoms.calc = SinglePointCalculator(atoms, **good[k].calc.results)
    from ase.io import write

    write(tmp_path / "b-unlabelled.extxyz", unlabelled)
    nickel = _labelled(range(300, 304))
    nickel[2].symbols[0] = "Ni"
    _write(tmp_path / "c-nickel.extxyz", nickel)
    (tmp_path / "d-garbage.extxyz").write_text("2\nLattice=\"1 0 0\"\nCu 0 0\n")
    with pytest.raises(DataError) as info:
        audit_data(str(tmp_path / "*.extxyz"), None, species=SPECIES, dask="threads:1",
                   partition_size=10, audits=("coverage",))
    assert "d-garbage.extxyz: cannot read structures" in str(info.value)
    (tmp_path / "d-garbage.extxyz").unlink()
    with pytest.raises(DataError) as info:
        audit_data(str(tmp_path / "*.extxyz"), None, species=SPECIES, dask="threads:1",
                   partition_size=10, audits=("coverage",))
    message = str(info.value)
    assert "b-unlabelled.extxyz: no energy in frame 3" in message
    assert "c-nickel.extxyz: species not known to the model: Ni (frame 2)" in message
    assert "[features: 3 of 5 partitions read and kept" in message
    kept = [key for key in engine._DONE if key[0] == "features"]
    assert sorted(key[2].path.rsplit("/", 1)[-1] for key in kept) == ["a-good.extxyz"] * 3
    for name in ("b-unlabelled.extxyz", "c-nickel.extxyz"):
        (tmp_path / name).unlink()
    result = audit_data(str(tmp_path / "*.extxyz"), None, species=SPECIES, dask="threads:1",
                        partition_size=10, audits=("coverage",))
    assert result.n_train == 30


def test_exact_and_approximate_indexes_find_the_same_leaks():
    from benchmarks.bench_audits import descriptor_sets

    train, test, planted = descriptor_sets(8000)
    exact = mahalanobis_leakage(train, test, index="exact")
    approximate = mahalanobis_leakage(train, test, index="approximate")
    assert exact.n_leaked >= len(planted) == 80
    assert set(exact.pairs["test_index"]) == set(approximate.pairs["test_index"])
    pairs = lambda r: sorted(zip(r.pairs["test_index"], r.pairs["train_index"]))  # noqa: E731
    assert pairs(exact) == pairs(approximate)
    assert np.mean(exact.nn_index == approximate.nn_index) > 0.995
    assert approximate.threshold == pytest.approx(exact.threshold, rel=0.05)


def test_whitening_from_partition_moments_equals_the_whole_fit():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + [5, 0, 0, 0, 0, 0]
    x[:, 2] = 1.7                                               # constant: set aside
    moments = Moments.of(x[:120]).combine(Moments.of(x[120:300])).combine(Moments.of(x[300:]))
    chunks = lambda: iter((x[:250], x[250:]))  # noqa: E731
    streamed = Whitener.from_moments(moments, fourth_moment(chunks))
    whole = Whitener.fit(x)
    assert streamed.keep.tolist() == whole.keep.tolist() == [True, True, False, True, True, True]
    assert streamed.shrinkage == pytest.approx(whole.shrinkage, rel=1e-10)
    np.testing.assert_allclose(streamed.transform(x), whole.transform(x), rtol=1e-9, atol=1e-9)


def test_files_globs_and_ase_databases_are_partitions(shards, tmp_path):
    import ase.db

    folder, train, _ = shards
    files = expand_paths(f"{folder / 'train-*.extxyz'},{folder / 'test.extxyz'}")
    assert [f.name for f in files] == ["train-0.extxyz", "train-1.extxyz", "train-2.extxyz",
                                       "test.extxyz"]
    parts = partitions(str(folder / "train-*.extxyz"), partition_size=15)
    assert [(p.start, p.stop, p.offset) for p in parts[:4]] == [(0, 15, 0), (15, 30, 15),
                                                               (30, 40, 30), (0, 15, 40)]
    frames = read_partition(parts[3])
    assert len(frames) == 15
    assert frames[0].calc.results["energy"] == pytest.approx(train[40].calc.results["energy"])
    with ase.db.connect(str(tmp_path / "data.db")) as db:
        for atoms in train[:7]:
            db.write(atoms, config_type=atoms.info["config_type"])
    db_parts = partitions(str(tmp_path / "data.db"), partition_size=4)
    assert [len(p) for p in db_parts] == [4, 3]
    frames = read_partition(db_parts[1])
    assert frames[2].info["config_type"] == train[6].info["config_type"]
    np.testing.assert_allclose(frames[2].calc.results["forces"], train[6].calc.results["forces"])
    with pytest.raises(DataError, match="nothing-\\*.extxyz: pattern matches no file"):
        partitions(str(tmp_path / "nothing-*.extxyz"))


def test_a_missing_dask_is_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(DataError, match=r"install it with .*mlip-conformance\[data\]"):
        engine.require_dask()


def test_pooled_descriptors_of_a_batch_equal_one_structure_at_a_time():
    from conformance.audits.leakage import default_descriptor
    from conformance.featurize.batch import pooled_descriptors

    frames = _labelled(range(40))
    descriptor = default_descriptor(SPECIES)
    np.testing.assert_allclose(pooled_descriptors(frames, descriptor, batch_atoms=37),
                               structure_descriptors(frames, descriptor), rtol=1e-12,
                               atol=1e-12)
    frames[9].symbols[0] = "Ni"
    with pytest.raises(ValueError, match="structure 9: unsupported species"):
        pooled_descriptors(frames, descriptor, batch_atoms=37)
