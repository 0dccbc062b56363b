"""Grouped Cook's distance: exact against statsmodels and brute-force refits; planted
corrupted labels in the shipped EMT training set rank at the top and are pruned."""

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from conformance.audits.data import labels
from conformance.audits.outliers import (grouped_cooks_distance, influential_outliers,
                                         ridge_penalty)


def test_one_row_per_group_is_the_classical_cooks_distance_of_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    from statsmodels.stats.outliers_influence import OLSInfluence

    rng = np.random.default_rng(1)
    X = np.c_[np.ones(40), rng.normal(size=(40, 3))]
    y = X @ [0.5, 1.0, -2.0, 0.3] + rng.normal(0, 0.2, 40)
    y[[5, 17]] += [1.5, -2.0]
    ours = grouped_cooks_distance(X, y, np.arange(40))
    reference = OLSInfluence(sm.OLS(y, X).fit())
    np.testing.assert_allclose(ours.table["cooks_distance"], reference.cooks_distance[0],
                               rtol=1e-10)
    np.testing.assert_allclose(ours.leverage, reference.hat_matrix_diag, rtol=1e-10)
    np.testing.assert_allclose(ours.studentized, reference.resid_studentized_internal, rtol=1e-10)
    assert ours.p == pytest.approx(4.0)
    assert set(ours.table["cooks_distance"].nlargest(2).index) == {5, 17}


def _brute_force(X, y, groups, w, ridge, kinds, result):
    """(b - b_(g))^T X^T W X (b - b_(g)) / (p s²) by refitting without each group."""
    xw, yw = X * w[:, None], y * w
    b = np.linalg.solve(xw.T @ xw + np.diag(ridge), xw.T @ yw)
    out = {"cooks_distance": [], **{f"cooks_{k}": [] for k in np.unique(kinds)}}
    for g in result.table["group"]:
        keep = groups != g
        bg = np.linalg.solve(xw[keep].T @ xw[keep] + np.diag(ridge), xw[keep].T @ yw[keep])
        d = b - bg
        out["cooks_distance"].append(d @ xw.T @ xw @ d / (result.p * result.s2))
        for k in np.unique(kinds):
            xk = xw[kinds == k]
            st = result.kinds[k]
            out[f"cooks_{k}"].append(d @ xk.T @ xk @ d / (st["p"] * st["s2"]))
    return b, out


def test_grouped_weighted_ridge_distance_equals_refitting_without_each_group():
    rng = np.random.default_rng(2)
    n, p = 300, 7
    X = rng.normal(size=(n, p))
    y = X @ rng.normal(size=p) + rng.normal(0, 0.3, n)
    groups = rng.integers(0, 25, n)            # unequal group sizes, unsorted rows
    w = rng.uniform(0.5, 2.0, n)
    kinds = np.where(rng.random(n) < 0.2, "energy", "forces")
    xw = X * w[:, None]
    ridge = ridge_penalty(np.einsum("ij,ij->j", xw, xw), 1e-2, n_unpenalised=1)
    result = grouped_cooks_distance(X, y, groups, weights=w, ridge=ridge, kinds=kinds,
                                    chunk_groups=3)
    b, expected = _brute_force(X, y, groups, w, ridge, kinds, result)
    np.testing.assert_allclose(result.theta, b, rtol=1e-10)
    for column, values in expected.items():
        np.testing.assert_allclose(result.table[column], values, rtol=1e-8)
    # the property-resolved distances decompose the total one
    total = sum(result.table[f"cooks_{k}"] * st["p"] * st["s2"] for k, st in result.kinds.items())
    np.testing.assert_allclose(total / (result.p * result.s2), result.table["cooks_distance"],
                               rtol=1e-10)


def test_a_group_that_alone_determines_a_parameter_has_infinite_distance():
    rng = np.random.default_rng(3)
    X = np.c_[np.ones(12), rng.normal(size=12), np.r_[np.zeros(10), 1.0, 2.0]]
    y = rng.normal(size=12)
    groups = np.r_[np.arange(10), 10, 10]      # the last group carries column 2 alone
    result = grouped_cooks_distance(X, y, groups)
    assert np.isinf(result.table["cooks_distance"].iloc[-1])
    assert np.isfinite(result.table["cooks_distance"].iloc[:-1]).all()


def _corrupt(structures, energy_index, force_index):
    """Copies with +1 eV on one energy and the sign of one force (the largest) flipped."""
    out, flipped_atom = [], None
    for k, atoms in enumerate(structures):
        lab = labels(atoms)
        if k == energy_index:
            lab["energy"] += 1.0
        if k == force_index:
            flipped_atom = int(np.argmax(np.linalg.norm(lab["forces"], axis=1)))
            lab["forces"] = lab["forces"].copy()
            lab["forces"][flipped_atom] *= -1.0
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(copy, **lab)
        out.append(copy)
    return out, flipped_atom


def _pick(structures, system, config_type, temperature):
    return next(k for k, a in enumerate(structures)
                if (a.info["system"], a.info["config_type"], a.info["temperature"])
                == (system, config_type, temperature))


def _check_planted(report, energy_index, force_index, flipped_atom, top):
    """The planted structures are flagged, name the right label, and rank in the ``top``
    of their property's Cook's distance; only structures that dominate the fit by the
    F rule (the most compressed strain frames) may rank above them."""
    t = report.table
    e, f = t.loc[energy_index], t.loc[force_index]
    assert e["suspect"] == "energy"
    assert f["suspect"] == "forces" and f["location"].startswith(f"atom {flipped_atom} ")
    assert e["flagged"] and f["flagged"]
    assert {energy_index, force_index} <= set(report.pruned)
    for row, column in ((e, "energy"), (f, "forces")):
        assert row[f"rank_{column}"] <= top, t.sort_values(f"cooks_{column}").tail()
        above = t[t[f"cooks_{column}"] > row[f"cooks_{column}"]]
        assert above["influential_F"].all(), above


#: Configuration types of the MD part of the shipped plan (the data set may grow other
#: kinds, e.g. dimer scans, which the linear reference fit cannot represent and which
#: dominate the influence ranking).
MD_KINDS = ("md_bulk", "strain", "vacancy", "surface", "cluster")


@pytest.fixture(scope="module")
def split():
    from reference_models import data

    md = [a for a in data.load() if a.info["config_type"] in MD_KINDS]
    return data.split_by_trajectory(md)


def test_planted_label_errors_rank_at_the_top_on_half_the_training_set(split):
    train, test = split[0][::2], split[1][::2]
    e_idx = _pick(train, "CuAu", "md_bulk", 900.0)
    f_idx = _pick(train, "Cu", "md_bulk", 1500.0)
    assert np.abs(labels(train[f_idx])["forces"]).max() > 1.0   # a flip well above the noise
    bad, atom = _corrupt(train, e_idx, f_idx)
    report = influential_outliers(bad, test)
    _check_planted(report, e_idx, f_idx, atom, top=3)
    change = report.improvement()
    # one flipped atom among ~8000 force rows: pruning it gains 1.1 % in test force RMSE
    assert change["energy"] < -0.1 and change["forces"] < -0.005 and change["loss"] < 0, change
    assert "influential outliers among" in report.summary()


@pytest.mark.slow
def test_planted_label_errors_on_the_full_training_set_and_pruning_helps(split):
    train, test = split
    e_idx = _pick(train, "CuAu", "md_bulk", 900.0)
    f_idx = _pick(train, "Cu", "md_bulk", 1500.0)
    bad, atom = _corrupt(train, e_idx, f_idx)
    report = influential_outliers(bad, test)
    _check_planted(report, e_idx, f_idx, atom, top=3)
    change = report.improvement()
    assert all(v < 0 for v in change.values()), change
    # only the planted labels are gross; deleting the whole 4/n screening list hurts
    assert report.label_errors == report.pruned and set(report.pruned) == {e_idx, f_idx}
    errors = report.errors.set_index("fit")
    assert report.n_flagged > 10
    assert errors.loc["all flagged removed", "loss"] > errors.loc["pruned", "loss"]


def test_honest_data_has_no_label_errors_but_planted_ones_fail_the_check(split, tmp_path):
    """The data check both ways: the honest half split passes (its worst label stands out
    less than 10x from its structure's fit), the same set with the two planted labels fails
    and names them."""
    from ase.io import write

    from conformance import audit

    train, test = split[0][::2], split[1][::2]
    e_idx = _pick(train, "CuAu", "md_bulk", 900.0)
    f_idx = _pick(train, "Cu", "md_bulk", 1500.0)
    bad, atom = _corrupt(train, e_idx, f_idx)
    write(tmp_path / "test.extxyz", test)
    verdicts = {}
    for name, frames in (("honest", train), ("planted", bad)):
        write(tmp_path / f"{name}.extxyz", frames)
        verdicts[name] = audit("ase:EMT", species=["Cu", "Au"], checks=["influential_outliers"],
                               train=str(tmp_path / f"{name}.extxyz"),
                               test=str(tmp_path / "test.extxyz"))["influential_outliers[train_test]"]
    honest, planted = verdicts["honest"], verdicts["planted"]
    assert honest.status == "passed" and honest.measured == 0
    assert honest.details["n_flagged"] > 0 and honest.details["pruned"] == []
    assert max(honest.details["top"]["robust_z"]) < 10
    assert planted.status == "failed" and planted.measured == 2
    assert set(planted.details["label_errors"]) == {e_idx, f_idx}
    assert f"training structure {e_idx}: energy " in planted.message
    assert f"training structure {f_idx}: forces atom {atom} " in planted.message
    assert planted.details["improvement"]["energy"] < -0.1


def test_influential_outliers_validates_its_arguments():
    with pytest.raises(ValueError, match="rule"):
        influential_outliers([], rule="3/n")
    from conformance.audits.data import DataError

    with pytest.raises(DataError, match="no structures"):
        influential_outliers([])
