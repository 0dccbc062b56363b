"""Broken models for the conservation family; each breaks one conservation law
or one energy-derivative relation on purpose, on top of :class:`SmoothPair`."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import all_changes

from .base import SmoothPair, quintic_switch


class ScaledForces(SmoothPair):
    """Forces 1.05 × the true ones (a unit or normalisation slip in the force
    head); energy and stress are right. Still a gradient (of 1.05 E), still
    sums to zero and still symmetric: only force_consistency sees it."""

    factor = 1.05

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"] = self.factor * self.results["forces"]


class WrongStressSign(SmoothPair):
    """Stress with the wrong sign (-(1/V) ∂E/∂ε, a pressure-vs-stress mix-up)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if "stress" in self.results:
            self.results["stress"] = -self.results["stress"]


class StressNoVolume(SmoothPair):
    """Stress missing the 1/V normalisation (returns the virial ∂E/∂ε, eV)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if "stress" in self.results:
            self.results["stress"] = self.results["stress"] * self.atoms.get_volume()


class StressOnCluster(SmoothPair):
    """Returns numbers for the stress of a structure without periodic
    direction and cell (the virial, as if V = 1 Å³) instead of raising."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        isolated = atoms is not None and not atoms.pbc.any()
        wanted = [p for p in properties if p != "stress"] if isolated else properties
        super().calculate(atoms, wanted or ["energy"], system_changes)
        if isolated:
            virial = -self.atoms.positions.T @ self.results["forces"]
            virial = 0.5 * (virial + virial.T)
            self.results["stress"] = virial.flat[[0, 4, 8, 5, 2, 1]]


class ExternalField(SmoothPair):
    """A uniform external field: E += -b·Σᵢ rᵢ, Fᵢ += b (consistent energy,
    forces and stress), so the net force is N b: caught by net_force only in
    this family (it also breaks translation symmetry)."""

    b = np.array([0.02, -0.01, 0.015])  # eV/Å

    def extra(self, atoms, i, j, D, d):
        r = atoms.positions
        n = len(atoms)
        return -float(self.b @ r.sum(axis=0)), np.tile(self.b, (n, 1)), -np.outer(r.sum(axis=0), self.b)


class RotationalField(SmoothPair):
    """Forces Fᵢ += c ẑ × (rᵢ - r̄) (r̄ the centroid): a rigid-rotation field
    with zero sum but a net torque. A rotational field is not a gradient, so
    force_consistency necessarily fails too; net_force does not."""

    c = 0.05  # eV/Å²

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        r = self.atoms.positions - self.atoms.positions.mean(axis=0)
        self.results["forces"] = self.results["forces"] + self.c * np.cross([0.0, 0.0, 1.0], r)


class DirectForce(SmoothPair):
    """A direct-force model: central pair forces scaled by an environment
    factor 1 + β(ρᵢ + ρⱼ) (ρ a coordination number) that the energy does not
    contain. Newton's third law holds (zero net force and torque) and the
    forces are equivariant, but they are not a gradient of anything for three
    or more atoms: the force Jacobian is not symmetric and a closed loop
    gains energy."""

    beta = 0.05

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        n = len(atoms)
        i, j, D = self.pairs(atoms)
        d = np.linalg.norm(D, axis=1)
        _, g = self.pair_term(D, d)
        s, _ = quintic_switch(d, self.parameters.r_on, self.parameters.rc)
        rho = np.bincount(i, weights=s, minlength=n)
        w = self.beta * (rho[i] + rho[j])
        forces = self.results["forces"].copy()
        for k in range(3):
            forces[:, k] += np.bincount(i, weights=w * g[:, k], minlength=n)
        self.results["forces"] = forces


class DirectForceOnly(DirectForce):
    """The direct-force model without an energy: only the Jacobian-symmetry
    (closed-loop) form of force_consistency can catch it."""

    implemented_properties = ["forces"]
