"""Results -> DataFrame -> terminal table, JSON, Markdown (and HTML, see html.py).

The JSON report is shaped like pytest-benchmark's::

    {"model", "species", "precision", "seed", "versions", "machine_info",
     "datetime", "version", "tolerances", "summary", "results": [...]}

with one object per (check, case) item in ``results`` holding the
:class:`~conformance.core.result.CheckResult` fields (check, case, family, status,
measured, tolerance, unit, n_calls, message, details).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import pandas as pd

from ..core.result import OUTCOMES, CheckResult
from .units import with_unit

COLUMNS = ["check", "case", "family", "status", "quantity", "measured", "tolerance", "unit", "n_calls",
           "message", "xfail", "severity", "findings"]
REPORT_VERSION = "1"


class Report:
    """Results of a conformance run.

    Attributes
    ----------
    results : list of CheckResult
    metadata : dict
        Model spec, versions, precision, seed, tolerances, ...
    df : pandas.DataFrame
        One row per result, columns :data:`COLUMNS`.
    """

    def __init__(self, results: Iterable[CheckResult], metadata: dict | None = None):
        self.results = list(results)
        self.metadata = dict(metadata or {})

    @property
    def df(self) -> pd.DataFrame:
        rows = [r.to_dict() for r in self.results]
        return pd.DataFrame(rows, columns=COLUMNS + ["details"]) if rows else pd.DataFrame(columns=COLUMNS)

    @property
    def passed(self) -> bool:
        """True when nothing failed or errored."""
        return all(r.ok for r in self.results)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok]

    def summary(self) -> pd.DataFrame:
        """Counts of each outcome (passed, failed, error, xfailed, xpassed,
        skipped) per family."""
        if not self.results:
            return pd.DataFrame(columns=list(OUTCOMES))
        outcomes = pd.DataFrame({"family": [r.family for r in self.results],
                                 "outcome": [r.outcome for r in self.results]})
        table = pd.crosstab(outcomes["family"], outcomes["outcome"])
        return table.reindex(columns=list(OUTCOMES), fill_value=0)

    def counts(self) -> dict[str, int]:
        """Number of items per outcome."""
        return {o: sum(r.outcome == o for r in self.results) for o in OUTCOMES}

    @property
    def families_not_run(self) -> list[str]:
        """Check families that exist but had no item in this run."""
        return list(self.metadata.get("families_not_run", []))

    def verdict(self) -> str:
        """One line: CONFORMANT / NOT CONFORMANT / INCOMPLETE, known failures, partial runs.

        Never CONFORMANT when an item failed, errored or did not run: an item
        ``not run`` (the run was interrupted or stopped early) makes the verdict
        ``INCOMPLETE`` unless something failed, and marks it ``PARTIAL``.
        """
        c = self.counts()
        bad = c["failed"] + c["error"] + c["xpassed"]
        not_run = c["not run"]
        if bad:
            parts = [f"{c['failed']} failed"] if c["failed"] else []
            parts += [f"{c['error']} errors"] if c["error"] else []
            if c["xpassed"]:
                parts.append(f"{c['xpassed']} declared known failures now pass (remove their xfail)")
            text = "NOT CONFORMANT: " + ", ".join(parts)
        else:
            noted = sum(bool(r.findings) for r in self.results if r.outcome == "passed")
            with_findings = f" ({noted} with findings reported, not failed)" if noted else ""
            head = "INCOMPLETE" if not_run else "CONFORMANT"
            text = f"{head}: {c['passed']} passed{with_findings}, {c['skipped']} skipped"
            if c["xfailed"]:
                text += f", {c['xfailed']} known failures (declared xfail)"
        partial = [f"{not_run} of {len(self.results)} items not run"] if not_run else []
        missing = self.metadata.get("checks_not_run", [])
        if missing:
            checks = f"{len(missing)} of {self.metadata.get('n_checks', '?')} model checks not run"
            if self.families_not_run:
                checks += f" (families {', '.join(self.families_not_run)})"
            partial.append(checks)
        if partial:
            text += " — PARTIAL: " + "; ".join(partial)
        return text

    def __getitem__(self, key: str) -> CheckResult:
        """``report["rotation_invariance[bulk_Cu_fcc]"]``."""
        for r in self.results:
            if f"{r.check}[{r.case}]" == key:
                return r
        raise KeyError(key)

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        return f"Report({self.metadata.get('model', '?')}: {self.verdict()})\n" + format_table(self.results)

    def to_dict(self) -> dict:
        from .. import __version__

        md = dict(self.metadata)
        md.setdefault("version", __version__)
        md["report_version"] = REPORT_VERSION
        md["summary"] = self.counts()
        md["verdict"] = self.verdict()
        md["results"] = [r.to_dict() for r in self.results]
        return md

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False)
        if path is not None:
            atomic_write_text(path, text)
        return text

    def to_markdown(self) -> str:
        from .card import markdown_card

        return markdown_card(self)

    def write(self, path: str | Path) -> Path:
        """Write the report; the format follows the suffix (.json, .md, .html).

        Atomically (:func:`atomic_write_text`): a reader, or a run killed while
        writing, sees the previous report or the new one, never half a file.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            self.to_json(path)
        elif suffix in (".md", ".markdown"):
            atomic_write_text(path, self.to_markdown())
        elif suffix in (".html", ".htm"):
            from .card import html_card

            atomic_write_text(path, html_card(self))
        else:
            raise ValueError(f"report {path}: unknown format {suffix!r}; use .json, .md or .html")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> "Report":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        results = [CheckResult.from_dict(r) for r in data.pop("results")]
        return cls(results, data)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder,
    flushed to disk, then renamed over ``path`` (``os.replace`` is atomic)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def format_table(results: Iterable[CheckResult], width: int = 100) -> str:
    """Fixed-width table: check, case, outcome, quantity, measured, tolerance.

    Measured and tolerance carry their unit; skipped and not-run rows show the
    reason in the quantity column. Columns are truncated so that every line fits in
    ``width`` characters.
    """
    rows = [("check", "case", "outcome", "quantity", "measured", "tolerance")]
    for r in results:
        outcome = r.outcome if r.ok else r.outcome.upper()
        quantity = r.quantity if r.status not in ("skipped", "not run") else r.message.split("\n")[0]
        rows.append((r.check, r.case, outcome, quantity, with_unit(r.measured, r.unit),
                     with_unit(r.tolerance, r.unit)))
    widths = [max(len(str(row[i])) for row in rows) for i in range(6)]
    caps = [22, 22, 8, 0, 14, 14]
    room = width - 2 * 5
    caps[3] = max(18, room - sum(min(w, c) for k, (w, c) in enumerate(zip(widths, caps)) if k != 3))
    widths = [min(w, c) for w, c in zip(widths, caps)]
    while sum(widths) > room:  # shrink the widest text column first
        i = max((0, 1, 3), key=lambda k: widths[k])
        widths[i] -= 1
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cell = str(cell)
            if len(cell) > widths[i]:
                cell = cell[: widths[i] - 1] + "…"
            cells.append(cell.rjust(widths[i]) if i in (4, 5) else cell.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * min(width, max(len(line) for line in lines)))
    return "\n".join(lines)
