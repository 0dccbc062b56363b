"""Broken models for the smoothness and locality families.

Each is :class:`~tests.zoo.base.SmoothPair` with one hook overridden, so it is
otherwise conservative, symmetric and has exact stress:

* :class:`TruncatedLJ` — Lennard-Jones cut at ``rc`` without shift: energy
  and force jump there (dimer_curve energy continuity, strain/crossing scans);
* :class:`ShiftedLJ` — shifted to zero energy at ``rc``, force not: only the
  force jumps (the energy has a kink);
* :class:`ShortRangeHole` — a Gaussian well at 1.4 Å inside the repulsive
  wall, the typical collapse of an MLIP where it saw no data (dimer_curve
  repulsion);
* :class:`LeakyCutoff` — declares a 4 Å cutoff but interacts out to 6 Å
  (locality);
* :class:`NonExtensive` — adds ε₀ √N, a size-dependent constant that moves no
  force (extensivity: two copies ≠ twice the energy);
* :class:`MeanField` — adds κ C²/N with C the total coordination: two copies
  are fine, but every force depends on the whole system (extensivity
  spectators, locality).
"""

from __future__ import annotations

import numpy as np

from .base import SmoothPair, quintic_switch


class TruncatedLJ(SmoothPair):
    """Lennard-Jones (σ, ε) cut at ``rc``; with ``shift=True`` the energy is
    shifted to zero at ``rc`` (as ASE's ``LennardJones(smooth=False)``)."""

    default_parameters = dict(sigma=2.3, epsilon=0.4, rc=6.0, shift=False)

    def pair_term(self, D, d):
        p = self.parameters
        s6 = (p.sigma / d) ** 6
        e = 4 * p.epsilon * (s6 * s6 - s6)
        de = 4 * p.epsilon * (-12 * s6 * s6 + 6 * s6) / d
        if p.shift:
            sc6 = (p.sigma / p.rc) ** 6
            e = e - 4 * p.epsilon * (sc6 * sc6 - sc6)
        return e, (de / d)[:, None] * D


class ShiftedLJ(TruncatedLJ):
    """Energy shifted to zero at the cutoff, force not: the force jumps by
    -dφ/dr(rc) (5.1e-3 eV/Å for the defaults), the energy only kinks."""

    default_parameters = dict(sigma=2.3, epsilon=0.4, rc=6.0, shift=True)


class ShortRangeHole(SmoothPair):
    """Morse + a Gaussian well of depth ``hole_depth`` (eV) at ``hole_r`` (Å):
    the dimer energy collapses below ~1.6 Å instead of rising."""

    hole_depth = 5.0
    hole_r = 1.4
    hole_width = 0.15

    def pair_term(self, D, d):
        e0, g0 = super().pair_term(D, d)
        x = (d - self.hole_r) / self.hole_width
        h = -self.hole_depth * np.exp(-x * x)
        dh = -2 * x * h / self.hole_width
        return e0 + h, g0 + (dh / d)[:, None] * D


class LeakyCutoff(SmoothPair):
    """Declares ``cutoff = 4 Å`` (the tag checks rely on) but its switch runs
    from 5 to 6 Å: atoms 4-6 Å apart still interact."""

    default_parameters = dict(SmoothPair.default_parameters, r_on=5.0, rc=6.0)

    @property
    def cutoff(self) -> float:
        return 4.0


class NonExtensive(SmoothPair):
    """Adds ε₀ √N (eV): no force changes, but two far-apart copies do not have
    twice the energy of one (and the separated-atom limit is off)."""

    eps0 = 0.1

    def extra(self, atoms, i, j, D, d):
        n = len(atoms)
        return self.eps0 * np.sqrt(n), np.zeros((n, 3)), np.zeros((3, 3))


class MeanField(SmoothPair):
    """Adds κ C² / N with C = Σ_ij s(r_ij) the total (switched) coordination:
    extensive for identical copies, but the force on every atom depends on
    all others however far (a mean-field term)."""

    kappa = 0.05

    def extra(self, atoms, i, j, D, d):
        n = len(atoms)
        p = self.parameters
        s, ds = quintic_switch(d, p.r_on, p.rc)
        c = float(s.sum())  # over ordered pairs
        # dE/dD_p for each ordered pair treated as its own term of C
        g = (2 * self.kappa * c / n * ds / d)[:, None] * D
        forces = np.zeros((n, 3))
        for k in range(3):
            forces[:, k] = 2 * np.bincount(i, weights=g[:, k], minlength=n)
        return self.kappa * c * c / n, forces, D.T @ g


class DensityHole(SmoothPair):
    """Morse pairs plus a many-body term that opens a hole only at high
    coordination: each atom gains -``depth`` × S(ρ_i) (eV), with ρ_i the number
    of neighbours closer than ~1.9 Å (a smooth count, 1 below 1.6 Å, 0 beyond
    2.2 Å) and S a smooth step from 0 at ρ = 4 to 1 at ρ = 10. A dimer or trimer
    never reaches ρ = 4, so every dimer scan is the clean Morse curve; bulk Cu or
    a Cu13 cluster compressed to ~0.7 of its distances brings 12 neighbours in at
    once and falls into the hole. Forces and stress are exact."""

    depth = 3.0
    count_on, count_off = 1.6, 2.2
    rho_on, rho_full = 4.0, 10.0

    def extra(self, atoms, i, j, D, d):
        n = len(atoms)
        f, df = quintic_switch(d, self.count_on, self.count_off)  # smooth neighbour count
        rho = np.bincount(i, weights=f, minlength=n)
        off, doff = quintic_switch(rho, self.rho_on, self.rho_full)  # 1 below rho_on, 0 above
        energy = -self.depth * float((1.0 - off).sum())
        dE_drho = self.depth * doff  # d(-depth (1 - off))/drho
        g = (dE_drho[i] * df / d)[:, None] * D  # dE/dD_ij for each ordered pair (i, j)
        forces = np.zeros((n, 3))
        for k in range(3):
            forces[:, k] = np.bincount(i, weights=g[:, k], minlength=n) - np.bincount(j, weights=g[:, k], minlength=n)
        return energy, forces, D.T @ g


class SwitchedThreeBody(SmoothPair):
    """Morse pairs plus a Stillinger-Weber-like angular term among neighbours
    closer than ``r3`` = 3.3 Å, switched off by a C2 quintic over the last
    0.5 Å: a correct, steep but smooth potential, exact forces and stress.
    Each triplet (centre i, neighbours j < k) adds
    λ (cos θ_jik + 1/3)² S(r_ij) S(r_ik) eV."""

    strength = 1.5  # λ, eV
    r3 = 3.3        # Å, cutoff of the angular term
    width = 0.5     # Å, its switch
    hard = False    # True: the angular term is cut at r3 without switch (the broken twin)

    def _switch(self, d):
        if self.hard:
            return (d < self.r3).astype(float), np.zeros_like(d)
        return quintic_switch(d, self.r3 - self.width, self.r3)

    def extra(self, atoms, i, j, D, d):
        n = len(atoms)
        near = d < self.r3
        i, j, D, d = i[near], j[near], D[near], d[near]
        s, ds = self._switch(d)
        energy, forces, virial = 0.0, np.zeros((n, 3)), np.zeros((3, 3))
        for centre in range(n):
            mine = np.flatnonzero(i == centre)
            a, b = np.triu_indices(len(mine), k=1)
            if not len(a):
                continue
            p, q = mine[a], mine[b]
            u, v, du, dv = D[p], D[q], d[p], d[q]
            c = (u * v).sum(axis=1) / (du * dv)
            t = c + 1.0 / 3.0
            sp, sq = s[p], s[q]
            energy += self.strength * float((t * t * sp * sq).sum())
            dc_du = v / (du * dv)[:, None] - (c / du**2)[:, None] * u
            dc_dv = u / (du * dv)[:, None] - (c / dv**2)[:, None] * v
            g_u = self.strength * ((2 * t * sp * sq)[:, None] * dc_du + (t * t * ds[p] * sq / du)[:, None] * u)
            g_v = self.strength * ((2 * t * sp * sq)[:, None] * dc_dv + (t * t * sp * ds[q] / dv)[:, None] * v)
            np.add.at(forces, j[p], -g_u)
            np.add.at(forces, j[q], -g_v)
            forces[centre] += g_u.sum(axis=0) + g_v.sum(axis=0)
            virial += u.T @ g_u + v.T @ g_v
        return energy, forces, virial
