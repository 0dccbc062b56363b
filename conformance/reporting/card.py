"""The audit card: a report rendered as Markdown or as one self-contained HTML file.

The HTML card embeds its plots as PNG data URIs and its styles inline, so it
is a single file readable offline (attach it to a paper or a model card).
Plots come from two places:

* an overview of every item's measured/tolerance ratio per family;
* ``details["plots"]`` of any result: a list of plot specifications ::

      {"title": str, "xlabel": str, "ylabel": str,
       "series": [{"x": [...], "y": [...], "label": str, "style": "line"|"scatter"}],
       "vlines": [{"x": float, "label": str}], "hlines": [...],
       "logy": bool, "diagonal": bool}

  (dimer curves with the cutoff marked, NVE energy traces, parity plots,
  Cook's distances, Pareto fronts...). Checks put them there; the card draws
  them with matplotlib (optional: without it the card has tables only).
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

from .units import with_unit
from ..core.result import OUTCOMES

STATUS_COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "skipped": "#8c959f", "error": "#bf8700",
                  "xfailed": "#6f42c1", "xpassed": "#cf222e"}


def _summary_rows(report) -> list[tuple[str, dict]]:
    table = report.summary()
    return [(family, {o: int(row[o]) for o in OUTCOMES}) for family, row in table.iterrows()]


def _tolerance_rows(md) -> list[tuple[str, str, str, str]]:
    """(name, value, unit, reason) of every tolerance, from the metadata and the table."""
    from ..core.tolerances import TABLE

    rows = []
    for name, value in (md.get("tolerances") or {}).items():
        row = TABLE.get(name)
        rows.append((name, f"{value:g}", row.unit if row else "", row.reason if row else ""))
    return rows


def markdown_card(report) -> str:
    """Markdown audit card: header, summary per family, one row per item, findings."""
    md = report.metadata
    lines = [f"# Conformance audit: `{md.get('model', '?')}`", "", f"**{report.verdict()}**", ""]
    lines.append(f"- species: {', '.join(md.get('species', []))}")
    lines.append(f"- precision: {md.get('precision', '?')}, seed: {md.get('seed', '?')}")
    versions = md.get("versions", {})
    if versions:
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines.append(f"- date: {md.get('datetime', '?')}")
    lines += ["", "## Summary", "", "| family | " + " | ".join(OUTCOMES) + " |",
              "|---|" + "---|" * len(OUTCOMES)]
    for fam, counts in _summary_rows(report):
        lines.append(f"| {fam} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    lines += ["", "## Results", "", "| check | case | outcome | quantity | measured | tolerance | calls |",
              "|---|---|---|---|---|---|---|"]
    for r in report.results:
        lines.append(f"| {r.check} | {r.case} | {r.outcome} | {r.quantity} | {with_unit(r.measured, r.unit)} | "
                     f"{with_unit(r.tolerance, r.unit)} | {r.n_calls} |")
    notable = [r for r in report.results if not r.ok or r.outcome == "xfailed"]
    if notable:
        lines += ["", "## Findings", ""]
        for r in notable:
            known = f" (known failure: {r.xfail})" if r.xfail else ""
            lines += [f"### {r.check}[{r.case}] — {r.outcome}{known}", "", "```", r.message, "```", ""]
    rows = _tolerance_rows(md)
    if rows:
        lines += ["", f"## Tolerances ({md.get('precision', '?')})", "", "| name | value | unit |",
                  "|---|---|---|"]
        lines += [f"| {n} | {v} | {u} |" for n, v, u, _ in rows]
    if md.get("tolerance_overrides"):
        lines += ["", f"Overrides from the configuration: `{md['tolerance_overrides']}`"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plots

def _matplotlib_figure():
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover  (matplotlib is optional)
        return None
    return Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")


def _png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_plot(spec: dict[str, Any]) -> str | None:
    """PNG data URI of one plot specification (see module docstring), or None."""
    fig = _matplotlib_figure()
    if fig is None:
        return None
    ax = fig.add_subplot()
    right = None
    colours = iter(["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7"])
    for s in spec.get("series", []):
        x = [math.nan if v is None else v for v in s.get("x", [])]
        y = [math.nan if v is None else v for v in s.get("y", [])]
        target = ax
        if s.get("axis") == "right":  # a second quantity with its own unit
            right = right or ax.twinx()
            right.set_ylabel(spec.get("ylabel_right", ""))
            target = right
        colour = next(colours, None)
        if s.get("style") == "scatter":
            target.scatter(x, y, s=8, label=s.get("label"), color=colour)
        else:
            target.plot(x, y, label=s.get("label"), lw=1.4, color=colour,
                        ls="--" if target is right else "-")
    if spec.get("diagonal"):
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls=":")
    for v in spec.get("vlines", []):
        ax.axvline(v["x"], color="#cf222e", ls="--", lw=1, label=v.get("label"))
    for h in spec.get("hlines", []):
        ax.axhline(h["y"], color="#8c959f", ls="--", lw=1, label=h.get("label"))
    if spec.get("logy"):
        ax.set_yscale("log")
    ax.set_title(spec.get("title", ""), fontsize=10)
    ax.set_xlabel(spec.get("xlabel", ""))
    ax.set_ylabel(spec.get("ylabel", ""))
    if any(s.get("label") for s in spec.get("series", [])) or spec.get("vlines") or spec.get("hlines"):
        handles, labels = ax.get_legend_handles_labels()
        if right is not None:
            h2, l2 = right.get_legend_handles_labels()
            handles, labels = handles + h2, labels + l2
        fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=min(len(labels), 4))
    return _png_uri(fig)


def overview_plot(report) -> str | None:
    """Measured/tolerance ratio of every judged item, per family (log scale)."""
    fig = _matplotlib_figure()
    if fig is None:
        return None
    rows = [r for r in report.results if r.measured is not None and r.tolerance]  # tolerance 0: not drawn
    if not rows:
        return None
    families = sorted({r.family for r in rows})
    ax = fig.add_subplot()
    for k, fam in enumerate(families):
        pts = [r for r in rows if r.family == fam]
        ratios = [max(r.measured / r.tolerance, 1e-12) for r in pts]  # exact zeros drawn at 1e-12
        xs = [k + (i - len(pts) / 2) * 0.6 / max(len(pts), 1) for i in range(len(pts))]
        ax.scatter(xs, ratios, s=14, c=[STATUS_COLOURS[r.status] for r in pts])
    ax.axhline(1.0, color="#cf222e", ls="--", lw=1, label="tolerance")
    ax.set_yscale("log")
    ax.set_xticks(range(len(families)), families)
    ax.set_ylabel("measured / tolerance")
    ax.set_title("Every item against its tolerance (below the line passes; exact zeros at 1e-12;\n"
                 "items held to a zero tolerance are not drawn)", fontsize=9)
    ax.legend(fontsize=8)
    return _png_uri(fig)


# --------------------------------------------------------------------------- html

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#1f2328;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.num{text-align:right;font-family:ui-monospace,monospace}
.verdict{display:inline-block;padding:.4em .9em;border-radius:6px;color:#fff;font-weight:600}
.status{font-weight:600} pre{background:#f6f8fa;padding:.6em;white-space:pre-wrap;word-break:break-word;
font-size:.82em} @media print{details{display:block} details>summary{display:none} img{max-width:80%}}
img{max-width:100%;border:1px solid #d0d7de;margin:.4em 0} .doc{color:#57606a}
details summary{cursor:pointer}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(headers: list[str] | None, rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    out = ["<table>"]
    if headers:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>")
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            cls = " class='num'" if i in numeric else ""
            cells.append(f"<td{cls}>{c}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _status(status: str) -> str:
    return f"<span class='status' style='color:{STATUS_COLOURS.get(status, '#000')}'>{_e(status)}</span>"


def _check_docs() -> dict[str, str]:
    try:
        from ..core.registry import all_checks

        return {name: spec.summary for name, spec in all_checks().items()}
    except Exception:  # pragma: no cover
        return {}


def html_card(report) -> str:
    """Self-contained HTML audit card (inline CSS, plots as PNG data URIs)."""
    md = report.metadata
    docs = _check_docs()
    colour = STATUS_COLOURS["passed" if report.passed else "failed"]
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>Conformance audit: {_e(md.get('model', '?'))}</title><style>{CSS}</style></head><body>",
             f"<h1>Conformance audit: <code>{_e(md.get('model', '?'))}</code></h1>",
             f"<p><span class='verdict' style='background:{colour}'>{_e(report.verdict())}</span></p>"]
    info = [["species", _e(", ".join(md.get("species", [])))],
            ["precision", _e(md.get("precision", "?"))], ["seed", _e(md.get("seed", "?"))],
            ["date", _e(md.get("datetime", "?"))],
            ["model&nbsp;calls", _e(md.get("model_calls", "?"))]]
    if md.get("families_not_run"):
        info.append(["not run", _e(", ".join(md["families_not_run"]))])
    versions = md.get("versions", {})
    if versions:
        info.append(["versions", _e(", ".join(f"{k} {v}" for k, v in versions.items()))])
    machine = md.get("machine_info", {})
    if machine:
        info.append(["machine", _e(", ".join(f"{k}={v}" for k, v in machine.items()))])
    parts.append(_table(None, [[f"<b>{k}</b>", v] for k, v in info]))

    notable = [r for r in report.results if not r.ok or r.outcome == "xfailed"]
    if notable:
        parts.append("<h2>Findings</h2><ul>")
        for r in notable:
            known = f" — known failure: {_e(r.xfail)}" if r.xfail else ""
            head = r.message.split(chr(10))[0]
            parts.append(f"<li><a href='#{_e(r.check)}-{_e(r.case)}'>{_e(r.check)}[{_e(r.case)}]</a> "
                         f"{_status(r.outcome)}{known}: {_e(head)}</li>")
        parts.append("</ul>")

    parts.append("<h2>Summary</h2>")
    rows = [[_e(f)] + [str(c[o]) for o in OUTCOMES] for f, c in _summary_rows(report)]
    parts.append(_table(["family"] + list(OUTCOMES), rows, numeric=set(range(1, len(OUTCOMES) + 1))))
    uri = overview_plot(report)
    if uri:
        parts.append(f"<img alt='measured over tolerance per family' src='{uri}'>")

    by_check: dict[str, list] = {}
    for r in report.results:
        by_check.setdefault(r.check, []).append(r)
    parts.append("<h2>Checks</h2>")
    for check, results in by_check.items():
        fam = results[0].family
        parts.append(f"<h3 id='{_e(check)}'>{_e(check)} <small>({_e(fam)})</small></h3>")
        if docs.get(check):
            parts.append(f"<p class='doc'>{_e(docs[check].replace('``', ''))}</p>")
        rows = [[f"<span id='{_e(check)}-{_e(r.case)}'>{_e(r.case)}</span>", _status(r.outcome),
                 _e(r.quantity), _e(with_unit(r.measured, r.unit)), _e(with_unit(r.tolerance, r.unit)),
                 str(r.n_calls)] for r in results]
        parts.append(_table(["case", "outcome", "quantity", "measured", "tolerance", "calls"], rows,
                            numeric={3, 4, 5}))
        for r in results:
            if not r.ok or r.status in ("skipped", "failed", "error"):
                label = f"{r.case}: {r.outcome}" + (f" (known failure: {r.xfail})" if r.xfail else "")
                parts.append(f"<details{' open' if not r.ok else ''}><summary>{_e(label)}</summary>"
                             f"<pre>{_e(r.message)}</pre></details>")
            for spec in (r.details or {}).get("plots", []) or []:
                uri = render_plot(spec)
                if uri:
                    parts.append(f"<img alt='{_e(spec.get('title', check))}' src='{uri}'>")

    rows = _tolerance_rows(md)
    if rows:
        parts.append(f"<h2>Tolerances ({_e(md.get('precision', '?'))})</h2>")
        parts.append(_table(["name", "value", "unit", "why this size"],
                            [[_e(n), v, _e(u), _e(w)] for n, v, u, w in rows], numeric={1}))
        if md.get("tolerance_overrides"):
            parts.append(f"<p>Overrides from the configuration: <code>{_e(md['tolerance_overrides'])}"
                         "</code></p>")
    parts.append("<p class='doc'>Generated by mlip-conformance. Reading a row: <em>measured</em> "
                 "is the largest violation found of the named <em>quantity</em>; the item passes when "
                 "it is at most <em>tolerance</em>. <em>xfailed</em>: a failure declared as known in "
                 "the configuration.</p></body></html>")
    return "\n".join(parts)
