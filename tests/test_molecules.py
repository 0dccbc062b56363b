"""Molecule cases judged on a correct molecular force field, relaxed with the model first.

``MolecularFF`` (tests/zoo/molecules.py) is exact (forces and stress are the
gradient of its energy), so every family must pass on the G2 molecules built
for C, H, N, O; ``NoWallFF``, the same with a 1000 eV hole below 0.7 r0 (as
ANI-1x's C–H at 0.43 Å), must still be caught by ``dimer_curve`` while its
molecules run MD cleanly: the molecules do not hide what the dimer scan finds.
"""

import numpy as np
import pytest
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from conformance.run.config import build_config
from conformance.core.model import Model
from conformance.toolkit.relax import RELAX_STEPS, find_relaxed_case, relax_cases
from conformance.run.session import open_session
from conformance.toolkit.structures import build_cases, find_case, g2_molecule
from tests.conftest import failed_checks
from tests.zoo.molecules import MolecularFF, NoWallFF

CHNO = ["C", "H", "N", "O"]
#: What the lead's session will pass for molecules: 1000 K (melting points are meaningless for
#: a gas-phase molecule) and a step short enough for the H-H stretch (7.6 fs period).
MOLECULE_MD = dict(md_temperature=1000.0, md_timestep=0.3)


def relaxed_session(calc, species, checks, **options):
    """open_session, then relax the cases as the session will (conformance.toolkit.relax)."""
    session = open_session(build_config(dict(species=species, checks=checks, **options)), calc)
    log = []
    cases = {c.name: c for c in relax_cases(session.model, session.cases, seed=session.config.seed, log=log)}
    session.cases = list(cases.values())
    session.items = [(spec, cases[case.name]) for spec, case in session.items]
    return session, log


def max_force(calc, atoms):
    atoms = atoms.copy()
    atoms.calc = calc
    return float(np.linalg.norm(atoms.get_forces(), axis=1).max())


def test_molecular_ff_forces_and_stress_are_its_gradients():
    cases = {c.name: c for c in build_cases(CHNO, seed=0)}
    for name in ("molecule_C2H5NO", "trimer_CHN", "bulk_C_diamond"):
        atoms = cases[name].copy()
        atoms.calc = MolecularFF()
        fd = calculate_numerical_forces(atoms, eps=1e-5)
        assert np.abs(atoms.get_forces() - fd).max() < 2e-8, name
        assert np.abs(atoms.get_forces().sum(axis=0)).max() < 1e-12
    stress = atoms.get_stress()
    assert np.abs(stress - calculate_numerical_stress(atoms, eps=1e-6)).max() < 1e-9
    assert np.abs(stress).max() > 0.1  # diamond at 1.545 Å is compressed for a 1.45 Å C-C
    with pytest.raises(ValueError, match="no parameters for Xe"):
        water = cases["molecule_H2O2"].copy()
        water.symbols[0] = "Xe"
        water.calc = MolecularFF()
        water.get_potential_energy()


def test_relax_cases_moves_molecules_to_the_models_minimum():
    cases = build_cases(CHNO, seed=0)
    model = Model(MolecularFF())
    log = []
    relaxed = relax_cases(model, cases, seed=0, log=log)
    assert [c.name for c in relaxed] == [c.name for c in cases]
    for before, after in zip(cases, relaxed):
        if before.kind != "molecule":
            assert after is before  # only molecules are relaxed
    assert [(r.case, r.steps, r.calls, r.converged) for r in log] == [
        ("molecule_C2H5NO", 16, 17, True), ("molecule_H2O2", 8, 9, True), ("molecule_N2O", 12, 13, True),
        ("molecule_H2", 3, 4, True)]
    assert model.n_calls == 43 and all(r.calls <= RELAX_STEPS + 1 and r.fmax_after < 0.05 for r in log)
    # MD starts near the model's minimum: the largest force at the start falls
    start = {c.name: max_force(MolecularFF(), c.atoms) for c in cases if c.kind == "molecule"}
    now = {c.name: max_force(MolecularFF(), c.atoms) for c in relaxed if c.kind == "molecule"}
    assert {k: round(v, 2) for k, v in start.items()} == {
        "molecule_C2H5NO": 6.45, "molecule_H2O2": 3.99, "molecule_N2O": 1.05, "molecule_H2": 3.58}
    assert all(now[k] < 0.5 * start[k] for k in start) and max(now.values()) < 2.0
    acetamide = next(c for c in relaxed if c.name == "molecule_C2H5NO")
    assert "relaxed with the model: 16 BFGS steps (17 calls, converged)" in acetamide.note
    c1, c2 = [k for k, sym in enumerate(acetamide.atoms.get_chemical_symbols()) if sym == "C"]
    # C-C: G2 1.514 Å, rattled to 1.432 Å, relaxed to the force field's 1.45 Å (rattled 0.01 Å)
    assert round(g2_molecule("CH3CONH2").get_distance(c1, c2), 3) == 1.514
    assert round(cases[2].atoms.get_distance(c1, c2), 3) == 1.432 and cases[2].name == "molecule_C2H5NO"
    assert round(acetamide.atoms.get_distance(c1, c2), 3) == 1.463
    # deterministic: same seed, same positions; another seed, another rattle
    again = relax_cases(Model(MolecularFF()), cases, seed=0)
    other = relax_cases(Model(MolecularFF()), cases, seed=1)
    for a, b, c in zip(relaxed, again, other):
        assert np.array_equal(a.atoms.positions, b.atoms.positions)
        if a.kind == "molecule":
            assert not np.array_equal(a.atoms.positions, c.atoms.positions)
    same = find_relaxed_case("molecule_N2O", CHNO, MolecularFF(), seed=0)
    assert np.array_equal(same.atoms.positions, relaxed[4].atoms.positions) and relaxed[4].name == "molecule_N2O"


class FailsAfterTwoCalls(MolecularFF):
    calls = 0

    def calculate(self, *args, **kwargs):
        type(self).calls += 1
        if type(self).calls > 2:
            raise RuntimeError("out of memory")
        super().calculate(*args, **kwargs)


def test_relax_keeps_the_built_case_when_the_model_fails():
    case = find_case("molecule_C2H4", ["C", "H"], seed=0)
    log = []
    (out,) = relax_cases(Model(FailsAfterTwoCalls()), [case], log=log)
    assert np.array_equal(out.atoms.positions, case.atoms.positions)
    assert not log[0].kept and log[0].calls == 3  # two good calls, the third raises: relax stops
    assert "not relaxed (model error: model raised RuntimeError: out of memory" in out.note


def test_molecule_dynamics_pass_on_a_correct_force_field():
    # default lengths: 150 NVE steps of 0.3 fs span 4 C-H periods; 60 do not, and the linear
    # fit then reads the last oscillation as a drift (1.6 meV/atom/ps for C2H4, 2.8 for H2)
    session, log = relaxed_session(MolecularFF(), ["C", "H"], ["dynamics"], structure_kinds=["molecule"],
                                   **MOLECULE_MD)
    assert sum(r.calls for r in log) == 15
    report = session.run()
    assert failed_checks(report) == set()
    assert sorted(report.df["case"].unique()) == ["molecule_C2H4", "molecule_H2"]
    assert sorted(report.df["check"]) == sorted(["nve_energy_drift", "momentum_conservation",
                                                 "hot_nvt_stability"] * 2)
    hot = {r.case: r for r in report.results if r.check == "hot_nvt_stability"}
    assert hot["molecule_C2H4"].details["temperature_K"] == 1000.0


def acetamide_nve(start_as_built: bool, **options):
    """nve_energy_drift on MolecularFF's acetamide; ``start_as_built``: MD starts from
    the G2 geometry (what a run without relaxation did), else from the model's minimum."""
    options = dict(species=CHNO, checks=["nve_energy_drift"], structure_kinds=["molecule"], **options)
    session = open_session(build_config(options), MolecularFF())
    session.items = [(spec, case) for spec, case in session.items if case.name == "molecule_C2H5NO"]
    if start_as_built:
        case = session.items[0][1]
        session.model.relaxed_starts[case.name] = case
    (result,) = session.run().results
    return result


def test_relaxing_first_is_what_lets_a_correct_model_pass_nve():
    # G2's acetamide is 0.07 Å off the force field's C-C and C=O: started there with 300 K on
    # top, NVE "drifts" by 246 meV/atom/ps at 0.63 fs and still 8.6 at the stiffest-mode step
    # (0.28 fs); MD on an isolated case starts from the model's own minimum: 0.16
    raw = acetamide_nve(True, md_timestep=0.63)
    assert raw.status == "failed" and round(raw.measured) == 246 and "integration error" in raw.message
    raw = acetamide_nve(True)
    assert raw.status == "failed" and raw.measured == pytest.approx(8.65, abs=0.01)
    ok = acetamide_nve(False)
    assert ok.status == "passed" and ok.details["drift_meV_per_atom_ps"]["dt"] == pytest.approx(0, abs=1.0)
    assert "relaxed with the model:" in ok.details["start"] and "converged" in ok.details["start"]


def test_the_time_step_comes_from_the_models_stiffest_mode():
    # the mass-scaled default (0.63 fs with H) is calibrated on metal phonons; the H-H stretch
    # (7.6 fs) needs <= 0.5 fs: forced to 0.63 fs a correct model fails, at the step from its
    # stiffest mode (T_min / 30 = 0.255 fs) it passes
    options = dict(species=["H"], checks=["nve_energy_drift"], structure_kinds=["molecule"])
    (long,) = open_session(build_config(dict(options, md_timestep=0.63)), MolecularFF()).run().results
    assert long.status == "failed" and long.details["dt_fs"] == 0.63
    assert round(long.measured, 3) == 0.072 and "dt = 0.63 fs is too long for this model" in long.message
    (ok,) = open_session(build_config(options), MolecularFF()).run().results
    assert ok.status == "passed" and ok.details["dt_fs"] == pytest.approx(0.255, abs=0.001)
    assert ok.details["dt_source"] == "stiffest mode"


def test_no_wall_is_still_caught_by_the_dimer_scan_on_molecular_species():
    session, _ = relaxed_session(NoWallFF(), ["C", "H"], ["dimer_curve", "hot_nvt_stability"],
                                 structure_kinds=["dimer", "molecule"], md_steps=60, **MOLECULE_MD)
    report = session.run()
    assert failed_checks(report) == {"dimer_curve"}
    (dimer,) = [r for r in report.results if r.check == "dimer_curve"]
    assert "short-range hole depth" in dimer.message and dimer.measured > 900
    assert "the C-H energy falls by" in dimer.message


@pytest.mark.slow
def test_every_family_passes_on_molecule_cases():
    families = ["symmetry", "conservation", "hygiene", "smoothness", "locality", "dynamics"]
    session, log = relaxed_session(MolecularFF(), CHNO, families, **MOLECULE_MD)
    report = session.run()
    assert failed_checks(report) == set() and set(report.df["status"]) == {"passed"}
    molecules = report.df[report.df["case"].str.startswith("molecule_")]
    assert len(molecules) == 72 and molecules["check"].nunique() == 18
