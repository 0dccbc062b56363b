"""Model calls in a worker process: a crash, an out-of-memory kill or a hang costs one item.

A compiled model that calls ``abort()``, dereferences a null pointer, is killed
by the kernel's out-of-memory killer or spins in native code would otherwise
take the whole audit with it. With isolation (the pytest plugin's default,
``--mlip-isolate=no`` turns it off) the checks and the model run in one
persistent child process per run, the *model worker*; the parent (the pytest
process, or each pytest-xdist worker) sends it one item at a time and gets the
:class:`~conformance.core.result.CheckResult` back, one message per item:

* the worker dies (a signal, ``exit()``): the item is an ``error`` naming the
  signal, the model call and the structure it was evaluating, with a
  reproducer; a new worker is started for the next item;
* a model call runs past ``--mlip-timeout``: the worker's alarm turns a hang in
  Python into an ``error`` as without isolation; a call that does not come back
  to Python (native code) is killed ``1 s + timeout / 2`` later, and the item
  is an ``error`` saying so;
* ``--mlip-memory-limit=GB`` caps the worker's address space
  (``RLIMIT_AS``): running out of memory becomes a ``MemoryError`` in the
  model (an ``error`` result; the worker is then replaced) instead of a kill.

The worker loads the model from the run's spec (``config.model``,
``config.model_kwargs``) and builds the same cases and items as the parent
(seeded, deterministic); it proves it by a digest of the item ids and the
model's tags, checked before the first item. It is started with the
``forkserver`` method where available (a fresh server process imports the
suite once; each worker is then a cheap fork of it, never a fork of a process
with threads), else ``spawn``.

In the pytest plugin the parent does not load the model at all: the worker
opens the run and sends back a :class:`Manifest` (items, the model's declared
species, precision and cutoff, report metadata) from which the parent builds
its pytest items (:class:`RemoteSession`), so the model is loaded once, in the
worker, and a model that crashes while loading costs a ``load_model`` failure,
not the pytest process.

Protocol over one pipe::

    worker -> parent  ("opened", Manifest) ("ready",) | ("failed", kind, type, text)   at start
    parent -> worker  ("run", check, case, wants_progress) | ("stop",)
    worker -> parent  ("progress", done, total, what)* ("result", dict, restart)
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import multiprocessing
import os
import signal
import sys
import time
import types
import weakref
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable

START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
#: imported once by the fork server, so that each worker starts in milliseconds
PRELOAD = ["numpy", "ase", "conformance.run.session", "conformance.checks", "conformance.run.isolation"]
#: seconds between checks of the current model call when a time limit is set
POLL_SECONDS = 0.2
#: seconds a worker asked to stop has before it is killed
STOP_SECONDS = 2.0
GIGABYTE = 1e9


def kill_after(timeout: float) -> float:
    """Seconds a model call may run before its worker is killed: the time limit
    plus a grace (1 s + half the limit) in which the worker's own alarm can
    still end a call that comes back to Python."""
    return timeout + 1.0 + 0.5 * timeout


class CallMonitor:
    """What the worker is doing, in memory shared with the parent.

    The worker's :class:`~conformance.core.model.Model` calls :meth:`enter` and
    :meth:`exit` around each model call; the parent reads :meth:`stuck_for` to
    find a call that does not return and :meth:`where` to name the call and the
    structure when the worker dies.
    """

    WHAT_BYTES = 200

    def __init__(self, ctx):
        self._started = ctx.RawValue("d", 0.0)   # time.monotonic() of the call's start; 0: none
        self._count = ctx.RawValue("q", 0)       # model calls of the current item
        self._what = ctx.RawArray("c", self.WHAT_BYTES)

    def enter(self, atoms, formula: str) -> None:
        self._count.value += 1
        text = f"{formula} ({len(atoms)} atoms, pbc={atoms.pbc.tolist()})"
        self._what.value = text.encode("utf-8", "replace")[: self.WHAT_BYTES - 1]
        self._started.value = time.monotonic()

    def exit(self) -> None:
        self._started.value = 0.0

    def reset(self) -> None:
        """A new item starts: no call yet."""
        self._started.value = 0.0
        self._count.value = 0
        self._what.value = b""

    @property
    def calls(self) -> int:
        """Model calls of the current item so far."""
        return int(self._count.value)

    def stuck_for(self, now: float) -> float:
        """Seconds the current model call has been running (0 outside a call)."""
        started = self._started.value
        return now - started if started > 0 else 0.0

    def where(self) -> str:
        """``during model call 3 of this item, on Cu32 (32 atoms, pbc=[...])``."""
        what = self._what.value.decode("utf-8", "replace")
        if self._started.value > 0:
            return f"during model call {self.calls} of this item, on {what}"
        if self.calls:
            return f"outside a model call (after {self.calls} calls of this item, the last on {what})"
        return "before the item's first model call"


def describe_exit(exitcode: int | None, memory_limit: float | None = None) -> str:
    """How a worker process ended, for a user: the signal's name and what usually sends it.

    >>> describe_exit(-11)
    'crashed: killed by signal SIGSEGV (Segmentation fault: an invalid memory access in native code)'
    >>> describe_exit(3)
    'exited with status 3 (the model or a library called exit())'
    """
    if exitcode is None:
        return "stopped for an unknown reason"
    if exitcode > 0:
        return f"exited with status {exitcode} (the model or a library called exit())"
    if exitcode == 0:
        return "exited with status 0 before returning a result (the model or a library called exit(0))"
    number = -exitcode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    text = signal.strsignal(number) or name
    limit = f"; the worker's memory limit is {memory_limit:g} GB" if memory_limit else ""
    hints = {
        "SIGSEGV": "an invalid memory access in native code",
        "SIGBUS": "an invalid memory access in native code",
        "SIGABRT": "abort(): a failed assertion or an uncaught C++ exception, e.g. std::bad_alloc "
                   "when memory runs out" + limit,
        "SIGKILL": "the kernel's out-of-memory killer, or another process, ended it" + (
            limit or "; --mlip-memory-limit=GB turns running out of memory into a MemoryError "
                     "inside the model"),
        "SIGFPE": "an arithmetic fault in native code (integer division by zero)",
        "SIGILL": "an illegal instruction: a binary built for another CPU",
    }
    hint = hints.get(name, "")
    return f"crashed: killed by signal {name} ({text}{': ' + hint if hint else ''})"


def items_digest(session) -> str:
    """A digest of a session's item ids and its model's tags: the worker's must equal the parent's."""
    import dataclasses

    from .runner import item_id

    ids = [item_id(spec.name, case.name) for spec, case in session.items]
    tags = {k: sorted(v) if isinstance(v, (set, frozenset)) else v  # hash order differs per process
            for k, v in dataclasses.asdict(session.model.tags).items()}
    return hashlib.sha256(repr((ids, sorted(tags.items()))).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CheckRef:
    """What the parent knows of a check: enough to name, select and report its items."""

    name: str
    family: str
    unit: str
    severity: str


@dataclass(frozen=True)
class CaseRef:
    """What the parent knows of a case."""

    name: str
    kind: str


@dataclass
class Manifest:
    """A run as the worker opened it, for a parent that does not load the model.

    Attributes
    ----------
    items : list of (CheckRef, CaseRef, xfail reason or None)
    species, precision, cutoff
        The model's (declared or overridden) species, precision and cutoff (Å).
    metadata : dict
        Report metadata of the session (:func:`conformance.run.session.metadata`).
    digest : str
        :func:`items_digest` of the worker's session.
    """

    items: list
    species: tuple
    precision: str
    cutoff: float | None
    metadata: dict
    digest: str


def make_manifest(session) -> Manifest:
    """The :class:`Manifest` of a session opened in the worker."""
    from .session import metadata

    items = [(CheckRef(spec.name, spec.family, spec.unit, spec.severity), CaseRef(case.name, case.kind),
              session.xfail_reason(spec, case)) for spec, case in session.items]
    tags = session.model.tags
    return Manifest(items, tuple(tags.species), tags.precision, tags.cutoff, metadata(session),
                    items_digest(session))


class ModelLoadError(RuntimeError):
    """The model worker could not load the model (``type_name``: what was raised there)."""

    def __init__(self, type_name: str, text: str):
        super().__init__(text)
        self.type_name = type_name


def python_reproducer(config, case_name: str, species) -> str:
    """Lines of Python that evaluate the model on one case in the current process."""
    user = ""
    if config.structures:
        user = f", user_structures=read({config.structures!r}, index=':')"
    lines = ["from adapters import load", "from conformance.toolkit.structures import find_case"]
    if user:
        lines.append("from ase.io import read")
    lines += [f"calc = load({config.model!r}, {dict(config.model_kwargs)!r}).calc",
              f"atoms = find_case({case_name!r}, species={list(species)!r}, seed={config.seed}{user}).copy()",
              "atoms.calc = calc",
              "print(atoms.get_potential_energy(), atoms.get_forces())"]
    return "\n".join(lines)


def failure_result(spec, case, config, head: str, species=(), n_calls: int = 0, crashed: bool = True):
    """The ``error`` result of an item whose worker crashed, hung or could not start."""
    from ..core.result import CheckResult
    from .runner import reproducer_command

    lines = [head]
    if crashed and config.model:
        lines += ["reproducer (in one process, without the worker; `python -X faulthandler` prints "
                  "the native traceback):", python_reproducer(config, case.name, species),
                  f"rerun: {reproducer_command(config, spec.name, case.name)} --mlip-isolate=no"]
    return CheckResult(check=spec.name, case=case.name, family=spec.family, status="error",
                       unit=spec.unit, severity=spec.severity, n_calls=n_calls, message="\n".join(lines))


class ModelWorker:
    """The parent's handle on the model worker process of one run.

    Parameters
    ----------
    config : RunConfig
        The run; its ``model`` spec is loaded by the worker.
    expected_digest : str, optional
        :func:`items_digest` of the parent's session; None: the first worker's
        (every later worker must build the same items).
    species : tuple of str
        The run's species (for reproducers; default: the manifest's).

    Attributes
    ----------
    manifest : Manifest or None
        The run as the first worker opened it.
    starts, crashes : int
        Worker processes started; crashes and kills (items, loading, probe).
    probe_crash : str or None
        Why the probe of the classes of structure could not run in the worker
        (it crashed or hung: the worker was restarted without it).
    broken : str or None
        Why no worker can run items (it could not load the model, or crashed
        while loading it twice); every item is then an ``error`` with this reason.
    failure : tuple or None
        (kind, exception type, text) when the worker could not open the run:
        kind ``usage`` (a configuration mistake) or ``load``.
    """

    def __init__(self, config, expected_digest: str | None = None, species=()):
        self.config = config
        self.expected_digest = expected_digest
        self.species = tuple(species)
        self.ctx = multiprocessing.get_context(START_METHOD)
        self.process = None
        self.conn = None
        self.monitor: CallMonitor | None = None
        self.opened = False
        self.ready = False
        self.manifest: Manifest | None = None
        self.probe = True
        self.probe_crash: str | None = None
        self.broken: str | None = None
        self.failure: tuple | None = None
        self.starts = 0
        self.crashes = 0
        _LIVE_WORKERS.add(self)

    def describe(self) -> dict[str, Any]:
        """Report metadata: the model ran here; how often a worker started and crashed."""
        return {"isolated": True, "worker_starts": self.starts, "worker_crashes": self.crashes,
                "start_method": START_METHOD}

    # -- process life -------------------------------------------------------------------

    def start(self) -> None:
        """Start a worker process (returns at once; the model loads in the background)."""
        if self.process is not None:
            return
        if START_METHOD == "forkserver":
            self.ctx.set_forkserver_preload(PRELOAD)
        parent_end, child_end = self.ctx.Pipe()
        self.monitor = CallMonitor(self.ctx)
        where = {"cwd": os.getcwd(), "sys_path": list(sys.path), "environ": dict(os.environ),
                 "parent_pid": os.getpid()}
        process = self.ctx.Process(target=worker_main, name="mlip-model-worker",
                                   args=(child_end, self.config, self.monitor, self.probe, where))
        try:
            with _main_module_hidden():
                process.start()
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self.process = process
        self.conn = parent_end
        self.opened = self.ready = False
        self.starts += 1

    def close(self) -> None:
        """Stop the worker: asked to stop, killed if it does not within :data:`STOP_SECONDS`."""
        if self.process is None:
            return
        try:
            self.conn.send(("stop",))
        except (OSError, ValueError):
            pass
        self.process.join(STOP_SECONDS)
        self._discard()

    def _discard(self) -> None:
        """Kill the worker (if alive) and forget it."""
        process, self.process = self.process, None
        self.opened = self.ready = False
        if process is None:
            return
        if process.is_alive():
            process.kill()
        process.join()
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # -- messages -----------------------------------------------------------------------

    def _next_message(self) -> tuple:
        """The worker's next message; ``("died", exitcode)`` when it ended, or
        ``("hung", seconds)`` after killing it for a model call past the limit."""
        limit = self.config.timeout
        while True:
            ready = wait([self.conn, self.process.sentinel], POLL_SECONDS if limit else None)
            if self.conn in ready:
                try:
                    return self.conn.recv()
                except (EOFError, OSError):
                    ready.append(self.process.sentinel)
            if self.process.sentinel in ready:
                self.process.join()
                return ("died", self.process.exitcode)
            if limit:
                stuck = self.monitor.stuck_for(time.monotonic())
                if stuck > kill_after(limit):
                    self.process.kill()
                    self.process.join()
                    return ("hung", stuck)

    def _describe(self, message: tuple) -> str:
        kind, value = message[0], message[1]
        if kind == "hung":
            return (f"killed: a model call ran past the time limit of {self.config.timeout:g} s and did "
                    f"not come back to Python in {value:.1f} s (native code the alarm cannot "
                    "interrupt)")
        return describe_exit(value, self.config.memory_limit)

    def wait_opened(self) -> Manifest | None:
        """Start the worker if needed and wait until it has loaded the model and
        built the items; the manifest, or None (:attr:`broken` says why)."""
        self._bring_up("opened")
        return self.manifest if self.broken is None else None

    def wait_ready(self) -> str | None:
        """Start the worker if needed and wait until it can run items; None when
        it can, else why no item can run (:attr:`broken`)."""
        self._bring_up("ready")
        return self.broken

    def _bring_up(self, until: str) -> None:
        """Start, restart and wait for workers until one has ``opened`` the run
        or is ``ready`` (probed), or :attr:`broken` says why none will be."""
        load_crashes = 0
        while self.broken is None and not (self.ready or (until == "opened" and self.opened)):
            self.start()
            message = self._next_message()
            if not self.opened:
                if message[0] == "opened":
                    self._opened(message[1])
                elif message[0] == "failed":
                    self.failure = message[1:]
                    self.broken = f"the model worker could not load the model: {message[2]}: {message[3]}"
                    self._discard()
                else:  # crashed or hung while loading: once more, then give up
                    what = self._describe(message)
                    self.crashes += 1
                    load_crashes += 1
                    self._discard()
                    if load_crashes > 1 or self.manifest is None:  # never loaded: it will not
                        self.broken = f"the model worker {what} while loading the model"
                continue
            if message[0] == "ready":
                self.ready = True
                continue
            what, where = self._describe(message), self.monitor.where()
            self.crashes += 1
            self._discard()
            self.probe = False  # the probe of the classes of structure: start again without it
            self.probe_crash = (f"model worker {what}, {where}, while probing the classes of structure; "
                                "a new worker was started without the probe")

    def _opened(self, manifest: Manifest) -> None:
        if self.expected_digest is None:
            self.expected_digest = manifest.digest
        if manifest.digest != self.expected_digest:
            self.broken = ("the model worker built other items or tags than this process (a model "
                           "whose species, cutoff or precision change from one load to the next?); run "
                           "with --mlip-isolate=no")
            self._discard()
            return
        self.opened = True
        if self.manifest is None:
            self.manifest = manifest
            self.species = self.species or manifest.species

    def run(self, spec, case, progress: Callable[[int, int, str], None] | None = None):
        """Run one item in the worker; a crash or a kill becomes an ``error`` result."""
        from ..core.result import CheckResult

        reason = self.wait_ready()
        if reason is not None:
            return failure_result(spec, case, self.config, f"not evaluated: {reason}", crashed=False)
        if self.probe_crash and case.kind == "support":
            return failure_result(spec, case, self.config, self.probe_crash, self.species)
        try:
            self.conn.send(("run", spec.name, case.name, progress is not None))
        except (OSError, ValueError):  # it died while idle: start another
            self._discard()
            reason = self.wait_ready()
            if reason is not None:
                return failure_result(spec, case, self.config, f"not evaluated: {reason}", crashed=False)
            self.conn.send(("run", spec.name, case.name, progress is not None))
        while True:
            message = self._next_message()
            kind = message[0]
            if kind == "progress":
                progress(*message[1:])
                continue
            if kind == "result":
                if message[2]:  # the worker asks to be replaced (it ran out of memory)
                    self.close()
                return CheckResult.from_dict(message[1])
            what, where, calls = self._describe(message), self.monitor.where(), self.monitor.calls
            self.crashes += 1
            self._discard()
            head = (f"model worker {what}, {where} in {spec.name}[{case.name}]; the audit goes on "
                    "in a new worker")
            return failure_result(spec, case, self.config, head, self.species, n_calls=calls)


@contextlib.contextmanager
def _main_module_hidden():
    """Start a process without the parent's ``__main__``: the worker needs nothing
    from it, and multiprocessing would otherwise run the user's script (or
    pytest's entry point) again in the worker, or fail on ``python - <<EOF``."""
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is not None:
            sys.modules["__main__"] = main


_LIVE_WORKERS: "weakref.WeakSet[ModelWorker]" = weakref.WeakSet()


@atexit.register
def _close_live_workers() -> None:  # before multiprocessing's own exit handler joins them
    for worker in list(_LIVE_WORKERS):
        worker._discard()


# --------------------------------------------------------------------------- the worker


def worker_main(conn, config, monitor: CallMonitor, probe: bool, where: dict) -> None:
    """Entry point of the worker process: load the model, then run items until told to stop."""
    _follow_parent(where)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent to handle
    _limit_memory(config.memory_limit)
    try:
        from .session import open_session

        session = open_session(config.replace(isolate=False), probe=False)
        session.model.monitor = monitor
        manifest = make_manifest(session)
    except Exception as exc:  # a configuration mistake, or a spec this process cannot load
        conn.send(("failed", _failure_kind(exc), type(exc).__name__, str(exc)))
        return
    conn.send(("opened", manifest))
    if probe:
        session.probe()
    else:  # it crashed a worker before: the items run without its findings
        session.probed = True
    conn.send(("ready",))
    items = {(spec.name, case.name): (spec, case) for spec, case in session.items}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] != "run":
            return
        _, check, case_name, wants_progress = message
        spec, case = items[(check, case_name)]
        monitor.reset()
        try:
            result = session.run_item(spec, case,
                                      progress=_progress_sender(conn) if wants_progress else None)
        except Exception as exc:  # a bug of the suite (run_check lets it through): this item's error
            result = _suite_error(spec, case, exc)
        session.results.clear()  # the parent keeps them
        out_of_memory = result.status == "error" and "MemoryError" in result.message
        if out_of_memory and config.memory_limit:
            result.message += (f"\n(the model worker's memory limit is {config.memory_limit:g} GB, "
                               "--mlip-memory-limit; the worker was replaced)")
        conn.send(("result", result.to_dict(), out_of_memory or _threads_left_running()))


def _failure_kind(exc: Exception) -> str:
    """``usage`` for a configuration mistake (exit 4 in pytest), ``load`` for a model
    that cannot be loaded (a failing ``load_model`` item)."""
    from adapters import SpecError

    from .config import ConfigError

    if isinstance(exc, SpecError):
        return "load"
    return "usage" if isinstance(exc, (ConfigError, ValueError)) else "load"


def _suite_error(spec, case, exc: Exception):
    """The ``error`` result of an item whose check raised past :func:`~conformance.run.runner.run_check`."""
    import traceback

    from ..core.result import CheckResult

    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3))
    return CheckResult(check=spec.name, case=case.name, family=spec.family, status="error",
                       unit=spec.unit, severity=spec.severity,
                       message=f"check raised {type(exc).__name__}: {exc}\n{tb}")


def _threads_left_running() -> bool:
    """Threads a check started (named ``mlip-*``, e.g. ``thread_safety``'s) still
    running after the item: a model call that hung in a thread; the worker is
    replaced so that it does not spin on."""
    import threading

    return any(t.name.startswith("mlip-thread") and t.is_alive() for t in threading.enumerate())


def _progress_sender(conn) -> Callable[[int, int, str], None]:
    """Forward progress to the parent when the quarter done or the phase changes."""
    shown = {"key": None}

    def send(done: int, total: int, what: str) -> None:
        key = (what, min(4, int(4 * done / total)) if total > 0 else 0)
        if key != shown["key"]:
            shown["key"] = key
            conn.send(("progress", done, total, what))

    return send


def _follow_parent(where: dict) -> None:
    """Work in the parent's folder, import path and environment (a fork server
    started earlier may have others), and die with the parent."""
    os.chdir(where["cwd"])
    sys.path[:] = where["sys_path"]
    os.environ.clear()
    os.environ.update(where["environ"])
    if sys.platform.startswith("linux"):
        import ctypes

        try:  # PR_SET_PDEATHSIG: SIGKILL when the parent (the fork server) ends
            if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0) == 0:
                return
        except (OSError, AttributeError):
            pass
    import threading  # elsewhere: a thread that ends the worker when the parent is gone

    def watch(pid: int) -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(70)
            except PermissionError:
                pass

    threading.Thread(target=watch, args=(where["parent_pid"],), daemon=True,
                     name="mlip-parent-watch").start()


def _limit_memory(gigabytes: float | None) -> None:
    """Cap the address space of this process (``RLIMIT_AS``) at ``gigabytes``."""
    if not gigabytes:
        return
    import resource

    limit = int(gigabytes * GIGABYTE)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


class RemoteSession:
    """A run opened in the model worker, seen from a parent that never loads the model.

    Offers what the pytest plugin uses of a :class:`~conformance.run.session.Session`:
    ``items`` (light :class:`CheckRef`, :class:`CaseRef` pairs), ``xfail_reason``,
    ``run_item``, ``close``, plus the worker's :class:`Manifest`.
    """

    def __init__(self, config, worker: ModelWorker, manifest: Manifest):
        self.config = config
        self.worker = worker
        self.manifest = manifest
        self.items = [(check, case) for check, case, _ in manifest.items]
        self._xfail = {(check.name, case.name): reason for check, case, reason in manifest.items}

    def xfail_reason(self, spec, case) -> str | None:
        return self._xfail.get((spec.name, case.name))

    def run_item(self, spec, case, progress=None):
        result = self.worker.run(spec, case, progress)
        result.xfail = self.xfail_reason(spec, case)
        return result

    def close(self) -> None:
        self.worker.close()


def open_remote_session(config) -> RemoteSession:
    """Start a model worker, let it open the run, and return the parent's view of it.

    Raises
    ------
    ConfigError
        A configuration mistake the worker found (unknown check, no species...).
    ModelLoadError
        The model could not be loaded there (bad spec, a factory that raises, a
        crash while loading), with what happened.
    """
    from .config import ConfigError

    worker = ModelWorker(config)
    manifest = worker.wait_opened()
    if manifest is None:
        kind, type_name, text = worker.failure or ("load", "ModelWorkerCrash", worker.broken)
        worker.close()
        if kind == "usage":
            raise ConfigError(text)
        raise ModelLoadError(type_name, text)
    return RemoteSession(config, worker, manifest)


def describe_isolation(worker: ModelWorker | None) -> dict[str, Any]:
    """Report metadata: whether the model ran in a worker, how often one started and crashed."""
    return {"isolated": False} if worker is None else worker.describe()


def open_isolated_session(config, calc=None, report_dir=None):
    """A :class:`~conformance.run.session.Session` whose items run in a model worker
    process (started on the first item), which loads the model from ``config.model``
    itself and probes there: this process only builds the items.

    Raises
    ------
    ConfigError
        ``calc`` given: a worker loads the model from a spec, not from an object.
    """
    from .config import ConfigError
    from .session import open_session

    if calc is not None:
        raise ConfigError("isolate=True runs the model in a worker process that loads it from a "
                          "spec: pass the model as a spec string (e.g. 'mypkg.models:make_calculator'), "
                          "not as a calculator object")
    session = open_session(config, report_dir=report_dir, probe=False)
    session.worker = ModelWorker(config, items_digest(session), session.model.tags.species)
    return session
