"""pytest hooks: options, collection of conformance items, summary and report.

Loaded through the ``pytest11`` entry point; imports nothing heavy at module
level. With ``--mlip-model`` (or ``model`` in ``[tool.mlip-conformance]``) the
suite module ``conformance/plugin/suite.py`` is added to the collected paths, so
``pytest --mlip-model=ase:EMT`` works in any directory; ``pytest --pyargs
conformance.plugin.suite --mlip-model=...`` is the explicit form.

One item per (check, case), named ``check[case]``. Results travel on the test
report (``user_properties``), so they survive pytest-xdist, and are gathered
in the controller for the terminal table and the report file.

The model runs in a worker process (:mod:`conformance.run.isolation`; one per
pytest process, started while pytest collects), unless ``--mlip-isolate=no``.
The controller journals each result as it arrives (:mod:`conformance.run.journal`),
rewrites the report now and then marked PARTIAL, and at the end accounts for
every selected item (:mod:`conformance.run.accounting`): crashed and not-run items
are in the report too. ``--mlip-resume`` replays the journal's results instead
of running those items again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SUITE_PATH = Path(__file__).with_name("suite.py").resolve()
RESULT_KEY = "mlip_result"

_config_key = pytest.StashKey()     # RunConfig or Exception
_session_key = pytest.StashKey()    # Session or Exception (per process)
_ledger_key = pytest.StashKey()     # accounting.Ledger (the controller only)
_replay_key = pytest.StashKey()     # item name -> result dict from the journal (--mlip-resume)
_final_key = pytest.StashKey()      # (Report, path written or None, error or None) at the end
_sigterm_key = pytest.StashKey()    # the SIGTERM handler to restore

def pytest_addoption(parser):
    """One ``--mlip-<name>`` option per command-line row of the option table."""
    from ..run.options import OPTIONS

    group = parser.getgroup("mlip-conformance", "machine-learned potential conformance audit")
    for option in OPTIONS:
        if not option.command_line:
            continue
        if option.metavar is None:
            group.addoption(option.flag, dest=option.dest, action="store_const", const=True,
                            default=None, help=option.cli_help)
        else:
            group.addoption(option.flag, dest=option.dest, metavar=option.metavar, default=None,
                            help=option.cli_help)


def _pyproject_path(config) -> Path:
    inipath = getattr(config, "inipath", None)
    if inipath is not None and Path(inipath).name == "pyproject.toml":
        return Path(inipath)
    return Path(config.rootpath) / "pyproject.toml"


def _read_config(config):
    from ..run.config import ConfigError, build_config, read_pyproject
    from ..run.options import OPTIONS

    cli = {option.field: config.getoption(option.dest) for option in OPTIONS if option.command_line}
    try:
        return build_config(cli, read_pyproject(_pyproject_path(config)))
    except ConfigError as exc:
        raise pytest.UsageError(f"mlip-conformance: {exc}") from None


def _check_report_path(path: str):
    report = Path(path)
    if report.suffix.lower() not in (".json", ".md", ".markdown", ".html", ".htm"):
        raise pytest.UsageError(f"mlip-conformance: --mlip-report={path}: unknown format "
                                f"{report.suffix!r}; use .json, .md or .html")
    parent = report.resolve().parent
    if not parent.is_dir():
        raise pytest.UsageError(f"mlip-conformance: --mlip-report={path}: directory {parent} does "
                                "not exist (create it first)")
    if not os.access(parent, os.W_OK) or (report.exists() and not os.access(report, os.W_OK)):
        raise pytest.UsageError(f"mlip-conformance: --mlip-report={path}: cannot write there "
                                "(permission denied)")


def pytest_configure(config):
    run_config = _read_config(config)
    config.stash[_config_key] = run_config
    config.pluginmanager.register(AuditRecorder(config), "mlip-results")
    if not run_config.model:
        if run_config.train or run_config.test:
            raise pytest.UsageError("mlip-conformance: --mlip-train/--mlip-test audit the data behind "
                                    "a model: also give --mlip-model=SPEC (e.g. reference:linear)")
        return
    if run_config.report:
        _check_report_path(run_config.report)
        run_config = run_config.replace(report=str(Path(run_config.report).resolve()))
    run_config = run_config.replace(isolate=run_config.isolate is not False)  # on unless told no
    config.stash[_config_key] = run_config
    session = _session(config)  # configuration mistakes are usage errors (exit 4), found now
    from ..run.config import ConfigError

    if isinstance(session, (ConfigError, ValueError)) and not _is_spec_error(session):
        raise pytest.UsageError(f"mlip-conformance: {session}")
    if _audits(config):
        _open_journal(config, run_config, session)
    # Collect the suite wherever pytest runs, unless the user named it already.
    named = {str(Path(a.split("::")[0]).resolve()) for a in config.args if not a.startswith("-")}
    if str(SUITE_PATH) not in named and "conformance.plugin.suite" not in config.args:
        config.args.append(str(SUITE_PATH))


def _audits(config) -> bool:
    """Whether this pytest invocation runs items (not --help, --version, --collect-only)."""
    option = config.option
    return not (getattr(option, "help", False) or getattr(option, "version", False)
                or getattr(option, "collectonly", False))


def _is_xdist_controller(config) -> bool:
    return (not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") != "no"
            and bool(getattr(config.option, "tx", None)))


def session_runs_items(config) -> bool:
    """Whether this process runs the items itself (not the pytest-xdist controller)."""
    return _audits(config) and not _is_xdist_controller(config)


def _journal_path(config) -> Path:
    from ..run.journal import journal_path

    return journal_path(config.stash[_config_key].report, config.rootpath)


def _open_journal(config, run_config, session) -> None:
    """The controller opens the journal (new, or resumed) and its ledger; every
    process that runs items reads what a resumed journal holds."""
    from ..run.journal import Journal, JournalError, fingerprint, read_journal, resume

    path = _journal_path(config)
    expected = fingerprint(run_config)
    resuming = bool(run_config.resume) and path.is_file()
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller checked the journal
        if resuming:
            config.stash[_replay_key] = read_journal(path).results
        return
    from ..run.accounting import Ledger

    metadata = _base_metadata(run_config, session)
    journal, error = None, None
    try:
        if resuming:
            config.stash[_replay_key] = resume(path, expected).results
            journal = Journal.reopen(path)
        else:
            journal = Journal.create(path, expected, metadata)
    except JournalError as exc:
        raise pytest.UsageError(f"mlip-conformance: --mlip-resume: {exc}") from None
    except (OSError, TypeError, ValueError) as exc:  # an unwritable folder must not stop the audit
        error = f"no journal (the run cannot be resumed): {exc}"
    fields = {} if isinstance(session, Exception) else {
        f"{spec.name}[{case.name}]": dict(check=spec.name, case=case.name, family=spec.family,
                                          unit=spec.unit, severity=spec.severity)
        for spec, case in session.items}
    ledger = Ledger(metadata, run_config.report, journal, fields)
    ledger.journal_error = error
    config.stash[_ledger_key] = ledger
    _raise_interrupt_on_sigterm(config)


def _raise_interrupt_on_sigterm(config) -> None:
    """SIGTERM (a CI job's time limit, ``kill``) ends the run like Ctrl-C: pytest
    then finishes the session and the report is written with what ran."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    config.stash[_sigterm_key] = signal.signal(signal.SIGTERM, interrupt)


def pytest_unconfigure(config):
    session = config.stash.get(_session_key, None)
    if session is not None and not isinstance(session, Exception):
        session.close()
    if _sigterm_key in config.stash:
        import signal

        signal.signal(signal.SIGTERM, config.stash[_sigterm_key])


def _is_spec_error(exc) -> bool:
    from adapters import SpecError

    return isinstance(exc, SpecError)


def _session(config):
    """The conformance session of this process (opened once), or the exception.

    With isolation, a process that runs items gets a
    :class:`~conformance.run.isolation.RemoteSession`: the model worker loads the
    model and builds the items, this process never loads it. Otherwise (and
    for the pytest-xdist controller, --collect-only, --help) a
    :class:`~conformance.run.session.Session` in this process, whose classes of
    structure are probed before its first item.
    """
    if _session_key not in config.stash:
        run_config = config.stash[_config_key]
        try:
            if run_config.isolate and session_runs_items(config):
                from ..run.isolation import open_remote_session

                session = open_remote_session(run_config)
            else:
                from ..run.session import open_session

                session = open_session(run_config.replace(isolate=False), probe=False)
        except Exception as exc:  # reported as a failing item, not a crash
            session = exc
        config.stash[_session_key] = session
    return config.stash[_session_key]


def _model_facts(session):
    """What the header shows of the model: species, precision, cutoff (Session or RemoteSession)."""
    return session.manifest if hasattr(session, "manifest") else session.model.tags


def pytest_report_header(config):
    run_config = config.stash.get(_config_key, None)
    if run_config is None or not run_config.model:
        return None
    session = _session(config)
    if isinstance(session, Exception):
        return f"mlip-conformance: model={run_config.model} (could not be loaded, see load_model)"
    tags = _model_facts(session)
    cutoff = f"{tags.cutoff:g} Å" if tags.cutoff else "undeclared (detected by the smoothness scans)"
    lines = [f"mlip-conformance: model={run_config.model} species={','.join(tags.species)} "
             f"precision={tags.precision} cutoff={cutoff} seed={run_config.seed} "
             f"items={len(session.items)}"]
    where = ("a worker process per pytest process" if run_config.isolate
             else "the pytest process (--mlip-isolate=no)")
    limits = []
    if run_config.timeout:
        limits.append(f"timeout {run_config.timeout:g} s")
    if run_config.memory_limit:
        limits.append(f"memory limit {run_config.memory_limit:g} GB")
    lines.append(f"mlip-conformance: model runs in {where}" + (f"; {', '.join(limits)}" if limits else ""))
    ledger = config.stash.get(_ledger_key, None)
    if ledger is not None and ledger.journal is not None:
        replay = config.stash.get(_replay_key, {})
        resumed = f"resumed: {len(replay)} items done before are not run again; " if replay else ""
        lines.append(f"mlip-conformance: {resumed}journal {ledger.journal.path}")
    return lines


def pytest_collect_file(file_path, parent):
    if Path(file_path).resolve() == SUITE_PATH and parent.config.stash[_config_key].model:
        return ConformanceFile.from_parent(parent, path=Path(file_path), nodeid="mlip-conformance")
    return None


class ConformanceFailure(Exception):
    """A check failed or errored; carries the result for the failure report."""

    def __init__(self, result):
        super().__init__(result.message)
        self.result = result


class ConformanceFile(pytest.File):
    """Collects one item per (check, case) of the session."""

    def collect(self):
        session = _session(self.config)
        if isinstance(session, Exception):
            yield LoadErrorItem.from_parent(self, name="load_model", error=session)
            return
        for index, (spec, case) in enumerate(session.items):
            item = ConformanceItem.from_parent(self, name=f"{spec.name}[{case.name}]", spec=spec,
                                               case=case, index=index)
            item.extra_keyword_matches.update({spec.family, spec.name, case.name, case.kind})
            reason = session.xfail_reason(spec, case)
            if reason:
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
            yield item


class ConformanceItem(pytest.Item):
    """One check on one case."""

    def __init__(self, *, spec, case, index, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.case = case
        self.index = index

    def runtest(self):
        from ..core.result import CheckResult

        session = _session(self.config)
        replay = self.config.stash.get(_replay_key, {}).get(self.name)
        if replay is not None:  # --mlip-resume: done before the interruption
            details = dict(replay.get("details") or {}, resumed_from=str(_journal_path(self.config)))
            data = dict(replay, resumed=True, details=details,
                        xfail=session.xfail_reason(self.spec, self.case))
            result = CheckResult.from_dict(data)
        else:
            result = session.run_item(self.spec, self.case, progress=_progress_writer(self.config))
            data = result.to_dict()
        data["order"] = self.index
        self.user_properties.append((RESULT_KEY, data))
        if result.status == "skipped":
            pytest.skip(result.message)
        if result.status in ("failed", "error"):  # a declared xfail is applied by pytest
            raise ConformanceFailure(result)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ConformanceFailure):
            from ..reporting.report import with_unit

            r = excinfo.value.result
            head = f"{r.check}[{r.case}] ({r.family}) {r.status.upper()}"
            if r.measured is not None and r.tolerance is not None:
                # measurement first: pytest's short summary shows only the start of this line
                head = (f"{r.quantity or 'measured'} {with_unit(r.measured, r.unit)} > "
                        f"{with_unit(r.tolerance, r.unit)}: {head}")
            return f"{head}\n{r.message}\n(model calls: {r.n_calls})"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"mlip-conformance: {self.name}"


def _progress_writer(config, after: float = 2.0):
    """A progress callback writing `` [what] 25% 50%...`` after the item's name.

    Only with ``-v`` (each item on its own line), silent for the first
    ``after`` seconds (quick items stay quiet) and under pytest-xdist workers
    (they have no terminal).
    """
    import time

    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None or hasattr(config, "workerinput") or config.option.verbose <= 0:
        return None  # only in -v mode, where every item has its own line
    start = time.perf_counter()
    shown = {"quarter": 0, "what": None}

    def progress(done: int, total: int, what: str) -> None:
        if total <= 0 or time.perf_counter() - start < after:
            return
        quarter = min(4, int(4 * done / total))
        if what != shown["what"]:
            shown.update(what=what, quarter=0)
            tr.write(f" [{what}]")
        if quarter > shown["quarter"]:
            shown["quarter"] = quarter
            tr.write(f" {25 * quarter}%")

    return progress


class LoadErrorItem(pytest.Item):
    """Stands in for the suite when the model or config cannot be loaded."""

    def __init__(self, *, error, **kwargs):
        super().__init__(**kwargs)
        self.error = error

    def runtest(self):
        run_config = self.config.stash[_config_key]
        message = f"{getattr(self.error, 'type_name', type(self.error).__name__)}: {self.error}"
        data = {"check": "load_model", "case": run_config.model or "", "family": "setup",
                "status": "error", "measured": None, "tolerance": None, "unit": "", "n_calls": 0,
                "message": message, "details": {}, "order": -1}
        self.user_properties.append((RESULT_KEY, data))
        raise ConformanceFailure(_Plain(message))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ConformanceFailure):
            return f"could not set up the conformance run\n{excinfo.value.result.message}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, "mlip-conformance: load_model"


class _Plain:
    def __init__(self, message):
        self.message = message


class AuditRecorder:
    """Hooks of the controller's account: the selected items, each result as its
    report arrives (also from xdist workers), and the final report."""

    def __init__(self, config):
        self.config = config

    def _ledger(self):
        return self.config.stash.get(_ledger_key, None)

    def pytest_collection_finish(self, session):
        ledger = self._ledger()
        if ledger is not None:
            ledger.select(item.name for item in session.items
                          if isinstance(item, (ConformanceItem, LoadErrorItem)))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        from ..run.accounting import NODE_PREFIX

        ledger = self._ledger()
        if ledger is not None:
            ledger.select(i[len(NODE_PREFIX):] for i in ids if i.startswith(NODE_PREFIX))

    def pytest_runtest_logreport(self, report):
        from ..run.accounting import NODE_PREFIX, crashed_item_result

        ledger = self._ledger()
        if ledger is None or not report.nodeid.startswith(NODE_PREFIX):
            return
        name = report.nodeid[len(NODE_PREFIX):]
        data = next((dict(v) for k, v in getattr(report, "user_properties", ()) if k == RESULT_KEY),
                    None)
        if data is not None:
            ledger.record(name, data)
        elif report.failed:  # no result: its pytest process crashed (xdist), or setup failed
            ledger.record(name, crashed_item_result(name, str(report.longrepr), ledger.fields))

    def pytest_sessionfinish(self, session, exitstatus):
        from ..run.accounting import not_run_reason

        ledger = self._ledger()
        if ledger is None:
            return
        stopped = session.shouldstop or session.shouldfail
        own = _session(self.config)
        if not isinstance(own, Exception) and own.worker is not None and own.worker.starts:
            from ..run.isolation import describe_isolation

            ledger.metadata["isolation"] = describe_isolation(own.worker)
        reason = not_run_reason(int(exitstatus), stopped if isinstance(stopped, str) else None)
        self.config.stash[_final_key] = ledger.finish(reason)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    run_config = config.stash.get(_config_key, None)
    final = config.stash.get(_final_key, None)
    if run_config is None or not run_config.model or final is None:
        return
    from ..reporting.report import format_table

    report, written, error = final
    results = report.results
    if not results:
        return
    tr = terminalreporter
    tr.section("mlip-conformance summary")
    width = 100  # readable on a 100-column terminal; CI logs are wider
    tr.write_line(_family_table(report))
    shown = results
    if config.option.verbose <= 0 and len(results) > SHOW_ALL_UP_TO:
        shown = [r for r in results if r.outcome != "passed" or r.findings]
        tr.write_line(f"\n{len(results) - len(shown)} passed items not listed (-v lists every item; "
                      "--mlip-report writes them all)")
    if shown:
        tr.write_line("")
        tr.write_line(format_table(shown, width=width))
        for r in shown:
            if r.status in ("skipped", "not run"):  # the reason in full: it says what to do
                tr.write_line(f"{r.status} {r.check}[{r.case}]: {r.message.splitlines()[0]}")
            for finding in r.findings:  # reported, not failed
                tr.write_line(f"finding {r.check}[{r.case}]: {finding}")
    tr.write_line("")
    bad = not report.passed
    tr.write_line(f"{report.verdict()} ({run_config.model})", red=bad, green=not bad, bold=True)
    ledger = config.stash.get(_ledger_key, None)
    if ledger is not None and ledger.journal_error:
        tr.write_line(f"mlip-conformance: {ledger.journal_error}", red=True)
    if written is not None:
        tr.write_line(f"mlip-conformance report written to {written}")
    if error is not None:
        tr.write_line(f"mlip-conformance: {error}", red=True)


SHOW_ALL_UP_TO = 40  # items; longer runs list only what did not pass unless -v


def _family_table(report) -> str:
    """Outcome counts per family, as a small fixed-width table."""
    table = report.summary()
    cols = [c for c in table.columns if table[c].sum() > 0] or ["passed"]
    head = "family        " + "".join(f"{c:>9}" for c in cols)
    lines = [head, "-" * len(head)]
    for family, counts in table.iterrows():
        lines.append(f"{family:<14}" + "".join(f"{int(counts[c]):>9}" for c in cols))
    return "\n".join(lines)


def _base_metadata(run_config, session) -> dict:
    """Report metadata of the run: the session's, or what is known without a model."""
    import datetime
    import platform
    import sys

    from .. import __version__

    if hasattr(session, "manifest"):  # opened in the model worker
        md = dict(session.manifest.metadata)
    elif not isinstance(session, Exception):
        from ..run.session import metadata

        md = metadata(session)
    else:
        md = {"model": run_config.model, "species": list(run_config.species),
              "precision": run_config.precision or "float64", "seed": run_config.seed,
              "versions": {"mlip-conformance": __version__, "python": sys.version.split()[0]},
              "machine_info": {"node": platform.node(), "machine": platform.machine()},
              "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    md["model"] = run_config.model
    md["version"] = __version__
    md["isolation"] = {"isolated": bool(run_config.isolate)}  # counts: serial runs, at the end
    return md
