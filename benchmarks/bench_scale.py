"""asv benchmarks of the data audits at scale: streamed shards on a Dask local cluster.

The data are :mod:`benchmarks.synthetic` sets (90 % train / 10 % test, 2-8-atom EMT
frames in extxyz shards of 20 000 frames, 1 % of the test frames planted copies of
training frames, 0.01 % of the training labels corrupted), generated on first use and
cached in ``benchmarks/data/`` (git-ignored). An audit is
:func:`conformance.audits.engine.audit_data` as the pytest check runs it (above
50 000 training structures: approximate neighbour index, the outlier audit's scale
surrogate), on a local cluster of worker processes.

``python benchmarks/bench_scale.py`` measures, in one run, and prints as a table (also
written to ``benchmarks/data/scale-results.json``):

* speed-up of 2 worker processes over 1, whole audit of ``--workers-size`` frames in
  partitions of 500 (target >= 1.7);
* growth of the leakage + coverage audit time from 10^5 to 10^6 frames over linear
  growth (target <= 1.2), peak memory of the largest worker and of the client at both
  sizes (target: flat in N on the workers), recall of the planted leaks (>= 99 %);
* the whole audit (with influential outliers) of ``--outlier-size`` frames: its time
  and the recall of the corrupted labels.

Budget on the 2-core machine: generating 10^6 frames ~1 h once (10^5: 6 min), the
run ~50 min (10^6 leakage + coverage ~25 min).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPECIES = ["Cu", "Au"]


def run_audit(n: int, workers: int = 2, seed: int = 0, progress=None,
              audits=("leakage", "outliers", "coverage"), partition_size: int = 2000):
    """Audit the synthetic data set of ``n`` frames on a local cluster; (result, seconds)."""
    from benchmarks.synthetic import dataset
    from conformance.audits.engine import audit_data

    folder = dataset(n, seed)
    t0 = time.perf_counter()
    result = audit_data(str(folder / "train-*.extxyz"), str(folder / "test-*.extxyz"),
                        species=SPECIES, dask=f"processes:{workers}", progress=progress,
                        audits=audits, partition_size=partition_size)
    return result, time.perf_counter() - t0


def recall(result, folder: Path) -> dict:
    """Recall and false findings of the planted leaks and corrupted labels."""
    truth = json.loads((folder / "truth.json").read_text())
    out = {}
    if result.leakage is not None:
        leaks = {int(t): v["train"] for t, v in truth["leaks"].items()}
        found = dict(zip(result.leakage.pairs["test_index"].astype(int),
                         result.leakage.pairs["train_index"].astype(int)))
        hits = sum(1 for t, s in leaks.items() if found.get(t) == s)
        lk = result.leakage
        missed = [dict(test=t, train=s, kind=truth["leaks"][str(t)]["kind"],
                       nearest=int(lk.nn_index[t]), distance=float(lk.nn_distance[t]),
                       ratio=float(lk.ratio[t]), threshold=lk.threshold)
                  for t, s in leaks.items() if found.get(t) != s]
        out.update(leaks=len(leaks), leak_recall=hits / len(leaks),
                   other_leaks=len(set(found) - set(leaks)), missed_leaks=missed[:20])
    if result.outliers is not None:
        corrupted = {int(k): v for k, v in truth["corrupted"].items()}
        errors = set(int(k) for k in result.outliers.label_errors)
        flagged = set(int(k) for k in result.outliers.flagged)
        by_kind = {kind: [k for k, v in corrupted.items() if v == kind]
                   for kind in ("energy", "forces")}
        out.update(corrupted=len(corrupted),
                   label_recall=len(set(corrupted) & errors) / len(corrupted),
                   flagged_recall=len(set(corrupted) & flagged) / len(corrupted),
                   energy_recall=len(set(by_kind["energy"]) & errors) / max(len(by_kind["energy"]), 1),
                   force_recall=len(set(by_kind["forces"]) & errors) / max(len(by_kind["forces"]), 1),
                   other_label_errors=len(errors - set(corrupted)), n_flagged=len(flagged))
    return out


class ScaleAudit:
    """The whole data audit of a synthetic set of N frames on 2 local worker processes."""

    params = [10_000, 100_000]
    param_names = ["n"]
    timeout = 3600
    number = 1
    repeat = (1, 1, 3600.0)

    def setup(self, n):
        from benchmarks.synthetic import dataset

        self.folder = dataset(n)

    def time_audit(self, n):
        run_audit(n)

    def track_peak_worker_memory(self, n):
        return run_audit(n)[0].peak_memory["largest worker"]

    track_peak_worker_memory.unit = "MB"

    def track_leak_recall(self, n):
        return recall(run_audit(n)[0], self.folder)["leak_recall"]

    track_leak_recall.unit = "fraction of planted leaks"

    def track_label_recall(self, n):
        return recall(run_audit(n)[0], self.folder)["label_recall"]

    track_label_recall.unit = "fraction of corrupted labels"


class ScaleWorkers:
    """The same audit of 10 000 frames (partitions of 500) on 1 and 2 worker processes."""

    params = [1, 2]
    param_names = ["workers"]
    timeout = 3600
    number = 1
    repeat = (1, 1, 3600.0)

    def setup(self, workers):
        from benchmarks.synthetic import dataset

        dataset(10_000)

    def time_audit(self, workers):
        run_audit(10_000, workers, partition_size=500)


def _record(rows, name, n, result, seconds, out):
    from benchmarks.synthetic import dataset

    rows[name] = dict(n=n, seconds=seconds, stages=result.seconds, workers=result.workers,
                      peak_memory_mb=result.peak_memory, index=result.index,
                      n_train=result.n_train, n_test=result.n_test,
                      **recall(result, dataset(n)))
    print(f"{name}: {seconds:.1f} s; {result.summary()}; {rows[name]}", flush=True)
    Path(out).write_text(json.dumps(rows, indent=1))


def main(argv=None):
    parser = argparse.ArgumentParser(description="data audits at scale: growth, workers, "
                                                 "memory, recall")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="sizes of the leakage + coverage growth runs")
    parser.add_argument("--workers-size", type=int, default=10_000,
                        help="size of the 1-vs-2-workers comparison, in partitions of 500 "
                             "frames (0: skip)")
    parser.add_argument("--outlier-size", type=int, default=100_000,
                        help="size of the whole audit with influential outliers (0: skip)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("data")
                                             / "scale-results.json"))
    args = parser.parse_args(argv)
    rows = {}
    neighbours = ("leakage", "coverage")
    if args.workers_size:
        for workers in (1, 2):
            result, seconds = run_audit(args.workers_size, workers, partition_size=500)
            _record(rows, f"whole audit, {workers} worker(s)", args.workers_size, result,
                    seconds, args.out)
    # ascending sizes: the client's peak memory (ru_maxrss) only grows within a process
    runs = [(n, neighbours, f"leakage + coverage, N = {n}") for n in args.sizes]
    if args.outlier_size:
        runs.append((args.outlier_size, ("leakage", "outliers", "coverage"),
                     f"whole audit, N = {args.outlier_size}"))
    for n, audits, name in sorted(runs, key=lambda r: (r[0], len(r[1]))):
        result, seconds = run_audit(n, 2, progress=True, audits=audits)
        _record(rows, name, n, result, seconds, args.out)
    print("\n| quantity | measured | target |\n|---|---|---|")
    if args.workers_size:
        one = rows["whole audit, 1 worker(s)"]["seconds"]
        two = rows["whole audit, 2 worker(s)"]["seconds"]
        print(f"| whole audit of {args.workers_size} frames, 1 worker / 2 workers | "
              f"{one / two:.2f} ({one:.0f} s / {two:.0f} s) | ≥ 1.7 |")
    for n0, n1 in zip(args.sizes, args.sizes[1:]):
        t0 = rows[f"leakage + coverage, N = {n0}"]["seconds"]
        t1 = rows[f"leakage + coverage, N = {n1}"]["seconds"]
        print(f"| leakage + coverage time {n0} -> {n1} / linear growth | "
              f"{t1 / t0 / (n1 / n0):.2f} ({t0:.0f} s -> {t1:.0f} s) | ≤ 1.2 |")
    for name, r in rows.items():
        mem = r["peak_memory_mb"]
        line = (f"| {name}: peak memory largest worker / client | {mem['largest worker']:.0f} MB"
                f" / {mem['client']:.0f} MB |")
        print(line + " worker flat in N |")
        if "leak_recall" in r:
            print(f"| {name}: planted leaks found | {100 * r['leak_recall']:.1f} % of "
                  f"{r['leaks']} (+{r['other_leaks']} other) | ≥ 99 % |")
        if "label_recall" in r:
            print(f"| {name}: corrupted labels found (energy / forces) | "
                  f"{100 * r['label_recall']:.1f} % of {r['corrupted']} "
                  f"({100 * r['energy_recall']:.0f} % / {100 * r['force_recall']:.0f} %; "
                  f"flagged {100 * r['flagged_recall']:.0f} %; +{r['other_label_errors']} other) "
                  "| ≥ 99 % |")


if __name__ == "__main__":
    main()
