"""Results -> DataFrame -> terminal table, JSON, Markdown (and HTML, see html.py).

The JSON report is shaped like pytest-benchmark's::

    {"model", "species", "precision", "seed", "versions", "machine_info",
     "datetime", "version", "tolerances", "summary", "results": [...]}

with one object per (check, case) item in ``results`` holding the
:class:`~conformance.result.CheckResult` fields (check, case, family, status,
measured, tolerance, unit, n_calls, message, details).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from .result import STATUSES, CheckResult

COLUMNS = ["check", "case", "family", "status", "measured", "tolerance", "unit", "n_calls", "message"]
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
        """Counts of passed/failed/skipped/error per family."""
        df = self.df
        if df.empty:
            return pd.DataFrame(columns=list(STATUSES))
        table = pd.crosstab(df["family"], df["status"])
        return table.reindex(columns=list(STATUSES), fill_value=0)

    def __getitem__(self, key: str) -> CheckResult:
        """``report["rotation_invariance[bulk_Cu_fcc]"]``."""
        for r in self.results:
            if f"{r.check}[{r.case}]" == key:
                return r
        raise KeyError(key)

    def __len__(self) -> int:
        return len(self.results)

    def __repr__(self) -> str:
        counts = {s: sum(r.status == s for r in self.results) for s in STATUSES}
        head = f"Report({self.metadata.get('model', '?')}: " + ", ".join(
            f"{n} {s}" for s, n in counts.items() if n) + ")"
        return head + "\n" + format_table(self.results)

    def to_dict(self) -> dict:
        from . import __version__

        md = dict(self.metadata)
        md.setdefault("version", __version__)
        md["report_version"] = REPORT_VERSION
        md["summary"] = {s: sum(r.status == s for r in self.results) for s in STATUSES}
        md["results"] = [r.to_dict() for r in self.results]
        return md

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=1, ensure_ascii=False, allow_nan=False)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_markdown(self) -> str:
        from .card import markdown_card

        return markdown_card(self)

    def write(self, path: str | Path) -> Path:
        """Write the report; the format follows the suffix (.json, .md, .html)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            self.to_json(path)
        elif suffix in (".md", ".markdown"):
            path.write_text(self.to_markdown(), encoding="utf-8")
        elif suffix in (".html", ".htm"):
            from .card import html_card

            path.write_text(html_card(self), encoding="utf-8")
        else:
            raise ValueError(f"report {path}: unknown format {suffix!r}; use .json, .md or .html")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> "Report":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        results = [CheckResult.from_dict(r) for r in data.pop("results")]
        return cls(results, data)


def fmt_value(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3g}"


def format_table(results: Iterable[CheckResult], width: int = 100) -> str:
    """Fixed-width table: check, case, status, measured, tolerance, unit.

    Columns are truncated so that every line fits in ``width`` characters.
    """
    rows = [("check", "case", "status", "measured", "tolerance", "unit")]
    for r in results:
        rows.append((r.check, r.case, r.status.upper() if not r.ok else r.status,
                     fmt_value(r.measured), fmt_value(r.tolerance), r.unit))
    widths = [max(len(str(row[i])) for row in rows) for i in range(6)]
    fixed = sum(widths[2:]) + 2 * 5
    room = max(width - fixed, 20)
    if widths[0] + widths[1] > room:
        widths[0] = min(widths[0], max(room // 2, room - widths[1]))
        widths[1] = room - widths[0]
    lines = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cell = str(cell)
            if len(cell) > widths[i]:
                cell = cell[: widths[i] - 1] + "…"
            cells.append(cell.rjust(widths[i]) if i in (3, 4) else cell.ljust(widths[i]))
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * min(width, max(len(line) for line in lines)))
    return "\n".join(lines)
