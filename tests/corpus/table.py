"""Audit the real-model corpus and write the README's model × family table.

    python -m tests.corpus.table                      # every model whose packages are installed
    python -m tests.corpus.table CHGNet-Si LJ-Ar      # some of them
    python -m tests.corpus.table --out corpus-audit   # JSON reports and table.md there
    python -m tests.corpus.table --readme README.md   # and the README's table

Each model gets the audit a user runs (its corpus entry's species, kinds and
expected findings); one JSON report per model is written as soon as it is done,
then the table: per family the items that ended ok (passed, skipped or an
expected finding) out of all, the wall time and the model calls.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

FAMILIES = ("symmetry", "conservation", "hygiene", "smoothness", "locality", "dynamics")


def corpus_entries() -> list[tuple]:
    """(CorpusModel, packages, options) for the numpy models and the torch ones."""
    from .models import CORPUS
    from .torch_models import TORCH_CORPUS

    return [(m, (), {}) for m in CORPUS] + list(TORCH_CORPUS)


def audit_entry(entry, options: dict) -> tuple[object, list[tuple]]:
    """The report of one corpus model and (family, seconds, calls, ok) per item."""
    from conformance import audit

    rows: list[tuple] = []
    clock = [time.perf_counter()]

    def progress(result):
        now = time.perf_counter()
        rows.append((result.family, now - clock[0], result.n_calls, result.ok, result.outcome))
        clock[0] = now

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = audit(entry.factory(), species=list(entry.species), xfail=dict(entry.expected),
                       progress=progress, **options)
    return report, rows


def family_cells(rows: list[tuple]) -> dict[str, str]:
    """Markdown cell per family: ok/all, wall time, model calls (and what failed)."""
    cells = {}
    for family in FAMILIES:
        mine = [r for r in rows if r[0] == family]
        if not mine:
            cells[family] = "—"
            continue
        ok = sum(r[3] for r in mine)
        xfailed = sum(r[4] == "xfailed" for r in mine)
        seconds, calls = sum(r[1] for r in mine), sum(r[2] for r in mine)
        mark = "" if ok == len(mine) else " ✗"
        extra = f", {xfailed} expected" if xfailed else ""
        cells[family] = f"{ok}/{len(mine)}{mark}{extra} · {seconds:.0f} s · {calls:,} calls"
    return cells


def markdown_table(lines: list[dict]) -> str:
    head = "| model | verdict | " + " | ".join(FAMILIES) + " | total |"
    rule = "|" + "---|" * (len(FAMILIES) + 3)
    body = [f"| {x['model']} | {x['verdict']} | " + " | ".join(x["cells"][f] for f in FAMILIES)
            + f" | {x['seconds']:.0f} s · {x['calls']:,} calls |" for x in lines]
    return "\n".join([head, rule, *body])


def main(argv=None) -> int:
    from .torch_models import available

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="corpus model names (default: all installed)")
    parser.add_argument("--out", default="corpus-audit", help="folder for reports and table.md")
    parser.add_argument("--readme", help="also write the table into this README's corpus-table block")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for entry, packages, options in corpus_entries():
        if args.names and entry.name not in args.names:
            continue
        if not available(*packages):
            print(f"{entry.name}: skipped ({', '.join(packages)} not installed)", flush=True)
            continue
        t0 = time.perf_counter()
        report, rows = audit_entry(entry, options)
        seconds = time.perf_counter() - t0
        report.write(out / f"{entry.name}.json")
        verdict = report.verdict().split(":")[0]
        line = {"model": entry.name, "verdict": verdict, "cells": family_cells(rows),
                "seconds": seconds, "calls": int(report.metadata["model_calls"])}
        lines.append(line)
        (out / f"{entry.name}.row.json").write_text(json.dumps(line))
        print(f"{entry.name}: {report.verdict()} ({seconds:.0f} s)", flush=True)
        for r in report.results:
            if not r.ok or r.findings:
                print(f"  {r.check}[{r.case}] {r.outcome}: {r.message.splitlines()[0][:300]}", flush=True)
    table = markdown_table(lines)
    (out / "table.md").write_text(table + "\n")
    print(table)
    if args.readme:
        update_readme(Path(args.readme), table)
    return 0


def update_readme(path: Path, table: str) -> None:
    """Put ``table`` between the corpus-table markers of the README at ``path``, with
    the date and machine of the run."""
    import datetime
    import os
    import platform

    start, end = "<!-- corpus-table:start -->", "<!-- corpus-table:end -->"
    text = path.read_text(encoding="utf-8")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    when = datetime.date.today().isoformat()
    note = (f"One run of `python -m tests.corpus.table` on {when} ({platform.machine()}, "
            f"{os.cpu_count()} cores, one thread per model). Per family: items ending ok (passed, "
            "skipped or an expected finding) / all, wall time, model calls.")
    path.write_text(f"{head}{start}\n{note}\n\n{table}\n{end}{tail}", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
