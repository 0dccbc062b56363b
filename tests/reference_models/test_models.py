import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.cluster import Icosahedron
from scipy.spatial.transform import Rotation

import reference_models
from reference_models import data, nn
from reference_models.calculator import ReferenceCalculator, load_model, save_model
from reference_models.descriptors import Descriptor
from reference_models.linear import (LinearModel, design_matrix, fit_linear, fold_of,
                                     normal_equations, pareto_front)

NAMES = reference_models.available()


def alloy_bulk():
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 1, 1))
    atoms.symbols[[1, 4]] = "Au"
    atoms.set_cell(atoms.cell.array + [[0, 0.2, 0.1], [0.1, 0, 0.2], [0, 0.1, 0]], scale_atoms=True)
    atoms.rattle(0.08, seed=1)
    return atoms


def cluster():
    atoms = Icosahedron("Cu", 2)
    atoms.symbols[[2, 6]] = "Au"
    atoms.rattle(0.08, seed=2)
    return atoms


@pytest.fixture(scope="module", params=NAMES)
def calc(request):
    return reference_models.load(request.param)


def test_all_models_shipped():
    assert NAMES == ["linear", "nn", "nn_direct", "nn_direct_penalised"]
    with pytest.raises(ValueError, match="unknown reference model"):
        reference_models.load("transformer")


def test_calculator_contract(calc):
    assert isinstance(calc, ReferenceCalculator)
    assert calc.species == ["Cu", "Au"] and calc.cutoff == 5.5 and calc.precision == "float64"
    for prop in ("energy", "free_energy", "energies", "forces", "stress"):
        assert prop in calc.implemented_properties
    atoms = alloy_bulk()
    before = atoms.copy()
    atoms.calc = calc
    e = atoms.get_potential_energy()
    assert atoms.get_forces().shape == (len(atoms), 3)
    assert atoms.get_stress().shape == (6,)
    assert np.sum(atoms.get_potential_energies()) == pytest.approx(e, rel=1e-12)
    assert atoms.get_potential_energy(force_consistent=True) == e
    assert np.array_equal(atoms.positions, before.positions) and atoms.info == before.info


def test_fresh_calculator_each_load():
    assert reference_models.load("linear") is not reference_models.load("linear")


def test_stress_needs_rank_three_cell(calc):
    atoms = cluster()
    atoms.calc = calc
    atoms.get_forces()
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()


def test_unsupported_species_named(calc):
    atoms = Atoms("CuNi", positions=[[0, 0, 0], [2.4, 0, 0]])
    atoms.calc = calc
    with pytest.raises(ValueError, match="Ni"):
        atoms.get_potential_energy()


@pytest.mark.parametrize("name", [n for n in NAMES if not n.startswith("nn_direct")])
def test_conservative_forces_and_stress(name):
    calc = reference_models.load(name)
    atoms = alloy_bulk()
    atoms.calc = calc
    forces, stress = atoms.get_forces(), atoms.get_stress()
    h = 1e-5
    for k, c in [(0, 0), (3, 2), (6, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[k, c] += h
        minus.positions[k, c] -= h
        plus.calc = minus.calc = calc
        fd = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)
        assert forces[k, c] == pytest.approx(fd, abs=1e-6)
    eps = np.zeros((3, 3))
    eps[0, 1] = eps[1, 0] = h / 2
    plus, minus = atoms.copy(), atoms.copy()
    plus.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    minus.set_cell(atoms.cell.array @ (np.eye(3) - eps), scale_atoms=True)
    plus.calc = minus.calc = calc
    fd = (plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h) / atoms.get_volume()
    assert stress[5] == pytest.approx(fd, abs=1e-8)


def test_rotation_permutation_invariance(calc):
    atoms = cluster()
    atoms.calc = calc
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    rot = Rotation.from_rotvec([0.4, -0.9, 1.3]).as_matrix()
    perm = np.random.default_rng(0).permutation(len(atoms))
    moved = atoms[perm]
    moved.positions = moved.positions @ rot.T + 1.7
    moved.calc = calc
    assert moved.get_potential_energy() == pytest.approx(e, rel=1e-10)
    np.testing.assert_allclose(moved.get_forces(), f[perm] @ rot.T, atol=1e-9)


def test_direct_model_is_not_conservative_and_penalty_reduces_net_force():
    atoms = cluster()
    net = {}
    for name in ("nn_direct", "nn_direct_penalised"):
        atoms.calc = reference_models.load(name)
        net[name] = np.linalg.norm(atoms.get_forces().sum(0))
    assert net["nn_direct"] > 1e-4
    assert net["nn_direct_penalised"] < net["nn_direct"]


def test_save_load_round_trip(tmp_path):
    calc = reference_models.load("nn")
    path = save_model(calc.model, tmp_path / "copy.npz")
    again = ReferenceCalculator(load_model(path))
    atoms = alloy_bulk()
    atoms.calc = calc
    e = atoms.get_potential_energy()
    atoms.calc = again
    assert atoms.get_potential_energy() == e


@pytest.fixture(scope="module")
def small_data():
    structures = data.load()
    train, test = data.split_by_trajectory(structures)
    return train[::12], test[::8]


@pytest.fixture(scope="module")
def small_descriptor():
    return Descriptor(["Cu", "Au"], cutoff=4.6, n_radial=4, n_angular=2, l_max=2, n_cubic=2)


def test_design_matrix_rows(small_data, small_descriptor):
    train, _ = small_data
    dm = design_matrix(train[:3], small_descriptor)
    n_rows = sum(1 + 3 * len(a) + (6 if a.pbc.all() else 0) for a in train[:3])
    assert dm.X.shape == (n_rows, 2 + 2 * small_descriptor.n_features)
    assert set(dm.row_kind) <= {"energy", "forces", "stress"}
    assert np.array_equal(np.unique(dm.row_structure), [0, 1, 2])
    # a random linear model predicts exactly X @ theta
    rng = np.random.default_rng(0)
    theta = rng.normal(size=dm.X.shape[1]) * 1e-3
    model = LinearModel.from_theta(small_descriptor, theta)
    atoms = train[1]
    out = model.evaluate(atoms)
    rows = dm.row_structure == 1
    pred = dm.X[rows] @ theta
    kinds = dm.row_kind[rows]
    assert pred[kinds == "energy"][0] == pytest.approx(out["energy"] / len(atoms), rel=1e-10)
    np.testing.assert_allclose(pred[kinds == "forces"], out["forces"].ravel(), atol=1e-10)


def test_fit_pareto_and_cv(small_data, small_descriptor):
    train, test = small_data
    model, cv = fit_linear(train, small_descriptor, lambdas=[1e-8, 1e-4])
    assert len(cv) == 2 and model.info["lam"] in (1e-8, 1e-4)
    folds = fold_of(train, 3)
    stats = normal_equations(train, small_descriptor, lambda a: folds[a.info["trajectory"]])
    test_stats = normal_equations(test, small_descriptor, lambda a: "test")
    front = pareto_front(stats, test_stats, 2, 1e-6, factors=(0.1, 10.0))
    assert len(front) == 4 and front["pareto"].any()
    # more energy weight never makes the energy error much worse
    assert front["rmse_energy"].iloc[2] <= front["rmse_energy"].iloc[0] * 1.05


def test_residual_network_gradients_match_finite_differences(small_data, small_descriptor):
    train, _ = small_data
    rng = np.random.default_rng(1)
    linear = LinearModel(small_descriptor, np.zeros(2), rng.normal(0, 1e-3, (2, small_descriptor.n_features)))
    batch = nn.make_batches(train[:4], linear, 1, rng)[0]
    assert batch.has_stress.any()
    mean = np.zeros((2, small_descriptor.n_features))
    scale = np.full((2, small_descriptor.n_features), 10.0)
    params = [nn.MLP.init(small_descriptor.n_features, 4, rng, zero_output=False) for _ in range(2)]

    def loss(p):
        losses, grads = nn._residual_loss_and_grad(p, mean, scale, batch, 0.01, 0.1, 0.001)
        return sum(losses), grads

    _, grads = loss(params)
    h = 1e-6
    for e, key, ix in [(0, "W1", (1, 2)), (0, "W2", (0, 1)), (0, "w3", (2,)), (0, "b1", (3,))]:
        plus = [{k: v.copy() for k, v in p.items()} for p in params]
        minus = [{k: v.copy() for k, v in p.items()} for p in params]
        plus[e][key][ix] += h
        minus[e][key][ix] -= h
        fd = (loss(plus)[0] - loss(minus)[0]) / (2 * h)
        assert grads[e][key][ix] == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_direct_force_gradients_with_penalty(small_data, small_descriptor):
    train, _ = small_data
    rng = np.random.default_rng(2)
    structures = [a for a in train if not a.pbc.any()][:1] + train[:2]
    linear = LinearModel(small_descriptor, np.zeros(2), rng.normal(0, 1e-3, (2, small_descriptor.n_features)))
    batch = nn.make_batches(structures, linear, 1, rng)[0]
    assert batch.isolated.any()
    d = small_descriptor
    k = 3
    params = nn.MLP.init(2 * (k + 2) + d.n_radial, 5, rng, zero_output=False)
    model = nn.DirectForceModel(linear, rng.normal(size=(2, d.n_features, k)),
                                np.zeros((2, d.n_features)), np.full((2, d.n_features), 10.0), params)
    atom_x = model.atom_features(batch.expansion, batch.features)

    def loss():
        lf, lp, grads = nn._direct_loss_and_grad(model, batch, atom_x, 2.0, 0.1)
        return lf + lp, grads

    _, grads = loss()
    h = 1e-6
    for key, ix in [("W1", (2, 1)), ("W2", (0, 3)), ("w3", (1,)), ("b2", (2,))]:
        params[key][ix] += h
        up = loss()[0]
        params[key][ix] -= 2 * h
        down = loss()[0]
        params[key][ix] += h
        assert grads[key][ix] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9)


def gated_network(descriptor, rng, gate=(1.0, 2.0)):
    """A random residual network on a linear model with random weights."""
    s, dim = descriptor.n_species, descriptor.n_features
    linear = LinearModel(descriptor, rng.normal(size=s), rng.normal(0, 1e-2, (s, dim)))
    params = [nn.MLP.init(dim, 6, rng, zero_output=False) for _ in range(s)]
    return nn.ResidualNetwork(linear, rng.normal(0, 0.1, (s, dim)), np.full((s, dim), 3.0),
                              params, inputs=nn.network_inputs(descriptor), gate=gate)


def finite_difference_forces(model, atoms, picks, h=1e-5):
    out = []
    for k, c in picks:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[k, c] += h
        minus.positions[k, c] -= h
        out.append(-(model.evaluate(plus)["energy"] - model.evaluate(minus)["energy"]) / (2 * h))
    return np.array(out)


@pytest.mark.parametrize("geometry", ["trimer", "tetramer"])
def test_gated_network_forces_are_exact_where_the_gate_is_partly_open(geometry):
    d = Descriptor(["Cu", "Au"], cutoff=4.6, n_radial=4, n_angular=2, l_max=2, n_cubic=2,
                   exclude_self=True, n_gated=4)
    model = gated_network(d, np.random.default_rng(3), gate=(0.3, 3.0))   # wide: partly open
    positions = [[0, 0, 0], [2.3, 0.2, 0.1], [0.4, 2.9, -0.3], [2.0, 2.1, 2.6]]
    atoms = Atoms("CuAuCuAu"[:2 * (3 if geometry == "trimer" else 4)],
                  positions=positions[:3 if geometry == "trimer" else 4])
    exp = d.expand(atoms)
    c, _ = exp.coordination
    s, _ = nn.coordination_gate(c, model.gate)
    assert np.any((s > 0.01) & (s < 0.99))          # control: the gate's slope is exercised
    picks = [(k, a) for k in range(len(atoms)) for a in range(3)]
    forces = model.evaluate(atoms)["forces"]
    fd = finite_difference_forces(model, atoms, picks)
    np.testing.assert_allclose([forces[k, a] for k, a in picks], fd, atol=1e-6 * np.abs(fd).max())


def test_gated_network_adds_nothing_to_a_dimer():
    d = Descriptor(["Cu", "Au"], cutoff=4.6, n_radial=4, n_angular=2, l_max=2, n_cubic=2,
                   exclude_self=True, n_gated=4)
    rng = np.random.default_rng(4)
    model = gated_network(d, rng)
    for r in (1.5, 2.5, 4.0):
        dimer = Atoms("CuAu", positions=[[0, 0, 0], [r, 0, 0]])
        exp = d.expand(dimer)
        e, w, radial = model.network_energies(exp, exp.features(subtract_self=False))
        assert np.all(e == 0) and np.all(w == 0) and radial is None
        full, linear = model.evaluate(dimer), model.linear.evaluate(dimer)
        assert full["energy"] == pytest.approx(linear["energy"], rel=1e-13)
        np.testing.assert_allclose(full["forces"], linear["forces"], rtol=1e-12)


@pytest.mark.parametrize("geometry", ["trimer", "alloy_bulk", "cluster"])
def test_linear_fast_path_energies_equal_features_times_weights(geometry):
    """The fast path (energies from the gradient pass, self terms as a pair potential)
    gives w · G of the descriptor, per atom."""
    d = Descriptor(["Cu", "Au"], cutoff=4.6, n_radial=4, n_angular=2, l_max=2, n_cubic=2,
                   exclude_self=True, n_gated=4)
    rng = np.random.default_rng(5)
    model = LinearModel(d, rng.normal(size=2), rng.normal(size=(2, d.n_features)), core=None)
    atoms = {"trimer": lambda: Atoms("CuAuCu", positions=[[0, 0, 0], [2.3, 0.2, 0.1],
                                                           [0.4, 2.9, -0.3]]),
             "alloy_bulk": alloy_bulk, "cluster": cluster}[geometry]()
    exp = d.expand(atoms)
    if geometry == "trimer":
        assert exp.gate_active                                        # control
    idx = exp.species_index
    expected = model.e0[idx] + np.einsum("nd,nd->n", model.w[idx], exp.features())
    np.testing.assert_allclose(model.evaluate(atoms)["energies"], expected, rtol=1e-11,
                               atol=1e-11 * np.abs(expected).max())
