"""The registry: families found through the entry-point group, case tags validated."""

from importlib.metadata import EntryPoint

import pytest

from conformance import audit
from conformance.core import registry

EXTRA_FAMILY = '''
from conformance import Field, Verdict, check


@check(family="extras", cases={"dimer"}, calls="3", unit="eV/Å")
def dimer_force_is_the_slope(model, case, ctx, rng):
    """The force on the dimer's second atom along x is -dE/dx (central difference, h = 1e-4 Å)."""
    atoms, h = case.copy(), 1e-4
    force = model.evaluate(atoms, ("forces",))["forces"][1, 0]
    energies = []
    for step in (h, -h):
        moved = atoms.copy()
        moved.positions[1, 0] += step
        energies.append(model.evaluate(moved, ("energy",))["energy"])
    error = abs(force + (energies[0] - energies[1]) / (2 * h))
    return Verdict([Field("|F_x + dE/dx|", error, 1e-5, "eV/Å")])
'''


@pytest.fixture
def extra_family(tmp_path, monkeypatch):
    """A third-party package declaring the family ``extras`` as an entry point."""
    (tmp_path / "mlip_extra_family.py").write_text(EXTRA_FAMILY)
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint("extras", "mlip_extra_family", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [point] if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    monkeypatch.setattr(registry, "PLUGIN_FAMILIES", [])
    yield point


def test_a_family_declared_as_an_entry_point_runs_in_an_audit(extra_family):
    from ase.calculators.emt import EMT

    checks = registry.all_checks()
    assert checks["dimer_force_is_the_slope"].family == "extras"
    assert registry.known_families()[-1] == "extras"
    assert list(checks)[-1] == "dimer_force_is_the_slope"          # after the suite's families
    report = audit(EMT(), species=["Cu"], checks=["extras"])
    (result,) = report.results
    assert (result.check, result.case, result.status) == ("dimer_force_is_the_slope", "dimer_Cu2",
                                                          "passed"), result.message
    assert result.measured < 1e-6 and result.n_calls == 3


def test_a_broken_entry_point_names_itself(extra_family, monkeypatch):
    bad = EntryPoint("broken", "no_such_module_here", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "entry_points", lambda group: [bad])
    with pytest.raises(ImportError, match="check family 'broken' .*no_such_module_here"):
        registry.all_checks()


def test_a_check_for_an_unknown_family_or_case_tag_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    with pytest.raises(ValueError, match="unknown family 'phonons'.*entry point"):
        registry.check(family="phonons")(lambda model, case, tol, rng: None)
    with pytest.raises(ValueError, match=r"unknown case tags \['buk'\]; known: alloy, bulk"):
        registry.check(family="symmetry", cases={"buk"})(lambda model, case, tol, rng: None)
    assert registry.check(family="symmetry", cases={"bulk", "periodic2"})(len) is len
