"""Atom-centred density-expansion descriptors with analytic derivatives.

For every atom ``i`` the neighbour density of each element ``b`` is expanded in radial
functions ``R_k(r)`` (Chebyshev polynomials times the quintic switching function) and
Cartesian monomials ``A_m(r̂)`` of degree ``l = 0 .. l_max`` (moment tensors)::

    M[i, b, k, m] = sum_{j in N(i), Z_j = b} R_k(r_ij) A_m(r̂_ij)

The monomials carry the square roots of the multinomial coefficients so that
``sum_{m in l} A_m(u) A_m(v) = (u·v)^l``.  Contracting the moments over ``m`` gives
rotational invariants (a Cartesian power spectrum)::

    G_i = [ M0[i, c]                                      (radial, c = (b, k))
            M0[i, c] M0[i, d]           c <= d            (two-body densities squared)
            sum_{m in l} M[i,c,m] M[i,d,m], c <= d, l = 1 .. l_max ]  (angular)

``sum_m M_c M_d`` equals ``sum_{j,k} R_c(r_ij) R_d(r_ik) cos^l(theta_jik)``: the
three-body angular information of Behler-Parrinello angular functions, obtained at
O(pairs) cost without a loop over triplets.

Everything is vectorised over a half neighbour list (each pair once; its reverse uses
``A_m(-u) = (-1)^l A_m(u)``) and scattered onto atoms with ``scipy.sparse`` products.
:class:`DensityExpansion` keeps the per-structure pair quantities so that

* :meth:`DensityExpansion.vjp` contracts ``dG/dx`` with per-atom vectors ``W = dE/dG``
  (forces and virial of any model ``E = sum_i e(G_i)``) at O(pairs · D) cost,
* :meth:`DensityExpansion.jvp` pushes a displacement field through ``dG/dx`` (needed to
  train on forces),
* :meth:`DensityExpansion.summed_jacobian` gives the design-matrix rows of a linear
  model ``E = sum_i w_{Z_i} · G_i`` for small training structures.

Units: distances Å, descriptors in units of the (dimensionless) radial functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from math import factorial

import numpy as np
import scipy.sparse as sp
from ase.data import atomic_numbers, chemical_symbols

from .neighbors import neighbor_list
from .switching import quintic_switch

__all__ = ["Descriptor", "DensityExpansion", "concatenate", "monomial_table", "chebyshev"]


def monomial_table(l_max: int):
    """Exponents, normalisation and degree of Cartesian monomials up to degree ``l_max``.

    Parameters
    ----------
    l_max : int
        Largest degree.

    Returns
    -------
    exponents : ndarray of int, shape (n_m, 3)
        Powers of (x, y, z) in each monomial, ordered by degree.
    coefficient : ndarray, shape (n_m,)
        ``sqrt(l! / (a! b! c!))`` so that ``sum_{m in l} A_m(u) A_m(v) = (u·v)^l``.
    degree : ndarray of int, shape (n_m,)
        Degree ``l`` of each monomial.
    """
    rows = [e for l in range(l_max + 1) for e in product(range(l, -1, -1), repeat=3)
            if sum(e) == l]
    rows = sorted(rows, key=lambda e: (sum(e), [-x for x in e]))
    exponents = np.array(rows, dtype=int).reshape(-1, 3)
    degree = exponents.sum(axis=1)
    coefficient = np.array(
        [np.sqrt(factorial(sum(e)) / (factorial(e[0]) * factorial(e[1]) * factorial(e[2])))
         for e in rows])
    return exponents, coefficient, degree


def chebyshev(x, n: int):
    """Chebyshev polynomials ``T_k(x)`` and derivatives for ``k = 0 .. n-1``.

    Parameters
    ----------
    x : ndarray, shape (P,)
    n : int
        Number of polynomials (>= 1).

    Returns
    -------
    t, dt : ndarray, shape (P, n)
        ``T_k(x)`` and ``dT_k/dx``.
    """
    t = np.empty((len(x), n))
    dt = np.empty((len(x), n))
    t[:, 0], dt[:, 0] = 1.0, 0.0
    if n > 1:
        t[:, 1], dt[:, 1] = x, 1.0
    for k in range(2, n):
        t[:, k] = 2.0 * x * t[:, k - 1] - t[:, k - 2]
        dt[:, k] = 2.0 * t[:, k - 1] + 2.0 * x * dt[:, k - 1] - dt[:, k - 2]
    return t, dt


def _symmetric_from_triu(w, n: int, iu):
    """(..., n(n+1)/2) weights of c <= d products -> symmetric (..., n, n), w/2 off-diagonal."""
    v = np.zeros(w.shape[:-1] + (n, n))
    v[..., iu[0], iu[1]] = 0.5 * w
    v[..., iu[1], iu[0]] += 0.5 * w
    return v


@dataclass
class DensityExpansion:
    """Per-structure pair quantities, moments and invariants of a :class:`Descriptor`.

    Built by :meth:`Descriptor.expand`; holds everything the derivatives need, so a
    training loop can reuse it across epochs.  Array shapes use N atoms, P pairs (half
    list), S species, K0 / Ka radial functions for l = 0 / l >= 1, Ma angular monomials
    with l >= 1.

    Attributes
    ----------
    descriptor : Descriptor
    species_index : ndarray of int, shape (N,)
        Index of each atom's element in ``descriptor.species``.
    i, j : ndarray of int64, shape (P,)
    vector : ndarray, shape (P, 3)
        Pair vectors ``x_j - x_i + shift @ cell`` in Å.
    volume : float or None
        Cell volume in Å³ when the cell has rank 3, else None.
    """

    descriptor: "Descriptor"
    species_index: np.ndarray
    i: np.ndarray
    j: np.ndarray
    vector: np.ndarray
    volume: float | None
    _u: np.ndarray = field(repr=False)
    _d: np.ndarray = field(repr=False)
    _r: np.ndarray = field(repr=False)
    _dr: np.ndarray = field(repr=False)
    _a: np.ndarray = field(repr=False)
    _dadu: np.ndarray = field(repr=False)
    _scatter_i: sp.csr_matrix = field(repr=False)
    _scatter_j: sp.csr_matrix = field(repr=False)
    _rows_i: np.ndarray = field(repr=False)
    _rows_j: np.ndarray = field(repr=False)
    m0: np.ndarray = field(repr=False)
    ma: np.ndarray = field(repr=False)

    @property
    def n_atoms(self) -> int:
        return len(self.species_index)

    # -- forward ---------------------------------------------------------------------
    def features(self) -> np.ndarray:
        """Descriptors G, shape (N, D)."""
        d = self.descriptor
        n = self.n_atoms
        m0 = self.m0.reshape(n, d.n_channels0)
        blocks = [m0, (m0[:, :, None] * m0[:, None, :])[:, d._iu0[0], d._iu0[1]]]
        ma = self.ma.reshape(n, d.n_channelsa, d.n_ma)
        for cols in d._lcols:
            ml = ma[:, :, cols]
            blocks.append(np.einsum("icm,idm->icd", ml, ml)[:, d._iua[0], d._iua[1]])
        a, b, c = d._i3
        blocks.append(m0[:, a] * m0[:, b] * m0[:, c])
        return np.concatenate(blocks, axis=1)

    # -- reverse mode: forces and virial -----------------------------------------------
    def pair_gradient(self, w) -> np.ndarray:
        """dE/dr_p for every pair of a model with per-atom gradients ``w = dE/dG``.

        Parameters
        ----------
        w : ndarray, shape (N, D)
            dE/dG_i in eV per descriptor unit.

        Returns
        -------
        ndarray, shape (P, 3)
            dE/dr_p in eV/Å.
        """
        d = self.descriptor
        n = self.n_atoms
        w = np.asarray(w, dtype=float)
        c0, ca, s0 = d.n_channels0, d.n_channelsa, d.n_channels0 + d.n_triu0
        m0 = self.m0.reshape(n, c0)
        v0 = _symmetric_from_triu(w[:, c0:s0], c0, d._iu0)
        gamma0 = w[:, :c0] + 2.0 * np.einsum("icd,id->ic", v0, m0)
        if d.n_triple:
            w3 = w[:, d.n_features - d.n_triple:]
            a, b, c = d._i3
            ea, eb, ec = d._e3
            gamma0 += ((w3 * m0[:, b] * m0[:, c]) @ ea + (w3 * m0[:, a] * m0[:, c]) @ eb
                       + (w3 * m0[:, a] * m0[:, b]) @ ec)
        ma = self.ma.reshape(n, ca, d.n_ma)
        gammaa = np.empty_like(ma)
        for l, cols in enumerate(d._lcols):
            start = s0 + l * d.n_triua
            vl = _symmetric_from_triu(w[:, start:start + d.n_triua], ca, d._iua)
            gammaa[:, :, cols] = 2.0 * np.matmul(vl, ma[:, :, cols])
        gamma0 = gamma0.reshape(n * d.n_species, d.n_radial)
        gammaa = gammaa.reshape(n * d.n_species, d.n_angular * d.n_ma)
        # dE/dPhi_p: the pair enters atom i directly and atom j with parity (-1)^l
        h0 = gamma0[self._rows_i] + gamma0[self._rows_j]
        ha = (gammaa[self._rows_i].reshape(-1, d.n_angular, d.n_ma)
              + gammaa[self._rows_j].reshape(-1, d.n_angular, d.n_ma) * d._parity)
        ka = d.n_angular
        b = np.einsum("pkm,pk->pm", ha, self._r[:, :ka])
        radial = (np.einsum("pk,pk->p", h0, self._dr[:, :d.n_radial])
                  + np.einsum("pkm,pk,pm->p", ha, self._dr[:, :ka], self._a))
        angular = np.einsum("pm,pma->pa", b, self._dadu)
        along = np.einsum("pm,m,pm->p", b, d._degree, self._a)
        return (self._u * (radial - along / self._d)[:, None]
                + angular / self._d[:, None])

    def vjp(self, w):
        """Forces and virial of a model whose per-atom gradients are ``w = dE/dG``.

        Parameters
        ----------
        w : ndarray, shape (N, D)
            dE/dG_i in eV per descriptor unit.

        Returns
        -------
        forces : ndarray, shape (N, 3)
            ``-dE/dx`` in eV/Å.
        virial : ndarray, shape (3, 3)
            ``dE/d epsilon`` in eV (strain derivative at fixed fractional coordinates);
            stress is ``virial / volume``.
        """
        g = self.pair_gradient(w)
        n = self.n_atoms
        forces = np.empty((n, 3))
        for a in range(3):
            forces[:, a] = (np.bincount(self.i, g[:, a], minlength=n)
                            - np.bincount(self.j, g[:, a], minlength=n))
        virial = g.T @ self.vector
        return forces, virial

    # -- forward mode ------------------------------------------------------------------
    def jvp(self, dx) -> np.ndarray:
        """Directional derivative of G along a displacement field.

        Parameters
        ----------
        dx : ndarray, shape (N, 3)
            Displacement of every atom in Å (cell fixed).

        Returns
        -------
        ndarray, shape (N, D)
            ``sum_j dG_i/dx_j · dx_j``.
        """
        d = self.descriptor
        n = self.n_atoms
        dr = dx[self.j] - dx[self.i]
        along = np.einsum("pa,pa->p", self._u, dr)
        dphi0 = self._dr[:, :d.n_radial] * along[:, None]
        ka = d.n_angular
        dadr = (np.einsum("pma,pa->pm", self._dadu, dr)
                - d._degree * self._a * along[:, None]) / self._d[:, None]
        dphia = (self._dr[:, :ka, None] * self._a[:, None, :] * along[:, None, None]
                 + self._r[:, :ka, None] * dadr[:, None, :])
        dm0, dma = self._scatter(dphi0, dphia.reshape(len(dr), -1))
        c0, ca = d.n_channels0, d.n_channelsa
        m0 = self.m0.reshape(n, c0)
        dm0 = dm0.reshape(n, c0)
        prod0 = dm0[:, :, None] * m0[:, None, :]
        blocks = [dm0, (prod0 + prod0.transpose(0, 2, 1))[:, d._iu0[0], d._iu0[1]]]
        ma = self.ma.reshape(n, ca, d.n_ma)
        dma = dma.reshape(n, ca, d.n_ma)
        for cols in d._lcols:
            pl = np.einsum("icm,idm->icd", dma[:, :, cols], ma[:, :, cols])
            blocks.append((pl + pl.transpose(0, 2, 1))[:, d._iua[0], d._iua[1]])
        a, b, c = d._i3
        blocks.append(dm0[:, a] * m0[:, b] * m0[:, c] + m0[:, a] * dm0[:, b] * m0[:, c]
                      + m0[:, a] * m0[:, b] * dm0[:, c])
        return np.concatenate(blocks, axis=1)

    def _scatter(self, phi0, phia):
        """Sum per-pair values (P, K0) and (P, Ka*Ma) onto (N*S, ...) moment rows."""
        d = self.descriptor
        m0 = self._scatter_i @ phi0 + self._scatter_j @ phi0
        ma = (self._scatter_i @ phia
              + (self._scatter_j @ phia) * np.tile(d._parity, d.n_angular))
        return m0, ma

    # -- design-matrix rows ------------------------------------------------------------
    def _side_jacobian(self, side: str):
        """dG_centre/dr_p, shape (P, D, 3), for the centre atom on one side of each pair."""
        d = self.descriptor
        p = len(self.i)
        centre = self.i if side == "i" else self.j
        other = self.j if side == "i" else self.i
        nb = self.species_index[other]
        ka, ma_n = d.n_angular, d.n_ma
        parity = np.ones(ma_n) if side == "i" else d._parity
        dphi0 = self._dr[:, :d.n_radial, None] * self._u[:, None, :]          # (P,K0,3)
        dadr = (self._dadu - (d._degree * self._a)[:, :, None]
                * self._u[:, None, :]) / self._d[:, None, None]            # (P,Ma,3)
        dphia = (self._dr[:, :ka, None, None] * (self._a[:, :, None] * self._u[:, None, :])[:, None]
                 + self._r[:, :ka, None, None] * dadr[:, None]) * parity[None, None, :, None]
        rows = np.arange(p)
        dm0 = np.zeros((p, d.n_species, d.n_radial, 3))
        dm0[rows, nb] = dphi0
        dm0 = dm0.reshape(p, d.n_channels0, 3)
        dma = np.zeros((p, d.n_species, ka, ma_n, 3))
        dma[rows, nb] = dphia
        dma = dma.reshape(p, d.n_channelsa, ma_n, 3)
        m0 = self.m0.reshape(self.n_atoms, d.n_channels0)[centre]
        prod0 = dm0[:, :, None, :] * m0[:, None, :, None]
        blocks = [dm0, (prod0 + prod0.transpose(0, 2, 1, 3))[:, d._iu0[0], d._iu0[1]]]
        ma = self.ma.reshape(self.n_atoms, d.n_channelsa, ma_n)[centre]
        for cols in d._lcols:
            pl = np.einsum("pcma,pdm->pcda", dma[:, :, cols], ma[:, :, cols])
            blocks.append((pl + pl.transpose(0, 2, 1, 3))[:, d._iua[0], d._iua[1]])
        a, b, c = d._i3
        blocks.append(dm0[:, a] * (m0[:, b] * m0[:, c])[:, :, None]
                      + dm0[:, b] * (m0[:, a] * m0[:, c])[:, :, None]
                      + dm0[:, c] * (m0[:, a] * m0[:, b])[:, :, None])
        return np.concatenate(blocks, axis=1), centre

    def summed_jacobian(self):
        """Per-element sums of G and their derivatives (rows of a linear model's fit).

        For ``E = sum_e w_e · Gsum[e]`` the forces are ``-einsum('jaed,ed->ja', dx, w)``
        and the virial ``einsum('abed,ed->ab', deps, w)``.

        Returns
        -------
        gsum : ndarray, shape (S, D)
            ``sum_{i: Z_i = e} G_i``.
        dx : ndarray, shape (N, 3, S, D)
            ``d gsum[e] / d x_j`` in 1/Å.
        deps : ndarray, shape (3, 3, S, D)
            ``d gsum[e] / d epsilon_ab`` (homogeneous strain, fractional coordinates
            fixed).
        """
        d = self.descriptor
        n, s, dim = self.n_atoms, d.n_species, d.n_features
        g = self.features()
        gsum = np.zeros((s, dim))
        np.add.at(gsum, self.species_index, g)
        dx = np.zeros((n, 3, s, dim))
        deps = np.zeros((3, 3, s, dim))
        p = len(self.i)
        if p == 0:
            return gsum, dx, deps
        # r_p = x_j - x_i + shift @ cell: d/dx_j = +d/dr_p, d/dx_i = -d/dr_p
        incidence = sp.csr_matrix(
            (np.r_[np.ones(p), -np.ones(p)], (np.r_[self.j, self.i], np.r_[np.arange(p), np.arange(p)])),
            shape=(n, p))
        for side in ("i", "j"):
            jac, centre = self._side_jacobian(side)               # (P, D, 3)
            element = self.species_index[centre]
            for e in range(s):
                mask = element == e
                if not mask.any():
                    continue
                je = jac * mask[:, None, None]
                dx[:, :, e, :] += (incidence @ je.reshape(p, -1)).reshape(n, dim, 3) \
                    .transpose(0, 2, 1)
                deps[:, :, e, :] += np.einsum("pda,pb->abd", je, self.vector)
        return gsum, dx, deps


class Descriptor:
    """Density-expansion descriptor for a fixed list of elements.

    Parameters
    ----------
    species : sequence of str
        Element symbols, e.g. ``["Cu", "Au"]``; their order fixes the channel order.
    cutoff : float, default 5.5
        Cutoff radius r_c in Å.
    r_on : float, default 0.0
        Start of the quintic switching function in Å (``0 <= r_on < cutoff``).
    n_radial : int, default 8
        Number of radial functions K0 for the radial (l = 0) channels.
    n_angular : int, default 5
        Number of radial functions Ka (<= n_radial) for the angular channels l >= 1.
    l_max : int, default 3
        Largest angular degree.
    r_min : float, default 1.5
        Lower end (Å) of the interval [r_min, r_c] mapped onto [-1, 1] for the Chebyshev
        polynomials; shorter distances are extrapolated smoothly.
    n_cubic : int, default 0
        Number of radial functions per element whose densities also enter as cubic
        products ``M0_a M0_b M0_c`` (a <= b <= c): the curvature of an embedding
        function, as in EAM/EMT.

    Attributes
    ----------
    n_features : int
        D, the length of every atom's descriptor vector.
    """

    def __init__(self, species, cutoff: float = 5.5, r_on: float = 0.0, n_radial: int = 8,
                 n_angular: int = 5, l_max: int = 3, r_min: float = 1.5, n_cubic: int = 0):
        self.species = [str(s) for s in species]
        unknown = [s for s in self.species if s not in atomic_numbers]
        if unknown or len(set(self.species)) != len(self.species) or not self.species:
            raise ValueError(f"species must be distinct element symbols, got {species!r}")
        if not 0.0 <= r_on < cutoff or not r_min < cutoff:
            raise ValueError("need 0 <= r_on < cutoff and r_min < cutoff")
        if not 1 <= n_angular <= n_radial or l_max < 1:
            raise ValueError("need 1 <= n_angular <= n_radial and l_max >= 1")
        self.cutoff, self.r_on, self.r_min = float(cutoff), float(r_on), float(r_min)
        self.n_radial, self.n_angular, self.l_max = int(n_radial), int(n_angular), int(l_max)
        self.n_species = len(self.species)
        self._z_to_index = np.full(len(chemical_symbols), -1)
        for k, s in enumerate(self.species):
            self._z_to_index[atomic_numbers[s]] = k
        exponents, coefficient, degree = monomial_table(self.l_max)
        keep = degree > 0
        self._exponents, self._coefficient = exponents[keep], coefficient[keep]
        self._degree = degree[keep].astype(float)
        self._parity = (-1.0) ** self._degree
        self._lcols = [np.flatnonzero(self._degree == l) for l in range(1, self.l_max + 1)]
        # each monomial as (parent monomial, axis): mono[m] = mono[parent] * u[axis];
        # derivative d mono[m] / du_a = e_a * mono[m - unit_a]
        index = {tuple(e): k for k, e in enumerate(exponents)}
        self._n_mono = len(exponents)
        self._mono_parent = [(0, 0)]
        for e in exponents[1:]:
            axis = int(np.flatnonzero(e)[0])
            lower = e.copy()
            lower[axis] -= 1
            self._mono_parent.append((index[tuple(lower)], axis))
        lower_idx = np.zeros((len(self._degree), 3), dtype=int)
        for k, e in enumerate(self._exponents):
            for axis in range(3):
                lower = e.copy()
                lower[axis] = max(lower[axis] - 1, 0)
                lower_idx[k, axis] = index[tuple(lower)]
        self._mono_lower = lower_idx
        self._dcoef = self._coefficient[:, None] * self._exponents
        self.n_ma = len(self._degree)
        self.n_channels0 = self.n_species * self.n_radial
        self.n_channelsa = self.n_species * self.n_angular
        self._iu0 = np.triu_indices(self.n_channels0)
        self._iua = np.triu_indices(self.n_channelsa)
        self.n_triu0 = len(self._iu0[0])
        self.n_triua = len(self._iua[0])
        if not 0 <= n_cubic <= n_radial:
            raise ValueError("need 0 <= n_cubic <= n_radial")
        self.n_cubic = int(n_cubic)
        cubic = [s * self.n_radial + k for s in range(self.n_species) for k in range(self.n_cubic)]
        triples = [(a, b, c) for x, a in enumerate(cubic) for y, b in enumerate(cubic[x:], x)
                   for c in cubic[y:]]
        self._i3 = np.array(triples, dtype=int).reshape(-1, 3).T
        self.n_triple = self._i3.shape[1]
        self._e3 = [np.eye(self.n_channels0)[idx] for idx in self._i3]   # (T3, C0) each
        self.n_features = (self.n_channels0 + self.n_triu0 + self.l_max * self.n_triua
                           + self.n_triple)

    def get_params(self) -> dict:
        """Constructor arguments (to store next to fitted weights)."""
        return dict(species=list(self.species), cutoff=self.cutoff, r_on=self.r_on,
                    n_radial=self.n_radial, n_angular=self.n_angular, l_max=self.l_max,
                    r_min=self.r_min, n_cubic=self.n_cubic)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"Descriptor({args})"

    def feature_names(self) -> list[str]:
        """Human-readable name of each of the D features."""
        ch0 = [f"{s}{k}" for s in self.species for k in range(self.n_radial)]
        cha = [f"{s}{k}" for s in self.species for k in range(self.n_angular)]
        names = [f"R[{c}]" for c in ch0]
        names += [f"R[{ch0[a]}]R[{ch0[b]}]" for a, b in zip(*self._iu0)]
        for l in range(1, self.l_max + 1):
            names += [f"P{l}[{cha[a]},{cha[b]}]" for a, b in zip(*self._iua)]
        names += [f"R[{ch0[a]}]R[{ch0[b]}]R[{ch0[c]}]" for a, b, c in self._i3.T]
        return names

    def species_index(self, atoms) -> np.ndarray:
        """Index into ``self.species`` of every atom, shape (N,).

        Raises
        ------
        ValueError
            If the structure contains an element the descriptor does not know.
        """
        idx = self._z_to_index[atoms.numbers]
        if np.any(idx < 0):
            bad = sorted({chemical_symbols[z] for z in atoms.numbers[idx < 0]})
            raise ValueError(f"unsupported species {bad}; this model knows {self.species}")
        return idx

    def radial(self, r):
        """Radial functions and derivatives, each of shape (P, n_radial), r in Å."""
        x = 2.0 * (r - self.r_min) / (self.cutoff - self.r_min) - 1.0
        t, dt = chebyshev(x, self.n_radial)
        fc, dfc, _ = quintic_switch(r, self.r_on, self.cutoff)
        scale = 2.0 / (self.cutoff - self.r_min)
        return t * fc[:, None], dt * (scale * fc)[:, None] + t * dfc[:, None]

    def angular(self, u):
        """Monomials of degree 1..l_max of unit vectors.

        Parameters
        ----------
        u : ndarray, shape (P, 3)

        Returns
        -------
        a : ndarray, shape (P, Ma)
            Normalised monomials ``A_m(u)``.
        dadu : ndarray, shape (P, Ma, 3)
            ``dA_m/du`` (derivative of the polynomial, not restricted to the sphere).
        """
        mono = np.empty((self._n_mono, len(u)))   # unnormalised, all degrees, row-major
        mono[0] = 1.0
        ut = u.T
        for m, (parent, axis) in enumerate(self._mono_parent[1:], start=1):
            np.multiply(mono[parent], ut[axis], out=mono[m])
        a = (mono[1:] * self._coefficient[:, None]).T
        dadu = (mono[self._mono_lower] * self._dcoef[:, :, None]).transpose(2, 0, 1)
        return a, dadu

    def expand(self, atoms) -> DensityExpansion:
        """Pair quantities and moments of a structure (see :class:`DensityExpansion`)."""
        species_index = self.species_index(atoms)
        nl = neighbor_list(atoms, self.cutoff, full=False)
        n, s = len(atoms), self.n_species
        r, dr = self.radial(nl.distance)
        u = nl.vector / nl.distance[:, None] if len(nl.i) else np.zeros((0, 3))
        a, dadu = self.angular(u)
        rows_i = nl.i * s + species_index[nl.j]
        rows_j = nl.j * s + species_index[nl.i]
        p = len(nl.i)
        ones = np.ones(p)
        scatter_i = sp.csr_matrix((ones, (rows_i, np.arange(p))), shape=(n * s, p))
        scatter_j = sp.csr_matrix((ones, (rows_j, np.arange(p))), shape=(n * s, p))
        rank = np.linalg.matrix_rank(atoms.cell.array) if np.any(atoms.pbc) else 0
        volume = abs(atoms.cell.volume) if rank == 3 else None
        exp = DensityExpansion(
            descriptor=self, species_index=species_index, i=nl.i, j=nl.j,
            vector=nl.vector, volume=volume, _u=u, _d=nl.distance, _r=r, _dr=dr, _a=a,
            _dadu=dadu, _scatter_i=scatter_i, _scatter_j=scatter_j, _rows_i=rows_i,
            _rows_j=rows_j, m0=None, ma=None)
        phia = (r[:, :self.n_angular, None] * a[:, None, :]).reshape(p, self.n_angular * self.n_ma)
        exp.m0, exp.ma = exp._scatter(r, phia)
        return exp

    # -- conveniences ----------------------------------------------------------------
    def compute(self, atoms) -> np.ndarray:
        """Per-atom descriptors G, shape (N, D)."""
        return self.expand(atoms).features()

    def forces_and_virial(self, atoms, w):
        """Forces (N, 3) in eV/Å and virial (3, 3) in eV for per-atom ``w = dE/dG`` (N, D)."""
        return self.expand(atoms).vjp(w)


def concatenate(expansions) -> DensityExpansion:
    """Join expansions of several structures into one block-diagonal expansion.

    Atoms and pairs are stacked in order (atom offsets added to the pair indices), so
    :meth:`DensityExpansion.vjp` and :meth:`DensityExpansion.jvp` act on all structures
    at once -- one call per training batch instead of one per structure.  The volume is
    None (per-structure virials are not separated).

    Parameters
    ----------
    expansions : sequence of DensityExpansion
        From the same :class:`Descriptor`.

    Returns
    -------
    DensityExpansion
    """
    expansions = list(expansions)
    d = expansions[0].descriptor
    s = d.n_species
    offsets = np.cumsum([0] + [e.n_atoms for e in expansions])
    cat = np.concatenate
    i = cat([e.i + o for e, o in zip(expansions, offsets)])
    j = cat([e.j + o for e, o in zip(expansions, offsets)])
    rows_i = cat([e._rows_i + o * s for e, o in zip(expansions, offsets)])
    rows_j = cat([e._rows_j + o * s for e, o in zip(expansions, offsets)])
    n, p = offsets[-1], len(i)
    ones = np.ones(p)
    return DensityExpansion(
        descriptor=d, species_index=cat([e.species_index for e in expansions]), i=i, j=j,
        vector=cat([e.vector for e in expansions]), volume=None,
        _u=cat([e._u for e in expansions]), _d=cat([e._d for e in expansions]),
        _r=cat([e._r for e in expansions]), _dr=cat([e._dr for e in expansions]),
        _a=cat([e._a for e in expansions]), _dadu=cat([e._dadu for e in expansions]),
        _scatter_i=sp.csr_matrix((ones, (rows_i, np.arange(p))), shape=(n * s, p)),
        _scatter_j=sp.csr_matrix((ones, (rows_j, np.arange(p))), shape=(n * s, p)),
        _rows_i=rows_i, _rows_j=rows_j,
        m0=cat([e.m0 for e in expansions]), ma=cat([e.ma for e in expansions]))
