import numpy as np
import pytest
from ase import Atoms

import reference_models
from reference_models.core import CoreRepulsion


def test_pair_energy_derivative_and_support():
    core = CoreRepulsion()
    r = np.linspace(0.8, 2.5, 341)
    e, de = core.pair_energy(r)
    h = 1e-6
    fd = (core.pair_energy(r + h)[0] - core.pair_energy(r - h)[0]) / (2 * h)
    np.testing.assert_allclose(de, fd, rtol=1e-6, atol=1e-6)
    assert np.all(e[r >= core.r_off] == 0) and np.all(de[r >= core.r_off] == 0)
    assert np.all(np.diff(e) <= 0)  # monotonically repulsive


@pytest.mark.parametrize("name", ["linear", "nn"])
@pytest.mark.parametrize("pair", ["CuCu", "CuAu", "AuAu"])
def test_dimer_has_repulsive_wall(name, pair):
    """Going inward from the bond, the energy only rises (no short-range hole)."""
    calc = reference_models.load(name)
    r = np.linspace(0.9, 2.1, 61)
    energies = [Atoms([pair[:2], pair[2:]], positions=[[0, 0, 0], [d, 0, 0]],
                      calculator=calc).get_potential_energy() for d in r]
    assert np.all(np.diff(energies) < 0)
