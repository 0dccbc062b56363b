"""Descriptors and design rows of many small structures in one vectorised pass.

A data set of millions of structures of a few atoms each spends most of its
per-structure time in Python overhead when featurised one structure at a time
(~4 ms for a 5-atom cell). Here a whole batch becomes one stacked expansion
(:meth:`~conformance.featurize.descriptors.Descriptor.expand_many`): one neighbour
list call per structure, everything else vectorised over the batch's pairs.
The result equals the one-structure computation to round-off (tested):
:func:`pooled_descriptors`, the species-pooled, per-atom-averaged structure
descriptors of the leakage and coverage audits (4x faster on 5-atom cells, 2x on
32-atom ones). The design rows of the linear surrogate
(:func:`conformance.featurize.design.design_matrix`) are dominated by the per-pair
Jacobian, not by overhead, and stay per structure.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .descriptors import Descriptor

__all__ = ["pooled_descriptors", "batches"]


def _owner_sum(owner, values, n_owners: int) -> np.ndarray:
    """Sum rows of ``values`` (P, ...) by ``owner`` (P,): shape (n_owners, ...)."""
    p = len(owner)
    matrix = sp.csr_matrix((np.ones(p), (owner, np.arange(p))), shape=(n_owners, p))
    flat = values.reshape(p, -1)
    return np.asarray(matrix @ flat).reshape((n_owners,) + values.shape[1:])


def batches(structures, atoms: int):
    """``(first index, structures)`` of consecutive batches of about ``atoms`` atoms."""
    start, size = 0, 0
    for k, a in enumerate(structures):
        size += len(a)
        if size >= atoms:
            yield start, structures[start:k + 1]
            start, size = k + 1, 0
    if start < len(structures):
        yield start, structures[start:]


def pooled_descriptors(structures, descriptor: Descriptor, batch_atoms: int = 4096) -> np.ndarray:
    """Species-pooled, per-atom-averaged descriptors of whole structures.

    Parameters
    ----------
    structures : sequence of ase.Atoms
    descriptor : Descriptor
    batch_atoms : int
        Atoms per vectorised pass.

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
    for start, chunk in batches(structures, batch_atoms):
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
