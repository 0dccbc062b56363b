"""asv benchmarks of the data audits at scale: streamed shards on a Dask local cluster.

The data are :mod:`benchmarks.synthetic` sets (90 % train / 10 % test, 2-8-atom EMT
frames in extxyz shards of 20 000 frames, 1 % of the test frames planted copies of
training frames, 0.01 % of the training labels corrupted), generated on first use and
cached in ``benchmarks/data/`` (git-ignored). One audit is
:func:`conformance.audits.engine.audit_data` with leakage, influential outliers and
sampling coverage, as the pytest check runs it (above 50 000 training structures:
approximate neighbour index and the scale surrogate of the outlier audit).

``python benchmarks/bench_scale.py`` measures, in one run, the targets of the data
audits at scale and prints them as a table (also written to
``benchmarks/data/scale-results.json``):

* growth of the audit time from 10^5 to 10^6 structures over linear growth
  (target <= 1.2);
* speed-up of a local cluster of 2 worker processes over 1 (target >= 1.7) at
  ``--workers-size`` structures;
* peak resident memory of the client and of the largest worker at each size
  (target: flat in N for the workers; the client holds the neighbour index);
* recall of the planted leaks and corrupted labels (target >= 99 % at 10^6).

Budget (2-core machine): generating 10^6 frames ~1 h once; the 10^6 audit ~1 h.
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


def run_audit(n: int, workers: int = 2, seed: int = 0, progress=None):
    """Audit the synthetic data set of ``n`` frames on a local cluster; (result, seconds)."""
    from benchmarks.synthetic import dataset
    from conformance.audits.engine import audit_data

    folder = dataset(n, seed)
    t0 = time.perf_counter()
    result = audit_data(str(folder / "train-*.extxyz"), str(folder / "test-*.extxyz"),
                        species=SPECIES, dask=f"processes:{workers}", progress=progress)
    return result, time.perf_counter() - t0


def recall(result, folder: Path) -> dict:
    """Recall and false findings of the planted leaks and corrupted labels."""
    truth = json.loads((folder / "truth.json").read_text())
    leaks = {int(t): v["train"] for t, v in truth["leaks"].items()}
    found = dict(zip(result.leakage.pairs["test_index"].astype(int),
                     result.leakage.pairs["train_index"].astype(int)))
    leak_hits = sum(1 for t, s in leaks.items() if found.get(t) == s)
    corrupted = {int(k) for k in truth["corrupted"]}
    errors = set(int(k) for k in result.outliers.label_errors)
    return dict(leaks=len(leaks), leak_recall=leak_hits / len(leaks),
                other_leaks=len(set(found) - set(leaks)),
                corrupted=len(corrupted), label_recall=len(corrupted & errors) / len(corrupted),
                other_label_errors=len(errors - corrupted))


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
    """The same audit of 20 000 frames on 1 and 2 local worker processes."""

    params = [1, 2]
    param_names = ["workers"]
    timeout = 3600
    number = 1
    repeat = (1, 1, 3600.0)

    def setup(self, workers):
        from benchmarks.synthetic import dataset

        dataset(20_000)

    def time_audit(self, workers):
        run_audit(20_000, workers)


def main(argv=None):
    parser = argparse.ArgumentParser(description="data audits at scale: growth, workers, "
                                                 "memory, recall")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers-size", type=int, default=20_000,
                        help="size of the 1-vs-2-workers comparison (0: skip)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("data")
                                             / "scale-results.json"))
    args = parser.parse_args(argv)
    from benchmarks.synthetic import dataset

    rows = {}
    if args.workers_size:
        speed = {}
        for workers in (1, 2):
            result, seconds = run_audit(args.workers_size, workers)
            speed[workers] = seconds
            print(f"N = {args.workers_size}, {workers} worker(s): {seconds:.1f} s "
                  f"({result.summary()})", flush=True)
        rows["speedup"] = dict(n=args.workers_size, one=speed[1], two=speed[2],
                               ratio=speed[1] / speed[2])
    for n in args.sizes:
        result, seconds = run_audit(n, 2, progress=True)
        found = recall(result, dataset(n))
        rows[str(n)] = dict(seconds=seconds, stages=result.seconds,
                            peak_memory_mb=result.peak_memory, index=result.index,
                            n_train=result.n_train, n_test=result.n_test, **found)
        print(f"N = {n}: {seconds:.1f} s; {result.summary()}; {found}", flush=True)
        Path(args.out).write_text(json.dumps(rows, indent=1))
    print("\n| quantity | measured | target |\n|---|---|---|")
    if "speedup" in rows:
        s = rows["speedup"]
        print(f"| 2 workers / 1 worker speed-up, N = {s['n']} | {s['ratio']:.2f} "
              f"({s['one']:.0f} s / {s['two']:.0f} s) | ≥ 1.7 |")
    sizes = [n for n in args.sizes if str(n) in rows]
    for n0, n1 in zip(sizes, sizes[1:]):
        t0, t1 = rows[str(n0)]["seconds"], rows[str(n1)]["seconds"]
        print(f"| audit time growth {n0} -> {n1} / linear | {t1 / t0 / (n1 / n0):.2f} "
              f"({t0:.0f} s -> {t1:.0f} s) | ≤ 1.2 |")
    for n in sizes:
        r = rows[str(n)]
        mem = r["peak_memory_mb"]
        print(f"| peak memory, N = {n}: largest worker / client | {mem['largest worker']:.0f} MB"
              f" / {mem['client']:.0f} MB | worker flat in N |")
        print(f"| recall, N = {n}: planted leaks / corrupted labels | {100 * r['leak_recall']:.1f} %"
              f" of {r['leaks']} / {100 * r['label_recall']:.1f} % of {r['corrupted']} "
              f"(other findings: {r['other_leaks']} leaks, {r['other_label_errors']} label errors)"
              " | ≥ 99 % |")


if __name__ == "__main__":
    main()
