"""Isolated and partly periodic structures in a periodic vacuum box.

Many foundation models (CHGNet, M3GNet, MatterSim) and matscipy's ``Manybody``
only accept a full, non-singular cell: on a molecule without cell they raise
(``LinAlgError: Singular matrix``). Users then put the molecule in a box with
enough vacuum that no atom sees its periodic images; :func:`in_vacuum_box`
does the same, so that every isolated check keeps its meaning (net torque,
rotation of a cluster) for such models.

>>> from ase import Atoms
>>> boxed = in_vacuum_box(Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]]), vacuum=10.0)
>>> boxed.pbc.tolist(), boxed.cell.lengths().round(2).tolist()
([True, True, True], [10.74, 10.0, 10.0])
>>> boxed.positions.tolist()[1]
[0.74, 0.0, 0.0]
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

#: Vacuum (Å) between periodic images when the model declares no cutoff.
DEFAULT_VACUUM = 20.0


def vacuum_for(cutoff: float | None, receptive_field: float | None = None) -> float:
    """Vacuum (Å) between an isolated structure and its images: ≥ 2 × cutoff + 2 Å
    (no pair, triplet or message crosses it), at least 12 Å; 20 Å without a cutoff."""
    reach = max(r for r in (cutoff, receptive_field and receptive_field / 2, 0.0) if r is not None)
    if not reach:
        return DEFAULT_VACUUM
    return max(12.0, 2.0 * reach + 2.0)


CLASSES = ("isolated", "partly periodic", "periodic")


def structure_class(atoms: Atoms) -> str:
    """``isolated`` (no periodic direction), ``partly periodic`` (slab, wire) or ``periodic``."""
    n = int(np.sum(atoms.pbc))
    return CLASSES[0] if n == 0 else CLASSES[1] if n < 3 else CLASSES[2]


def needs_box(atoms: Atoms) -> bool:
    """True when some direction is not periodic (isolated, slab, wire)."""
    return not bool(np.all(atoms.pbc))


def in_vacuum_box(atoms: Atoms, vacuum: float) -> Atoms:
    """Copy of ``atoms`` periodic in all three directions, with at least
    ``vacuum`` Å between the structure and its images along every direction
    that was not periodic. Positions and periodic cell vectors are unchanged;
    a zero non-periodic cell vector is replaced by one orthogonal to the others,
    a short one is lengthened. Energies and forces of a local model are those
    of the isolated structure; the stress refers to the box volume.
    """
    out = atoms.copy()
    out.calc = None
    cell = np.array(atoms.cell.array, dtype=float)
    free = [k for k in range(3) if not atoms.pbc[k]]
    for k in free:  # zero vectors first: Gram–Schmidt of the axes against the others
        if np.linalg.norm(cell[k]) < 1e-9:
            cell[k] = _orthogonal_axis(cell, k)
    for k in free:
        i, j = [d for d in range(3) if d != k]
        normal = np.cross(cell[i], cell[j])
        normal /= np.linalg.norm(normal)
        heights = atoms.positions @ normal if len(atoms) else np.zeros(1)
        needed = float(heights.max() - heights.min()) + vacuum
        height = abs(float(cell[k] @ normal))
        if height < needed:
            cell[k] *= needed / height
    out.set_cell(cell, scale_atoms=False)
    out.pbc = True
    return out


def _orthogonal_axis(cell: np.ndarray, k: int) -> np.ndarray:
    """Unit vector orthogonal to the non-zero rows of ``cell`` other than ``k``,
    preferring the Cartesian axis ``k`` (so a cell-less structure gets an
    axis-aligned box)."""
    others = [cell[d] for d in range(3) if d != k and np.linalg.norm(cell[d]) > 1e-9]
    for axis in [k, (k + 1) % 3, (k + 2) % 3]:
        v = np.eye(3)[axis]
        for o in others:
            o = o / np.linalg.norm(o)
            v = v - (v @ o) * o
        if np.linalg.norm(v) > 1e-6:
            return v / np.linalg.norm(v)
    raise ValueError("cannot complete the cell: periodic vectors are parallel")
