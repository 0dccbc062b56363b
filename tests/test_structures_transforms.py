"""Structures are deterministic and well formed; transforms are pure and exact."""

import numpy as np
import pytest
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.toolkit import strategies as strat
from conformance.toolkit import transforms as tf
from conformance.toolkit.structures import (KINDS, MAX_MOLECULES, MOLECULAR_SPECIES, _g2_catalogue, build_cases,
                                    find_case, g2_molecule, molecule_cover)


def test_cases_for_two_species_names_tags_and_periodicity():
    cases = {c.name: c for c in build_cases(["Cu", "Au"], seed=0)}
    assert list(cases) == ["dimer_CuAu", "trimer_AuCu2", "cluster_Au6Cu7", "bulk_Cu_fcc", "bulk_Au_fcc",
                           "slab_Cu_fcc111", "wire_Cu_fcc100", "alloy_CuAu_fcc", "small_cell_AuCu"]
    assert cases["slab_Cu_fcc111"].atoms.pbc.tolist() == [True, True, False]
    assert cases["wire_Cu_fcc100"].atoms.pbc.tolist() == [False, False, True]
    assert {"periodic", "periodic3", "bulk"} == cases["bulk_Cu_fcc"].tags
    assert {"isolated", "cluster"} == cases["cluster_Au6Cu7"].tags
    assert len(cases["bulk_Cu_fcc"]) >= 24 and len(cases["cluster_Au6Cu7"]) == 13
    alloy = cases["alloy_CuAu_fcc"].atoms
    assert set(alloy.get_chemical_symbols()) == {"Cu", "Au"}


def test_small_cell_is_triclinic_and_shorter_than_any_cutoff():
    cell = find_case("small_cell_Cu2", ["Cu"]).atoms.cell
    lengths, angles = cell.cellpar()[:3], cell.cellpar()[3:]
    assert lengths.max() < 2 * 4.0  # shorter than twice any realistic cutoff (>= 4 Å)
    assert np.all(np.abs(angles - 90) > 1) and len(set(np.round(lengths, 3))) == 3


def test_cases_are_deterministic_and_rattled_by_seed():
    a = build_cases(["Cu"], seed=1)
    b = build_cases(["Cu"], seed=1)
    c = build_cases(["Cu"], seed=2)
    for x, y, z in zip(a, b, c):
        assert np.array_equal(x.atoms.positions, y.atoms.positions)
        if len(x) > 2:
            assert not np.array_equal(x.atoms.positions, z.atoms.positions)
    # rattled: no force vanishes by symmetry
    atoms = find_case("bulk_Cu_fcc", ["Cu"], seed=0).copy()
    atoms.calc = EMT()
    assert np.linalg.norm(atoms.get_forces(), axis=1).min() > 1e-3


def test_kind_selection_and_errors():
    assert [c.kind for c in build_cases(["Ni"], kinds=["bulk", "slab"])] == ["bulk", "slab"]
    with pytest.raises(ValueError, match="unknown structure kinds"):
        build_cases(["Ni"], kinds=["crystal"])
    with pytest.raises(ValueError, match="unknown chemical symbol 'Xx'"):
        build_cases(["Xx"])
    with pytest.raises(ValueError, match="no species given"):
        build_cases([])
    assert set(KINDS) >= {"dimer", "trimer", "cluster", "molecule", "bulk", "slab", "wire", "alloy",
                          "small_cell"}


def test_non_metal_species_fall_back_to_sensible_cases():
    cases = build_cases(["H", "O"], seed=0)
    d = cases[0].atoms.get_distance(0, 1)
    assert 0.5 < d < 2.0


def test_metal_cases_are_unchanged_by_the_molecular_kinds():
    # positions pinned against the builder before molecules existed (commit 0ccefc0):
    # bit-identical for Cu, CuAu, NiPdPt, Si, Ar, AlAg, Fe, Mg, Ge at seeds 0 and 3
    cases = {c.name: c for c in build_cases(["Cu", "Au"], seed=0)}
    assert not any(c.kind == "molecule" for c in cases.values())
    assert round(float(np.abs(cases["cluster_Au6Cu7"].atoms.positions).sum()), 10) == 45.3769215374
    assert round(float(np.abs(cases["bulk_Cu_fcc"].atoms.positions).sum()), 10) == 260.953115687
    assert [c.name for c in build_cases(["Ar"])] == ["dimer_Ar2", "trimer_Ar3", "cluster_Ar13", "bulk_Ar_fcc",
                                                     "slab_Ar_fcc111", "wire_Ar_fcc100", "small_cell_Ar2"]


def test_molecular_species_get_molecules_not_metal_cases():
    cases = {c.name: c for c in build_cases(["C", "H"], seed=0)}
    # no icosahedron, no fcc slab/wire/alloy of C or H, no "fcc hydrogen"; diamond is a real crystal
    assert list(cases) == ["dimer_CH", "trimer_C2H", "molecule_C2H4", "molecule_H2", "bulk_C_diamond",
                           "small_cell_C2"]
    ethylene = cases["molecule_C2H4"]
    assert ethylene.kind == "molecule" and ethylene.tags == {"molecule", "isolated", "cluster"}
    assert ethylene.atoms.get_chemical_formula() == "C2H4" and not ethylene.atoms.pbc.any()
    assert ethylene.note.startswith("G2 molecule C2H4")
    ref = g2_molecule("C2H4")
    shift = np.linalg.norm(ethylene.atoms.positions - ref.positions, axis=1)
    assert 0.02 < shift.mean() < 0.15  # rattled like the other cases (σ = 0.05 Å per coordinate)
    d, d_ref = ethylene.atoms.get_all_distances(), ref.get_all_distances()
    assert round(d_ref[0, 1], 3) == 1.335 and round(d[0, 1], 3) == 1.488  # C=C, 2.3 σ of a bond's rattle
    assert np.abs(d - d_ref).max() < 0.2  # still ethylene
    small = cases["small_cell_C2"].atoms
    lengths = small.cell.lengths()  # primitive diamond (2.52 Å) sheared by up to 3 %: triclinic
    assert lengths.max() < 2.7 and len(set(np.round(lengths, 3))) == 3
    assert [c.name for c in build_cases(["H", "O"])] == ["dimer_HO", "trimer_H2O", "molecule_H2O2",
                                                         "molecule_H2"]


def test_mixed_metal_and_molecular_species():
    names = [c.name for c in build_cases(["Cu", "O"], seed=0)]
    assert names == ["dimer_CuO", "trimer_Cu2O", "cluster_Cu13", "molecule_O3", "bulk_Cu_fcc",
                     "slab_Cu_fcc111", "wire_Cu_fcc100", "small_cell_Cu2"]
    names = [c.name for c in build_cases(["Si", "H"], seed=0)]
    assert "molecule_H6Si2" in names and "bulk_Si_diamond" in names and "cluster_Si13" in names
    # two metals and a molecular species: the alloy is of the metals only
    cases = {c.name: c for c in build_cases(["Pd", "H", "Ag"], seed=0)}
    assert set(cases["alloy_PdAg_fcc"].atoms.get_chemical_symbols()) == {"Pd", "Ag"}
    assert "molecule_H2" in cases and "bulk_H_fcc" not in cases


def test_molecule_cover_covers_species_and_bonds():
    names, uncovered = molecule_cover(["C", "H", "N", "O"])
    assert names == ["CH3CONH2", "H2O2", "N2O", "H2"] and uncovered == []
    catalogue = {m.name: m for m in _g2_catalogue()}
    chosen = [catalogue[n] for n in names]
    assert set().union(*(m.elements for m in chosen)) == {"C", "H", "N", "O"}
    offered = set().union(*(m.bonds for m in catalogue.values() if m.elements <= {"C", "H", "N", "O"}))
    assert len(offered) == 10 and set().union(*(m.bonds for m in chosen)) == offered
    # deterministic, independent of the order of the species
    assert molecule_cover(["O", "N", "H", "C"]) == (names, [])
    assert molecule_cover(["C", "H"]) == (["C2H4", "H2"], [])
    assert molecule_cover(["Cu", "Au"]) == ([], [])
    assert molecule_cover(["C"]) == ([], [])  # no closed-shell all-carbon molecule in G2
    # many species: capped, and what is left uncovered is said
    names, uncovered = molecule_cover(["C", "H", "N", "O", "F", "S", "Cl"])
    assert len(names) == MAX_MOLECULES and ("H", "H") in uncovered and ("C", "F") in uncovered
    # closed shell only: no radical or triplet (OH, CH3, O2) is ever chosen
    assert not {"OH", "CH3", "O2", "NO", "CH2_s1A1d"} & set(catalogue)
    assert MOLECULAR_SPECIES >= {"H", "C", "N", "O", "F", "P", "S", "Cl"}


def test_molecule_cases_are_deterministic_by_seed():
    a = {c.name: c for c in build_cases(["C", "H", "N", "O"], seed=1)}
    b = {c.name: c for c in build_cases(["C", "H", "N", "O"], seed=1)}
    c = {c.name: c for c in build_cases(["C", "H", "N", "O"], seed=2)}
    assert [n for n in a if n.startswith("molecule_")] == ["molecule_C2H5NO", "molecule_H2O2",
                                                            "molecule_N2O", "molecule_H2"]
    for name in a:
        assert np.array_equal(a[name].atoms.positions, b[name].atoms.positions)
        if name.startswith("molecule_"):
            assert not np.array_equal(a[name].atoms.positions, c[name].atoms.positions)
    assert find_case("molecule_N2O", ["C", "H", "N", "O"], seed=1).atoms == a["molecule_N2O"].atoms
    assert [c.kind for c in build_cases(["C", "H"], kinds=["molecule"])] == ["molecule", "molecule"]


angles = st.floats(-np.pi, np.pi)
vec = st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda v: np.linalg.norm(v) > 0.1)


@settings(max_examples=30, deadline=None)
@given(vec, angles)
def test_rotation_matrix_is_proper_orthogonal(axis, angle):
    r = tf.rotation_matrix(axis, angle)
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(r), 1.0)
    assert np.allclose(r @ np.asarray(axis), np.asarray(axis), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(vec)
def test_mirror_is_improper_involution(normal):
    m = tf.mirror_matrix(normal)
    assert np.isclose(np.linalg.det(m), -1.0) and np.allclose(m @ m, np.eye(3))


def test_transforms_do_not_mutate_input():
    atoms = bulk("Cu", cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    before = atoms.copy()
    tf.rotate(atoms, tf.rotation_matrix([1, 2, 3], 0.7))
    tf.translate(atoms, [1, 2, 3])
    tf.permute(atoms, np.arange(len(atoms))[::-1])
    tf.supercell(atoms, (2, 1, 1))
    tf.change_basis(atoms, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    tf.wrap(atoms)
    assert atoms == before


def test_stress_rotation_matches_emt():
    atoms = bulk("Cu", cubic=True).repeat(2)
    atoms.rattle(0.05, seed=2)
    atoms.set_cell(atoms.cell.array @ np.array([[1, 0.02, 0], [0, 1, 0.01], [0, 0, 0.99]]),
                   scale_atoms=True)
    r = tf.rotation_matrix([0.3, -0.2, 1.0], 0.9)
    a, b = atoms.copy(), tf.rotate(atoms, r)
    a.calc, b.calc = EMT(), EMT()
    assert np.allclose(tf.rotate_stress(a.get_stress(), r), b.get_stress(), atol=1e-12)
    assert np.allclose(tf.rotate_forces(a.get_forces(), r), b.get_forces(), atol=1e-12)


def test_change_basis_keeps_the_crystal_and_rejects_bad_matrices():
    slab = fcc111("Cu", (2, 2, 3), vacuum=5.0)
    sheared = tf.change_basis(slab, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert np.isclose(sheared.get_volume(), slab.get_volume())
    for atoms in (slab, sheared):
        atoms.calc = EMT()
    assert np.isclose(slab.get_potential_energy(), sheared.get_potential_energy(), atol=1e-10)
    with pytest.raises(ValueError, match="determinant"):
        tf.change_basis(slab, [[2, 0, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="only mix periodic directions"):
        tf.change_basis(slab, [[1, 0, 1], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="periodic directions"):
        tf.supercell(slab, (1, 1, 2))
    with pytest.raises(ValueError, match="non-periodic"):
        tf.lattice_shift(slab, np.tile([0, 0, 1], (len(slab), 1)))


def test_same_species_permutation_is_never_identity_and_keeps_species():
    rng = np.random.default_rng(0)
    numbers = np.array([29, 79, 29, 79, 29])
    for _ in range(20):
        p = tf.same_species_permutation(numbers, rng)
        assert np.array_equal(numbers[p], numbers) and not np.array_equal(p, np.arange(5))


def test_search_spaces_sample_valid_operations():
    rng = np.random.default_rng(0)
    for _ in range(20):
        r = strat.rotations().sample(rng)
        assert 5 <= r.angle_deg <= 180 and np.isclose(np.linalg.det(r.matrix), 1)
        m = strat.improper_rotations().sample(rng)
        assert np.isclose(np.linalg.det(m.matrix), -1)
    with pytest.raises(ValueError, match="no species has two atoms"):
        strat.permutations([29, 79], same_species=True)


def test_search_shrinks_a_violation_to_a_small_angle():
    from conformance.core.result import Field

    def measure(rot):  # "fails" whenever the angle exceeds 30 degrees
        return [Field("angle", rot.angle_deg, 30.0, "deg")]

    out = strat.search(strat.rotations(), measure, seed=0, examples=10)
    assert out.failure is not None
    example, fields = out.failure
    assert 30.0 < example.angle_deg <= 31.0  # shrunk close to the boundary
    assert example.axis == (0.0, 0.0, 1.0)
    assert out.examples_tried <= 10 + 25
