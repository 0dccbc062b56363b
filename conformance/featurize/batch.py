"""Descriptors and design rows of many small structures in one vectorised pass.

A data set of millions of structures of a few atoms each spends most of its
per-structure time in Python overhead when featurised one structure at a time
(~4 ms for a 5-atom cell). Here a whole batch becomes one stacked expansion
(:meth:`~conformance.featurize.descriptors.Descriptor.expand_many`): one neighbour
list call per structure, everything else vectorised over the batch's pairs.
The results equal the one-structure functions to round-off (tested):

* :func:`pooled_descriptors` -- the species-pooled, per-atom-averaged structure
  descriptors of the leakage and coverage audits;
* :func:`design_rows` -- the rows of :func:`conformance.featurize.design.design_matrix`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .descriptors import Descriptor, cell_volume
from .design import KINDS, DesignMatrix, Sigmas, structure_weight
from .repulsion import CoreRepulsion

__all__ = ["pooled_descriptors", "design_rows", "BATCH"]

#: Structures per vectorised pass of :func:`design_rows` (bounds its temporaries to
#: ~100 MB for 5-atom cells and the audits' descriptors).
BATCH = 128
_VOIGT = ([0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1])


def _owner_sum(owner, values, n_owners: int) -> np.ndarray:
    """Sum rows of ``values`` (P, ...) by ``owner`` (P,): shape (n_owners, ...)."""
    p = len(owner)
    matrix = sp.csr_matrix((np.ones(p), (owner, np.arange(p))), shape=(n_owners, p))
    flat = values.reshape(p, -1)
    return np.asarray(matrix @ flat).reshape((n_owners,) + values.shape[1:])


def pooled_descriptors(structures, descriptor: Descriptor, batch: int = 512) -> np.ndarray:
    """Species-pooled, per-atom-averaged descriptors of whole structures.

    Parameters
    ----------
    structures : sequence of ase.Atoms
    descriptor : Descriptor
    batch : int
        Structures per vectorised pass.

    Returns
    -------
    ndarray, shape (n_structures, S + S * D)
        ``[n_e / N for e] + [(1/N) sum_{i: Z_i = e} G_i for e]``.

    Raises
    ------
    ValueError
        ``structure <k>: unsupported species ...`` (k counted from the first structure).
    """
    structures = list(structures)
    s, dim = descriptor.n_species, descriptor.n_features
    out = np.empty((len(structures), s + s * dim))
    for start in range(0, len(structures), batch):
        chunk = structures[start:start + batch]
        try:
            exp, offsets, _ = descriptor.expand_many(chunk)
        except ValueError as exc:
            k, _, rest = str(exc).partition(": ")
            raise ValueError(f"structure {start + int(k.split()[-1])}: {rest}") from None
        g = exp.features()
        sizes = np.diff(offsets)
        atom_owner = np.repeat(np.arange(len(chunk)), sizes)
        key = atom_owner * s + exp.species_index
        pooled = _owner_sum(key, g, len(chunk) * s).reshape(len(chunk), s * dim)
        counts = np.bincount(key, minlength=len(chunk) * s).reshape(len(chunk), s)
        out[start:start + len(chunk), :s] = counts / sizes[:, None]
        out[start:start + len(chunk), s:] = pooled / sizes[:, None]
    return out


def _summed_jacobian_many(exp, offsets, pair_owner, n_structures: int):
    """Per-structure :meth:`DensityExpansion.summed_jacobian` of a stacked expansion.

    Returns
    -------
    gsum : ndarray, shape (n_structures, S, D)
    dx : ndarray, shape (N_total, 3, S, D)
        Rows of structure k are its atoms' (pairs never cross structures).
    deps : ndarray, shape (n_structures, 3, 3, S, D)
    """
    d = exp.descriptor
    n, s, dim = exp.n_atoms, d.n_species, d.n_features
    g = exp.features()
    atom_owner = np.repeat(np.arange(n_structures), np.diff(offsets))
    gsum = _owner_sum(atom_owner * s + exp.species_index, g, n_structures * s) \
        .reshape(n_structures, s, dim)
    dx = np.zeros((n, 3, s, dim))
    deps = np.zeros((n_structures, 3, 3, s, dim))
    p = len(exp.i)
    if p == 0:
        return gsum, dx, deps
    incidence = sp.csr_matrix(
        (np.r_[np.ones(p), -np.ones(p)], (np.r_[exp.j, exp.i], np.r_[np.arange(p), np.arange(p)])),
        shape=(n, p))
    owner = sp.csr_matrix((np.ones(p), (pair_owner, np.arange(p))), shape=(n_structures, p))
    for side in ("i", "j"):
        jac, centre = exp._side_jacobian(side)               # (P, D, 3)
        element = exp.species_index[centre]
        for e in range(s):
            mask = element == e
            if not mask.any():
                continue
            je = jac * mask[:, None, None]
            dx[:, :, e, :] += (incidence @ je.reshape(p, -1)).reshape(n, dim, 3).transpose(0, 2, 1)
            for a in range(3):
                for b in range(3):
                    deps[:, a, b, e, :] += owner @ (je[:, :, a] * exp.vector[:, b, None])
    return gsum, dx, deps


def design_rows(structures, descriptor: Descriptor, sigmas: Sigmas | None = None,
                core: CoreRepulsion | None = CoreRepulsion(), config_weights: dict | None = None,
                batch: int = BATCH) -> DesignMatrix:
    """The rows of :func:`~conformance.featurize.design.design_matrix`, batch by batch.

    Same arguments and result (``binding`` rows are not supported), computed from
    stacked expansions of ``batch`` structures at a time.
    """
    sigmas = Sigmas() if sigmas is None else sigmas
    structures = list(structures)
    sigma_weight = {k: sigmas.weight(k) for k in KINDS}
    parts = []
    for start in range(0, len(structures), batch):
        parts.append(_design_batch(structures[start:start + batch], start, descriptor,
                                   sigma_weight, core, config_weights))
    if not parts:
        raise ValueError("no structures")
    return DesignMatrix(*(np.concatenate([part[k] for part in parts]) for k in range(5)))


def _design_batch(chunk, first: int, descriptor, sigma_weight, core, config_weights):
    """(X, y, row_structure, row_kind, row_weight) of one batch of structures."""
    s, dim = descriptor.n_species, descriptor.n_features
    m = len(chunk)
    try:
        exp, offsets, pair_owner = descriptor.expand_many(chunk)
    except ValueError as exc:
        k, _, rest = str(exc).partition(": ")
        raise ValueError(f"structure {first + int(k.split()[-1])}: {rest}") from None
    gsum, dx, deps = _summed_jacobian_many(exp, offsets, pair_owner, m)
    sizes = np.diff(offsets)
    n_tot = offsets[-1]
    atom_owner = np.repeat(np.arange(m), sizes)
    counts = np.bincount(atom_owner * s + exp.species_index, minlength=m * s).reshape(m, s)
    e_core = np.zeros(m)
    f_core = np.zeros((n_tot, 3))
    v_core = np.zeros((m, 3, 3))
    if core is not None and len(exp.i):
        energies, pair_g = core.evaluate(exp)
        e_core = np.bincount(atom_owner, energies, minlength=m)
        f_core, _ = exp.scatter_pair_gradient(pair_g)
        v_core = _owner_sum(pair_owner, pair_g[:, :, None] * exp.vector[:, None, :], m)
    xs, ys, kinds, owners, rel = [], [], [], [], []
    for k, atoms in enumerate(chunk):
        n = int(sizes[k])
        results = atoms.calc.results
        sl = slice(offsets[k], offsets[k + 1])
        blocks = [(np.r_[counts[k], gsum[k].ravel()][None] / n,
                   np.array([(results["energy"] - e_core[k]) / n]), "energy")]
        if "forces" in results:
            xf = np.concatenate([np.zeros((3 * n, s)), -dx[sl].reshape(3 * n, s * dim)], axis=1)
            blocks.append((xf, (np.asarray(results["forces"]) - f_core[sl]).ravel(), "forces"))
        volume = cell_volume(atoms)
        if "stress" in results and volume is not None:
            rows, cols = _VOIGT
            voigt = 0.5 * (deps[k][rows, cols] + deps[k][cols, rows]).reshape(6, -1) / volume
            s_core = 0.5 * (v_core[k] + v_core[k].T)[rows, cols] / volume
            blocks.append((np.concatenate([np.zeros((6, s)), voigt], axis=1),
                           np.asarray(results["stress"]).ravel() - s_core, "stress"))
        for x, y, kind in blocks:
            xs.append(x)
            ys.append(y)
            kinds.append(np.full(len(y), kind))
            owners.append(np.full(len(y), first + k))
            rel.append(np.full(len(y), sigma_weight[kind]
                               * structure_weight(atoms, kind, config_weights)))
    cat = np.concatenate
    return cat(xs), cat(ys), cat(owners), cat(kinds), cat(rel)
