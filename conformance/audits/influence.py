"""Grouped Cook's distance from accumulated normal equations, one partition at a time.

The arithmetic of :func:`conformance.audits.outliers.grouped_cooks_distance` split in
the two passes a data set too large for memory needs (see the outliers module for
the formulas):

1. every partition's weighted normal equations per row kind (:meth:`NormalStats.of`),
   summed (:meth:`NormalStats.combine`) and solved once (:meth:`LinearFit.from_stats`:
   Cholesky factor ``A + Lambda = L L^T``, parameters, per-kind leverage traces);
2. every partition's groups against that fit (:func:`group_influence`): leverages
   ``h`` of its rows, residuals, and per group ``v_g = Q_g^T (I - H_gg)^-1 e_g`` with
   ``Q_g = X_g L^-T``, hence ``b - b_(g)``, its quadratic forms with ``X^T X`` and with
   each kind's ``X_k^T X_k`` (accumulated in pass 1);
3. :func:`cooks_distance` joins the partitions: residual variances from the summed
   squared residuals, ``D_g = quad_g / (p s²)`` and per kind, studentised residuals.

The result is exactly that of the in-memory computation (which is this with one
partition); only the order of floating-point sums differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg

from .data import DataError


@dataclass
class CooksDistance:
    """Result of :func:`~conformance.audits.outliers.grouped_cooks_distance`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per group, in order of first appearance: ``group``, ``n_rows``,
        ``leverage`` (tr H_gg), ``cooks_distance`` (D_g), ``cooks_<kind>`` per kind,
        ``max_studentized`` (largest |studentised residual|), ``max_row`` (its row
        index in the input), ``suspect`` (its kind).
    theta : ndarray, shape (p_cols,)
        Fitted parameters.
    studentized : ndarray, shape (n_rows,)
        Studentised residuals (per-kind scale).
    leverage : ndarray, shape (n_rows,)
        Diagonal of the hat matrix.
    p, s2, dof : float
        Effective number of parameters tr(H), residual variance, n_rows - p.
    kinds : dict kind -> dict(p=..., s2=..., n=...)
        Per-kind effective parameters, residual variance and row count.
    """

    table: pd.DataFrame
    theta: np.ndarray
    studentized: np.ndarray = field(repr=False)
    leverage: np.ndarray = field(repr=False)
    p: float
    s2: float
    dof: float
    kinds: dict


__all__ = ["NormalStats", "LinearFit", "GroupInfluence", "group_influence", "cooks_distance"]


@dataclass
class NormalStats:
    """Weighted normal equations per row kind: ``X_k^T W² X_k``, ``X_k^T W² y_k``,
    ``y_k^T W² y_k`` and row counts."""

    gram: dict = field(default_factory=dict)
    xty: dict = field(default_factory=dict)
    yty: dict = field(default_factory=dict)
    rows: dict = field(default_factory=dict)

    @classmethod
    def of(cls, X, y, weights=None, kinds=None) -> "NormalStats":
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
        kind = _kinds(kinds, len(y))
        xw, yw = X * w[:, None], y * w
        out = cls()
        for k in dict.fromkeys(kind.tolist()):
            m = kind == k
            out.gram[k] = xw[m].T @ xw[m]
            out.xty[k] = xw[m].T @ yw[m]
            out.yty[k] = float(yw[m] @ yw[m])
            out.rows[k] = int(m.sum())
        return out

    def combine(self, other: "NormalStats") -> "NormalStats":
        out = NormalStats(dict(self.gram), dict(self.xty), dict(self.yty), dict(self.rows))
        for k in other.gram:
            if k in out.gram:
                out.gram[k] = out.gram[k] + other.gram[k]
                out.xty[k] = out.xty[k] + other.xty[k]
                out.yty[k] += other.yty[k]
                out.rows[k] += other.rows[k]
            else:
                out.gram[k], out.xty[k] = other.gram[k], other.xty[k]
                out.yty[k], out.rows[k] = other.yty[k], other.rows[k]
        return out

    @property
    def kinds(self) -> list:
        return list(self.gram)

    def total(self):
        """``(X^T W² X, X^T W² y)`` over all kinds."""
        return sum(self.gram.values()), sum(self.xty.values())

    def sse(self, theta, kind) -> float:
        """Weighted sum of squared residuals of one kind's rows."""
        value = theta @ self.gram[kind] @ theta - 2.0 * theta @ self.xty[kind] + self.yty[kind]
        return max(float(value), 0.0)


def _kinds(kinds, n: int) -> np.ndarray:
    return np.full(n, "all", dtype=object) if kinds is None else np.asarray(kinds, dtype=object)


@dataclass
class LinearFit:
    """Ridge least-squares fit from :class:`NormalStats` (pass 1 of the module doc).

    Attributes
    ----------
    used : ndarray of bool, shape (n_cols,)
        Columns with a non-zero diagonal (all-zero columns carry nothing).
    chol : ndarray, shape (p, p)
        Lower Cholesky factor of ``A + Lambda`` on the used columns.
    lam : ndarray, shape (p,)
        The ridge on the used columns.
    theta : ndarray, shape (n_cols,)
        Fitted parameters (0 on unused columns).
    gram : dict kind -> ndarray (p, p)
        ``X_k^T W² X_k`` on the used columns.
    p_kind : dict kind -> float
        ``tr((A + Lambda)^-1 X_k^T W² X_k)``: the kind's share of the effective
        number of parameters (equal to the sum of its rows' leverages).
    stats : NormalStats
    """

    used: np.ndarray
    chol: np.ndarray
    lam: np.ndarray
    theta: np.ndarray
    gram: dict
    p_kind: dict
    stats: NormalStats = field(repr=False)

    @classmethod
    def from_stats(cls, stats: NormalStats, ridge=None) -> "LinearFit":
        a, b = stats.total()
        used = np.diag(a) > 0
        a_used = a[np.ix_(used, used)]
        lam = np.zeros(int(used.sum())) if ridge is None else np.asarray(ridge, dtype=float)[used]
        try:
            chol = np.linalg.cholesky(a_used + np.diag(lam))
        except np.linalg.LinAlgError:
            raise DataError("the least-squares problem is singular (fewer independent rows "
                            "than parameters); add a ridge or more data") from None
        theta_used = scipy.linalg.cho_solve((chol, True), b[used])
        theta = np.zeros(len(b))
        theta[used] = theta_used
        gram = {k: g[np.ix_(used, used)] for k, g in stats.gram.items()}
        inverse = scipy.linalg.cho_solve((chol, True), np.eye(len(theta_used)))
        p_kind = {k: float(np.sum(inverse * g)) for k, g in gram.items()}
        return cls(used, chol, lam, theta, gram, p_kind, stats)

    @property
    def p(self) -> float:
        return float(sum(self.p_kind.values()))

    @property
    def n_rows(self) -> int:
        return int(sum(self.stats.rows.values()))

    def variance_estimate(self, kind=None) -> float:
        """Residual variance (all rows, or one kind) from the normal equations alone."""
        kinds = self.stats.kinds if kind is None else [kind]
        sse = sum(self.stats.sse(self.theta, k) for k in kinds)
        rows = sum(self.stats.rows[k] for k in kinds)
        p = sum(self.p_kind[k] for k in kinds)
        return sse / max(rows - p, 1e-12)


@dataclass
class GroupInfluence:
    """Pass 2 of one partition: its groups' influence on a :class:`LinearFit`.

    Attributes
    ----------
    labels : ndarray, shape (G,)
        Group labels in order of first appearance.
    n_rows, leverage, quad : ndarray, shape (G,)
        Rows, ``tr H_gg`` and ``(b - b_(g))^T A (b - b_(g))`` of every group.
    quad_kind : dict kind -> ndarray (G,)
        ``(b - b_(g))^T X_k^T W² X_k (b - b_(g))``.
    singular : ndarray of bool, shape (G,)
        Groups that alone determine a parameter (infinite distance).
    residual, hat : ndarray, shape (R,)
        Weighted residual and leverage of every row (input order).
    row_kind : ndarray of object, shape (R,)
    row_group : ndarray of int, shape (R,)
        Index into ``labels``.
    """

    labels: np.ndarray
    n_rows: np.ndarray
    leverage: np.ndarray
    quad: np.ndarray
    quad_kind: dict
    singular: np.ndarray
    residual: np.ndarray = field(repr=False)
    hat: np.ndarray = field(repr=False)
    row_kind: np.ndarray = field(repr=False)
    row_group: np.ndarray = field(repr=False)


def group_influence(X, y, groups, fit: LinearFit, weights=None, kinds=None,
                    chunk_groups: int = 128) -> GroupInfluence:
    """Pass 2 for one partition's rows (every group's rows inside the partition).

    Parameters
    ----------
    X : ndarray, shape (R, n_cols)
    y : ndarray, shape (R,)
    groups : array-like, shape (R,)
    fit : LinearFit
    weights : ndarray, shape (R,), optional
    kinds : array-like of str, shape (R,), optional
    chunk_groups : int
        Groups per batched solve (bounds memory to ~chunk * rows * n_cols).
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(y)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    kind = _kinds(kinds, n)
    codes, labels = pd.factorize(pd.Series(np.asarray(groups)), sort=False)
    codes, labels = np.asarray(codes), np.asarray(labels)
    xw = (X * w[:, None])[:, fit.used]
    e = y * w - xw @ fit.theta[fit.used]
    q = scipy.linalg.solve_triangular(fit.chol, xw.T, lower=True).T       # (R, p)
    h = np.einsum("ij,ij->i", q, q)
    order = np.argsort(codes, kind="stable")
    n_groups = len(labels)
    counts = np.bincount(codes, minlength=n_groups)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    v = np.zeros((n_groups, q.shape[1]))
    singular = np.zeros(n_groups, dtype=bool)
    for size in np.unique(counts):
        members = np.flatnonzero(counts == size)
        for c0 in range(0, len(members), chunk_groups):
            gs = members[c0:c0 + chunk_groups]
            rows = order[(starts[gs][:, None] + np.arange(size)[None, :])]       # (G, m)
            qg = q[rows]                                                        # (G, m, p)
            eg = e[rows]                                                        # (G, m)
            m_mat = np.eye(size) - qg @ qg.transpose(0, 2, 1)                  # I - H_gg
            try:    # positive definite unless a group alone determines a parameter
                np.linalg.cholesky(m_mat)
                u = np.linalg.solve(m_mat, eg[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:
                u = np.empty_like(eg)
                for i in range(len(gs)):   # rare: eigen-decompose to find the singular groups
                    ev, vec = np.linalg.eigh(m_mat[i])
                    singular[gs[i]] = ev.min() <= 1e-10
                    u[i] = vec @ ((vec.T @ eg[i]) / np.where(ev > 1e-10, ev, np.inf))
            v[gs] = np.einsum("gmp,gm->gp", qg, u)
    delta = scipy.linalg.solve_triangular(fit.chol.T, v.T, lower=False).T       # b - b_(g)
    quad = np.einsum("gp,gp->g", v, v) - np.einsum("gp,p,gp->g", delta, fit.lam, delta)
    quad_kind = {k: np.einsum("gp,pq,gq->g", delta, g, delta) for k, g in fit.gram.items()}
    return GroupInfluence(labels, counts, np.bincount(codes, h, minlength=n_groups), quad,
                          quad_kind, singular, e, h, kind, codes)


def cooks_distance(fit: LinearFit, parts):
    """Join the partitions' :class:`GroupInfluence` into a
    :class:`~conformance.audits.outliers.CooksDistance` (groups in partition order)."""
    parts = list(parts)
    offsets = np.cumsum([0] + [len(p.labels) for p in parts])
    e = np.concatenate([p.residual for p in parts])
    h = np.concatenate([p.hat for p in parts])
    kind = np.concatenate([p.row_kind for p in parts])
    codes = np.concatenate([p.row_group + o for p, o in zip(parts, offsets)])
    n, n_groups = len(e), int(offsets[-1])
    p_eff = float(h.sum())
    dof = n - p_eff
    if dof <= 0:
        raise DataError(f"no residual degrees of freedom: {n} rows for {p_eff:.1f} effective "
                        "parameters")
    s2 = float(e @ e / dof)
    kind_names = list(dict.fromkeys(kind.tolist()))
    kind_stats, r = {}, np.empty(n)
    for k in kind_names:
        m = kind == k
        pk = float(h[m].sum())
        sk2 = float(e[m] @ e[m] / max(m.sum() - pk, 1e-12))
        kind_stats[k] = dict(p=pk, s2=sk2, n=int(m.sum()))
        r[m] = e[m] / np.sqrt(sk2 * np.clip(1.0 - h[m], 1e-300, None))
    singular = np.concatenate([p.singular for p in parts])
    table = pd.DataFrame(dict(group=np.concatenate([p.labels for p in parts]),
                              n_rows=np.concatenate([p.n_rows for p in parts]),
                              leverage=np.concatenate([p.leverage for p in parts])))
    quad = np.concatenate([p.quad for p in parts])
    table["cooks_distance"] = np.where(singular, np.inf, quad / (p_eff * s2))
    for k in kind_names:
        qk = np.concatenate([p.quad_kind[k] for p in parts])
        st = kind_stats[k]
        denom = st["p"] * st["s2"]
        table[f"cooks_{k}"] = np.where(singular, np.inf, qk / denom if denom > 0 else np.nan)
    absr = np.abs(r)
    best = np.full(n_groups, -1)
    best_val = np.full(n_groups, -np.inf)
    np.maximum.at(best_val, codes, absr)
    hit = absr >= best_val[codes]
    idx = np.flatnonzero(hit)
    best[codes[idx[::-1]]] = idx[::-1]    # first row attaining the maximum
    table["max_studentized"] = best_val
    table["max_row"] = best
    table["suspect"] = kind[best]
    return CooksDistance(table, fit.theta, r, h, p_eff, s2, dof, kind_stats)
