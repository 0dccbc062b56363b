"""A correct, cheap force field for organic molecules (H, C, N, O), and a broken twin.

``MolecularFF`` is what the molecule cases need in CI: torch-free, analytic
forces and stress, conservative, local, symmetric, smooth (C2), and it keeps
G2 molecules bound and sensible through hot MD. No topology: every term is a
function of the neighbour list only, so it is invariant under permutations
of same-species atoms (a bonded force field with a fixed bond list is not).

Energy (eV, Å)::

    E = Σ_{i<j} s_ab(r_ij) φ_ab(r_ij)                                  pair
      + Σ_i κ_a Σ_{j<k} s_ij s_ik (cos θ_jik − c0(n_i))²               angle

* φ_ab: Morse, well depth D, width α, bond length r0 per element pair
  (:data:`PAIRS`; other pairs: r0 = sum of covalent radii, D = 2 eV, α = 2/Å);
* s_ab: quintic switch (value, slope and curvature 0 at both ends) from
  r0 + 0.2 Å to r0 + 0.8 Å, the pair's cutoff: bonds count, 1-3 neighbours
  (geminal H–H in CH4 at 1.78 Å, C···H across a C–C bond at 2.15 Å) do not;
* angles: the ideal cosine of a centre with n_i = Z_i + L_a electron domains
  (Z_i = Σ_j s_ij its smooth coordination, L_a its lone pairs: N 1, O 2,
  F/Cl 3) is c0 = −1/(n − 1) (VSEPR: 109.5° for CH4, NH3 and H2O, 120° for
  C=C, 180° for C≡C), with n clipped from below at 2 by a softplus so that
  c0 stays in [−1, 0) and smooth; H has no angle term (κ_H = 0).

Single-well pairs cannot tell C–C from C=C, so molecules relax to the force
field's own geometry (C–C 1.45 Å): that is what relaxing with the model is for.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.data import atomic_numbers, covalent_radii
from ase.neighborlist import neighbor_list

from .base import quintic_switch


def septic_switch(r, r_on, rc):
    """Switch s(r) and ds/dr: 1 below r_on, 0 above rc, C3 in between
    (value and three derivatives vanish at both ends)."""
    w = rc - r_on
    x = np.clip((r - r_on) / w, 0.0, 1.0)
    s = 1 - x**4 * (35 - 84 * x + 70 * x**2 - 20 * x**3)
    ds = -140 * x**3 * (1 - x) ** 3 / w
    return s, ds

#: (r0 Å, D eV, α 1/Å) per element pair: bond lengths between single and
#: double bonds of the G2 set, dissociation energies and stretch constants
#: (k = 2 D α²: C–H 28, H–H 36, O–H 45 eV/Å²) of the right size.
PAIRS = {
    ("H", "H"): (0.741, 4.75, 1.94), ("C", "H"): (1.09, 4.3, 1.8), ("H", "N"): (1.01, 4.0, 2.0),
    ("H", "O"): (0.96, 4.6, 2.2), ("C", "C"): (1.45, 3.6, 1.9), ("C", "N"): (1.40, 3.2, 2.0),
    ("C", "O"): (1.25, 3.8, 2.0), ("N", "N"): (1.25, 2.5, 2.2), ("N", "O"): (1.22, 2.4, 2.2),
    ("O", "O"): (1.40, 1.8, 2.2),
}
SWITCH_ON, SWITCH_OFF = 0.2, 0.8  # Å beyond r0: the pair switch
#: Angle stiffness κ (eV) and lone pairs per element (others: κ 1 eV, no lone pair).
KAPPA = {"H": 0.0, "C": 2.0, "N": 1.8, "O": 1.6}
LONE_PAIRS = {"N": 1, "O": 2, "F": 3, "Cl": 3, "Br": 3, "I": 3, "S": 2, "P": 1}
SOFTPLUS_BETA = 8.0  # sharpness of the smooth max(n, 2)


def _tables():
    """(119, 119) arrays r0, D, alpha, r_on, rc and (119,) kappa, lone pairs."""
    r0 = covalent_radii[:, None] + covalent_radii[None, :]
    depth = np.full((119, 119), 2.0)
    alpha = np.full((119, 119), 2.0)
    for (a, b), (r, d, al) in PAIRS.items():
        za, zb = atomic_numbers[a], atomic_numbers[b]
        for x, y in ((za, zb), (zb, za)):
            r0[x, y], depth[x, y], alpha[x, y] = r, d, al
    kappa = np.ones(119)
    lone = np.zeros(119)
    for s, k in KAPPA.items():
        kappa[atomic_numbers[s]] = k
    for s, k in LONE_PAIRS.items():
        lone[atomic_numbers[s]] = k
    return r0, depth, alpha, r0 + SWITCH_ON, r0 + SWITCH_OFF, kappa, lone


class MolecularFF(Calculator):
    """Morse pairs + VSEPR angle term, C2-switched; energy eV, forces (N, 3) eV/Å,
    stress (Voigt, eV/Å³) for cells periodic in 3 directions."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    species = ("H", "C", "N", "O")
    nolabel = True
    switch = staticmethod(septic_switch)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.r0, self.depth, self.alpha, self.r_on, self.rc, self.kappa, self.lone = _tables()

    @property
    def cutoff(self) -> float:
        """Largest pair cutoff among the declared species (Å): C–C, 2.25 Å."""
        z = [atomic_numbers[s] for s in self.species]
        return float(self.rc[np.ix_(z, z)].max())

    # -- terms ------------------------------------------------------------------
    def pair_energy(self, za, zb, d):
        """Switched Morse energy (P,) and its derivative d/dr (P,)."""
        r0, dep, al = self.r0[za, zb], self.depth[za, zb], self.alpha[za, zb]
        x = np.exp(-al * (d - r0))
        phi = dep * (x * x - 2 * x)
        dphi = 2 * dep * al * (x - x * x)
        s, ds = self.switch(d, self.r_on[za, zb], self.rc[za, zb])
        return phi * s, dphi * s + phi * ds

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        n = len(atoms)
        z = atoms.numbers
        present = np.unique(z)
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(self.species))
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameters for {', '.join(unknown)} "
                             f"(species: {', '.join(self.species)})")
        i, j, D = neighbor_list("ijD", atoms, float(self.rc[np.ix_(present, present)].max()))
        d = np.linalg.norm(D, axis=1)
        keep = d < self.rc[z[i], z[j]]
        i, j, D, d = i[keep], j[keep], D[keep], d[keep]
        order = np.argsort(i, kind="stable")
        i, j, D, d = i[order], j[order], D[order], d[order]
        u = D / d[:, None]
        zi, zj = z[i], z[j]

        # pair term: each unordered pair appears twice
        e_p, de_p = self.pair_energy(zi, zj, d)
        energy = 0.5 * float(e_p.sum())
        g_radial = 0.5 * de_p  # dE/dd per ordered entry (radial part)
        g = np.zeros_like(D)

        # angle term
        s, ds = self.switch(d, self.r_on[zi, zj], self.rc[zi, zj])
        coord = np.bincount(i, weights=s, minlength=n)
        t = SOFTPLUS_BETA * (coord + self.lone[z] - 2.0)
        n_eff = 2.0 + np.logaddexp(0.0, t) / SOFTPLUS_BETA
        dn_eff = 0.5 * (1.0 + np.tanh(0.5 * t))  # sigmoid(t) = d n_eff / d coord
        c0 = -1.0 / (n_eff - 1.0)
        dc0 = dn_eff / (n_eff - 1.0) ** 2
        counts = np.bincount(i, minlength=n)
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rep = counts[i]
        P = np.repeat(np.arange(len(i)), rep)
        Q = start[i][P] + np.arange(len(P)) - np.repeat(np.cumsum(rep) - rep, rep)
        mask = P < Q
        P, Q = P[mask], Q[mask]
        centre = i[P]
        kap = self.kappa[z[centre]]
        cos = np.einsum("ij,ij->i", u[P], u[Q])
        dev = cos - c0[centre]
        w = s[P] * s[Q]
        energy += float((kap * w * dev * dev).sum())
        # through the switches s_p, s_q (radial)
        gs = np.bincount(P, weights=kap * s[Q] * dev * dev, minlength=len(i)) \
            + np.bincount(Q, weights=kap * s[P] * dev * dev, minlength=len(i))
        # through c0(coordination of the centre): radial, on every entry of the centre
        g_c0 = np.bincount(centre, weights=-2.0 * kap * w * dev, minlength=n)
        gs = gs + g_c0[i] * dc0[i]
        g_radial = g_radial + gs * ds
        # through the cosine
        gc = 2.0 * kap * w * dev
        dcos_p = (u[Q] - cos[:, None] * u[P]) / d[P, None]
        dcos_q = (u[P] - cos[:, None] * u[Q]) / d[Q, None]
        for k in range(3):
            g[:, k] += np.bincount(P, weights=gc * dcos_p[:, k], minlength=len(i)) \
                + np.bincount(Q, weights=gc * dcos_q[:, k], minlength=len(i))
        g += g_radial[:, None] * u  # g = dE/dD per ordered entry, D = r_j - r_i + shift

        forces = np.zeros((n, 3))
        for k in range(3):
            forces[:, k] = np.bincount(i, weights=g[:, k], minlength=n) \
                - np.bincount(j, weights=g[:, k], minlength=n)
        self.results["energy"] = self.results["free_energy"] = energy
        self.results["forces"] = forces
        if atoms.cell.rank == 3 and atoms.pbc.all():
            virial = D.T @ g
            sigma = 0.5 * (virial + virial.T) / atoms.get_volume()
            self.results["stress"] = sigma.flat[[0, 4, 8, 5, 2, 1]]
        elif "stress" in properties:
            raise PropertyNotImplementedError("stress needs a cell periodic in 3 directions")


class NoWallFF(MolecularFF):
    """Broken twin: below 0.7 r0 the pair energy falls into a 1000 eV hole
    (C2-switched, so smooth), like ANI-1x's C–H at 0.43 Å: no repulsive wall.
    Near equilibrium it is :class:`MolecularFF` (MD on molecules passes);
    only the dimer scan reaches the hole."""

    HOLE_DEPTH = 1000.0  # eV

    def pair_energy(self, za, zb, d):
        e, de = super().pair_energy(za, zb, d)
        r0 = self.r0[za, zb]
        s, ds = quintic_switch(d, 0.45 * r0, 0.7 * r0)
        return e - self.HOLE_DEPTH * s, de - self.HOLE_DEPTH * ds
