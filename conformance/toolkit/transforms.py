"""Symmetry operations on structures and on the properties they carry.

Pure functions: every ``Atoms -> Atoms`` transform returns a new object and
never mutates its input. All arithmetic is float64. Conventions:

* a 3×3 orthogonal matrix ``R`` acts on column vectors, so positions (N, 3)
  transform as ``positions @ R.T`` and cell rows (lattice vectors) as
  ``cell @ R.T``;
* forces (N, 3) eV/Å transform like positions: ``F @ R.T``;
* stress (Voigt xx, yy, zz, yz, xz, xy, eV/Å³) transforms as ``R σ Rᵀ``;
* energy is invariant and extensive (:func:`map_outputs` maps all three).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress


def rotation_matrix(axis: Sequence[float], angle: float) -> np.ndarray:
    """Proper rotation (3, 3) about ``axis`` by ``angle`` radians (Rodrigues)."""
    axis = np.asarray(axis, dtype=float)
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def mirror_matrix(normal: Sequence[float]) -> np.ndarray:
    """Reflection (3, 3) through the plane with the given normal (det = -1)."""
    n = np.asarray(normal, dtype=float)
    n = n / np.linalg.norm(n)
    return np.eye(3) - 2.0 * np.outer(n, n)


IDENTITY = np.eye(3)
INVERSION = -np.eye(3)


def rotate(atoms: Atoms, matrix: np.ndarray, center: Sequence[float] | None = None) -> Atoms:
    """Apply an orthogonal ``matrix`` to positions and cell.

    Positions rotate about ``center`` (default: the origin, so that cell and
    positions stay consistent for periodic structures).
    """
    matrix = np.asarray(matrix, dtype=float)
    out = atoms.copy()
    c = np.zeros(3) if center is None else np.asarray(center, dtype=float)
    out.positions = (atoms.positions - c) @ matrix.T + c
    out.cell = atoms.cell.array @ matrix.T
    return out


def right_handed(atoms: Atoms) -> Atoms:
    """The same structure with a right-handed cell matrix (det > 0).

    An improper operation (inversion, mirror) turns the cell left-handed; the
    lattice vectors -a, -b, -c span the same lattice with det > 0, so negating
    all three describes the same crystal (positions unchanged).
    """
    out = atoms.copy()
    if out.cell.rank == 3 and np.linalg.det(out.cell.array) < 0:
        out.set_cell(-out.cell.array, scale_atoms=False)
    return out


def left_handed(atoms: Atoms) -> Atoms:
    """The same crystal described by the left-handed basis -a, -b, -c of a
    right-handed cell (det < 0); positions unchanged."""
    out = atoms.copy()
    if out.cell.rank == 3 and np.linalg.det(out.cell.array) > 0:
        out.set_cell(-out.cell.array, scale_atoms=False)
    return out


def rotate_forces(forces: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Forces (N, 3) as seen after applying ``matrix`` to the structure."""
    return forces @ np.asarray(matrix).T


def rotate_stress(stress: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Voigt stress (6,) as seen after applying ``matrix``: R σ Rᵀ."""
    s = voigt_6_to_full_3x3_stress(np.asarray(stress))
    return full_3x3_to_voigt_6_stress(matrix @ s @ matrix.T)


def map_outputs(outputs: dict, matrix: np.ndarray = IDENTITY, order: Sequence[int] | None = None,
                images: int = 1) -> dict:
    """Outputs of a structure (``energy`` eV, ``forces`` (N, 3) eV/Å, ``stress``
    (6,) eV/Å³) as they must be on its image under an operation.

    ``matrix`` (3, 3) is applied to the structure, atom i of the image is atom
    ``order[i]``, and the image holds ``images`` periodic copies (a supercell):
    energy is a scalar, invariant and extensive (× images); forces are per-atom
    vectors, permuted, rotated (``F Rᵀ``) and tiled to (images · N, 3); stress
    is a rank-2 tensor, ``R σ Rᵀ``.
    """
    forces = np.asarray(outputs["forces"])
    forces = rotate_forces(forces if order is None else forces[np.asarray(order)], matrix)
    out = dict(outputs, energy=images * outputs["energy"], forces=np.tile(forces, (images, 1)))
    if "stress" in outputs:
        out["stress"] = rotate_stress(outputs["stress"], matrix)
    return out


def translate(atoms: Atoms, vector: Sequence[float]) -> Atoms:
    """Rigid translation of every atom by ``vector`` (Å); the cell is unchanged."""
    out = atoms.copy()
    out.positions = atoms.positions + np.asarray(vector, dtype=float)
    return out


def wrap(atoms: Atoms) -> Atoms:
    """Map atoms back into the cell along periodic directions."""
    out = atoms.copy()
    out.wrap()
    return out


def lattice_shift(atoms: Atoms, shifts: np.ndarray) -> Atoms:
    """Move atom i by the lattice vector ``shifts[i] @ cell`` (integers (N, 3)).

    Only periodic directions may be shifted; the result is the same crystal.
    """
    shifts = np.asarray(shifts, dtype=int)
    if np.any(shifts[:, ~atoms.pbc] != 0):
        raise ValueError("lattice shifts along non-periodic directions change the structure")
    out = atoms.copy()
    out.positions = atoms.positions + shifts @ atoms.cell.array
    return out


def permute(atoms: Atoms, order: Sequence[int]) -> Atoms:
    """Reorder atoms: atom i of the result is atom ``order[i]`` of the input."""
    order = np.asarray(order, dtype=int)
    if sorted(order.tolist()) != list(range(len(atoms))):
        raise ValueError("order must be a permutation of range(len(atoms))")
    return atoms[order]


def supercell(atoms: Atoms, reps: Sequence[int]) -> Atoms:
    """``atoms.repeat(reps)``; repetitions only along periodic directions."""
    reps = tuple(int(r) for r in reps)
    if any(r != 1 and not p for r, p in zip(reps, atoms.pbc)):
        raise ValueError("a supercell can only repeat periodic directions")
    return atoms.repeat(reps)


def change_basis(atoms: Atoms, matrix: np.ndarray) -> Atoms:
    """Same crystal described by the lattice vectors ``matrix @ cell``.

    ``matrix`` must be an integer matrix with determinant ±1 (unimodular) that
    only mixes periodic directions; atoms are then wrapped into the new cell,
    so the positions listed differ but the infinite crystal does not.
    """
    m = np.asarray(matrix)
    if not np.allclose(m, np.round(m)) or abs(round(np.linalg.det(m))) != 1:
        raise ValueError("basis change must be an integer matrix with determinant ±1")
    m = np.round(m).astype(int)
    pbc = atoms.pbc
    mixing = (np.abs(m) != np.eye(3, dtype=int))  # a non-periodic vector may be reversed
    if np.any(mixing[np.ix_(pbc, ~pbc)]) or np.any(mixing[np.ix_(~pbc, pbc)]) or \
            np.any(mixing[np.ix_(~pbc, ~pbc)]):
        raise ValueError("basis change may only mix periodic directions")
    out = atoms.copy()
    out.set_cell(m @ atoms.cell.array, scale_atoms=False)
    out.wrap()
    return out


def strained(atoms: Atoms, eps: np.ndarray) -> Atoms:
    """Copy of ``atoms`` deformed by the gradient I + ``eps`` (3, 3): cell and positions
    move together (``set_cell(..., scale_atoms=True)``); ``eps`` a strain, dimensionless."""
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + np.asarray(eps)).T, scale_atoms=True)
    return out


def same_species_permutation(numbers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random permutation that maps every atom onto one of the same species.

    Guaranteed not to be the identity when some species has ≥ 2 atoms.
    """
    numbers = np.asarray(numbers)
    order = np.arange(len(numbers))
    for z in np.unique(numbers):
        idx = np.flatnonzero(numbers == z)
        if len(idx) > 1:
            perm = rng.permutation(idx)
            while np.array_equal(perm, idx):
                perm = rng.permutation(idx)
            order[idx] = perm
    return order


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random proper rotation (3, 3), from a random unit quaternion."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
