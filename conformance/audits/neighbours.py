"""Nearest-neighbour indexes of whitened structure descriptors: exact and approximate.

The leakage and coverage audits ask one question of the training set many times:
which training structures are nearest to this vector, and how far are they?

* :class:`ExactIndex` -- a k-d tree (``scipy.spatial.cKDTree``), exact; the data-audit
  engine uses it up to :data:`EXACT_LIMIT` training structures (its results there are
  exactly those of the in-memory algorithm). k-d trees are fast on descriptors of MD
  frames, which lie on a few collective modes (10^5 in seconds, see
  ``benchmarks/bench_audits.py``), but degrade to brute force when diverse data fill the
  whitened 346-dimensional space: 9000 structures of the synthetic benchmark set
  (random lattices, compositions, clusters) took 150 s;
* :class:`ApproximateIndex` -- an inverted-file index of faiss (``IndexIVFFlat``:
  k-means cells, exact float32 distances inside the ``nprobe`` cells nearest to the
  query). Built from chunks, so the training vectors never need to exist as one
  array besides the index's own float32 copy. A query misses its true nearest
  neighbour only when that neighbour sits in none of the ``nprobe`` cells closest to
  the query; a (near-)copy of a training structure sits in the same cell as its
  original, so leak recall is essentially one (measured in
  ``benchmarks/bench_scale.py``; compared with the exact index in the tests).

Both answer :meth:`query` with Euclidean distances and indices, shape (n, k).
"""

from __future__ import annotations

import numpy as np

__all__ = ["ExactIndex", "ApproximateIndex", "build_index", "EXACT_LIMIT"]

#: Training structures up to which the data-audit engine uses the exact k-d tree.
EXACT_LIMIT = 2_000


class ExactIndex:
    """Exact nearest neighbours from a k-d tree on the points (n, d)."""

    exact = True

    def __init__(self, points, workers: int = -1, chunk_size: int = 16384):
        from scipy.spatial import cKDTree

        self.points = np.asarray(points, dtype=float)
        # sliding-midpoint splits build faster and query as fast on clustered data
        self.tree = cKDTree(self.points, leafsize=16, balanced_tree=False, compact_nodes=False)
        self.workers, self.chunk_size = workers, chunk_size

    def __len__(self) -> int:
        return len(self.points)

    def query(self, queries, k: int):
        """Distances and indices of the k nearest points, each (n, k), nearest first."""
        queries = np.asarray(queries, dtype=float)
        dist = np.empty((len(queries), k))
        index = np.empty((len(queries), k), dtype=np.int64)
        for start in range(0, len(queries), self.chunk_size):
            sl = slice(start, start + self.chunk_size)
            d, i = self.tree.query(queries[sl], k=k, workers=self.workers)
            dist[sl], index[sl] = d.reshape(-1, k), i.reshape(-1, k)
        return dist, index

    def vectors(self, index) -> np.ndarray:
        return self.points[np.asarray(index)]


class ApproximateIndex:
    """faiss ``IndexIVFFlat`` on float32 vectors, filled chunk by chunk.

    Parameters
    ----------
    dimension : int
    training_sample : ndarray, shape (m, dimension)
        Vectors the k-means cells are trained on (a random sample of the data).
    n_cells : int, optional
        k-means cells (default ``clip(sqrt(n), 16, 2048)`` for ``n`` expected points).
    nprobe : int
        Cells searched per query.
    threads : int
        OpenMP threads of faiss (0: faiss' default).
    """

    exact = False

    def __init__(self, dimension: int, training_sample, expected: int, n_cells: int | None = None,
                 nprobe: int = 8, threads: int = 0, seed: int = 0):
        import faiss

        if threads:
            faiss.omp_set_num_threads(int(threads))
        sample = np.ascontiguousarray(training_sample, dtype=np.float32)
        if n_cells is None:
            n_cells = int(np.clip(np.sqrt(expected), 16, 2048))
        n_cells = max(1, min(n_cells, len(sample) // 39))   # faiss wants 39 points per cell
        self.quantizer = faiss.IndexFlatL2(dimension)
        self.index = faiss.IndexIVFFlat(self.quantizer, dimension, n_cells)
        self.index.cp.seed = seed
        self.index.train(sample)
        self.index.nprobe = min(nprobe, n_cells)
        self.n_cells = n_cells
        self._mapped = False

    def add(self, vectors) -> None:
        """Append vectors (their indices continue from the current size)."""
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self._mapped = False

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def query(self, queries, k: int, chunk_size: int = 65536):
        """Approximate distances and indices of the k nearest points, each (n, k)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        dist = np.empty((len(queries), k))
        index = np.empty((len(queries), k), dtype=np.int64)
        for start in range(0, len(queries), chunk_size):
            sl = slice(start, start + chunk_size)
            d2, i = self.index.search(queries[sl], k)
            dist[sl] = np.sqrt(np.maximum(d2, 0.0))
            index[sl] = i
        missing = index < 0            # fewer than k points in the probed cells
        dist[missing] = np.inf
        return dist, index

    def vectors(self, index) -> np.ndarray:
        """The stored (float32) vectors of the given indices, as float64 (n, d)."""
        if not self._mapped:
            self.index.make_direct_map()
            self._mapped = True
        index = np.ascontiguousarray(index, dtype=np.int64)
        return self.index.reconstruct_batch(index).astype(float)


def build_index(chunks, n: int, dimension: int, exact_limit: int = EXACT_LIMIT,
                seed: int = 0, threads: int = 0, nprobe: int = 8):
    """Exact index for ``n <= exact_limit`` points, else an approximate one.

    Parameters
    ----------
    chunks : callable returning an iterable of ndarray (m, dimension)
        The points in order (called twice for the approximate index: once to draw
        the training sample, once to add them).
    n : int
        Number of points.
    """
    if n <= exact_limit:
        return ExactIndex(np.concatenate(list(chunks())))
    rng = np.random.default_rng(seed)
    fraction = min(1.0, 40 * np.clip(np.sqrt(n), 16, 2048) / n)
    sample = np.concatenate([c[rng.random(len(c)) < fraction] for c in chunks()])
    index = ApproximateIndex(dimension, sample, n, nprobe=nprobe, threads=threads, seed=seed)
    for chunk in chunks():
        index.add(chunk)
    return index
