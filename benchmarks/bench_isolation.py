"""Cost of crash-proof audits: the model in a worker process versus in the pytest process.

``pytest --mlip-model=ase:EMT --mlip-species=Cu`` (every family but data, 121 items)
run as a user runs it, in a fresh process each time, with ``--mlip-isolate=yes``
(the default: a fork server imports the suite, the worker loads the model, one
message per item) and ``--mlip-isolate=no``. ``track_isolation_ratio`` measures
both in the same run, in pairs, and returns the median ratio isolated / in-process
(target ≤ 1.10).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from benchmarks import common  # noqa: F401  (sets single-thread BLAS before numpy loads)

AUDIT = ["--mlip-model=ase:EMT", "--mlip-species=Cu"]


def pytest_audit_seconds(isolate: str, args=AUDIT) -> float:
    """Wall time (s) of one ``pytest`` audit in a fresh process and an empty folder."""
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "-p", "no:benchmark", *args, f"--mlip-isolate={isolate}"],
                             cwd=folder, capture_output=True, text=True, env=dict(os.environ))
        seconds = time.perf_counter() - t0
    if run.returncode != 0:
        raise RuntimeError(f"the audit failed (exit {run.returncode}):\n{run.stdout[-2000:]}")
    return seconds


def isolation_ratio(repeats: int = 3, args=AUDIT) -> tuple[float, float, float]:
    """(median isolated s, median in-process s, median of the paired ratios).

    The two runs of a pair follow each other, so that a change of the machine's
    load between pairs cancels in their ratio (the median of ``repeats`` pairs).
    """
    import statistics

    pairs = []
    for _ in range(repeats):
        in_process = pytest_audit_seconds("no", args)
        isolated = pytest_audit_seconds("yes", args)
        pairs.append((isolated, in_process, isolated / in_process))
    return tuple(statistics.median(p[k] for p in pairs) for k in range(3))


class PytestAudit:
    """The whole EMT audit through pytest, with and without the model worker."""

    params = [["no", "yes"]]
    param_names = ["isolate"]
    timeout = 900
    number = 1
    repeat = 2

    def time_pytest_emt_audit(self, isolate):
        pytest_audit_seconds(isolate)


class IsolationOverhead:
    timeout = 1800

    def track_isolation_ratio(self):
        return isolation_ratio()[2]

    track_isolation_ratio.unit = "ratio"
