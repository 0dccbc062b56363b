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
from numpy.polynomial.chebyshev import chebder
from ase.data import atomic_numbers, chemical_symbols

from .neighbors import neighbor_list
from .switching import quintic_switch

__all__ = ["Descriptor", "DensityExpansion", "concatenate", "monomial_table", "chebyshev",
           "cell_volume"]


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


def chebyshev(x, n: int, n_derivatives: int | None = None):
    """Chebyshev polynomials ``T_k(x)`` and derivatives for ``k = 0 .. n-1``.

    Parameters
    ----------
    x : ndarray, shape (P,)
    n : int
        Number of polynomials (>= 1).
    n_derivatives : int, optional
        Number of derivatives (default n); ``dt`` then has that many columns.

    Returns
    -------
    t : ndarray, shape (P, n)
        ``T_k(x)``.
    dt : ndarray, shape (P, n_derivatives)
        ``dT_k/dx``.
    """
    m = n if n_derivatives is None else min(n_derivatives, n)
    t = np.empty((n, len(x)))       # rows contiguous while building
    dt = np.empty((m, len(x)))
    t[0] = 1.0
    if m:
        dt[0] = 0.0
    if n > 1:
        t[1] = x
    if m > 1:
        dt[1] = 1.0
    x2 = 2.0 * x
    for k in range(2, n):
        np.multiply(x2, t[k - 1], out=t[k])
        t[k] -= t[k - 2]
        if k < m:
            np.multiply(x2, dt[k - 1], out=dt[k])
            dt[k] += 2.0 * t[k - 1]
            dt[k] -= dt[k - 2]
    return t.T, dt.T


CHUNK = 4096  # pairs per block in the reverse pass: keeps temporaries in cache
ATOM_CHUNK = 128  # atoms per block of the products (features and their gradients)


def _chunks(n: int, size: int = CHUNK):
    return [slice(k, min(k + size, n)) for k in range(0, n, size)]


def _scatter_matrix(rows, n_rows: int, values=None) -> sp.csc_matrix:
    """Sparse (n_rows, P) matrix with ``values[p]`` (default 1) in row ``rows[p]`` of column p.

    ``matrix @ x`` sums per-pair values x (P, k) onto rows -- much faster than
    ``np.add.at``; built directly in CSC form (one entry per column), so no sorting.
    """
    p = len(rows)
    values = np.ones(p) if values is None else values
    return sp.csc_matrix((values, rows, np.arange(p + 1)), shape=(n_rows, p))


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
    _scatter_i: sp.csc_matrix = field(repr=False)
    _scatter_j: sp.csc_matrix = field(repr=False)
    _rows_i: np.ndarray = field(repr=False)
    _rows_j: np.ndarray = field(repr=False)
    m0: np.ndarray = field(repr=False)
    ma: np.ndarray = field(repr=False)
    _basis: tuple | None = field(default=None, repr=False)
    _rx: np.ndarray | None = field(default=None, repr=False)
    _drx: np.ndarray | None = field(default=None, repr=False)
    _m_self: np.ndarray | None = field(default=None, repr=False)
    _kinds: tuple | None = field(default=None, repr=False)
    _gate: tuple | None = field(default=None, repr=False)
    m_gated: np.ndarray | None = field(default=None, repr=False)

    @property
    def _dadu(self) -> np.ndarray:
        """dA_m/du for all pairs, shape (P, Ma, 3) (recomputed; not stored)."""
        return self.descriptor.angular(self._u)[1]

    @property
    def n_atoms(self) -> int:
        return len(self.species_index)

    # -- forward ---------------------------------------------------------------------
    def _self_values(self):
        """Self-term radial functions X (P, Q) and dX/dr of every pair, computed on first use
        from the stored Chebyshev basis (see :meth:`Descriptor.self_radial`)."""
        if self._rx is None:
            d = self.descriptor
            n = d._n_chebyshev
            self._rx, self._drx = d._self_from_basis(*d._basis(self._d, n, n))
        return self._rx, self._drx

    @property
    def m_self(self) -> np.ndarray | None:
        """Self-term densities ``sum_j X_q(r_ij)`` (N*S, Q) of ``exclude_self`` descriptors.

        ``X_q`` are :meth:`Descriptor.self_radial` (``T_n fc²``, ``T_n fc³``); computed on
        first use (the linear model's fast path never needs them).
        """
        if not self.descriptor.exclude_self:
            return None
        if self._m_self is None:
            rx, _ = self._self_values()
            self._m_self = self._scatter_i @ rx + self._scatter_j @ rx
        return self._m_self

    def features(self, subtract_self: bool = True) -> np.ndarray:
        """Descriptors G, shape (N, D).

        With ``subtract_self=False`` the products keep their self (j = k) terms even for
        an ``exclude_self`` descriptor; ``G = G_raw - self`` then holds with
        :meth:`self_energies` giving ``w · self`` (the linear model's fast path).
        """
        d = self.descriptor
        n = self.n_atoms
        c0, s0 = d.n_channels0, d.n_channels0 + d.n_triu0
        # built feature-major, (D, N), so every block is a contiguous row range and
        # every gather a row copy; returned as its (N, D) transpose
        gt = np.empty((d.n_features, n))
        gt[:c0] = self.m0.reshape(n, c0).T
        mat = np.ascontiguousarray(self.ma.reshape(n, d.n_channelsa, d.n_ma).transpose(1, 2, 0))
        ia, ib = d._iua
        a, b, c = d._i3
        # in blocks of atoms: the (products, atoms) temporaries stay in cache
        for sl in _chunks(n, ATOM_CHUNK):
            m0t = gt[:c0, sl]
            np.multiply(m0t[d._iu0[0]], m0t[d._iu0[1]], out=gt[c0:s0, sl])
            for l, cols in enumerate(d._lcols):
                ml = mat[:, cols, sl]                            # (Ca, n_l, block)
                start = s0 + l * d.n_triua
                gt[start:start + d.n_triua, sl] = np.einsum("tmn,tmn->tn", ml[ia], ml[ib])
            if d.n_triple:
                gt[d._cubic, sl] = m0t[a] * m0t[b] * m0t[c]
        if d.exclude_self and subtract_self:
            ms = self.m_self.reshape(n, d.n_species, d.n_self)
            for b in range(d.n_species):
                gt[d._self_cols[b]] -= (ms[:, b] @ d._self_map).T
        if d.n_gated:
            gt[d._gated] = self.m_gated.reshape(n, -1).T
        return gt.T

    @property
    def coordination(self) -> np.ndarray:
        """Smooth coordination ``c_i = sum_j fc(r_ij)`` (N,) and, per pair, dfc/dr (P,).

        Returned as ``(c, dfc)``; an atom with a single neighbour has ``c < 1``.
        """
        if self._basis is not None:
            fc, dfc = self._basis[3], self._basis[4]
        else:
            fc, dfc, _ = quintic_switch(self._d, self.descriptor.r_on, self.descriptor.cutoff)
        n = self.n_atoms
        return (np.bincount(self.i, fc, minlength=n) + np.bincount(self.j, fc, minlength=n),
                dfc)

    @property
    def gate_active(self) -> bool:
        """Whether any pair of the structure has a non-zero gate (else the gated
        densities and all their derivatives vanish)."""
        return self._gate is not None and bool(self._gate[-1])

    def _gated_radial_gradient(self, gamma) -> np.ndarray:
        """d/dr_p (along the bond) of ``sum_i gamma_i · M_gated_i``, shape (P,).

        ``gamma`` (N*S, Kg) is dE/dM_gated per (atom, neighbour element) row.  Besides
        its own term ``R'_k h``, a pair changes every gate of its two atoms through
        their coordination: ``dE/dfc_p = (S_i - phi_ip h'_ip) + (S_j - phi_jp h'_jp)``
        with ``phi_ip = gamma[i, Z_j] · R(r_p)`` and ``S_i = sum_q phi_iq h'_iq``.
        """
        d = self.descriptor
        h_i, dh_i, h_j, dh_j, dfc, _ = self._gate
        kg = d.n_gated
        r, dr = self._r[:, :kg], self._dr[:, :kg]
        g_i, g_j = gamma[self._rows_i], gamma[self._rows_j]
        phi_i = np.einsum("pk,pk->p", g_i, r)
        phi_j = np.einsum("pk,pk->p", g_j, r)
        n = self.n_atoms
        total = (np.bincount(self.i, phi_i * dh_i, minlength=n)
                 + np.bincount(self.j, phi_j * dh_j, minlength=n))
        return (np.einsum("pk,pk->p", g_i, dr) * h_i + np.einsum("pk,pk->p", g_j, dr) * h_j
                + dfc * (total[self.i] - phi_i * dh_i + total[self.j] - phi_j * dh_j))

    def self_energies(self, w) -> np.ndarray:
        """Per-atom ``w[Z_i] · (G_raw_i - G_i)`` (N,) for per-element weights w (S, D).

        The self terms of an ``exclude_self`` descriptor are pair functions, so for a
        linear model they are a pair potential per (centre, neighbour) element:
        ``sum_j c[Z_i, Z_j] · X(r_ij)``, evaluated without forming the self densities.
        Zero for descriptors that keep their self terms.
        """
        return self.self_terms(w)[0]

    def self_terms(self, w):
        """Self-term pair potential of per-element weights w (S, D): energies and gradient.

        Returns
        -------
        energies : ndarray, shape (N,)
            ``w[Z_i] · (G_raw_i - G_i)`` in eV (see :meth:`self_energies`).
        radial : ndarray, shape (P,) or None
            d/d|r_p| of ``-sum_i energies_i`` in eV/Å: the self terms' part of
            :meth:`pair_gradient` for ``per_element=True`` (None without self terms).

        In Chebyshev form ``phi(r) = fc² A(x) + fc³ B(x)`` per (centre, neighbour)
        element pair, with ``A'``, ``B'`` from the derivative series: one small matrix
        product with the pairs' Chebyshev rows.
        """
        d = self.descriptor
        n = self.n_atoms
        if not d.exclude_self or len(self.i) == 0:
            return np.zeros(n), None
        t, _, dxdr, fc, dfc = self._basis
        coef = d._chebyshev_coefficients(d.self_coefficients(w))           # (2 S*S, n_t)
        dcoef = np.zeros_like(coef)
        dcoef[:, :-1] = chebder(coef, axis=1)
        ab = (np.vstack([coef, dcoef]) @ t).ravel()                          # (4 S*S, P)
        k_i, k_j = self._pair_kinds
        shift = d.n_species ** 2 * len(fc)
        a_i, a_j = ab.take(k_i), ab.take(k_j)
        b_i, b_j = ab.take(k_i + shift), ab.take(k_j + shift)
        fc2 = fc * fc
        phi_i = fc2 * (a_i + fc * b_i)
        phi_j = fc2 * (a_j + fc * b_j)
        energies = (np.bincount(self.i, phi_i, minlength=n)
                    + np.bincount(self.j, phi_j, minlength=n))
        da = ab.take(k_i + 2 * shift) + ab.take(k_j + 2 * shift)
        db = ab.take(k_i + 3 * shift) + ab.take(k_j + 3 * shift)
        radial = -fc * (dfc * (2.0 * (a_i + a_j) + 3.0 * fc * (b_i + b_j))
                        + fc * dxdr * (da + fc * db))
        return energies, radial

    @property
    def _pair_kinds(self):
        """Flat indices ``(Z_i S + Z_j) P + p`` and ``(Z_j S + Z_i) P + p`` into (S*S, P) arrays."""
        if self._kinds is None:
            s, p = self.descriptor.n_species, len(self.i)
            zi, zj = self.species_index[self.i], self.species_index[self.j]
            at = np.arange(p)
            self._kinds = ((zi * s + zj) * p + at, (zj * s + zi) * p + at)
        return self._kinds

    def _self_radial_gradient(self, w, per_element: bool) -> np.ndarray:
        """d/dr_p (along the bond) of ``-sum_i w_i · self_i``, shape (P,)."""
        d = self.descriptor
        s = d.n_species
        if per_element:
            return self.self_terms(w)[1]
        n = self.n_atoms
        gamma = np.empty((n, s, d.n_self))
        for b in range(s):
            gamma[:, b] = w[:, d._self_cols[b]] @ d._self_map.T
        gamma = gamma.reshape(n * s, d.n_self)
        _, drx = self._self_values()
        return -np.einsum("pq,pq->p", gamma[self._rows_i] + gamma[self._rows_j], drx)

    # -- reverse mode: forces and virial -----------------------------------------------
    def pair_gradient(self, w=None, per_element: bool = False, raw=None,
                      self_radial=None, energies=None) -> np.ndarray:
        """dE/dr_p for every pair of a model with per-atom gradients ``w = dE/dG``.

        Parameters
        ----------
        w : ndarray, shape (N, D), or (S, D) with ``per_element=True``, optional
            dE/dG_i in eV per descriptor unit; per element for a linear model, which
            takes a faster path (the weights become small dense matrices per element).
        raw : ndarray, shape (N, D), optional
            Further per-atom gradients w.r.t. the raw products
            (``features(subtract_self=False)``; its gated columns are ignored), e.g. of a
            network reading them, added to ``w``'s.
        self_radial : ndarray, shape (P,), optional
            The self terms' part for per-element ``w``, if already computed by
            :meth:`self_terms`.
        energies : ndarray, shape (N,), optional
            With per-element ``w`` and no ``raw``: filled with ``w[Z_i] · G_raw_i``
            (eV) on the way (see :meth:`_moment_gradients_per_element`).

        Returns
        -------
        ndarray, shape (P, 3)
            dE/dr_p in eV/Å.
        """
        d = self.descriptor
        n = self.n_atoms
        w = None if w is None else np.asarray(w, dtype=float)
        if raw is not None:
            if w is None:
                total = raw
            elif per_element:
                total = raw + w[self.species_index]
            else:
                total = raw + w
            gamma0, gammaa = self._moment_gradients(total)
        elif per_element:
            gamma0, gammaa = self._moment_gradients_per_element(w, energies)
        else:
            gamma0, gammaa = self._moment_gradients(w)
        gamma0 = gamma0.reshape(n * d.n_species, d.n_radial)
        gammaa = gammaa.reshape(n * d.n_species, d.n_angular, d.n_ma)
        out = np.empty((len(self.i), 3))
        for sl in _chunks(len(self.i)):
            out[sl] = self._pair_gradient_chunk(sl, gamma0, gammaa)
        if w is None:
            return out
        if d.exclude_self and len(self.i):
            if self_radial is None:
                self_radial = self._self_radial_gradient(w, per_element)
            out += self._u * self_radial[:, None]
        if self.gate_active:
            wg = w[:, d._gated]
            gamma = (wg[self.species_index] if per_element else wg).reshape(n * d.n_species, -1)
            out += self._u * self._gated_radial_gradient(gamma)[:, None]
        return out

    def _moment_gradients_per_element(self, w, energies=None):
        """dE/dM0 (N, C0) and dE/dMa (N, Ca, Ma) for per-element weights w (S, D).

        With ``energies`` (N,) given, it is filled with ``w[Z_i] · G_raw_i`` (the raw
        products; see :meth:`features`): every block is a homogeneous polynomial of the
        moments, so by Euler's theorem its value is ``M · dE/dM`` over its degree --
        the energies of a linear model without forming G.
        """
        d = self.descriptor
        n = self.n_atoms
        c0, ca = d.n_channels0, d.n_channelsa
        m0 = self.m0.reshape(n, c0)
        ma = self.ma.reshape(n, ca, d.n_ma)
        gamma0 = np.empty((n, c0))
        gammaa = np.empty_like(ma)
        for e in range(d.n_species):
            rows = np.flatnonzero(self.species_index == e)
            if len(rows) == 0:
                continue
            mats = d.weight_matrices(w[e])
            me = m0[rows]
            quad = me @ mats["pair"]
            g0 = mats["linear"] + quad
            if d.n_triple:
                cubic = (me[:, :, None] * me[:, None, :]).reshape(len(rows), -1) @ mats["cubic"]
                g0 += cubic
            gamma0[rows] = g0
            sub = ma[rows]
            gsub = np.empty_like(sub)
            for l, cols in enumerate(d._lcols):
                gsub[:, :, cols] = np.matmul(mats["angular"][l], sub[:, :, cols])
            gammaa[rows] = gsub
            if energies is not None:
                value = me @ mats["linear"] + 0.5 * np.einsum("rc,rc->r", me, quad)
                if d.n_triple:
                    value += np.einsum("rc,rc->r", me, cubic) / 3.0
                value += 0.5 * np.einsum("rcm,rcm->r", sub, gsub)
                if d.n_gated:
                    value += self.m_gated.reshape(n, -1)[rows] @ w[e, d._gated]
                energies[rows] = value
        return gamma0, gammaa

    def _moment_gradients(self, w):
        """dE/dM0 (N, C0) and dE/dMa (N, Ca, Ma) for per-atom weights w (N, D)."""
        d = self.descriptor
        n = self.n_atoms
        c0, ca, s0 = d.n_channels0, d.n_channelsa, d.n_channels0 + d.n_triu0
        m0 = self.m0.reshape(n, c0)
        # feature-major (rows = channels or products) so that gathers are row copies;
        # d(M_a M_b)/dM and d(M_a M_b M_c)/dM summed with sparse one-hot matrices, in
        # blocks of atoms so that the (products, atoms) temporaries stay in cache
        m0t_all = np.ascontiguousarray(m0.T)
        w0t_all = np.ascontiguousarray(w[:, c0:s0].T)
        w3t_all = np.ascontiguousarray(w[:, d._cubic].T)
        ia, ib = d._iu0
        a, b, c = d._i3
        gamma0t = np.empty((c0, n))
        for sl in _chunks(n, ATOM_CHUNK):
            m0t, w0t = m0t_all[:, sl], w0t_all[:, sl]
            g = d._e0t[0] @ (w0t * m0t[ib]) + d._e0t[1] @ (w0t * m0t[ia])
            if d.n_triple:
                w3t = w3t_all[:, sl]
                ma_, mb_, mc_ = m0t[a], m0t[b], m0t[c]
                g += (d._e3t[0] @ (w3t * mb_ * mc_) + d._e3t[1] @ (w3t * ma_ * mc_)
                      + d._e3t[2] @ (w3t * ma_ * mb_))
            gamma0t[:, sl] = g
        gamma0 = w[:, :c0] + gamma0t.T
        ma = self.ma.reshape(n, ca, d.n_ma)
        gammaa = np.empty_like(ma)
        for l, cols in enumerate(d._lcols):
            start = s0 + l * d.n_triua
            vl = (w[:, start:start + d.n_triua] @ d._esym).reshape(n, ca, ca)
            gammaa[:, :, cols] = 2.0 * np.matmul(vl, ma[:, :, cols])
        return gamma0, gammaa

    def _pair_gradient_chunk(self, sl, gamma0, gammaa):
        """dE/dr_p for the pairs in slice ``sl`` given per-row moment gradients."""
        d = self.descriptor
        ka = d.n_angular
        ri, rj = self._rows_i[sl], self._rows_j[sl]
        # dE/dPhi_p: the pair enters atom i directly and atom j with parity (-1)^l
        h0 = gamma0[ri] + gamma0[rj]
        ha = gammaa[ri] + gammaa[rj] * d._parity
        r, dr, a, dist, u = self._r[sl], self._dr[sl], self._a[sl], self._d[sl], self._u[sl]
        # b[p, 0, m] = sum_k R_k H_km, b[p, 1, m] = sum_k R'_k H_km
        b = np.matmul(np.stack([r[:, :ka], dr[:, :ka]], axis=1), ha)
        radial = (np.einsum("pk,pk->p", h0, dr)
                  + np.einsum("pm,pm->p", b[:, 1] - b[:, 0] * d._degree / dist[:, None], a))
        # sum_m b_m dA_m/du_a = sum_q (b @ L)[a, q] * monomial_q(u), degree q < l_max
        lower = (b[:, 0] @ d._lower_map).reshape(len(dist), 3, -1)
        angular = np.einsum("paq,pq->pa", lower, d.monomials(u, d._n_lower))
        return u * radial[:, None] + angular / dist[:, None]

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
        return self.scatter_pair_gradient(self.pair_gradient(w))

    def scatter_pair_gradient(self, g):
        """Forces (N, 3) in eV/Å and virial (3, 3) in eV from dE/dr_p (P, 3)."""
        n = self.n_atoms
        forces = np.empty((n, 3))
        for a in range(3):
            forces[:, a] = (np.bincount(self.i, g[:, a], minlength=n)
                            - np.bincount(self.j, g[:, a], minlength=n))
        virial = g.T @ self.vector
        return forces, virial

    # -- forward mode ------------------------------------------------------------------
    def jvp(self, dx=None, pair_dr=None, subtract_self: bool = True) -> np.ndarray:
        """Directional derivative of G along a displacement field.

        Parameters
        ----------
        dx : ndarray, shape (N, 3), optional
            Displacement of every atom in Å (cell fixed).
        pair_dr : ndarray, shape (P, 3), optional
            Additional change of every pair vector in Å, e.g. ``r_p @ eps.T`` for a
            homogeneous strain ``eps``.
        subtract_self : bool
            False: of the raw products (see :meth:`features`).

        Returns
        -------
        ndarray, shape (N, D)
            ``sum_p dG/dr_p · dr_p`` with ``dr_p = dx_j - dx_i + pair_dr_p``.
        """
        d = self.descriptor
        n = self.n_atoms
        dr = np.zeros((len(self.i), 3)) if pair_dr is None else np.array(pair_dr, dtype=float)
        if dx is not None:
            dr += dx[self.j] - dx[self.i]
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
        blocks.append(np.zeros((n, d.n_species * d.n_gated)))
        out = np.concatenate(blocks, axis=1)
        if d.exclude_self and subtract_self:
            dxs = self._self_values()[1] * along[:, None]
            dms = (self._scatter_i @ dxs + self._scatter_j @ dxs).reshape(n, d.n_species, -1)
            for s in range(d.n_species):
                out[:, d._self_cols[s]] -= dms[:, s] @ d._self_map
        if self.gate_active:
            h_i, dh_i, h_j, dh_j, dfc, _ = self._gate
            kg = d.n_gated
            dfc_along = dfc * along
            dcoord = (np.bincount(self.i, dfc_along, minlength=n)
                      + np.bincount(self.j, dfc_along, minlength=n))
            dz_i = dcoord[self.i] - dfc_along
            dz_j = dcoord[self.j] - dfc_along
            r, dr_ = self._r[:, :kg], self._dr[:, :kg] * along[:, None]
            side_i = dr_ * h_i[:, None] + r * (dh_i * dz_i)[:, None]
            side_j = dr_ * h_j[:, None] + r * (dh_j * dz_j)[:, None]
            out[:, d._gated] = (self._scatter_i @ side_i + self._scatter_j @ side_j).reshape(n, -1)
        return out

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
        if d.n_gated:
            blocks.append(self._gated_side_jacobian(side, nb))
        jac = np.concatenate(blocks, axis=1)
        if d.exclude_self:
            dself = (self._self_values()[1] @ d._self_map)[:, :, None] * self._u[:, None, :]
            for s in range(d.n_species):
                rows_s = np.flatnonzero(nb == s)
                jac[rows_s[:, None], d._self_cols[s][None, :]] -= dself[rows_s]
        return jac, centre

    def _gated_side_jacobian(self, side: str, nb) -> np.ndarray:
        """d M_gated[centre] / dr_p, shape (P, S*Kg, 3), for one side of every pair."""
        d = self.descriptor
        p, s, kg = len(self.i), d.n_species, d.n_gated
        out = np.zeros((p, s, kg, 3))
        if not self.gate_active:
            return out.reshape(p, s * kg, 3)
        h_i, dh_i, h_j, dh_j, dfc, _ = self._gate
        h, dh = (h_i, dh_i) if side == "i" else (h_j, dh_j)
        centre = self.i if side == "i" else self.j
        r, dr = self._r[:, :kg], self._dr[:, :kg]
        # T[a, b, k] = sum over pairs q of centre a with neighbour element b of R_k h'
        t = (self._scatter_i @ (r * dh_i[:, None])
             + self._scatter_j @ (r * dh_j[:, None])).reshape(self.n_atoms, s, kg)
        out += (dfc[:, None, None] * t[centre])[..., None] * self._u[:, None, None, :]
        rows = np.arange(p)
        own = dr * h[:, None] - r * (dh * dfc)[:, None]
        out[rows, nb] += own[:, :, None] * self._u[:, None, :]
        return out.reshape(p, s * kg, 3)

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
    radial_decay : float, default 0.0
        If positive (1/Å), the Chebyshev argument is linear in ``exp(-radial_decay r)``
        instead of r (see :meth:`scaled_distance`).
    n_cubic : int, default 0
        Number of radial functions per element whose densities also enter as cubic
        products ``M0_a M0_b M0_c`` (a <= b <= c): the curvature of an embedding
        function, as in EAM/EMT.
    exclude_self : bool, default False
        Remove the self (j = k) terms from every product of densities: the quadratic
        and angular invariants become ``sum_{j != k}`` and the cubic products lose their
        ``j = k = m`` terms (see :meth:`self_radial`).  Every feature except the radial
        densities M0 then vanishes for an atom with a single neighbour, so a linear
        model's dimer curve is its pair term ``w · M0`` alone and the many-body part is
        exactly zero on dimers.
    n_gated : int, default 0
        Number of radial functions (<= n_radial) of the gated pair densities
        ``M_gated[i, b, k] = sum_{j, Z_j = b} R_k(r_ij) h(z_ij)``, where
        ``z_ij = sum_{m != j} fc(r_im)`` is the coordination of i without j and
        ``h`` the quintic switch from 1 at z = 0 to 0 at ``gate_width``: a bond-order
        pair term (as in Tersoff/Brenner potentials) that is the full pair density for an
        isolated dimer and exactly zero once an atom has about ``gate_width`` other
        neighbour-equivalents (every condensed structure).  With ``exclude_self`` it lets a
        linear model's dimer curve be fitted without touching the condensed phase.
    gate_width : float, default 1.0
        Coordination (sum of fc of the other neighbours) at which the gate has closed.

    Attributes
    ----------
    n_features : int
        D, the length of every atom's descriptor vector.
    """

    def __init__(self, species, cutoff: float = 5.5, r_on: float = 0.0, n_radial: int = 8,
                 n_angular: int = 5, l_max: int = 3, r_min: float = 1.5, n_cubic: int = 0,
                 radial_decay: float = 0.0, exclude_self: bool = False, n_gated: int = 0,
                 gate_width: float = 1.0):
        self.species = [str(s) for s in species]
        unknown = [s for s in self.species if s not in atomic_numbers]
        if unknown or len(set(self.species)) != len(self.species) or not self.species:
            raise ValueError(f"species must be distinct element symbols, got {species!r}")
        if not 0.0 <= r_on < cutoff or not r_min < cutoff:
            raise ValueError("need 0 <= r_on < cutoff and r_min < cutoff")
        if not 1 <= n_angular <= n_radial or l_max < 1:
            raise ValueError("need 1 <= n_angular <= n_radial and l_max >= 1")
        self.cutoff, self.r_on, self.r_min = float(cutoff), float(r_on), float(r_min)
        if radial_decay < 0:
            raise ValueError("need radial_decay >= 0")
        self.radial_decay = float(radial_decay)
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
        # dA_m/du_a = dcoef[m, a] * monomial[lower[m, a]]: as a map (Ma, 3 * n_lower)
        self._n_lower = int(np.sum(degree < self.l_max))
        lower_map = np.zeros((len(self._degree), 3, self._n_lower))
        for m in range(len(self._degree)):
            for axis in range(3):
                if self._dcoef[m, axis]:
                    lower_map[m, axis, lower_idx[m, axis]] += self._dcoef[m, axis]
        self._lower_map = lower_map.reshape(len(self._degree), -1)
        self.n_ma = len(self._degree)
        self.n_channels0 = self.n_species * self.n_radial
        self.n_channelsa = self.n_species * self.n_angular
        self._iu0 = np.triu_indices(self.n_channels0)
        self._iua = np.triu_indices(self.n_channelsa)
        self.n_triu0 = len(self._iu0[0])
        self.n_triua = len(self._iua[0])
        # d(M_a M_b)/dM: one-hot rows (T0, C0); weights of c <= d products as a
        # symmetric matrix: (Ta, Ca*Ca) with 1 on the diagonal and 1/2 off it
        self._e0t = [sp.csr_matrix(np.eye(self.n_channels0)[idx].T) for idx in self._iu0]
        esym = np.zeros((self.n_triua, self.n_channelsa, self.n_channelsa))
        t = np.arange(self.n_triua)
        esym[t, self._iua[0], self._iua[1]] += 0.5
        esym[t, self._iua[1], self._iua[0]] += 0.5
        self._esym = esym.reshape(self.n_triua, -1)
        if not 0 <= n_cubic <= n_radial:
            raise ValueError("need 0 <= n_cubic <= n_radial")
        self.n_cubic = int(n_cubic)
        cubic = [s * self.n_radial + k for s in range(self.n_species) for k in range(self.n_cubic)]
        triples = [(a, b, c) for x, a in enumerate(cubic) for y, b in enumerate(cubic[x:], x)
                   for c in cubic[y:]]
        self._i3 = np.array(triples, dtype=int).reshape(-1, 3).T
        self.n_triple = self._i3.shape[1]
        self._e3t = [sp.csr_matrix(np.eye(self.n_channels0)[idx].T) for idx in self._i3]
        start = self.n_channels0 + self.n_triu0 + self.l_max * self.n_triua
        self._cubic = slice(start, start + self.n_triple)
        if not 0 <= n_gated <= n_radial or gate_width <= 0:
            raise ValueError("need 0 <= n_gated <= n_radial and gate_width > 0")
        self.n_gated, self.gate_width = int(n_gated), float(gate_width)
        self._gated = slice(self._cubic.stop, self._cubic.stop + self.n_species * self.n_gated)
        self.n_features = self._gated.stop
        self.exclude_self = bool(exclude_self)
        self._build_self_map()

    def _build_self_map(self):
        """Self terms of the products as linear maps of the self densities.

        For one neighbour element b, the j = k terms of the products are
        ``sum_j R_k R_k' = sum_j T_k T_k' fc²`` (quadratic and, since
        ``sum_m A_m(u)² = 1``, every angular degree) and ``sum_j T_a T_b T_c fc³``
        (cubic); with ``T_k T_k' = (T_{k+k'} + T_{|k-k'|}) / 2`` they are linear in the
        Q self densities of :meth:`self_radial`.  ``_self_cols[b]`` (S, L) are the
        feature columns of neighbour element b's self terms and ``_self_map`` (Q, L)
        their coefficients: ``self features = X @ _self_map``.
        """
        k0, ka, kc = self.n_radial, self.n_angular, self.n_cubic
        self.n_self2 = 2 * k0 - 1
        self.n_self3 = 3 * kc - 2 if kc else 0
        self.n_self = self.n_self2 + self.n_self3
        self._n_chebyshev = (max(k0, self.n_self2, self.n_self3) if self.exclude_self
                             else k0)
        s0 = self.n_channels0 + self.n_triu0
        quad = {(a, b): t for t, (a, b) in enumerate(zip(*self._iu0))}
        ang = {(a, b): t for t, (a, b) in enumerate(zip(*self._iua))}
        cub = {tuple(abc): t for t, abc in enumerate(self._i3.T.tolist())}
        cols = [[] for _ in range(self.n_species)]
        entries = []   # per self column: list of (self density index, coefficient)
        for b in range(self.n_species):
            for k in range(k0):
                for k2 in range(k, k0):
                    cols[b].append(self.n_channels0 + quad[(b * k0 + k, b * k0 + k2)])
            for l in range(self.l_max):
                for k in range(ka):
                    for k2 in range(k, ka):
                        cols[b].append(s0 + l * self.n_triua + ang[(b * ka + k, b * ka + k2)])
            for abc in self._i3.T.tolist():
                if all(c // k0 == b for c in abc):
                    cols[b].append(self._cubic.start + cub[tuple(abc)])
        for k in range(k0):
            for k2 in range(k, k0):
                entries.append([(k + k2, 0.5), (k2 - k, 0.5)])
        for l in range(self.l_max):
            for k in range(ka):
                for k2 in range(k, ka):
                    entries.append([(k + k2, 0.5), (k2 - k, 0.5)])
        for a, b_, c in self._i3.T.tolist():
            if a // k0 == b_ // k0 == c // k0 == 0:
                a, b_, c = a % k0, b_ % k0, c % k0
                entries.append([(self.n_self2 + n, 0.25) for n in
                                (a + b_ + c, abs(a + b_ - c), abs(a - b_) + c,
                                 abs(abs(a - b_) - c))])
        self._self_cols = np.array(cols, dtype=int)
        self._self_map = np.zeros((self.n_self, len(entries)))
        for col, terms in enumerate(entries):
            for q, coefficient in terms:
                self._self_map[q, col] += coefficient

    def self_radial(self, r):
        """Self-term radial functions ``X_q(r)`` and derivatives, each (P, Q), r in Å.

        ``[T_n(x) fc² for n < 2 K0 - 1] + [T_n(x) fc³ for n < 3 n_cubic - 2]``: the
        products ``R_k R_k'`` and ``R_a R_b R_c`` of one neighbour with itself span them.
        """
        n = max(self.n_radial, self.n_self2, self.n_self3)
        return self._self_from_basis(*self._basis(np.asarray(r, dtype=float), n, n))

    def _basis(self, r, n: int | None = None, n_derivatives: int | None = None):
        """Chebyshev rows and switch of distances r (P,): ``(t, dt, dx/dr, fc, dfc/dr)``.

        ``t`` (n_t, P) holds ``T_n(x)`` for every n the descriptor uses (radial functions
        and, with ``exclude_self``, the self terms), ``dt`` the derivatives ``dT_n/dx``
        of the first ``n_derivatives`` (default: the radial functions').
        """
        x, dxdr = self.scaled_distance(r)
        t, dt = chebyshev(x, self._n_chebyshev if n is None else n,
                          self.n_radial if n_derivatives is None else n_derivatives)
        fc, dfc, _ = quintic_switch(r, self.r_on, self.cutoff)
        return t.T, dt.T, dxdr, fc, dfc

    def _self_from_basis(self, t, dt, dxdr, fc, dfc):
        """X (P, Q) and dX/dr (P, Q) from :meth:`_basis` (see :meth:`self_radial`)."""
        values = np.empty((len(fc), self.n_self))
        derivatives = np.empty((len(fc), self.n_self))
        for start, count, power in ((0, self.n_self2, 2), (self.n_self2, self.n_self3, 3)):
            f = fc**power
            df = power * fc ** (power - 1) * dfc
            sl = slice(start, start + count)
            values[:, sl] = (t[:count] * f).T
            derivatives[:, sl] = (dt[:count] * (dxdr * f) + t[:count] * df).T
        return values, derivatives

    def _chebyshev_coefficients(self, c):
        """Self-term pair coefficients c (S, S, Q) as rows over T_n: (2 S*S, n_t).

        Rows ``[:S*S]`` multiply ``fc²``, rows ``[S*S:]`` ``fc³`` (zero-padded).
        """
        ss = self.n_species ** 2
        out = np.zeros((2 * ss, self._n_chebyshev))
        c = c.reshape(ss, self.n_self)
        out[:ss, :self.n_self2] = c[:, :self.n_self2]
        out[ss:, :self.n_self3] = c[:, self.n_self2:]
        return out

    def gates(self, i, j, fc, dfc, n_atoms: int):
        """Gates of both ends of every pair (see ``n_gated``).

        Parameters
        ----------
        i, j : ndarray of int, shape (P,)
            Half neighbour list.
        fc, dfc : ndarray, shape (P,)
            Switching function of the pairs and its derivative (1/Å).
        n_atoms : int

        Returns
        -------
        tuple
            ``(h_i, dh_i, h_j, dh_j, dfc, active)``: gate value and dh/dz at the i and
            j end of each pair (P,), dfc/dr (P,) in 1/Å, and whether any gate is open.
        """
        coordination = (np.bincount(i, fc, minlength=n_atoms)
                        + np.bincount(j, fc, minlength=n_atoms))
        z_i, z_j = coordination[i] - fc, coordination[j] - fc
        if len(fc) and min(z_i.min(), z_j.min()) >= self.gate_width:   # all closed (bulk)
            zero = np.zeros(len(fc))
            return zero, zero, zero, zero, dfc, False
        h_i, dh_i, _ = quintic_switch(z_i, 0.0, self.gate_width)
        h_j, dh_j, _ = quintic_switch(z_j, 0.0, self.gate_width)
        return h_i, dh_i, h_j, dh_j, dfc, bool(np.any(h_i > 0) or np.any(h_j > 0))

    def self_coefficients(self, w) -> np.ndarray:
        """Per-element weights w (S, D) as self-term pair coefficients c (S, S, Q).

        ``w[e] · self features`` of a centre of element e equals
        ``sum_j c[e, Z_j] · X(r_ij)`` (:meth:`self_radial`).
        """
        w = np.asarray(w, dtype=float)
        return np.stack([np.stack([self._self_map @ w[e, self._self_cols[b]]
                                   for b in range(self.n_species)])
                         for e in range(len(w))])

    def get_params(self) -> dict:
        """Constructor arguments (to store next to fitted weights)."""
        return dict(species=list(self.species), cutoff=self.cutoff, r_on=self.r_on,
                    n_radial=self.n_radial, n_angular=self.n_angular, l_max=self.l_max,
                    r_min=self.r_min, n_cubic=self.n_cubic, radial_decay=self.radial_decay,
                    exclude_self=self.exclude_self, n_gated=self.n_gated,
                    gate_width=self.gate_width)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"Descriptor({args})"

    def weight_matrices(self, w) -> dict:
        """One element's weights w (D,) as the matrices of dE/dM (linear model fast path).

        Returns
        -------
        dict
            ``linear`` (C0,), ``pair`` (C0, C0) with ``dE/dM0 = linear + M0 @ pair + ...``,
            ``cubic`` (C0*C0, C0) acting on ``M0 ⊗ M0``, and ``angular`` (l_max of
            (Ca, Ca)) with ``dE/dM_l = angular[l-1] @ M_l``.
        """
        c0, ca, s0 = self.n_channels0, self.n_channelsa, self.n_channels0 + self.n_triu0
        ia, ib = self._iu0
        pair = np.zeros((c0, c0))
        np.add.at(pair, (ia, ib), w[c0:s0])
        pair = pair + pair.T                       # d(sum w M_a M_b)/dM
        cubic = np.zeros((c0, c0, c0))             # [(x, y), z]: dE/dM_z += w M_x M_y
        w3 = w[self._cubic]
        a, b, c = self._i3
        np.add.at(cubic, (b, c, a), w3)
        np.add.at(cubic, (a, c, b), w3)
        np.add.at(cubic, (a, b, c), w3)
        angular = [2.0 * (w[s0 + l * self.n_triua:s0 + (l + 1) * self.n_triua] @ self._esym)
                   .reshape(ca, ca) for l in range(self.l_max)]
        return dict(linear=w[:c0], pair=pair, cubic=cubic.reshape(c0 * c0, c0),
                    angular=angular)

    def feature_names(self) -> list[str]:
        """Human-readable name of each of the D features."""
        ch0 = [f"{s}{k}" for s in self.species for k in range(self.n_radial)]
        cha = [f"{s}{k}" for s in self.species for k in range(self.n_angular)]
        names = [f"R[{c}]" for c in ch0]
        names += [f"R[{ch0[a]}]R[{ch0[b]}]" for a, b in zip(*self._iu0)]
        for l in range(1, self.l_max + 1):
            names += [f"P{l}[{cha[a]},{cha[b]}]" for a, b in zip(*self._iua)]
        names += [f"R[{ch0[a]}]R[{ch0[b]}]R[{ch0[c]}]" for a, b, c in self._i3.T]
        names += [f"Rgated[{s}{k}]" for s in self.species for k in range(self.n_gated)]
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
        return self._radial_from_basis(*self._basis(np.asarray(r, dtype=float)))

    def _radial_from_basis(self, t, dt, dxdr, fc, dfc):
        k = self.n_radial
        t, dt = t[:k], dt[:k]                 # rows: contiguous arithmetic, one transpose
        values = np.ascontiguousarray((t * fc).T)
        derivatives = np.ascontiguousarray((dt * (dxdr * fc) + t * dfc).T)
        return values, derivatives

    def scaled_distance(self, r):
        """Chebyshev argument x(r) in [-1, 1] over [r_min, r_c] and dx/dr in 1/Å.

        With ``radial_decay = alpha > 0`` x is linear in ``exp(-alpha r)``, so the
        polynomials ``T_k(x)`` span the exponentials ``exp(-k alpha r)`` -- the natural
        shape of densities and pair repulsion in metals; otherwise x is linear in r.
        """
        if self.radial_decay == 0:
            scale = 2.0 / (self.cutoff - self.r_min)
            return scale * (r - self.r_min) - 1.0, np.full_like(r, scale)
        alpha = self.radial_decay
        e = np.exp(-alpha * (r - self.r_min))
        e_c = np.exp(-alpha * (self.cutoff - self.r_min))
        scale = 2.0 / (1.0 - e_c)
        return scale * (e - e_c) - 1.0, -alpha * scale * e

    def monomials(self, u, count: int) -> np.ndarray:
        """The first ``count`` unnormalised monomials (ordered by degree) of u (P, 3): (P, count)."""
        mono = np.empty((count, len(u)))
        mono[0] = 1.0
        ut = u.T
        for m, (parent, axis) in enumerate(self._mono_parent[1:count], start=1):
            np.multiply(mono[parent], ut[axis], out=mono[m])
        return mono.T

    def angular(self, u, transposed: bool = False):
        """Monomials of degree 1..l_max of unit vectors.

        Parameters
        ----------
        u : ndarray, shape (P, 3)

        Returns
        -------
        a : ndarray, shape (P, Ma)
            Normalised monomials ``A_m(u)``.
        dadu : ndarray, shape (P, Ma, 3), or (3, P, Ma) if ``transposed``
            ``dA_m/du`` (derivative of the polynomial, not restricted to the sphere).
        """
        mono = np.empty((self._n_mono, len(u)))   # unnormalised, all degrees, row-major
        mono[0] = 1.0
        ut = u.T
        for m, (parent, axis) in enumerate(self._mono_parent[1:], start=1):
            np.multiply(mono[parent], ut[axis], out=mono[m])
        a = np.ascontiguousarray((mono[1:] * self._coefficient[:, None]).T)
        dadu = (mono[self._mono_lower] * self._dcoef[:, :, None]).transpose(1, 2, 0)
        return a, (np.ascontiguousarray(dadu) if transposed else dadu.transpose(1, 2, 0))

    def expand(self, atoms) -> DensityExpansion:
        """Pair quantities and moments of a structure (see :class:`DensityExpansion`)."""
        species_index = self.species_index(atoms)
        nl = neighbor_list(atoms, self.cutoff, full=False)
        return self.expand_pairs(species_index, nl.i, nl.j, nl.vector, nl.distance,
                                 cell_volume(atoms))

    def expand_many(self, structures):
        """One expansion of many structures, their atoms and pairs stacked in order.

        Equal to :func:`concatenate` of the structures' :meth:`expand` (volume None),
        computed in one vectorised pass: the fast way through many small structures.

        Returns
        -------
        expansion : DensityExpansion
        offsets : ndarray of int, shape (n_structures + 1,)
            Atoms of structure k are ``offsets[k]:offsets[k + 1]``.
        pair_owner : ndarray of int, shape (P,)
            Structure of every pair.

        Raises
        ------
        ValueError
            A structure holds an element the descriptor does not know (the message
            starts with ``structure <k>:``).
        """
        index, ii, jj, vec, dist, owner = [], [], [], [], [], []
        offsets = np.zeros(len(structures) + 1, dtype=np.int64)
        for k, atoms in enumerate(structures):
            try:
                index.append(self.species_index(atoms))
            except ValueError as exc:
                raise ValueError(f"structure {k}: {exc}") from None
            nl = neighbor_list(atoms, self.cutoff, full=False)
            ii.append(nl.i + offsets[k])
            jj.append(nl.j + offsets[k])
            vec.append(nl.vector)
            dist.append(nl.distance)
            owner.append(np.full(len(nl.i), k))
            offsets[k + 1] = offsets[k] + len(atoms)
        cat = np.concatenate
        exp = self.expand_pairs(cat(index), cat(ii), cat(jj), cat(vec).reshape(-1, 3), cat(dist),
                                None)
        return exp, offsets, cat(owner).astype(np.int64)

    def expand_pairs(self, species_index, i, j, vector, distance, volume) -> DensityExpansion:
        """Expansion from a half neighbour list (see :meth:`expand`).

        Parameters
        ----------
        species_index : ndarray of int, shape (N,)
        i, j : ndarray of int64, shape (P,)
        vector : ndarray, shape (P, 3)
            Pair vectors in Å.
        distance : ndarray, shape (P,)
            Pair distances in Å.
        volume : float or None
            Cell volume in Å³ (cells of rank 3), else None.
        """
        n, s = len(species_index), self.n_species
        basis = self._basis(distance)
        r, dr = self._radial_from_basis(*basis)
        u = vector / distance[:, None] if len(i) else np.zeros((0, 3))
        a = np.ascontiguousarray(self.monomials(u, self._n_mono)[:, 1:] * self._coefficient)
        rows_i = i * s + species_index[j]
        rows_j = j * s + species_index[i]
        scatter_i = _scatter_matrix(rows_i, n * s)
        scatter_j = _scatter_matrix(rows_j, n * s)
        exp = DensityExpansion(
            descriptor=self, species_index=species_index, i=i, j=j,
            vector=vector, volume=volume, _u=u, _d=distance, _r=r, _dr=dr, _a=a,
            _scatter_i=scatter_i, _scatter_j=scatter_j, _rows_i=rows_i,
            _rows_j=rows_j, m0=None, ma=None)
        if self.exclude_self or self.n_gated:
            exp._basis = basis
        if self.n_gated:
            exp._gate = self.gates(i, j, basis[3], basis[4], n)
            exp.m_gated = np.zeros((n * s, self.n_gated))
            if exp.gate_active:
                h_i, h_j = exp._gate[0], exp._gate[2]
                rk = r[:, :self.n_gated]
                exp.m_gated = scatter_i @ (rk * h_i[:, None]) + scatter_j @ (rk * h_j[:, None])
        exp.m0 = scatter_i @ r + scatter_j @ r
        # sum_p R_k(r_p) A_m(u_p) onto atoms: one sparse matrix per radial function
        # (values R_k) so the (P, Ka*Ma) product array is never formed
        ma = np.empty((n * s, self.n_angular, self.n_ma))
        a_reversed = a * self._parity
        for k in range(self.n_angular):
            ma[:, k] = (_scatter_matrix(rows_i, n * s, r[:, k]) @ a
                        + _scatter_matrix(rows_j, n * s, r[:, k]) @ a_reversed)
        exp.ma = ma.reshape(n * s, -1)
        return exp

    # -- conveniences ----------------------------------------------------------------
    def compute(self, atoms) -> np.ndarray:
        """Per-atom descriptors G, shape (N, D)."""
        return self.expand(atoms).features()

    def forces_and_virial(self, atoms, w):
        """Forces (N, 3) in eV/Å and virial (3, 3) in eV for per-atom ``w = dE/dG`` (N, D)."""
        return self.expand(atoms).vjp(w)


def cell_volume(atoms) -> float | None:
    """Volume (Å³) of a periodic cell of rank 3, else None."""
    rank = np.linalg.matrix_rank(atoms.cell.array) if np.any(atoms.pbc) else 0
    return abs(atoms.cell.volume) if rank == 3 else None


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
    n = offsets[-1]
    return DensityExpansion(
        descriptor=d, species_index=cat([e.species_index for e in expansions]), i=i, j=j,
        vector=cat([e.vector for e in expansions]), volume=None,
        _u=cat([e._u for e in expansions]), _d=cat([e._d for e in expansions]),
        _r=cat([e._r for e in expansions]), _dr=cat([e._dr for e in expansions]),
        _a=cat([e._a for e in expansions]),
        _scatter_i=_scatter_matrix(rows_i, n * s),
        _scatter_j=_scatter_matrix(rows_j, n * s),
        _rows_i=rows_i, _rows_j=rows_j,
        m0=cat([e.m0 for e in expansions]), ma=cat([e.ma for e in expansions]),
        _basis=(cat([e._basis[0] for e in expansions], axis=1),
                cat([e._basis[1] for e in expansions], axis=1),
                *(cat([e._basis[k] for e in expansions]) for k in (2, 3, 4)))
        if expansions[0]._basis is not None else None,
        _gate=(tuple(cat([e._gate[k] for e in expansions]) for k in range(5))
               + (any(e.gate_active for e in expansions),)) if d.n_gated else None,
        m_gated=cat([e.m_gated for e in expansions]) if d.n_gated else None)
