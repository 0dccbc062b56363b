"""Configuration validation, the Report object, and parametrize_checks."""

import json

import pytest
from ase.calculators.emt import EMT

from conformance import audit, parametrize_checks
from conformance.run.config import ConfigError, build_config, read_pyproject
from conformance.reporting.report import Report, format_table
from conformance.core.tolerances import Tolerances
from tests.conftest import n_model_checks


def test_cli_values_override_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.mlip-conformance]\nmodel = "ase:EMT"\nspecies = ["Cu"]\nseed = 3\n'
        '[tool.mlip-conformance.tolerances]\nforce_atol = 1e-6\n'
        '[tool.mlip-conformance.tolerances.rotation_invariance]\nforce_atol = 1e-4\n')
    file_values = read_pyproject(tmp_path / "pyproject.toml")
    config = build_config({"species": "Cu,Ni", "precision": "float32"}, file_values)
    assert config.model == "ase:EMT" and config.species == ("Cu", "Ni") and config.seed == 3
    tol = config.make_tolerances("float32")
    assert tol["force_atol"] == 1e-6
    assert tol.for_check("rotation_invariance")["force_atol"] == 1e-4
    assert tol.for_check("large_offset")["force_atol"] == 1e-6
    assert tol["energy_atol"] == 2e-5  # float32 default


@pytest.mark.parametrize("values, match", [
    ({"precision": "float16"}, "precision must be one of float64, float32"),
    ({"seed": "abc"}, "invalid value for seed"),
    ({"examples": 0}, "examples must be a positive integer"),
    ({"model_kwargs": "[1, 2]"}, "model-kwargs must be a JSON object"),
    ({"model_kwargs": "{bad json"}, "invalid value for model_kwargs"),
    ({"tolerances": {"forse_atol": 1}}, "unknown tolerance 'forse_atol'"),
    ({"timeout": -1}, "timeout must be > 0"),
    ({"colour": "red"}, "unknown key 'colour'"),
])
def test_invalid_values_name_the_problem(values, match):
    with pytest.raises(ConfigError, match=match):
        build_config(values)


def test_invalid_toml_is_a_config_error(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.mlip-conformance\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        read_pyproject(tmp_path / "pyproject.toml")


def test_tolerances_table_has_reasons_and_both_precisions():
    from conformance.core.tolerances import TABLE, markdown_table

    for row in TABLE.values():
        assert row.reason and row.float32 >= row.float64 >= 0
    assert "| `force_atol` | eV/Å | 1e-08 | 2e-05 |" in markdown_table()
    with pytest.raises(KeyError, match="unknown tolerance"):
        Tolerances("float64")["nope"]


def test_report_dataframe_json_roundtrip_and_table_width(tmp_path):
    report = audit(EMT(), species=["Cu"], checks=["large_offset", "supercell_consistency"])
    df = report.df
    assert list(df.columns[:10]) == ["check", "case", "family", "status", "quantity", "measured",
                                     "tolerance", "unit", "n_calls", "message"]
    assert len(df) == 11 and report.passed
    assert report.summary().loc["symmetry", "passed"] == 11
    path = report.write(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["model"] == "EMT" and data["precision"] == "float64" and len(data["results"]) == 11
    again = Report.from_json(path)
    assert [r.check for r in again.results] == [r.check for r in report.results]
    assert max(len(line) for line in format_table(report.results, width=60).splitlines()) <= 60
    md = report.write(tmp_path / "r.md").read_text()
    assert "| symmetry | 11 | 0 | 0 | 0 |" in md
    with pytest.raises(ValueError, match="unknown format '.csv'"):
        report.write(tmp_path / "r.csv")


def test_audit_accepts_a_spec_string():
    report = audit("ase:EMT", species=["Cu"], checks=["large_offset"], structure_kinds=["dimer"])
    assert len(report) == 1 and report.metadata["model"] == "ase:EMT"


def test_unknown_check_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown checks or families \\['rotation'\\]"):
        audit(EMT(), species=["Cu"], checks=["rotation"])


def test_no_species_is_a_clear_error():
    with pytest.raises(ConfigError, match="declares no species: pass --mlip-species"):
        audit(EMT(), checks=["large_offset"])


@parametrize_checks(EMT(), species=["Cu"], checks=["large_offset"], structure_kinds=["dimer", "bulk"])
def test_parametrize_checks_in_a_users_test_file(conformance_check, request):
    assert request.node.callspec.id in ("large_offset[dimer_Cu2]", "large_offset[bulk_Cu_fcc]")
    result = conformance_check()
    assert result.status == "passed"


def test_readme_options_catalogue_and_tolerances_are_up_to_date():
    from pathlib import Path

    from conformance.core.registry import all_checks
    from conformance.run.options import render_readme

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert readme == render_readme(readme), "run: python -m conformance.run.options --update README.md"
    for name in all_checks():   # in the generated catalogue: a new check needs no prose here
        assert f"| `{name}` |" in readme, f"README's catalogue has no row for {name}"


def test_every_family_page_lists_its_checks_from_the_registry():
    from pathlib import Path

    from conformance.core.registry import all_checks
    from conformance.reporting.catalogue import family_pages

    pages = family_pages(Path(__file__).parents[1] / "docs" / "checks")
    assert {p.stem for p in pages} == {c.family for c in all_checks().values()}
    for path, text in pages.items():
        assert path.read_text(encoding="utf-8") == text, \
            "run: python -m conformance.run.options --update README.md"
        assert all(f"`{c.name}`" in text for c in all_checks().values() if c.family == path.stem)


def test_known_failures_and_partial_runs_in_the_verdict():
    from tests.zoo.symmetry import Anisotropic

    report = audit(Anisotropic(), species=["Cu"], checks=["rotation_invariance"],
                   structure_kinds=["dimer", "bulk"],
                   xfail={"rotation_invariance[bulk_Cu_fcc]": "known anisotropy"})
    bulk, dimer = report["rotation_invariance[bulk_Cu_fcc]"], report["rotation_invariance[dimer_Cu2]"]
    assert bulk.outcome == "xfailed" and bulk.xfail == "known anisotropy" and bulk.ok
    assert dimer.outcome == "failed" and not report.passed
    n = n_model_checks()
    assert report.verdict().startswith(f"NOT CONFORMANT: 1 failed — PARTIAL: {n - 1} of {n} model checks not run (families conservation")
    everything = audit(Anisotropic(), species=["Cu"], checks=["rotation_invariance"],
                       structure_kinds=["dimer", "bulk"], xfail={"rotation_invariance": "known"})
    assert everything.passed
    assert "CONFORMANT: 0 passed, 0 skipped, 2 known failures (declared xfail)" in everything.verdict()
    stale = audit(EMT(), species=["Cu"], checks=["net_force"], structure_kinds=["bulk"],
                  xfail={"net_force": "was broken"})
    assert stale["net_force[bulk_Cu_fcc]"].outcome == "xpassed" and not stale.passed
    assert "declared known failures now pass" in stale.verdict()
    assert stale.to_dict()["summary"]["xpassed"] == 1
