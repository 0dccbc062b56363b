"""Cutoff convergence audit: the shell term's columns are exact derivatives, EMT-labelled
data converges at EMT's range, labels with a pair term beyond the cutoff are caught, and the
optional data check runs only when cutoffs are given."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.neighborlist import neighbor_list

from conformance import audit
from conformance.audits.cutoff import cutoff_convergence, shell_columns
from conformance.run.config import ConfigError, coerce
from reference_models.switching import quintic_switch


class FarShellEMT(Calculator):
    """EMT plus a weak pair term A·g(r) living only between r1 and r3 (eV, Å).

    g rises from 0 at r1 to 1 at r2 and falls back to 0 at r3 (quintic switches), so it
    adds forces of up to ~0.08 eV/Å from atoms that a model with r_c <= r1 cannot see.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, amplitude=0.02, r1=6.5, r2=7.25, r3=8.0):
        super().__init__()
        self.amplitude, self.radii = amplitude, (r1, r2, r3)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        r1, r2, r3 = self.radii
        i, d, vec = neighbor_list("idD", self.atoms, r3)
        up, dup, _ = quintic_switch(d, r1, r2)
        down, ddown, _ = quintic_switch(d, r2, r3)
        dg = -dup * down + (1 - up) * ddown
        pair_force = (self.amplitude * dg / d)[:, None] * vec       # full list: each pair twice
        forces = np.zeros((len(self.atoms), 3))
        np.add.at(forces, i, pair_force)
        base = self.atoms.copy()
        base.calc = EMT()
        energy = base.get_potential_energy() + 0.5 * self.amplitude * ((1 - up) * down).sum()
        virial = 0.5 * pair_force.T @ vec / self.atoms.get_volume()
        self.results = {"energy": energy, "free_energy": energy,
                        "forces": base.get_forces() + forces,
                        "stress": base.get_stress() + virial.flat[[0, 4, 8, 5, 2, 1]]}


def _relabel(frames, calc):
    out = []
    for atoms in frames:
        copy = atoms.copy()
        copy.calc = calc
        labels = dict(energy=copy.get_potential_energy(), forces=copy.get_forces(),
                      stress=copy.get_stress())
        copy.calc = SinglePointCalculator(copy, **labels)
        out.append(copy)
    return out


@pytest.fixture(scope="module")
def cu_md():
    """Shipped Cu bulk MD frames (5 temperatures), split by trajectory: 60 train, 20 test."""
    from reference_models import data

    md = [a for a in data.load() if (a.info["system"], a.info["config_type"]) == ("Cu", "md_bulk")]
    train, test = data.split_by_trajectory(md)
    return {"emt": (train, test),
            "far": (_relabel(train, FarShellEMT()), _relabel(test, FarShellEMT()))}


def test_far_shell_oracle_is_conservative():
    from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

    atoms = bulk("Cu", cubic=True).repeat(2)
    atoms.rattle(0.1, seed=1)
    atoms.calc = FarShellEMT()
    some = [0, 7, 19]  # three atoms' finite differences (all 32: ~400 calls, a minute)
    numeric = calculate_numerical_forces(atoms, 1e-4, iatoms=some)
    assert np.abs(atoms.get_forces()[some] - numeric).max() < 1e-6
    assert np.abs(atoms.get_stress() - calculate_numerical_stress(atoms, 1e-5)).max() < 1e-7


def test_shell_columns_are_energy_forces_and_stress_of_one_pair_term():
    atoms = bulk("Cu", cubic=True).repeat(2)
    atoms.rattle(0.1, seed=1)
    atoms[3].symbol = "Au"
    atoms.set_cell(atoms.cell * [1.01, 0.99, 1.02], scale_atoms=True)

    def columns(a):
        a = a.copy()
        a.calc = SinglePointCalculator(a, energy=0.0, forces=np.zeros((len(a), 3)), stress=np.zeros(6))
        return shell_columns([a], ["Cu", "Au"], 5.0, 7.0, 4)

    x = columns(atoms)
    n = len(atoms)
    assert x.shape == (1 + 3 * n + 6, 3 * 4)                 # Cu-Cu, Cu-Au, Au-Au pairs
    w = np.random.default_rng(0).normal(size=x.shape[1])
    energy = lambda a: columns(a)[0] @ w * len(a)
    h = 1e-5
    numeric = np.zeros((n, 3))
    for i in range(n):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, c] += h
            minus.positions[i, c] -= h
            numeric[i, c] = -(energy(plus) - energy(minus)) / (2 * h)
    forces = (x[1:1 + 3 * n] @ w).reshape(n, 3)
    assert np.abs(forces).max() > 1 and np.abs(forces - numeric).max() < 1e-6
    stress = []
    for a, b in [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h / 2 if a != b else h
        plus, minus = atoms.copy(), atoms.copy()
        plus.set_cell(atoms.cell @ (np.eye(3) + eps), scale_atoms=True)
        minus.set_cell(atoms.cell @ (np.eye(3) - eps), scale_atoms=True)
        stress.append((energy(plus) - energy(minus)) / (2 * h) / atoms.get_volume())
    assert np.abs(x[1 + 3 * n:] @ w - stress).max() < 1e-7
    # nothing inside the shell: an atom whose neighbours all sit within 5 Å sees no column
    dimer = bulk("Cu", "sc", a=4.0, cubic=True)
    dimer.center(vacuum=10.0)
    dimer.pbc = False
    dimer.calc = SinglePointCalculator(dimer, energy=0.0, forces=np.zeros((1, 3)))
    assert not shell_columns([dimer], ["Cu", "Au"], 5.0, 7.0, 4).any()


def test_emt_data_converges_and_a_far_pair_term_is_caught(cu_md):
    emt = cutoff_convergence(*cu_md["emt"], [4.0, 8.5], judged=6.5)
    far = cutoff_convergence(*cu_md["far"], [4.0, 8.5], judged=6.5)
    # the scan: 4 Å misses EMT's 4th and 5th neighbour shells
    table = emt.table.set_index("cutoff")
    assert list(table.index) == [4.0, 6.5, 8.5] and list(table["n_radial"]) == [5, 10, 14]
    assert table.loc[4.0, "forces"] > 3 * table.loc[6.5, "forces"]
    # the verdict: a pair term between 6.5 and 8.5 Å adds nothing to EMT labels (-0.2 %)
    assert abs(emt.force_excess) < 0.03 and emt.ok and emt.extended["n_extra"] == 4
    # ... and recovers the far term of the other labels (74 %)
    assert far.force_excess > 0.5 and not far.ok
    assert far.extended["forces"] < 0.7 * far.table.set_index("cutoff").loc[6.5, "forces"]
    assert "excess at r_c = 6.50 Å" in far.summary()
    plot = far.plot(mark=6.5)
    assert plot["vlines"][0]["x"] == 6.5 and len(plot["series"]) == 3


def test_cutoff_arguments_are_validated(cu_md):
    train, test = cu_md["emt"]
    with pytest.raises(ValueError, match="at least two cutoffs above 1.5"):
        cutoff_convergence(train[:2], test[:2], [5.0])
    with pytest.raises(ValueError, match="must be below the largest"):
        cutoff_convergence(train[:2], test[:2], [4.0, 5.0], judged=6.0)
    assert coerce("cutoffs", "4, 5.5,7") == (4.0, 5.5, 7.0)
    with pytest.raises(ConfigError, match="positive radii"):
        coerce("cutoffs", "4,-1")


class DeclaresCutoff(EMT):
    """EMT declaring a 6.5 Å cutoff (as a model of that range would)."""

    cutoff = 6.5
    species = ["Cu"]


def test_data_check_runs_only_when_asked_and_judges_the_declared_cutoff(cu_md, tmp_path):
    paths = {}
    for name, (train, test) in cu_md.items():
        paths[name] = (tmp_path / f"{name}_train.extxyz", tmp_path / f"{name}_test.extxyz")
        write(paths[name][0], train)
        write(paths[name][1], test)
    files = dict(train=str(paths["far"][0]), test=str(paths["far"][1]))
    silent = audit(DeclaresCutoff(), checks=["cutoff_convergence"], **files)
    assert silent["cutoff_convergence[train_test]"].status == "skipped"
    assert "--mlip-cutoffs" in silent["cutoff_convergence[train_test]"].message
    beyond = audit(DeclaresCutoff(), checks=["cutoff_convergence"], cutoffs=(4.0, 6.0), **files)
    assert "no scanned cutoff beyond the model's r_c = 6.5" in beyond.results[0].message
    caught = audit(DeclaresCutoff(), checks=["cutoff_convergence"], cutoffs=(8.5,), **files)
    r = caught["cutoff_convergence[train_test]"]
    assert r.status == "failed" and r.measured > 0.5 and r.tolerance == 0.10
    assert "at r_c = 6.5 Å (the model's declared cutoff)" in r.message
    assert r.details["judged"] == 6.5 and r.details["plots"][0]["vlines"][0]["x"] == 6.5
    clean = audit(DeclaresCutoff(), checks=["cutoff_convergence"], cutoffs=(8.5,),
                  train=str(paths["emt"][0]), test=str(paths["emt"][1]))
    assert clean["cutoff_convergence[train_test]"].status == "passed"
