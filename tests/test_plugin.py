"""The pytest plugin, tested with pytester in fresh directories (subprocesses)."""

import json
import textwrap

import ase.io  # noqa: F401  (imported before pytester's snapshot of sys.modules: numpy loads once)
import pytest
from tests.conftest import n_model_checks

FAST = ["--mlip-checks=rotation_invariance,supercell_consistency", "-p", "no:cacheprovider"]

MODELS = textwrap.dedent("""
    from ase.calculators.calculator import Calculator, all_changes
    from ase.calculators.emt import EMT

    class Raising(Calculator):
        implemented_properties = ["energy", "forces"]
        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            raise RuntimeError("simulated model crash")

    def make_emt():
        calc = EMT()
        calc.species = ["Cu"]
        return calc
""")


def run(pytester, *args):
    return pytester.runpytest_subprocess(*args)


def test_help_lists_every_option_with_metavar(pytester):
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines([
        "*machine-learned potential conformance audit*",
        "*--mlip-model=SPEC*",
        "*--mlip-species=LIST*",
        "*--mlip-precision=DTYPE*",
        "*--mlip-report=PATH*",
        "*--mlip-seed=INT*",
        "*--mlip-isolate=yes|no*",
        "*run the model in a worker process, so that a crash, an*",
        "*--mlip-memory-limit=GB*",
        "*--mlip-md-long*",
        "*--mlip-resume*resume an interrupted audit from its journal*",
    ])


def test_empty_directory_collects_and_passes_with_json_report(pytester):
    result = run(pytester, "--mlip-model=ase:EMT", "--mlip-species=Cu", *FAST, "--mlip-report=r.json")
    result.assert_outcomes(passed=11)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*mlip-conformance: model=ase:EMT species=Cu*seed=0*",
                                 "*mlip-conformance summary*",
                                 "family*passed",
                                 "symmetry*11",
                                 "rotation_invariance*bulk_Cu_fcc*passed*max |Δσ|*eV/Å³*",
                                 f"CONFORMANT: 11 passed, 0 skipped — PARTIAL: {n_model_checks() - 2} of {n_model_checks()} model checks not run (families conservation, "
                                 "dynamics, hygiene, locality, smoothness) (ase:EMT)"])
    data = json.loads((pytester.path / "r.json").read_text())
    assert {"model", "versions", "precision", "seed", "datetime", "results", "machine_info"} <= set(data)
    assert data["model"] == "ase:EMT" and data["precision"] == "float64" and data["seed"] == 0
    assert len(data["results"]) == 11
    keys = {"check", "case", "family", "status", "measured", "tolerance", "unit", "n_calls", "message"}
    assert all(keys <= set(r) for r in data["results"])
    assert {r["case"] for r in data["results"] if r["check"] == "supercell_consistency"} == {
        "bulk_Cu_fcc", "slab_Cu_fcc111", "wire_Cu_fcc100", "small_cell_Cu2"}


def test_item_ids_and_k_selection(pytester):
    result = run(pytester, "--mlip-model=ase:EMT", "--mlip-species=Cu", *FAST, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["mlip-conformance::rotation_invariance[[]bulk_Cu_fcc[]]",
                                 "mlip-conformance::supercell_consistency[[]small_cell_Cu2[]]"])
    result = run(pytester, "--mlip-model=ase:EMT", "--mlip-species=Cu", *FAST, "-k", "bulk")
    result.assert_outcomes(passed=2)
    result = run(pytester, "--mlip-model=ase:EMT", "--mlip-species=Cu", "-p", "no:cacheprovider",
                 "--mlip-checks=symmetry", "-k", "inversion_invariance and cluster")
    result.assert_outcomes(passed=1)


def test_skips_carry_their_reason(pytester):
    from ase import Atoms
    from ase.io import write

    write(str(pytester.path / "one.extxyz"), Atoms("Cu", cell=[3, 3, 3], pbc=True))
    result = run(pytester, "--mlip-model=ase:EMT", "--mlip-species=Cu", "--mlip-structures=one.extxyz",
                 "--mlip-structure-kinds=user", "--mlip-checks=permutation_invariance", "-rs",
                 "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*a single atom has no permutation*"])


def test_model_errors_are_findings_and_report_is_written(pytester):
    pytester.makepyfile(mymodels=MODELS)
    result = run(pytester, "--mlip-model=mymodels.py:Raising", "--mlip-species=Cu",
                 "--mlip-checks=large_offset", "--mlip-structure-kinds=dimer,bulk", "--mlip-report=r.json",
                 "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*large_offset[[]dimer_Cu2[]] (symmetry) ERROR*",
                                 "*model raised RuntimeError: simulated model crash*"])
    assert "Traceback" not in result.stdout.str()
    data = json.loads((pytester.path / "r.json").read_text())
    assert [r["status"] for r in data["results"]] == ["error", "error"]


def test_bad_spec_gives_one_clear_failure_and_a_report(pytester):
    result = run(pytester, "--mlip-model=no_such_pkg.models:calc", "--mlip-species=Cu",
                 "--mlip-report=r.json", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*could not set up the conformance run*",
                                 "*SpecError: no_such_pkg.models:calc: module 'no_such_pkg.models' not found*"])
    data = json.loads((pytester.path / "r.json").read_text())
    assert data["results"][0]["check"] == "load_model" and data["results"][0]["status"] == "error"


def test_model_declares_species_factory_from_module(pytester):
    pytester.makepyfile(mymodels=MODELS)
    pytester.syspathinsert()
    result = run(pytester, "--mlip-model=mymodels:make_emt", "--mlip-checks=large_offset",
                 "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)


def test_pyproject_configuration_and_xfail(pytester):
    pytester.makepyprojecttoml(textwrap.dedent("""
        [tool.mlip-conformance]
        model = "tests_zoo_model.py:Aniso"
        species = ["Cu"]
        checks = ["rotation_invariance"]
        structure-kinds = ["dimer", "bulk"]
        [tool.mlip-conformance.xfail]
        "rotation_invariance[bulk_Cu_fcc]" = "known anisotropy, issue 12"
        "rotation_invariance[dimer_Cu2]" = "also known"
    """))
    pytester.makepyfile(tests_zoo_model=textwrap.dedent("""
        import numpy as np
        from ase.calculators.emt import EMT
        class Aniso(EMT):
            def calculate(self, atoms=None, properties=("energy",), system_changes=None):
                super().calculate(atoms, properties, system_changes or ["positions"])
                self.results["energy"] += 0.1 * self.atoms.positions[:, 0].std()
    """))
    result = run(pytester, "-p", "no:cacheprovider", "-rx")
    result.assert_outcomes(xfailed=2)


def test_unknown_pyproject_key_is_a_usage_error(pytester):
    pytester.makepyprojecttoml('[tool.mlip-conformance]\nmodle = "ase:EMT"\n')
    result = run(pytester, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown key 'modle' (did you mean 'model'?); known keys: model, model-kwargs*"])


@pytest.mark.parametrize("report, match", [
    ("missing_dir/r.json", "*directory*missing_dir does not exist*"),
    ("r.txt", "*unknown format '.txt'; use .json, .md or .html*"),
])
def test_bad_report_path_is_a_usage_error(pytester, report, match):
    result = run(pytester, "--mlip-model=ase:EMT", "--mlip-species=Cu", f"--mlip-report={report}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([match])


def test_runs_beside_the_projects_own_tests(pytester):
    pytester.makepyfile(test_own="def test_own():\n    assert 1 + 1 == 2\n")
    result = run(pytester, "--mlip-model=ase:EMT", "--mlip-species=Cu", "--mlip-checks=large_offset",
                 "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)


def test_explicit_pyargs_form(pytester):
    result = run(pytester, "--pyargs", "conformance.plugin.suite", "--mlip-model=ase:EMT", "--mlip-species=Cu",
                 "--mlip-checks=large_offset", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)


def test_without_model_the_plugin_is_silent(pytester):
    pytester.makepyfile(test_own="def test_own():\n    pass\n")
    result = run(pytester, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "mlip-conformance summary" not in result.stdout.str()
    assert "mlip-conformance: model=" not in result.stdout.str()


def test_xdist_gives_the_same_report(pytester):
    args = ["--mlip-model=ase:EMT", "--mlip-species=Cu", *FAST]
    run(pytester, *args, "--mlip-report=serial.json").assert_outcomes(passed=11)
    result = run(pytester, *args, "-n", "2", "--mlip-report=parallel.json")
    result.assert_outcomes(passed=11)
    serial = json.loads((pytester.path / "serial.json").read_text())["results"]
    parallel = json.loads((pytester.path / "parallel.json").read_text())["results"]
    strip = lambda rs: [{k: r[k] for k in ("check", "case", "status", "measured", "n_calls")} for r in rs]  # noqa: E731
    assert strip(serial) == strip(parallel)
    # time inside the calculator is summed over the workers' items, as the calls are
    meta = [json.loads((pytester.path / f"{name}.json").read_text()) for name in ("serial", "parallel")]
    assert meta[0]["model_calls"] == meta[1]["model_calls"] > 0
    assert meta[1]["calc_seconds"] > 0 and all(r["calc_seconds"] >= 0 for r in parallel)
    assert sum(r["calc_seconds"] for r in parallel) == pytest.approx(meta[1]["calc_seconds"])
    # the controller journals every item the xdist workers ran
    journal = (pytester.path / "parallel.json.journal.jsonl").read_text().splitlines()
    items = sorted(json.loads(line)["item"] for line in journal if line.startswith('{"item"'))
    assert items == sorted(f"{r['check']}[{r['case']}]" for r in parallel) and len(items) == 11


@pytest.mark.parametrize("args, match", [
    (["--mlip-checks=symetry"], "*checks: unknown checks or families [[]'symetry'[]] (did you mean 'symmetry'?)*"),
    (["--mlip-skip=rotaton_invariance"], "*skip: unknown checks or families [[]'rotaton_invariance'[]]*"),
    (["--mlip-species=Xx"], "*unknown chemical symbol 'Xx'*"),
    (["--mlip-train=t.extxyz", "--mlip-model="], "*also give --mlip-model=SPEC*"),
])
def test_configuration_mistakes_fail_at_startup(pytester, args, match):
    base = ["--mlip-model=ase:EMT", "--mlip-species=Cu"]
    result = run(pytester, *base, *args, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([match])


def test_xfail_naming_a_missing_item_is_a_usage_error(pytester):
    pytester.makepyprojecttoml(textwrap.dedent("""
        [tool.mlip-conformance]
        model = "ase:EMT"
        species = ["Cu"]
        [tool.mlip-conformance.xfail]
        "rotation_invariance[bulk_Au_fcc]" = "no such case for Cu"
    """))
    result = run(pytester, "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*xfail declares [[]'rotation_invariance[[]bulk_Au_fcc[]]'[]], but this "
                                 "run has no such item*"])
