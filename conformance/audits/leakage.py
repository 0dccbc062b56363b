"""Train/test leakage: test structures that are (near-)copies of training structures.

A test score measures generalisation only if no test structure is, up to a
symmetry or a negligible displacement, a training structure. MD snapshots split
at random frame by frame, a structure written twice, a translated, rotated or
permuted copy, a supercell of a training cell: all of these leak.

What is compared
----------------
Every structure becomes one vector, its *structure descriptor*
(:func:`structure_descriptors`): the atom-centred density-expansion descriptors
``G_i`` of :mod:`conformance.featurize.descriptors` (rotation-, translation- and
permutation-invariant), pooled per species of the centre atom and divided by
the number of atoms::

    x = [ n_e / N                      for e in species ]      (composition, S)
        [ (1/N) sum_{i: Z_i = e} G_i   for e in species ]      (S * D)

The sum of the species blocks is the mean descriptor of the structure; keeping
the blocks apart separates environments centred on different elements (Cu in Au
vs Au in Cu). ``x`` is exactly the energy row of the linear reference model
(energy per atom ``= theta . x``), so structures with equal ``x`` are
indistinguishable to it; a supercell of a training structure has the same
``x`` and counts as a copy. Precomputed descriptor arrays ``(n, F)`` can be
passed instead of structures.

Mahalanobis distance
--------------------
Vectors are whitened with the training set's covariance (:class:`Whitener`):
each column is standardised by its training mean and standard deviation
(columns constant on the training set are set aside, see below), the
correlation matrix ``R`` is shrunk toward the identity with the Ledoit-Wolf
intensity ``alpha`` (analytic, no tuning; ``R_reg = (1 - alpha) R + alpha I``)
and its eigenvalues are floored at ``eigenvalue_floor`` (1e-6) so exactly
collinear columns (composition fractions summing to one) cannot divide by
zero. With ``R_reg = V diag(lambda) V^T`` the whitened vector is
``z = ((x - mean) / std) V diag(lambda)^-1/2`` and the Euclidean distance
between whitened vectors is the (regularised) Mahalanobis distance: distances
are in units of the training set's own spread, direction by direction.
Columns that are constant on the training set (e.g. the blocks of a species
absent from it) carry no scale; a test structure that differs there lies off
the training support and is never a leak (the coverage audit reports it).

Threshold
---------
Nearest neighbours come from a k-d tree (``scipy.spatial.cKDTree``) on the
whitened training set, queried in chunks with all cores (``workers=-1``), so
memory stays O(n) and 10^5 x 10^5 structures with F ~ 50 take seconds when the
data are clustered as real descriptor sets are (see ``benchmarks/bench_audits.py``;
an isotropic 50-dimensional cloud is the worst case of any tree).

Absolute distances cannot separate copies from independent samples: the
descriptor's response to a displacement varies across configuration space. On
the shipped EMT data a copy of a 2400 K liquid rattled by 1e-3 Å lies 0.11 from
its original while two independent 300 K crystals lie 0.07 apart. The audit
therefore measures distances *relative to the local sampling density*. For a
test structure whose nearest training structure ``j`` is at distance ``d``::

    ratio = d / nn_j

where ``nn_j`` is the distance from ``j`` to its own nearest training structure.
The threshold adapts to the training set: the same ratio is computed for every
training structure left out of the training set (``nn_i / nn_j^(-i)`` with
``j`` the nearest neighbour of ``i`` and ``nn_j^(-i)`` the distance from ``j`` to
its nearest training structure other than ``i``) and the threshold is a low
``quantile`` (default 0.1 %) of these ratios, clipped to [``min_ratio``,
``max_ratio``] = [0.25, 0.35]: a test structure leaks when it is relatively
closer to a training structure than (almost) any training structure is to
another -- consecutive MD frames included. The bounds bracket what the shipped
data show (copies rattled by 1e-3 Å <= 0.20, independent frames >= 0.40) and
guard against the two ways the quantile goes wrong: scans (the frames of a
dimer curve beyond ~5 Å, where every descriptor tends to zero, and isolated
atoms sit unnaturally close to each other: the shipped set's 0.1 % quantile is
0.01) and small training sets (the 0.1 % quantile of 60 ratios is their
minimum, 0.58 on a 60-structure subset). On data drawn like the training set,
about ``quantile`` of the test structures fall below the threshold by chance.
Exact duplicates inside the training set (distance < 1e-6) are merged first and
counted; a test structure that close to a training structure always leaks.

On the shipped EMT data (split by trajectory, 530/164 structures) every
training structure rattled by 1e-3 Å has a ratio <= 0.20 (translated and
rotated copies ~1e-12; the largest ratios are 300 K clusters, whose frames all
sit near one minimum) and the closest independent test structure 0.40; the
threshold is 0.25. (Frames 80 fs apart in one MD trajectory are as different as
independent samples here, so even a random frame-by-frame split does not leak;
a finer frame spacing would.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from .data import DataError, error_summary, species_of, structure_errors

__all__ = ["LEAKAGE_DESCRIPTOR", "structure_descriptors", "Whitener", "nearest_neighbours",
           "deduplicate", "train_nearest_neighbours", "LeakageReport", "mahalanobis_leakage",
           "DUPLICATE_DISTANCE", "Moments", "leakage_from_index", "CALIBRATION_SIZE"]

#: Descriptor settings of the structure descriptors (D = 173 per species, F = 346 for
#: two species): of the settings tried on the shipped data, the one separating 1e-3 Å
#: rattled copies from independent MD frames best (ratio 2.2 between the closest
#: independent frame and the farthest copy).
LEAKAGE_DESCRIPTOR = dict(cutoff=5.5, n_radial=8, n_angular=2, l_max=2)
#: Whitened distance below which two structures are the same structure (round-off of
#: translated/rotated copies is ~1e-12; a 1e-3 Å rattle is >= 2e-3).
DUPLICATE_DISTANCE = 1e-6
#: Training structures whose leave-one-out ratios calibrate the threshold when the
#: training set is too large to query all of them (a random sample; the 0.1 % quantile
#: of 50 000 ratios rests on 50 of them).
CALIBRATION_SIZE = 50_000
#: Neighbours fetched per query of an approximate index (exact duplicates are skipped).
NEIGHBOURS = 8


def default_descriptor(species: Sequence[str], **overrides):
    """The audits' :class:`~conformance.featurize.descriptors.Descriptor` for ``species``."""
    from ..featurize.descriptors import Descriptor

    return Descriptor(list(species), **{**LEAKAGE_DESCRIPTOR, **overrides})


def structure_descriptors(structures, descriptor=None, species: Sequence[str] | None = None):
    """Species-pooled, per-atom-averaged descriptors of whole structures.

    Parameters
    ----------
    structures : sequence of ase.Atoms
    descriptor : conformance.featurize.descriptors.Descriptor, optional
        Default: :data:`LEAKAGE_DESCRIPTOR` for ``species``.
    species : sequence of str, optional
        Species of the default descriptor (default: those present, by atomic number).

    Returns
    -------
    ndarray, shape (n_structures, S + S * D)
        ``[n_e / N for e] + [(1/N) sum_{i: Z_i = e} G_i for e]`` (see module doc).

    Raises
    ------
    DataError
        A structure contains an element the descriptor does not know.
    """
    structures = list(structures)
    if descriptor is None:
        descriptor = default_descriptor(species or species_of(structures))
    s, dim = descriptor.n_species, descriptor.n_features
    out = np.empty((len(structures), s + s * dim))
    for k, atoms in enumerate(structures):
        try:
            idx = descriptor.species_index(atoms)
        except ValueError as exc:
            raise DataError(f"structure {k} ({atoms.get_chemical_formula()}): {exc}") from None
        g = descriptor.compute(atoms)
        pooled = np.zeros((s, dim))
        np.add.at(pooled, idx, g)
        n = len(atoms)
        out[k, :s] = np.bincount(idx, minlength=s) / n
        out[k, s:] = pooled.ravel() / n
    return out


@dataclass
class Moments:
    """Count, mean, centred sums of squares and largest magnitude of vectors.

    Accumulated per partition (:meth:`of`) and merged (:meth:`combine`, Chan et al.'s
    pairwise update: exact for constant columns, no cancellation), they give the
    whitening statistics of a data set read in pieces (:meth:`Whitener.from_moments`).

    Attributes
    ----------
    n : int
    mean : ndarray, shape (F,)
    m2 : ndarray, shape (F, F)
        ``sum_k (x_k - mean)(x_k - mean)^T``.
    absmax : ndarray, shape (F,)
        ``max_k |x_k|`` per column.
    """

    n: int
    mean: np.ndarray
    m2: np.ndarray
    absmax: np.ndarray

    @classmethod
    def of(cls, x) -> "Moments":
        """Moments of the rows of ``x`` (n, F)."""
        x = np.asarray(x, dtype=float)
        mean = x.mean(axis=0)
        d = x - mean
        return cls(len(x), mean, d.T @ d, np.abs(x).max(axis=0))

    def combine(self, other: "Moments") -> "Moments":
        """Moments of both sets of rows."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + np.outer(delta, delta) * (self.n * other.n / n)
        return Moments(n, mean, m2, np.maximum(self.absmax, other.absmax))


@dataclass
class Whitener:
    """Affine map under which Euclidean distance is the training Mahalanobis distance.

    Fit with :meth:`fit` (see the module docstring for the regularisation).

    Attributes
    ----------
    mean, scale : ndarray, shape (F,)
        Training mean and standard deviation of every column (scale 1 where constant).
    keep : ndarray of bool, shape (F,)
        Columns that vary on the training set.
    matrix : ndarray, shape (F_kept, F_kept)
        ``V diag(lambda)^-1/2`` of the regularised correlation matrix.
    eigenvalues : ndarray, shape (F_kept,)
        Regularised eigenvalues ``lambda`` (correlation units).
    shrinkage : float
        Ledoit-Wolf intensity ``alpha`` in [0, 1] (or the value given).
    floor : float
        Eigenvalue floor applied after shrinkage.
    """

    mean: np.ndarray
    scale: np.ndarray
    keep: np.ndarray
    matrix: np.ndarray
    eigenvalues: np.ndarray
    shrinkage: float
    floor: float

    @classmethod
    def fit(cls, x, shrinkage: float | str = "ledoit-wolf", eigenvalue_floor: float = 1e-6):
        """Fit on training vectors ``x`` (n, F), n >= 2.

        Parameters
        ----------
        shrinkage : "ledoit-wolf" or float in [0, 1]
            Intensity of the shrinkage of the correlation matrix toward the identity.
        eigenvalue_floor : float
            Smallest eigenvalue kept (correlation units: 1 = one standard deviation²).
        """
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or len(x) < 2:
            raise DataError(f"need at least 2 training structures to whiten, got {len(x)}")
        if not np.all(np.isfinite(x)):
            raise DataError("training descriptors contain NaN or inf")
        moments = Moments(len(x), x.mean(axis=0), None, np.abs(x).max(axis=0))
        std = x.std(axis=0)
        keep = _varying(std, moments.absmax)
        scale = np.where(keep, std, 1.0)
        z = (x[:, keep] - moments.mean[keep]) / scale[keep]
        if z.shape[1] == 0:
            raise DataError("every descriptor column is constant on the training set "
                            "(all training structures are identical)")
        cov = z.T @ z / len(x)
        z4 = float(np.sum(np.sum(z * z, axis=1) ** 2))
        return cls._regularised(moments.mean, scale, keep, cov, z4, len(x), shrinkage,
                                eigenvalue_floor)

    @classmethod
    def from_moments(cls, moments: Moments, fourth, shrinkage: float | str = "ledoit-wolf",
                     eigenvalue_floor: float = 1e-6):
        """Whitener from accumulated :class:`Moments` (same result as :meth:`fit`).

        Parameters
        ----------
        moments : Moments
        fourth : callable(mean, scale, keep) -> float
            ``sum_k |z_k|^4`` of the standardised kept columns (Ledoit-Wolf needs it;
            e.g. :func:`fourth_moment` over the data's chunks).
        """
        if moments.n < 2:
            raise DataError(f"need at least 2 training structures to whiten, got {moments.n}")
        if not (np.all(np.isfinite(moments.mean)) and np.all(np.isfinite(moments.m2))):
            raise DataError("training descriptors contain NaN or inf")
        std = np.sqrt(np.maximum(np.diag(moments.m2), 0.0) / moments.n)
        keep = _varying(std, moments.absmax)
        if not keep.any():
            raise DataError("every descriptor column is constant on the training set "
                            "(all training structures are identical)")
        scale = np.where(keep, std, 1.0)
        cov = moments.m2[np.ix_(keep, keep)] / moments.n / np.outer(scale[keep], scale[keep])
        z4 = float(fourth(moments.mean, scale, keep)) if shrinkage == "ledoit-wolf" else 0.0
        return cls._regularised(moments.mean, scale, keep, cov, z4, moments.n, shrinkage,
                                eigenvalue_floor)

    @classmethod
    def _regularised(cls, mean, scale, keep, cov, z4: float, n: int, shrinkage,
                     eigenvalue_floor: float):
        p = cov.shape[0]
        if shrinkage == "ledoit-wolf":
            alpha = _ledoit_wolf(cov, z4, n)
        else:
            alpha = float(shrinkage)
            if not 0.0 <= alpha <= 1.0:
                raise ValueError(f"shrinkage must be in [0, 1] or 'ledoit-wolf', got {shrinkage!r}")
        mu = np.trace(cov) / p
        reg = (1.0 - alpha) * cov + alpha * mu * np.eye(p)
        lam, vec = np.linalg.eigh(reg)
        lam = np.maximum(lam, eigenvalue_floor * mu)
        return cls(mean, scale, keep, vec / np.sqrt(lam), lam, float(alpha),
                   float(eigenvalue_floor))

    @property
    def dimension(self) -> int:
        """Number of whitened coordinates."""
        return int(self.keep.sum())

    def transform(self, x) -> np.ndarray:
        """Whitened coordinates, shape (n, F_kept)."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise DataError(f"descriptor arrays must have shape (n, {len(self.mean)}), "
                            f"got {x.shape}")
        return ((x[:, self.keep] - self.mean[self.keep]) / self.scale[self.keep]) @ self.matrix

    def off_support(self, x) -> np.ndarray:
        """True for rows that differ from the training set in a column constant on it."""
        x = np.asarray(x, dtype=float)
        const = ~self.keep
        if not const.any():
            return np.zeros(len(x), dtype=bool)
        tol = 1e-8 * np.maximum(np.abs(self.mean[const]), 1.0)
        return np.any(np.abs(x[:, const] - self.mean[const]) > tol, axis=1)

    def distance(self, a, b) -> np.ndarray:
        """Mahalanobis distance between rows of ``a`` and ``b`` (same shape)."""
        return np.linalg.norm(self.transform(a) - self.transform(b), axis=1)


def ledoit_wolf_shrinkage(z, cov=None) -> float:
    """Ledoit-Wolf (2004) shrinkage intensity toward ``mu I`` for centred data ``z`` (n, p).

    ``alpha = min(b², d²) / d²`` with ``d² = ||S - mu I||_F²`` and
    ``b² = (1/n²) sum_k ||z_k z_k^T - S||_F² = (sum_k |z_k|⁴ / n - ||S||_F²) / n``.
    """
    n, p = z.shape
    cov = z.T @ z / n if cov is None else cov
    return _ledoit_wolf(cov, float(np.sum(np.sum(z * z, axis=1) ** 2)), n)


def _ledoit_wolf(cov, z4: float, n: int) -> float:
    """Ledoit-Wolf intensity from the covariance (p, p) and ``sum_k |z_k|⁴`` of n rows."""
    p = cov.shape[0]
    mu = np.trace(cov) / p
    d2 = float(np.sum((cov - mu * np.eye(p)) ** 2))
    if d2 <= 0.0:
        return 0.0
    b2 = float((z4 / n - np.sum(cov * cov)) / n)
    return float(min(max(b2, 0.0), d2) / d2)


def _varying(std, absmax) -> np.ndarray:
    """Columns that vary on the training set (relative to their magnitude)."""
    return std > 1e-10 * absmax


def fourth_moment(chunks):
    """``fourth`` argument of :meth:`Whitener.from_moments` over chunks of rows.

    Parameters
    ----------
    chunks : callable returning an iterable of ndarray (m, F)
    """
    def fourth(mean, scale, keep):
        total = 0.0
        for x in chunks():
            z = (np.asarray(x, dtype=float)[:, keep] - mean[keep]) / scale[keep]
            total += float(np.sum(np.sum(z * z, axis=1) ** 2))
        return total

    return fourth


def kd_tree(points):
    from scipy.spatial import cKDTree

    # sliding-midpoint splits build faster and query as fast on clustered data
    return cKDTree(points, leafsize=16, balanced_tree=False, compact_nodes=False)


def nearest_neighbours(tree, queries, k: int = 1, chunk_size: int = 16384, workers: int = -1):
    """Distances and indices of the ``k`` nearest tree points of every query, in chunks.

    Returns
    -------
    distance, index : ndarray, shape (n_queries,) for k = 1, else (n_queries, k)
    """
    queries = np.asarray(queries)
    shape = (len(queries),) if k == 1 else (len(queries), k)
    dist = np.empty(shape)
    index = np.empty(shape, dtype=np.int64)
    for start in range(0, len(queries), chunk_size):
        sl = slice(start, start + chunk_size)
        dist[sl], index[sl] = tree.query(queries[sl], k=k, workers=workers)
    return dist, index


def deduplicate(points, tol: float | None = None, tree=None, nn=None):
    """Merge points closer than ``tol`` (default :data:`DUPLICATE_DISTANCE`).

    Parameters
    ----------
    points : ndarray, shape (n, F)
    tol : float, optional
    tree : cKDTree, optional
        Tree on ``points`` (built if not given).
    nn : ndarray, shape (n,), optional
        Distance of every point to its nearest other point (queried if not given);
        only points with ``nn <= tol`` are searched for partners.

    Returns
    -------
    unique : ndarray of int
        Index of one representative (the smallest index) per group of duplicates.
    representative : ndarray of int, shape (n,)
        The representative of every point.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    tol = DUPLICATE_DISTANCE if tol is None else tol
    n = len(points)
    tree = kd_tree(points) if tree is None else tree
    if nn is None:
        nn = train_nearest_neighbours(tree, points)[0] if n > 1 else np.full(n, np.inf)
    close = np.flatnonzero(nn <= tol)
    if len(close) == 0:
        return np.arange(n), np.arange(n)
    balls = tree.query_ball_point(points[close], tol)
    rows = np.concatenate([np.full(len(b), i) for i, b in zip(close, balls)])
    cols = np.concatenate([np.asarray(b, dtype=int) for b in balls])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    first = np.full(label.max() + 1, n)
    np.minimum.at(first, label, np.arange(n))
    return np.flatnonzero(first[label] == np.arange(n)), first[label]


def train_nearest_neighbours(tree, points, chunk_size: int = 16384, workers: int = -1):
    """Nearest-neighbour geometry of a training set without exact duplicates.

    Returns
    -------
    nn : ndarray, shape (n,)
        Distance of every point to its nearest other point.
    index : ndarray of int, shape (n,)
        That neighbour.
    loo : ndarray, shape (n,)
        Leave-one-out ratio ``nn_i / nn_j^(-i)``: the distance of ``i`` to its
        neighbour ``j`` relative to ``j``'s nearest-neighbour distance once ``i``
        is removed (needs n >= 3; NaN otherwise).
    """
    n = len(points)
    k = min(3, n)
    dist, index = nearest_neighbours(tree, points, k, chunk_size, workers)
    own = np.arange(n)
    first_is_self = index[:, 0] == own
    nn = np.where(first_is_self, dist[:, 1], dist[:, 0])
    nbr = np.where(first_is_self, index[:, 1], index[:, 0])
    if k < 3:
        return nn, nbr, np.full(n, np.nan)
    # neighbours of j other than j itself, in order; drop i
    others_j = np.where(first_is_self[nbr, None], index[nbr][:, 1:], index[nbr][:, [0, 2]])
    others_d = np.where(first_is_self[nbr, None], dist[nbr][:, 1:], dist[nbr][:, [0, 2]])
    nn_j = np.where(others_j[:, 0] == own, others_d[:, 1], others_d[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = nn / nn_j
    return nn, nbr, loo


@dataclass
class LeakageReport:
    """Result of :func:`mahalanobis_leakage`.

    Attributes
    ----------
    pairs : pandas.DataFrame
        One row per leaked test structure, closest first: ``test_index``,
        ``train_index``, ``distance`` (Mahalanobis), ``train_nn_distance`` (the
        training structure's own nearest-neighbour distance ``nn_j``), ``ratio``
        (distance / nn_j), ``threshold_distance`` (threshold * nn_j) and
        ``relative`` (ratio / threshold: < 1 leaks).
    threshold : float
        Threshold on the ratio (dimensionless).
    quantile, min_ratio, max_ratio : float
        Quantile of the training leave-one-out ratios that gave ``threshold``, and
        the bounds it was clipped to.
    leaked : ndarray of bool, shape (n_test,)
    nn_distance, nn_index, ratio : ndarray, shape (n_test,)
        Every test structure's nearest training structure, distance and ratio.
    train_nn_distance : ndarray, shape (n_train,)
        Every training structure's distance to its nearest other training
        structure (0 for exact duplicates).
    calibration : ndarray
        Leave-one-out ratios of the (deduplicated) training structures.
    off_support : ndarray of bool, shape (n_test,)
        Test structures outside the training support (never leaks).
    train_duplicates : int
        Training structures that exactly duplicate an earlier training structure.
    errors : pandas.DataFrame or None
        Test RMSE (energy eV/atom, forces eV/Å) on all / without leaked / leaked
        structures, when a model or per-structure errors were given.
    whitener : Whitener
    """

    pairs: pd.DataFrame
    threshold: float
    quantile: float
    leaked: np.ndarray
    nn_distance: np.ndarray
    nn_index: np.ndarray
    ratio: np.ndarray
    train_nn_distance: np.ndarray
    calibration: np.ndarray = field(repr=False)
    off_support: np.ndarray = field(repr=False)
    train_duplicates: int = 0
    whitener: Whitener | None = field(default=None, repr=False)
    min_ratio: float = 0.0
    max_ratio: float = 1.0
    errors: pd.DataFrame | None = None
    test_errors: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def n_train(self) -> int:
        return len(self.train_nn_distance)

    @property
    def n_test(self) -> int:
        return len(self.nn_distance)

    @property
    def n_leaked(self) -> int:
        return int(self.leaked.sum())

    @property
    def leaked_fraction(self) -> float:
        """Fraction of test structures that leak."""
        return self.n_leaked / self.n_test if self.n_test else 0.0

    def summary(self, max_pairs: int = 10) -> str:
        """A few lines for a terminal or a failure message."""
        lines = [f"{self.n_leaked} of {self.n_test} test structures ({100 * self.leaked_fraction:.1f}%)"
                 f" leak from the {self.n_train} training structures: closer to a training "
                 f"structure than {self.threshold:.3g} x its own nearest-neighbour distance "
                 f"(the training set's {100 * self.quantile:g}% quantile of leave-one-out ratios, "
                 f"clipped to [{self.min_ratio:g}, {self.max_ratio:g}])"]
        if self.train_duplicates:
            lines.append(f"{self.train_duplicates} training structures duplicate another "
                         "training structure")
        if len(self.pairs):
            lines.append("  test  train  distance  ratio")
            for row in self.pairs.head(max_pairs).itertuples():
                lines.append(f"  {row.test_index:4d}  {row.train_index:5d}  {row.distance:8.2e}"
                             f"  {row.ratio:.2e}")
            if len(self.pairs) > max_pairs:
                lines.append(f"  ... {len(self.pairs) - max_pairs} more")
        if self.errors is not None:
            for row in self.errors.itertuples():
                lines.append(f"test error {row.subset:15s} ({row.n_structures:4d}): energy "
                             f"{1e3 * row.energy_rmse:.3g} meV/atom, forces {row.force_rmse:.3g} eV/Å")
        return "\n".join(lines)

    def to_dict(self, max_pairs: int = 100) -> dict:
        """JSON-ready summary (first ``max_pairs`` pairs)."""
        out = dict(n_train=self.n_train, n_test=self.n_test, n_leaked=self.n_leaked,
                   leaked_fraction=self.leaked_fraction, threshold=self.threshold,
                   quantile=self.quantile, min_ratio=self.min_ratio, max_ratio=self.max_ratio,
                   train_duplicates=self.train_duplicates,
                   n_off_support=int(self.off_support.sum()),
                   closest_independent_ratio=float(np.min(self.ratio[~self.leaked]))
                   if (~self.leaked).any() else None,
                   pairs=self.pairs.head(max_pairs).to_dict(orient="list"))
        if self.whitener is not None:
            out.update(shrinkage=self.whitener.shrinkage, dimension=self.whitener.dimension)
        if self.errors is not None:
            out["errors"] = self.errors.to_dict(orient="list")
        return out


def as_descriptors(data, descriptor, name):
    """(array, structures or None) from structures or a precomputed array."""
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise DataError(f"{name}: descriptor array must be 2-D (n, F), got shape {data.shape}")
        if len(data) == 0:
            raise DataError(f"{name}: no structures (empty array)")
        return np.asarray(data, dtype=float), None
    structures = list(data)
    if not structures:
        raise DataError(f"{name}: no structures (empty data set)")
    return structure_descriptors(structures, descriptor), structures


def mahalanobis_leakage(train, test, *, descriptor=None, model=None, test_errors=None,
                        quantile: float = 0.001, min_ratio: float = 0.25,
                        max_ratio: float = 0.35,
                        shrinkage: float | str = "ledoit-wolf",
                        eigenvalue_floor: float = 1e-6, chunk_size: int = 16384,
                        workers: int = -1, index: str = "exact",
                        exact_limit: int | None = None,
                        calibration_size: int = CALIBRATION_SIZE,
                        seed: int = 0) -> LeakageReport:
    """Find test structures that are (near-)copies of training structures.

    Parameters
    ----------
    train, test : sequence of ase.Atoms, or ndarray (n, F)
        Structures, or precomputed structure descriptors (same columns for both).
    descriptor : conformance.featurize.descriptors.Descriptor, optional
        Used for structures; default :data:`LEAKAGE_DESCRIPTOR` on the species of
        train and test together.
    model : ASE calculator or conformance.core.model.Model, optional
        If given (with structures), its test errors are reported with and
        without the leaked structures.
    test_errors : pandas.DataFrame, optional
        Precomputed per-test-structure errors (see
        :func:`conformance.audits.data.structure_errors`) instead of ``model``.
    quantile : float
        Quantile of the training set's leave-one-out ratios giving the threshold.
    min_ratio, max_ratio : float
        Bounds of the threshold (see module doc).
    shrinkage, eigenvalue_floor
        Regularisation of the training covariance (see :class:`Whitener`).
    chunk_size : int
        Queries per k-d tree call (bounds memory).
    workers : int
        Threads of the k-d tree queries (-1: all cores).
    index : {"exact", "approximate", "auto"}
        Nearest neighbours from a k-d tree (exact, the default) or a faiss inverted-file
        index (:mod:`conformance.audits.neighbours`); "auto": exact up to ``exact_limit``
        training structures (default :data:`~conformance.audits.neighbours.EXACT_LIMIT`).
    calibration_size, seed
        With the approximate index: training structures (a seeded random sample) whose
        leave-one-out ratios calibrate the threshold (see :func:`leakage_from_index`).

    Returns
    -------
    LeakageReport

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = rng.normal(size=(500, 5))
    >>> test = np.vstack([rng.normal(size=(10, 5)), train[:3] + 1e-9])
    >>> report = mahalanobis_leakage(train, test)
    >>> pairs = report.pairs.sort_values("test_index")
    >>> pairs["test_index"].tolist(), pairs["train_index"].tolist()
    ([10, 11, 12], [0, 1, 2])
    """
    if not 0.0 <= quantile < 1.0:
        raise ValueError(f"quantile must be in [0, 1), got {quantile}")
    if descriptor is None and not isinstance(train, np.ndarray):
        train, test = list(train), list(test)
        descriptor = default_descriptor(species_of(train + test))
    x_train, _ = as_descriptors(train, descriptor, "training set")
    x_test, test_structures = as_descriptors(test, descriptor, "test set")
    if x_train.shape[1] != x_test.shape[1]:
        raise DataError(f"train and test descriptors differ in width: {x_train.shape[1]} vs "
                        f"{x_test.shape[1]}")
    whitener = Whitener.fit(x_train, shrinkage, eigenvalue_floor)
    if index not in ("auto", "exact", "approximate"):
        raise ValueError(f"index must be 'auto', 'exact' or 'approximate', got {index!r}")
    from .neighbours import EXACT_LIMIT, build_index

    limit = EXACT_LIMIT if exact_limit is None else exact_limit
    if index == "approximate" or (index == "auto" and len(x_train) > limit):
        chunks = lambda: (whitener.transform(x_train[k:k + 65536])  # noqa: E731
                          for k in range(0, len(x_train), 65536))
        ann = build_index(chunks, len(x_train), whitener.dimension, exact_limit=0, seed=seed)
        report = leakage_from_index(ann, whitener, x_test, quantile=quantile,
                                    min_ratio=min_ratio, max_ratio=max_ratio,
                                    calibration_size=calibration_size, seed=seed)
        return with_test_errors(report, test_errors, model, test_structures, len(x_test))
    z_train = whitener.transform(x_train)
    tree = kd_tree(z_train)
    nn_all, _, calibration = train_nearest_neighbours(tree, z_train, chunk_size, workers)
    unique, representative = deduplicate(z_train, tree=tree, nn=nn_all)
    if len(unique) < 3:
        raise DataError(f"training set: need at least 3 distinct structures, got {len(unique)}")
    if len(unique) < len(z_train):   # rare: redo the geometry without the duplicates
        tree = kd_tree(z_train[unique])
        nn_u, _, calibration = train_nearest_neighbours(tree, z_train[unique], chunk_size,
                                                        workers)
    else:
        nn_u = nn_all
    threshold = float(np.clip(np.quantile(calibration, quantile), min_ratio, max_ratio))
    nn_train = np.zeros(len(z_train))    # exact duplicates: 0
    nn_train[unique] = nn_u
    d, ju = nearest_neighbours(tree, whitener.transform(x_test), 1, chunk_size, workers)
    j = unique[ju]
    ratio = d / nn_u[ju]
    off = whitener.off_support(x_test)
    leaked = ((ratio < threshold) | (d <= DUPLICATE_DISTANCE)) & ~off
    idx = np.flatnonzero(leaked)
    pairs = pd.DataFrame(dict(test_index=idx, train_index=j[idx], distance=d[idx],
                              train_nn_distance=nn_u[ju[idx]], ratio=ratio[idx],
                              threshold_distance=threshold * nn_u[ju[idx]],
                              relative=ratio[idx] / threshold))
    pairs = pairs.sort_values(["distance", "test_index"], kind="stable").reset_index(drop=True)
    report = LeakageReport(pairs, threshold, quantile, leaked, d, j, ratio, nn_train, calibration,
                           off, len(z_train) - len(unique), whitener, min_ratio, max_ratio)
    return with_test_errors(report, test_errors, model, test_structures, len(x_test))


def with_test_errors(report: LeakageReport, test_errors, model, test_structures, n_test: int):
    """The report with the model's test errors on all / without leaked / leaked structures."""
    if test_errors is None and model is not None:
        if test_structures is None:
            raise ValueError("model errors need structures, not descriptor arrays; "
                             "pass test_errors instead")
        test_errors = structure_errors(model, test_structures)
    if test_errors is not None:
        if len(test_errors) != n_test:
            raise ValueError(f"test_errors has {len(test_errors)} rows for {n_test} test "
                             "structures")
        leaked = report.leaked
        report.errors = error_summary(test_errors, {"all": np.ones(len(leaked), bool),
                                                    "without leaked": ~leaked, "leaked": leaked})
        report.test_errors = test_errors
    return report


def _first_beyond(dist, index, exclude, tol: float):
    """Distance and index of the first neighbour of each row farther than ``tol`` and not in
    ``exclude`` (n,) or (n, m); inf and -1 where none was fetched."""
    exclude = np.asarray(exclude).reshape(len(index), -1)
    mask = (dist > tol) & (index >= 0) & np.isfinite(dist)
    for col in range(exclude.shape[1]):
        mask &= index != exclude[:, col:col + 1]
    pos = np.argmax(mask, axis=1)
    rows = np.arange(len(index))
    found = mask[rows, pos]
    return (np.where(found, dist[rows, pos], np.inf), np.where(found, index[rows, pos], -1))


def leakage_from_index(index, whitener: Whitener, x_test, *, quantile: float = 0.001,
                       min_ratio: float = 0.25, max_ratio: float = 0.35,
                       calibration_size: int = CALIBRATION_SIZE, seed: int = 0,
                       neighbours: int = NEIGHBOURS, x_test_chunks=None) -> LeakageReport:
    """Leakage from a nearest-neighbour index of the whitened training set (any size).

    The same decision as :func:`mahalanobis_leakage` with the exact tree: a test
    structure leaks when its distance to the nearest training structure ``j``,
    relative to ``j``'s own nearest-neighbour distance, is below a low quantile of
    the training set's leave-one-out ratios (or when it is a duplicate). Exact
    duplicates (distance <= :data:`DUPLICATE_DISTANCE`) are skipped when looking for a
    structure's nearest neighbour instead of being merged first; the leave-one-out
    ratios are computed on a seeded random sample of ``calibration_size`` training
    structures (all of them when fewer), so ``train_nn_distance`` is NaN outside the
    sample and the test structures' neighbours, and ``train_duplicates`` is the
    sample's count scaled to the training set.

    Parameters
    ----------
    index : ExactIndex or ApproximateIndex
        Index of the whitened training vectors (:mod:`conformance.audits.neighbours`).
    whitener : Whitener
    x_test : ndarray, shape (n_test, F)
        Test structure descriptors (not whitened).
    neighbours : int
        Neighbours fetched per query (duplicates among them are skipped).

    Returns
    -------
    LeakageReport
    """
    tol = DUPLICATE_DISTANCE
    n = len(index)
    if n < 3:
        raise DataError(f"training set: need at least 3 distinct structures, got {n}")
    x_test = np.asarray(x_test, dtype=float)
    k = min(neighbours, n)
    rng = np.random.default_rng(seed)
    sample = (np.arange(n) if n <= calibration_size
              else np.sort(rng.choice(n, calibration_size, replace=False)))
    dist, idx = index.query(index.vectors(sample), k)
    nn_i, j = _first_beyond(dist, idx, sample, tol)
    duplicates = int(np.sum(np.any((dist <= tol) & (idx != sample[:, None]) & (idx >= 0), axis=1)))
    ok = j >= 0
    dist_j, idx_j = index.query(index.vectors(j[ok]), k)
    nn_j, _ = _first_beyond(dist_j, idx_j, np.c_[j[ok], sample[ok]], tol)
    with np.errstate(divide="ignore", invalid="ignore"):
        calibration = nn_i[ok] / nn_j
    calibration = calibration[np.isfinite(calibration)]
    if len(calibration) == 0:
        raise DataError("training set: need at least 3 distinct structures")
    threshold = float(np.clip(np.quantile(calibration, quantile), min_ratio, max_ratio))
    z_test = whitener.transform(x_test)
    d_t, i_t = index.query(z_test, k)
    d, jt = d_t[:, 0], i_t[:, 0]
    unique_j, inverse = np.unique(jt, return_inverse=True)
    dist_u, idx_u = index.query(index.vectors(unique_j), k)
    nn_u, _ = _first_beyond(dist_u, idx_u, unique_j, tol)
    nn_t = nn_u[inverse]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = d / nn_t
    off = whitener.off_support(x_test)
    leaked = ((ratio < threshold) | (d <= tol)) & ~off
    train_nn = np.full(n, np.nan)
    train_nn[sample] = nn_i
    train_nn[unique_j] = nn_u
    hit = np.flatnonzero(leaked)
    pairs = pd.DataFrame(dict(test_index=hit, train_index=jt[hit], distance=d[hit],
                              train_nn_distance=nn_t[hit], ratio=ratio[hit],
                              threshold_distance=threshold * nn_t[hit],
                              relative=ratio[hit] / threshold))
    pairs = pairs.sort_values(["distance", "test_index"], kind="stable").reset_index(drop=True)
    estimated = int(round(duplicates * n / len(sample)))
    return LeakageReport(pairs, threshold, quantile, leaked, d, jt, ratio, train_nn, calibration,
                         off, estimated, whitener, min_ratio, max_ratio)
