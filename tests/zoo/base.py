"""A correct, smooth reference potential that the broken zoo models modify.

``SmoothPair`` is a Morse pair potential with a quintic switch between
``r_on`` and ``rc`` (energy, force and curvature go to zero at ``rc``). It is
conservative, local, symmetric, and has exact stress. Subclasses break exactly
one thing by overriding one hook:

* ``pairs(atoms)``: the neighbour search (i, j, D with D = r_j - r_i + shift);
* ``pair_weights(atoms, i, j)``: per-pair prefactors (default 1);
* ``pair_term(D, d)``: energy of a pair and its gradient w.r.t. D;
* ``extra(atoms, i, j, D, d)``: an extra energy with forces and virial.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.neighborlist import neighbor_list


def quintic_switch(r, r_on, rc):
    """Switch s(r) and ds/dr: 1 below r_on, 0 above rc, C2 in between."""
    x = np.clip((r - r_on) / (rc - r_on), 0.0, 1.0)
    s = 1 - x**3 * (10 - 15 * x + 6 * x**2)
    ds = -30 * x**2 * (1 - x) ** 2 / (rc - r_on)
    return s, ds


class SmoothPair(Calculator):
    """Morse pair potential with a C2 cutoff; energy in eV, distances in Å.

    Parameters
    ----------
    D : float   well depth (eV)
    alpha : float   inverse width (1/Å)
    r0 : float  equilibrium distance (Å)
    r_on, rc : float   switch starts at r_on, energy is zero beyond rc (Å)
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]
    default_parameters = dict(D=0.35, alpha=1.3, r0=2.55, r_on=4.0, rc=5.0)
    nolabel = True

    @property
    def cutoff(self) -> float:
        return self.parameters.rc

    # -- hooks ---------------------------------------------------------------
    def pairs(self, atoms):
        i, j, D = neighbor_list("ijD", atoms, self.parameters.rc)
        return i, j, D

    def pair_weights(self, atoms, i, j):
        return np.ones(len(i))

    def pair_term(self, D, d):
        """Energy e (P,) of each ordered pair and de/dD (P, 3); e(D) = e(-D)."""
        p = self.parameters
        x = np.exp(-p.alpha * (d - p.r0))
        phi = p.D * (x * x - 2 * x)
        dphi = p.D * (-2 * p.alpha * x * x + 2 * p.alpha * x)
        s, ds = quintic_switch(d, p.r_on, p.rc)
        e = phi * s
        de = dphi * s + phi * ds
        return e, (de / d)[:, None] * D

    def extra(self, atoms, i, j, D, d):
        """Extra energy (eV), forces (N, 3) and virial (3, 3) (Σ r ⊗ ∂E/∂r)."""
        return 0.0, np.zeros((len(atoms), 3)), np.zeros((3, 3))

    # -- ASE interface -------------------------------------------------------
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        n = len(atoms)
        i, j, D = self.pairs(atoms)
        i = np.asarray(i, dtype=np.int64)
        j = np.asarray(j, dtype=np.int64)
        D = np.asarray(D, dtype=float).reshape(-1, 3)
        d = np.linalg.norm(D, axis=1)
        w = self.pair_weights(atoms, i, j)
        e, g = self.pair_term(D, d)
        e = 0.5 * w * e
        g = w[:, None] * g  # dE/dD summed over both orders = g for each ordered pair
        energies = np.bincount(i, weights=e, minlength=n)
        forces = np.zeros((n, 3))
        for k in range(3):
            forces[:, k] = np.bincount(i, weights=g[:, k], minlength=n)
        virial = 0.5 * D.T @ g
        e_x, f_x, v_x = self.extra(atoms, i, j, D, d)
        energy = float(energies.sum() + e_x)
        forces = forces + f_x
        virial = virial + v_x
        self.results["energy"] = self.results["free_energy"] = energy
        self.results["energies"] = energies + e_x / max(n, 1)
        self.results["forces"] = forces
        if atoms.cell.rank == 3 and atoms.pbc.all():
            sigma = 0.5 * (virial + virial.T) / atoms.get_volume()
            self.results["stress"] = sigma.flat[[0, 4, 8, 5, 2, 1]]
        elif "stress" in properties:
            raise PropertyNotImplementedError("stress needs a cell periodic in 3 directions")
