"""Reusable scans: dimer curves, effective-cutoff detection, continuity and shape metrics.

The helpers here *measure*; the checks in :mod:`conformance.checks.smoothness`
and :mod:`conformance.checks.locality` judge. Everything that calls the model
goes through :meth:`conformance.core.model.Model.evaluate` (one calculator instance,
counted calls); everything else is a pure numpy function of sampled curves.

Continuity test used throughout (:func:`interval_ratios`): on a uniform grid,
the change over an interval, ``Δy_i = y_{i+1} - y_i``, is compared with what
the neighbouring intervals predict, ``(Δy_{i-1} + Δy_{i+1}) / 2``. The residual

    res_i = Δy_i - (Δy_{i-1} + Δy_{i+1}) / 2

is ``-h³ y‴/2`` for a smooth curve, at most ``|Δy_{i+1} - Δy_{i-1}| / 2`` for a
kink (a jump of the slope) inside the interval, and ``J`` for a jump ``J``. The
allowance ``|Δy_{i+1} - Δy_{i-1}|`` (the change of slope across the interval)
plus twice the residual two intervals away (smooth curvature, untouched by a
jump in interval i) therefore separates a genuine discontinuity from a steep
wall and from a mere kink: a kink of the energy is a jump of the force and is
reported there, not as an energy jump. Intervals that still look like jumps are
resampled finer (:func:`refined_jumps`): a jump keeps its size, an
under-resolved smooth feature does not.

>>> import numpy as np
>>> x = np.linspace(0, 1, 41)
>>> smooth = np.exp(8 * x)                       # a steep wall
>>> stepped = np.where(x < 0.51, x, x + 1e-3)    # a 1e-3 jump between 0.5 and 0.525
>>> res, allow = jump_test(smooth)
>>> bool((np.abs(res) < allow).all())
True
>>> res, allow = jump_test(stepped)
>>> i = int(np.argmax(np.abs(res) - allow))
>>> round(float(res[i]), 6), float(x[i + 1])
(0.001, 0.5)
"""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from ase import Atoms

from .structures import nearest_neighbour_distance
from ..core.profiles import STANDARD
from ..core.tolerances import define

__all__ = [
    "DimerCurve", "CutoffEstimate", "Discontinuity", "dimer", "dimer_curve", "separated_energy",
    "pair_grid", "species_pairs", "pair_label", "jump_test", "interval_ratios", "worst_jump",
    "refined_jumps", "vanishing_radius",
    "detect_cutoff", "model_cutoff", "cutoff_for", "significant_extrema", "count_minima", "count_inflections",
    "sign_flips", "tortuosity", "spearman", "main_well", "repulsion_hole", "fd_derivative",
]

#: Shortest dimer distance scanned, as a fraction of the pair's nearest-neighbour
#: distance in the elements' crystals (Cu–Cu: 1.02 Å): deep in the repulsive wall.
R_MIN_FRACTION = 0.4
#: Furthest distance searched for an effective cutoff when none is declared (Å).
R_SEARCH = 12.0
#: Step (Å) of the coarse outside-in search for the effective cutoff.
SEARCH_STEP = 0.25
#: Bisection steps refining the effective cutoff (0.25 Å / 2^8 ≈ 1 mÅ).
BISECTIONS = 8

define("cutoff_energy_atol", "eV", 1e-9, 1e-5,
       "a dimer counts as separated (beyond the effective cutoff) when |E - E_sep| is below "
       "this plus round-off (smooth_noise_rtol × |E_sep|): the models that truncate exactly "
       "(EMT beyond its list cutoff, switched pair potentials) give 0; a tail decaying "
       "exponentially is followed out to where it is at round-off level")
define("cutoff_force_atol", "eV/Å", 1e-8, 1e-4,
       "a dimer counts as separated when every force component is below this "
       "(exactly 0 beyond a hard list cutoff; float32 forces carry ~1e-6 eV/Å noise)")
define("smooth_noise_rtol", "1", 1e-11, 3e-6,
       "relative round-off of a model's total energy, forces and stress, added to every "
       "smoothness/cutoff tolerance as rtol × |value|: float64 sums of ~100 terms err by "
       "~1e-14 relative, float32 by ~1e-7..1e-6")


# --------------------------------------------------------------------------- structures

def dimer(a: str, b: str, r: float) -> Atoms:
    """Isolated dimer ``a`` at the origin, ``b`` at ``(r, 0, 0)`` Å, no cell, no pbc."""
    return Atoms([a, b], positions=[[0.0, 0.0, 0.0], [float(r), 0.0, 0.0]])


#: Pairs probed for the cutoff: all of them up to 9 species, else a covering sample
#: (every element in a pair with itself and with two others), as the standard dimer scans
CUTOFF_PAIRS = STANDARD.max_pairs


def species_pairs(species: Sequence[str], max_pairs: int | None = None,
                  seed: int = 0) -> list[tuple[str, str]]:
    """Unordered species pairs, diagonal included, in the order given.

    With more than ``max_pairs`` pairs (a foundation model declaring dozens of
    elements has ~N²/2 of them), a covering sample whose size grows linearly in
    N: every homonuclear pair, and a random cycle through the species (seeded
    by ``seed``) in which every element meets two others.

    >>> species_pairs(["Cu", "Au"])
    [('Cu', 'Cu'), ('Cu', 'Au'), ('Au', 'Au')]
    >>> len(species_pairs([f"X{i}" for i in range(89)], max_pairs=45))   # 89 + 89 of 4005
    178
    """
    species = list(dict.fromkeys(species))
    every = [(a, b) for i, a in enumerate(species) for b in species[i:]]
    if max_pairs is None or len(every) <= max_pairs:
        return every
    n = len(species)
    order = np.random.default_rng(seed).permutation(n)
    chosen = {(k, k) for k in range(n)}
    chosen |= {tuple(sorted((int(order[i]), int(order[(i + 1) % n])))) for i in range(n)}
    return [(species[i], species[j]) for i, j in sorted(chosen)]


def pair_label(a: str, b: str) -> str:
    """``"Cu-Au"``: key of a pair in details and messages."""
    return f"{a}-{b}"


def pair_nn_distance(a: str, b: str) -> float:
    """Mean nearest-neighbour distance (Å) of the two elements' crystals."""
    return 0.5 * (nearest_neighbour_distance(a) + nearest_neighbour_distance(b))


def pair_grid(r_min: float, r_max: float, n: int) -> np.ndarray:
    """Uniform grid of ``n`` distances (Å) from ``r_min`` to ``r_max`` inclusive."""
    if not r_max > r_min > 0 or n < 5:
        raise ValueError(f"need 0 < r_min < r_max and n >= 5, got {r_min}, {r_max}, {n}")
    return np.linspace(float(r_min), float(r_max), int(n))


# --------------------------------------------------------------------------- model scans

def separated_energy(model, symbols: Sequence[str], cache: dict | None = None) -> float:
    """Sum of the energies (eV) of each atom alone in vacuum (1 call per new species).

    ``cache`` (symbol -> energy) avoids re-evaluating a species.
    """
    cache = {} if cache is None else cache
    total = 0.0
    for s in symbols:
        if s not in cache:
            cache[s] = model.evaluate(Atoms([s], positions=[[0.0, 0.0, 0.0]]), ("energy",))["energy"]
        total += cache[s]
    return float(total)


@dataclass
class DimerCurve:
    """Energy and force of a dimer along its bond.

    Attributes
    ----------
    pair : (str, str)
    r : ndarray (n,)
        Distances (Å), uniform grid.
    energy : ndarray (n,)
        ``E(r) - E_sep`` (eV): energy relative to the separated atoms.
    force : ndarray (n,)
        Force on the second atom along the bond, ``F_b · r̂`` (eV/Å); positive is
        repulsive, and equals ``-dE/dr`` for a conservative model.
    e_separated : float
        Sum of the isolated-atom energies (eV).
    """

    pair: tuple
    r: np.ndarray
    energy: np.ndarray
    force: np.ndarray
    e_separated: float

    @property
    def label(self) -> str:
        return pair_label(*self.pair)

    @property
    def h(self) -> float:
        return float(self.r[1] - self.r[0])


def dimer_curve(model, a: str, b: str, r: np.ndarray, e_separated: float | None = None,
                atom_cache: dict | None = None) -> DimerCurve:
    """Scan the dimer ``a``–``b`` over the distances ``r`` (Å).

    Makes ``len(r)`` model calls, one batch when the model takes batches (plus one
    per species not yet in ``atom_cache`` when ``e_separated`` is not given), all
    with the model's one calculator.
    """
    if e_separated is None:
        e_separated = separated_energy(model, (a, b), atom_cache)
    r = np.asarray(r, dtype=float)
    energy = np.empty(len(r))
    force = np.empty(len(r))
    outs = model.evaluate_many([dimer(a, b, rk) for rk in r], ("energy", "forces"))
    for k, out in enumerate(outs):
        energy[k] = out["energy"] - e_separated
        force[k] = out["forces"][1, 0]
    return DimerCurve((a, b), r, energy, force, float(e_separated))


@dataclass(frozen=True)
class CutoffEstimate:
    """The interaction range of a model.

    Attributes
    ----------
    radius : float or None
        Cutoff (Å): declared, or the largest detected pair range; None when the
        dimer energy/force does not vanish anywhere up to ``r_max``.
    source : {"declared", "detected"}
    pairs : dict
        ``"Cu-Au"`` -> detected range (Å) or None (empty when declared).
    r_max : float
        Furthest distance searched (Å).
    n_calls : int
        Model calls the detection made.
    """

    radius: float | None
    source: str
    pairs: dict = field(default_factory=dict)
    r_max: float = R_SEARCH
    n_calls: int = 0

    def describe(self) -> str:
        if self.source == "declared":
            return f"declared cutoff {self.radius:.3f} Å"
        if self.radius is None:
            return f"no cutoff: the dimer energy/force does not vanish within {self.r_max:g} Å"
        per = ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} >{self.r_max:g}"
                        for k, v in self.pairs.items())
        return f"effective cutoff {self.radius:.3f} Å detected from dimer scans ({per} Å)"


def _is_zero(out: dict, e_sep: float, e_tol: float, f_tol: float) -> bool:
    return abs(out["energy"] - e_sep) <= e_tol and float(np.abs(out["forces"]).max()) <= f_tol


def detect_pair_range(model, a: str, b: str, e_separated: float, e_tol: float, f_tol: float,
                      r_max: float = R_SEARCH, step: float = SEARCH_STEP,
                      bisections: int = BISECTIONS) -> float | None:
    """Distance (Å) beyond which the ``a``–``b`` dimer is indistinguishable from
    the separated atoms (|E - E_sep| <= e_tol and |F| <= f_tol).

    Searches outside-in on a grid of ``step`` from ``r_max`` down to 0.5 × the
    nearest-neighbour distance, stops at the first point that is not zero, and
    bisects ``bisections`` times between it and the next (zero) point. Returns
    the smallest distance found to be zero, None if ``r_max`` itself is not.
    Calls: at most ``(r_max - r_start) / step + 1 + bisections``.
    """
    r_start = 0.5 * pair_nn_distance(a, b)
    grid = np.arange(r_max, r_start, -step)

    def zero(r):
        return _is_zero(model.evaluate(dimer(a, b, r), ("energy", "forces")), e_separated, e_tol, f_tol)

    if not zero(grid[0]):
        return None
    outer = float(grid[0])
    inner = None
    for r in grid[1:]:
        if zero(r):
            outer = float(r)
        else:
            inner = float(r)
            break
    if inner is None:  # zero everywhere searched: no interaction at all
        return float(r_start)
    for _ in range(bisections):
        mid = 0.5 * (inner + outer)
        if zero(mid):
            outer = mid
        else:
            inner = mid
    return outer


_CUTOFFS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def detect_cutoff(model, species: Sequence[str], e_tol: float, f_tol: float,
                  noise_rtol: float = 0.0, r_max: float = R_SEARCH) -> CutoffEstimate:
    """Effective cutoff of ``model``: the largest pair range over ``species``.

    A dimer counts as separated when ``|E - E_sep| <= e_tol + noise_rtol × |E_sep|``
    (eV) and every force component is ``<= f_tol`` (eV/Å). The result is
    memoised per model and thresholds (several checks need it); ``n_calls`` is
    the number of calls of the first, uncached detection, and a cached answer
    costs no call.
    """
    key = (tuple(species), float(e_tol), float(f_tol), float(noise_rtol), float(r_max))
    memo = _CUTOFFS.setdefault(model, {})
    if key in memo:
        return memo[key]
    before = model.n_calls
    atoms: dict = {}
    pairs = {}
    for a, b in species_pairs(species, CUTOFF_PAIRS):
        e_sep = separated_energy(model, (a, b), atoms)
        pairs[pair_label(a, b)] = detect_pair_range(model, a, b, e_sep, e_tol + noise_rtol * abs(e_sep),
                                                    f_tol, r_max)
    values = list(pairs.values())
    radius = None if any(v is None for v in values) else max(values)
    est = CutoffEstimate(radius, "detected", pairs, r_max, model.n_calls - before)
    memo[key] = est
    return est


def cutoff_for(model, tol) -> CutoffEstimate:
    """:func:`model_cutoff` with the thresholds of a run's tolerances ``tol``
    (``cutoff_energy_atol``, ``cutoff_force_atol``, ``smooth_noise_rtol``)."""
    return model_cutoff(model, tol["cutoff_energy_atol"], tol["cutoff_force_atol"], tol["smooth_noise_rtol"])


def model_cutoff(model, e_tol: float, f_tol: float, noise_rtol: float = 0.0,
                 r_max: float = R_SEARCH) -> CutoffEstimate:
    """The declared cutoff (``model.tags.cutoff``), else the detected one
    (:func:`detect_cutoff` over ``model.tags.species``)."""
    if model.tags.cutoff is not None:
        return CutoffEstimate(float(model.tags.cutoff), "declared")
    return detect_cutoff(model, model.tags.species, e_tol, f_tol, noise_rtol, r_max)


# --------------------------------------------------------------------------- continuity

def jump_test(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Jump residuals and slope-change allowances of a curve on a uniform grid.

    Parameters
    ----------
    y : ndarray (n, ...)
        Samples; extra axes (atoms, components) are tested independently.

    Returns
    -------
    res, allowance : ndarray (n - 3, ...)
        For interval ``i = 1 .. n-3`` (between samples ``i`` and ``i+1``), at
        index ``i - 1``: ``res = Δy_i - (Δy_{i-1} + Δy_{i+1})/2`` (the size of a
        jump there) and ``|Δy_{i+1} - Δy_{i-1}|`` (twice the largest residual a
        kink or smooth curvature can produce). The first and last intervals are
        not tested.
    """
    y = np.asarray(y, dtype=float)
    d = np.diff(y, axis=0)
    return d[1:-1] - 0.5 * (d[:-2] + d[2:]), np.abs(d[2:] - d[:-2])


@dataclass(frozen=True)
class Discontinuity:
    """Worst interval of a jump test, judged against ``tolerance``.

    Attributes
    ----------
    interval : int
        Interval of the (coarse) grid, between samples ``interval`` and
        ``interval + 1``; -1 when the curve was too short to test.
    size : float
        Jump estimate (unit of the curve), signed.
    tolerance : float
        Tolerance of that interval (atol + slope allowance + noise).
    index : tuple
        Trailing index (atom, component, ...) of the worst column.
    x_lo, x_hi : float
        Ends of the interval where it was measured (on the finest grid
        that was sampled there).
    levels : int
        Refinement levels sampled around it (0: coarse grid only).
    exponent : float or None
        For a steep continuous feature: α of ``|x - x0|^α`` estimated from how
        its residual shrank under refinement.
    """

    interval: int
    size: float
    tolerance: float
    index: tuple = ()
    x_lo: float = float("nan")
    x_hi: float = float("nan")
    levels: int = 0
    exponent: float | None = None

    @property
    def ratio(self) -> float:
        return abs(self.size) / self.tolerance if self.tolerance > 0 else float("inf")

    @property
    def found(self) -> bool:
        return self.ratio > 1.0

    @property
    def x_mid(self) -> float:
        return 0.5 * (self.x_lo + self.x_hi)


def interval_ratios(y: np.ndarray, atol: float, slope_factor: float = 1.0,
                    noise_rtol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Jump residual and tolerance of every testable interval (1 .. n-3).

    Tolerance of interval i::

        atol + slope_factor × (|Δy_{i+1} - Δy_{i-1}| + 2 min(|res_{i-2}|, |res_{i+2}|))
             + noise_rtol × max(|y_i|, |y_{i+1}|)

    The second term is the smooth residual of the intervals two steps away,
    which a jump or kink in interval i does not touch: near an inflection
    point the slope change vanishes but the residual (h³ y‴ / 2) does not, and
    it varies slowly. Returns ``(res, tol)`` of shape ``(n - 3, ...)``.
    """
    y = np.asarray(y, dtype=float)
    res, allow = jump_test(y)
    a = np.abs(res)
    far = np.full(a.shape, np.inf)
    far[2:] = a[:-2]
    far[:-2] = np.minimum(far[:-2], a[2:])
    far = np.where(np.isfinite(far), far, 0.0)
    mag = np.maximum(np.abs(y[1:-2]), np.abs(y[2:-1]))
    return res, atol + slope_factor * (allow + 2 * far) + noise_rtol * mag


def worst_jump(y: np.ndarray, atol: float, slope_factor: float = 1.0, noise_rtol: float = 0.0,
               exclude: np.ndarray | None = None, x: np.ndarray | None = None
               ) -> tuple[Discontinuity, np.ndarray]:
    """The interval whose jump residual is largest relative to its tolerance.

    Parameters
    ----------
    y : ndarray (n, ...)
    atol, slope_factor, noise_rtol : float
        See :func:`interval_ratios`.
    exclude : ndarray of bool (n - 1,), optional
        Intervals not to judge.
    x : ndarray (n,), optional
        Grid, to fill in ``x_lo``/``x_hi``.

    Returns
    -------
    Discontinuity
        Worst interval (``interval = -1`` when the curve is too short).
    flagged : ndarray of bool (n - 1,)
        Intervals whose jump exceeds its tolerance (any column).
    """
    y = np.asarray(y, dtype=float)
    n = y.shape[0]
    flagged = np.zeros(max(n - 1, 0), dtype=bool)
    if n < 4:
        return Discontinuity(-1, 0.0, atol), flagged
    res, tol = interval_ratios(y, atol, slope_factor, noise_rtol)
    if exclude is not None:
        ex = np.asarray(exclude, dtype=bool)[1:-1]
        res = np.where(ex.reshape(ex.shape + (1,) * (res.ndim - 1)), 0.0, res)
    ratio = np.abs(res) / tol
    flagged[1:-1] = ratio.reshape(len(ratio), -1).max(axis=1) > 1.0
    idx = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    i = int(idx[0]) + 1
    xs = (float(x[i]), float(x[i + 1])) if x is not None else (float("nan"), float("nan"))
    return Discontinuity(i, float(res[idx]), float(tol[idx]), tuple(int(k) for k in idx[1:]), *xs), flagged


def _stack(samples: list[dict], names) -> dict:
    return {name: np.array([s[name] for s in samples], dtype=float) for name in names}


#: A suspected jump is confirmed when its size, followed down to a grid
#: ``factor ** levels`` times finer, shrank like ``h^α`` with α below this. A
#: discontinuity keeps its size (α = 0); a feature ``|x - x0|^α`` shrinks with
#: that α, up to a factor ~3 from where x0 falls in the intervals (±0.18 in α
#: over 512× refinement); a kink has α = 1 and a smooth wall α = 3. Tersoff's
#: bond order with n = 0.787 switches on with α = 0.57: continuous, it passes.
CONFIRM_EXPONENT = 1.0 / 3.0


@dataclass
class Continuity:
    """Result of :func:`refined_jumps` on curves sampled along one path.

    Attributes
    ----------
    worst : dict name -> Discontinuity
        Per curve, the worst interval that counts: a confirmed jump, else the
        largest residual relative to its tolerance where nothing was flagged
        or refinement resolved it.
    jumps : ndarray of bool (n - 1,)
        Coarse intervals holding a confirmed jump of any curve.
    flagged : dict name -> ndarray of bool (n - 1,)
        Per curve, coarse intervals holding its confirmed jump.
    calls : int
        Samples taken to refine.
    steep : dict name -> list of Discontinuity
        Per curve, features still above tolerance on the finest grid but
        shrinking under refinement: continuous, with a singular derivative
        (``exponent`` ≈ α of ``|x - x0|^α``). Reported, never failed.
    unrefined : list of int
        Coarse intervals above tolerance left unrefined because the call budget
        ran out; reported as unconfirmed, never failed.
    max_calls : int or None
        The call budget refinement had.
    """

    worst: dict
    jumps: np.ndarray
    flagged: dict
    calls: int = 0
    steep: dict = field(default_factory=dict)
    unrefined: list = field(default_factory=list)
    max_calls: int | None = None


def _refine_interval(sample, names, lo: float, hi: float, coarse_size: dict, atol: dict,
                     slope_factor: float, noise_rtol: float, levels: int, factor: int):
    """Zoom into one flagged interval, following its worst sub-interval, until
    each curve's residual there is resolved (below tolerance) or ``levels``
    levels are done; then a curve still above tolerance is a ``jump`` if its
    size shrank slower than ``h^CONFIRM_EXPONENT`` from the coarse grid, else
    ``steep`` (continuous, with its exponent). Returns ``(verdicts, calls)``:
    name -> (Discontinuity, state in {resolved, jump, steep})."""
    verdict: dict = {}
    calls = 0
    for level in range(1, levels + 1):
        # the interval at h/factor plus two sub-steps either side (the jump test needs them)
        step = (hi - lo) / factor
        xs = lo + step * np.arange(-2, factor + 3)
        ys = _stack([sample(v) for v in xs], names)
        calls += len(xs)
        still = []
        for k in names:
            if k in verdict and verdict[k][1] == "resolved":
                continue
            d = worst_jump(ys[k], atol[k], slope_factor, noise_rtol, x=xs)[0]
            d = Discontinuity(d.interval, d.size, d.tolerance, d.index, d.x_lo, d.x_hi, level)
            verdict[k] = (d, "open" if d.found else "resolved")
            if d.found:
                still.append(d)
        if not still:
            break
        worst = max(still, key=lambda d: d.ratio)
        lo, hi = worst.x_lo, worst.x_hi
    out = {}
    for k, (d, state) in verdict.items():
        if state == "open":
            shrink = abs(d.size) / coarse_size[k] if coarse_size.get(k, 0.0) > 0 else 1.0
            exponent = float(-np.log(max(shrink, 1e-300)) / np.log(factor ** d.levels))
            d = dataclasses.replace(d, exponent=exponent)
            state = "jump" if exponent < CONFIRM_EXPONENT else "steep"
        out[k] = (d, state)
    return out, calls


def refined_jumps(sample, x: np.ndarray, values: dict, atol: dict, slope_factor: float = 1.0,
                  noise_rtol: float = 0.0, levels: int = 3, factor: int = 8,
                  max_calls: int | None = 1000) -> Continuity:
    """Jump test of several curves sampled together, every suspicion confirmed
    or cleared by local refinement.

    A steep but continuous feature narrower than a few grid steps (EMT's Fermi
    cutoff is 0.04 Å wide; Tersoff's bond order sets in like ``Δr^0.57``)
    looks like a jump on a coarse grid. Every coarse interval above tolerance
    (worst first; its two neighbours, whose residuals a jump inflates by half,
    go with it) is resampled at ``h / factor`` with two extra sub-steps either
    side, and the worst sub-interval again, up to ``levels`` times
    (:func:`_refine_interval`). A curve's residual there is then *resolved*
    (below tolerance: smooth), a *jump* (it shrank slower than
    ``h^CONFIRM_EXPONENT`` over the refinement: a discontinuity does not shrink)
    or *steep* (still above tolerance but shrinking: continuous with a singular
    derivative). Only jumps fail; nothing fails unconfirmed.

    Parameters
    ----------
    sample : callable ``x -> dict name -> value``, or None: the coarse test
        alone, judged as it is (for a curve analysed without the model)
    x : ndarray (n,)
        Uniform coarse grid.
    values : dict name -> ndarray (n, ...)
        The coarse samples.
    atol : dict name -> float
        Absolute floor of each curve's jump tolerance.
    slope_factor, noise_rtol : float
        See :func:`interval_ratios`.
    levels, factor : int
        Refinement depth and subdivision: at most ``levels × (factor + 5)``
        calls per suspected interval.
    max_calls : int or None
        Budget of refinement calls; intervals beyond it are reported as
        unrefined (:attr:`Continuity.unrefined`), not failed.

    Returns
    -------
    Continuity
    """
    x = np.asarray(x, dtype=float)
    names = list(values)
    n_int = len(x) - 1
    ratio = np.zeros(n_int)
    coarse_res = {}
    for k in names:
        coarse_res[k] = np.zeros(n_int)
        if len(x) >= 4:
            res, tol = interval_ratios(values[k], atol[k], slope_factor, noise_rtol)
            ratio[1:-1] = np.maximum(ratio[1:-1], (np.abs(res) / tol).reshape(len(res), -1).max(axis=1))
            coarse_res[k][1:-1] = np.abs(res).reshape(len(res), -1).max(axis=1)
    order = [int(i) for i in np.argsort(-ratio, kind="stable") if ratio[i] > 1.0]
    handled = np.zeros(n_int, dtype=bool)
    flagged = {k: np.zeros(n_int, dtype=bool) for k in names}
    local: dict[str, list] = {k: [] for k in names}
    steep: dict[str, list] = {k: [] for k in names}
    unrefined: list[int] = []
    calls = 0
    per_interval = levels * (factor + 5)
    for i in order:
        if handled[i]:
            continue
        if sample is None:  # nothing to refine with: the coarse verdict stands
            break
        if max_calls is not None and calls + per_interval > max_calls:
            unrefined.append(i)
            continue
        window = slice(max(i - 1, 0), i + 2)
        handled[window] = True
        coarse_size = {k: float(coarse_res[k][window].max()) for k in names}
        verdicts, used = _refine_interval(sample, names, x[i], x[i + 1], coarse_size, atol,
                                          slope_factor, noise_rtol, levels, factor)
        calls += used
        for k, (d, state) in verdicts.items():
            if state == "jump":
                local[k].append(d)
                c = int(np.clip(np.searchsorted(x, d.x_mid) - 1, 0, n_int - 1))
                flagged[k][c] = True
            elif state == "steep":
                steep[k].append(d)
            else:
                local[k].append(d)
    skip = handled.copy()
    for i in unrefined:
        skip[max(i - 1, 0): i + 2] = True
    worst_out = {}
    for k in names:
        # coarse verdicts outside the refined (and unrefined) windows, refined verdicts inside
        d0, _ = worst_jump(values[k], atol[k], slope_factor, noise_rtol, exclude=skip, x=x)
        worst_out[k] = max([d0] + local[k], key=lambda d: d.ratio)
    jumps = np.zeros(n_int, dtype=bool)
    for k in names:
        jumps |= flagged[k]
    return Continuity(worst_out, jumps, flagged, calls, steep, sorted(unrefined), max_calls)


def vanishing_radius(r: np.ndarray, energy: np.ndarray, force: np.ndarray, e_tol: float,
                     f_tol: float) -> float | None:
    """Smallest grid distance beyond which |E| <= e_tol and |F| <= f_tol everywhere.

    None if the last grid point itself is not zero.

    >>> r = np.linspace(1, 5, 5)
    >>> vanishing_radius(r, np.array([3., 1., 0.5, 0., 0.]), np.zeros(5), 1e-9, 1e-9)
    4.0
    """
    nonzero = (np.abs(energy) > e_tol) | (np.abs(force) > f_tol)
    if nonzero[-1]:
        return None
    if not nonzero.any():
        return float(r[0])
    return float(r[int(np.flatnonzero(nonzero)[-1]) + 1])


# --------------------------------------------------------------------------- shape metrics

def significant_extrema(y: np.ndarray, eps: float) -> list[tuple[int, str]]:
    """Interior local extrema of ``y`` whose rise/fall on both sides exceeds ``eps``.

    A zigzag filter: noise and flat plateaus smaller than ``eps`` are ignored.
    Returns ``(index, "min" | "max")`` in order.

    >>> significant_extrema(np.array([5., 1., 2., 0., 0., 3.]), 0.5)
    [(1, 'min'), (2, 'max'), (3, 'min')]
    >>> significant_extrema(np.array([5., 1., 1.2, 0., 3.]), 0.5)
    [(3, 'min')]
    """
    y = np.asarray(y, dtype=float)
    out: list[tuple[int, str]] = []
    if len(y) < 3:
        return out
    direction = 0  # +1 rising, -1 falling, 0 not yet moved by more than eps
    pivot = 0      # running extreme since the last confirmed turn
    for k in range(1, len(y)):
        if direction == 0:
            if abs(y[k] - y[0]) > eps:
                direction, pivot = (1 if y[k] > y[0] else -1), k
        elif direction == 1:
            if y[k] > y[pivot]:
                pivot = k
            elif y[pivot] - y[k] > eps:
                out.append((pivot, "max"))
                direction, pivot = -1, k
        else:
            if y[k] < y[pivot]:
                pivot = k
            elif y[k] - y[pivot] > eps:
                out.append((pivot, "min"))
                direction, pivot = 1, k
    return out


def count_minima(y: np.ndarray, eps: float) -> int:
    """Number of significant interior minima of ``y`` (see :func:`significant_extrema`)."""
    return sum(kind == "min" for _, kind in significant_extrema(y, eps))


def count_inflections(y: np.ndarray, eps: float) -> int:
    """Number of inflection points: significant extrema of the slope Δy (threshold ``eps`` on Δy)."""
    return len(significant_extrema(np.diff(np.asarray(y, dtype=float)), eps))


def sign_flips(y: np.ndarray, eps: float) -> int:
    """Sign changes of ``y``, ignoring values with |y| <= eps.

    >>> sign_flips(np.array([3., 1., 0., -1., -1e-9, 1e-9, 0.]), 1e-6)
    1
    """
    s = np.sign(np.asarray(y, dtype=float))
    s = s[np.abs(y) > eps]
    return int(np.count_nonzero(s[1:] != s[:-1]))


def tortuosity(y: np.ndarray) -> float:
    """Path length of the curve over the direct descent into and climb out of its minimum.

    ``Σ|Δy| / (|y_0 - min y| + |y_end - min y|)``: 1 for a curve that falls
    monotonically to a single minimum and rises monotonically after it; every
    extra wiggle adds twice its height. 1 for a flat curve.

    >>> tortuosity(np.array([4., 1., 0., 0.5, 0.]))
    1.25
    """
    y = np.asarray(y, dtype=float)
    lo = y.min()
    direct = abs(y[0] - lo) + abs(y[-1] - lo)
    if direct == 0.0:
        return 1.0
    return float(np.abs(np.diff(y)).sum() / direct)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of ``x`` and ``y`` (ties get mean ranks).

    Returns 0 when either has no spread (fewer than 3 points or constant).

    >>> spearman(np.arange(5.), np.array([9., 7., 4., 2., 1.]))
    -1.0
    """
    from scipy.stats import rankdata

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(x) < 3:
        return 0.0
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / den) if den > 0 else 0.0


def main_well(r: np.ndarray, energy: np.ndarray, eps: float, r_ref: float) -> int:
    """Index of the physical well of a dimer curve.

    Among the significant minima (:func:`significant_extrema` with ``eps``)
    the one closest (in log r) to ``r_ref``, the expected bond length; so a
    hole collapsing at short range and a spurious minimum behind a bump at
    long range are both told apart from the bond. Without interior minimum:
    the first global minimum (a purely repulsive curve reaches it at the
    cutoff).
    """
    minima = [k for k, kind in significant_extrema(energy, eps) if kind == "min"]
    if minima:
        return min(minima, key=lambda k: abs(np.log(r[k] / r_ref)))
    return int(np.argmin(energy))


def repulsion_hole(energy: np.ndarray, end: int) -> tuple[float, int, int]:
    """Largest energy drop met going *inward* within ``energy[:end + 1]``.

    In the repulsive region (from the shortest distance up to the well at
    index ``end``) the energy must rise monotonically as the distance shrinks.
    Returns ``(depth, i, j)`` with ``i < j``: going inward from sample ``j`` to
    sample ``i`` the energy falls by ``depth = E_j - E_i >= 0`` (eV); depth 0
    when the wall is monotone.

    >>> repulsion_hole(np.array([5., 3., 1., -2.]), 3)
    (0.0, 0, 0)
    >>> repulsion_hole(np.array([-1., 3., 1., -2.]), 3)
    (4.0, 0, 1)
    """
    e = np.asarray(energy[: end + 1], dtype=float)
    if len(e) < 2:
        return 0.0, 0, 0
    arg_min = np.zeros(len(e), dtype=int)  # index of the lowest sample at or before k
    for k in range(1, len(e)):
        arg_min[k] = k if e[k] < e[arg_min[k - 1]] else arg_min[k - 1]
    drop = e - e[arg_min]
    j = int(np.argmax(drop))
    if drop[j] <= 0:
        return 0.0, 0, 0
    return float(drop[j]), int(arg_min[j]), j


def fd_derivative(y: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Fourth- and second-order central differences of ``y`` on a uniform grid.

    Returns ``(d4, d2)`` for the interior samples ``2 .. n-3``; their
    difference estimates the truncation error of ``d2`` (an upper bound for
    that of ``d4`` on a resolved curve).
    """
    y = np.asarray(y, dtype=float)
    d4 = (y[:-4] - 8 * y[1:-3] + 8 * y[3:-1] - y[4:]) / (12 * h)
    d2 = (y[3:-1] - y[1:-3]) / (2 * h)
    return d4, d2


def fd_error_bound(y: np.ndarray, h: float) -> np.ndarray:
    """Bound (unit of y per unit of x) on the truncation error of the
    fourth-order derivative :func:`fd_derivative` at samples ``2 .. n-3``.

    The larger of ``|d4 - d2|`` and ``|d4(h) - d4(2h)|`` (the same stencil on
    every second sample, where it fits). On a resolved smooth curve both exceed
    the error of ``d4``; where a second derivative jumps (a C1 cosine cutoff,
    Tersoff's at R ± D) every stencil errs by O(h × the jump): for
    ``y = (x - x0)²₊`` the bound equals d4's error at worst (x0 at ±h/2 of a
    sample), where ``|d4 - d2|`` alone is half of it.
    """
    y = np.asarray(y, dtype=float)
    d4, d2 = fd_derivative(y, h)
    bound = np.abs(d4 - d2)
    n = len(y)
    if n >= 9:
        k = np.arange(4, n - 4)
        d4_2h = (y[k - 4] - 8 * y[k - 2] + 8 * y[k + 2] - y[k + 4]) / (24 * h)
        bound[k - 2] = np.maximum(bound[k - 2], np.abs(d4[k - 2] - d4_2h))
    return bound
