"""The model worker: each way compiled model code fails costs one item, named, and the audit goes on.

These run ``audit(spec, isolate=True)`` in this process: the model runs in a worker
process (a fork of one fork server per test process), so crashing it is safe here.
The pytest plugin's own runs are in ``test_crash_audits.py``.
"""

import os
import signal
import time
import warnings

import numpy as np
import pytest

from conformance import audit
from conformance.run.config import ConfigError, build_config
from conformance.run.isolation import ModelLoadError, describe_exit, kill_after, open_remote_session
from tests.zoo.crashing import FaultyOn

SPEC = "tests.zoo.crashing:FaultyOn"
#: net_force makes one call per case; the session's probe evaluates the smallest case
#: of each class of structure: dimer, slab and small_cell, never the faulty kinds
KINDS = ["dimer", "trimer", "cluster", "bulk", "slab", "wire", "small_cell"]


def faulty_audit(faults, checks=("net_force",), **options):
    return audit(SPEC, checks=list(checks), structure_kinds=KINDS, isolate=True,
                 model_kwargs={"faults": faults}, **options)


def statuses(report) -> dict:
    return {r.case: r.status for r in report.results}


def test_crashes_are_errors_naming_the_signal_the_call_and_the_structure():
    report = faulty_audit({"trimer": "abort", "cluster": "segfault", "bulk": "oom_kill",
                           "wire": "exit_call"})
    assert statuses(report) == {"dimer_Cu2": "passed", "trimer_Cu3": "error", "cluster_Cu13": "error",
                                "bulk_Cu_fcc": "error", "slab_Cu_fcc111": "passed",
                                "wire_Cu_fcc100": "error", "small_cell_Cu2": "passed"}
    trimer = report["net_force[trimer_Cu3]"].message
    assert trimer.startswith("model worker crashed: killed by signal SIGABRT (Aborted: abort(): a failed "
                             "assertion or an uncaught C++ exception")
    assert ("during model call 1 of this item, on Cu3 (3 atoms, pbc=[False, False, False]) in "
            "net_force[trimer_Cu3]; the audit goes on in a new worker") in trimer
    assert "atoms = find_case('trimer_Cu3', species=['Cu'], seed=0).copy()" in trimer
    assert f"calc = load('{SPEC}', {{'faults': " in trimer
    assert "-k 'net_force and trimer_Cu3' --mlip-isolate=no" in trimer
    assert report["net_force[cluster_Cu13]"].message.startswith(
        "model worker crashed: killed by signal SIGSEGV (Segmentation fault: an invalid memory access")
    assert report["net_force[bulk_Cu_fcc]"].message.startswith(
        "model worker crashed: killed by signal SIGKILL (Killed: the kernel's out-of-memory killer, or "
        "another process, ended it; --mlip-memory-limit=GB turns running out of memory into a MemoryError")
    assert report["net_force[wire_Cu_fcc100]"].message.startswith(
        "model worker exited with status 3 (the model or a library called exit()), during model call 1 "
        "of this item, on Cu32 (32 atoms, pbc=[False, False, True])")
    assert report["net_force[trimer_Cu3]"].n_calls == 1
    assert report.metadata["isolation"] == {"isolated": True, "worker_starts": 5, "worker_crashes": 4,
                                            "start_method": "forkserver"}
    assert report.verdict().startswith("NOT CONFORMANT: 4 errors")


def test_hangs_end_at_the_time_limit_in_python_and_in_native_code():
    timeout = 0.3
    t0 = time.perf_counter()
    report = faulty_audit({"trimer": "python_loop", "cluster": "sleep_loop", "wire": "blocking_read",
                           "bulk": "native_hang"}, timeout=timeout)
    elapsed = time.perf_counter() - t0
    assert statuses(report) == {"dimer_Cu2": "passed", "trimer_Cu3": "error", "cluster_Cu13": "error",
                                "bulk_Cu_fcc": "error", "slab_Cu_fcc111": "passed",
                                "wire_Cu_fcc100": "error", "small_cell_Cu2": "passed"}
    for case, atoms in (("trimer_Cu3", "3 atoms, Cu3"), ("cluster_Cu13", "13 atoms, Cu13"),
                        ("wire_Cu_fcc100", "32 atoms, Cu32")):  # the worker's alarm ends these
        assert report[f"net_force[{case}]"].message == (
            f"model error: model call exceeded the time limit of 0.3 s ({atoms})")
    native = report["net_force[bulk_Cu_fcc]"].message
    assert native.startswith("model worker killed: a model call ran past the time limit of 0.3 s and did "
                             "not come back to Python in ")
    assert "(native code the alarm cannot interrupt), during model call 1 of this item, on Cu32" in native
    assert report.metadata["isolation"]["worker_starts"] == 2  # only the native hang costs a worker
    assert kill_after(timeout) == pytest.approx(1.45)
    stuck = float(native.split("did not come back to Python in ")[1].split(" s")[0])
    assert kill_after(timeout) <= stuck < kill_after(timeout) + 10  # on time (polled every 0.2 s)
    assert elapsed < 120, elapsed  # 3 x 0.3 s + 1.45 s + worker starts, not 10**15 additions


def test_memory_limit_turns_an_allocation_into_a_memory_error_and_replaces_the_worker():
    limited = faulty_audit({"trimer": "memory_error", "cluster": "allocate"}, memory_limit=2)
    assert statuses(limited)["trimer_Cu3"] == statuses(limited)["cluster_Cu13"] == "error"
    assert limited["net_force[trimer_Cu3]"].message.startswith(
        "model error: model raised MemoryError: simulated: could not allocate 23.8 GiB (on Cu3")
    cluster = limited["net_force[cluster_Cu13]"].message
    assert cluster.startswith("model error: model raised MemoryError: Unable to allocate 7.45 GiB")
    assert cluster.endswith("(the model worker's memory limit is 2 GB, --mlip-memory-limit; the worker "
                            "was replaced)")
    assert limited.metadata["isolation"]["worker_starts"] == 3
    assert limited.metadata["isolation"]["worker_crashes"] == 0
    # without the limit the 8 GB are reserved, never touched: the item passes
    unlimited = faulty_audit({"cluster": "allocate"})
    assert statuses(unlimited)["cluster_Cu13"] == "passed"


def test_bad_outputs_are_errors_and_global_state_stays_in_the_worker():
    before = (os.getcwd(), signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT),
              np.geterr(), list(warnings.filters))
    report = faulty_audit({"trimer": "nan", "cluster": "wrong_shape", "bulk": "mutate_globals",
                           "wire": "mutate_globals"}, checks=("net_force", "translation_invariance"))
    assert report["net_force[trimer_Cu3]"].message == (
        "model error: model returned non-finite forces (NaN or inf) (1 of 3 atoms)")
    assert report["net_force[cluster_Cu13]"].message == (
        "model error: forces has shape (12, 3), expected (13, 3)")
    assert {r.status for r in report.results if r.case in ("bulk_Cu_fcc", "wire_Cu_fcc100")} == {"passed"}
    assert len(report) == 14 and report.counts()["error"] == 4
    after = (os.getcwd(), signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT),
             np.geterr(), list(warnings.filters))
    assert after == before


def test_a_probe_that_crashes_is_reported_by_structure_support_and_the_run_goes_on():
    report = faulty_audit({"dimer": "abort"}, checks=("net_force", "structure_support"))
    support = report["structure_support[classes]"]
    assert support.status == "error"
    assert support.message.startswith(
        "model worker crashed: killed by signal SIGABRT (Aborted: abort(): a failed assertion or an "
        "uncaught C++ exception, e.g. std::bad_alloc when memory runs out), during model call 1 of this "
        "item, on Cu2 (2 atoms, pbc=[False, False, False]), while probing the classes of structure; a new "
        "worker was started without the probe")
    assert statuses(report)["dimer_Cu2"] == "error"
    assert {s for case, s in statuses(report).items() if case not in ("dimer_Cu2", "classes")} == {"passed"}


def test_a_model_the_worker_cannot_load_fails_every_item_with_the_reason():
    report = audit("tests.zoo.crashing:OtherInWorker", checks=["net_force"], structure_kinds=["dimer"],
                   isolate=True)
    (result,) = report.results
    assert result.status == "error"
    assert result.message == ("not evaluated: the model worker could not load the model: SpecError: "
                              "tests.zoo.crashing:OtherInWorker: the factory raised RuntimeError: "
                              "device busy: the model is loaded in another process (simulated)")


def test_the_parent_never_loads_the_model_so_a_crash_while_loading_is_a_load_error():
    """What the pytest plugin does (conformance.plugin.hooks turns the error into a failing
    load_model item): the worker opens the run; the model segfaults there, not here."""
    with pytest.raises(ModelLoadError) as caught:
        open_remote_session(build_config({"model": "tests.zoo.crashing:CrashesOnLoad", "isolate": True}))
    assert caught.value.type_name == "ModelWorkerCrash"
    assert str(caught.value) == ("the model worker crashed: killed by signal SIGSEGV (Segmentation fault: "
                                 "an invalid memory access in native code) while loading the model")
    with pytest.raises(ConfigError, match=r"checks: unknown checks or families \['symetry'\]"):
        open_remote_session(build_config({"model": "ase:EMT", "species": "Cu", "checks": "symetry"}))
    session = open_remote_session(build_config({"model": SPEC, "checks": "net_force",
                                                "structure_kinds": "dimer,bulk"}))
    try:
        assert [(c.name, k.name, k.kind) for c, k in session.items] == [
            ("net_force", "dimer_Cu2", "dimer"), ("net_force", "bulk_Cu_fcc", "bulk")]
        assert (session.manifest.species, session.manifest.cutoff) == (("Cu",), 5.0)
        assert [session.run_item(c, k).status for c, k in session.items] == ["passed", "passed"]
    finally:
        session.close()


def test_a_worker_that_builds_other_items_is_not_trusted():
    report = audit("tests.zoo.crashing:OtherInWorker", checks=["net_force"], structure_kinds=["dimer"],
                   isolate=True, model_kwargs={"mode": "cutoff"})
    assert report.results[0].message.startswith(
        "not evaluated: the model worker built other items or tags than this process")


def test_isolation_needs_a_spec_not_an_object():
    with pytest.raises(ConfigError, match="isolate=True runs the model in a worker process that loads it "
                                          "from a spec: pass the model as a spec string"):
        audit(FaultyOn(), checks=["net_force"], isolate=True)


def test_isolated_and_in_process_audits_agree():
    options = dict(species=["Cu"], checks=["rotation_invariance", "force_consistency"],
                   structure_kinds=["cluster", "bulk"])
    isolated = audit("ase:EMT", isolate=True, **options)
    in_process = audit("ase:EMT", **options)
    strip = lambda rs: [(r.check, r.case, r.status, r.measured, r.n_calls) for r in rs]  # noqa: E731
    assert strip(isolated.results) == strip(in_process.results)
    assert isolated.metadata["model_calls"] == sum(r.n_calls for r in in_process.results) > 0


@pytest.mark.parametrize("exitcode, text", [
    (-6, "crashed: killed by signal SIGABRT (Aborted: abort(): a failed assertion"),
    (-9, "crashed: killed by signal SIGKILL (Killed: the kernel's out-of-memory killer"),
    (-8, "crashed: killed by signal SIGFPE (Floating point exception: an arithmetic fault"),
    (0, "exited with status 0 before returning a result"),
    (70, "exited with status 70 (the model or a library called exit())"),
])
def test_exit_descriptions(exitcode, text):
    assert describe_exit(exitcode).startswith(text)
    if exitcode in (-6, -9):
        assert describe_exit(exitcode, memory_limit=4).find("the worker's memory limit is 4 GB") > 0
