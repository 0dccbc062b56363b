import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc100
from ase.cluster import Icosahedron
from scipy.spatial.transform import Rotation

from reference_models.descriptors import Descriptor, monomial_table

SPECIES = ["Cu", "Au"]


@pytest.fixture(scope="module", params=["linear_r", "exp_r", "exclude_self_gated"])
def descriptor(request):
    # small basis keeps finite differences quick; r_on > 0 exercises the switch; a wide
    # gate keeps the gated pair densities open in every test structure
    if request.param == "exclude_self_gated":
        return gated_descriptor()
    decay = 1.3 if request.param == "exp_r" else 0.0
    return Descriptor(SPECIES, cutoff=4.7, r_on=1.0, n_radial=5, n_angular=3, l_max=3,
                      n_cubic=3, radial_decay=decay)


def gated_descriptor():
    return Descriptor(SPECIES, cutoff=4.7, r_on=1.0, n_radial=5, n_angular=3, l_max=3,
                      n_cubic=3, exclude_self=True, n_gated=4, gate_width=40.0)


def periodic_triclinic():
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.symbols[[1, 2]] = "Au"
    atoms.set_cell(atoms.cell.array + [[0, 0.3, 0.1], [0.2, 0, -0.3], [0.1, 0.2, 0]],
                   scale_atoms=True)
    atoms.rattle(0.1, seed=1)
    return atoms


def cluster():
    atoms = Icosahedron("Cu", 2)
    atoms.symbols[[0, 5, 7]] = "Au"
    atoms.rattle(0.1, seed=2)
    return atoms


def slab():
    atoms = fcc100("Cu", (2, 2, 2), vacuum=3.0, a=3.7)
    atoms.symbols[[3]] = "Au"
    atoms.rattle(0.1, seed=3)
    return atoms


def tiny_cell():
    atoms = Atoms("CuAu", scaled_positions=[[0, 0, 0], [0.45, 0.55, 0.5]],
                  cell=[[2.6, 0, 0], [0.8, 2.5, 0], [0.3, -0.6, 2.7]], pbc=True)
    return atoms


CASES = {"periodic": periodic_triclinic, "cluster": cluster, "slab": slab,
         "tiny_cell": tiny_cell}


def energy(descriptor, atoms, w):
    idx = descriptor.species_index(atoms)
    return float(np.sum(w[idx] * descriptor.compute(atoms)))


def test_monomials_contract_to_powers_of_cosine():
    exponents, coefficient, degree = monomial_table(3)
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(2, 3))
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    for l in range(4):
        rows = degree == l
        au = coefficient[rows] * np.prod(u ** exponents[rows], axis=1)
        av = coefficient[rows] * np.prod(v ** exponents[rows], axis=1)
        assert au @ av == pytest.approx((u @ v) ** l, rel=1e-12)
    assert len(degree) == 1 + 3 + 6 + 10


@pytest.mark.parametrize("name", CASES)
def test_forces_are_negative_gradient(descriptor, name):
    atoms = CASES[name]()
    rng = np.random.default_rng(1)
    w = rng.normal(size=(2, descriptor.n_features))
    exp = descriptor.expand(atoms)
    forces, _ = exp.vjp(w[exp.species_index])
    h = 1e-5
    for k, c in [(0, 0), (1, 2), (len(atoms) - 1, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[k, c] += h
        minus.positions[k, c] -= h
        fd = -(energy(descriptor, plus, w) - energy(descriptor, minus, w)) / (2 * h)
        assert forces[k, c] == pytest.approx(fd, rel=1e-6, abs=1e-6 * np.abs(forces).max())


@pytest.mark.parametrize("name", ["periodic", "tiny_cell", "slab"])
def test_virial_is_strain_derivative(descriptor, name):
    atoms = CASES[name]()
    rng = np.random.default_rng(2)
    w = rng.normal(size=(2, descriptor.n_features))
    exp = descriptor.expand(atoms)
    _, virial = exp.vjp(w[exp.species_index])
    eps = rng.normal(size=(3, 3))
    h = 1e-6

    def strained(t):
        out = atoms.copy()
        out.set_cell(atoms.cell.array @ (np.eye(3) + t * eps).T, scale_atoms=True)
        return out

    fd = (energy(descriptor, strained(h), w) - energy(descriptor, strained(-h), w)) / (2 * h)
    assert np.sum(virial * eps) == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize("name", ["periodic", "cluster"])
def test_jvp_matches_finite_differences(descriptor, name):
    atoms = CASES[name]()
    rng = np.random.default_rng(3)
    dx = rng.normal(size=(len(atoms), 3))
    h = 1e-5
    plus, minus = atoms.copy(), atoms.copy()
    plus.positions += h * dx
    minus.positions -= h * dx
    fd = (descriptor.compute(plus) - descriptor.compute(minus)) / (2 * h)
    np.testing.assert_allclose(descriptor.expand(atoms).jvp(dx), fd, rtol=1e-6,
                               atol=1e-7 * np.abs(fd).max())


@pytest.mark.parametrize("name", CASES)
def test_summed_jacobian_agrees_with_vjp(descriptor, name):
    atoms = CASES[name]()
    rng = np.random.default_rng(4)
    w = rng.normal(size=(2, descriptor.n_features))
    exp = descriptor.expand(atoms)
    gsum, dx, deps = exp.summed_jacobian()
    forces, virial = exp.vjp(w[exp.species_index])
    np.testing.assert_allclose(-np.einsum("jaed,ed->ja", dx, w), forces, atol=1e-10 * np.abs(forces).max())
    np.testing.assert_allclose(np.einsum("abed,ed->ab", deps, w), virial, atol=1e-10 * np.abs(virial).max())
    assert np.sum(gsum * w) == pytest.approx(energy(descriptor, atoms, w), rel=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_invariant_under_rotation_inversion_translation(descriptor, name):
    atoms = CASES[name]()
    g = descriptor.compute(atoms)
    rotation = Rotation.from_rotvec([0.3, -1.1, 0.7]).as_matrix()
    for matrix in (rotation, -rotation):  # proper rotation and rotoinversion
        moved = atoms.copy()
        moved.set_cell(atoms.cell.array @ matrix.T)
        moved.positions = atoms.positions @ matrix.T + [0.7, -1.3, 2.1]
        np.testing.assert_allclose(descriptor.compute(moved), g, rtol=1e-10, atol=1e-10 * np.abs(g).max())


@pytest.mark.parametrize("name", CASES)
def test_permutation_equivariant(descriptor, name):
    atoms = CASES[name]()
    perm = np.random.default_rng(5).permutation(len(atoms))
    assert not np.array_equal(perm, np.arange(len(atoms)))
    np.testing.assert_allclose(descriptor.compute(atoms[perm]), descriptor.compute(atoms)[perm],
                               rtol=1e-12, atol=1e-12 * np.abs(descriptor.compute(atoms)).max())


@pytest.mark.parametrize("name", ["periodic", "tiny_cell"])
def test_supercell_repeats_descriptors(descriptor, name):
    atoms = CASES[name]()
    g = descriptor.compute(atoms)
    big = descriptor.compute(atoms.repeat((2, 1, 3)))
    np.testing.assert_allclose(big, np.tile(g, (6, 1)), rtol=1e-11, atol=1e-11 * np.abs(g).max())


def test_smooth_at_cutoff(descriptor):
    dimer = Atoms("CuAu", positions=[[0, 0, 0], [0, 0, descriptor.cutoff - 1e-6]])
    assert np.abs(descriptor.compute(dimer)).max() < 1e-12
    dimer.positions[1, 2] = descriptor.cutoff + 1e-6
    assert np.abs(descriptor.compute(dimer)).max() == 0.0


def test_unsupported_species_named():
    with pytest.raises(ValueError, match=r"unsupported species \['Ni'\]"):
        Descriptor(SPECIES).compute(Atoms("CuNi", positions=[[0, 0, 0], [2.5, 0, 0]]))


def test_isolated_atom_has_zero_descriptor(descriptor):
    atoms = Atoms("Au", positions=[[0, 0, 0]])
    exp = descriptor.expand(atoms)
    assert exp.features().shape == (1, descriptor.n_features)
    assert np.all(exp.features() == 0)
    forces, virial = exp.vjp(np.ones((1, descriptor.n_features)))
    assert np.all(forces == 0) and np.all(virial == 0)


def test_feature_names_match_dimension(descriptor):
    names = descriptor.feature_names()
    assert len(names) == descriptor.n_features == len(set(names))


def test_jvp_of_strain_matches_finite_differences(descriptor):
    atoms = periodic_triclinic()
    eps = np.array([[0.3, 0.1, -0.2], [0.1, -0.4, 0.05], [-0.2, 0.05, 0.2]])
    exp = descriptor.expand(atoms)
    h = 1e-6

    def strained(t):
        out = atoms.copy()
        out.set_cell(atoms.cell.array @ (np.eye(3) + t * eps).T, scale_atoms=True)
        return out

    fd = (descriptor.compute(strained(h)) - descriptor.compute(strained(-h))) / (2 * h)
    np.testing.assert_allclose(exp.jvp(pair_dr=exp.vector @ eps.T), fd, rtol=1e-5,
                               atol=1e-7 * np.abs(fd).max())


@pytest.mark.parametrize("name", ["periodic", "cluster"])
def test_per_element_fast_path_matches_general(descriptor, name):
    atoms = CASES[name]()
    w = np.random.default_rng(6).normal(size=(2, descriptor.n_features))
    exp = descriptor.expand(atoms)
    general = exp.pair_gradient(w[exp.species_index])
    fast = exp.pair_gradient(w, per_element=True)
    np.testing.assert_allclose(fast, general, rtol=1e-12, atol=1e-12 * np.abs(general).max())


def brute_force_self_free(descriptor, atoms):
    """Products with their j = k terms removed, from explicit neighbour sums (slow)."""
    from reference_models.neighbors import neighbor_list
    d = descriptor
    idx = d.species_index(atoms)
    nl = neighbor_list(atoms, d.cutoff, full=True)
    r, _ = d.radial(nl.distance)
    g = d.compute(atoms)               # exclude_self=False: the raw products
    cols = {name: k for k, name in enumerate(d.feature_names())}
    for i in range(len(atoms)):
        for p in np.flatnonzero(nl.i == i):
            b = d.species[idx[nl.j[p]]]
            rk = r[p]
            for k in range(d.n_radial):
                for k2 in range(k, d.n_radial):
                    g[i, cols[f"R[{b}{k}]R[{b}{k2}]"]] -= rk[k] * rk[k2]
            for l in range(1, d.l_max + 1):
                for k in range(d.n_angular):
                    for k2 in range(k, d.n_angular):
                        g[i, cols[f"P{l}[{b}{k},{b}{k2}]"]] -= rk[k] * rk[k2]
            for k in range(d.n_cubic):
                for k2 in range(k, d.n_cubic):
                    for k3 in range(k2, d.n_cubic):
                        g[i, cols[f"R[{b}{k}]R[{b}{k2}]R[{b}{k3}]"]] -= rk[k] * rk[k2] * rk[k3]
    return g


@pytest.mark.parametrize("name", ["cluster", "tiny_cell"])
def test_exclude_self_removes_exactly_the_self_terms(name):
    kwargs = dict(cutoff=4.7, r_on=1.0, n_radial=5, n_angular=3, l_max=2, n_cubic=3)
    atoms = CASES[name]()
    raw = Descriptor(SPECIES, **kwargs)
    free = Descriptor(SPECIES, exclude_self=True, **kwargs)
    expected = brute_force_self_free(raw, atoms)
    got = free.compute(atoms)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
    # the raw products are still available, and the fast self energies close the gap
    exp = free.expand(atoms)
    w = np.random.default_rng(7).normal(size=(2, free.n_features))
    idx = exp.species_index
    lhs = np.einsum("nd,nd->n", w[idx], exp.features(subtract_self=False)) - exp.self_energies(w)
    np.testing.assert_allclose(lhs, np.einsum("nd,nd->n", w[idx], got), rtol=1e-10, atol=1e-10)


def test_exclude_self_leaves_only_pair_densities_on_a_dimer():
    d = Descriptor(SPECIES, cutoff=4.7, n_radial=5, n_angular=3, l_max=2, n_cubic=3,
                   exclude_self=True)
    dimer = Atoms("CuAu", positions=[[0, 0, 0], [0.3, 2.4, 0.1]])
    g = d.compute(dimer)
    assert np.abs(g[:, :d.n_channels0]).max() > 0.1
    assert np.abs(g[:, d.n_channels0:]).max() < 1e-12
    trimer = Atoms("CuAuCu", positions=[[0, 0, 0], [0.3, 2.4, 0.1], [2.2, 0.3, 0.5]])
    assert np.abs(d.compute(trimer)[:, d.n_channels0:]).max() > 1e-3   # control


def test_gated_pair_densities_open_on_dimers_and_closed_in_bulk():
    d = Descriptor(SPECIES, cutoff=5.5, n_radial=5, n_angular=3, l_max=2, n_cubic=3,
                   exclude_self=True, n_gated=4)
    dimer = Atoms("CuAu", positions=[[0, 0, 0], [0.3, 2.4, 0.1]])
    g = d.compute(dimer)
    radial = g[:, :d.n_channels0].reshape(2, 2, 5)[:, :, :4].reshape(2, -1)
    np.testing.assert_allclose(g[:, d._gated], radial, rtol=1e-14)
    assert np.abs(radial).max() > 0.1
    for atoms in (periodic_triclinic(), cluster(), slab()):
        exp = d.expand(atoms)
        assert not exp.gate_active and np.all(exp.features()[:, d._gated] == 0)
    # a trimer: partly open gates (the case the finite-difference tests exercise)
    trimer = d.expand(Atoms("CuAuCu", positions=[[0, 0, 0], [0.3, 2.4, 0.1], [3.9, 0.3, 0.5]]))
    h = np.r_[trimer._gate[0], trimer._gate[2]]
    assert trimer.gate_active and np.any((h > 0.05) & (h < 0.95))


@pytest.mark.parametrize("name", CASES)
def test_wide_gates_are_partly_open_in_the_test_structures(name):
    """Control: the derivative tests above exercise the gates' coordination terms."""
    exp = gated_descriptor().expand(CASES[name]())
    dh = np.r_[exp._gate[1], exp._gate[3]]
    assert exp.gate_active and np.abs(dh).min() > 0
