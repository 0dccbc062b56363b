"""Crash-proof pytest runs: every fault ends in a complete report whose counts are pytest's.

Each test runs pytest in a subprocess (pytester) on a zoo model from
``tests/zoo/crashing.py`` that crashes, hangs or is slow on chosen structures.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ase.io  # noqa: F401  (imported before pytester's snapshot of sys.modules: numpy loads once)
import pytest

ROOT = Path(__file__).resolve().parents[1]
FAULTY = "--mlip-model=tests.zoo.crashing:FaultyOn"
SLOW = "--mlip-model=tests.zoo.crashing:SlowPair"
QUIET = ["-p", "no:cacheprovider", "-p", "no:benchmark"]


@pytest.fixture
def runner(pytester, monkeypatch):
    """pytester whose subprocesses can import ``tests.zoo``."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return pytester


def kwargs(**values) -> str:
    return f"--mlip-model-kwargs={json.dumps(values)}"


def pytest_counts(report: dict) -> dict:
    """The report's summary in pytest's outcome names (an ``error`` item fails in pytest)."""
    s = report["summary"]
    counts = {"passed": s["passed"], "failed": s["failed"] + s["error"], "skipped": s["skipped"],
              "xfailed": s["xfailed"], "xpassed": s["xpassed"]}
    return {k: v for k, v in counts.items() if v}


def journal_items(path: Path) -> list:
    if not path.exists():
        return []
    return [json.loads(line)["item"] for line in path.read_text().splitlines() if line.startswith('{"item"')]


@pytest.mark.parametrize("xdist", [[], pytest.param(["-n", "2"], marks=pytest.mark.slow)],
                         ids=["serial", "xdist"])
def test_crashes_and_hangs_end_in_a_complete_report_with_pytests_counts(runner, xdist):
    """Under pytest-xdist each xdist worker has its own model worker (slow: ~30 s)."""
    faults = {"AuCu2": "abort", "Au6Cu7": "segfault", "Au32": "oom_kill", "Au16Cu16": "python_loop",
              "wire": "native_hang", "Cu32": "blocking_read"}
    result = runner.runpytest_subprocess(FAULTY, "--mlip-species=Cu,Au", kwargs(faults=faults),
                                         "--mlip-checks=net_force,structure_support", "--mlip-timeout=0.3",
                                         "--mlip-report=audit.json", *xdist, *QUIET)
    outcomes = {k: v for k, v in result.parseoutcomes().items() if k != "seconds"}
    assert outcomes == {"failed": 6, "passed": 4}
    assert result.ret == 1
    report = json.loads((runner.path / "audit.json").read_text())
    assert pytest_counts(report) == outcomes
    status = {r["case"]: r["status"] for r in report["results"]}
    assert status == {"dimer_CuAu": "passed", "trimer_AuCu2": "error", "cluster_Au6Cu7": "error",
                      "bulk_Cu_fcc": "error", "bulk_Au_fcc": "error", "slab_Cu_fcc111": "passed",
                      "wire_Cu_fcc100": "error", "alloy_CuAu_fcc": "error", "small_cell_AuCu": "passed",
                      "classes": "passed"}
    message = {r["case"]: r["message"].splitlines()[0] for r in report["results"]}
    assert message["trimer_AuCu2"].startswith(
        "model worker crashed: killed by signal SIGABRT (Aborted: abort(): a failed assertion or an "
        "uncaught C++ exception, e.g. std::bad_alloc when memory runs out), during model call 1 of this "
        "item, on AuCu2 (3 atoms, pbc=[False, False, False]) in net_force[trimer_AuCu2]; the audit goes "
        "on in a new worker")
    assert "killed by signal SIGSEGV" in message["cluster_Au6Cu7"]
    assert "killed by signal SIGKILL" in message["bulk_Au_fcc"]
    assert "did not come back to Python" in message["wire_Cu_fcc100"]
    assert message["alloy_CuAu_fcc"] == ("model error: model call exceeded the time limit of 0.3 s "
                                         "(32 atoms, Au16Cu16)")
    assert message["bulk_Cu_fcc"] == ("model error: model call exceeded the time limit of 0.3 s "
                                      "(32 atoms, Cu32)")
    if xdist:  # the counts live in the xdist workers
        assert report["isolation"] == {"isolated": True}
    else:  # 4 crashes and kills, each followed by a new worker
        assert report["isolation"] == {"isolated": True, "worker_starts": 5, "worker_crashes": 4,
                                       "start_method": "forkserver"}
    assert sorted(journal_items(runner.path / "audit.json.journal.jsonl")) == sorted(
        f"{r['check']}[{r['case']}]" for r in report["results"])
    result.stdout.fnmatch_lines([
        "mlip-conformance: model runs in a worker process per pytest process; timeout 0.3 s",
        "*net_force[[]trimer_AuCu2[]] (conservation) ERROR*",
        "NOT CONFORMANT: 6 errors*"])


def _start(path: Path, *args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _wait_for_items(journal: Path, n: int, process: subprocess.Popen, limit: float = 120.0) -> None:
    t0 = time.monotonic()
    while len(journal_items(journal)) < n:
        assert process.poll() is None, process.stdout.read().decode()
        assert time.monotonic() - t0 < limit, f"fewer than {n} items in {limit} s"
        time.sleep(0.05)


def _gone(pid: int, within: float = 10.0) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


SLOW_ARGS = [SLOW, kwargs(seconds=0.25, log="calls.txt"), "--mlip-checks=net_force",
             "--mlip-report=audit.json", *QUIET]


def _item_kind(name: str) -> str:
    """``bulk`` for ``net_force[bulk_Cu_fcc]`` (as tests.zoo.crashing.structure_kind names it)."""
    case = name.split("[")[1]
    return "small_cell" if case.startswith("small_cell") else case.split("_")[0]


def test_kill_9_leaves_journal_and_partial_report_and_resume_runs_only_the_rest(runner):
    journal, report_path = runner.path / "audit.json.journal.jsonl", runner.path / "audit.json"
    first = _start(runner.path, *SLOW_ARGS)
    _wait_for_items(journal, 3, first)
    first.kill()  # SIGKILL: no cleanup at all
    first.communicate()
    worker_pids = {int(line.split()[1]) for line in (runner.path / "calls.txt").read_text().splitlines()}
    assert first.pid not in worker_pids and all(_gone(pid) for pid in worker_pids)  # the worker died too
    done = journal_items(journal)
    assert 3 <= len(done) < 7
    partial = json.loads(report_path.read_text())  # rewritten during the run, at most ~0.1 s behind
    assert " — PARTIAL: " in partial["verdict"] and len(partial["results"]) == 7
    assert {f"{r['check']}[{r['case']}]" for r in partial["results"] if r["status"] != "not run"} <= set(done)
    calls_before = len((runner.path / "calls.txt").read_text().splitlines())

    result = runner.runpytest_subprocess(*SLOW_ARGS, "--mlip-resume")
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines([f"mlip-conformance: resumed: {len(done)} items done before are not run "
                                 "again; journal *audit.json.journal.jsonl"])
    final = json.loads(report_path.read_text())
    assert final["verdict"].startswith("CONFORMANT: 7 passed") and final["resumed_items"] == len(done)
    names = [f"{r['check']}[{r['case']}]" for r in final["results"]]
    resumed = [n for n, r in zip(names, final["results"]) if "resumed_from" in r["details"]]
    assert sorted(resumed) == sorted(done)
    assert sorted(journal_items(journal)) == sorted(names)
    new_calls = {line.split()[0] for line in
                 (runner.path / "calls.txt").read_text().splitlines()[calls_before:]}
    probed = {"dimer", "slab", "small_cell"}  # the worker's probe evaluates these once per start
    assert not ({_item_kind(n) for n in done} - probed) & new_calls  # nothing done ran again
    assert {_item_kind(n) for n in names if n not in done} <= new_calls  # what was missing ran


@pytest.mark.slow
def test_sigterm_ends_the_run_with_a_report_naming_the_items_not_run(runner):
    """SIGTERM (a CI job's time limit) ends the run like Ctrl-C: a final report, INCOMPLETE."""
    journal, report_path = runner.path / "audit.json.journal.jsonl", runner.path / "audit.json"
    run = _start(runner.path, *SLOW_ARGS)
    _wait_for_items(journal, 2, run)
    run.send_signal(signal.SIGTERM)
    output = run.communicate(timeout=60)[0].decode()
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output
    report = json.loads(report_path.read_text())
    statuses = [r["status"] for r in report["results"]]
    assert len(statuses) == 7 and "not run" in statuses and "passed" in statuses
    assert report["verdict"].startswith("INCOMPLETE: ")
    not_run = [r["message"] for r in report["results"] if r["status"] == "not run"]
    assert all(m.startswith("not run: the run was interrupted (Ctrl-C, SIGTERM or a time limit)")
               for m in not_run)
    assert "INCOMPLETE: " in output and "mlip-conformance report written to" in output


@pytest.mark.slow
def test_xdist_without_isolation_accounts_for_crashed_workers(runner):
    """The issue's run: with isolation off a model that aborts takes pytest-xdist workers
    along; the report still holds every selected item, the crashed ones as errors."""
    result = runner.runpytest_subprocess(FAULTY, kwargs(faults={"trimer": "abort", "cluster": "abort"}),
                                         "--mlip-checks=net_force",
                                         "--mlip-structure-kinds=dimer,trimer,cluster,bulk",
                                         "--mlip-isolate=no", "-n", "2", "--mlip-report=audit.json", *QUIET)
    outcomes = {k: v for k, v in result.parseoutcomes().items() if k != "seconds"}
    report = json.loads((runner.path / "audit.json").read_text())
    assert outcomes == pytest_counts(report) == {"passed": 2, "failed": 2}
    crashed = {r["case"]: r["message"] for r in report["results"] if r["status"] == "error"}
    assert sorted(crashed) == ["cluster_Cu13", "trimer_Cu3"]
    assert all(m.startswith("the pytest process running this item ended without a result: worker 'gw")
               for m in crashed.values())
    assert report["verdict"].startswith("NOT CONFORMANT: 2 errors")
