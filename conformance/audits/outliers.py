"""Influential outliers: training structures that single-handedly move the fit.

The linear reference model (:mod:`reference_models.linear`) is fitted to the
training set by weighted ridge least squares: one energy row (eV/atom), 3N
force rows (eV/Å) and, for cells of rank 3, 6 stress rows (eV/Å³) per
structure, each row weighted by ``1/sigma`` of its kind. A structure is a
*group* of rows; deleting it changes the parameters from ``b`` to ``b_(g)``.

Grouped Cook's distance
-----------------------
With the weighted design ``X`` (rows multiplied by their weights), weighted
labels ``y``, ``A = X^T X + Lambda`` (``Lambda``: the ridge of
:func:`reference_models.linear.solve`, relative to ``diag(X^T X)``, not on the
reference energies) and residuals ``e = y - X b``::

    D_g = (b - b_(g))^T X^T X (b - b_(g)) / (p s²)

is computed without refitting: with ``H_gg = X_g A^-1 X_g^T`` the group's block
of the hat matrix, the Woodbury identity gives
``b - b_(g) = A^-1 X_g^T (I - H_gg)^-1 e_g`` exactly (also with the ridge).
Using the Cholesky factor ``A = L L^T`` and ``Q = X L^-T``: ``H_gg = Q_g Q_g^T``,
``v_g = Q_g^T (I - H_gg)^-1 e_g``, ``b - b_(g) = L^-T v_g`` and
``(b - b_(g))^T X^T X (b - b_(g)) = |v_g|² - (b - b_(g))^T Lambda (b - b_(g))``.
``p = tr(H)`` is the effective number of parameters (``p`` for ordinary least
squares) and ``s² = |e|² / (n - p)``. Cost: one Cholesky, ``n p²`` for ``Q``
and an ``m x m`` solve per group of ``m`` rows (batched over groups of equal
size); no refit. With one row per group this is the classical
Cook's distance ``r_i² h_i / (p (1 - h_i))`` (tested against statsmodels).
A group whose ``H_gg`` has an eigenvalue 1 alone determines some parameter:
``D_g = inf``.

Property-resolved distances
---------------------------
``X^T X = sum_k X_k^T X_k`` over the row kinds k (energy, forces, stress), so
the change of the fitted values splits by property::

    D_g^k = (b - b_(g))^T X_k^T X_k (b - b_(g)) / (p_k s_k²)

with ``p_k`` the leverage of the kind's rows (``sum p_k = p``) and
``s_k² = |e_k|² / (n_k - p_k)``: the influence of structure g on the fitted
energies (forces, stresses) in units of that property's own confidence region.
They matter because ~90 % of the rows are forces: an energy label shifted by
1 eV on one of hundreds of similar 32-atom structures moves the fit as a whole
little (``D_g`` ~ r² h / p with p ~ 400) but moves the fitted energies a lot
(``D_g^energy`` ranks it at the top), and a flipped force ranks first in
``D_g^forces``. ``D_g`` itself is dominated by the structures that carry the
most information on the parameters: on the shipped EMT data the most
compressed strain frames (stress) and the dimer scans.

Flags and pruning
-----------------
* *influential*: ``D_g`` or any ``D_g^k`` above ``4/n`` (n structures; the usual
  screening rule, about four times the mean) -- or, with ``rule="F"``, above the
  median of ``F(p, n_rows - p)`` (resp. ``F(p_k, n_k - p_k)``): deleting the
  structure moves the estimate to the edge of its 50 % confidence region.
* *outlier*: the largest studentised residual of the structure,
  ``|e_i| / (s_k sqrt(1 - h_i))`` (per-kind scale), exceeds the Bonferroni bound
  ``z_(1 - 0.05 / (2 n_rows))`` (about 4.8 for 25 000 rows).
* *flagged* = influential and outlier: the screening list. On honest data it is
  long (54 of the 530 shipped EMT structures): the linear reference model cannot
  represent hot, strongly strained or isolated structures as well as the rest, and
  their residuals have heavy tails that no Gaussian bound allows for.
* *gross*: the structure's worst label stands out from the same structure's own fit
  quality. Residuals are divided by a robust scale of their kind
  (``median |r_k| / 0.6745``, not inflated by the errors it looks for); the
  structure's largest one is then divided by the RMS of its other rows without the
  three largest (one atom's force vector), at least 1. Above ``gross_z = 25``.
  Measured on the shipped data: honest structures reach at most 18 (a dimer's
  energy row; 15 for condensed ones), a +1 eV energy on a 32-atom frame 54--61 and
  a flipped force 355--367.
* *pruned* (default ``prune="gross"``) = flagged and gross: label errors, not
  structures the reference model merely finds hard. ``prune="low-leverage"``
  prunes every flagged structure except those of high leverage (``tr H_gg`` above
  three times the mean ``p / n``: the rare configurations the fit learns a whole
  region from, e.g. the most compressed strain frame, leverage 6.9 against a mean of
  0.74); ``prune="flagged"`` prunes all. The model is refitted without the pruned
  structures (same ridge) and the report gives the test error before and after --
  on the shipped data with a +1 eV energy and a flipped force planted, pruning them
  lowers the test error of every property, while deleting every flagged structure
  makes it worse -- and for each structure its *suspect* property: the kind (and
  atom/component) of its largest studentised residual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import numpy as np
import pandas as pd
import scipy.linalg
import scipy.stats

from .data import DataError, species_of

__all__ = ["FIT_DESCRIPTOR", "CooksDistance", "grouped_cooks_distance", "ridge_penalty",
           "OutlierReport", "influential_outliers", "design_errors"]

#: Descriptor of the audit's linear fit (D = 211 per species, 424 parameters for Cu/Au):
#: on the shipped EMT data its test force error (0.020 eV/Å) matches the shipped linear
#: model (D = 480) at a third of the cost of the design matrix.
FIT_DESCRIPTOR = dict(cutoff=5.5, n_radial=8, n_angular=1, l_max=1, n_cubic=3)
KINDS = ("energy", "forces", "stress")
#: A gross label error: a residual beyond this many robust standard deviations of its kind
#: (see the module doc for what honest data reaches).
GROSS_Z = 25.0
VOIGT_NAMES = ("xx", "yy", "zz", "yz", "xz", "xy")


def ridge_penalty(xtx_diag, lam: float, n_unpenalised: int = 0) -> np.ndarray:
    """Diagonal ridge of :func:`reference_models.linear.solve` for a given ``diag(X^T X)``.

    ``lam * diag(X^T X)`` on penalised columns plus ``1e-12 * diag(X^T X)`` on all,
    so ``(X^T X + diag(ridge)) theta = X^T y`` reproduces ``linear.solve``.
    """
    d = np.asarray(xtx_diag, dtype=float)
    penalised = np.ones(len(d), dtype=bool)
    penalised[:n_unpenalised] = False
    return d * (lam * penalised + 1e-12)


@dataclass
class CooksDistance:
    """Result of :func:`grouped_cooks_distance`.

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


def _factorize(groups):
    codes, labels = pd.factorize(pd.Series(np.asarray(groups)), sort=False)
    return np.asarray(codes), np.asarray(labels)


def grouped_cooks_distance(X, y, groups, *, weights=None, ridge=None, kinds=None,
                           chunk_groups: int = 128) -> CooksDistance:
    """Grouped Cook's distance of a (weighted, ridge) least-squares fit, without refits.

    Parameters
    ----------
    X : ndarray, shape (n_rows, n_cols)
    y : ndarray, shape (n_rows,)
    groups : array-like, shape (n_rows,)
        Group label of every row (e.g. the structure index).
    weights : ndarray, shape (n_rows,), optional
        Row weights: the fit minimises ``sum (weights * (y - X theta))²``.
    ridge : ndarray, shape (n_cols,), optional
        Diagonal penalty added to ``X^T X`` (weighted), see :func:`ridge_penalty`.
    kinds : array-like of str, shape (n_rows,), optional
        Row kinds for the property-resolved distances and per-kind residual scales
        (default: one kind "all").
    chunk_groups : int
        Groups processed per batch (bounds memory to ~chunk * rows * n_cols).

    Returns
    -------
    CooksDistance

    Examples
    --------
    One row per group: the classical Cook's distance.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.c_[np.ones(20), rng.normal(size=20)]
    >>> y = X @ [1.0, 2.0] + rng.normal(0, 0.1, 20)
    >>> y[7] += 1.0
    >>> result = grouped_cooks_distance(X, y, np.arange(20))
    >>> int(result.table["cooks_distance"].idxmax())
    7
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, ncols = X.shape
    if len(y) != n:
        raise ValueError(f"X has {n} rows but y has {len(y)}")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    codes, labels = _factorize(groups)
    kind = np.full(n, "all", dtype=object) if kinds is None else np.asarray(kinds, dtype=object)
    xw = X * w[:, None]
    yw = y * w
    a = xw.T @ xw
    used = np.diag(a) > 0          # all-zero columns (e.g. an absent species) carry nothing
    xw, a = xw[:, used], a[np.ix_(used, used)]
    lam = np.zeros(int(used.sum())) if ridge is None else np.asarray(ridge, dtype=float)[used]
    try:
        chol = np.linalg.cholesky(a + np.diag(lam))
    except np.linalg.LinAlgError:
        raise DataError("the least-squares problem is singular (fewer independent rows than "
                        "parameters); add a ridge or more data") from None
    theta_used = scipy.linalg.cho_solve((chol, True), xw.T @ yw)
    theta = np.zeros(ncols)
    theta[used] = theta_used
    e = yw - xw @ theta_used
    q = scipy.linalg.solve_triangular(chol, xw.T, lower=True).T       # (n, p)
    h = np.einsum("ij,ij->i", q, q)
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
    # group-wise v_g = Q_g^T (I - H_gg)^-1 e_g, batched over groups of equal size
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
    delta = scipy.linalg.solve_triangular(chol.T, v.T, lower=False).T           # b - b_(g)
    quad = np.einsum("gp,gp->g", v, v) - np.einsum("gp,p,gp->g", delta, lam, delta)
    table = pd.DataFrame(dict(group=labels, n_rows=counts,
                              leverage=np.bincount(codes, h, minlength=n_groups)))
    table["cooks_distance"] = np.where(singular, np.inf, quad / (p_eff * s2))
    for k in kind_names:
        m = kind == k
        xk = xw[m]
        fitted_change = delta @ xk.T if m.sum() < 4 * xk.shape[1] else None
        if fitted_change is not None:
            qk = np.einsum("gi,gi->g", fitted_change, fitted_change)
        else:
            ak = xk.T @ xk
            qk = np.einsum("gp,pq,gq->g", delta, ak, delta)
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
    return CooksDistance(table, theta, r, h, p_eff, s2, dof, kind_stats)


def design_errors(theta, design) -> dict:
    """Errors of parameters on a design matrix.

    Returns
    -------
    dict
        RMSE per kind -- ``energy`` eV/atom, ``forces`` eV/Å, ``stress`` eV/Å³ (NaN
        when absent) -- and ``loss``: the mean over the kinds present of
        ``(rmse_k / sigma_k)²`` with ``sigma_k = 1 / row_weight`` (each property
        counts once, in units of its expected error).
    """
    r = design.y - design.X @ theta
    out, terms = {}, []
    for k in KINDS:
        m = design.row_kind == k
        if m.any():
            out[k] = float(np.sqrt(np.mean(r[m] ** 2)))
            terms.append(float(np.mean((r[m] * design.row_weight[m]) ** 2)))
        else:
            out[k] = float("nan")
    out["loss"] = float(np.mean(terms)) if terms else float("nan")
    return out


@dataclass
class OutlierReport:
    """Result of :func:`influential_outliers`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per training structure (index = structure index): ``n_rows``,
        ``leverage``, ``cooks_distance`` and ``cooks_energy``/``cooks_forces``/
        ``cooks_stress``, ``rank`` (by ``cooks_distance``, 1 = largest),
        ``rank_energy``/... (by each property's distance), ``max_studentized``,
        ``suspect`` (energy/forces/stress), ``location`` (atom and component, or
        stress component), ``influential`` (under ``rule``), ``influential_4n``,
        ``influential_F``, ``outlier``, ``flagged``, ``robust_z`` (worst residual
        against the structure's own fit quality), ``gross``, ``high_leverage``.
    pruned : list of int
        Structures pruned (see ``prune`` of :func:`influential_outliers`; by default the
        flagged ones with a gross residual), by decreasing Cook's distance relative to
        the rule.
    errors : pandas.DataFrame or None
        Test RMSE (``energy`` eV/atom, ``forces`` eV/Å, ``stress`` eV/Å³) and
        ``loss`` (see :func:`design_errors`) of the fit on all training structures
        ("all training structures") and after pruning ("pruned").
    thresholds : dict
        ``"4/n"`` and ``"F"`` (dict per distance column) thresholds, ``"z"`` (outlier bound).
    rule : str
    lam : float
    cooks : CooksDistance
    flagged : list of int
        Flagged structures, by decreasing Cook's distance relative to the rule.
    """

    table: pd.DataFrame
    pruned: list
    errors: pd.DataFrame | None
    thresholds: dict
    rule: str
    lam: float
    cooks: CooksDistance = field(repr=False)
    flagged: list = field(default_factory=list)

    @property
    def n_flagged(self) -> int:
        return len(self.flagged)

    @property
    def label_errors(self) -> list:
        """Flagged structures with a gross residual (likely corrupted labels), by
        decreasing Cook's distance relative to the rule."""
        return [k for k in self.flagged if self.table.loc[k, "gross"]]

    def improvement(self) -> dict:
        """Relative change of the test RMSE per kind after pruning (negative = better)."""
        if self.errors is None:
            return {}
        before = self.errors.set_index("fit").loc["all training structures"]
        after = self.errors.set_index("fit").loc["pruned"]
        return {k: float(after[k] / before[k] - 1.0) for k in KINDS + ("loss",)
                if np.isfinite(before[k]) and before[k] > 0}

    def summary(self, max_rows: int = 10) -> str:
        t = self.table
        n_4n = int((t["influential_4n"] & t["outlier"]).sum())
        n_f = int((t["influential_F"] & t["outlier"]).sum())
        lines = [f"influential outliers among {len(t)} training structures (largest studentised "
                 f"residual above {self.thresholds['z']:.2f} and Cook's distance above the "
                 f"rule): {n_4n} by the 4/n screening rule, {n_f} by the F-median rule; "
                 f"flagged ({self.rule}): {self.n_flagged}, with a gross residual (worst label "
                 f"above {self.thresholds['gross_z']:g}x the structure's own fit quality, "
                 f"likely label errors): {len(self.label_errors)}, pruned: {len(self.pruned)}"]
        shown = list(self.pruned) + [k for k in self.flagged if k not in self.pruned]
        if shown:
            lines.append("  structure  D_g      D_energy  D_forces  D_stress  |r|max  gross  pruned  suspect")
            for k in shown[:max_rows]:
                row = t.loc[k]
                lines.append(f"  {k:9d}  {row.cooks_distance:7.3g}  {row.cooks_energy:8.3g}  "
                             f"{row.cooks_forces:8.3g}  {row.get('cooks_stress', np.nan):8.3g}  "
                             f"{row.max_studentized:6.1f}  {row.robust_z:5.1f}  "
                             f"{'yes' if k in self.pruned else 'no':6s}"
                             f"  {row.suspect} {row.location}".rstrip())
            if len(shown) > max_rows:
                lines.append(f"  ... {len(shown) - max_rows} more")
        if self.errors is not None:
            for row in self.errors.itertuples():
                lines.append(f"test error, {row.fit:23s}: energy {1e3 * row.energy:.3g} meV/atom, "
                             f"forces {row.forces:.4g} eV/Å, stress {row.stress:.3g} eV/Å³, "
                             f"loss {row.loss:.3g}")
        return "\n".join(lines)

    def to_dict(self, max_rows: int = 50) -> dict:
        cols = ["cooks_distance", "cooks_energy", "cooks_forces", "max_studentized", "robust_z",
                "suspect", "location"]
        cols = [c for c in cols if c in self.table]
        top = self.table.sort_values("cooks_distance", ascending=False).head(max_rows)
        out = dict(rule=self.rule, lam=self.lam, n_flagged=self.n_flagged, pruned=self.pruned,
                   label_errors=self.label_errors,
                   flagged=self.flagged[:max_rows],
                   thresholds=self.thresholds, p_eff=self.cooks.p, s2=self.cooks.s2,
                   top=dict(structure=top.index.tolist(), **top[cols].to_dict(orient="list")))
        if self.errors is not None:
            out["errors"] = self.errors.to_dict(orient="list")
            out["improvement"] = self.improvement()
        return out


def _where(design, row: int) -> str:
    """'atom 3 y' / 'xy' / '' for a row of a linear design matrix."""
    kind = design.row_kind[row]
    g = design.row_structure[row]
    first = np.searchsorted(design.row_structure, g)    # rows of a structure are contiguous
    block = np.flatnonzero((design.row_structure == g) & (design.row_kind == kind))
    offset = int(row - block[0]) if len(block) else int(row - first)
    if kind == "forces":
        return f"atom {offset // 3} {'xyz'[offset % 3]}"
    if kind == "stress":
        return VOIGT_NAMES[offset] if offset < 6 else ""
    return ""


def influential_outliers(train, test=None, *, descriptor=None, sigmas=None, lam: float = 1e-8,
                         rule: str = "4/n", f_quantile: float = 0.5, alpha: float = 0.05,
                         prune: str = "gross", leverage_factor: float = 3.0,
                         gross_z: float = GROSS_Z,
                         design=None, test_design=None, n_species: int | None = None
                         ) -> OutlierReport:
    """Grouped Cook's distance of every training structure in the linear reference fit.

    Parameters
    ----------
    train : sequence of ase.Atoms
        Labelled training structures (energy, forces, optional stress).
    test : sequence of ase.Atoms, optional
        Labelled test structures: the test error before/after pruning is reported.
    descriptor : reference_models.descriptors.Descriptor, optional
        Default :data:`FIT_DESCRIPTOR` on the species of train (and test).
    sigmas : reference_models.linear.Sigmas, optional
        Expected label errors defining the row weights (default ``Sigmas()``).
    lam : float
        Relative ridge strength (as in :func:`reference_models.linear.solve`).
    rule : {"4/n", "F"}
        Threshold of *influential* (see module doc).
    f_quantile : float
        Quantile of the F distribution for ``rule="F"`` (0.5: the median).
    alpha : float
        Family-wise level of the Bonferroni outlier bound on studentised residuals.
    prune : {"gross", "low-leverage", "flagged"}
        "gross" (default): prune the flagged structures with a gross residual (label
        errors); "low-leverage": the flagged structures except those of high leverage
        (``tr H_gg > leverage_factor * p / n``), where the fit gets its information on
        rare conditions; "flagged": every flagged structure.
    leverage_factor : float
        High-leverage bound in units of the mean structure leverage ``p / n``
        (3: the usual rule of thumb).
    gross_z : float
        Bound of a *gross* residual in robust standard deviations (see module doc).
    design, test_design : reference_models.linear.DesignMatrix, optional
        Precomputed design matrices (``train``/``test`` then only name the structures).
    n_species : int, optional
        Number of leading reference-energy columns (not penalised); default from
        the descriptor, or detected in ``design``.

    Returns
    -------
    OutlierReport
    """
    from reference_models.descriptors import Descriptor
    from reference_models.linear import Sigmas, design_matrix

    if rule not in ("4/n", "F"):
        raise ValueError(f"rule must be '4/n' or 'F', got {rule!r}")
    if prune not in ("gross", "low-leverage", "flagged"):
        raise ValueError(f"prune must be 'gross', 'low-leverage' or 'flagged', got {prune!r}")
    if design is None:
        train = list(train)
        if not train:
            raise DataError("training set: no structures (empty data set)")
    if design is None or (test is not None and test_design is None):
        if descriptor is None:
            every = list(train) + (list(test) if test is not None else [])
            descriptor = Descriptor(species_of(every), **FIT_DESCRIPTOR)
        sigmas = Sigmas() if sigmas is None else sigmas
    if design is None:
        design = design_matrix(train, descriptor, sigmas)
    if test is not None and test_design is None:
        test_design = design_matrix(list(test), descriptor, sigmas)
    if n_species is None:
        n_species = descriptor.n_species if descriptor is not None else _n_unpenalised(design)
    xw = design.X * design.row_weight[:, None]
    ridge = ridge_penalty(np.einsum("ij,ij->j", xw, xw), lam, n_species)
    cooks = grouped_cooks_distance(design.X, design.y, design.row_structure,
                                   weights=design.row_weight, ridge=ridge, kinds=design.row_kind)
    t = cooks.table.set_index("group")
    t.index.name = "structure"
    n = len(t)
    columns = ["cooks_distance"] + [f"cooks_{k}" for k in KINDS if f"cooks_{k}" in t]
    f_thresholds = {"cooks_distance": float(scipy.stats.f.ppf(f_quantile, cooks.p, cooks.dof))}
    for k in KINDS:
        if f"cooks_{k}" in t:
            st = cooks.kinds[k]
            f_thresholds[f"cooks_{k}"] = float(scipy.stats.f.ppf(
                f_quantile, max(st["p"], 1e-9), max(st["n"] - st["p"], 1e-9)))
    four_n = 4.0 / n
    z = float(scipy.stats.norm.isf(alpha / (2 * len(design.y))))
    t["rank"] = t["cooks_distance"].rank(ascending=False, method="min").astype(int)
    for k in KINDS:
        if f"cooks_{k}" in t:
            t[f"rank_{k}"] = t[f"cooks_{k}"].rank(ascending=False, method="min").astype(int)
    values = t[columns].to_numpy()
    t["influential_4n"] = np.any(values > four_n, axis=1)
    t["influential_F"] = np.any(values > np.array([f_thresholds[c] for c in columns]), axis=1)
    t["influential"] = t["influential_4n"] if rule == "4/n" else t["influential_F"]
    t["outlier"] = t["max_studentized"] > z
    t["robust_z"] = _robust_z(cooks.studentized, design.row_kind, design.row_structure, t.index)
    t["gross"] = t["robust_z"] > gross_z
    t["flagged"] = t["influential"] & t["outlier"]
    t["location"] = [_where(design, int(row)) for row in t["max_row"]]
    limit = np.array([four_n if rule == "4/n" else f_thresholds[c] for c in columns])
    strength = (values / limit).max(axis=1)
    flagged_mask = t["flagged"].to_numpy()
    flagged = [int(k) for k in t.index[flagged_mask][np.argsort(-strength[flagged_mask],
                                                                 kind="stable")]]
    t["high_leverage"] = t["leverage"] > leverage_factor * cooks.p / n
    if prune == "gross":
        pruned = [k for k in flagged if t.loc[k, "gross"]]
    elif prune == "low-leverage":
        pruned = [k for k in flagged if not t.loc[k, "high_leverage"]]
    else:
        pruned = flagged
    errors = None
    if test_design is not None:
        rows = [dict(fit="all training structures", n_structures=n,
                     **design_errors(cooks.theta, test_design))]
        for name, drop in (("pruned", pruned), ("all flagged removed", flagged)):
            if name == "all flagged removed" and (prune == "flagged" or drop == pruned):
                continue
            keep = ~np.isin(design.row_structure, drop)
            theta = _fit(design.X[keep], design.y[keep], design.row_weight[keep], lam,
                         n_species) if drop else cooks.theta
            rows.append(dict(fit=name, n_structures=n - len(drop),
                             **design_errors(theta, test_design)))
        errors = pd.DataFrame(rows)
    thresholds = {"4/n": four_n, "F": f_thresholds, "z": z, "gross_z": gross_z}
    return OutlierReport(t, pruned, errors, thresholds, rule, lam, cooks, flagged)


def _robust_z(studentized, kinds, structures, index, exclude: int = 3) -> np.ndarray:
    """How far each structure's worst label stands out from its own fit quality.

    Residuals in units of a robust scale of their kind (``median |r| / 0.6745``),
    then the structure's largest over the RMS of its rows without the ``exclude``
    largest (at least 1; 3 = one atom's force vector), so a hot or strained frame
    that the reference model fits poorly as a whole is not mistaken for a corrupted
    label. Returns one value per structure of ``index``.
    """
    r = np.abs(np.asarray(studentized, dtype=float))
    kinds = np.asarray(kinds)
    for kind in np.unique(kinds):               # robust scale per kind: not inflated by
        mask = kinds == kind                    # the errors it is meant to find
        scale = np.median(r[mask]) / 0.6745
        r[mask] = r[mask] / scale if scale > 0 else r[mask]
    r = pd.DataFrame({"r": r, "g": np.asarray(structures)}).sort_values(
        ["g", "r"], ascending=[True, False])
    rank = r.groupby("g").cumcount()
    top = r.groupby("g")["r"].first()
    rest = np.sqrt((r["r"][rank >= exclude] ** 2).groupby(r["g"][rank >= exclude]).mean())
    rest = rest.reindex(top.index).fillna(0.0)
    return (top / np.maximum(rest, 1.0)).reindex(index).to_numpy()


def _fit(X, y, w, lam: float, n_species: int) -> np.ndarray:
    """Weighted ridge fit exactly as :func:`reference_models.linear.solve`."""
    from reference_models.linear import solve

    xw = X * w[:, None]
    return solve(xw.T @ xw, xw.T @ (y * w), lam, n_species)


def _n_unpenalised(design) -> int:
    """Number of leading reference-energy columns (composition counts) of a linear design."""
    energy = design.row_kind == "energy"
    x = design.X[energy]
    n = 0
    for col in range(x.shape[1]):
        # composition columns: n_e / N, fractions summing to one across them
        if np.all(design.X[~energy, col] == 0) and np.all((x[:, col] >= 0) & (x[:, col] <= 1)):
            n += 1
            if np.allclose(x[:, :n].sum(axis=1), 1.0):
                return n
        else:
            break
    return n
