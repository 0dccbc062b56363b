"""Data family: audits of the training and test sets behind a model.

Runs when ``--mlip-train`` and/or ``--mlip-test`` (``train``/``test`` in
``[tool.mlip-conformance]``) name labelled data: a file, comma-separated files or
glob patterns (extxyz shards, ASE databases, any format ``ase.io`` reads, with
energies and forces). The session then adds one pseudo-case, ``train_test`` (kind
``data``, an empty structure), and each check below runs once on it.

The data are read in partitions and audited as a Dask graph
(:func:`conformance.audits.engine.audit_data`: a local cluster by default,
``--mlip-dask=ADDRESS`` for a running ``distributed`` scheduler); the three audits
share one run per process. A bad shard or frame is a ``DataError`` naming it.

The checks are thin: the measuring is done by the pure functions of
:mod:`conformance.audits`, which are also the Python API.
"""

from __future__ import annotations


from ..audits import cutoff as _cutoff
from ..audits import data as _data
from ..audits import engine as _engine
from ..audits import sampling as _sampling
from ..audits import stream as _stream
from ..core.model import MissingProperty, Skip
from ..core.registry import check
from ..core.result import Field, Verdict
from ..core.tolerances import define

DATA = frozenset({"data"})

define("data_leaked_fraction", "1", 0.0, 0.0,
       "a test structure that copies a training structure (up to symmetry or a sub-thermal "
       "displacement) inflates the test score; a single one is a finding")
define("data_influential_outliers", "structures", 0.0, 0.0,
       "influential training structures (Cook's distance above 4/n) whose worst label stands "
       "out more than 25x from the structure's own fit quality: honest EMT data reaches 18, "
       "a +1 eV energy or a flipped force 54-367; one such label error is a finding")
define("data_uncovered_cells", "cells", 0.0, 0.0,
       "every cell of the sampling plan should hold training data; an empty cell is a condition "
       "the model never saw")
define("data_extrapolating_fraction", "1", 0.05, 0.05,
       "test structures beyond twice the 99 % quantile of within-training nearest-neighbour "
       "distances: 1 of 164 in the shipped split by trajectory (1 of 100 for its bulk part, "
       "where 13 % pass the quantile itself), all of the cluster and surface frames against "
       "bulk-only training data")

define("data_cutoff_force_excess", "1", 0.10, 0.10,
       "a pair term beyond the cutoff changes EMT-labelled Cu data's force error by -0.2 % at "
       "6.5 Å and 1.4 % at 5.5 Å; labels with a weak pair term at 6.5-8 Å gain 38-74 %: more "
       "than a tenth means the labels depend on atoms the model cannot see")

#: Structures the cutoff audit fits on at most (evenly spaced): its cost grows with r_c³
CUTOFF_TRAIN, CUTOFF_TEST = 160, 60

_CACHE: dict = {}


def _stamp(spec) -> tuple:
    """Identity of the files of a data spec (paths, sizes, modification times)."""
    if not spec:
        return ()
    try:
        files = _stream.expand_paths(spec)
    except _data.DataError:
        return (str(spec),)
    out = []
    for f in files:
        st = f.stat()
        out.append((str(f.resolve()), st.st_mtime_ns, st.st_size))
    return tuple(out)


#: The audit each data check reads.
_AUDIT_OF = {"mahalanobis_leakage": "leakage", "influential_outliers": "outliers",
             "sampling_coverage": "coverage"}


def _wanted(config) -> tuple:
    """Audits of the data checks this run selects (the engine computes only those)."""
    from ..core.registry import select

    try:
        names = {c.name for c in select(list(config.checks) or None)}
    except ValueError:
        names = set(_AUDIT_OF)
    skipped = set(config.skip)
    if "data" in skipped:
        return ()
    return tuple(audit for check, audit in _AUDIT_OF.items()
                 if check in names and check not in skipped)


def _audit(ctx, species, needed: str):
    """The data audit of the run's files (one per process, shared by the checks)."""
    config = ctx.config
    plan, source = _plan_for(ctx)
    audits = tuple(dict.fromkeys(_wanted(config) + (needed,)))
    key = ("audit", _stamp(config.train), _stamp(config.test), tuple(species), config.dask,
           source)
    cached = _CACHE.get(key)
    if cached is None or getattr(cached, needed) is None:
        _CACHE[key] = _engine.audit_data(config.train, config.test or None, species=species,
                                         plan=plan, plan_source=source, dask=config.dask,
                                         seed=config.seed, progress=ctx.progress,
                                         audits=audits)
    return _CACHE[key]


def _test_errors(model, spec, species):
    """Per-test-structure model errors, partition by partition (model calls here)."""
    import pandas as pd

    parts = [_data.structure_errors(model, _stream.read_partition(part, species))
             for part in _stream.partitions(spec)]
    return pd.concat(parts, ignore_index=True)


def _evenly(spec, species, limit: int) -> list:
    """At most ``limit`` structures evenly spaced through a data spec (reading only the
    partitions that hold them)."""
    import numpy as np

    parts = _stream.partitions(spec)
    total = sum(len(p) for p in parts)
    wanted = (np.arange(total) if total <= limit
              else np.linspace(0, total - 1, limit).round().astype(int))
    out = []
    for part in parts:
        inside = wanted[(wanted >= part.offset) & (wanted < part.offset + len(part))]
        if len(inside):
            frames = _stream.read_partition(part, species)
            out.extend(frames[k - part.offset] for k in inside)
    return out, total


def _species(model) -> list:
    species = list(model.tags.species)
    if not species:
        raise Skip("the model declares no species (pass --mlip-species)")
    return species


def _files(ctx) -> str:
    parts = []
    if ctx.config.train:
        parts.append(f"train {_stream.describe(ctx.config.train)}")
    if ctx.config.test:
        parts.append(f"test {_stream.describe(ctx.config.test)}")
    return ", ".join(parts)


@check(family="data", needs=(), cases=DATA, calls="n_test (energy and forces of every test "
       "structure)", unit="1")
def mahalanobis_leakage(model, case, ctx, rng):
    """No test structure is a (near-)copy of a training structure.

    Species-pooled density-expansion descriptors of every structure, whitened
    with the (shrinkage-regularised) training covariance; a test structure
    leaks when its Mahalanobis distance to the nearest training structure,
    relative to that structure's own nearest-neighbour distance, is below the
    0.1 % quantile of the same ratio within the training set (clipped to
    [0.25, 0.35]). Reports the leaked pairs and the model's test error with and
    without them.
    """
    if not (ctx.config.train and ctx.config.test):
        raise Skip("needs both --mlip-train and --mlip-test")
    species = _species(model)
    audit = _audit(ctx, species, "leakage")
    report = audit.leakage
    note = ""
    try:
        errors = _test_errors(model, ctx.config.test, species)
    except MissingProperty as exc:
        errors, note = None, f"(no test errors: {exc})"
    if errors is not None:
        from ..audits.leakage import with_test_errors

        report = with_test_errors(report, errors, None, None, report.n_test)
    where = ""
    if report.n_leaked:
        top = report.pairs.iloc[0]
        where = (f"test {int(top.test_index)} ~ train {int(top.train_index)} (distance "
                 f"{top.distance:.2g}, {top.ratio:.2g} x its nearest-neighbour distance)")
    fields = [Field("leaked test fraction", report.leaked_fraction,
                    ctx.tol["data_leaked_fraction"], "1", where)]
    details = report.to_dict()
    details["engine"] = audit.to_dict()
    return Verdict(fields, what=_files(ctx), details=details,
                   note="\n".join(x for x in (report.summary(), note, audit.summary()) if x))


@check(family="data", needs=(), cases=DATA, calls="0 (fits the linear reference model)",
       unit="structures")
def influential_outliers(model, case, ctx, rng):
    """No training structure is an influential outlier of the linear reference fit.

    Grouped Cook's distance of every training structure (energy, force and
    stress rows together, and per property) in the weighted ridge fit of the
    linear reference model, from the hat-matrix blocks without refitting.
    Fails on influential structures (4/n rule) with a gross residual: a label
    that stands out from the same structure's own fit quality by more than 25
    robust standard deviations (a corrupted label, not a structure the linear
    model merely finds hard). Lists the screening set (influential with a
    Bonferroni-significant residual) with each structure's most suspicious
    label, the structures that dominate the fit (F-median rule), and the test
    error after pruning the label errors.
    """
    if not ctx.config.train:
        raise Skip("needs --mlip-train")
    species = _species(model)
    audit = _audit(ctx, species, "outliers")
    report = audit.outliers
    t = report.table
    where = "; ".join(
        f"training structure {k}: {t.loc[k, 'suspect']} {t.loc[k, 'location']}".rstrip()
        + f" {t.loc[k, 'robust_z']:.0f}x its fit quality, Cook's D {t.loc[k, 'cooks_distance']:.3g}"
        for k in report.label_errors[:3])
    if len(report.label_errors) > 3:
        where += f"; +{len(report.label_errors) - 3} more"
    fields = [Field("influential label errors", float(len(report.label_errors)),
                    ctx.tol["data_influential_outliers"], "structures", where)]
    details = report.to_dict()
    details["dominant"] = [int(k) for k in t.index[t["influential_F"] & t["outlier"]]]
    details["engine"] = audit.to_dict()
    return Verdict(fields, what=_files(ctx), details=details, note=report.summary())


def _plan_for(ctx):
    """Plan file next to the training (or test) file, else the observed conditions."""
    for path in (ctx.config.train, ctx.config.test):
        if not path:
            continue
        p = _stream.expand_paths(path)[0]
        for candidate in (p.with_name(p.stem + ".plan.json"), p.with_name("plan.json")):
            if candidate.is_file():
                return _sampling.load_plan(candidate), str(candidate)
    return "observed", "conditions observed in train and test"


@check(family="data", needs=(), cases=DATA, calls="0", unit="cells")
def sampling_coverage(model, case, ctx, rng):
    """Every cell of the sampling plan has training data, and the test set does not extrapolate.

    Plan cells (temperature, strain kind and range, composition, defects,
    surfaces, clusters) come from a ``plan.json`` next to the training file, else
    from the conditions present in train and test; each test structure's
    Mahalanobis distance to the training set is compared with the 99 % quantile
    of the training nearest-neighbour distances (flagged beyond it); the check
    fails when more than 5 % of the test set lies beyond twice that distance.
    """
    if not ctx.config.train:
        raise Skip("needs --mlip-train")
    species = _species(model)
    audit = _audit(ctx, species, "coverage")
    report = audit.coverage
    test = ctx.config.test
    names = report.uncovered["cell"].tolist()
    fields = [Field("uncovered plan cells", float(report.n_uncovered),
                    ctx.tol["data_uncovered_cells"], "cells",
                    ", ".join(names[:3]) + (f" (+{len(names) - 3})" if len(names) > 3 else ""))]
    if test is not None:
        ex = report.extrapolation
        worst = ex.sort_values("ratio", ascending=False).iloc[0] if len(ex) else None
        fields.append(Field("test fraction beyond 2x the training spread", report.far_fraction(),
                            ctx.tol["data_extrapolating_fraction"], "1",
                            f"test {int(worst.test_index)} at {worst.ratio:.2g} x the threshold"
                            if worst is not None and worst.ratio > 2 else ""))
    details = report.to_dict()
    details["far_fraction"] = report.far_fraction()
    details["engine"] = audit.to_dict()
    return Verdict(fields, what=_files(ctx), details=details, note=report.summary())


@check(family="data", needs=(), cases=DATA, calls="0 (fits the linear reference model once per "
       "cutoff)", unit="1")
def cutoff_convergence(model, case, ctx, rng):
    """Optional: atoms beyond the model's cutoff do not improve a local fit to the data.

    Runs when cutoff radii are given (``--mlip-cutoffs=4,5,6,7``, Å). The linear
    reference model is fitted to the training set at each radius (the report's
    error-versus-cutoff curve) and, at the model's declared cutoff r_j (else the
    second-largest radius), once more with a pair term living only between r_j
    and the largest radius. The measured value is the test force RMSE without
    that term over the RMSE with it, minus one: ~0 when the labels do not depend
    on atoms beyond r_j, large for long-range physics (electrostatics,
    dispersion) or a cutoff shorter than the data's interactions. Fits on at most
    160 training and 60 test structures, evenly spaced through the files.
    """
    if not ctx.config.cutoffs:
        raise Skip("optional: give --mlip-cutoffs=R1,R2,... (Å) to fit the linear reference "
                   "model at each cutoff")
    if not (ctx.config.train and ctx.config.test):
        raise Skip("needs both --mlip-train and --mlip-test")
    species = _species(model)
    cutoffs = sorted(set(ctx.config.cutoffs))
    judged, source = model.tags.cutoff, "the model's declared cutoff"
    if judged is None:
        if len(cutoffs) < 2:
            raise Skip("the model declares no cutoff: give at least two --mlip-cutoffs")
        judged, source = cutoffs[-2], "second-largest scanned cutoff; the model declares none"
    elif judged >= cutoffs[-1]:
        raise Skip(f"no scanned cutoff beyond the model's r_c = {judged:g} Å: add a larger "
                   "one to --mlip-cutoffs")
    train, n_train = _evenly(ctx.config.train, species, CUTOFF_TRAIN)
    test, n_test = _evenly(ctx.config.test, species, CUTOFF_TEST)
    report = _cutoff.cutoff_convergence(
        train, test, cutoffs, judged=judged, species=species,
        tolerance=ctx.tol["data_cutoff_force_excess"], max_train=CUTOFF_TRAIN,
        max_test=CUTOFF_TEST, progress=ctx.progress)
    x = report.extended
    where = (f"test force RMSE {x['forces'] * (1 + report.force_excess):.4g} eV/Å at r_c = "
             f"{judged:g} Å ({source}), {x['forces']:.4g} eV/Å with a pair term out to "
             f"{report.far:g} Å")
    fields = [Field("force error excess at the cutoff", report.force_excess,
                    ctx.tol["data_cutoff_force_excess"], "1", where)]
    details = report.to_dict()
    details["plots"] = [report.plot(mark=judged)]
    note = report.summary()
    if n_train > CUTOFF_TRAIN or n_test > CUTOFF_TEST:
        note += (f"\n(fitted on {len(train)} of {n_train} training and {len(test)} of "
                 f"{n_test} test structures, evenly spaced)")
    return Verdict(fields, what=_files(ctx), details=details, note=note)
