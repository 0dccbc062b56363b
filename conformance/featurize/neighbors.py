"""Neighbour lists from ``vesin`` for isolated, slab and bulk structures.

One :class:`NeighborList` holds every pair ``(i, j, shift)`` with
``|x_j + shift @ cell - x_i| < cutoff``.  Isolated structures (``pbc`` all False, zero
cell), slabs (mixed ``pbc``) and triclinic cells smaller than the cutoff (many periodic
images of the same atom, including an atom and its own images) are all handled by vesin.

vesin returns the indices as ``uint64``; they are cast to ``int64`` here so that
differences such as ``j - i`` cannot wrap around.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import vesin

__all__ = ["NeighborList", "neighbor_list"]


@dataclass(frozen=True)
class NeighborList:
    """Pairs within a cutoff.

    Attributes
    ----------
    i, j : ndarray of int64, shape (P,)
        Centre and neighbour atom indices.
    shift : ndarray of int64, shape (P, 3)
        Integer cell shifts; the pair vector is ``x[j] + shift @ cell - x[i]``.
    vector : ndarray of float64, shape (P, 3)
        Pair vectors in Å.
    distance : ndarray of float64, shape (P,)
        Pair distances in Å.
    full : bool
        True if both (i, j) and (j, i) are listed, False if each pair appears once.
    """

    i: np.ndarray
    j: np.ndarray
    shift: np.ndarray
    vector: np.ndarray
    distance: np.ndarray
    full: bool


def neighbor_list(atoms, cutoff: float, full: bool = True) -> NeighborList:
    """Neighbour list of an ``ase.Atoms`` object.

    Parameters
    ----------
    atoms : ase.Atoms
        Structure; not modified.  ``atoms.pbc`` may be mixed (slab); a structure with
        ``pbc`` all False may have a zero cell.
    cutoff : float
        Cutoff radius in Å (pairs with distance < cutoff are kept).
    full : bool, default True
        List both (i, j) and (j, i); if False, every pair (including an atom and one of
        its periodic images) appears once.

    Returns
    -------
    NeighborList
    """
    positions = np.ascontiguousarray(atoms.positions, dtype=float)
    pbc = [bool(p) for p in atoms.pbc]
    cell = np.asarray(atoms.cell.array, dtype=float)
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=full)
    i, j, shift, distance, vector = calculator.compute(positions, cell, pbc,
                                                      quantities="ijSdD")
    return NeighborList(
        i=i.astype(np.int64),
        j=j.astype(np.int64),
        shift=np.asarray(shift, dtype=np.int64).reshape(-1, 3),
        vector=np.asarray(vector, dtype=float).reshape(-1, 3),
        distance=np.asarray(distance, dtype=float),
        full=full,
    )
