"""Every selected item accounted for: finished, crashed, or not run, each with its reason.

The pytest plugin's controller (the only process under pytest-xdist that sees
every item) keeps a :class:`Ledger`: the items the run selected, and each
result as its test report arrives. Each result goes to the journal
(:mod:`conformance.run.journal`) at once; the report file is rewritten now and then
while the run goes on, marked PARTIAL; at the end every selected item without a
result becomes ``not run`` with the reason (interrupted, stopped early, a
crashed pytest-xdist worker took it along), so the report's counts are
pytest's and no item is silently missing.
"""

from __future__ import annotations

import time
from typing import Iterable

from ..core.result import CheckResult

#: pytest node id prefix of the conformance items
NODE_PREFIX = "mlip-conformance::"
#: the report file is rewritten during the run at most once per this many seconds...
PARTIAL_MIN_INTERVAL = 0.1
#: ...and spends at most 1/this of the run's time writing
PARTIAL_COST_FACTOR = 20.0


def parse_item_name(name: str) -> tuple[str, str] | None:
    """``("rotation_invariance", "bulk_Cu_fcc")`` for ``rotation_invariance[bulk_Cu_fcc]``.

    >>> parse_item_name("net_force[bulk_Cu_fcc]")
    ('net_force', 'bulk_Cu_fcc')
    >>> parse_item_name("load_model") is None
    True
    """
    if not name.endswith("]") or "[" not in name:
        return None
    check, case = name[:-1].split("[", 1)
    return check, case


def _item_fields(name: str, known: dict | None = None) -> dict:
    """check, case, family, unit and severity of an item: from ``known`` (name ->
    fields, e.g. from the model worker's manifest), else from the registry."""
    if known and name in known:
        return dict(known[name])
    from ..core.registry import all_checks

    parsed = parse_item_name(name)
    check, case = parsed if parsed else (name, "")
    spec = all_checks().get(check)
    if spec is None:
        return dict(check=check, case=case, family="setup")
    return dict(check=check, case=case, family=spec.family, unit=spec.unit, severity=spec.severity)


def not_run_result(name: str, reason: str, known: dict | None = None) -> CheckResult:
    """The ``not run`` result of a selected item that never finished."""
    return CheckResult(status="not run", message=reason, **_item_fields(name, known))


def crashed_item_result(name: str, text: str, known: dict | None = None) -> dict:
    """The ``error`` result (as a dict) of an item whose pytest report carries no
    result: the pytest process running it crashed (a pytest-xdist worker, with
    isolation off) or pytest failed it outside the check (setup)."""
    first = (text or "no detail").strip().splitlines()
    detail = first[-1] if first else "no detail"
    message = (f"the pytest process running this item ended without a result: {detail}\n"
               "(with --mlip-isolate=no a crashing model takes its pytest process along; the default "
               "--mlip-isolate=yes runs the model in a worker process and names the crash)")
    return CheckResult(status="error", message=message, **_item_fields(name, known)).to_dict()


def complete_results(results: dict, selected: Iterable[str], reason: str,
                     known: dict | None = None) -> list[CheckResult]:
    """A result for every selected item, in the run's order: the finished ones,
    and ``not run`` (with ``reason``) for the rest; finished items that were not
    in ``selected`` (e.g. the model could not be loaded) come last. ``known``:
    item name -> check, case, family, unit, severity (default: the registry)."""
    selected = list(dict.fromkeys(selected))
    out = [CheckResult.from_dict(results[name]) if name in results
           else not_run_result(name, reason, known) for name in selected]
    extra = [results[name] for name in results if name not in set(selected)]
    out += [CheckResult.from_dict(d) for d in sorted(extra, key=lambda d: d.get("order", 0))]
    return out


def not_run_reason(exitstatus: int, stopped: str | None = None, running: bool = False) -> str:
    """Why a selected item has no result when a report is written."""
    if running:
        return ("not run yet: the run was still going when this report was written (if it was "
                "interrupted, --mlip-resume runs the missing items)")
    if stopped:
        return f"not run: pytest stopped early ({stopped})"
    if exitstatus == 2:  # pytest.ExitCode.INTERRUPTED
        return ("not run: the run was interrupted (Ctrl-C, SIGTERM or a time limit) before this item; "
                "--mlip-resume runs the missing items")
    return (f"not run: the run ended before this item (pytest exit status {exitstatus}; a crashed "
            "pytest-xdist worker takes its pending items along)")


class Ledger:
    """The controller's account of a pytest run.

    Parameters
    ----------
    metadata : dict
        Report metadata of the run (model, versions, tolerances...).
    report : str or None
        Report path: rewritten (atomically) during the run and at its end.
    journal : Journal or None
        Each new result is appended to it.
    fields : dict, optional
        Item name -> check, case, family, unit, severity of every item of the run.
    """

    def __init__(self, metadata: dict, report: str | None = None, journal=None,
                 fields: dict | None = None):
        self.metadata = dict(metadata)
        self.report = report
        self.journal = journal
        self.fields = dict(fields or {})
        self.selected: list[str] = []
        self.results: dict[str, dict] = {}
        self.resumed = 0
        self.journal_error: str | None = None
        self._last_write = 0.0
        self._write_seconds = 0.0

    def select(self, names: Iterable[str]) -> None:
        """The run's items, in order (first call wins: every xdist worker collects the same)."""
        if self.selected:
            return
        self.selected = list(names)
        self._append({"selected": self.selected})
        self.write_partial(force=True)

    def record(self, name: str, data: dict) -> None:
        """A finished item's result (a repeated one is ignored)."""
        if name in self.results:
            return
        self.results[name] = data
        if data.get("resumed"):
            self.resumed += 1
        else:
            self._append({"item": name, "result": data})
        self.write_partial()

    def _append(self, record: dict) -> None:
        if self.journal is None:
            return
        try:
            self.journal.append(record)
        except (OSError, ValueError) as exc:  # a full disk must not end the audit
            self.journal_error = f"could not write the journal {self.journal.path}: {exc}"
            self.journal = None

    def report_object(self, reason: str):
        """The :class:`~conformance.reporting.report.Report` as it stands (``reason`` for items not run)."""
        from ..reporting.report import Report

        results = complete_results(self.results, self.selected, reason, self.fields)
        metadata = dict(self.metadata)
        metadata["model_calls"] = sum(r.n_calls for r in results)
        metadata["calc_seconds"] = sum(r.calc_seconds for r in results)  # all workers under xdist
        if self.journal is not None:
            metadata["journal"] = str(self.journal.path)
        if self.resumed:
            metadata["resumed_items"] = self.resumed
        return Report(results, metadata)

    def write_partial(self, force: bool = False) -> None:
        """Rewrite the report, marked PARTIAL, if enough time has passed since the
        last write (at most every :data:`PARTIAL_MIN_INTERVAL` s and
        1/:data:`PARTIAL_COST_FACTOR` of the time)."""
        if not self.report:
            return
        now = time.perf_counter()
        interval = max(PARTIAL_MIN_INTERVAL, PARTIAL_COST_FACTOR * self._write_seconds)
        if not force and now - self._last_write < interval:
            return
        try:
            self.report_object(not_run_reason(0, running=True)).write(self.report)
        except OSError:
            pass  # the final write reports the problem
        self._last_write = time.perf_counter()
        self._write_seconds = self._last_write - now

    def finish(self, reason: str):
        """The final report (written when there is a report path); closes the journal.

        Returns
        -------
        (Report, path written or None, error text or None)
        """
        report = self.report_object(reason)
        written, error = None, None
        if self.report:
            try:
                written = report.write(self.report)
            except OSError as exc:
                error = f"could not write report {self.report}: {exc}"
        if self.journal is not None:
            self.journal.close()
        return report, written, error
