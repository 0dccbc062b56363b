"""The audit card: a report rendered as Markdown or as one self-contained HTML file."""

from __future__ import annotations

import html

from .report import fmt_value
from .result import STATUSES


def _summary_rows(report) -> list[tuple[str, dict]]:
    fams: dict[str, dict] = {}
    for r in report.results:
        fams.setdefault(r.family, {s: 0 for s in STATUSES})[r.status] += 1
    return sorted(fams.items())


def markdown_card(report) -> str:
    """Markdown audit card: header, summary per family, one row per item."""
    md = report.metadata
    lines = [f"# Conformance audit: `{md.get('model', '?')}`", ""]
    lines.append(f"- species: {', '.join(md.get('species', []))}")
    lines.append(f"- precision: {md.get('precision', '?')}, seed: {md.get('seed', '?')}")
    versions = md.get("versions", {})
    if versions:
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines.append(f"- date: {md.get('datetime', '?')}")
    lines += ["", "## Summary", "", "| family | " + " | ".join(STATUSES) + " |",
              "|---|" + "---|" * len(STATUSES)]
    for fam, counts in _summary_rows(report):
        lines.append(f"| {fam} | " + " | ".join(str(counts[s]) for s in STATUSES) + " |")
    lines += ["", "## Results", "", "| check | case | status | measured | tolerance | unit | calls |",
              "|---|---|---|---|---|---|---|"]
    for r in report.results:
        lines.append(f"| {r.check} | {r.case} | {r.status} | {fmt_value(r.measured)} | "
                     f"{fmt_value(r.tolerance)} | {r.unit} | {r.n_calls} |")
    bad = [r for r in report.results if not r.ok]
    if bad:
        lines += ["", "## Findings", ""]
        for r in bad:
            lines += [f"### {r.check}[{r.case}] — {r.status}", "", "```", r.message, "```", ""]
    return "\n".join(lines) + "\n"


def html_card(report) -> str:
    """Self-contained HTML audit card (no external resources)."""
    body = html.escape(markdown_card(report))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Conformance audit</title>"
            f"</head><body><pre>{body}</pre></body></html>")
