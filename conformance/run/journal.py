"""The journal of a pytest run: every finished item, on disk as soon as it finishes.

One JSON object per line, appended, flushed and synced (``fsync``) item by item,
so that ``kill -9``, Ctrl-C or a CI job's time limit loses nothing that ran::

    {"journal": 1, "fingerprint": {...}, "metadata": {...}, "started": "..."}   header
    {"selected": ["rotation_invariance[bulk_Cu_fcc]", ...]}                     the run's items
    {"item": "rotation_invariance[bulk_Cu_fcc]", "result": {...}}               one per finished item
    {"resumed": "2025-01-01T12:00:00+00:00"}                                    a resumed run starts

It lives next to the report (``audit.json.journal.jsonl`` for
``--mlip-report=audit.json``), else in ``.mlip-conformance/journal.jsonl`` under
pytest's root directory. ``--mlip-resume`` reads it back: items already there
are not run again, when the run's :func:`fingerprint` (model, species, seed,
options) is the journal's. ``python -m conformance.run.journal JOURNAL`` writes the
report of an interrupted run from its journal (items not run marked as such).
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JOURNAL_VERSION = 1
JOURNAL_SUFFIX = ".journal.jsonl"
DEFAULT_DIR = ".mlip-conformance"
#: RunConfig fields that do not change any item's result: not part of the fingerprint
NOT_FINGERPRINTED = ("report", "resume", "isolate", "memory_limit", "timeout", "xfail")


class JournalError(ValueError):
    """A journal that cannot be resumed (another run's, or not a journal)."""


def journal_path(report: str | None, rootdir: str | os.PathLike) -> Path:
    """Where the journal of a run goes: next to the report, else under ``rootdir``."""
    if report:
        report_path = Path(report)
        return report_path.with_name(report_path.name + JOURNAL_SUFFIX)
    return Path(rootdir) / DEFAULT_DIR / "journal.jsonl"


def _file_stamp(path: str | None) -> list | None:
    """(size, modification time) of a data or structure file: changed file, other run."""
    if not path:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def fingerprint(config) -> dict[str, Any]:
    """What makes two runs' items comparable: every option that can change a result
    (model and its arguments, species, seed, cases, checks, tolerances, MD...),
    the input files' size and time, and the suite's version."""
    import dataclasses

    from .. import __version__

    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
              if f.name not in NOT_FINGERPRINTED}
    values["files"] = {key: _file_stamp(getattr(config, key)) for key in ("structures", "train", "test")}
    values["mlip_conformance"] = __version__
    return json.loads(json.dumps(values, sort_keys=True, default=list))


def fingerprint_differences(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for every key whose value differs."""
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


@dataclass
class JournalContents:
    """What a journal holds: its header, the run's items and the finished results."""

    header: dict
    selected: list = field(default_factory=list)
    results: dict = field(default_factory=dict)   # item name -> result dict
    unreadable_lines: int = 0


def read_journal(path: str | os.PathLike) -> JournalContents:
    """Read a journal; a line cut short by a kill is counted, not fatal.

    Raises
    ------
    JournalError
        The file is not a journal (no header line).
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records, unreadable = [], 0
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            unreadable += 1
    if not records or records[0].get("journal") != JOURNAL_VERSION:
        raise JournalError(f"{path} is not a mlip-conformance journal (version {JOURNAL_VERSION})")
    contents = JournalContents(header=records[0], unreadable_lines=unreadable)
    for record in records[1:]:
        if "item" in record:
            contents.results[record["item"]] = record["result"]
        elif "selected" in record:
            contents.selected = list(record["selected"])
    return contents


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Journal:
    """An open journal, appended to line by line (each line flushed and synced)."""

    def __init__(self, path: Path, handle):
        self.path = path
        self._handle = handle

    @classmethod
    def create(cls, path: str | os.PathLike, fingerprint: dict, metadata: dict) -> "Journal":
        """Start a new journal at ``path`` (replacing any), with its header line."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent.name == DEFAULT_DIR and not (path.parent / ".gitignore").exists():
            (path.parent / ".gitignore").write_text("# created by mlip-conformance\n*\n")
        journal = cls(path, open(path, "w", encoding="utf-8"))
        journal.append({"journal": JOURNAL_VERSION, "fingerprint": fingerprint,
                        "metadata": metadata, "started": now()})
        return journal

    @classmethod
    def reopen(cls, path: str | os.PathLike) -> "Journal":
        """Append to an existing journal (a resumed run)."""
        path = Path(path)
        with open(path, "rb+") as handle:  # a line cut short by a kill: end it
            size = handle.seek(0, os.SEEK_END)
            if size:
                handle.seek(size - 1)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")
        journal = cls(path, open(path, "a", encoding="utf-8"))
        journal.append({"resumed": now()})
        return journal

    def append(self, record: dict) -> None:
        """One JSON line, on disk when this returns."""
        self._handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def record_result(self, name: str, result: dict) -> None:
        self.append({"item": name, "result": result})

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()


def resume(path: str | os.PathLike, expected: dict) -> JournalContents:
    """The journal at ``path`` when it belongs to a run with fingerprint ``expected``.

    Raises
    ------
    JournalError
        It was written by another run (the message lists what differs), or is no journal.
    """
    contents = read_journal(path)
    differences = fingerprint_differences(contents.header.get("fingerprint", {}), expected)
    if differences:
        raise JournalError(f"the journal {path} was written by another run ({'; '.join(differences)}); "
                           "run without --mlip-resume to start afresh, or with the same options")
    return contents


def report_from_journal(path: str | os.PathLike, reason: str | None = None):
    """The :class:`~conformance.reporting.report.Report` of the run a journal records: its
    finished items, and every other selected item as ``not run``."""
    from .accounting import complete_results
    from ..reporting.report import Report

    contents = read_journal(path)
    reason = reason or (f"not run: the run ended before this item (report rebuilt from the journal "
                        f"{path}; --mlip-resume runs the missing items)")
    results = complete_results(contents.results, contents.selected or list(contents.results), reason)
    metadata = dict(contents.header.get("metadata", {}))
    metadata["journal"] = str(path)
    metadata["model_calls"] = sum(r.n_calls for r in results)
    metadata["calc_seconds"] = sum(r.calc_seconds for r in results)
    return Report(results, metadata)


def main(argv=None) -> int:
    """``python -m conformance.run.journal JOURNAL [-o REPORT]``: the report of a journal."""
    import argparse

    parser = argparse.ArgumentParser(description="Write the report of a (possibly interrupted) "
                                                 "mlip-conformance run from its journal.")
    parser.add_argument("journal", help="the journal, e.g. audit.json.journal.jsonl")
    parser.add_argument("-o", "--output", help="report to write (.json, .md, .html); default: the "
                                               "journal's report path (audit.json for audit.json"
                                               f"{JOURNAL_SUFFIX})")
    args = parser.parse_args(argv)
    report = report_from_journal(args.journal)
    output = args.output
    if output is None and args.journal.endswith(JOURNAL_SUFFIX):
        output = args.journal[: -len(JOURNAL_SUFFIX)]
    if output:
        report.write(output)
        print(f"report written to {output}")
    print(report.verdict())
    return 0 if report.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
