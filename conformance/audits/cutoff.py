"""Cutoff convergence: does a local fit to the user's data still gain from farther atoms?

The smoothness study (``docs/studies/cutoff_error.md``) shows the physics side of
locality: the truncation error of a screened metal falls exponentially with the
cutoff radius r_c, that of an ionic solid does not. This audit asks the same
question of a data set, with the linear reference model fitted by the weighted
ridge least squares of the outlier audit and judged on the test set.

Scan
    At each cutoff of the scan the descriptor of
    :data:`~conformance.audits.outliers.FIT_DESCRIPTOR` with as many radial
    functions per Å (2/Å): the test error against r_c, for the report. A larger
    cutoff also brings more parameters, so the scan alone mixes range and capacity:
    on EMT data, whose interactions end near 5.9 Å, going from 6.5 to 8.5 Å still
    lowers the force error by 12 %.

Verdict (nested comparison)
    The fit at the judged cutoff r_j (the model's) against the same fit plus a pair
    term that lives only between r_j and the largest cutoff r_far
    (:func:`shell_columns`: a few parameters per element pair, zero inside r_j). The
    measured value is the relative force-error excess ``F(r_j) / F(r_j + shell) - 1``.
    Measured on Cu MD frames (60 train, 20 test) labelled by EMT: -0.2 % at r_j =
    6.5 Å, 1.4 % at 5.5 Å, 35 % at 4.0 Å (the fourth and fifth shells are missing);
    labelled by EMT plus a weak pair term between 6.5 and 8 Å (up to 0.08 eV/Å):
    38 % at 5.5 Å and 74 % at 6.5 Å. The shell term is a pair term, so the test is
    conservative: far many-body effects show only through their pair projection.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import DataError, species_of
from .outliers import FIT_DESCRIPTOR, design_errors, fit_parameters

__all__ = ["CutoffReport", "cutoff_convergence"]

_R_MIN = FIT_DESCRIPTOR.get("r_min", 1.5)
#: radial functions per Å of the scanned descriptors and of the shell term
_RADIAL_PER_ANGSTROM = FIT_DESCRIPTOR["n_radial"] / (FIT_DESCRIPTOR["cutoff"] - _R_MIN)

#: eV/Å³ -> GPa
_GPA = 160.21766208


@dataclass
class CutoffReport:
    """Result of :func:`cutoff_convergence`.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per cutoff, ascending: ``cutoff`` (Å), ``energy`` (meV/atom),
        ``forces`` (eV/Å), ``stress`` (GPa; NaN without periodic stress labels)
        test RMSE of the fit with the full descriptor at that cutoff,
        ``n_radial`` (radial functions), ``neighbours`` (mean neighbours per atom
        within r_c in the training set) and ``seconds`` (descriptors + fit).
    judged : float
        The cutoff under test (Å).
    far : float
        The largest cutoff of the scan (Å).
    extended : dict
        The nested comparison at ``judged``: test RMSE (``energy`` meV/atom,
        ``forces`` eV/Å, ``stress`` GPa) of the fit at ``judged`` extended by the
        pair term of :func:`shell_columns` between ``judged`` and ``far``
        (``n_extra`` more parameters).
    tolerance : float
        Largest force excess counted as converged.
    """

    table: pd.DataFrame
    judged: float
    far: float
    extended: dict
    tolerance: float

    def _row(self, cutoff: float) -> pd.Series:
        t = self.table
        row = t.loc[np.isclose(t["cutoff"], cutoff)]
        if row.empty:
            raise KeyError(f"cutoff {cutoff} Å is not in the scan {t['cutoff'].tolist()}")
        return row.iloc[0]

    @property
    def force_excess(self) -> float:
        """Force RMSE at ``judged`` over that of the extended fit, minus one.

        0.25: what atoms between ``judged`` and ``far`` tell about the forces
        removes a fifth of the error; ~0 for labels that do not depend on them.
        """
        return float(self._row(self.judged)["forces"] / self.extended["forces"] - 1.0)

    @property
    def ok(self) -> bool:
        return self.force_excess <= self.tolerance

    def summary(self) -> str:
        lines = ["test error of the linear reference fit against its cutoff",
                 "  r_c (Å)  radial fns  neighbours  E (meV/atom)  F (eV/Å)  S (GPa)"]
        for row in self.table.itertuples():
            lines.append(f"  {row.cutoff:7.2f}  {row.n_radial:10d}  {row.neighbours:10.1f}  "
                         f"{row.energy:12.3g}  {row.forces:8.4g}  {row.stress:7.3g}")
        x = self.extended
        lines.append(f"  {self.judged:.2f} Å + a pair term between {self.judged:.2f} and {self.far:.2f} Å "
                     f"({x['n_extra']} parameters): E {x['energy']:.3g} meV/atom, "
                     f"F {x['forces']:.4g} eV/Å, S {x['stress']:.3g} GPa")
        lines.append(f"force error excess at r_c = {self.judged:.2f} Å: "
                     f"{100 * self.force_excess:.1f} % (converged below "
                     f"{100 * self.tolerance:.0f} %)")
        return "\n".join(lines)

    def plot(self, mark: float | None = None) -> dict:
        """Plot spec (report card): force and energy test RMSE against the cutoff."""
        t = self.table
        return {"title": "test error against the cutoff of the linear reference fit",
                "xlabel": "cutoff r_c (Å)", "ylabel": "force RMSE (eV/Å)",
                "ylabel_right": "energy RMSE (meV/atom)",
                "series": [{"x": t["cutoff"].tolist(), "y": t["forces"].tolist(), "label": "forces (left axis)"},
                           {"x": t["cutoff"].tolist(), "y": t["energy"].tolist(), "label": "energy (right axis)",
                            "axis": "right"},
                           {"x": [self.judged], "y": [self.extended["forces"]],
                            "label": f"forces, + pair term to {self.far:g} Å", "style": "scatter"}],
                "vlines": [] if mark is None else [{"x": mark, "label": f"cutoff {mark:.2f} Å"}],
                "hlines": []}

    def to_dict(self) -> dict:
        return dict(table=self.table.to_dict(orient="list"), judged=self.judged, far=self.far,
                    extended=self.extended, force_excess=self.force_excess,
                    tolerance=self.tolerance)


def cutoff_convergence(train, test, cutoffs, *, judged: float | None = None, species=None,
                       sigmas=None, lam: float = 1e-8, tolerance: float = 0.10,
                       max_train: int | None = None, max_test: int | None = None,
                       progress=None) -> CutoffReport:
    """Fit the linear reference model at several cutoffs and report its test error.

    Every cutoff gets the descriptor of :data:`~conformance.audits.outliers.FIT_DESCRIPTOR`
    with as many radial functions per Å (so larger cutoffs also have more parameters
    and the scan alone mixes range with capacity). The verdict therefore comes from a
    nested comparison: the fit at ``judged`` against the same fit plus a pair term
    living between ``judged`` and the largest cutoff (:func:`shell_columns`, a few
    parameters per element pair), both on the test set.

    Parameters
    ----------
    train, test : sequence of ase.Atoms
        Labelled structures (energy, forces, optional stress); see
        :func:`conformance.audits.data.read_labelled`.
    cutoffs : sequence of float
        Cutoff radii r_c (Å), at least two; sorted, duplicates removed.
    judged : float, optional
        The cutoff under test (Å), e.g. the model's; added to the scan when absent;
        default the second-largest cutoff. Must be below the largest.
    species : sequence of str, optional
        Species of the descriptor (default: those present in train and test).
    sigmas : conformance.featurize.design.Sigmas, optional
        Expected label errors defining the row weights (default ``Sigmas()``).
    lam : float
        Relative ridge strength (as in :func:`conformance.featurize.ridge.solve`).
    tolerance : float
        Largest relative force-error excess counted as converged (0.10 = 10 %).
    max_train, max_test : int, optional
        Use at most this many structures, evenly spaced through each set (data files
        are usually ordered by condition, so every condition keeps its share). The
        cost is one design matrix per radius and grows with r_c³: the 694 shipped
        frames take ~5 minutes for radii 4, 5.5, 7, 8.5 Å on 2 cores.
    progress : callable(done, total, what), optional
        Called after each radius.

    Returns
    -------
    CutoffReport
    """
    from ..featurize.descriptors import Descriptor
    from ..featurize.design import Sigmas, design_matrix

    train, test = _evenly(list(train), max_train), _evenly(list(test), max_test)
    if not train or not test:
        raise DataError("cutoff convergence needs a non-empty training and test set")
    cutoffs = sorted({float(c) for c in cutoffs} | ({float(judged)} if judged is not None else set()))
    if len(cutoffs) < 2 or cutoffs[0] <= _R_MIN:
        raise ValueError(f"give at least two cutoffs above {_R_MIN} Å, got {cutoffs}")
    judged = cutoffs[-2] if judged is None else float(judged)
    if judged >= cutoffs[-1]:
        raise ValueError(f"the judged cutoff {judged} Å must be below the largest, {cutoffs[-1]} Å")
    species = list(species) if species is not None else species_of(train + test)
    sigmas = Sigmas() if sigmas is None else sigmas
    rows, kept = [], None
    for rc in cutoffs:
        t0 = time.perf_counter()
        descriptor = Descriptor(species, **_settings(rc))
        design = design_matrix(train, descriptor, sigmas)
        test_design = design_matrix(test, descriptor, sigmas)
        theta = fit_parameters(design.X, design.y, design.row_weight, lam, descriptor.n_species)
        rows.append(dict(cutoff=rc, **_rmse(design_errors(theta, test_design)),
                         n_radial=descriptor.n_radial, neighbours=_mean_neighbours(train, rc),
                         seconds=time.perf_counter() - t0))
        if rc == judged:
            kept = (design, test_design)
        if progress is not None:
            progress(len(rows), len(cutoffs) + 1, f"cutoff {rc:g} Å fitted")
    design, test_design = kept
    n_shell = max(2, int(round(_RADIAL_PER_ANGSTROM * (cutoffs[-1] - judged))))
    far = shell_columns(train, species, judged, cutoffs[-1], n_shell)
    far_test = shell_columns(test, species, judged, cutoffs[-1], n_shell)
    if far.shape[0] != design.X.shape[0] or far_test.shape[0] != test_design.X.shape[0]:
        raise AssertionError("shell rows do not match the design matrix rows")
    extended = dataclasses.replace(design, X=np.hstack([design.X, far]))
    theta = fit_parameters(extended.X, extended.y, extended.row_weight, lam, len(species))
    errors = design_errors(theta, dataclasses.replace(test_design,
                                                      X=np.hstack([test_design.X, far_test])))
    return CutoffReport(pd.DataFrame(rows), judged, cutoffs[-1],
                        dict(**_rmse(errors), n_extra=far.shape[1]), tolerance)


def _evenly(structures: list, limit: int | None) -> list:
    """At most ``limit`` structures, evenly spaced (all when ``limit`` is None)."""
    if limit is None or len(structures) <= limit:
        return structures
    return [structures[k] for k in np.linspace(0, len(structures) - 1, limit).round().astype(int)]


def _rmse(errors: dict) -> dict:
    """design_errors (eV/atom, eV/Å, eV/Å³) in meV/atom, eV/Å, GPa."""
    return dict(energy=1e3 * errors["energy"], forces=errors["forces"],
                stress=_GPA * errors["stress"])


def shell_columns(structures, species, r_inner: float, r_outer: float, n_functions: int):
    """Design columns of a pair term living only between ``r_inner`` and ``r_outer`` (Å).

    ``E_shell = sum_{i<j} sum_k w[p(i,j), k] B_k(r_ij)`` with one weight set per
    unordered element pair p and ``B_k = T_k(x(r)) h(r)``: Chebyshev polynomials of
    r scaled to [-1, 1] over the shell, times an envelope ``h`` that rises from 0 at
    ``r_inner`` (quintic switch over the first quarter of the shell) and falls to 0
    at ``r_outer`` (over the last quarter), so the columns add no freedom inside
    ``r_inner`` and stay C2. Rows match :func:`conformance.featurize.design.design_matrix`
    (per-atom energy, 3N forces, 6 stresses for cells of rank 3 with stress labels).

    Returns
    -------
    ndarray, shape (n_rows, P * n_functions)
        P = S (S + 1) / 2 element pairs.
    """
    from ..featurize.neighbors import neighbor_list
    from ..featurize.switching import quintic_switch

    s = len(species)
    pair_index = np.full((s, s), -1)
    pair_index[np.triu_indices(s)] = np.arange(s * (s + 1) // 2)
    pair_index = np.maximum(pair_index, pair_index.T)
    width = (r_outer - r_inner) / 4
    width_cols = (s * (s + 1) // 2) * n_functions
    order = {e: k for k, e in enumerate(species)}
    blocks = []
    for atoms in structures:
        n = len(atoms)
        kind = np.array([order[e] for e in atoms.get_chemical_symbols()])
        nl = neighbor_list(atoms, r_outer)
        r = nl.distance
        inside = r > r_inner
        i, r, vec = nl.i[inside], r[inside], nl.vector[inside]
        up, dup, _ = quintic_switch(r, r_inner, r_inner + width)
        down, ddown, _ = quintic_switch(r, r_outer - width, r_outer)
        h, dh = (1 - up) * down, -dup * down + (1 - up) * ddown
        x = 2 * (r - r_inner) / (r_outer - r_inner) - 1
        t = np.polynomial.chebyshev.chebvander(x, n_functions - 1)             # (P, K)
        dt = t @ _chebder_matrix(n_functions) * (2 / (r_outer - r_inner))        # d/dr
        b, db = t * h[:, None], dt * h[:, None] + t * dh[:, None]             # (P, K)
        column = pair_index[kind[i], kind[nl.j[inside]]][:, None] * n_functions + np.arange(n_functions)
        energy = np.zeros(width_cols)
        np.add.at(energy, column, 0.5 * b)                                     # full list: 1/2
        # F_i = -dE/dx_i = sum_j B'(r) (x_j - x_i) / r over the full list
        forces = np.zeros((n, width_cols, 3))
        np.add.at(forces, (np.repeat(i, n_functions), column.ravel()),
                  ((db / r[:, None])[:, :, None] * vec[:, None, :]).reshape(-1, 3))
        rows = [energy[None] / n, forces.transpose(0, 2, 1).reshape(3 * n, width_cols)]
        if "stress" in atoms.calc.results and atoms.cell.rank == 3:
            va, vb = [0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]
            stress = np.zeros((6, width_cols))
            for row, (a, c) in enumerate(zip(va, vb)):
                np.add.at(stress[row], column, 0.5 * (db / r[:, None]) * (vec[:, a] * vec[:, c])[:, None])
            rows.append(stress / abs(atoms.cell.volume))
        blocks.append(np.concatenate(rows))
    return np.concatenate(blocks)


def _chebder_matrix(n: int) -> np.ndarray:
    """(n, n) matrix D with chebvander(x, n-1) @ D = d/dx chebvander(x, n-1)."""
    d = np.zeros((n, n))
    for k in range(1, n):
        d[:k, k] = np.polynomial.chebyshev.chebder(np.eye(n)[k])[:k]
    return d


def _settings(cutoff: float) -> dict:
    """FIT_DESCRIPTOR at another cutoff (Å), with as many radial functions per Å."""
    n_radial = int(round(_RADIAL_PER_ANGSTROM * (cutoff - _R_MIN)))
    smallest = max(FIT_DESCRIPTOR["n_cubic"], FIT_DESCRIPTOR["n_angular"], 2)
    return {**FIT_DESCRIPTOR, "cutoff": cutoff, "n_radial": max(smallest, n_radial)}


def _mean_neighbours(structures, cutoff: float) -> float:
    from ..featurize.neighbors import neighbor_list

    pairs = sum(len(neighbor_list(a, cutoff).i) for a in structures)
    return pairs / max(sum(len(a) for a in structures), 1)

