"""Locality family: nothing beyond the cutoff matters, and energies add up.

A local potential writes the energy as a sum of atomic energies, each a
function of the neighbours within the cutoff r_c. Exact consequences, tested
here with a control so they cannot pass trivially:

* the force on an atom depends only on atoms within 2 r_c (its neighbours'
  environments), its atomic energy only on atoms within r_c; for a pair
  potential the force range is r_c itself;
* two fragments further apart than r_c do not feel each other at all, however
  many-body or message-passing the model is;
* so two far-apart copies have twice the energy of one, and far-away
  spectators change no force.

The cutoff is the declared one (``model.tags.cutoff``) or the one detected
from dimer scans (:func:`conformance.toolkit.scans.cutoff_for`). Models tagged
``strictly_local=False`` get the range of influence measured and reported
instead of judged.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms

from ..toolkit import scans
from ..core.model import Skip
from ..core.registry import check
from ..core.result import Field, Verdict
from ..core.tolerances import define
from ._compare import compare

define("locality_force_atol", "eV/Å", 1e-8, 2e-5,
       "change of a force when only atoms beyond the interaction range move: exactly 0 for a "
       "local model, up to round-off of re-ordered neighbour sums (~1e-14 eV/Å in float64, "
       "~1e-6 in float32) and a detected cutoff's residue (cutoff_force_atol); a model "
       "interacting beyond its cutoff changes it by 1e-4..1e-1 eV/Å; force_rtol × |F| is added")
define("locality_energy_atol", "eV", 1e-9, 1e-5,
       "change of the central atom's energy when only atoms beyond r_c move (0 for a local "
       "model up to round-off)")

MARGIN = 0.3          # Å beyond the cutoff (or 5 % of it, whichever is larger)
DISPLACEMENT = 0.1    # Å, uniform per component for displaced far atoms (|u| <= 0.17 Å)
GAP_DEPTH = 3.0       # Å thickness of the far fragment in the gap test
SHELL = 2.0           # Å thickness of the displaced outer shell / influence shells
CONTROL_STEP = 0.05   # Å the nearest neighbour moves in the control
MAX_ATOMS = 5000      # largest embedding cluster built
PROFILE_REACH = 15.0  # Å, influence profile of a model without cutoff


def margin(rc: float) -> float:
    """Distance (Å) kept beyond the cutoff: max(0.3 Å, 5 % of r_c)."""
    return max(MARGIN, 0.05 * rc)


def _cutoff_or_skip(model, ctx) -> scans.CutoffEstimate:
    est = scans.cutoff_for(model, ctx.tol)
    if est.radius is None and model.tags.strictly_local:
        raise Skip(f"{est.describe()} although the model is tagged strictly local: nothing to "
                   "test locality against (dimer_curve reports the range)")
    return est


def sphere_from_crystal(atoms: Atoms, radius: float) -> tuple[Atoms, int]:
    """Isolated spherical cluster of the periodic crystal ``atoms`` around one atom.

    Returns the cluster, centred on the origin, and the index ``c`` of its
    central atom: the atom nearest to the middle of a supercell large enough
    for the sphere.
    """
    cell = atoms.cell
    widths = cell.volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    reps = [int(math.ceil(2 * radius / w)) + 1 if p else 1 for w, p in zip(widths, atoms.pbc)]
    big = atoms.repeat(reps)
    middle = big.cell.sum(axis=0) / 2
    c = int(np.argmin(np.linalg.norm(big.positions - middle, axis=1)))
    rel = big.positions - big.positions[c]
    keep = np.flatnonzero(np.linalg.norm(rel, axis=1) <= radius)
    cluster = big[keep]
    cluster.pbc = False
    cluster.cell[:] = 0.0
    cluster.positions -= big.positions[c]
    return cluster, int(np.flatnonzero(keep == c)[0])


def _min_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest distance (Å) between points ``a`` (n, 3) and ``b`` (k, 3)."""
    return float(np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1)).min())


def _displace(atoms: Atoms, mask: np.ndarray, rng, amplitude: float = DISPLACEMENT) -> Atoms:
    moved = atoms.copy()
    moved.positions[mask] += rng.uniform(-amplitude, amplitude, (int(mask.sum()), 3))
    return moved


def _props(model, energies: bool) -> tuple:
    return ("energy", "forces", "energies") if energies and "energies" in model.tags.properties \
        else ("energy", "forces")


def gap_test(model, atoms: Atoms, rc: float, m: float, tol, rng):
    """Two fragments cut from the crystal, further apart than ``rc + m`` across vacuum.

    Near fragment: half-sphere x <= 0 of radius ``rc`` around one atom; far
    fragment: x >= rc + m, within rc + m + 3 Å, then moved along -x until
    the closest pair of the two fragments is exactly rc + m apart. The far
    atoms are displaced; every force on the near fragment must stay the
    same. 2 calls.

    Returns (Field, note or "", details).
    """
    cluster, c = sphere_from_crystal(atoms, rc + m + GAP_DEPTH)
    x = cluster.positions
    dist = np.linalg.norm(x, axis=1)
    near = (x[:, 0] <= 0) & (dist <= rc)
    far = x[:, 0] >= rc + m
    pair = cluster[near | far]
    near, far = near[near | far], far[near | far]
    if not far.any() or near.sum() < 2:
        raise Skip("gap test: the fragments are empty (cell too small?)")
    # close the gap to exactly rc + m: crystal planes would otherwise leave it wider
    for _ in range(4):
        gap = _min_distance(pair.positions[near], pair.positions[far])
        pair.positions[far, 0] -= gap - (rc + m)
    ref = model.evaluate(pair, ("energy", "forces"))
    moved = _displace(pair, far, rng)
    got = model.evaluate(moved, ("energy", "forces"))
    diff = np.linalg.norm(got["forces"][near] - ref["forces"][near], axis=1)
    k = int(np.argmax(diff))
    f_scale = float(np.abs(ref["forces"][near]).max())
    limit = tol["locality_force_atol"] + tol["force_rtol"] * f_scale
    near_idx = np.flatnonzero(near)[k]
    reach = float(np.linalg.norm(pair.positions[far] - pair.positions[near_idx], axis=1).min())
    field = Field("max |ΔF| across the vacuum gap", float(diff[k]), limit, "eV/Å",
                  f"near-fragment atom {near_idx}")
    note = ""
    if diff[k] > limit:
        note = (f"forces on the near fragment change by up to {diff[k]:.3g} eV/Å (atom {near_idx}, "
                f"{reach:.2f} Å from the nearest moved atom) when atoms more than {rc + m:.2f} Å away "
                f"across a vacuum gap move: the model interacts beyond its cutoff {rc:.3f} Å")
    return field, note, {"gap_atoms": [int(near.sum()), int(far.sum())], "gap_max_dF": float(diff[k]),
                         "gap": _min_distance(pair.positions[near], pair.positions[far]),
                         "gap_reach": reach}


@check(family="locality", cases={"bulk"}, unit="eV/Å",
       calls="6 (gap test 2, embedded atom 3, control 1; +1-2 for a stronger control) (+ cutoff detection "
             "when none is declared); strictly_local=False: 1 + one per 2 Å shell (3 beyond the cutoff, "
             "6 from 3 Å without one)")
def locality(model, case, ctx, rng):
    """Moving atoms beyond the interaction range leaves forces unchanged; moving
    a neighbour does not (control).

    Three tests on structures cut from the bulk crystal (r_c declared or
    detected, m = max(0.3 Å, 5 % r_c), far atoms displaced by up to 0.1 Å per
    component): (1) gap test — a half-sphere of radius r_c and a fragment
    beyond r_c + m across vacuum; no force on the near fragment may change
    (exact for any local model, message-passing ones included: no edge crosses
    the gap; catches interactions leaking past the declared cutoff); (2) in a
    sphere around a central atom, atoms beyond 2R + m move: the central force
    stays, and atoms beyond R + m move: the central atom's energy stays (when
    the model gives per-atom energies), with R the receptive field — declared
    (``receptive_field``: layers × per-layer cutoff for message passing) or
    else r_c, for which a response beyond is reported, not failed (a
    message-passing model's range, measured); (3) control — the nearest
    neighbour moves 0.05 Å and the central force must change by at least 10 ×
    the tolerance of (1) and (2), else 0.2 Å and then its four nearest
    neighbours are tried; a control that stays too weak makes the item
    inconclusive (skipped with the numbers), never a failure. For
    strictly_local=False the force response to each 2 Å shell beyond r_c + m
    (three shells; without a cutoff from 3 to 15 Å) is reported instead.
    """
    est = _cutoff_or_skip(model, ctx)
    atoms = case.copy()
    tol = ctx.tol
    if not model.tags.strictly_local:
        return _influence_profile(model, atoms, est, tol, rng)
    rc = est.radius
    m = margin(rc)
    declared = model.tags.receptive_field
    reach = float(declared) if declared else rc
    severity = None if declared else "informational"
    range_name = f"receptive field R = {reach:g} Å (declared)" if declared else f"r_c = {rc:.3f} Å"
    fields, notes = [], []
    gap_field, gap_note, details = gap_test(model, atoms, rc, m, tol, rng)
    fields.append(gap_field)
    if gap_note:
        notes.append(gap_note)

    radius = 2 * reach + m + SHELL
    cluster, c = sphere_from_crystal(atoms, radius)
    test_force_range = len(cluster) <= MAX_ATOMS
    if not test_force_range:  # a message-passing model's force range: too large a sphere
        notes.append(f"force range 2R = {2 * reach:.1f} Å not tested: the sphere would hold {len(cluster)} atoms "
                     f"(> {MAX_ATOMS})")
        cluster, c = sphere_from_crystal(atoms, reach + m + SHELL)
        if len(cluster) > MAX_ATOMS:
            raise Skip(f"embedding sphere of {len(cluster)} atoms for R = {reach:.2f} Å exceeds {MAX_ATOMS}")
    dist = np.linalg.norm(cluster.positions - cluster.positions[c], axis=1)
    props = _props(model, energies=True)
    ref = model.evaluate(cluster, props)
    f0 = ref["forces"][c]
    f_limit = tol["locality_force_atol"] + tol["force_rtol"] * float(np.abs(f0).max())

    if test_force_range:
        beyond2 = dist > 2 * reach + m
        got2 = model.evaluate(_displace(cluster, beyond2, rng), ("energy", "forces"))
        d2 = float(np.linalg.norm(got2["forces"][c] - f0))
        details["dF_beyond_2R"] = d2
        fields.append(Field("|ΔF| central atom, atoms beyond 2R moved", d2, f_limit, "eV/Å",
                            f"{int(beyond2.sum())} atoms beyond {2 * reach + m:.2f} Å", severity=severity))
        if d2 > f_limit:
            notes.append(f"the force on the central atom changes by {d2:.3g} eV/Å when only atoms more than "
                         f"2R + m = {2 * reach + m:.2f} Å away move ({range_name})"
                         + ("" if declared else ": the model's range exceeds that of a local many-body model "
                            "with this cutoff (message passing?); declare mlip_tags = {'receptive_field': "
                            "layers × r_c} to have it judged"))

    beyond1 = dist > reach + m
    got1 = model.evaluate(_displace(cluster, beyond1, rng), props)
    d1 = float(np.linalg.norm(got1["forces"][c] - f0))
    details.update(central_atoms=len(cluster), dF_beyond_R=d1, receptive_field=reach,
                   receptive_field_declared=bool(declared))
    if "energies" in ref:
        de = abs(float(got1["energies"][c] - ref["energies"][c]))
        fields.append(Field("|ΔE_i| central atom, atoms beyond R moved", de, tol["locality_energy_atol"], "eV",
                            f"{int(beyond1.sum())} atoms beyond {reach + m:.2f} Å", severity=severity))
        details["dE_i_beyond_R"] = de
        if de > tol["locality_energy_atol"]:
            notes.append(f"the energy of the central atom changes by {de:.3g} eV when only atoms more than "
                         f"{reach + m:.2f} Å away move: its environment reaches beyond {range_name}")

    dc, control = _control(model, cluster, c, dist, f0, 10 * f_limit, rng)
    details["control_dF"] = dc
    fields.append(Field("control: required / observed |ΔF|", 10 * f_limit / dc if dc > 0 else math.inf, 1.0,
                        "", f"|ΔF| = {dc:.3g} eV/Å when {control}"))
    if dc < 10 * f_limit:
        measured = "; ".join(f"{f.name} {f.error:.3g}" for f in fields[:-1])
        raise Skip(f"inconclusive: the force on the central atom changed by only {dc:.3g} eV/Å when {control}, "
                   f"less than 10 × the tolerance {f_limit:.3g} eV/Å: the test cannot tell a local model from "
                   f"an inert one here (measured: {measured})")
    notes.append(f"control: the central force changed by {dc:.3g} eV/Å when {control}")
    notes.append(f"{est.describe()}; R = {reach:g} Å ({'declared' if declared else 'the cutoff'}); force on the "
                 f"central atom changes by {d1:.3g} eV/Å when atoms beyond R + m move (non-zero for many-body "
                 "models)")
    return Verdict(fields, note="\n".join(notes),
                   what=f"gap test and a {len(cluster)}-atom sphere of {case.name} ({est.describe()})",
                   details=details)


def _control(model, cluster: Atoms, c: int, dist: np.ndarray, f0: np.ndarray, needed: float, rng):
    """Move the nearest neighbour of the central atom by 0.05 Å, then (if the central
    force changed by less than ``needed``) by 0.2 Å, then its four nearest
    neighbours by 0.2 Å; returns the largest |ΔF| (eV/Å) and what moved."""
    order = np.argsort(dist)
    step = rng.normal(size=(4, 3))
    step /= np.linalg.norm(step, axis=1)[:, None]
    best = (0.0, "")
    for amount, count in ((CONTROL_STEP, 1), (4 * CONTROL_STEP, 1), (4 * CONTROL_STEP, 4)):
        moved = cluster.copy()
        moved.positions[order[1:1 + count]] += amount * step[:count]
        dc = float(np.linalg.norm(model.evaluate(moved, ("energy", "forces"))["forces"][c] - f0))
        what = (f"its nearest neighbour ({dist[order[1]]:.2f} Å) moved by {amount:g} Å" if count == 1 else
                f"its {count} nearest neighbours moved by {amount:g} Å")
        if dc >= best[0]:  # the strongest control tried, on ties the last
            best = (dc, what)
        if dc >= needed:
            break
    return best


def _influence_profile(model, atoms: Atoms, est: scans.CutoffEstimate, tol, rng) -> Verdict:
    """strictly_local=False: |ΔF| on the central atom per 2 Å shell of displaced atoms."""
    if est.radius is not None:  # three shells beyond the cutoff
        start = est.radius + margin(est.radius)
        reach = start + 3 * SHELL
    else:
        start, reach = 3.0, PROFILE_REACH
    cluster, c = sphere_from_crystal(atoms, reach)
    if len(cluster) > MAX_ATOMS:
        raise Skip(f"influence-profile sphere of {len(cluster)} atoms exceeds {MAX_ATOMS}")
    dist = np.linalg.norm(cluster.positions - cluster.positions[c], axis=1)
    ref = model.evaluate(cluster, ("energy", "forces"))
    f0 = ref["forces"][c]
    limit = tol["locality_force_atol"] + tol["force_rtol"] * float(np.abs(f0).max())
    edges = np.arange(start, dist.max(), SHELL)
    profile = []
    for lo in edges:
        mask = (dist >= lo) & (dist < lo + SHELL)
        if not mask.any():
            continue
        got = model.evaluate(_displace(cluster, mask, rng), ("energy", "forces"))
        profile.append((float(lo), float(np.linalg.norm(got["forces"][c] - f0))))
    felt = [lo + SHELL for lo, d in profile if d > limit]
    influence = max(felt) if felt else start
    edge = bool(felt) and influence >= profile[-1][0] + SHELL
    note = (f"model tagged strictly_local=False: the force on the central atom responds to atoms out to "
            f"{influence:.1f} Å" + (" (the edge of the probed sphere)" if edge else "") + f"; {est.describe()}")
    return Verdict([Field("influence range (reported)", influence, math.inf, "Å")], note=note,
                   what=f"force response of the central atom of a {len(cluster)}-atom sphere, per {SHELL:g} Å shell",
                   details={"profile": profile,
                            "plots": [{"title": "influence on the central force", "xlabel": "shell start (Å)",
                                       "ylabel": "|ΔF| (eV/Å)", "logy": True,
                                       "series": [{"x": [p[0] for p in profile],
                                                   "y": [max(p[1], 1e-16) for p in profile],
                                                   "style": "scatter", "label": "|ΔF| central atom"}]}]})


# --------------------------------------------------------------------------- extensivity

def _stack_axis(atoms: Atoms) -> int:
    """First non-periodic axis (copies and spectators are placed along it)."""
    free = np.flatnonzero(~atoms.pbc)
    if not len(free):
        raise Skip("extensivity needs a non-periodic direction to place copies along")
    return int(free[0])


def _placed(atoms: Atoms, axis: int) -> Atoms:
    """Copy moved along the non-periodic ``axis`` to start 10 Å into a cell
    vector long enough for it (clusters without a cell are returned as they are)."""
    out = atoms.copy()
    if out.cell.rank == 3:
        pos = out.positions[:, axis]
        cell = out.cell.array.copy()
        cell[axis] *= (pos.max() - pos.min() + 20.0) / np.linalg.norm(cell[axis])
        out.set_cell(cell, scale_atoms=False)
        out.positions[:, axis] += 10.0 - pos.min()
    return out


def _local_only(tags) -> str | None:
    if not tags.strictly_local:
        return "model has long-range terms (strictly_local=False): far-apart copies are meant to interact"
    return None


@check(family="locality", cases={"cluster", "slab"}, unit="eV", requires=_local_only,
       calls="4 (+ cutoff detection when none is declared)")
def extensivity(model, case, ctx, rng):
    """Two copies further apart than the cutoff have twice the energy and the
    same forces; far-away spectators change no force and add their own energy.

    The copy is placed along a non-periodic direction (cluster: x; slab: z)
    with a vacuum gap of r_c + m; the spectators are a dimer of the model's
    species the same gap away on the other side. Calls: one copy, two copies,
    structure with spectators, spectators alone. Skipped for models tagged
    strictly_local=False.
    """
    est = _cutoff_or_skip(model, ctx)
    rc = est.radius
    m = margin(rc)
    gap = rc + m
    atoms = case.copy()
    n = len(atoms)
    axis = _stack_axis(atoms)
    pos = atoms.positions[:, axis]
    extent = float(pos.max() - pos.min())
    one = atoms
    shift = np.zeros(3)
    shift[axis] = extent + gap
    copy2 = one.copy()
    copy2.positions += shift
    two = one + copy2

    species = list(model.tags.species) or sorted(set(atoms.get_chemical_symbols()))
    a, b = species[0], species[1 % len(species)]
    bond = 0.9 * scans.pair_nn_distance(a, b)
    spect = Atoms([a, b], cell=one.cell, pbc=one.pbc)
    spect.positions[:, axis] = pos.min() - gap
    spect.positions[1, (axis + 1) % 3] += bond
    spect.positions[:, (axis + 1) % 3] += atoms.positions[:, (axis + 1) % 3].mean()
    spect.positions[:, (axis + 2) % 3] += atoms.positions[:, (axis + 2) % 3].mean()
    with_spect = one + spect

    r1 = model.evaluate(_placed(one, axis), ("energy", "forces"))
    r2 = model.evaluate(_placed(two, axis), ("energy", "forces"))
    rs = model.evaluate(_placed(with_spect, axis), ("energy", "forces"))
    r0 = model.evaluate(_placed(spect, axis), ("energy", "forces"))
    fields = compare({"energy": 2 * r1["energy"], "forces": np.tile(r1["forces"], (2, 1))}, r2, ctx.tol, 2 * n,
                     prefix="two copies: ")
    fields += compare({"energy": r1["energy"] + r0["energy"], "forces": r1["forces"]},
                      {"energy": rs["energy"], "forces": rs["forces"][:n]}, ctx.tol, n + 2,
                      prefix="spectators: ")
    notes = []
    e_two, f_two, e_spect, f_spect = (not f.ok for f in fields)
    if e_two:
        notes.append(f"two copies {gap:.2f} Å apart have E = {r2['energy']:.6g} eV, not 2 × {r1['energy']:.6g} eV "
                     f"(off by {r2['energy'] - 2 * r1['energy']:+.3g} eV): the energy is not extensive")
    if f_two:
        notes.append(f"forces change by up to {fields[1].error:.3g} eV/Å when an identical copy sits {gap:.2f} Å "
                     "away: interactions reach beyond the cutoff")
    if f_spect:
        why = ("the same reach beyond the cutoff" if f_two else "a global (mean-field) term: identical copies leave per-atom averages "
               "unchanged, spectators do not")
        notes.append(f"spectator atoms {gap:.2f} Å away change forces on the original atoms by up to "
                     f"{fields[3].error:.3g} eV/Å: {why}")
    if e_spect:
        notes.append(f"the energy with spectators differs from the sum of the parts by "
                     f"{rs['energy'] - r1['energy'] - r0['energy']:+.3g} eV")
    notes.append(est.describe())
    return Verdict(fields, note="\n".join(notes),
                   what=f"{case.name} and a copy {gap:.2f} Å away along {'xyz'[axis]}, and with a spectator dimer",
                   details={"E_one": r1["energy"], "E_two": r2["energy"], "E_with_spectators": rs["energy"],
                            "E_spectators": r0["energy"], "gap": gap, "cutoff": est.radius})
