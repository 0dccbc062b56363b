import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111
from ase.cluster import Icosahedron
from ase.neighborlist import neighbor_list as ase_neighbor_list

from reference_models.neighbors import neighbor_list


def triclinic_small():
    atoms = Atoms(
        "CuAu",
        scaled_positions=[[0.1, 0.2, 0.3], [0.6, 0.55, 0.4]],
        cell=[[2.9, 0.0, 0.0], [0.7, 2.6, 0.0], [-0.4, 0.9, 3.1]],
        pbc=True,
    )
    return atoms


def slab():
    atoms = fcc111("Cu", (2, 2, 3), vacuum=4.0)
    atoms.rattle(0.05, seed=3)
    return atoms


def slab_zero_height():
    atoms = fcc111("Cu", (2, 1, 3), vacuum=None, periodic=False)
    atoms.pbc = [True, True, False]
    atoms.cell[2] = 0.0
    return atoms


def cluster():
    atoms = Icosahedron("Cu", 2)
    atoms.rattle(0.05, seed=4)
    return atoms


def mixed_pbc_wire():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 2))
    atoms.pbc = [False, False, True]
    atoms.rattle(0.03, seed=5)
    return atoms


CASES = {
    "primitive_fcc": lambda: bulk("Cu", "fcc", a=3.61),
    "triclinic_small": triclinic_small,
    "slab": slab,
    "slab_zero_height": slab_zero_height,
    "cluster": cluster,
    "wire": mixed_pbc_wire,
}
# cutoffs deliberately away from neighbour-shell distances
CUTOFFS = [3.13, 5.27, 7.91]


def as_sorted_rows(i, j, shift, d):
    rows = np.column_stack([i, j, shift]).astype(np.int64)
    order = np.lexsort(rows.T[::-1])
    return rows[order], d[order]


@pytest.mark.parametrize("cutoff", CUTOFFS)
@pytest.mark.parametrize("name", CASES)
def test_matches_ase(name, cutoff):
    atoms = CASES[name]()
    nl = neighbor_list(atoms, cutoff)
    i, j, shift, d = ase_neighbor_list("ijSd", atoms, cutoff)
    ours, d_ours = as_sorted_rows(nl.i, nl.j, nl.shift, nl.distance)
    ref, d_ref = as_sorted_rows(i, j, shift, d)
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_allclose(d_ours, d_ref, rtol=0, atol=1e-12)
    assert len(ours) > 0


@pytest.mark.parametrize("name", CASES)
def test_vectors_consistent_with_shifts(name):
    atoms = CASES[name]()
    nl = neighbor_list(atoms, 5.27)
    expected = atoms.positions[nl.j] - atoms.positions[nl.i] + nl.shift @ atoms.cell.array
    np.testing.assert_allclose(nl.vector, expected, atol=1e-12)
    assert nl.i.dtype == np.int64 and nl.j.dtype == np.int64


@pytest.mark.parametrize("name", ["triclinic_small", "slab", "cluster"])
def test_half_list_is_half_of_full(name):
    atoms = CASES[name]()
    full = neighbor_list(atoms, 5.27)
    half = neighbor_list(atoms, 5.27, full=False)
    assert 2 * len(half.i) == len(full.i)
    # every half pair and its reverse are in the full list
    both = np.concatenate([
        np.column_stack([half.i, half.j, half.shift]),
        np.column_stack([half.j, half.i, -half.shift]),
    ])
    ref = np.column_stack([full.i, full.j, full.shift])
    assert {tuple(r) for r in both} == {tuple(r) for r in ref}


def test_small_cell_sees_own_images():
    atoms = bulk("Cu", "fcc", a=3.61)  # one atom, cell far below the cutoff
    nl = neighbor_list(atoms, 5.27)
    assert np.all(nl.i == 0) and np.all(nl.j == 0)
    assert len(nl.i) == 54  # 12 + 6 + 24 + 12 neighbours within 5.27 Å


def test_isolated_atom_and_input_not_modified():
    atoms = Atoms("Cu", positions=[[0.0, 0.0, 0.0]])
    before = atoms.copy()
    nl = neighbor_list(atoms, 5.0)
    assert len(nl.i) == 0 and nl.vector.shape == (0, 3)
    assert atoms == before
