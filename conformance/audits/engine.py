"""The data audits as a Dask graph over partitions of the training and test sets.

:func:`audit_data` runs leakage, influential outliers and sampling coverage on data
sets of any size with one code path, whether the graph goes to a local cluster the
audit starts and closes (the default) or to a running ``distributed`` scheduler
(``--mlip-dask=tcp://host:8786``, :func:`dask_client`):

1. **features** (every partition of train and test, :func:`partition_features`):
   read and validate the frames, species-pooled structure descriptors, their
   whitening moments, the sampling axes counted per plan cell, and the linear
   surrogate's normal equations per row kind;
2. on the client: whitening from the summed moments, the nearest-neighbour index
   (exact k-d tree up to ``exact_limit`` training structures, else faiss), the
   surrogate fit from the summed normal equations;
3. **influence** (every training partition again, :func:`partition_influence`):
   leverages, residuals and per-structure Cook's distance against that fit;
4. on the client: the reports, exactly those of the in-memory functions for data
   below the limits (same algorithms, sums in another order).

Memory on a worker is bounded by one partition; the client holds the index
(float32 vectors, 4 x 346 bytes per training structure for two species) and a few
numbers per structure and per design row. A bad partition (unreadable shard, frame
without labels, unknown species) does not stop the others: every partition is
computed, the good ones are kept (a rerun, e.g. the next check of the same pytest
session, reads only what changed), and one :class:`~conformance.audits.data.DataError`
names every bad shard and frame.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from collections import Counter, OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import DataError
from .stream import PARTITION_SIZE, Partition, partitions, read_partition

__all__ = ["audit_data", "DataAudit", "dask_client", "partition_features",
           "partition_influence", "require_dask"]

#: Structures whose sampling axes are kept per partition for the plan cells, at most
#: (the first ones of a partition that falls in no cell are listed).
UNPLANNED_LISTED = 200
#: Design rows of the flagged structures kept per partition for the refit after pruning.
REFIT_ROWS_CAP = 256
#: Bytes of design matrices a worker keeps from stage 1 for stage 3 (least recently
#: used dropped first): small data sets are featurised once, large ones stay bounded.
DESIGN_CACHE_BYTES = 512 * 2**20

_DESIGNS: "OrderedDict" = OrderedDict()


def _remember_design(key, design) -> None:
    size = design.X.nbytes
    if size > DESIGN_CACHE_BYTES:
        return
    _DESIGNS[key] = design
    while sum(d.X.nbytes for d in _DESIGNS.values()) > DESIGN_CACHE_BYTES:
        _DESIGNS.popitem(last=False)


def _design_of(key, frames_of, descriptor):
    """The partition's design rows: remembered from stage 1 on this worker, or computed."""
    from ..featurize.design import design_matrix

    design = _DESIGNS.pop(key, None)
    return design if design is not None else design_matrix(frames_of(), descriptor)


def require_dask():
    """Import ``dask`` and ``distributed``, or explain how to install them."""
    try:
        import dask  # noqa: F401  (only checking that they import)
        import distributed  # noqa: F401
    except ImportError as exc:
        raise DataError("the data audits run on Dask: install it with "
                        "`python -m pip install 'mlip-conformance[data]'` "
                        f"(dask[bag], distributed, faiss-cpu); {exc}") from None


@contextmanager
def dask_client(target: str | None = None, n_partitions: int = 1):
    """A ``distributed.Client``: to a scheduler address, or on a local cluster.

    Parameters
    ----------
    target : str or None
        ``tcp://host:port`` (any address ``distributed.Client`` accepts): use that
        scheduler, leave it running. ``processes:N`` / ``threads:N``: a local cluster
        of N single-threaded workers, closed on exit. None: processes, one per core,
        when ``n_partitions > 2``, else one thread per core.
    """
    require_dask()
    from distributed import Client, LocalCluster

    if target and not target.startswith(("processes:", "threads:")):
        client = Client(target, timeout="30s")
        try:
            yield client
        finally:
            client.close()
        return
    if target:
        kind, _, count = target.partition(":")
        processes, workers = kind == "processes", int(count)
    else:
        workers = max(1, min(os.cpu_count() or 1, n_partitions))
        processes = n_partitions > 2
    # no dashboard; the scheduler's HTTP server on a free port (its default, 8787, may be
    # taken by another cluster on the machine)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=processes,
                           dashboard_address=":0", scheduler_kwargs={"dashboard": False},
                           silence_logs=logging.ERROR, worker_dashboard_address=None)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


# -- tasks (run on the workers) ----------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """What the tasks need besides their partition (sent to the workers once)."""

    species: tuple
    leakage_descriptor: dict
    fit_descriptor: dict
    plan_cells: object = None          # pandas.DataFrame or None (observed conditions)
    group_key: str | None = "trajectory"
    outliers: bool = True
    float32: bool = False              # descriptors sent to the client in float32

    def key(self) -> tuple:
        """Hashable identity (for the cache of finished partitions)."""
        cells = None if self.plan_cells is None else tuple(self.plan_cells["cell"])
        return (self.species, tuple(sorted(self.leakage_descriptor.items())),
                tuple(sorted(self.fit_descriptor.items())), cells, self.group_key, self.outliers,
                self.float32)


def _descriptors(settings: Settings):
    from ..featurize.descriptors import Descriptor

    return (Descriptor(list(settings.species), **settings.leakage_descriptor),
            Descriptor(list(settings.species), **settings.fit_descriptor))


def partition_features(part: Partition, role: str, settings: Settings) -> dict:
    """Stage 1 of one partition (see the module doc); errors are returned, not raised.

    Returns
    -------
    dict
        ``n``, ``x`` (pooled descriptors, (n, F)), ``moments`` (train), ``cells``
        (counts per plan cell, or a Counter of observed conditions), ``unplanned``
        (data-set indices, at most :data:`UNPLANNED_LISTED`), ``n_unplanned``,
        ``groups`` (``info[group_key]`` of every frame, or None), ``stats`` (train:
        the surrogate's weighted normal equations; test: unweighted and weighted) --
        or ``error`` (the message).
    """
    from ..featurize.batch import pooled_descriptors
    from ..featurize.design import design_matrix
    from .leakage import Moments
    from .outliers import outlier_statistics, test_statistics
    from .sampling import assign_cells, configuration_axes

    try:
        frames = read_partition(part, settings.species)
        leak, fit = _descriptors(settings)
        try:
            x = pooled_descriptors(frames, leak)
        except ValueError as exc:      # unknown species slipped past (no species given)
            k, _, rest = str(exc).partition(": ")
            raise DataError(f"{part.where(int(k.split()[-1]))}: {rest}") from None
        out = dict(n=len(frames), x=x.astype(np.float32) if settings.float32 else x)
        if role == "train":
            out["moments"] = Moments.of(x)
        axes = [configuration_axes(a) for a in frames]
        if settings.plan_cells is None:
            out["cells"] = Counter((a["system"], a["config_type"], a["temperature"]) for a in axes)
            out["unplanned"], out["n_unplanned"] = [], 0
        else:
            cells = assign_cells(axes, settings.plan_cells)
            out["cells"] = np.bincount([c for cs in cells for c in cs],
                                       minlength=len(settings.plan_cells))
            missing = [part.offset + k for k, cs in enumerate(cells) if not cs]
            out["unplanned"], out["n_unplanned"] = missing[:UNPLANNED_LISTED], len(missing)
        key = settings.group_key
        out["groups"] = ([a.info[key] for a in frames]
                         if key and all(key in a.info for a in frames) else None)
        if settings.outliers:
            design = design_matrix(frames, fit)
            if role == "train":
                out["stats"] = outlier_statistics(design)
                _remember_design((part, settings.key()), design)
            else:
                out["stats"] = test_statistics(design)
        return out
    except DataError as exc:
        return dict(error=str(exc))


def partition_influence(part: Partition, settings: Settings, fit, n_structures: int,
                        rule: str, f_quantile: float, alpha: float, gross_z: float):
    """Stage 3 of one training partition: its structures' influence on ``fit``."""
    from .outliers import outlier_partition

    try:
        design = _design_of((part, settings.key()),
                            lambda: read_partition(part, settings.species), _descriptors(settings)[1])
        design.row_structure = design.row_structure + part.offset
        return outlier_partition(design, fit, n_structures, cap=REFIT_ROWS_CAP, rule=rule,
                                 f_quantile=f_quantile, alpha=alpha, gross_z=gross_z)
    except DataError as exc:
        return dict(error=str(exc))


# -- the client side ---------------------------------------------------------------------

@dataclass
class DataAudit:
    """Result of :func:`audit_data`.

    Attributes
    ----------
    leakage : LeakageReport or None
    outliers : OutlierReport or None
    coverage : CoverageReport or None
    n_train, n_test : int
        Structures read.
    n_partitions : int
    seconds : dict
        Wall time of each stage (s).
    peak_memory : dict
        Peak resident memory (MB) of the client process and of the largest worker.
    index : str
        "exact" or "approximate" (the leakage and coverage neighbour index).
    workers : int
    surrogate : dict
        Descriptor settings of the outlier audit's linear surrogate.
    """

    leakage: object = None
    outliers: object = None
    coverage: object = None
    n_train: int = 0
    n_test: int = 0
    n_partitions: int = 0
    seconds: dict = field(default_factory=dict)
    peak_memory: dict = field(default_factory=dict)
    index: str = "exact"
    workers: int = 0
    surrogate: dict = field(default_factory=dict)

    def summary(self) -> str:
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        memory = ", ".join(f"{k} {v:.0f} MB" for k, v in self.peak_memory.items())
        return (f"{self.n_train} training and {self.n_test} test structures in "
                f"{self.n_partitions} partitions on {self.workers} Dask workers ({self.index} "
                f"neighbour index): {stages}; peak memory {memory}")

    def to_dict(self) -> dict:
        return dict(n_train=self.n_train, n_test=self.n_test, n_partitions=self.n_partitions,
                    seconds=self.seconds, peak_memory_mb=self.peak_memory, index=self.index,
                    workers=self.workers, surrogate=self.surrogate)


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _show_progress(progress):
    """A callable(done, total, what), True (a bar on stderr) or False."""
    if callable(progress):
        return progress
    if progress is not None:
        return bool(progress)
    return sys.stderr.isatty() and not os.environ.get("CI")


def _run_stage(client, name: str, futures: list, progress) -> list:
    """Results of the futures in order, reporting progress while they complete: to a
    callable(done, total, what), or as a bar on stderr when ``progress`` is True."""
    from distributed import as_completed

    total, done, t0 = len(futures), 0, time.perf_counter()
    for _ in as_completed(futures):
        done += 1
        if callable(progress):
            progress(done, total, name)
        elif progress:
            width = 30
            filled = int(width * done / max(total, 1))
            sys.stderr.write(f"\r{name:>10}: [{'#' * filled}{'.' * (width - filled)}] "
                             f"{done}/{total} partitions {time.perf_counter() - t0:6.1f} s")
            sys.stderr.flush()
    if progress is True:
        sys.stderr.write("\n")
    return _unwrap(client.gather(futures))


#: Results of finished partitions, by (stage, partition, file stamp, settings): a rerun
#: after a bad partition recomputes only what is missing or changed (emptied of an
#: audit's partitions when it succeeds).
_DONE: dict = {}


def _stamp(part: Partition):
    try:
        st = Path(part.path).stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return None


def _map_partitions(client, func, parts, *args) -> list:
    """Futures of ``func(part, *args)`` for every partition: a ``dask.bag`` of partitions
    (one per bag partition) mapped and computed on the client's cluster. ``args`` are
    scattered to the workers once (the fit's matrices are megabytes), not put in every
    task."""
    import dask.bag as db

    if not parts:
        return []
    shared = [client.scatter(a, broadcast=True, hash=False) for a in args]
    bag = db.from_sequence(parts, partition_size=1).map(func, *shared)
    return client.compute(bag.to_delayed())


def _unwrap(results) -> list:
    """Bag partitions (lists of one result) to results."""
    return [r[0] if isinstance(r, list) else r for r in results]


def _submit(client, func, parts, key_of, *args):
    """Futures (or cached results) of ``func(part, *args)`` for every partition."""
    todo = [p for p in parts if key_of(p) not in _DONE]
    futures = iter(_map_partitions(client, func, todo, *args))
    return [_DONE[key_of(p)] if key_of(p) in _DONE else next(futures) for p in parts]


def _raise_errors(results, what: str) -> None:
    errors = [r["error"] for r in results if isinstance(r, dict) and "error" in r]
    if errors:
        good = len(results) - len(errors)
        more = f" (and {len(errors) - 3} more bad partitions)" if len(errors) > 3 else ""
        raise DataError("; ".join(errors[:3]) + more + f" [{what}: {good} of {len(results)} "
                        "partitions read and kept; fix the shards named and rerun]")


def audit_data(train, test=None, *, species, plan=None, plan_source: str | None = None,
               dask: str | None = None, partition_size: int = PARTITION_SIZE,
               audits=("leakage", "outliers", "coverage"), exact_limit: int | None = None,
               calibration_size: int | None = None, seed: int = 0, progress=None,
               leakage_options: dict | None = None, outlier_options: dict | None = None,
               coverage_options: dict | None = None) -> DataAudit:
    """Leakage, influential outliers and sampling coverage of data files, on Dask.

    Parameters
    ----------
    train : str, path or sequence
        Training files: a file, comma-separated files or glob patterns (see
        :func:`conformance.audits.stream.expand_paths`).
    test : same, optional
    species : sequence of str
        Species of the descriptors; a frame with another element is an error.
    plan : optional
        Sampling plan (see :func:`conformance.audits.sampling.plan_cells`); None:
        the conditions observed in train and test.
    dask : str, optional
        Scheduler address or ``processes:N`` / ``threads:N`` (see :func:`dask_client`).
    partition_size : int
        Frames per partition.
    audits : sequence of {"leakage", "outliers", "coverage"}
    exact_limit, calibration_size, seed
        Exact index up to ``exact_limit`` training structures; leave-one-out and
        nearest-neighbour calibration on a seeded sample of ``calibration_size``
        (see :func:`conformance.audits.leakage.leakage_from_index`).
    progress : bool or callable(done, total, what), optional
        Progress per stage: True draws bars on stderr, a callable is called after
        every partition (default: bars on a terminal, nothing under CI or in a pipe).
    leakage_options, outlier_options, coverage_options : dict, optional
        Keyword arguments of the three audits (thresholds, rules);
        ``outlier_options["fit_descriptor"]`` sets the surrogate's descriptor (default
        :data:`~conformance.audits.outliers.FIT_DESCRIPTOR` up to
        :data:`~conformance.audits.outliers.SCALE_LIMIT` training structures, else
        :data:`~conformance.audits.outliers.SCALE_FIT_DESCRIPTOR`).

    Returns
    -------
    DataAudit

    Raises
    ------
    DataError
        Missing or unreadable files, frames without labels, unknown species (every bad
        shard and frame named; the good partitions are kept for a rerun).
    """
    from .leakage import CALIBRATION_SIZE, LEAKAGE_DESCRIPTOR
    from .neighbours import EXACT_LIMIT
    from .outliers import FIT_DESCRIPTOR, SCALE_FIT_DESCRIPTOR, SCALE_LIMIT
    from .sampling import plan_cells

    require_dask()
    audits = tuple(audits)
    leakage_options = dict(leakage_options or {})
    outlier_options = dict(outlier_options or {})
    coverage_options = dict(coverage_options or {})
    exact_limit = EXACT_LIMIT if exact_limit is None else exact_limit
    calibration_size = CALIBRATION_SIZE if calibration_size is None else calibration_size
    show = _show_progress(progress)
    train_parts = partitions(train, partition_size)
    test_parts = partitions(test, partition_size) if test is not None else []
    cells = None if plan is None or (isinstance(plan, str) and plan == "observed") \
        else plan_cells(plan, coverage_options.get("strain_bins", 2))
    n_train = sum(len(p) for p in train_parts)
    surrogate = outlier_options.pop("fit_descriptor", None)
    if surrogate is None:
        surrogate = FIT_DESCRIPTOR if n_train <= SCALE_LIMIT else SCALE_FIT_DESCRIPTOR
    settings = Settings(tuple(species), LEAKAGE_DESCRIPTOR, dict(surrogate), cells,
                        coverage_options.get("group_key", "trajectory"), "outliers" in audits,
                        float32=n_train > exact_limit)
    result = DataAudit(n_partitions=len(train_parts) + len(test_parts),
                       surrogate=dict(settings.fit_descriptor))
    with dask_client(dask, result.n_partitions) as client:
        result.workers = len(client.scheduler_info().get("workers", {}))
        t0 = time.perf_counter()
        key = lambda role: (lambda p: ("features", role, p, _stamp(p),  # noqa: E731
                                       settings.key()))
        items = (_submit(client, partition_features, train_parts, key("train"), "train", settings)
                 + _submit(client, partition_features, test_parts, key("test"), "test", settings))
        features = _gather_roles(client, train_parts, test_parts, items, key, show)
        _raise_errors(features, "features")
        f_train, f_test = features[:len(train_parts)], features[len(train_parts):]
        result.n_train = sum(f["n"] for f in f_train)
        result.n_test = sum(f["n"] for f in f_test)
        result.seconds["features"] = time.perf_counter() - t0
        if "outliers" in audits:
            t0 = time.perf_counter()
            result.outliers = _outliers(client, train_parts, f_train, f_test, settings,
                                        result.n_train, outlier_options, show)
            result.seconds["influence"] = time.perf_counter() - t0
        result.peak_memory["largest worker"] = max(
            client.run(_peak_rss_mb).values(), default=0.0)
    t0 = time.perf_counter()
    x_train = [f["x"] for f in f_train]
    x_test = np.concatenate([f["x"] for f in f_test]) if f_test else None
    index = None
    if "leakage" in audits or "coverage" in audits:
        whitener, index = _whitened_index(x_train, [f["moments"] for f in f_train],
                                          result.n_train, exact_limit, seed,
                                          leakage_options.get("shrinkage", "ledoit-wolf"),
                                          leakage_options.get("eigenvalue_floor", 1e-6))
        result.index = "exact" if index.exact else "approximate"
    if "leakage" in audits and x_test is not None:
        result.leakage = _leakage(whitener, index, x_train, x_test, calibration_size, seed,
                                  leakage_options)
    if "coverage" in audits:
        result.coverage = _coverage(whitener, index, x_train, x_test, f_train, f_test, cells,
                                    plan_source, calibration_size, seed, coverage_options)
    result.seconds["neighbours"] = time.perf_counter() - t0
    result.peak_memory["client"] = _peak_rss_mb()
    for part in train_parts:        # done: the kept partitions were only needed for a rerun
        _DONE.pop(key("train")(part), None)
    for part in test_parts:
        _DONE.pop(key("test")(part), None)
    return result


def _gather_roles(client, train_parts, test_parts, items, key, show):
    keys = [key("train")(p) for p in train_parts] + [key("test")(p) for p in test_parts]
    futures = [f for f in items if not isinstance(f, dict)]
    results = iter(_run_stage(client, "features", futures, show)) if futures else iter(())
    out = []
    for k, item in zip(keys, items):
        value = item if isinstance(item, dict) else next(results)
        if "error" not in value:
            _DONE[k] = value
        out.append(value)
    return out


def _outliers(client, parts, f_train, f_test, settings, n_train, options, show):
    from ..featurize.descriptors import Descriptor
    from .outliers import GROSS_Z, combine_statistics, outlier_fit, outlier_report

    rule = options.get("rule", "4/n")
    f_quantile = options.get("f_quantile", 0.5)
    alpha = options.get("alpha", 0.05)
    gross_z = options.get("gross_z", GROSS_Z)
    lam = options.get("lam", 1e-8)
    n_species = Descriptor(list(settings.species), **settings.fit_descriptor).n_species
    fit = outlier_fit(combine_statistics([f["stats"] for f in f_train]), lam, n_species)
    futures = _map_partitions(client, partition_influence, parts, settings, fit, n_train, rule,
                              f_quantile, alpha, gross_z)
    influence = _run_stage(client, "influence", futures, show)
    _raise_errors(influence, "influence")
    test_stats = combine_statistics([f["stats"] for f in f_test]) if f_test else None
    return outlier_report(fit, influence, test_stats, lam=lam, n_species=n_species, rule=rule,
                          f_quantile=f_quantile, alpha=alpha,
                          prune=options.get("prune", "gross"),
                          leverage_factor=options.get("leverage_factor", 3.0), gross_z=gross_z)


def _whitened_index(x_train, moments_of_parts, n: int, exact_limit: int, seed: int, shrinkage,
                    floor):
    from .leakage import Whitener, fourth_moment
    from .neighbours import build_index

    moments = moments_of_parts[0]
    for m in moments_of_parts[1:]:
        moments = moments.combine(m)
    whitener = Whitener.from_moments(moments, fourth_moment(lambda: iter(x_train)), shrinkage,
                                     floor)
    chunks = lambda: (whitener.transform(x) for x in x_train)  # noqa: E731
    # the workers are done: the index may use every core of the client's machine
    return whitener, build_index(chunks, n, whitener.dimension, exact_limit=exact_limit,
                                 seed=seed, threads=os.cpu_count() or 1)


def _leakage(whitener, index, x_train, x_test, calibration_size, seed, options):
    from .leakage import leakage_from_index, mahalanobis_leakage

    if index.exact:     # the in-memory algorithm (training duplicates merged first)
        keys = ("quantile", "min_ratio", "max_ratio", "shrinkage", "eigenvalue_floor")
        return mahalanobis_leakage(np.concatenate(x_train), x_test, index="exact",
                                   **{k: v for k, v in options.items() if k in keys})
    keys = ("quantile", "min_ratio", "max_ratio")
    return leakage_from_index(index, whitener, x_test, calibration_size=calibration_size,
                              seed=seed, **{k: v for k, v in options.items() if k in keys})


def _coverage(whitener, index, x_train, x_test, f_train, f_test, cells, plan_source,
              calibration_size, seed, options):
    from .sampling import coverage_from_index, observed_cells

    groups = None
    if all(f["groups"] is not None for f in f_train):
        groups = [g for f in f_train for g in f["groups"]]
    report = coverage_from_index(index, whitener, x_test, train_groups=groups,
                                 quantile=options.get("quantile", 0.99),
                                 calibration_size=calibration_size, seed=seed)
    if cells is None:
        seen_train = sum((f["cells"] for f in f_train), Counter())
        seen_test = sum((f["cells"] for f in f_test), Counter())
        keys = list(dict.fromkeys(list(seen_train) + list(seen_test)))
        axes = [dict(system=s, config_type=c, temperature=t) for s, c, t in keys]
        table = observed_cells(axes)
        from .sampling import assign_cells

        hits = assign_cells(axes, table)
        n_train = np.zeros(len(table), dtype=int)
        n_test = np.zeros(len(table), dtype=int)
        for key, cs in zip(keys, hits):
            for c in cs:
                n_train[c] += seen_train.get(key, 0)
                n_test[c] += seen_test.get(key, 0)
        source = plan_source or "conditions observed in train and test"
    else:
        table = cells
        n_train = sum(f["cells"] for f in f_train)
        n_test = sum(f["cells"] for f in f_test) if f_test else np.zeros(len(cells), dtype=int)
        source = plan_source or "plan"
    report.cells = table.assign(n_train=n_train, n_test=n_test)
    report.cells["covered"] = report.cells["n_train"] > 0
    report.unplanned_train = [k for f in f_train for k in f["unplanned"]]
    report.unplanned_test = [k for f in f_test for k in f["unplanned"]]
    report.plan_source = source
    return report
