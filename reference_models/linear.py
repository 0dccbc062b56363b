"""Linear model on density-expansion descriptors, fitted by weighted ridge regression.

``E = sum_i (e0[Z_i] + w[Z_i] · G_i)`` with per-element reference energies ``e0`` (eV)
and weights ``w`` (S, D).  Energies, forces and stresses are linear in the parameters,
so all three enter one weighted least-squares problem whose rows come from
:func:`design_matrix`:

* one energy row per structure (energy per atom, eV/atom),
* 3N force rows (eV/Å),
* 6 stress rows for cells of rank 3 (Voigt xx yy zz yz xz xy, eV/Å³).

Row weights are ``1 / sigma_kind`` (:class:`Sigmas`): the expected error of each kind of
label, so ``sum w² r²`` is a chi-square.  The ridge strength is chosen by
cross-validation with folds made of whole trajectories (frames of one trajectory are
correlated).  Everything downstream works on per-(group, kind) normal equations
(:class:`NormalEquations`), so refits for the cross-validation, the Pareto front of
energy/force/stress errors (:func:`pareto_front`) and the multi-fidelity weighting
(:func:`multifidelity_fit`) cost one small linear solve each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg

from .core import CoreRepulsion
from .descriptors import Descriptor

__all__ = [
    "KINDS", "Sigmas", "DesignMatrix", "design_matrix", "NormalEquations",
    "normal_equations", "solve", "LinearModel", "fit_linear", "cross_validate",
    "pareto_front", "multifidelity_fit", "errors", "EV_PER_A3_TO_GPA", "structure_weight",
    "free_atom_energies",
]

KINDS = ("energy", "forces", "stress")
EV_PER_A3_TO_GPA = 160.21766208
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


def _structure_rows(atoms, descriptor: Descriptor, core: CoreRepulsion | None = None,
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
        ``structures`` (see :func:`_structure_rows`).

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
        for x, y, kind in _structure_rows(atoms, descriptor, core, free):
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
        for x, y, kind in _structure_rows(atoms, descriptor, core, free):
            scale = structure_weight(atoms, kind, config_weights)
            stats.add(group, kind, scale * x, scale * y)
    return stats


def _penalty_scale(a, n_species: int, unpenalised_tail: int = 0):
    """Column scales from the diagonal of the weighted normal matrix, and penalty mask."""
    scale = np.sqrt(np.maximum(np.diag(a), 1e-300))
    penalised = np.ones(len(scale), dtype=bool)
    penalised[:n_species] = False
    if unpenalised_tail:
        penalised[-unpenalised_tail:] = False
    return scale, penalised


def solve(a, b, lam: float, n_species: int, unpenalised_tail: int = 0):
    """Ridge solution of ``(A + lam * diag(A) on descriptor columns) theta = b``.

    The penalty is relative to each column's weighted sum of squares, so ``lam`` is
    dimensionless; the reference-energy columns (the first ``n_species`` and, for
    multi-fidelity fits, the last ``unpenalised_tail``) are not penalised.

    Returns
    -------
    ndarray, shape (n_params,)
    """
    scale, penalised = _penalty_scale(a, n_species, unpenalised_tail)
    a_s = a / np.outer(scale, scale)
    a_s[np.diag_indices_from(a_s)] += lam * penalised + 1e-12
    theta_s = scipy.linalg.solve(a_s, b / scale, assume_a="pos")
    return theta_s / scale


@dataclass
class LinearModel:
    """Fitted linear model.

    Attributes
    ----------
    descriptor : Descriptor
    e0 : ndarray, shape (S,)
        Per-element reference energies in eV.
    w : ndarray, shape (S, D)
        Descriptor weights in eV per descriptor unit.
    info : dict
        Fit metadata (ridge strength, sigmas, cross-validation errors).
    """

    descriptor: Descriptor
    e0: np.ndarray
    w: np.ndarray
    info: dict = field(default_factory=dict)
    core: CoreRepulsion | None = field(default_factory=CoreRepulsion)

    @classmethod
    def from_theta(cls, descriptor, theta, info=None, core="default"):
        s = descriptor.n_species
        core = CoreRepulsion() if core == "default" else core
        return cls(descriptor, theta[:s].copy(), theta[s:].reshape(s, -1).copy(), info or {},
                   core)

    @property
    def theta(self) -> np.ndarray:
        return np.r_[self.e0, self.w.ravel()]

    def atomic_energies(self, expansion, features=None):
        """Per-atom energies (N,) in eV and dE/dG (N, D) for an expansion."""
        g = expansion.features() if features is None else features
        idx = expansion.species_index
        return self.linear_energies(expansion, g), self.w[idx]

    def linear_energies(self, expansion, features) -> np.ndarray:
        """Per-atom energies (N,) in eV (without the core term)."""
        idx = expansion.species_index
        return self.e0[idx] + (features @ self.w.T)[np.arange(len(idx)), idx]

    kind = "linear"

    def evaluate_expansion(self, expansion, raw_features=None, extra_energies=None,
                           extra_w=None, extra_radial=None) -> dict:
        """Energy, energies, forces and virial, optionally with a per-atom addition.

        Parameters
        ----------
        expansion : DensityExpansion
        raw_features : ndarray (N, D), optional
            Precomputed ``expansion.features(subtract_self=False)``: the products with
            their self terms; an ``exclude_self`` descriptor's self terms enter as the
            pair potential :meth:`DensityExpansion.self_energies` (no self densities
            are formed).
        extra_energies : ndarray (N,), optional
            Added per-atom energies in eV (e.g. a neural network's).
        extra_w : ndarray (N, D), optional
            Their gradients w.r.t. the raw features (gated columns ignored).
        extra_radial : ndarray (P,), optional
            Further dE/d|r_p| of the addition (eV/Å), e.g. through a coordination.

        Returns
        -------
        dict
            ``energy`` (eV), ``energies`` (N,), ``forces`` (N, 3) eV/Å, ``virial``
            (3, 3) eV, including the core repulsion.
        """
        e_self, self_radial = expansion.self_terms(self.w)
        if raw_features is None and extra_w is None:
            # fast path: the energies come out of the gradient pass (no G formed)
            e_raw = np.empty(expansion.n_atoms)
            pair_g = expansion.pair_gradient(self.w, per_element=True, self_radial=self_radial,
                                             energies=e_raw)
            e = self.e0[expansion.species_index] + e_raw - e_self
        else:
            g = (expansion.features(subtract_self=False) if raw_features is None
                 else raw_features)
            e = self.linear_energies(expansion, g) - e_self
            pair_g = expansion.pair_gradient(self.w, per_element=True, raw=extra_w,
                                             self_radial=self_radial)
        if extra_energies is not None:
            e = e + extra_energies
        if extra_radial is not None:
            pair_g += expansion._u * extra_radial[:, None]
        if self.core is not None:
            e_core, g_core = self.core.evaluate(expansion)
            e, pair_g = e + e_core, pair_g + g_core
        forces, virial = expansion.scatter_pair_gradient(pair_g)
        return dict(energy=e.sum(), energies=e, forces=forces, virial=virial)

    def evaluate(self, atoms) -> dict:
        """Energy (eV), energies (N,) eV, forces (N, 3) eV/Å and virial (3, 3) eV."""
        return self.evaluate_expansion(self.descriptor.expand(atoms))

    def to_arrays(self) -> dict:
        core = self.core
        return {"linear_e0": self.e0, "linear_w": self.w,
                "core": np.array([] if core is None else
                                 [core.epsilon, core.sigma, core.r_on, core.r_off])}

    @classmethod
    def from_arrays(cls, descriptor, arrays):
        core = arrays.get("core", np.array([]))
        return cls(descriptor, arrays["linear_e0"], arrays["linear_w"],
                   core=CoreRepulsion(*map(float, core)) if len(core) else None)


#: Configuration types that are fitted but never held out by the cross-validation:
#: there is one dimer scan per species pair, and a held-out scan would leave its gated
#: pair term (see :class:`~reference_models.descriptors.Descriptor`) unconstrained.
TRAIN_ONLY = ("dimer", "atom")
#: Fold label of the TRAIN_ONLY trajectories.
ALWAYS = "always"


def fold_of(structures, n_folds: int, seed: int = 0):
    """Map trajectory id -> fold index (whole trajectories per fold).

    Trajectories of :data:`TRAIN_ONLY` configuration types map to :data:`ALWAYS`, a
    group :func:`cross_validate` always trains on and never holds out.
    """
    always = {a.info["trajectory"] for a in structures
              if a.info.get("config_type") in TRAIN_ONLY}
    ids = sorted({a.info["trajectory"] for a in structures} - always)
    order = np.random.default_rng(seed).permutation(len(ids))
    return {**{ids[k]: int(f % n_folds) for f, k in enumerate(order)},
            **{t: ALWAYS for t in always}}


def cross_validate(stats: NormalEquations, sigmas: Sigmas, lambdas, n_species: int):
    """Grouped cross-validation of the ridge strength (group :data:`ALWAYS` is never held out).

    Returns
    -------
    pandas.DataFrame
        One row per lambda: weighted CV loss (chi-square per row) and RMSE per kind.
    """
    rows = []
    weights = {k: sigmas.weight(k) for k in KINDS}
    for lam in lambdas:
        sse = {k: 0.0 for k in KINDS}
        cnt = {k: 0 for k in KINDS}
        for group in stats.groups:
            if group == ALWAYS:
                continue
            a, b = stats.total(weights, exclude=(group,))
            theta = solve(a, b, lam, n_species)
            for kind in KINDS:
                e, n = stats.sse(theta, group, kind)
                sse[kind] += e
                cnt[kind] += n
        loss = sum(sse[k] * weights[k] ** 2 for k in KINDS) / sum(cnt.values())
        rows.append(dict(lam=lam, loss=loss, **{f"rmse_{k}": np.sqrt(sse[k] / max(cnt[k], 1))
                                                 for k in KINDS}))
    return pd.DataFrame(rows)


def fit_linear(structures, descriptor: Descriptor, sigmas: Sigmas | None = None,
               lambdas=None, n_folds: int = 5, seed: int = 0, stats=None, verbose=False,
               core: CoreRepulsion | None = CoreRepulsion(), config_weights: dict | None = None,
               binding: bool = False):
    """Fit the linear model with the ridge strength chosen by grouped cross-validation.

    Parameters
    ----------
    structures : sequence of ase.Atoms
        Labelled training structures with ``info["trajectory"]``.
    descriptor : Descriptor
    sigmas : Sigmas, optional
        Expected label errors (loss weights).
    lambdas : sequence of float, optional
        Relative ridge strengths to scan; default ``logspace(-10, -3, 8)``.
    n_folds : int
        Folds of whole trajectories.
    seed : int
        Seed of the fold assignment.
    stats : NormalEquations, optional
        Precomputed statistics grouped by fold (skips the descriptor evaluation); they
        must have been built with the same ``core``.
    core : CoreRepulsion or None
        Fixed short-range repulsion of the model.
    config_weights, binding
        Row weights per configuration type and binding-energy rows of dimers (see
        :func:`design_matrix`); used when ``stats`` is not given.

    Returns
    -------
    model : LinearModel
    cv : pandas.DataFrame
        Cross-validation table (see :func:`cross_validate`).
    """
    sigmas = Sigmas() if sigmas is None else sigmas
    lambdas = np.logspace(-10, -3, 8) if lambdas is None else lambdas
    if stats is None:
        folds = fold_of(structures, n_folds, seed)
        stats = normal_equations(structures, descriptor, lambda a: folds[a.info["trajectory"]],
                                 core, config_weights, binding)
    cv = cross_validate(stats, sigmas, lambdas, descriptor.n_species)
    best = cv.loc[cv["loss"].idxmin()]
    if verbose:
        print(cv.to_string(index=False, float_format=lambda v: f"{v:.3e}"))
    a, b = stats.total({k: sigmas.weight(k) for k in KINDS})
    theta = solve(a, b, float(best["lam"]), descriptor.n_species)
    info = dict(lam=float(best["lam"]), sigmas=vars(sigmas).copy() if hasattr(sigmas, "__dict__")
                else dict(energy=sigmas.energy, forces=sigmas.forces, stress=sigmas.stress),
                cv_rmse_energy=float(best["rmse_energy"]), cv_rmse_forces=float(best["rmse_forces"]),
                cv_rmse_stress=float(best["rmse_stress"]))
    return LinearModel.from_theta(descriptor, theta, info, core), cv


def errors(theta, stats: NormalEquations, groups=None) -> dict:
    """RMSE per kind (eV/atom, eV/Å, eV/Å³) of parameters on the rows of some groups."""
    out = {}
    for kind in KINDS:
        sse, n = 0.0, 0
        for group in (stats.groups if groups is None else groups):
            e, m = stats.sse(theta, group, kind)
            sse, n = sse + e, n + m
        out[kind] = np.sqrt(sse / n) if n else np.nan
    return out


def pareto_front(train: NormalEquations, test: NormalEquations, n_species: int, lam: float,
                 factors=(0.1, 0.3, 1.0, 3.0, 10.0), sigmas: Sigmas | None = None):
    """Test errors as the energy and stress weights vary relative to the force weight.

    Parameters
    ----------
    train, test : NormalEquations
    n_species : int
    lam : float
        Ridge strength (relative).
    factors : sequence of float
        Multipliers of the default energy and stress weights (force weight fixed).
    sigmas : Sigmas, optional
        Default weights.

    Returns
    -------
    pandas.DataFrame
        Columns ``weight_energy``, ``weight_forces``, ``weight_stress`` (1/sigma),
        ``rmse_energy`` (eV/atom), ``rmse_forces`` (eV/Å), ``rmse_stress`` (eV/Å³) and
        ``pareto`` (True when no other weighting is better in all three).
    """
    sigmas = Sigmas() if sigmas is None else sigmas
    rows = []
    for fe in factors:
        for fs in factors:
            weights = dict(energy=fe * sigmas.weight("energy"), forces=sigmas.weight("forces"),
                           stress=fs * sigmas.weight("stress"))
            theta = solve(*train.total(weights), lam, n_species)
            err = errors(theta, test)
            rows.append({**{f"weight_{k}": v for k, v in weights.items()},
                         **{f"rmse_{k}": err[k] for k in KINDS}})
    df = pd.DataFrame(rows)
    values = df[[f"rmse_{k}" for k in KINDS]].to_numpy()
    dominated = [(np.all(values <= v, axis=1) & np.any(values < v, axis=1)).any() for v in values]
    df["pareto"] = ~np.array(dominated)
    return df


def _with_fidelity_offsets(a, b, n_species: int, offset_block: bool):
    """Embed (p, p) normal equations into p + S parameters.

    The extra S parameters are per-element reference energies of the low fidelity:
    a constant shift per element between two levels of theory is expected and must not
    leak into the descriptor weights.  ``offset_block=True`` moves the statistics' own
    reference-energy columns onto the extra parameters.
    """
    p = len(b)
    index = np.arange(p)
    if offset_block:
        index[:n_species] = p + np.arange(n_species)
    big_a = np.zeros((p + n_species, p + n_species))
    big_b = np.zeros(p + n_species)
    big_a[np.ix_(index, index)] = a
    big_b[index] = b
    return big_a, big_b


def multifidelity_fit(high: NormalEquations, low: NormalEquations, test: NormalEquations,
                      n_species: int, lam: float, noise_high: Sigmas, noise_low: Sigmas,
                      bias_low: Sigmas):
    """Compare high-only, low-only and combined weighted fits on high-fidelity test data.

    Each fidelity's rows are weighted by ``1 / sqrt(noise² + bias²)`` per kind: the
    high-fidelity labels by their noise only, the low-fidelity ones by noise plus the
    variance of their systematic bias.  In the combined fit the low fidelity has its
    own per-element reference energies (a constant offset between levels of theory is
    not information about the potential-energy surface).

    Parameters
    ----------
    high, low, test : NormalEquations
        Statistics of the high-fidelity training, low-fidelity training and
        high-fidelity test rows.
    n_species : int
    lam : float
        Relative ridge strength used for all three fits.
    noise_high, noise_low, bias_low : Sigmas
        Label noise of each fidelity and the bias (RMS) of the low fidelity.

    Returns
    -------
    pandas.DataFrame
        Rows "high only", "low only", "combined" with test RMSE per kind.
    """
    def weights(noise, bias=None):
        return {k: 1.0 / np.hypot(getattr(noise, k), 0.0 if bias is None else getattr(bias, k))
                for k in KINDS}

    a_h, b_h = high.total(weights(noise_high))
    a_l, b_l = low.total(weights(noise_low, bias_low))
    p = len(b_h)
    fits = {
        "high only": solve(a_h, b_h, lam, n_species),
        "low only": solve(a_l, b_l, lam, n_species),
    }
    big_h = _with_fidelity_offsets(a_h, b_h, n_species, False)
    big_l = _with_fidelity_offsets(a_l, b_l, n_species, True)
    combined = solve(big_h[0] + big_l[0], big_h[1] + big_l[1], lam, n_species,
                     unpenalised_tail=n_species)
    fits["combined"] = combined[:p]
    rows = [dict(fit=name, **{f"rmse_{k}": v for k, v in errors(theta, test).items()})
            for name, theta in fits.items()]
    return pd.DataFrame(rows)
