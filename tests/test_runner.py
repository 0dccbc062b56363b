"""A failing model is a finding, not a crash: errors, NaN, timeouts, skips."""

import time

from ase.calculators.emt import EMT

from conformance import audit
from conformance.core.model import Model, ModelError, MissingProperty
from tests.zoo.base import SmoothPair
from tests.zoo.faulty import Hangs, NoStress, Raising, ReturnsNaN, WrongShape


def test_raising_model_gives_error_results_and_the_run_finishes():
    report = audit(Raising(), species=["Cu"], checks=["rotation_invariance", "large_offset"])
    assert len(report) == 14
    assert set(report.df["status"]) == {"error"}
    msg = report.results[0].message
    assert msg.startswith("model error: model raised RuntimeError: CUDA out of memory (simulated)")


def test_nan_forces_are_an_error_naming_the_property():
    report = audit(ReturnsNaN(), species=["Cu"], checks=["translation_invariance"])
    assert set(report.df["status"]) == {"error"}
    assert "non-finite forces (NaN or inf) (1 of" in report.results[0].message


def test_wrong_shape_is_an_error():
    report = audit(WrongShape(), species=["Cu"], checks=["large_offset"])
    assert set(report.df["status"]) == {"error"}
    assert "forces has shape (1, 3), expected (2, 3)" in report.results[0].message


def test_timeout_is_an_error_and_the_run_goes_on():
    t0 = time.perf_counter()
    report = audit(Hangs(), species=["Cu"], checks=["large_offset"], timeout=0.5,
                   structure_kinds=["dimer", "bulk"])
    assert time.perf_counter() - t0 < 10
    status = dict(zip(report.df["case"], report.df["status"]))
    assert status == {"dimer_Cu2": "passed", "bulk_Cu_fcc": "error"}
    assert "exceeded the time limit of 0.5 s" in report["large_offset[bulk_Cu_fcc]"].message


def test_model_without_stress_still_checks_energy_and_forces():
    report = audit(NoStress(), species=["Cu"], checks=["rotation_invariance"])
    assert report.passed
    fields = report["rotation_invariance[bulk_Cu_fcc]"].message
    assert "Δσ" not in fields and "ΔF" in fields


def test_evaluate_does_not_touch_input_and_counts_calls():
    from ase.build import bulk

    atoms = bulk("Cu", cubic=True)
    before = atoms.positions.copy()
    model = Model(EMT())
    out = model.evaluate(atoms, ("energy", "forces", "stress"))
    assert atoms.calc is None and (atoms.positions == before).all()
    assert out["forces"].shape == (4, 3) and out["stress"].shape == (6,)
    assert model.n_calls == 1 and model.calc_seconds > 0


def test_missing_property_raises_missing_property():
    from ase.build import molecule

    model = Model(SmoothPair())
    try:
        model.evaluate(molecule("H2O"), ("energy", "stress"))
    except MissingProperty as exc:
        assert "stress" in str(exc)
    else:
        raise AssertionError("expected MissingProperty")


def test_model_error_class_is_runtime_error():
    assert issubclass(ModelError, RuntimeError)
