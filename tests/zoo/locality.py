"""A correct model whose range is that of two message-passing layers.

``TwoHop`` is local with per-layer cutoff r_c but reaches twice as far: its
atomic energy depends on the densities of its neighbours, so E_i sees atoms
within 2 r_c (receptive field R = 2 r_c) and F_i within 2R = 4 r_c, as a
two-layer message-passing network does.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import neighbor_list

from .base import quintic_switch


class TwoHop(Calculator):
    """E = Σ_i f(m_i), m_i = Σ_j w(r_ij) ρ_j, ρ_j = Σ_k w(r_jk), f(m) = -a m + b m².

    w is 1 below r_on and switched to 0 at r_c (C2); energies in eV, lengths in Å.
    ``mlip_receptive_field`` (Å), when given, is declared as the tag ``receptive_field``.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]
    default_parameters = dict(a=0.02, b=0.0002, r_on=2.4, rc=3.0, mlip_receptive_field=None)
    nolabel = True

    @property
    def cutoff(self) -> float:
        return self.parameters.rc

    @property
    def mlip_tags(self) -> dict:
        r = self.parameters.mlip_receptive_field
        return {} if r is None else {"receptive_field": float(r)}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        p = self.parameters
        atoms = self.atoms
        n = len(atoms)
        i, j, D, d = neighbor_list("ijDd", atoms, p.rc)
        i, j = i.astype(np.int64), j.astype(np.int64)
        w, dw = quintic_switch(d, p.r_on, p.rc)
        rho = np.bincount(i, weights=w, minlength=n)
        m = np.bincount(i, weights=w * rho[j], minlength=n)
        energies = -p.a * m + p.b * m * m
        g = -p.a + 2 * p.b * m                      # dE/dm_i
        c = np.bincount(j, weights=g[i] * w, minlength=n)  # Σ_i g_i w_ij, per j
        s = (g[i] * rho[j] + c[i]) * dw             # dE/dd per ordered pair (i, j)
        vec = (s / d)[:, None] * D                  # dE/dr_j of pair (i, j); -that on i
        forces = np.zeros((n, 3))
        for k in range(3):
            forces[:, k] = np.bincount(i, weights=vec[:, k], minlength=n) - \
                np.bincount(j, weights=vec[:, k], minlength=n)
        self.results["energies"] = energies
        self.results["energy"] = self.results["free_energy"] = float(energies.sum())
        self.results["forces"] = forces
        if atoms.cell.rank == 3 and atoms.pbc.all():
            virial = D.T @ vec
            sigma = 0.5 * (virial + virial.T) / atoms.get_volume()
            self.results["stress"] = sigma.flat[[0, 4, 8, 5, 2, 1]]
