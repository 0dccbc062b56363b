"""Influential outliers: training structures that single-handedly move the fit.

The linear reference model (:mod:`conformance.featurize.design`) is fitted to the
training set by weighted ridge least squares: one energy row (eV/atom), 3N
force rows (eV/Å) and, for cells of rank 3, 6 stress rows (eV/Å³) per
structure, each row weighted by ``1/sigma`` of its kind. A structure is a
*group* of rows; deleting it changes the parameters from ``b`` to ``b_(g)``.

Grouped Cook's distance
-----------------------
With the weighted design ``X`` (rows multiplied by their weights), weighted
labels ``y``, ``A = X^T X + Lambda`` (``Lambda``: the ridge of
:func:`conformance.featurize.ridge.solve`, relative to ``diag(X^T X)``, not on the
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
import scipy.stats

from ..featurize.ridge import ridge_penalty
from .data import DataError, species_of
from .influence import CooksDistance  # noqa: F401  (re-exported: the result type of this module)

__all__ = ["FIT_DESCRIPTOR", "CooksDistance", "grouped_cooks_distance", "ridge_penalty",
           "OutlierReport", "influential_outliers", "design_errors", "outlier_statistics",
           "test_statistics", "combine_statistics", "outlier_fit", "outlier_partition",
           "outlier_report", "stats_errors", "OutlierPartition"]

#: Descriptor of the audit's linear fit (D = 211 per species, 424 parameters for Cu/Au):
#: on the shipped EMT data its test force error (0.020 eV/Å) matches the shipped linear
#: model (D = 480) at a third of the cost of the design matrix.
FIT_DESCRIPTOR = dict(cutoff=5.5, n_radial=8, n_angular=1, l_max=1, n_cubic=3)
#: The surrogate of training sets above :data:`SCALE_LIMIT` structures (D = 88 per
#: species, 178 parameters for two): the same range as :data:`FIT_DESCRIPTOR` with fewer
#: radial channels. On 5-atom EMT cells it costs 6 ms per structure and pass against
#: 13 ms, and fits them to 0.23 eV/Å against 0.14 (measured on the synthetic set of
#: ``benchmarks/synthetic.py``): coarser, so only grosser label errors stand out.
SCALE_FIT_DESCRIPTOR = dict(cutoff=5.5, n_radial=5, n_angular=1, l_max=1, n_cubic=2)
#: Training structures above which the data-audit engine fits :data:`SCALE_FIT_DESCRIPTOR`.
SCALE_LIMIT = 50_000
KINDS = ("energy", "forces", "stress")
#: A gross label error: a residual beyond this many robust standard deviations of its kind
#: (see the module doc for what honest data reaches).
GROSS_Z = 25.0
VOIGT_NAMES = ("xx", "yy", "zz", "yz", "xz", "xy")


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
    from .influence import LinearFit, NormalStats, cooks_distance, group_influence

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(y) != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {len(y)}")
    fit = LinearFit.from_stats(NormalStats.of(X, y, weights, kinds), ridge)
    part = group_influence(X, y, groups, fit, weights, kinds, chunk_groups)
    return cooks_distance(fit, [part])


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
    descriptor : conformance.featurize.descriptors.Descriptor, optional
        Default :data:`FIT_DESCRIPTOR` on the species of train (and test).
    sigmas : conformance.featurize.design.Sigmas, optional
        Expected label errors defining the row weights (default ``Sigmas()``).
    lam : float
        Relative ridge strength (as in :func:`conformance.featurize.ridge.solve`).
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
    design, test_design : conformance.featurize.design.DesignMatrix, optional
        Precomputed design matrices (``train``/``test`` then only name the structures).
    n_species : int, optional
        Number of leading reference-energy columns (not penalised); default from
        the descriptor, or detected in ``design``.

    Returns
    -------
    OutlierReport
    """
    from ..featurize.descriptors import Descriptor
    from ..featurize.design import Sigmas, design_matrix

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
    fit = outlier_fit(outlier_statistics(design), lam, n_species)
    part = outlier_partition(design, fit, len(np.unique(design.row_structure)), cap=None,
                             rule=rule, f_quantile=f_quantile, alpha=alpha, gross_z=gross_z)
    test_stats = None if test_design is None else test_statistics(test_design)
    return outlier_report(fit, [part], test_stats, lam=lam, n_species=n_species, rule=rule,
                          f_quantile=f_quantile, alpha=alpha, prune=prune,
                          leverage_factor=leverage_factor, gross_z=gross_z)


def outlier_statistics(design):
    """Pass 1 of a partition: weighted normal equations per row kind of its design rows."""
    from .influence import NormalStats

    return NormalStats.of(design.X, design.y, design.row_weight, design.row_kind)


def test_statistics(design) -> tuple:
    """Unweighted and weighted normal equations per kind of test design rows (for the
    test errors of any parameters, see :func:`stats_errors`)."""
    from .influence import NormalStats

    return (NormalStats.of(design.X, design.y, None, design.row_kind),
            NormalStats.of(design.X, design.y, design.row_weight, design.row_kind))


def combine_statistics(parts):
    """Sum of per-partition :func:`outlier_statistics` or :func:`test_statistics`."""
    parts = list(parts)
    if isinstance(parts[0], tuple):
        return tuple(combine_statistics([p[k] for p in parts]) for k in range(len(parts[0])))
    total = parts[0]
    for p in parts[1:]:
        total = total.combine(p)
    return total


def outlier_fit(stats, lam: float, n_species: int):
    """The ridge fit of :func:`conformance.featurize.ridge.solve` from summed statistics."""
    from .influence import LinearFit

    a, _ = stats.total()
    return LinearFit.from_stats(stats, ridge_penalty(np.diag(a), lam, n_species))


def stats_errors(theta, test_stats) -> dict:
    """:func:`design_errors` from :func:`test_statistics` instead of the rows."""
    unweighted, weighted = test_stats
    out, terms = {}, []
    for k in KINDS:
        if k in unweighted.gram:
            n = unweighted.rows[k]
            out[k] = float(np.sqrt(unweighted.sse(theta, k) / n))
            terms.append(weighted.sse(theta, k) / n)
        else:
            out[k] = float("nan")
    out["loss"] = float(np.mean(terms)) if terms else float("nan")
    return out


@dataclass
class OutlierPartition:
    """Pass 2 of one partition (:func:`outlier_partition`).

    Attributes
    ----------
    influence : conformance.audits.influence.GroupInfluence
    row_offset : ndarray of int, shape (R,)
        Position of every row in its structure's block of rows of its kind (atom * 3 +
        component for forces, Voigt index for stress).
    rows : dict structure -> (xw, yw)
        Weighted design rows of the structures a refit may leave out (flagged on the
        fit's provisional variances; at most ``cap`` per partition, grossest first).
    """

    influence: object
    row_offset: np.ndarray
    rows: dict


def _row_offsets(structures, kinds) -> np.ndarray:
    """Index of every row within its (structure, kind) block (rows in order)."""
    key = pd.Series(list(zip(np.asarray(structures).tolist(), np.asarray(kinds).tolist())))
    return key.groupby(key).cumcount().to_numpy()


def outlier_partition(design, fit, n_structures: int, cap: int | None = 256, *,
                      rule: str = "4/n", f_quantile: float = 0.5, alpha: float = 0.05,
                      gross_z: float = GROSS_Z) -> OutlierPartition:
    """Pass 2 of a partition's design rows against the fit of all partitions.

    ``n_structures`` (all partitions) sets the 4/n rule of the provisional flags that
    choose which structures' rows to keep for the refits; ``cap`` bounds them per
    partition (None: all flagged).
    """
    from .influence import cooks_distance, group_influence

    influence = group_influence(design.X, design.y, design.row_structure, fit,
                                design.row_weight, design.row_kind)
    rows = {}
    p, n_rows = fit.p, fit.n_rows
    if n_rows > p:
        # provisional distances and flags with the fit's variances (relaxed bounds: the
        # final ones use the summed residuals of every partition)
        local = cooks_distance(fit, [influence])
        t = local.table
        scale = {k: local.kinds[k]["s2"] / max(fit.variance_estimate(k), 1e-300) for k in local.kinds}
        total = t["cooks_distance"] * (local.p * local.s2) / (p * fit.variance_estimate())
        columns = [total] + [t[f"cooks_{k}"] * (local.kinds[k]["p"] * local.kinds[k]["s2"])
                             / max(fit.p_kind[k] * fit.variance_estimate(k), 1e-300)
                             for k in local.kinds]
        bound = 0.8 * (4.0 / n_structures if rule == "4/n" else
                       float(scipy.stats.f.ppf(f_quantile, p, n_rows - p)))
        influential = np.any(np.c_[tuple(columns)] > bound, axis=1)
        rescaled = np.abs(local.studentized) * np.sqrt(
            np.array([scale[k] for k in influence.row_kind]))
        worst = pd.Series(rescaled).groupby(influence.row_group).max().to_numpy()
        z = 0.9 * float(scipy.stats.norm.isf(alpha / (2 * n_rows)))
        robust = _robust_z(rescaled, influence.row_kind, influence.row_group,
                           np.arange(len(influence.labels)))
        flagged = np.flatnonzero(influential & (worst > z))
        flagged = flagged[np.argsort(-robust[flagged], kind="stable")]
        if cap is not None:
            flagged = flagged[:cap]
        xw = design.X * design.row_weight[:, None]
        yw = design.y * design.row_weight
        for g in flagged:
            label = influence.labels[g]
            m = design.row_structure == label
            rows[label] = (xw[m], yw[m])
    return OutlierPartition(influence, _row_offsets(design.row_structure, design.row_kind), rows)


def _location(kind: str, offset: int) -> str:
    if kind == "forces":
        return f"atom {offset // 3} {'xyz'[offset % 3]}"
    if kind == "stress":
        return VOIGT_NAMES[offset] if offset < 6 else ""
    return ""


def outlier_report(fit, parts, test_stats=None, *, lam: float, n_species: int,
                   rule: str = "4/n", f_quantile: float = 0.5, alpha: float = 0.05,
                   prune: str = "gross", leverage_factor: float = 3.0,
                   gross_z: float = GROSS_Z) -> OutlierReport:
    """Join the partitions' pass 2 into an :class:`OutlierReport` (see
    :func:`influential_outliers` for the arguments)."""
    from .influence import cooks_distance

    parts = list(parts)
    cooks = cooks_distance(fit, [part.influence for part in parts])
    row_kind = np.concatenate([part.influence.row_kind for part in parts])
    row_structure = np.concatenate([part.influence.labels[part.influence.row_group]
                                    for part in parts])
    row_offset = np.concatenate([part.row_offset for part in parts])
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
    z = float(scipy.stats.norm.isf(alpha / (2 * len(row_kind))))
    t["rank"] = t["cooks_distance"].rank(ascending=False, method="min").astype(int)
    for k in KINDS:
        if f"cooks_{k}" in t:
            t[f"rank_{k}"] = t[f"cooks_{k}"].rank(ascending=False, method="min").astype(int)
    values = t[columns].to_numpy()
    t["influential_4n"] = np.any(values > four_n, axis=1)
    t["influential_F"] = np.any(values > np.array([f_thresholds[c] for c in columns]), axis=1)
    t["influential"] = t["influential_4n"] if rule == "4/n" else t["influential_F"]
    t["outlier"] = t["max_studentized"] > z
    t["robust_z"] = _robust_z(cooks.studentized, row_kind, row_structure, t.index)
    t["gross"] = t["robust_z"] > gross_z
    t["flagged"] = t["influential"] & t["outlier"]
    t["location"] = [_location(row_kind[row], int(row_offset[row])) for row in t["max_row"]]
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
    if test_stats is not None:
        kept_rows = {k: v for part in parts for k, v in part.rows.items()}
        missing = [k for k in pruned if k not in kept_rows]
        if missing:
            raise RuntimeError(f"rows of pruned structures {missing[:5]} were not kept by "
                               "their partition; raise the cap of outlier_partition")
        rows = [dict(fit="all training structures", n_structures=n,
                     **stats_errors(cooks.theta, test_stats))]
        for name, drop in (("pruned", pruned), ("all flagged removed", flagged)):
            if name == "all flagged removed" and (prune == "flagged" or drop == pruned
                                                  or any(k not in kept_rows for k in drop)):
                continue
            theta = _refit_without(fit, [kept_rows[k] for k in drop], lam, n_species) \
                if drop else cooks.theta
            rows.append(dict(fit=name, n_structures=n - len(drop),
                             **stats_errors(theta, test_stats)))
        errors = pd.DataFrame(rows)
    thresholds = {"4/n": four_n, "F": f_thresholds, "z": z, "gross_z": gross_z}
    return OutlierReport(t, pruned, errors, thresholds, rule, lam, cooks, flagged)


def _refit_without(fit, dropped_rows, lam: float, n_species: int) -> np.ndarray:
    """Parameters of the fit without some structures' weighted rows ``(xw, yw)``."""
    from ..featurize.ridge import solve

    a, b = fit.stats.total()
    a, b = a.copy(), b.copy()
    for xw, yw in dropped_rows:
        a -= xw.T @ xw
        b -= xw.T @ yw
    return solve(a, b, lam, n_species)


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


def fit_parameters(X, y, w, lam: float, n_species: int) -> np.ndarray:
    """Weighted ridge fit exactly as :func:`conformance.featurize.ridge.solve`."""
    from ..featurize.ridge import solve

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
