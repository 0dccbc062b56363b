"""Design matrix and normal equations of a linear model on density-expansion descriptors.

A linear model ``E = sum_i (e0[Z_i] + w[Z_i] · G_i)`` with per-element reference
energies ``e0`` (eV) and weights ``w`` (S, D) is linear in its parameters
``theta = [e0 (S), w.ravel() (S*D)]``, so energies, forces and stresses of labelled
structures are rows of one weighted least-squares problem (:func:`design_matrix`):

* one energy row per structure (energy per atom, eV/atom),
* 3N force rows (eV/Å),
* 6 stress rows for cells of rank 3 (Voigt xx yy zz yz xz xy, eV/Å³).

Row weights are ``1 / sigma_kind`` (:class:`Sigmas`) times a relative weight per
configuration type (:func:`structure_weight`). A fixed short-range term
(:class:`~conformance.featurize.repulsion.CoreRepulsion`) is subtracted from the labels.
:class:`NormalEquations` accumulates ``X^T X``, ``X^T y``, ``y^T y`` per (group, kind),
so fits on any subset of groups cost one small solve (:func:`conformance.featurize.ridge.solve`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .descriptors import Descriptor
from .repulsion import CoreRepulsion

__all__ = ["KINDS", "CONFIG_WEIGHTS", "Sigmas", "DesignMatrix", "design_matrix",
           "structure_rows", "NormalEquations", "normal_equations", "structure_weight",
           "free_atom_energies"]

KINDS = ("energy", "forces", "stress")
#: Default relative row weights of configuration types far from the condensed phase (the
#: data audits' fit uses them).  With a descriptor whose every feature also acts on
#: dimers, dimer rows compete with bulk accuracy: dimer weights of (0.02, 0.3) cost 40 %
#: in bulk force error (measured), and pinning e0 to free-atom energies with isolated
#: atoms costs a factor two.  The shipped models' descriptor (``exclude_self`` and a gated
#: pair term) decouples the dimers; their fit (``reference_models.train.FIT``) weighs
#: them fully, as binding energies.
CONFIG_WEIGHTS = {"dimer": {"energy": 0.005, "forces": 0.05}, "atom": 0.005}


def structure_weight(atoms, kind: str = "energy", config_weights: dict | None = None) -> float:
    """Relative weight of a structure's rows of one kind.

    ``config_weights`` maps ``config_type`` to a weight or to ``{kind: weight}``
    (default :data:`CONFIG_WEIGHTS`); unlisted types weigh 1.
    """
    table = CONFIG_WEIGHTS if config_weights is None else config_weights
    weight = table.get(atoms.info.get("config_type"), 1.0)
    return weight.get(kind, 1.0) if isinstance(weight, dict) else weight


def free_atom_energies(structures) -> dict:
    """Energies (eV) of isolated single atoms among labelled structures, by element."""
    return {a.get_chemical_symbols()[0]: float(a.calc.results["energy"]) for a in structures
            if len(a) == 1 and not a.pbc.any() and a.calc is not None}


def _binding_row(atoms, free_atoms) -> bool:
    """True when a dimer's energy row is fitted as a binding energy (free atoms known)."""
    return (free_atoms is not None and atoms.info.get("config_type") == "dimer"
            and all(s in free_atoms for s in atoms.get_chemical_symbols()))


@dataclass(frozen=True)
class Sigmas:
    """Expected label errors; row weights are their inverses.

    Attributes
    ----------
    energy : float
        eV/atom.
    forces : float
        eV/Å per component.
    stress : float
        eV/Å³ per Voigt component.
    """

    energy: float = 0.0005
    forces: float = 0.02
    stress: float = 0.0005

    def weight(self, kind: str) -> float:
        return 1.0 / getattr(self, kind)


@dataclass
class DesignMatrix:
    """Rows of the linear least-squares problem (unweighted).

    Columns are ``[n_e / N for e in species] + [Gsum_e / N ...]`` for energy rows
    (per-atom energies), and the corresponding derivatives for force and stress rows,
    i.e. ``X @ theta`` predicts the label with ``theta = [e0 (S), w.ravel() (S*D)]``.

    Attributes
    ----------
    X : ndarray, shape (n_rows, S + S*D)
    y : ndarray, shape (n_rows,)
        Labels: eV/atom, eV/Å, eV/Å³.
    row_structure : ndarray of int, shape (n_rows,)
        Index of the structure each row comes from.
    row_kind : ndarray of str, shape (n_rows,)
        "energy", "forces" or "stress".
    row_weight : ndarray, shape (n_rows,)
        ``1/sigma`` of the row's kind times the structure's :func:`structure_weight`:
        minimise ``sum (row_weight * (y - X theta))**2``.
    """

    X: np.ndarray
    y: np.ndarray
    row_structure: np.ndarray
    row_kind: np.ndarray
    row_weight: np.ndarray


def structure_rows(atoms, descriptor: Descriptor, core: CoreRepulsion | None = None,
                    free_atoms: dict | None = None):
    """Unweighted (X, y, kind) blocks of one labelled structure (labels minus the core term).

    With ``free_atoms`` (element -> energy of the isolated atom, eV) a dimer's energy row
    is its binding energy per atom, ``(E - sum E_free) / N``, predicted without the
    reference energies e0: the dimer curve relative to the separated atoms, which is
    what a dimer scan measures, independent of where the bulk puts e0.
    """
    exp = descriptor.expand(atoms)
    gsum, dx, deps = exp.summed_jacobian()
    n, s = len(atoms), descriptor.n_species
    counts = np.bincount(exp.species_index, minlength=s).astype(float)
    results = atoms.calc.results
    e_core, f_core, v_core = 0.0, np.zeros((n, 3)), np.zeros((3, 3))
    if core is not None:
        energies, pair_g = core.evaluate(exp)
        e_core = energies.sum()
        f_core, v_core = exp.scatter_pair_gradient(pair_g)
    rows, cols = [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]
    e_ref, count_cols = 0.0, counts
    if _binding_row(atoms, free_atoms):
        e_ref = sum(free_atoms[s] for s in atoms.get_chemical_symbols())
        count_cols = np.zeros(s)
    blocks = [(np.r_[count_cols, gsum.ravel()][None] / n,
               np.array([(results["energy"] - e_core - e_ref) / n]), "energy")]
    if "forces" in results:
        xf = np.concatenate([np.zeros((n * 3, s)), -dx.reshape(n * 3, -1)], axis=1)
        blocks.append((xf, (np.asarray(results["forces"]) - f_core).ravel(), "forces"))
    if "stress" in results and exp.volume is not None:
        voigt = 0.5 * (deps[rows, cols] + deps[cols, rows]).reshape(6, -1) / exp.volume
        xs = np.concatenate([np.zeros((6, s)), voigt], axis=1)
        s_core = 0.5 * (v_core + v_core.T)[rows, cols] / exp.volume
        blocks.append((xs, np.asarray(results["stress"]).ravel() - s_core, "stress"))
    return blocks


def design_matrix(structures, descriptor: Descriptor, sigmas: Sigmas | None = None,
                  core: CoreRepulsion | None = CoreRepulsion(), config_weights: dict | None = None,
                  binding: bool = False):
    """Design matrix of the linear model for labelled structures.

    Parameters
    ----------
    structures : sequence of ase.Atoms
        With energy and forces (and optionally stress) in ``atoms.calc.results``.
    descriptor : Descriptor
    sigmas : Sigmas, optional
        Expected errors defining ``row_weight``; defaults to ``Sigmas()``.
    core : CoreRepulsion or None
        Fixed short-range term of the model; its contribution is subtracted from ``y``.
    config_weights : dict, optional
        Relative weights per configuration type (see :func:`structure_weight`).
    binding : bool
        Fit dimer energies as binding energies relative to the isolated atoms found in
        ``structures`` (see :func:`structure_rows`).

    Returns
    -------
    DesignMatrix
        ``X`` (n_rows, S + S*D), ``y``, ``row_structure``, ``row_kind``, ``row_weight``.
        The weighted least-squares problem is ``min || row_weight * (y - X theta) ||²``;
        Cook's distance and leverage of rows or structures follow from it.
    """
    sigmas = Sigmas() if sigmas is None else sigmas
    structures = list(structures)
    free = free_atom_energies(structures) if binding else None
    xs, ys, idx, kinds, rel = [], [], [], [], []
    for k, atoms in enumerate(structures):
        for x, y, kind in structure_rows(atoms, descriptor, core, free):
            xs.append(x)
            ys.append(y)
            idx.append(np.full(len(y), k))
            kinds.append(np.full(len(y), kind))
            rel.append(np.full(len(y), structure_weight(atoms, kind, config_weights)))
    kind = np.concatenate(kinds)
    weight = np.array([sigmas.weight(k) for k in KINDS])[
        np.searchsorted(np.array(KINDS), kind)] * np.concatenate(rel) if len(kind) else np.zeros(0)
    return DesignMatrix(np.concatenate(xs), np.concatenate(ys), np.concatenate(idx), kind,
                        weight)


@dataclass
class NormalEquations:
    """Unweighted sufficient statistics of least squares per (group, kind).

    Attributes
    ----------
    groups : list
        Group labels (e.g. cross-validation folds, fidelities).
    A : dict[(group, kind)] -> ndarray (n_params, n_params)
        ``X^T X``.
    b : dict[(group, kind)] -> ndarray (n_params,)
        ``X^T y``.
    c : dict[(group, kind)] -> float
        ``y^T y``.
    n : dict[(group, kind)] -> int
        Number of rows.
    """

    groups: list
    A: dict = field(default_factory=dict)
    b: dict = field(default_factory=dict)
    c: dict = field(default_factory=dict)
    n: dict = field(default_factory=dict)

    def add(self, group, kind, x, y):
        key = (group, kind)
        if key not in self.A:
            p = x.shape[1]
            self.A[key], self.b[key], self.c[key], self.n[key] = np.zeros((p, p)), np.zeros(p), 0.0, 0
        self.A[key] += x.T @ x
        self.b[key] += x.T @ y
        self.c[key] += float(y @ y)
        self.n[key] += len(y)

    def total(self, weights, groups=None, exclude=()):
        """Weighted sums ``(sum w² A, sum w² b)`` over groups; ``weights[(group, kind)]`` or ``weights[kind]``."""
        keys = [k for k in self.A if (groups is None or k[0] in groups) and k[0] not in exclude]
        p = next(iter(self.A.values())).shape[0]
        a, b = np.zeros((p, p)), np.zeros(p)
        for key in keys:
            w2 = _weight(weights, key) ** 2
            a += w2 * self.A[key]
            b += w2 * self.b[key]
        return a, b

    def sse(self, theta, group, kind):
        """Sum of squared residuals of rows in (group, kind) for parameters theta."""
        key = (group, kind)
        if key not in self.A:
            return 0.0, 0
        value = theta @ self.A[key] @ theta - 2 * theta @ self.b[key] + self.c[key]
        return max(value, 0.0), self.n[key]


def _weight(weights, key):
    if key in weights:
        return weights[key]
    return weights[key[1]]


def normal_equations(structures, descriptor: Descriptor, group_of,
                     core: CoreRepulsion | None = CoreRepulsion(), config_weights: dict | None = None,
                     binding: bool = False) -> NormalEquations:
    """Accumulate :class:`NormalEquations` with ``group_of(atoms)`` as the group label.

    Labels are taken minus the fixed ``core`` term (see :func:`design_matrix`, also for
    ``binding``); rows are scaled by :func:`structure_weight` with ``config_weights``.
    """
    structures = list(structures)
    free = free_atom_energies(structures) if binding else None
    groups = []
    stats = NormalEquations(groups)
    for atoms in structures:
        group = group_of(atoms)
        if group not in groups:
            groups.append(group)
        for x, y, kind in structure_rows(atoms, descriptor, core, free):
            scale = structure_weight(atoms, kind, config_weights)
            stats.add(group, kind, scale * x, scale * y)
    return stats
