"""Nothing lost: the journal, resuming, items not run, the PARTIAL verdict, atomic reports."""

import json
import os

import pytest

from conformance.run.accounting import Ledger, complete_results, crashed_item_result, not_run_reason
from conformance.run.config import ConfigError, build_config
from conformance.run.journal import (Journal, JournalError, fingerprint, journal_path, main, read_journal,
                                 report_from_journal, resume)
from conformance.reporting.report import Report, atomic_write_text, format_table
from conformance.core.result import CheckResult

CONFIG = build_config({"model": "ase:EMT", "species": "Cu", "checks": "net_force", "seed": 0})


def passed(check, case, order=0):
    return CheckResult(check=check, case=case, family="conservation", status="passed", measured=1e-16,
                       tolerance=1e-8, unit="eV/Å", n_calls=1, message="ok").to_dict() | {"order": order}


def test_journal_roundtrip_survives_a_line_cut_short(tmp_path):
    path = tmp_path / "audit.json.journal.jsonl"
    journal = Journal.create(path, fingerprint(CONFIG), {"model": "ase:EMT"})
    journal.append({"selected": ["net_force[dimer_Cu2]", "net_force[bulk_Cu_fcc]"]})
    journal.record_result("net_force[dimer_Cu2]", passed("net_force", "dimer_Cu2"))
    journal.close()
    with open(path, "a") as handle:  # kill -9 in the middle of a line
        handle.write('{"item": "net_force[bulk_Cu_fcc]", "res')
    contents = read_journal(path)
    assert contents.selected == ["net_force[dimer_Cu2]", "net_force[bulk_Cu_fcc]"]
    assert list(contents.results) == ["net_force[dimer_Cu2]"]
    assert contents.unreadable_lines == 1
    again = Journal.reopen(path)  # ends the cut line, then appends
    again.record_result("net_force[bulk_Cu_fcc]", passed("net_force", "bulk_Cu_fcc"))
    again.close()
    contents = read_journal(path)
    assert list(contents.results) == ["net_force[dimer_Cu2]", "net_force[bulk_Cu_fcc]"]
    assert contents.unreadable_lines == 1
    assert sum(1 for line in path.read_text().splitlines() if line.startswith('{"resumed": ')) == 1


def test_journal_path_next_to_the_report_or_under_the_root(tmp_path):
    assert journal_path(str(tmp_path / "out" / "audit.html"), tmp_path) == (
        tmp_path / "out" / "audit.html.journal.jsonl")
    assert journal_path(None, tmp_path) == tmp_path / ".mlip-conformance" / "journal.jsonl"
    Journal.create(journal_path(None, tmp_path), {}, {}).close()
    assert (tmp_path / ".mlip-conformance" / ".gitignore").read_text().endswith("*\n")


def test_resume_refuses_another_runs_journal(tmp_path):
    path = tmp_path / "j.jsonl"
    Journal.create(path, fingerprint(CONFIG), {}).close()
    # what does not change results may differ: report, timeout, isolation, memory limit
    same = CONFIG.replace(report="other.json", timeout=5.0, isolate=False, memory_limit=2.0, resume=True)
    assert resume(path, fingerprint(same)).results == {}
    with pytest.raises(JournalError, match=r"written by another run \(seed: 0 -> 1; species: \['Cu'\] -> "
                                           r"\['Cu', 'Au'\]\); run without --mlip-resume"):
        resume(path, fingerprint(CONFIG.replace(seed=1, species=("Cu", "Au"))))
    (tmp_path / "not.jsonl").write_text('{"hello": 1}\n')
    with pytest.raises(JournalError, match="is not a mlip-conformance journal"):
        read_journal(tmp_path / "not.jsonl")


def test_items_not_run_are_in_the_report_and_the_verdict_is_never_conformant():
    results = {"net_force[dimer_Cu2]": passed("net_force", "dimer_Cu2")}
    selected = ["net_force[dimer_Cu2]", "net_force[bulk_Cu_fcc]", "rotation_invariance[bulk_Cu_fcc]"]
    reason = not_run_reason(2)
    rows = complete_results(results, selected, reason)
    assert [(r.check, r.case, r.status) for r in rows] == [
        ("net_force", "dimer_Cu2", "passed"), ("net_force", "bulk_Cu_fcc", "not run"),
        ("rotation_invariance", "bulk_Cu_fcc", "not run")]
    assert rows[2].family == "symmetry" and rows[2].unit == "eV/Å" and not rows[2].ok
    assert rows[1].message == ("not run: the run was interrupted (Ctrl-C, SIGTERM or a time limit) before "
                               "this item; --mlip-resume runs the missing items")
    report = Report(rows)
    assert not report.passed
    assert report.verdict() == "INCOMPLETE: 1 passed, 0 skipped — PARTIAL: 2 of 3 items not run"
    assert report.counts() == {"passed": 1, "failed": 0, "error": 0, "xfailed": 0, "xpassed": 0,
                               "skipped": 0, "not run": 2}
    assert "not run: the run was interrupted" in format_table(report.results)
    assert "| conservation | 1 | 0 | 0 | 0 | 0 | 0 | 1 |" in report.to_markdown()
    crashed = CheckResult.from_dict(crashed_item_result(
        "net_force[bulk_Cu_fcc]",
        "worker 'gw0' crashed while running 'mlip-conformance::net_force[bulk_Cu_fcc]'"))
    errored = Report([rows[0], crashed, rows[2]])
    assert errored.verdict() == "NOT CONFORMANT: 1 errors — PARTIAL: 1 of 3 items not run"
    assert crashed.message.startswith("the pytest process running this item ended without a result: "
                                      "worker 'gw0' crashed while running")
    assert not_run_reason(1, stopped="stopping after 1 failures") == (
        "not run: pytest stopped early (stopping after 1 failures)")


def test_ledger_journals_each_result_and_writes_the_report_partial_then_final(tmp_path):
    report_path = tmp_path / "audit.json"
    journal = Journal.create(journal_path(str(report_path), tmp_path), fingerprint(CONFIG), {"model": "x"})
    ledger = Ledger({"model": "ase:EMT"}, str(report_path), journal)
    ledger.select(["net_force[dimer_Cu2]", "net_force[bulk_Cu_fcc]"])
    first = json.loads(report_path.read_text())  # written at once: every item not run yet
    assert first["summary"]["not run"] == 2 and first["verdict"].startswith("INCOMPLETE: 0 passed")
    assert first["results"][0]["message"].startswith("not run yet: the run was still going")
    ledger.record("net_force[dimer_Cu2]", passed("net_force", "dimer_Cu2"))
    ledger.record("net_force[dimer_Cu2]", passed("net_force", "dimer_Cu2"))  # teardown report: ignored
    ledger.record("net_force[bulk_Cu_fcc]", dict(passed("net_force", "bulk_Cu_fcc"), resumed=True))
    report, written, error = ledger.finish(not_run_reason(0))
    assert written == report_path and error is None
    assert report.verdict() == "CONFORMANT: 2 passed, 0 skipped"
    data = json.loads(report_path.read_text())
    assert data["resumed_items"] == 1 and data["model_calls"] == 2
    assert data["journal"] == str(journal.path)
    contents = read_journal(journal.path)  # the resumed result was in the journal already
    assert list(contents.results) == ["net_force[dimer_Cu2]"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary file


def test_report_from_journal_command_line(tmp_path, capsys):
    path = tmp_path / "audit.json.journal.jsonl"
    journal = Journal.create(path, fingerprint(CONFIG), {"model": "ase:EMT", "species": ["Cu"]})
    journal.append({"selected": ["net_force[dimer_Cu2]", "net_force[bulk_Cu_fcc]"]})
    journal.record_result("net_force[dimer_Cu2]", passed("net_force", "dimer_Cu2"))
    journal.close()
    assert main([str(path)]) == 1  # not every item ran: not a pass
    out = capsys.readouterr().out
    assert f"report written to {tmp_path / 'audit.json'}" in out
    assert "INCOMPLETE: 1 passed, 0 skipped — PARTIAL: 1 of 2 items not run" in out
    data = json.loads((tmp_path / "audit.json").read_text())
    assert [r["status"] for r in data["results"]] == ["passed", "not run"]
    assert "(report rebuilt from the journal" in data["results"][1]["message"]
    assert report_from_journal(path).metadata["model"] == "ase:EMT"


def test_atomic_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "r.md"
    path.write_text("old")
    os.chmod(tmp_path, 0o755)
    atomic_write_text(path, "new content")
    assert path.read_text() == "new content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.md"]


@pytest.mark.parametrize("values, expected", [
    ({"isolate": "no"}, {"isolate": False}),
    ({"isolate": "yes", "memory_limit": "1.5"}, {"isolate": True, "memory_limit": 1.5}),
    ({"resume": True}, {"resume": True}),
    ({}, {"isolate": None, "memory_limit": None, "resume": False}),
])
def test_isolation_options(values, expected):
    config = build_config(values)
    assert {k: getattr(config, k) for k in expected} == expected


@pytest.mark.parametrize("values, match", [
    ({"isolate": "sometimes"}, "isolate must be yes or no, got 'sometimes'"),
    ({"memory_limit": 0}, "memory_limit must be > 0"),
])
def test_invalid_isolation_options(values, match):
    with pytest.raises(ConfigError, match=match):
        build_config(values)
