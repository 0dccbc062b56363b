"""asv benchmarks of the data audits: Mahalanobis leakage and grouped Cook's distance.

The data are synthetic, seeded and cached per process:

* **leakage** -- structure descriptors of dimension 50 drawn from a Gaussian mixture
  shaped like real descriptor sets: one component per "trajectory" of 100 frames,
  each component spread along 6 soft directions (the collective modes an MD run
  explores) plus a small isotropic noise, component centres spread over the whole
  space. Train and test are independent draws of equal size N; 1 % of the test set
  is replaced by copies of training points displaced by 1e-3 of the noise (the
  planted leaks, which ``track_leaked_fraction`` follows).
  ``LeakageIsotropic`` is the worst case of any k-d tree: one isotropic
  50-dimensional Gaussian, where nearest neighbours are barely nearer than anything
  else and every query visits most leaves.
* **Cook's distance** -- a grouped weighted least-squares problem like the linear
  reference fit: G groups ("structures") of 40 rows, 130 parameters.

``python benchmarks/bench_audits.py`` prints the timings and how they grow with N
(ratio of times against the ratio of N log N, and of N for Cook's distance).
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

DIM = 50
FRAMES_PER_COMPONENT = 100
SOFT_MODES = 6
LEAK_FRACTION = 0.01


@functools.lru_cache(maxsize=4)
def descriptor_sets(n: int, seed: int = 0):
    """(train, test, planted test indices) of n structures each, dimension 50."""
    rng = np.random.default_rng([seed, n])
    k = max(n // FRAMES_PER_COMPONENT, 1)
    centres = rng.normal(0.0, 3.0, (k, DIM))
    modes = rng.normal(0.0, 1.0 / np.sqrt(DIM), (k, SOFT_MODES, DIM))
    noise = 0.05 / np.sqrt(DIM)

    def draw(m):
        label = rng.integers(k, size=m)
        soft = np.einsum("ns,nsd->nd", rng.normal(size=(m, SOFT_MODES)), modes[label])
        return centres[label] + soft + noise * rng.normal(size=(m, DIM))

    train, test = draw(n), draw(n)
    planted = rng.choice(n, int(LEAK_FRACTION * n), replace=False)
    test[planted] = train[planted] + 1e-3 * noise * rng.normal(size=(len(planted), DIM))
    return train, test, planted


@functools.lru_cache(maxsize=2)
def isotropic_sets(n: int, seed: int = 0):
    rng = np.random.default_rng([seed, n, 1])
    return rng.normal(size=(n, DIM)), rng.normal(size=(n, DIM))


@functools.lru_cache(maxsize=4)
def grouped_problem(n_groups: int, rows: int = 40, n_params: int = 130, seed: int = 0):
    """X (G*rows, p), y, groups, weights, ridge of a grouped least-squares fit."""
    from conformance.audits.outliers import ridge_penalty

    rng = np.random.default_rng([seed, n_groups])
    X = rng.normal(size=(n_groups * rows, n_params))
    y = X @ rng.normal(size=n_params) + rng.normal(0.0, 0.1, len(X))
    groups = np.repeat(np.arange(n_groups), rows)
    weights = np.where(np.arange(len(X)) % rows == 0, 10.0, 1.0)   # an "energy" row per group
    kinds = np.where(np.arange(len(X)) % rows == 0, "energy", "forces")
    xw = X * weights[:, None]
    ridge = ridge_penalty(np.einsum("ij,ij->j", xw, xw), 1e-8, 2)
    return X, y, groups, weights, ridge, kinds


class Leakage:
    """Leakage audit on descriptor arrays, train = test = N, dimension 50."""

    params = [10_000, 100_000]
    param_names = ["n"]
    timeout = 600
    number = 1
    repeat = (1, 3, 120.0)

    def setup(self, n):
        self.train, self.test, self.planted = descriptor_sets(n)

    def time_mahalanobis_leakage(self, n):
        from conformance.audits.leakage import mahalanobis_leakage

        mahalanobis_leakage(self.train, self.test)

    def peakmem_mahalanobis_leakage(self, n):
        from conformance.audits.leakage import mahalanobis_leakage

        mahalanobis_leakage(self.train, self.test)

    def track_leaked_fraction(self, n):
        from conformance.audits.leakage import mahalanobis_leakage

        return mahalanobis_leakage(self.train, self.test).leaked_fraction

    track_leaked_fraction.unit = "fraction of test set (1 % planted)"


class LeakageIsotropic:
    """Worst case: an isotropic 50-dimensional Gaussian (the k-d tree degenerates)."""

    params = [3_000, 10_000]
    param_names = ["n"]
    timeout = 600
    number = 1
    repeat = (1, 2, 120.0)

    def setup(self, n):
        self.train, self.test = isotropic_sets(n)

    def time_mahalanobis_leakage(self, n):
        from conformance.audits.leakage import mahalanobis_leakage

        mahalanobis_leakage(self.train, self.test)


class CooksDistance:
    """Grouped Cook's distance: G groups of 40 rows, 130 parameters, no refits."""

    params = [250, 1000, 4000]
    param_names = ["n_groups"]
    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self, n_groups):
        self.problem = grouped_problem(n_groups)

    def time_grouped_cooks_distance(self, n_groups):
        from conformance.audits.outliers import grouped_cooks_distance

        X, y, groups, weights, ridge, kinds = self.problem
        grouped_cooks_distance(X, y, groups, weights=weights, ridge=ridge, kinds=kinds)

    def peakmem_grouped_cooks_distance(self, n_groups):
        from conformance.audits.outliers import grouped_cooks_distance

        X, y, groups, weights, ridge, kinds = self.problem
        grouped_cooks_distance(X, y, groups, weights=weights, ridge=ridge, kinds=kinds)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None):
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from conformance.audits.leakage import mahalanobis_leakage
    from conformance.audits.outliers import grouped_cooks_distance
    from benchmarks.common import best_time

    parser = argparse.ArgumentParser(description="time the data audits")
    parser.add_argument("--sizes", type=int, nargs="+", default=Leakage.params)
    parser.add_argument("--groups", type=int, nargs="+", default=CooksDistance.params)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--isotropic", type=int, nargs="*", default=[3_000, 10_000])
    args = parser.parse_args(argv)

    print(f"leakage: train = test = N, dimension {DIM}, Gaussian mixture of N/"
          f"{FRAMES_PER_COMPONENT} components ({SOFT_MODES} soft modes), 1 % planted copies")
    rows = []
    for n in args.sizes:
        train, test, planted = descriptor_sets(n)
        report = mahalanobis_leakage(train, test)
        found = set(np.flatnonzero(report.leaked))
        seconds = best_time(lambda: mahalanobis_leakage(train, test), args.repeats)
        rows.append((n, seconds))
        print(f"  N = {n:7d}: {seconds:7.2f} s   leaked {report.n_leaked} "
              f"(planted {len(planted)}, found {len(found & set(planted))}, "
              f"other {len(found - set(planted))})   peak RSS {_peak_rss_mb():.0f} MB")
    for (n0, t0), (n1, t1) in zip(rows, rows[1:]):
        nlogn = (n1 * np.log(n1)) / (n0 * np.log(n0))
        print(f"  N {n0} -> {n1}: time x{t1 / t0:.1f}, N log N x{nlogn:.1f}, N² x{(n1 / n0) ** 2:.0f}")
    if args.isotropic:
        print("leakage, worst case (isotropic 50-d Gaussian):")
        iso = []
        for n in args.isotropic:
            train, test = isotropic_sets(n)
            seconds = best_time(lambda: mahalanobis_leakage(train, test), 1)
            iso.append((n, seconds))
            print(f"  N = {n:7d}: {seconds:7.2f} s")
        for (n0, t0), (n1, t1) in zip(iso, iso[1:]):
            print(f"  N {n0} -> {n1}: time x{t1 / t0:.1f}, N² x{(n1 / n0) ** 2:.1f}")
    print("grouped Cook's distance: G groups of 40 rows, 130 parameters")
    rows = []
    for g in args.groups:
        X, y, groups, weights, ridge, kinds = grouped_problem(g)
        seconds = best_time(lambda: grouped_cooks_distance(X, y, groups, weights=weights,
                                                       ridge=ridge, kinds=kinds), args.repeats)
        rows.append((g, seconds))
        print(f"  G = {g:5d} ({len(X):6d} rows): {seconds:6.2f} s")
    for (g0, t0), (g1, t1) in zip(rows, rows[1:]):
        print(f"  G {g0} -> {g1}: time x{t1 / t0:.1f}, G x{g1 / g0:.0f}")


if __name__ == "__main__":
    main()
