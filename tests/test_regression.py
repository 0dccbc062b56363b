"""The regression family: --mlip-compare (two implementations of one model) and
--mlip-golden (a model against its own past outputs)."""

import json
from pathlib import Path

import ase.io  # noqa: F401  (imported before pytester's snapshot of sys.modules: numpy loads once)
import numpy as np
import pytest
from ase.calculators.emt import EMT

from conformance import audit
from conformance.core.cases import Case
from conformance.toolkit import differential, golden
from conformance.toolkit.structures import build_cases
from tests.zoo.regression import FastPathTwin, Float32Reference, ScaledEMT

ZOO = Path(__file__).parent / "zoo" / "regression.py"
LJ = {"sigma": 2.3, "epsilon": 0.4, "rc": 6.0, "smooth": True}


def only(report):
    (result,) = report.results
    return result


def fields(result) -> dict:
    """{property: (worst error, its tolerance)} of a regression item."""
    return {p: (d["error"], d["tolerance"]) for p, d in result.details["worst"].items()}


# ------------------------------------------------------------------ the instruments

def test_structures_are_the_cases_plus_rattled_and_strained_variants():
    cases = build_cases(["Cu"], seed=3)
    structures = differential.output_structures(cases, seed=3)
    names = [s.name for s in structures]
    assert names[:4] == ["dimer_Cu2", "dimer_Cu2~rattled", "trimer_Cu3", "trimer_Cu3~rattled"]
    assert "bulk_Cu_fcc~strained" in names and "slab_Cu_fcc111~strained" not in names
    assert len(structures) == 2 * len(cases) + sum(c.atoms.pbc.all() for c in cases)
    again = differential.output_structures(build_cases(["Cu"], seed=3), seed=3)
    assert all(np.array_equal(a.atoms.positions, b.atoms.positions) for a, b in zip(structures, again))
    bulk = next(c for c in cases if c.name == "bulk_Cu_fcc")
    strained = differential.variant(bulk, "strained", 3)
    assert strained.atoms.get_volume() != pytest.approx(bulk.atoms.get_volume(), rel=1e-4)
    rattled = differential.variant(bulk, "rattled", 3)
    shift = np.linalg.norm(rattled.atoms.positions - bulk.atoms.positions, axis=1)
    assert 0.05 < shift.mean() < 0.3


def test_worst_difference_is_the_largest_relative_to_its_tolerance():
    tol = {"energy_atol": 1e-9, "force_atol": 1e-8, "force_rtol": 1e-8, "stress_atol": 1e-10,
           "stress_rtol": 1e-8, "noise_factor": 4.0}
    f = np.zeros((2, 3))
    expected = {"a": {"energy": 1.0, "forces": f + 100.0}, "b": {"energy": 1.0, "forces": f + 1.0}}
    got = {"a": {"energy": 1.0, "forces": f + 100.0 + 1e-7}, "b": {"energy": 1.0, "forces": f + 1.0 + 1e-7}}
    worst = differential.worst_differences(expected, got, tol, {"a": 2, "b": 2})
    # the same absolute error is worse where the forces (and so the tolerance) are small
    assert worst["forces"].structure == "b"
    assert worst["forces"].error == pytest.approx(np.sqrt(3) * 1e-7)
    assert worst["forces"].tolerance == pytest.approx(2e-8)
    assert worst["energy"].error == 0.0


def test_golden_text_reads_back_to_the_bit():
    cases = build_cases(["Cu"], seed=0, kinds=["bulk"])
    rng = np.random.default_rng(0)
    outputs = {"bulk_Cu_fcc": {"energy": float(rng.normal()), "forces": rng.normal(size=(32, 3)),
                               "stress": rng.normal(size=6) * 1e-3}}
    header, structures, back = golden.parse_golden(golden.golden_text({"model": "x"}, cases, outputs))
    assert header["model"] == "x"
    for key in ("energy", "forces", "stress"):
        assert np.array_equal(back["bulk_Cu_fcc"][key], outputs["bulk_Cu_fcc"][key])
    assert np.array_equal(structures[0].atoms.positions, cases[0].atoms.positions)
    assert isinstance(structures[0], Case) and "periodic3" in structures[0].tags
    with pytest.raises(golden.GoldenError, match="not a golden file"):
        golden.parse_golden('{"format": "other"}', "g.json")


# ------------------------------------------------------------------ --mlip-compare

def test_float32_build_of_the_reference_nn_agrees_within_float32_noise():
    import reference_models

    result = only(audit(reference_models.load("nn"), checks=["regression"],
                        compare=Float32Reference("nn")))
    assert result.status == "passed", result.message
    measured = fields(result)
    # a real float32 difference, well inside the float32 tolerance with the noise floor
    assert 1e-7 < measured["forces"][0] < 2e-5 and measured["forces"][1] > 5e-5
    assert 0 < measured["energy"][0] < 1e-5
    assert "judged at float32 with the float32 model's noise floor" in result.message
    assert result.details["compared_model_calls"] == 22 + 4 * 22  # outputs + noise floors


class Float32DeclaredFloat64(Float32Reference):
    """The same float32 build, declared float64: held to the float64 table."""

    precision = "float64"


def test_float32_differences_fail_the_float64_table():
    import reference_models

    result = only(audit(reference_models.load("nn"), checks=["regression"],
                        compare=Float32DeclaredFloat64("nn")))
    assert result.status == "failed"
    assert "judged at float64" in result.message


def test_twin_with_a_faulty_fast_path_on_one_element_is_caught():
    report = audit(EMT(), species=["Cu", "Ni"], checks=["regression"], compare=FastPathTwin())
    result = only(report)
    assert result.check == "compare_outputs" and result.case == "compared_model"
    assert result.status == "failed"
    assert result.measured == pytest.approx(1e-4, rel=1e-9)
    assert "|ΔF| = 0.0001 eV/Å > tolerance" in result.message
    worst = result.details["worst"]["forces"]
    structure = next(s for s in differential.output_structures(
        build_cases(["Cu", "Ni"], 0), 0) if s.name == worst["structure"])
    atom = int(worst["where"].split()[1])
    assert structure.atoms[atom].symbol == "Ni"             # the element of the fast path
    assert result.details["worst"]["energy"]["error"] == 0.0
    assert "structures.find_case(" in result.message       # reproducer


def test_identical_models_pass_and_the_item_runs_only_when_asked():
    result = only(audit(EMT(), species=["Cu", "Ni"], checks=["regression"], compare=EMT()))
    assert result.status == "passed" and result.measured == 0.0
    report = audit(EMT(), species=["Cu"], checks=["regression", "net_force"])
    assert set(report.df["check"]) == {"net_force"}


# ------------------------------------------------------------------ --mlip-golden

def test_golden_file_catches_a_scaled_energy_and_update_accepts_it(tmp_path):
    path = tmp_path / "golden.json"
    first = only(audit(EMT(), species=["Cu"], checks=["regression"], golden=str(path)))
    assert first.status == "passed" and "golden file written" in first.message
    header = json.loads(path.read_text())
    assert header["model_class"] == "ase.calculators.emt.EMT" and header["precision"] == "float64"
    assert set(header["versions"]) >= {"ase", "numpy"}
    assert header["tolerances"]["force_atol"] == 1e-8 and len(header["structures"]) == 16

    same = only(audit(EMT(), species=["Cu"], checks=["regression"], golden=str(path)))
    assert same.status == "passed" and same.measured == 0.0 and same.n_calls == 16

    changed = only(audit(ScaledEMT(), species=["Cu"], checks=["regression"], golden=str(path)))
    assert changed.status == "failed"
    measured = fields(changed)
    assert measured["energy"][0] == pytest.approx(4.51e-6, rel=0.01)  # 1e-6 of a 4.5 eV dimer
    assert measured["forces"][0] > 50 * measured["forces"][1]
    assert "model_class 'ase.calculators.emt.EMT' -> 'tests.zoo.regression.ScaledEMT'" in changed.message
    assert "read_golden(" in changed.message

    update = only(audit(ScaledEMT(), species=["Cu"], checks=["regression"], golden=str(path),
                        golden_update=True))
    assert update.status == "passed" and "rewritten (--mlip-golden-update)" in update.message
    after = only(audit(ScaledEMT(), species=["Cu"], checks=["regression"], golden=str(path)))
    assert after.status == "passed" and after.measured == 0.0


def test_golden_file_catches_a_changed_lennard_jones_epsilon(tmp_path):
    path = str(tmp_path / "lj.json")
    first = only(audit("ase:LennardJones", species=["Cu"], checks=["regression"], golden=path,
                       model_kwargs=LJ))
    assert first.status == "passed"
    changed = only(audit("ase:LennardJones", species=["Cu"], checks=["regression"], golden=path,
                         model_kwargs=dict(LJ, epsilon=0.4 * (1 + 1e-7))))
    assert changed.status == "failed"
    assert "model_kwargs" in changed.message and "'epsilon': 0.4" in changed.message
    assert changed.measured > 3 * changed.tolerance


# ------------------------------------------------------------------ the plugin

def test_plugin_golden_cycle_and_compare(pytester):
    def run(*args):
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--mlip-checks=regression",
                                             "--mlip-species=Cu", *args)

    result = run("--mlip-model=ase:EMT", "--mlip-golden=golden.json")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "golden.json").is_file()
    result = run(f"--mlip-model={ZOO}:ScaledEMT", "--mlip-golden=golden.json", "--mlip-report=r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*golden_outputs[[]golden_file[]]*",
                                 "*|ΔE| = 4.5?e-06 eV > tolerance 2e-09 eV*"])
    data = json.loads((pytester.path / "r.json").read_text())
    assert [(r["check"], r["family"], r["status"]) for r in data["results"]] == [
        ("golden_outputs", "regression", "failed")]
    run(f"--mlip-model={ZOO}:ScaledEMT", "--mlip-golden=golden.json",
        "--mlip-golden-update").assert_outcomes(passed=1)
    run(f"--mlip-model={ZOO}:ScaledEMT", "--mlip-golden=golden.json").assert_outcomes(passed=1)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--mlip-checks=regression",
                                           f"--mlip-model={ZOO}:make_emt_cu_ni",
                                           f"--mlip-compare={ZOO}:FastPathTwin")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*compare_outputs[[]compared_model[]]*",
                                 "*|ΔF| = 0.0001 eV/Å > tolerance*"])


def test_benchmark_tracks_the_reference_models_against_their_committed_golden_files():
    from benchmarks.bench_regression import MODELS, GoldenDifference, golden_path

    assert all(golden_path(m).is_file() for m in MODELS)
    bench = GoldenDifference()
    worst = bench.setup_cache()
    for model in MODELS:
        for prop in ("energy", "forces", "stress"):
            assert bench.track_golden_ratio(worst, model, prop) <= 1.0   # this commit matches them
            assert bench.track_golden_difference(worst, model, prop) >= 0.0
