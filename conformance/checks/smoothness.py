"""Smoothness family: energy and forces are continuous where atoms cross the cutoff.

A potential whose energy or force jumps where a neighbour crosses the cutoff
heats NVE dynamics, breaks geometry optimisers and gives spurious phonons. The
checks scan one coordinate on a fine uniform grid and compare every change
between neighbouring grid points with what the neighbouring intervals predict
(:func:`conformance.toolkit.scans.jump_test`): a genuine discontinuity is told apart
from a steep wall and a jump of the force from a kink of the energy.

* ``dimer_curve`` — every species pair from deep repulsion out past the cutoff;
* ``trimer_angle`` — the angle of a trimer, including the linear geometry;
* ``strain_scan`` — bulk along a hydrostatic and a shear strain path;
* ``cutoff_crossing`` — one atom moved radially across another's cutoff in bulk.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from ase.neighborlist import neighbor_list

from ..toolkit import scans
from ..toolkit.transforms import strained
from ..core.model import Skip
from ..core.profiles import STANDARD
from ..core.registry import check
from ..core.result import Field, Verdict
from ..core.tolerances import define
from ._compare import VOIGT, compare

define("smooth_energy_atol", "eV", 1e-4, 2e-4,
       "floor of an energy jump along a scan and of |E - E_sep| at and beyond the cutoff. "
       "ASE's EMT truncates its Fermi-function cutoff at the neighbour-list radius "
       "rc + 0.5 Å = 5.877 Å and steps there by 1.6e-5 eV (Cu-Cu dimer; Cu-Au 1.3e-5, "
       "Au-Au 4.5e-6, < 1e-7 per pair in bulk): it must pass. A plainly truncated pair "
       "potential jumps by 1e-3..1e-2 eV (LJ σ = 2.3 Å, ε = 0.4 eV cut at 6 Å: 5.1e-3 eV): "
       "it must fail")
define("smooth_force_atol", "eV/Å", 1e-3, 2e-3,
       "floor of a force jump along a scan, of |F| beyond the cutoff and of |F·r̂ + dE/dr|. "
       "EMT's force steps by 2.6e-4 eV/Å at its list cutoff (Cu-Cu dimer; Cu-Au 2.1e-4, "
       "Au-Au 8.3e-5) and must pass; LJ (σ = 2.3 Å, ε = 0.4 eV) shifted to zero energy at "
       "rc = 6 Å but not smoothed jumps by 5.1e-3 eV/Å and must fail")
define("smooth_stress_atol", "eV/Å³", 1e-6, 5e-6,
       "floor of a stress jump along a strain path: a 1e-3 eV/Å force jump of one pair at "
       "r_c ≈ 6 Å in a ~400 Å³ cell moves the stress by ~1e-5 eV/Å³; EMT's steps in bulk "
       "are < 1e-10 eV/Å³")
define("smooth_jump_rtol", "1", 1e-3, 1e-3,
       "a dimer curve's energy and force jumps are also held to this fraction of the pair's "
       "well depth and largest attractive force, when that is below the absolute floors: "
       "LJ argon (ε = 10.4 meV, largest pull 7.3e-3 eV/Å) cut at 3σ without a switch jumps by "
       "3.4e-5 eV/Å, far below smooth_force_atol but 0.5 % of its own force scale, and must "
       "fail; EMT pairs pull with 2-7 eV/Å, so their floors stay the absolute ones")
define("smooth_slope_factor", "1", 1.0, 1.0,
       "allowance for the change of slope across a grid interval, as a multiple of "
       "|Δy_{i+1} - Δy_{i-1}|: a kink or smooth curvature yields a jump residual of at most "
       "0.5 times that, so 1 leaves a factor 2 of margin and a steep wall or a kink of the "
       "energy (reported as a force jump) is never taken for an energy jump")
define("dimer_conservation_rtol", "1", 1e-4, 1e-3,
       "|F·r̂ + dE/dr| of the dimer curve relative to |F|, with dE/dr from 4th-order "
       "differences of the scanned energies; added: smooth_force_atol and the difference "
       "between 2nd- and 4th-order estimates (a bound of the truncation error). A "
       "non-conservative force head errs by percents")
define("dimer_shape_tol", "1", 1e-3, 1e-3,
       "tortuosity - 1 of the dimer curve and 1 + Spearman ρ(r, E) of its repulsive wall: "
       "both are 0 for a clean curve; 1e-3 lets wiggles below smooth_energy_atol and one "
       "swapped pair of ranks (5.6e-5 for 60 points) pass, a hole or a bump of a few % "
       "of the well depth fails")

BOND_FRACTION = 0.9  # expected dimer bond length / crystal nearest-neighbour distance (Cu2: 0.87)
COUNT_TOL = 0.5  # counts are integers: any extra minimum or force sign flip fails
N_DIMER = 200     # grid points per species pair
N_ANGLE = 121     # trimer angles, symmetric about 180°
THETA_MIN = 50.0  # degrees; the B-C distance is then 0.85 × the arm length
N_STRAIN = 41     # points per strain path
HYDRO_HALF_WIDTH = 0.004  # strain range around the crossing of the cutoff nearest zero strain
SHEAR_HALF_WIDTH = 0.008
N_CROSS = 41      # points of the cutoff_crossing path
CROSS_HALF_WIDTH = 0.1    # Å either side of the cutoff
# every interval above tolerance is resampled at h/8, then its worst sub-interval again,
# up to 3 levels, within a budget of calls (see scans.refined_jumps; the run's profile sets it)
REFINE = dict(levels=3, factor=8)
REFINE_CALLS = STANDARD.refine_calls


def _cutoff_or_skip(model, ctx) -> scans.CutoffEstimate:
    est = scans.cutoff_for(model, ctx.tol)
    if est.radius is None:
        raise Skip(f"{est.describe()}, so there is no cutoff to cross (dimer_curve reports the range)")
    return est


def _continuity(sample, x, values: dict, atol: dict, ctx) -> scans.Continuity:
    """:func:`scans.refined_jumps` with the run's slope factor and noise."""
    return scans.refined_jumps(sample, x, values, atol, ctx.tol["smooth_slope_factor"],
                               ctx.tol["smooth_noise_rtol"], max_calls=ctx.profile.refine_calls, **REFINE)


def _unconfirmed(cont: scans.Continuity, units: dict, at, x: np.ndarray) -> tuple[list[Field], list[str]]:
    """Informational fields and notes for what refinement did not confirm as a
    jump: steep continuous features (a singular derivative) and intervals left
    unrefined by the call budget. Reported, never failed."""
    fields, notes = [], []
    for name, items in cont.steep.items():
        if not items:
            continue
        d = max(items, key=lambda d: d.ratio)
        fields.append(Field(f"{name}: steep but continuous", abs(d.size), d.tolerance, units[name], at(d),
                            severity="informational"))
        notes.append(f"{name} is continuous but steep at {at(d)}: under 8× refinement its change "
                     f"shrinks like |x - x0|^{d.exponent:.2f} (a jump would keep its size), still "
                     f"{abs(d.size):.3g} {units[name]} across {d.x_hi - d.x_lo:.2g} of the path: a "
                     "singular derivative (e.g. a bond-order term with exponent < 1 switching on)")
    if cont.unrefined:
        where = ", ".join(f"{x[i]:.4g}..{x[i + 1]:.4g}" for i in cont.unrefined[:5])
        fields.append(Field("suspected jumps left unrefined", float(len(cont.unrefined)), 0.5, "",
                            where, severity="informational"))
        notes.append(f"{len(cont.unrefined)} interval(s) above tolerance on the coarse grid were not "
                     f"refined within the budget of {cont.max_calls} calls ({where}): unconfirmed, "
                     "not failed")
    return fields, notes


def _field(name: str, d: scans.Discontinuity, unit: str, where: str) -> Field:
    return Field(name, abs(d.size), d.tolerance, unit, where if d.interval >= 0 else "")


def _with_energy(d: scans.Discontinuity, x: np.ndarray, energy_flags: np.ndarray) -> bool:
    """Whether the energy also jumps in the coarse intervals around discontinuity ``d``."""
    c = int(np.clip(np.searchsorted(x, d.x_mid) - 1, 0, len(x) - 2))
    return bool(energy_flags[max(c - 1, 0): c + 2].any())


def _worst_by_name(fields: list[Field]) -> list[Field]:
    """One field per name: the one with the largest error/tolerance ratio (first-seen order)."""
    best: dict[str, Field] = {}
    for f in fields:
        if f.name not in best or f.ratio > best[f.name].ratio:
            best[f.name] = f
    return list(best.values())


# --------------------------------------------------------------------------- dimer_curve

def continuity_order(cont: scans.Continuity, energy: str = "energy", force: str = "force") -> str:
    """Continuity reached along a path, as OpenKIM's dimer continuity tests name it:
    ``"none"`` (the energy jumps), ``"C0"`` (the energy is continuous, the
    force jumps), ``"C1"`` (the force is continuous; a steep onset with a
    singular derivative, like Tersoff's bond order, is C1 too). Only confirmed
    jumps count (:func:`scans.refined_jumps`)."""
    if cont.worst[energy].found:
        return "none"
    if cont.worst[force].found:
        return "C0"
    return "C1"


def jump_floors(curve: scans.DimerCurve, tol) -> dict:
    """Floors (eV, eV/Å) of the energy and force jump tolerances of one dimer
    curve: the shared absolute floors, or ``smooth_jump_rtol`` × the pair's own
    scale (well depth, largest attractive force) when that is smaller, so a
    weakly bound pair is held to the same relative standard (never below 1 % of
    the absolute floors)."""
    e, f = curve.energy, curve.force
    well = int(np.argmin(e))
    depth = max(-float(e[well]), 0.0)
    pull = max(-float(f[well:].min()), 0.0) if len(f) else 0.0
    rtol = tol["smooth_jump_rtol"]
    floors = {}
    for name, atol, scale in (("energy", tol["smooth_energy_atol"], depth),
                              ("force", tol["smooth_force_atol"], pull)):
        floors[name] = float(np.clip(rtol * scale, 0.01 * atol, atol))
    return floors



def analyse_dimer(curve: scans.DimerCurve, cutoff: scans.CutoffEstimate, tol, strictly_local: bool = True,
                  continuity=None):
    """Judge one dimer curve: continuity, zero beyond the cutoff, repulsion, shape, conservation.

    Parameters
    ----------
    curve : scans.DimerCurve
    cutoff : scans.CutoffEstimate
        Declared or detected cutoff (``radius`` None: none found).
    tol : Tolerances (or mapping name -> value)
    strictly_local : bool
        When False, a curve that has not vanished by the end is reported, not judged.
    continuity : scans.Continuity, optional
        From :func:`scans.refined_jumps` on the curves ``energy`` (total, eV)
        and ``force``; default: the coarse-grid test without refinement, with
        the jump floors of :func:`jump_floors`.

    Returns
    -------
    fields : list of Field
    notes : list of str
        Diagnoses in words (jumps, holes, tails), most important first.
    metrics : dict
        Every measured number (JSON-ready), incl. the benchmark shape metrics.
    """
    r, e, f, label = curve.r, curve.energy, curve.force, curve.label
    e_tot = e + curve.e_separated
    noise = tol["smooth_noise_rtol"]
    e_atol = tol["smooth_energy_atol"]
    f_atol = tol["smooth_force_atol"]
    h = curve.h
    if continuity is None:
        continuity = scans.refined_jumps(None, r, {"energy": e_tot, "force": f}, jump_floors(curve, tol),
                                         tol["smooth_slope_factor"], noise)
    worst, jumps, flagged = continuity.worst, continuity.jumps, continuity.flagged
    e_jump, f_jump = worst["energy"], worst["force"]

    def at(d: scans.Discontinuity) -> str:
        return f"r = {d.x_mid:.3f} Å ({label})"

    fields, notes = [], []
    fields.append(_field("energy jump", e_jump, "eV", at(e_jump)))
    fields.append(_field("force jump", f_jump, "eV/Å", at(f_jump)))
    more, said = _unconfirmed(continuity, {"energy": "eV", "force": "eV/Å"}, at, r)
    fields += more
    order = continuity_order(continuity)
    if e_jump.found:
        grid = (f"confirmed on a {e_jump.x_hi - e_jump.x_lo:.2g} Å grid" if e_jump.levels
                else f"on the {e_jump.x_hi - e_jump.x_lo:.2g} Å scan grid")
        notes.append(f"energy jumps by {e_jump.size:+.3g} eV at r = {e_jump.x_mid:.3f} Å ({label} dimer, "
                     f"{grid}): a discontinuity, not a steep wall (tolerance from the local change of "
                     f"slope {e_jump.tolerance:.2g} eV)")
    if f_jump.found:
        tail = ("together with the energy" if _with_energy(f_jump, r, flagged["energy"]) else
                "while the energy is continuous there (a kink: the energy goes to zero at the "
                "cutoff but its slope does not)")
        notes.append(f"force jumps by {f_jump.size:+.3g} eV/Å at r = {f_jump.x_mid:.3f} Å ({label} dimer) "
                     f"{tail}")
    notes += said

    # zero at and beyond the cutoff
    rc = cutoff.radius
    e_zero_tol = e_atol + noise * abs(curve.e_separated)
    vanish = scans.vanishing_radius(r, e, f, tol["cutoff_energy_atol"] + noise * abs(curve.e_separated),
                                    tol["cutoff_force_atol"])
    if rc is not None:
        beyond = r >= rc - 1e-9
        if beyond.any():
            ke = int(np.argmax(np.where(beyond, np.abs(e), -1.0)))
            kf = int(np.argmax(np.where(beyond, np.abs(f), -1.0)))
            fields.append(Field("|E - E_sep| beyond cutoff", float(abs(e[ke])), e_zero_tol, "eV",
                                f"r = {r[ke]:.3f} Å ({label})"))
            fields.append(Field("|F| beyond cutoff", float(abs(f[kf])), f_atol, "eV/Å",
                                f"r = {r[kf]:.3f} Å ({label})"))
            if abs(e[ke]) > e_zero_tol or abs(f[kf]) > f_atol:
                k = ke if abs(e[ke]) > e_zero_tol else kf
                notes.append(f"{label} dimer has not vanished beyond the {cutoff.describe()}: "
                             f"E - E_sep = {e[k]:.3g} eV, F = {f[k]:.3g} eV/Å at r = {r[k]:.3f} Å")
    elif strictly_local:
        fields.append(Field("|E - E_sep| at end of scan", float(abs(e[-1])), e_zero_tol, "eV",
                            f"r = {r[-1]:.3f} Å ({label})"))
        notes.append(f"{label} dimer has not vanished at r = {r[-1]:.3f} Å: {cutoff.describe()}")

    # repulsion and shape
    minima = [k for k, kind in scans.significant_extrema(e, e_atol) if kind == "min"]
    well = scans.main_well(r, e, e_atol, BOND_FRACTION * scans.pair_nn_distance(*curve.pair))
    # lowest at the shortest distance: the whole curve up to its maximum is a collapse
    depth, i_in, j_out = scans.repulsion_hole(e, well if well > 0 else int(np.argmax(e)))
    fields.append(Field("short-range hole depth", depth, e_atol + noise * float(np.abs(e_tot).max()), "eV",
                        f"r = {r[i_in]:.3f} Å ({label})" if depth > 0 else ""))
    if depth > e_atol:
        notes.append(f"attractive hole at short range: going inward from r = {r[j_out]:.3f} Å to "
                     f"r = {r[i_in]:.3f} Å the {label} energy falls by {depth:.3g} eV instead of rising")
    flips = scans.sign_flips(f, f_atol)
    if len(minima) > 1 or flips > 1:
        notes.append(f"{label} curve has {len(minima)} energy minim{'a' if len(minima) != 1 else 'um'} (at r = "
                     f"{', '.join(f'{r[k]:.2f}' for k in minima)} Å) and {flips} force sign flips: a bump or "
                     f"a second well besides the bond at {r[well]:.2f} Å")
    rho = scans.spearman(r[: well + 1], e[: well + 1]) if well >= 2 else -1.0
    tort = scans.tortuosity(e)
    fields.append(Field("extra energy minima", float(max(len(minima) - 1, 0)), COUNT_TOL, "",
                        f"r = {', '.join(f'{r[k]:.2f}' for k in minima)} Å ({label})"))
    fields.append(Field("extra force sign flips", float(max(flips - 1, 0)), COUNT_TOL, "", label))
    fields.append(Field("1 + Spearman ρ(r, E) of the wall", 1.0 + rho, tol["dimer_shape_tol"], "", label))
    fields.append(Field("tortuosity - 1", tort - 1.0, tol["dimer_shape_tol"], "", label))

    # conservation of the curve itself, away from discontinuities
    d4, d2 = scans.fd_derivative(e_tot, h)
    k = np.arange(2, len(r) - 2)
    touched = np.array([jumps[max(j - 2, 0): j + 2].any() for j in k])
    err = np.where(touched, 0.0, np.abs(f[k] + d4))
    # the bound is tight (ratio 1.0) where a second derivative jumps: twice it, for margin
    ctol = (f_atol + tol["dimer_conservation_rtol"] * np.abs(f[k]) + 2 * scans.fd_error_bound(e_tot, h)
            + 4 * noise * np.abs(e_tot[k]) / h)
    m = int(np.argmax(err / ctol))
    fields.append(Field("|F·r̂ + dE/dr|", float(err[m]), float(ctol[m]), "eV/Å", f"r = {r[k[m]]:.3f} Å ({label})"))

    metrics = {
        "energy_jump_eV": e_jump.size, "energy_jump_r": e_jump.x_mid if e_jump.interval >= 0 else None,
        "force_jump_eV_per_A": f_jump.size, "force_jump_r": f_jump.x_mid if f_jump.interval >= 0 else None,
        "vanishes_beyond": vanish, "well_r": float(r[well]), "well_energy": float(e[well]),
        "hole_depth": depth, "energy_minima": len(minima),
        "energy_inflections": scans.count_inflections(e, e_atol),
        "force_sign_flips": flips, "spearman_repulsive": rho, "tortuosity": tort,
        "conservation_max": float(err.max()), "continuity_order": order,
    }
    return fields, notes, metrics


def _dimer_plot(curve: scans.DimerCurve, cutoff: scans.CutoffEstimate) -> dict:
    """Plot spec: E and F against r, the wall clipped to ~3 × the well depth and the largest attraction."""
    e, f, r = curve.energy, curve.force, curve.r
    cap_e = max(3 * abs(float(e.min())), 0.5)
    cap_f = max(3 * abs(float(f.min())), 0.5)
    keep = np.flatnonzero((e <= cap_e) & (f <= cap_f))
    start = int(keep[0]) if len(keep) else 0
    vlines = []
    if cutoff.radius is not None:
        vlines.append({"x": cutoff.radius, "label": f"{cutoff.source} cutoff {cutoff.radius:.2f} Å"})
    return {"title": f"{curve.label} dimer", "xlabel": "r (Å)", "ylabel": "E - E_sep (eV)",
            "ylabel_right": "F·r̂ on the 2nd atom (eV/Å)",
            "series": [{"x": r[start:], "y": e[start:], "label": "energy (left axis)"},
                       {"x": r[start:], "y": f[start:], "label": "force (right axis)", "axis": "right"}],
            "vlines": vlines, "hlines": [{"y": 0.0}]}


@check(family="smoothness", cases={"dimer"}, unit="eV",
       calls=f"per species pair {N_DIMER} + <= {REFINE_CALLS} to resolve suspected jumps; + 1 per species; "
             "to detect the cutoff when none is declared: + <= (12 Å - r_nn/2)/0.25 Å + 9 per pair "
             "+ 1 per species (once per model)")
def dimer_curve(model, case, ctx, rng):
    """Every species pair scanned as a dimer from deep repulsion out past the
    cutoff: energy and force continuous and zero beyond the cutoff, a
    repulsive wall without hole, one well, forces that are -dE/dr.

    Runs once per model (on the ``dimer`` case) over all pairs of the model's
    species, each on a uniform grid of 200 distances from 0.4 × the
    nearest-neighbour distance to the cutoff + max(1 Å, 15 %). The cutoff is
    the declared one or, failing that, detected: the distance beyond which the
    dimer is indistinguishable from the separated atoms. Fields: largest
    energy and force jump (judged against the local change of slope and
    confirmed on grids refined 8× and 64×, so a steep wall is not a jump and an
    energy kink is reported as a force jump), |E - E_sep| and |F| beyond the
    cutoff, depth of an attractive hole in the wall, the shape metrics of
    diatomic benchmarks (extra minima, extra force sign flips, tortuosity,
    Spearman ρ of the wall; inflections are reported), and |F·r̂ + dE/dr|
    away from discontinuities.
    """
    species = list(model.tags.species) or sorted(set(case.atoms.get_chemical_symbols()))
    cutoff = scans.cutoff_for(model, ctx.tol)
    atom_cache: dict = {}
    fields, notes, pairs, plots = [], [], {}, []
    chosen = scans.species_pairs(species, ctx.profile.max_pairs, ctx.config.seed)
    n_all = len(species) * (len(species) + 1) // 2
    if len(chosen) < n_all:
        notes.append(f"{len(chosen)} of the {n_all} species pairs scanned: every homonuclear pair and "
                     f"a random cycle through the species (seed {ctx.config.seed}); the thorough "
                     "profile scans them all")
    for a, b in chosen:
        r_min = scans.R_MIN_FRACTION * scans.pair_nn_distance(a, b)
        rc = cutoff.radius
        r_max = rc + max(1.0, 0.15 * rc) if rc is not None else scans.R_SEARCH
        n_points = ctx.profile.points(N_DIMER, ctx.profile.dimer_density)
        curve = scans.dimer_curve(model, a, b, scans.pair_grid(r_min, r_max, n_points), atom_cache=atom_cache)

        def sample(r, a=a, b=b):
            out = model.evaluate(scans.dimer(a, b, r), ("energy", "forces"))
            return {"energy": out["energy"], "force": out["forces"][1, 0]}

        cont = _continuity(sample, curve.r, {"energy": curve.energy + curve.e_separated, "force": curve.force},
                           jump_floors(curve, ctx.tol), ctx)
        f, n, metrics = analyse_dimer(curve, cutoff, ctx.tol, model.tags.strictly_local, cont)
        metrics["refinement_calls"] = cont.calls
        fields += f
        notes += n
        pairs[curve.label] = {"r": curve.r, "energy": curve.energy, "force": curve.force,
                              "e_separated": curve.e_separated, "metrics": metrics}
        plots.append(_dimer_plot(curve, cutoff))
    notes.append(cutoff.describe())
    return Verdict(_worst_by_name(fields), what=f"dimer scans of {', '.join(pairs)} ({n_points} points each)",
                   note="\n".join(notes),
                   details={"cutoff": cutoff.radius, "cutoff_source": cutoff.source,
                            "cutoff_pairs": cutoff.pairs, "pairs": pairs, "plots": plots})


# --------------------------------------------------------------------------- trimer_angle

MIRROR_Y = np.diag([1.0, -1.0, 1.0])


def trimer_geometry(symbols, d1: float, d2: float, theta: float):
    """Trimer with vertex at the origin, arm 1 along x, arm 2 at angle ``theta`` (rad) in xy."""
    from ase import Atoms

    pos = [[0.0, 0.0, 0.0], [d1, 0.0, 0.0], [d2 * np.cos(theta), d2 * np.sin(theta), 0.0]]
    return Atoms(symbols, positions=pos)


def _jump_notes(worst: dict, x, flagged: dict, at, energy="energy", force="forces", fmt_force=None) -> list:
    notes = []
    if worst[energy].found:
        notes.append(f"energy jumps by {worst[energy].size:+.3g} eV at {at(worst[energy])}")
    if force in worst and worst[force].found:
        d = worst[force]
        what = fmt_force(d) if fmt_force else "force"
        notes.append(f"{what} jumps by {d.size:+.3g} eV/Å at {at(d)}"
                     + (" together with the energy" if _with_energy(d, x, flagged[energy])
                        else " while the energy is continuous there"))
    return notes


@check(family="smoothness", cases={"trimer"}, unit="eV",
       calls=f"{N_ANGLE} + <= {REFINE_CALLS} to resolve suspected jumps "
             "(+ cutoff detection when none is declared, shared with dimer_curve)")
def trimer_angle(model, case, ctx, rng):
    """The energy and forces of a trimer are continuous in its angle and obey
    E(θ) = E(360° - θ) with mirrored forces.

    The vertex keeps its two arms (stretched to 0.55 × the cutoff if shorter,
    so the distance between the arm ends crosses the cutoff during the scan);
    θ runs over 121 values from 50° to 310°, symmetric about 180° (the linear
    trimer, where angle-based models can produce NaN forces, is on the grid).
    Fields: energy and force jumps along θ (confirmed by refinement), and the
    mirror comparison E(θ) vs E(360° - θ), F(360° - θ) vs the mirrored F(θ).
    """
    atoms = case.copy()
    symbols = atoms.get_chemical_symbols()
    pos = atoms.positions
    d1, d2 = (float(np.linalg.norm(pos[k] - pos[0])) for k in (1, 2))
    cutoff = scans.cutoff_for(model, ctx.tol)
    if cutoff.radius is not None:
        d1, d2 = max(d1, 0.55 * cutoff.radius), max(d2, 0.55 * cutoff.radius)
    half = (ctx.profile.points(N_ANGLE) - 1) // 2
    theta = np.pi + np.radians(180.0 - THETA_MIN) * np.arange(-half, half + 1) / half

    def sample(t):
        out = model.evaluate(trimer_geometry(symbols, d1, d2, t), ("energy", "forces"))
        return {"energy": out["energy"], "forces": out["forces"]}

    samples = model.evaluate_many([trimer_geometry(symbols, d1, d2, t) for t in theta], ("energy", "forces"))
    energy = np.array([s["energy"] for s in samples])
    forces = np.array([s["forces"] for s in samples])

    def end_to_end(t):
        return float(np.sqrt(d1 * d1 + d2 * d2 - 2 * d1 * d2 * np.cos(t)))

    def at(d):
        return f"θ = {np.degrees(d.x_mid):.2f}° (end-to-end {end_to_end(d.x_mid):.3f} Å)"

    cont = _continuity(sample, theta, {"energy": energy, "forces": forces},
                       {"energy": ctx.tol["smooth_energy_atol"], "forces": ctx.tol["smooth_force_atol"]}, ctx)
    worst, flagged = cont.worst, cont.flagged
    mirror = []
    for k in range(half):
        j = len(theta) - 1 - k
        expected = {"energy": energy[k], "forces": forces[k] @ MIRROR_Y}
        got = {"energy": energy[j], "forces": forces[j]}
        mirror += [Field(f"mirror {x.name}", x.error, x.tolerance, x.unit,
                         f"θ = {np.degrees(theta[k]):.1f}° vs {np.degrees(theta[j]):.1f}°")
                   for x in compare(expected, got, ctx.tol, 3)]
    more, said = _unconfirmed(cont, {"energy": "eV", "forces": "eV/Å"}, at, theta)
    fields = [_field("energy jump", worst["energy"], "eV", at(worst["energy"])),
              _field("force jump", worst["forces"], "eV/Å", at(worst["forces"]))] + more + _worst_by_name(mirror)
    notes = _jump_notes(worst, theta, flagged, at,
                        fmt_force=lambda d: f"force on atom {d.index[0]} ({'xyz'[d.index[1]]})") + said
    return Verdict(fields, what=f"angle scan of {case.name} (arms {d1:.2f}, {d2:.2f} Å; {cutoff.describe()})",
                   note="\n".join(notes),
                   details={"theta_deg": np.degrees(theta), "energy": energy,
                            "end_to_end": [end_to_end(t) for t in theta], "arms": [d1, d2],
                            "cutoff": cutoff.radius, "refinement_calls": cont.calls,
                            "continuity_order": continuity_order(cont, force="forces"),
                            "plots": [{"title": f"{case.name}: angle scan", "xlabel": "θ (degrees)",
                                       "ylabel": "E (eV)",
                                       "series": [{"x": np.degrees(theta), "y": energy, "label": "energy"}]}]})


# --------------------------------------------------------------------------- strain_scan



def deform(atoms, matrix: np.ndarray):
    """Copy of ``atoms`` with cell and positions mapped by the deformation gradient ``matrix`` (3, 3)."""
    return strained(atoms, np.asarray(matrix) - np.eye(3))


def path_matrix(kind: str, t: float) -> np.ndarray:
    """Deformation gradient of the ``hydrostatic`` ((1+t) I) or ``shear`` (x += t y) path."""
    if kind == "hydrostatic":
        return (1.0 + t) * np.eye(3)
    m = np.eye(3)
    m[0, 1] = t
    return m


def crossing_parameters(D: np.ndarray, kind: str, rc: float) -> np.ndarray:
    """Path parameters t at which pair vectors ``D`` (P, 3) reach length ``rc``.

    Hydrostatic: ``t = rc/d - 1``. Shear ``x += t y``: roots of
    ``|D|² + 2 t D_x D_y + t² D_y² = rc²``.
    """
    d2 = (D * D).sum(axis=1)
    if kind == "hydrostatic":
        return np.sqrt(rc * rc / d2) - 1.0
    a, b, c = D[:, 1] ** 2, 2 * D[:, 0] * D[:, 1], d2 - rc * rc
    ok = (a > 1e-12) & (b * b - 4 * a * c >= 0)
    disc = np.sqrt(np.where(ok, b * b - 4 * a * c, 0.0))
    a = np.where(ok, a, 1.0)
    roots = np.concatenate([((-b + disc) / (2 * a))[ok], ((-b - disc) / (2 * a))[ok]])
    return roots


@check(family="smoothness", needs={"energy"}, cases={"bulk"}, unit="eV",
       calls=f"2 × ({N_STRAIN} + <= {REFINE_CALLS} to resolve suspected jumps) "
             "(+ cutoff detection when none is declared)")
def strain_scan(model, case, ctx, rng):
    """Bulk energy, its strain derivative and the stress are continuous along a
    hydrostatic and a shear strain path that move neighbour pairs across the
    cutoff.

    Each path has 41 points centred on the crossing of the cutoff nearest to
    zero strain (±0.4 % hydrostatic within ±12 %, ±0.8 % simple shear
    x += γy within ±30 %), so at least one pair crosses (control; a path
    without any crossing in reach is left out and said so). Fields per path: energy jump (eV), jump of dE/dε from differences of
    the energies (eV per unit strain, judged against smooth_force_atol × r_c),
    stress jump (eV/Å³, when the model has stress); energy and stress jumps
    are confirmed by refinement.
    """
    cutoff = _cutoff_or_skip(model, ctx)
    rc = cutoff.radius
    atoms = case.copy()
    props = ("energy", "stress") if model.tags.has_stress else ("energy",)
    _, _, D = neighbor_list("ijD", atoms, 1.3 * rc)
    tol = ctx.tol
    fields, notes, details = [], [], {"cutoff": rc, "paths": {}, "plots": []}
    for kind, half_width, reach in (("hydrostatic", HYDRO_HALF_WIDTH, 0.12), ("shear", SHEAR_HALF_WIDTH, 0.3)):
        cross = crossing_parameters(D, kind, rc)
        cross = cross[np.abs(cross) <= reach]
        if not len(cross):
            notes.append(f"{kind} path skipped: no neighbour pair crosses the cutoff {rc:.3f} Å "
                         f"within ±{100 * reach:g} % strain")
            continue
        t0 = float(cross[np.argmin(np.abs(cross))])
        ts = np.linspace(t0 - half_width, t0 + half_width, ctx.profile.points(N_STRAIN))
        n_cross = int(((cross >= ts[0]) & (cross <= ts[-1])).sum()) // 2  # each pair is listed as i-j and j-i

        def sample(t, kind=kind):
            out = model.evaluate(deform(atoms, path_matrix(kind, t)), props)
            return {k: out[k] for k in props}

        samples = [sample(t) for t in ts]
        values = {k: np.array([s[k] for s in samples]) for k in props}
        atol = {"energy": tol["smooth_energy_atol"], "stress": tol["smooth_stress_atol"]}
        cont = _continuity(sample, ts, values, {k: atol[k] for k in props}, ctx)
        worst, flagged = cont.worst, cont.flagged
        sym = "ε" if kind == "hydrostatic" else "γ"

        def at(d, sym=sym, kind=kind):
            return f"{sym} = {d.x_mid:+.5f} ({kind})"

        fields.append(_field(f"energy jump ({kind})", worst["energy"], "eV", at(worst["energy"])))
        more, said = _unconfirmed(cont, {"energy": "eV", "stress": "eV/Å³"}, at, ts)
        fields += [dataclasses.replace(f, name=f"{f.name} ({kind})") for f in more]
        notes += said
        # derivative from differences of E (on the intervals), away from energy jumps
        h = float(ts[1] - ts[0])
        energy = values["energy"]
        slope = np.diff(energy) / h
        near = flagged["energy"].copy()
        near[1:] |= flagged["energy"][:-1]
        near[:-1] |= flagged["energy"][1:]
        slope_atol = tol["smooth_force_atol"] * rc + 4 * tol["smooth_noise_rtol"] * float(np.abs(energy).max()) / h
        ds, _ = scans.worst_jump(slope, slope_atol, tol["smooth_slope_factor"], tol["smooth_noise_rtol"],
                                 exclude=near[:-1] | near[1:], x=0.5 * (ts[1:] + ts[:-1]))
        fields.append(_field(f"dE/d{sym} jump ({kind})", ds, "eV", at(ds)))
        if worst["energy"].found:
            notes.append(f"energy jumps by {worst['energy'].size:+.3g} eV at {at(worst['energy'])}")
        if ds.found:
            notes.append(f"dE/d{sym} jumps by {ds.size:+.3g} eV at {at(ds)} (a force jump at the cutoff)")
        if "stress" in props:
            w = worst["stress"]
            fields.append(_field(f"stress jump ({kind})", w, "eV/Å³", at(w)))
            if w.found:
                notes.append(f"stress {VOIGT[w.index[0]]} jumps by {w.size:+.3g} eV/Å³ at {at(w)}"
                             + (" together with the energy" if _with_energy(w, ts, flagged["energy"])
                                else " while the energy is continuous there"))
        details["paths"][kind] = {"t": ts, "energy": energy, "crossings": n_cross,
                                  **({"stress": values["stress"]} if "stress" in props else {})}
        details["plots"].append({"title": f"{case.name}: {kind} strain", "xlabel": sym, "ylabel": "E (eV)",
                                 "series": [{"x": ts, "y": energy, "label": "energy"}]})
    if not fields:
        raise Skip("; ".join(notes))
    crossed = " and ".join(f"{k} ({v['crossings']} pair crossings)" for k, v in details["paths"].items())
    return Verdict(fields, note="\n".join(notes),
                   what=f"{case.name}, {len(ts)}-point {crossed} strain paths across the {cutoff.describe()}",
                   details=details)


# --------------------------------------------------------------------------- cutoff_crossing

def crossing_pair(atoms, rc: float) -> tuple[int, int, np.ndarray, float]:
    """The pair (i, j, D, d) whose distance is closest to ``rc`` (D = r_j - r_i + shift)."""
    i, j, D, d = neighbor_list("ijDd", atoms, rc + 1.0)
    if not len(d):
        raise Skip(f"no atom pair within {rc + 1.0:.2f} Å")
    k = int(np.argmin(np.abs(d - rc)))
    return int(i[k]), int(j[k]), D[k], float(d[k])


@check(family="smoothness", cases={"bulk"}, unit="eV",
       calls=f"{N_CROSS} + <= {REFINE_CALLS} to resolve suspected jumps "
             "(+ cutoff detection when none is declared)")
def cutoff_crossing(model, case, ctx, rng):
    """Energy (C0) and forces (C1) stay continuous while one atom moves
    radially across the cutoff of another inside a bulk cell.

    The pair whose distance is closest to the cutoff is chosen; the second
    atom moves along the bond over ±0.1 Å around the cutoff in 41 steps
    (5 mÅ), refined where a jump is suspected. Fields: energy jump (eV) and
    force jump (eV/Å, any component of any atom).
    """
    cutoff = _cutoff_or_skip(model, ctx)
    rc = cutoff.radius
    atoms = case.copy()
    i, j, D, d = crossing_pair(atoms, rc)
    u = D / d

    def sample(dist):
        moved = atoms.copy()
        moved.positions[j] += (dist - d) * u
        out = model.evaluate(moved, ("energy", "forces"))
        return {"energy": out["energy"], "forces": out["forces"]}

    dist = rc + np.linspace(-CROSS_HALF_WIDTH, CROSS_HALF_WIDTH, ctx.profile.points(N_CROSS))
    samples = [sample(x) for x in dist]
    energy = np.array([s["energy"] for s in samples])
    forces = np.array([s["forces"] for s in samples])
    cont = _continuity(sample, dist, {"energy": energy, "forces": forces},
                       {"energy": ctx.tol["smooth_energy_atol"], "forces": ctx.tol["smooth_force_atol"]}, ctx)
    worst, flagged = cont.worst, cont.flagged

    def at(w):
        return f"d = {w.x_mid:.4f} Å"

    notes = _jump_notes(worst, dist, flagged, lambda w: f"{at(w)} (atom {j} from atom {i})",
                        fmt_force=lambda w: f"force on atom {w.index[0]} ({'xyz'[w.index[1]]})")
    more, said = _unconfirmed(cont, {"energy": "eV", "forces": "eV/Å"}, at, dist)
    return Verdict([_field("energy jump", worst["energy"], "eV", at(worst["energy"])),
                    _field("force jump", worst["forces"], "eV/Å", at(worst["forces"]))] + more,
                   note="\n".join(notes + said),
                   what=f"atom {j} moved radially across the {cutoff.describe()} of atom {i} in {case.name}",
                   details={"distance": dist, "energy": energy, "pair": [i, j], "cutoff": rc,
                            "plots": [{"title": f"{case.name}: atom {j} crossing the cutoff of atom {i}",
                                       "xlabel": "distance (Å)", "ylabel": "E (eV)",
                                       "series": [{"x": dist, "y": energy, "label": "energy"}],
                                       "vlines": [{"x": rc, "label": "cutoff"}]}]})
