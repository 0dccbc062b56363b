"""Broken models for the symmetry family; each breaks one symmetry on purpose."""

from __future__ import annotations

import itertools

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.geometry import find_mic

from .base import SmoothPair, quintic_switch


class IndexDependent(SmoothPair):
    """Pair weights depend on the atoms' list indices (even/odd): breaks
    permutation invariance only (supercells keep index parity)."""

    def pair_weights(self, atoms, i, j):
        c = 1.0 + 0.1 * (-1.0) ** np.arange(len(atoms))
        return 0.5 * (c[i] + c[j])


class HarmonicTrap(SmoothPair):
    """Adds k Σ|r_i|² (an absolute-position term, a trap at the origin):
    breaks translations (and, unavoidably, periodic-image checks), but is
    invariant under rotations and inversion about the origin."""

    k = 1e-3  # eV/Å²

    def extra(self, atoms, i, j, D, d):
        r = atoms.positions
        return self.k * float((r * r).sum()), -2 * self.k * r, 2 * self.k * r.T @ r


class Anisotropic(SmoothPair):
    """Pair energy scaled by (1 + a (D_x/d)²): a preferred axis. Breaks proper
    rotations but is even under inversion, so the inversion check passes."""

    a = 0.2

    def pair_term(self, D, d):
        e0, g0 = super().pair_term(D, d)
        u = D[:, 0] / d
        f = 1 + self.a * u * u
        # d(u²)/dD = 2u (e_x - u D/d) / d
        du2 = 2 * u[:, None] * (np.eye(3)[0][None, :] - u[:, None] * D / d[:, None]) / d[:, None]
        return e0 * f, g0 * f[:, None] + (self.a * e0)[:, None] * du2


class Chiral(SmoothPair):
    """Adds k Σ_i a_i·(b_i × c_i) with a_i, b_i, c_i = Σ_j g_{1,2,3}(d_ij) D_ij: a
    pseudoscalar, invariant under proper rotations, odd under inversion."""

    k = 5.0  # eV/Å³ (order of magnitude chosen to make a visible effect)

    def _g(self, d):
        s, ds = quintic_switch(d, self.parameters.r_on, self.parameters.rc)
        e = np.exp(-0.5 * d)
        gs = [s, s * e, s * d / 5.0]
        dgs = [ds, ds * e - 0.5 * s * e, (ds * d + s) / 5.0]
        return gs, dgs

    def extra(self, atoms, i, j, D, d):
        n = len(atoms)
        gs, dgs = self._g(d)
        vecs = []
        for g in gs:
            v = np.zeros((n, 3))
            for k in range(3):
                v[:, k] = np.bincount(i, weights=g * D[:, k], minlength=n)
            vecs.append(v)
        a, b, c = vecs
        chi = np.einsum("ij,ij->i", a, np.cross(b, c))
        grads = [np.cross(b, c), np.cross(c, a), np.cross(a, b)]  # dχ/da, dχ/db, dχ/dc
        h = np.zeros_like(D)
        for g, dg, G in zip(gs, dgs, grads):
            Gi = G[i]
            h += g[:, None] * Gi + (dg * np.einsum("pk,pk->p", Gi, D) / d)[:, None] * D
        h *= self.k
        grad = np.zeros((n, 3))
        for k in range(3):
            grad[:, k] = np.bincount(j, weights=h[:, k], minlength=n) - \
                np.bincount(i, weights=h[:, k], minlength=n)
        return self.k * float(chi.sum()), -grad, D.T @ h


class MinimumImage(SmoothPair):
    """Neighbours by the minimum-image convention: one image per pair and no
    self-images. Right when every cell length exceeds 2 rc, wrong in small
    cells: caught by the supercell check."""

    def pairs(self, atoms):
        n = len(atoms)
        i, j = np.nonzero(~np.eye(n, dtype=bool))
        D = atoms.positions[j] - atoms.positions[i]
        if atoms.pbc.any():
            D, _ = find_mic(D, atoms.cell, atoms.pbc)
        d = np.linalg.norm(D, axis=1)
        keep = d < self.parameters.rc
        return i[keep], j[keep], D[keep]


class FixedImageRange(SmoothPair):
    """Wraps atoms into the cell, then sums over images n ∈ {-1, 0, 1} of the
    cell vectors *as given*. An equivalent but sheared basis needs more images,
    so the energy depends on the basis: caught by cell_basis_invariance."""

    def pairs(self, atoms):
        pos = atoms.get_positions(wrap=True)
        cell = atoms.cell.array
        ranges = [(-1, 0, 1) if p else (0,) for p in atoms.pbc]
        ii, jj, DD = [], [], []
        for shift in itertools.product(*ranges):
            D = pos[None, :, :] - pos[:, None, :] + np.asarray(shift) @ cell
            d = np.linalg.norm(D, axis=2)
            mask = (d < self.parameters.rc) & (d > 1e-8)
            i, j = np.nonzero(mask)
            ii.append(i)
            jj.append(j)
            DD.append(D[i, j])
        return np.concatenate(ii), np.concatenate(jj), np.concatenate(DD)


class Float32EMT(Calculator):
    """EMT seen through float32 input/output, done right: coordinates are taken
    relative to the first atom before the cast, results are cast to float32.
    Must pass every check at ``precision="float32"``."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    precision = "float32"
    relative = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = EMT()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        origin = work.positions[0].copy() if self.relative else np.zeros(3)
        work.positions = (work.positions - origin).astype(np.float32).astype(np.float64)
        work.cell = work.cell.array.astype(np.float32).astype(np.float64)
        work.calc = self.inner
        self.results["energy"] = self.results["free_energy"] = float(
            np.float32(work.get_potential_energy()))
        self.results["forces"] = work.get_forces().astype(np.float32)
        if work.cell.rank == 3:
            self.results["stress"] = work.get_stress().astype(np.float32)


class NaiveFloat32EMT(Float32EMT):
    """Casts absolute coordinates to float32: positions 1000 Å from the origin
    are resolved to only ~6e-5 Å. Caught by large_offset even at float32."""

    relative = False


class CancellingFloat32(SmoothPair):
    """Pair distances from |r_i|² + |r_j|² - 2 r_i·r_j in float32: the cancellation
    loses ε|x|² Å² far from the origin (0.1 Å² at 990 Å), far more than the
    rounding of float32 coordinates explains. Caught by large_offset at float32."""

    precision = "float32"

    def pairs(self, atoms):
        i, j, D = super().pairs(atoms)
        r = atoms.positions.astype(np.float32)
        shift = (D - (atoms.positions[j] - atoms.positions[i])).astype(np.float32)
        ri, rj = r[i], r[j] + shift
        d2 = (ri * ri).sum(1) + (rj * rj).sum(1) - 2 * (ri * rj).sum(1)
        d = np.sqrt(np.maximum(d2, np.float32(1e-6))).astype(np.float64)
        return i, j, D * (d / np.linalg.norm(D, axis=1))[:, None]


class RoundingNoise(SmoothPair):
    """A correct float32 model's noise: forces and energy carry a deterministic
    pseudo-random term of ~1e-4 eV/Å set by the float32 bits of the coordinates
    (as a deep float32 network sums its rounding errors). Any transform changes
    the bits and thus the noise; the table's float32 tolerance (2e-5 eV/Å) fails
    it, its own measured noise floor does not."""

    precision = "float32"
    amplitude = 1e-4  # eV/Å

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        bits = self.atoms.positions.astype(np.float32).view(np.uint32).astype(np.uint64)
        h = (bits * np.uint64(2654435761) + np.uint64(97)) % np.uint64(1000003)
        noise = (h.astype(float) / 1000003.0 - 0.5) * 2 * self.amplitude
        self.results["forces"] = self.results["forces"] + noise
        self.results["energy"] += float(noise.sum()) * 0.1
        self.results["free_energy"] = self.results["energy"]


class SignedVolume(SmoothPair):
    """Stress divided by det(cell) instead of |det(cell)|: right for right-handed
    cells, sign-flipped for left-handed ones. Caught by left_handed_cell only."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if "stress" in self.results and np.linalg.det(self.atoms.cell.array) < 0:
            self.results["stress"] = -self.results["stress"]


class Float32Energy(SmoothPair):
    """A correct float32 model whose total energy is large (per-atom reference
    energies of -8 eV, as a network's atomic energy shifts) and returned as a
    float32 number: deterministic, exact forces, but energy differences below
    one float32 spacing of |E| (3e-5 eV at |E| ≈ 260 eV) cannot show. Repeats
    and sub-ulp jitters measure zero noise; finite differences of the energy
    along a weak direction are quantized."""

    precision = "float32"
    atomic_energy = -8.0  # eV
    # a weakly bound, gently rattled solid: forces ~0.1 eV/Å, so a float32 spacing of the
    # total energy is a visible part of a finite difference (as for MACE with random weights)
    default_parameters = dict(SmoothPair.default_parameters, D=0.01)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        energy = float(np.float32(self.results["energy"] + self.atomic_energy * len(self.atoms)))
        self.results["energy"] = self.results["free_energy"] = energy
        self.results["forces"] = self.results["forces"].astype(np.float32).astype(float)
