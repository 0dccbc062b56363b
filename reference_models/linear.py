"""Linear model on density-expansion descriptors, fitted by weighted ridge regression.

``E = sum_i (e0[Z_i] + w[Z_i] · G_i)`` with per-element reference energies ``e0`` (eV)
and weights ``w`` (S, D).  Energies, forces and stresses are linear in the parameters,
so all three enter one weighted least-squares problem whose rows come from
:func:`design_matrix` (with :class:`Sigmas`, :class:`NormalEquations` and :func:`solve`
defined in the suite's featurisation, :mod:`conformance.featurize`, and re-exported here):

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

from conformance.featurize.descriptors import Descriptor
from conformance.featurize.design import (CONFIG_WEIGHTS, KINDS, DesignMatrix,  # noqa: F401
                                          NormalEquations, Sigmas, _weight, design_matrix,
                                          free_atom_energies, normal_equations,
                                          structure_rows, structure_weight)
from conformance.featurize.repulsion import CoreRepulsion
from conformance.featurize.ridge import penalty_scale, solve

__all__ = [
    "KINDS", "Sigmas", "DesignMatrix", "design_matrix", "NormalEquations",
    "normal_equations", "solve", "LinearModel", "fit_linear", "cross_validate",
    "pareto_front", "multifidelity_fit", "errors", "EV_PER_A3_TO_GPA", "structure_weight",
    "free_atom_energies",
]

EV_PER_A3_TO_GPA = 160.21766208
#: The private names of the moved helpers, for code that used them
_structure_rows = structure_rows
_penalty_scale = penalty_scale


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
