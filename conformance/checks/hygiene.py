"""Hygiene family: the calculator behaves as software should.

Same input, same output (``determinism``); no stale results after in-place
changes (``stale_cache``); no history along a trajectory of small steps
(``walk_history``); no state leaking from one structure to the next
(``size_reuse``); declared species work and undeclared ones fail loudly
(``species_support``); the caller's Atoms is left alone (``input_untouched``);
separate instances can run in threads (``thread_safety``); memory does not
grow with use (``memory_growth``); outputs have ASE's shapes, signs and units
(``output_sanity``).

Most checks go through :meth:`Model.evaluate` (a copy of the structure, a
``reset()`` calculator). Checks about the calculator's own state use the raw
calculator the way ASE users do (``atoms.calc = calc; atoms.get_forces()``)
through :func:`call_calculator`, which keeps the same bookkeeping (call count,
time inside the model, time limit) and turns exceptions into ``ModelError``.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import sys
import threading
import time
import tracemalloc
from typing import Any, Sequence

import numpy as np
from ase import Atom, Atoms
from ase.constraints import FixAtoms
from ase.data import atomic_numbers, chemical_symbols, covalent_radii

from ..core.model import MissingProperty, ModelError, Skip, validate
from ..core.profiles import STANDARD
from ..core.registry import check
from ..core.result import Field, Verdict
from ..core.cases import ANY
from ..toolkit import scans
from ..toolkit.structures import nearest_neighbour_distance
from ..core.tolerances import define
from ._compare import case_reproducer, compare

define("memory_growth_traced", "B/call", 1024.0, 1024.0,
       "Python memory retained per model call after warm-up (tracemalloc): a model that keeps "
       "nothing between calls retains < 100 B/call (interpreter and allocator caches); keeping "
       "each structure or result (a history list) costs kilobytes per call")
define("memory_growth_rss", "B/call", 65536.0, 65536.0,
       "resident memory growth per call (whole process, includes native and GPU-driver heaps); "
       "loose because the allocator grows RSS in steps of arenas; catches native leaks of "
       "≳ 64 kB per call (e.g. a tensor kept per call)")
define("dimer_rmin_factor", "1", 2.0, 2.0,
       "the dimer's equilibrium distance must lie within [1/f, f] × (sum of covalent radii): real "
       "dimers lie within 0.7-1.8 (van der Waals); a Bohr/Å mix-up moves it by 1.89")
define("dimer_binding_min", "eV", 5e-5, 5e-5,
       "smallest plausible dimer binding energy E(∞) - E(r_min): He₂ binds by 9e-5 eV, Ne₂ by 4e-3 eV, "
       "Ar₂ by 1.2e-2 eV; a dimer that does not bind at all is suspicious (units are checked "
       "precisely by the force/slope ratio)")
define("dimer_binding_max", "eV", 15.0, 15.0,
       "largest plausible dimer binding energy (N₂: 9.8 eV, CO: 11.1 eV); energies in kJ/mol or "
       "kcal/mol are 96× / 23× too large")
define("determinism_rtol", "1", 1e-12, 1e-5,
       "difference between repeated evaluations, relative to the scale of what a reduction sums "
       "(max |F| >= 1 eV/Å, |E| >= N eV, max |σ| >= 0.1 eV/Å³), accepted as round-off when the "
       "model does not declare deterministic=True: a reordered float64 sum of ~100 terms changes "
       "by ~1e-14 relative, float32 by ~1e-6 (torch CPU reductions: 1e-6 eV/Å on forces of "
       "~1 eV/Å); dropout or random noise left on gives 1e-3 and more")
define("units_ratio_rtol", "1", 0.05, 0.05,
       "force on a dimer atom / (-dE/dr) from a ±1e-3 Å difference: must be 1; unit mix-ups give "
       "27.2 (Hartree), 1.89 (Bohr), 51.4 (Hartree/Bohr); 5 % is coarse on purpose "
       "(force_consistency is the precise test)")

WARMUP_CALLS = 10
MEMORY_CALLS = STANDARD.memory_calls  # the run's profile sets it
TRACED_WARMUP = 20  # of MEMORY_CALLS, before the first reading
THREADS = 2
THREAD_ROUNDS = 4
PROBE_SPECIES = ("Xe", "Rn", "Kr", "Ar", "Ne", "He", "Og")
SCAN_FACTORS = np.geomspace(0.4, 2.5, 15)  # × sum of covalent radii
UNIT_FACTORS = {"Hartree/eV": 27.211386, "Bohr/Å": 1.8897261, "(Hartree/Bohr)/(eV/Å)": 51.422067,
                "Rydberg/eV": 13.605693, "(kcal/mol)/eV": 23.060548, "(kJ/mol)/eV": 96.485332}

def hygiene_properties(model, case) -> tuple[str, ...]:
    """Energy and forces (as implemented), and stress on fully periodic cases."""
    props = [p for p in ("energy", "forces") if p in model.tags.properties]
    if model.tags.has_stress and "periodic3" in case.tags:
        props.append("stress")
    if not props:
        raise Skip("model implements neither energy nor forces")
    return tuple(props)


GETTERS = {
    "energy": lambda atoms: atoms.get_potential_energy(),
    "free_energy": lambda atoms: atoms.get_potential_energy(force_consistent=True),
    "forces": lambda atoms: atoms.get_forces(apply_constraint=False),
    # atoms.get_stress() warns when converting a 3×3 stress; the calculator's own answer is wanted
    "stress": lambda atoms: atoms.calc.get_property("stress", atoms),
    "energies": lambda atoms: atoms.get_potential_energies(),
}


def call_calculator(model, atoms: Atoms, properties: Sequence[str], calc: Any = None) -> dict:
    """Evaluate the way ASE users do, on ``atoms`` itself: ``atoms.calc = calc``
    then ``atoms.get_forces()`` etc. No copy, no ``reset()``: the
    calculator's cache and any mutation of ``atoms`` are exercised.

    Same bookkeeping as :meth:`Model.evaluate` (call count, time inside the
    model, time limit in the main thread); returns validated float64 results.

    Raises
    ------
    MissingProperty, ModelError
    """
    calc = model.calc if calc is None else calc
    properties = tuple(properties)
    with model.calling(atoms, how=", via atoms.calc = calc; atoms.get_...()"):
        atoms.calc = calc
        raw = {p: GETTERS[p](atoms) for p in properties}
    return validate(raw, len(atoms))


UNITS = {"energy": ("|ΔE|", "eV"), "forces": ("max |ΔF|", "eV/Å"), "stress": ("max |Δσ|", "eV/Å³")}


def largest_differences(pairs: Sequence[tuple[str, dict, dict]]) -> dict:
    """Per property, the largest absolute difference over labelled pairs of
    results: ``{property: (difference, label of the pair)}``."""
    worst: dict = {}
    for label, a, b in pairs:
        for key in UNITS:
            if key in a and key in b:
                diff = np.abs(np.asarray(a[key]) - np.asarray(b[key]))
                value = float(diff.max()) if diff.size else 0.0
                if key not in worst or value > worst[key][0]:
                    worst[key] = (value, label)
    return worst


def roundoff_scale(result: dict, key: str, n_atoms: int) -> float:
    """Magnitude the round-off of ``key`` is relative to: |E| (at least N eV),
    max |F| (at least 1 eV/Å), max |σ| (at least 0.1 eV/Å³) — the size of the
    terms a reduction sums, not of a net value that may cancel to ~0."""
    value = np.abs(np.asarray(result[key]))
    floor = {"energy": float(n_atoms), "forces": 1.0, "stress": 0.1}[key]
    return max(float(value.max()) if value.size else 0.0, floor)


def determinism_fields(model, pairs: Sequence[tuple[str, dict, dict]], ctx, n_atoms: int) -> list[Field]:
    """Fields for results that should repeat.

    * declared ``deterministic=True``: bit-identical (tolerance 0);
    * declared ``deterministic=False``: the shared tolerances (energy_atol, force_atol/rtol, ...);
    * not declared: within ``determinism_rtol`` × the property's scale (round-off of
      unordered reductions), plus an informational field "not bit-identical" that
      reports, without failing, a difference within it.
    """
    declared = model.tags.deterministic
    if declared is False:
        return [f for label, a, b in pairs for f in compare(a, b, ctx.tol, n_atoms, prefix=f"{label}: ")]
    worst = largest_differences(pairs)
    reference = pairs[0][1]
    fields = []
    for key, (value, label) in worst.items():
        name, unit = UNITS[key]
        if declared:
            fields.append(Field(name, value, 0.0, unit, where=label))
            continue
        tol = ctx.tol["determinism_rtol"] * roundoff_scale(reference, key, n_atoms)
        fields.append(Field(name, value, tol, unit, where=label))
        if 0 < value <= tol:  # round-off: a finding, not a failure
            fields.append(Field(f"not bit-identical: {name}", value, 0.0, unit, where=label,
                                severity="informational"))
    return fields


def _rattled(atoms: Atoms, rng: np.random.Generator, stdev: float) -> Atoms:
    out = atoms.copy()
    out.positions = atoms.positions + rng.normal(0.0, stdev, atoms.positions.shape)
    return out


# -- determinism ----------------------------------------------------------------------------

@check(family="hygiene", needs={"forces"}, cases=ANY, calls="4", unit="eV/Å")
def determinism(model, case, ctx, rng):
    """The same structure evaluated twice, and again after another structure,
    gives the same results: bit-identical when the model declares
    ``deterministic=True``; otherwise equal to round-off (``determinism_rtol``
    × the scale: 1e-12 in float64, 1e-5 in float32, relative to max |F| ≥ 1 eV/Å,
    |E| ≥ N eV, max |σ| ≥ 0.1 eV/Å³), and a difference below that is reported
    ("not bit-identical", informational), not failed; with
    ``deterministic=False``, the shared tolerances.

    Catches dropout or random features left on at inference, uninitialised
    buffers and state carried over from the previous structure; with
    ``deterministic=True`` also unordered parallel reductions (GPU atomics,
    threaded CPU sums). Units: eV, eV/Å, eV/Å³.
    """
    props = hygiene_properties(model, case)
    atoms = case.copy()
    first = model.evaluate(atoms, props)
    second = model.evaluate(atoms, props)
    model.evaluate(_rattled(atoms, rng, 0.1), props)
    third = model.evaluate(atoms, props)
    pairs = [("call 2 vs 1", first, second), ("call 4 vs 1 (a rattled copy in between)", first, third)]
    fields = determinism_fields(model, pairs, ctx, len(atoms))
    declared = model.tags.deterministic
    if declared:
        note = "model declares deterministic=True: bit-identical results required"
    elif declared is False:
        note = "model declares deterministic=False: held to the shared tolerances"
    else:
        rtol = ctx.tol["determinism_rtol"]
        exact = all(f.error == 0 for f in fields)
        note = (("bit-identical" if exact else
                 f"not bit-identical: repeats differ; accepted as round-off up to {rtol:g} × the scale "
                 f"({model.tags.precision})") +
                " (declare mlip_tags = {'deterministic': True} to require bit-identical results)")
    body = ("atoms.calc = calc\nf1 = atoms.get_forces().copy()\ncalc.reset()\n"
            "f2 = atoms.get_forces()\nprint(np.abs(f1 - f2).max())  # expect 0 (or round-off)")
    return Verdict(fields, what=f"{case.name} evaluated 3× (a rattled copy in between)", note=note,
                   reproducer=case_reproducer(case, ctx, body))


# -- stale cache ----------------------------------------------------------------------------

def free_site(atoms: Atoms, rng: np.random.Generator, distance: float) -> np.ndarray:
    """A point ``distance`` (Å) from a random atom, in a random direction: of 8
    candidates per atom, the one farthest from every atom (minimum image)."""
    from ase.geometry import get_distances

    dirs = rng.normal(size=(8 * len(atoms), 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    candidates = np.repeat(atoms.positions, 8, axis=0) + distance * dirs
    _, d = get_distances(candidates, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    return candidates[int(np.argmax(d.min(axis=1)))]


def other_species(model, atoms: Atoms, k: int) -> list[str]:
    """Species of the run or declared by the calculator, other than atom k's."""
    pool = list(model.tags.species) + declared_species(model.calc)
    return [s for s in dict.fromkeys(pool) if s in atomic_numbers and atomic_numbers[s] != atoms.numbers[k]]


def in_place_mutations(model, atoms: Atoms, rng: np.random.Generator) -> tuple[list, list[str]]:
    """Changes users make to an Atoms they keep evaluating, in order, each
    applied on top of the previous ones: ``(label, change)`` pairs, where
    ``change(atoms)`` returns the Atoms to evaluate next (the same object changed
    in place, or a new object), and the changes that do not apply (with why)."""
    n = len(atoms)
    shift = rng.normal(0.0, 0.05, (n, 3))
    k = int(rng.integers(n))
    periodic = bool(atoms.pbc.any())
    muts, untested = [], []

    def move_all(a):
        a.positions += shift
        return a

    def move_one(a):
        a.positions[k] += [0.1, -0.05, 0.08]
        return a

    muts.append(("atoms.positions += δ (0.05 Å rattle)", move_all))
    muts.append((f"atoms.positions[{k}] += (0.1, -0.05, 0.08)", move_one))
    if periodic:
        def scale_cell(a):
            a.set_cell(a.cell.array * 1.01, scale_atoms=True)
            return a

        def stretch_cell(a):
            a.set_cell(a.cell.array * 1.02, scale_atoms=False)
            return a

        muts.append(("atoms.set_cell(1.01 × cell, scale_atoms=True)", scale_cell))
        muts.append(("atoms.set_cell(1.02 × cell, scale_atoms=False)", stretch_cell))
    else:
        untested.append("cell and pbc (an isolated case; tested on periodic cases)")
    others = other_species(model, atoms, k)
    if others:
        z = atomic_numbers[others[0]]

        def swap(a):
            a.numbers[k] = z
            return a

        muts.append((f"atoms.numbers[{k}] = {z} ({others[0]})", swap))
    else:
        untested.append("atomic numbers (one species audited, the calculator declares no other)")
    symbol = atoms.get_chemical_symbols()[0]
    nn = nearest_neighbour_distance(symbol)

    def delete(a):
        del a[-1]
        return a

    def append(a):
        a.append(Atom(symbol, free_site(a, rng, nn)))
        return a

    if n > 1:
        muts.append(("del atoms[-1]", delete))
    muts.append((f"atoms.append(Atom({symbol!r}, ...)) at {nn:.3g} Å from an atom", append))
    if periodic:
        def new_object(a):
            return Atoms(a.numbers.copy(), positions=a.positions.copy(), cell=a.cell.array * 0.98, pbc=a.pbc)

        muts.append(("a new Atoms with the same positions and 0.98 × the cell", new_object))
        if model.tags.periodic_only:
            untested.append("pbc (the model is periodic-only)")
        else:
            axis = int(np.flatnonzero(atoms.pbc)[-1])

            def unset_pbc(a):
                pbc = a.pbc.copy()
                pbc[axis] = False
                a.pbc = pbc
                return a

            flags = atoms.pbc.copy()
            flags[axis] = False
            muts.append((f"atoms.pbc = {tuple(bool(x) for x in flags)}", unset_pbc))
    return muts, untested


def _properties_of(props: Sequence[str], atoms: Atoms) -> tuple[str, ...]:
    """``props`` without stress unless ``atoms`` is periodic in 3 directions."""
    full = bool(atoms.pbc.all()) and atoms.cell.rank == 3
    return tuple(p for p in props if p != "stress" or full)


def _raw_results(model, atoms: Atoms, props: Sequence[str]):
    """Raw results on ``atoms`` (:func:`call_calculator`), or the message when
    they are sized for a different number of atoms (a cache answering for
    another structure)."""
    try:
        return call_calculator(model, atoms, _properties_of(props, atoms))
    except ModelError as exc:
        if " has shape " in str(exc):
            return str(exc)
        raise


def _differ(a: dict, b: dict, ctx, n_a: int, n_b: int) -> bool:
    """Whether two fresh results differ beyond the shared tolerances."""
    return n_a != n_b or any(not f.ok for f in compare(a, b, ctx.tol, n_a))


@check(family="hygiene", needs={"forces"}, cases=ANY, calls="2 × (1 + 4-9 in-place changes)", unit="eV/Å")
def stale_cache(model, case, ctx, rng):
    """After each change a user makes to an Atoms the calculator keeps
    evaluating, it returns new results, not cached ones.

    The changes, applied in turn with ``atoms.calc = calc`` (no ``reset()``):
    positions (all atoms, one atom), the cell with the atoms scaled and without
    moving them (``set_cell(..., scale_atoms=False)``), an atomic number (to a
    second species of the run or declared by the calculator; else reported as
    not tested), deleting and appending an atom, a new Atoms object with the
    same positions and another cell, and a pbc flag (not for periodic-only
    models). Each raw result is compared with a fresh evaluation of the same
    structure on a new instance (:meth:`Model.fresh`; shared tolerances; eV,
    eV/Å, eV/Å³; one row per change, its property furthest from agreement). Catches caches keyed on part
    of the input (positions only; positions and numbers but not the cell or
    pbc; the common atoms only), on the object, and arrays kept by reference.
    Control: each change alters the fresh results, else it is reported as not
    tested.
    """
    props = hygiene_properties(model, case)
    atoms = model.adapt(case.copy())  # in a vacuum box for a periodic-only model
    if hasattr(model.calc, "reset"):
        model.calc.reset()
    changes, untested = in_place_mutations(model, atoms, rng)
    states = [("initial", atoms.copy(), _raw_results(model, atoms, props))]
    for label, change in changes:
        atoms = change(atoms)
        states.append((label, atoms.copy(), _raw_results(model, atoms, props)))
    atoms.calc = None
    fields, unchanged, previous, wrong_size = [], [], None, []
    for label, snapshot, raw in states:
        # a new instance per state: a cache keyed on part of the input (positions
        # alone) must not answer for the reference too
        fresh = model.evaluate(snapshot, _properties_of(props, snapshot), calc=model.fresh())
        prefix = f"after {label}: " if label != "initial" else "initial: "
        if isinstance(raw, str):  # results sized for another structure: cached ones
            fields.append(Field(prefix + "results of another size", 1.0, 0.0, ""))
            wrong_size.append(f"{prefix}{raw}")
        else:
            fields.append(max(compare(fresh, raw, ctx.tol, len(snapshot), prefix=prefix), key=lambda f: f.ratio))
        if previous is not None and not _differ(previous[0], fresh, ctx, previous[1], len(snapshot)):
            unchanged.append(label)
        previous = (fresh, len(snapshot))
    failing = [f for f in fields if not f.ok]
    notes = ["control: every change altered the fresh results" if not unchanged else
             f"control: {', '.join(unchanged)} did not change the results (not tested)"]
    if untested:
        notes.append("not tested here: " + "; ".join(untested))
    notes.extend(wrong_size)
    what = f"{len(states) - 1} in-place changes of {case.name} with atoms.calc = calc"
    stale = list(dict.fromkeys(f.name.split(": ")[0] for f in failing))
    if failing:
        what = f"{case.name}: the calculator returned cached results {' and '.join(stale)}"
    first = next((s for s in states[1:] if f"after {s[0]}" in stale), None)
    body = ("atoms.calc = calc\nf1 = atoms.get_forces().copy()\n"
            + _change_code(first[0] if first else states[1][0]) +
            "f2 = atoms.get_forces().copy()  # after the change\ncalc.reset()\n"
            "f3 = atoms.get_forces()  # recomputed\n"
            "print(f2.shape, f3.shape, np.abs(f2 - f3).max() if f2.shape == f3.shape else 'sizes differ')"
            "  # expect ~0")
    return Verdict(fields, what=what, note="\n".join(notes), reproducer=case_reproducer(case, ctx, body),
                   details={"changes": [s[0] for s in states[1:]], "unchanged": unchanged,
                            "stale": [s.removeprefix("after ") for s in stale], "not_tested": untested})


def _change_code(label: str) -> str:
    """Python lines making the change ``label`` on ``atoms`` (for the reproducer)."""
    if label.startswith("atoms.positions += δ"):
        return "atoms.positions += np.random.default_rng(0).normal(0, 0.05, atoms.positions.shape)\n"
    if label.startswith("a new Atoms"):
        return ("from ase import Atoms\nold = atoms\natoms = Atoms(old.numbers, positions=old.positions, "
                "cell=0.98 * old.cell.array, pbc=old.pbc)\natoms.calc = calc\n")
    if label.startswith("atoms.append"):
        return ("from ase import Atom\natoms.append(Atom(atoms[0].symbol, atoms.positions[0] + "
                "[0, 0, 2.5]))  # or anywhere the new atom has neighbours\n")
    if label.startswith("atoms.numbers"):
        return label.split(" (")[0] + "\n"
    return label.replace(" × cell", " * atoms.cell.array") + "\n"  # already Python


# -- history along a walk -------------------------------------------------------------------

WALK_STEP = STANDARD.walk_step  # Å per step: a third of the smallest plausible skin/2 (ASE's 0.3 Å skin)
WALK_MARGIN = 3.0  # Å: the walk starts this far beyond the cutoff (LAMMPS' metal skin is 2 Å)
WALK_CUTOFF = 6.0  # Å, when the model declares no cutoff
WALK_EVERY = 20  # steps between comparisons with a fresh instance


def walk_path(atoms: Atoms, length: float, step: float = WALK_STEP) -> tuple[int, np.ndarray, np.ndarray]:
    """The atom farthest from the centre, its outward direction, and the
    positions (n + 1, 3) of a straight walk from ``length`` Å outside its site
    back to the site in steps of at most ``step`` Å."""
    centre = atoms.positions.mean(axis=0)
    radial = atoms.positions - centre
    k = int(np.argmax(np.linalg.norm(radial, axis=1)))
    norm = float(np.linalg.norm(radial[k]))
    u = radial[k] / norm if norm > 1e-6 else np.array([1.0, 0.0, 0.0])
    n = int(math.ceil(length / step))
    path = atoms.positions[k] + np.outer(length * (1 - np.arange(n + 1) / n), u)
    return k, u, path


@check(family="hygiene", needs={"forces"}, cases={"cluster"},
       calls=f"(cutoff + {WALK_MARGIN:g} Å) / {WALK_STEP:g} Å + 1 steps (181 for a 6 Å cutoff) + 1 per "
             f"{WALK_EVERY} steps on a fresh instance", unit="eV/Å")
def walk_history(model, case, ctx, rng):
    """Results along a walk of many small steps equal a fresh instance's: the
    calculator carries no history (e.g. a Verlet neighbour list whose rebuild
    test is wrong).

    The outermost atom of the cluster starts cutoff + 3 Å outside its site
    (cutoff: declared, else 6 Å) and walks straight back in steps of 0.05 Å —
    below any plausible skin/2 — on the same Atoms with ``atoms.calc = calc``
    (no ``reset()``), as an MD or optimiser run moves atoms; every 20 steps and
    at the end the energy (eV) and forces (eV/Å) are compared with a fresh
    instance (``model.fresh()``) evaluating the same positions (shared
    tolerances). Catches rebuild tests measured from the last call instead of
    the last rebuild, skins checked against the wrong distance, and caches of
    neighbours or descriptors that are updated but never recomputed. Control:
    the walking atom's neighbours change the fresh results.
    """
    props = tuple(p for p in ("energy", "forces") if p in model.tags.properties)
    atoms = model.adapt(case.copy())  # in a vacuum box for a periodic-only model
    cutoff = float(model.tags.cutoff or WALK_CUTOFF)
    length = cutoff + WALK_MARGIN
    k, u, path = walk_path(atoms, length, ctx.profile.walk_step)
    n = len(path) - 1
    reference = model.fresh()
    if hasattr(model.calc, "reset"):
        model.calc.reset()
    worst: dict = {}
    fresh_first = fresh = None
    for s, position in enumerate(path):
        atoms.positions[k] = position
        raw = call_calculator(model, atoms, props)
        if s % WALK_EVERY and s != n:
            continue
        fresh = model.evaluate(atoms, props, calc=reference)
        fresh_first = fresh if fresh_first is None else fresh_first
        where = f"step {s} of {n} ({length * (1 - s / n):.3g} Å from the site)"
        for f in compare(fresh, raw, ctx.tol, len(atoms)):
            if f.name not in worst or f.ratio > worst[f.name].ratio:
                worst[f.name] = Field(f.name, f.error, f.tolerance, f.unit, where=where)
    atoms.calc = None
    fields = list(worst.values())
    moved = any(not f.ok for f in compare(fresh_first, fresh, ctx.tol, len(atoms)))
    note = (f"atom {k} ({atoms[k].symbol}) walked {length:.3g} Å in {n} steps of {length / n:.3g} Å, "
            f"compared with a fresh instance every {WALK_EVERY} steps; "
            + ("control: its approach changed the fresh results" if moved else
               "control: its approach did NOT change the fresh results (the walk tests nothing)"))
    body = (f"k, n, length = {k}, {n}, {length:.4g}\nu = np.array({np.round(u, 6).tolist()})\n"
            "site = atoms.positions[k].copy()\natoms.calc = calc\n"
            f"for s in range(n + 1):  # steps of ~{length / n:.2g} Å, below any skin/2\n"
            "    atoms.positions[k] = site + u * length * (1 - s / n)\n"
            "    f = atoms.get_forces()\n"
            "fresh = atoms.copy()\nfresh.calc = ...  # a new instance of the calculator\n"
            "print(np.abs(f - fresh.get_forces()).max())  # expect ~0")
    return Verdict(fields, what=f"a walk of atom {k} into {case.name} from {length:.3g} Å away",
                   note=note, reproducer=case_reproducer(case, ctx, body),
                   details={"atom": k, "steps": n, "step_A": length / n, "length_A": length,
                            "control_changed": moved})


# -- reuse across sizes and species ---------------------------------------------------------

def _other_structure(case, species: Sequence[str]) -> Atoms:
    """A small structure of a different size (and species where possible)."""
    present = set(case.atoms.get_chemical_symbols())
    other = [s for s in species if s not in present] or list(species)
    sym = other[-1]
    d = nearest_neighbour_distance(sym)
    n = 3 if len(case.atoms) == 2 else 2
    pos = [[0, 0, 0], [d, 0, 0], [0.5 * d, 0.9 * d, 0]][:n]
    return Atoms([sym] * n, positions=pos)


def _bigger_structure(case) -> Atoms:
    """The case doubled: a supercell along a periodic direction, or a second
    copy 20 Å away for isolated structures."""
    atoms = case.copy()
    if atoms.pbc.any():
        reps = [1, 1, 1]
        reps[int(np.flatnonzero(atoms.pbc)[0])] = 2
        return atoms.repeat(reps)
    far = atoms.copy()
    far.positions += [20.0 + np.ptp(atoms.positions[:, 0]), 0.0, 0.0]
    return atoms + far


@check(family="hygiene", needs={"forces"}, cases=ANY, calls="4 (on 2 fresh instances)", unit="eV/Å")
def size_reuse(model, case, ctx, rng):
    """One calculator instance evaluating structures of other sizes and species
    first gives the same result on the case as a fresh instance.

    The reused instance (``model.fresh()``) evaluates a small structure of
    another species, then the case doubled, then the case; a second fresh
    instance evaluates the case alone. Catches buffers sized on the first
    call, per-species tables built from the first structure and neighbour
    lists that are not rebuilt when the size changes.
    """
    props = hygiene_properties(model, case)
    species = list(model.tags.species) or sorted(set(case.atoms.get_chemical_symbols()))
    atoms = case.copy()
    small, big = _other_structure(case, species), _bigger_structure(case)
    reused = model.fresh()
    sequence = [small, big, atoms]
    for item in sequence:
        got = model.evaluate(item, props if item is atoms else
                             tuple(p for p in props if p != "stress" or item.pbc.all()), calc=reused)
    expected = model.evaluate(atoms, props, calc=model.fresh())
    fields = compare(expected, got, ctx.tol, len(atoms))
    if atoms.pbc.any():
        big_code = f"big = atoms.repeat({tuple(2 if i == np.flatnonzero(atoms.pbc)[0] else 1 for i in range(3))})"
    else:
        big_code = f"far = atoms.copy(); far.positions += [{20.0 + np.ptp(atoms.positions[:, 0]):.4f}, 0, 0]; big = atoms + far"
    steps = (f"{small.get_chemical_formula()} ({len(small)} atoms) → {big.get_chemical_formula()} "
             f"({len(big)} atoms) → {case.name}")
    body = ("from ase import Atoms\n"
            f"small = Atoms({small.get_chemical_symbols()!r}, positions={small.positions.round(4).tolist()})\n"
            f"{big_code}  # the case doubled\n"
            "for a in (small, big, atoms):\n    a.calc = calc\n    a.get_forces()\n"
            "reused = atoms.get_forces()\n"
            "fresh_calc = ...  # a new instance\natoms.calc = fresh_calc\n"
            "print(np.abs(reused - atoms.get_forces()).max())  # expect ~0")
    return Verdict(fields, what=f"instance reused for {steps} vs a fresh instance",
                   reproducer=case_reproducer(case, ctx, body))


# -- species support ------------------------------------------------------------------------

def declared_species(calc) -> list[str]:
    """Species the calculator itself declares (``calc.species``), or []."""
    species = getattr(calc, "species", None)
    if not species:
        return []
    return [chemical_symbols[s] if isinstance(s, (int, np.integer)) else str(s) for s in species]


def _lone_atom(sym: str) -> Atoms:
    atoms = Atoms(sym, positions=[[7.5, 7.5, 7.5]], cell=[15.0, 15.0, 15.0], pbc=False)
    return atoms


def _homonuclear_dimer(sym: str) -> Atoms:
    return scans.dimer(sym, sym, nearest_neighbour_distance(sym))


@check(family="hygiene", needs={"forces"}, cases={"dimer"},
       calls="2 × species + 1 (an undeclared species)", unit="species")
def species_support(model, case, ctx, rng):
    """Every declared species runs (a lone atom in a box and a homonuclear
    dimer); an undeclared species fails with an exception, not silent numbers.

    Tested species: those of the run plus those the calculator declares in a
    ``species`` attribute. A lone atom must feel no force. When the
    calculator declares its species, an element outside them (a noble gas)
    must raise; when it declares none, what happens is only reported. Runs
    once per model (on the dimer case).
    """
    props = tuple(p for p in ("energy", "forces") if p in model.tags.properties)
    declared = declared_species(model.calc)
    tested = list(dict.fromkeys(list(model.tags.species) + declared))
    failures, lone_force = [], 0.0
    for sym in tested:
        try:
            lone = model.evaluate(_lone_atom(sym), props)
            model.evaluate(_homonuclear_dimer(sym), props)
        except ModelError as exc:
            failures.append(f"{sym}: {exc}")
            continue
        lone_force = max(lone_force, float(np.abs(lone["forces"]).max()))
    probe = next(s for s in PROBE_SPECIES if s not in tested)
    z = atomic_numbers[probe]
    try:
        out = model.evaluate(_homonuclear_dimer(probe), props)
        outcome = f"returned numbers (E = {out.get('energy', float('nan')):.4g} eV)"
        silent = 1.0 if declared else 0.0
    except ModelError as exc:
        outcome = f"raised: {exc}"
        if probe not in str(exc) and str(z) not in str(exc):
            outcome += " (the message does not name the element)"
        silent = 0.0
    fields = [Field("declared species failing", float(len(failures)), 0.0, "species")]
    fields.append(Field("max |F| on a lone atom", lone_force, ctx.tol["force_atol"], "eV/Å"))
    if declared:
        fields.append(Field(f"undeclared species ({probe}) accepted silently", silent, 0.0, "species"))
    lines = [f"{len(failures)} of {len(tested)} species failed: " + "; ".join(failures)] if failures else []
    lines.append(f"{probe}2 (not declared) {outcome}" + ("" if declared else
                 " - the model declares no species (set `species` on the calculator to test this)"))
    what = f"species {', '.join(tested)} (lone atom and dimer each)"
    if failures:
        what = f"{', '.join(f.split(':')[0] for f in failures)}: " + failures[0].split(": ", 1)[1]
    body = ("from ase import Atoms\n"
            f"for sym in {tested!r}:  # declared species: each must run\n"
            "    a = Atoms(sym, positions=[[7.5, 7.5, 7.5]], cell=[15, 15, 15])\n"
            "    a.calc = calc\n    print(sym, a.get_potential_energy(), a.get_forces())\n"
            f"probe = Atoms('{probe}2', positions=[[0, 0, 0], [{nearest_neighbour_distance(probe):.4g}, 0, 0]])\n"
            "probe.calc = calc  # an undeclared species: should raise, not return numbers\n"
            "print(probe.get_potential_energy())")
    return Verdict(fields, what=what, note="\n".join(lines), reproducer=case_reproducer(case, ctx, body),
                   details={"tested": tested, "declared": declared, "failures": failures,
                            "probe": probe, "probe_outcome": outcome})


# -- input untouched ------------------------------------------------------------------------

def _decorated(case, rng) -> Atoms:
    """The case with everything ASE users attach: info, a custom array, tags,
    momenta and a constraint."""
    atoms = case.copy()
    n = len(atoms)
    atoms.info["mlip_probe"] = {"case": case.name, "value": 1.5}
    atoms.set_array("mlip_probe", np.arange(n, dtype=float))
    atoms.set_tags(np.arange(n) % 3)
    atoms.set_momenta(rng.normal(0.0, 0.1, (n, 3)))
    atoms.set_constraint(FixAtoms(indices=[0]))
    return atoms


def atoms_differences(before: Atoms, after: Atoms) -> tuple[float, float, list[str]]:
    """(max |Δr| Å, max |Δcell| Å, names of other changed attributes)."""
    changed = []
    if len(before) != len(after):
        return np.inf, 0.0, ["number of atoms"]
    dr = float(np.abs(after.positions - before.positions).max()) if len(before) else 0.0
    dcell = float(np.abs(after.cell.array - before.cell.array).max())
    if not np.array_equal(after.numbers, before.numbers):
        changed.append("numbers")
    if not np.array_equal(after.pbc, before.pbc):
        changed.append("pbc")
    if after.info != before.info:
        changed.append("info")
    keys_b, keys_a = set(before.arrays), set(after.arrays)
    for key in sorted(keys_a ^ keys_b):
        changed.append(f"arrays[{key!r}] {'added' if key in keys_a else 'removed'}")
    for key in sorted((keys_a & keys_b) - {"positions", "numbers"}):
        if not np.array_equal(after.arrays[key], before.arrays[key]):
            changed.append(f"arrays[{key!r}]")
    if [c.todict() for c in after.constraints] != [c.todict() for c in before.constraints]:
        changed.append("constraints")
    return dr, dcell, changed


@check(family="hygiene", needs={"forces"}, cases=ANY, calls="1", unit="Å")
def input_untouched(model, case, ctx, rng):
    """The calculator does not modify the Atoms it is given: positions, numbers,
    cell, pbc, info, arrays (tags, momenta, custom) and constraints.

    Evaluated the way ASE users do (``atoms.calc = calc``,
    ``atoms.get_forces()``) on the case decorated with info, a custom array,
    tags, momenta and a FixAtoms constraint. Catches models that wrap,
    centre, sort or retype the caller's structure in place.
    """
    props = hygiene_properties(model, case)
    atoms = _decorated(case, rng)
    if model.adapt(atoms) is not atoms:  # a periodic-only model: the boxed structure is the input
        boxed = model.adapt(atoms)
        boxed.constraints = atoms.constraints
        atoms = boxed
    before = atoms.copy()
    if hasattr(model.calc, "reset"):  # so the call computes instead of answering from a cache
        model.calc.reset()
    call_calculator(model, atoms, props)
    atoms.calc = None
    dr, dcell, changed = atoms_differences(before, atoms)
    fields = [Field("max |Δr| of the input", dr, 0.0, "Å"), Field("max |Δcell| of the input", dcell, 0.0, "Å"),
              Field("other attributes changed", float(len(changed)), 0.0, "")]
    names = (["positions"] if dr > 0 else []) + (["cell"] if dcell > 0 else []) + changed
    what = (f"{case.name}: the model modified {', '.join(names)} of the caller's Atoms" if names
            else f"{case.name} with info, arrays, tags, momenta and a constraint")
    body = ("atoms.info['x'] = 1\nbefore = atoms.copy()\natoms.calc = calc\natoms.get_forces()\n"
            "print(np.abs(atoms.positions - before.positions).max(), atoms.info == before.info)"
            "  # expect 0.0 True")
    return Verdict(fields, what=what, reproducer=case_reproducer(case, ctx, body),
                   details={"changed": names})


# -- thread safety --------------------------------------------------------------------------

def _thread_call(calc, atoms: Atoms, props: Sequence[str]) -> dict:
    """One evaluation in a worker thread: reset, copy, validate (no time limit:
    SIGALRM only works in the main thread; the join below bounds the time)."""
    work = atoms.copy()
    if hasattr(calc, "reset"):
        calc.reset()
    raw = {p: calc.get_property(p, work) for p in props}
    return validate(raw, len(work))


@check(family="hygiene", needs={"forces"}, cases={"cluster", "bulk", "alloy"},
       requires=lambda tags: None if tags.thread_safe else "model declares thread_safe=False",
       calls=f"{THREADS} + {THREADS} threads × {THREAD_ROUNDS} rounds", unit="eV/Å")
def thread_safety(model, case, ctx, rng):
    """Separate calculator instances evaluated concurrently in threads give the
    same results as sequentially.

    Two fresh instances evaluate the case and a rattled copy, first one after
    the other, then at the same time from two threads (four rounds, started
    together), within the shared tolerances (round-off is ``determinism``'s
    business). Catches module-level buffers, global caches and
    non-reentrant libraries shared between instances. Skipped when the model
    declares ``thread_safe=False``.
    """
    props = hygiene_properties(model, case)
    structures = [model.adapt(case.copy()), model.adapt(_rattled(case.copy(), rng, 0.05))]
    instances = [model.fresh() for _ in range(THREADS)]
    reference = [model.evaluate(structures[k % 2], props, calc=instances[k]) for k in range(THREADS)]
    results: list[list] = [[] for _ in range(THREADS)]
    errors: list[str] = []
    barrier = threading.Barrier(THREADS)

    def work(k):
        try:
            for _ in range(THREAD_ROUNDS):
                barrier.wait(timeout=limit)  # every round starts together
                results[k].append(_thread_call(instances[k], structures[k % 2], props))
        except threading.BrokenBarrierError:
            pass  # another thread failed (reported by it) or timed out
        except Exception as exc:
            errors.append(f"thread {k}: {type(exc).__name__}: {exc}")
            barrier.abort()

    limit = (model.timeout or 60.0) * THREAD_ROUNDS + 30.0
    threads = [threading.Thread(target=work, args=(k,), daemon=True, name=f"mlip-thread-{k}")
               for k in range(THREADS)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads often: races show up in a few rounds
    t0 = time.perf_counter()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(limit - (time.perf_counter() - t0), 0.1))
    finally:
        sys.setswitchinterval(interval)
        model.calc_seconds += time.perf_counter() - t0
    model.n_calls += sum(len(r) for r in results) + len(errors)
    if any(t.is_alive() for t in threads):
        barrier.abort()
        raise ModelError(f"concurrent evaluation did not finish within {limit:g} s (deadlock?)")
    fields = []
    for k in range(THREADS):
        worst = None
        for got in results[k]:
            fs = compare(reference[k], got, ctx.tol, len(structures[k % 2]), prefix=f"thread {k}: ")
            if worst is None or max(f.ratio for f in fs) > max(f.ratio for f in worst):
                worst = fs
        fields.extend(worst or [])
    fields.append(Field("exceptions in threads", float(len(errors)), 0.0, ""))
    note = ("; ".join(errors) + "\n" if errors else "") + \
        f"{THREADS} instances × {THREAD_ROUNDS} rounds on {case.name} and a rattled copy"
    body = ("import threading\ncalcs = [..., ...]  # two new instances\n"
            "b = atoms.copy(); b.positions += np.random.default_rng(0).normal(0, 0.05, b.positions.shape)\n"
            "out = {}\ndef run(k, a):\n    a = a.copy(); a.calc = calcs[k]\n"
            "    out[k] = [a.get_forces() + 0 for _ in range(4)]\n"
            "ts = [threading.Thread(target=run, args=(0, atoms)), threading.Thread(target=run, args=(1, b))]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\n"
            "a = atoms.copy(); a.calc = calcs[0]\n"
            "print(max(np.abs(f - a.get_forces()).max() for f in out[0]))  # expect 0")
    return Verdict(fields, what=f"{THREADS} threads on {case.name}", note=note,
                   reproducer=case_reproducer(case, ctx, body))


# -- memory growth --------------------------------------------------------------------------

def resident_bytes() -> int:
    """Resident set size of this process (bytes), from /proc/self/statm, else
    the peak RSS from ``resource`` (a coarser upper bound)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):  # pragma: no cover
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


def _memory_reading() -> tuple[int, int]:
    """(traced Python bytes, resident bytes) after collecting the young garbage: the
    garbage of a few calls is young, and a full collection of a large process
    (pandas, torch) costs ~0.1 s."""
    gc.collect(1)
    return tracemalloc.get_traced_memory()[0], resident_bytes()


@check(family="hygiene", needs={"forces"}, cases={"dimer"},
       calls=f"{WARMUP_CALLS} + {MEMORY_CALLS}", unit="B/call")
def memory_growth(model, case, ctx, rng):
    """Repeated evaluation does not grow memory: Python memory retained per
    call (tracemalloc) and resident memory (RSS) per call, after warm-up.

    {warmup} warm-up calls (lazy initialisation, caches), then {calls} calls on
    a small structure with tracemalloc on, read after the first {traced} and at
    the middle and end of the rest: the growth per call of the smaller half is
    judged, so a bounded cache filling up is not a leak. Catches histories of
    structures or results kept on the calculator, caches without bound and
    native leaks.
    """
    n_calls = ctx.profile.memory_calls
    props = tuple(p for p in ("energy", "forces") if p in model.tags.properties)
    atoms = case.copy()
    for _ in range(WARMUP_CALLS):
        model.evaluate(atoms, props)
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        for _ in range(TRACED_WARMUP):  # allocations made once after tracing starts
            model.evaluate(atoms, props)
        readings = [_memory_reading()]
        measured = n_calls - TRACED_WARMUP
        halves = (measured // 2, measured - measured // 2)
        for n in halves:
            for _ in range(n):
                model.evaluate(atoms, props)
            readings.append(_memory_reading())
    finally:
        if not was_tracing:
            tracemalloc.stop()
    (traced0, rss0), (traced_mid, rss_mid), (traced1, rss1) = readings
    # a leak grows in both halves; a cache filling up, or a one-off allocation, in one only
    per_traced = min((traced_mid - traced0) / halves[0], (traced1 - traced_mid) / halves[1])
    per_rss = min((rss_mid - rss0) / halves[0], (rss1 - rss_mid) / halves[1])
    fields = [Field("Python memory retained per call", max(per_traced, 0.0),
                    ctx.tol["memory_growth_traced"], "B/call"),
              Field("RSS growth per call", max(per_rss, 0.0), ctx.tol["memory_growth_rss"], "B/call")]
    note = (f"over {measured} calls: +{(traced1 - traced0) / 1024:.1f} KiB traced "
            f"(+{(traced_mid - traced0) / 1024:.1f} in the first half, "
            f"+{(traced1 - traced_mid) / 1024:.1f} in the second), {(rss1 - rss0) / 2**20:+.2f} MiB RSS; "
            "the smaller half's growth per call is judged")
    body = ("import tracemalloc\natoms.calc = calc\ntracemalloc.start()\n"
            f"for _ in range({n_calls}):\n    calc.reset(); atoms.get_forces()\n"
            f"print(tracemalloc.get_traced_memory()[0] / {n_calls}, 'B/call')  # expect < 1 kB")
    return Verdict(fields, what=f"{n_calls} calls on {case.name}", note=note,
                   reproducer=case_reproducer(case, ctx, body))


memory_growth.__doc__ = memory_growth.__doc__.format(warmup=WARMUP_CALLS, calls=MEMORY_CALLS,
                                                     traced=TRACED_WARMUP)


# -- output sanity --------------------------------------------------------------------------

def dimer_scan(evaluate, a: str, b: str, distances: np.ndarray, far: float) -> dict:
    """Energies and bond forces (on atom b, along the bond) of a dimer scan.

    Returns dict with ``d`` (Å), ``energy`` (eV), ``force`` (eV/Å), ``e_far``,
    ``r_min`` (parabola through the lowest grid point and its neighbours),
    ``e_min`` and ``binding`` = e_far - e_min (eV).
    """
    outs = [evaluate(scans.dimer(a, b, d)) for d in distances]
    energy = np.array([o["energy"] for o in outs])
    force = np.array([o["forces"][1, 0] for o in outs])
    e_far = evaluate(scans.dimer(a, b, far))["energy"]
    i = int(np.argmin(energy))
    r_min, e_min = float(distances[i]), float(energy[i])
    if 0 < i < len(distances) - 1:  # parabola through three points
        x, y = distances[i - 1:i + 2], energy[i - 1:i + 2]
        c = np.polyfit(x, y, 2)
        if c[0] > 0:
            r_min = float(np.clip(-c[1] / (2 * c[0]), x[0], x[2]))
            e_min = float(min(np.polyval(c, r_min), energy[i]))
    return {"d": distances, "energy": energy, "force": force, "e_far": float(e_far),
            "r_min": r_min, "e_min": e_min, "binding": float(e_far - e_min)}


def unit_hint(ratio: float) -> str:
    """Name the unit conversion a ratio is close to (within 3 %), or ''."""
    for name, factor in UNIT_FACTORS.items():
        for value, label in ((factor, name), (1 / factor, f"1/({name})")):
            if abs(ratio / value - 1) < 0.03:
                return f" ≈ {label}: mixed units?"
    return ""


@check(family="hygiene", needs={"energy", "forces"}, cases={"dimer"},
       calls="18 (dimer scan) + 1 per extra property (energies, stress)", unit="1")
def output_sanity(model, case, ctx, rng):
    """Outputs are finite, shaped and signed as in ASE and in plausible units:
    the dimer's equilibrium distance and binding energy lie in a wide physical
    window and forces match the slope of the energy.

    A coarse scan of the case's dimer from 0.4 to 2.5 × the sum of covalent
    radii (ase.data.covalent_radii): r_min within [1/2, 2] × Σr_cov, binding
    energy E(∞) - E(r_min) within [5e-5, 15] eV, and the force on an atom
    equal to -dE/dr from a ±1e-3 Å difference (5 %), which exposes Hartree,
    Bohr, Rydberg or kcal/mol mix-ups between energies and forces. Shapes
    ((N, 3) forces, 6-Voigt or symmetric 3×3 stress) and finiteness are
    checked on every call; per-atom energies, when implemented, must sum to
    the energy. Runs once per model (on the dimer case).
    """
    a, b = case.atoms.get_chemical_symbols()[:2]
    rcov = float(covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]])
    props = ("energy", "forces")
    evaluate = lambda at: model.evaluate(at, props)  # noqa: E731
    scan = dimer_scan(evaluate, a, b, rcov * SCAN_FACTORS, max(4 * rcov, 12.0))
    fields = []
    f = ctx.tol["dimer_rmin_factor"]
    fields.append(Field("dimer r_min / Σr_cov", scan["r_min"] / rcov, f, ""))
    fields.append(Field("Σr_cov / dimer r_min", rcov / scan["r_min"], f, ""))
    e_b = scan["binding"]
    fields.append(Field("dimer binding energy", e_b, ctx.tol["dimer_binding_max"], "eV"))
    floor = ctx.tol["dimer_binding_min"]
    fields.append(Field(f"{floor:g} eV / binding energy", floor / e_b if e_b > 0 else np.inf, 1.0, ""))
    lowest = int(np.argmin(scan["energy"]))
    if lowest == 0:  # no well to read units from: a short-range hole, dimer_curve's finding
        fields = [dataclasses.replace(f, severity="informational") for f in fields]
    # units: the force at a point on the repulsive side against -dE/dr
    ok = scan["d"] >= 0.7 * scan["r_min"]
    j = int(np.flatnonzero(ok)[np.argmax(np.abs(scan["force"][ok]))])
    d1, delta = float(scan["d"][j]), 1e-3
    slope = -(evaluate(scans.dimer(a, b, d1 + delta))["energy"]
              - evaluate(scans.dimer(a, b, d1 - delta))["energy"]) / (2 * delta)
    ratio = scan["force"][j] / slope if slope != 0 else np.inf
    fields.append(Field("|F / (-dE/dr) - 1| on the dimer", abs(ratio - 1), ctx.tol["units_ratio_rtol"],
                        "", f"r = {d1:.3g} Å"))
    notes = [f"{a}-{b}: r_min = {scan['r_min']:.3g} Å (Σr_cov = {rcov:.3g} Å), binding energy "
             f"{e_b:.4g} eV, F / (-dE/dr) = {ratio:.4g}{unit_hint(ratio)}"]
    if lowest == 0:
        notes.append(f"the energy keeps falling down to the shortest distance scanned "
                     f"({scan['d'][0]:.3g} Å, E = {scan['energy'][0]:.4g} eV): no repulsive wall "
                     "(a short-range hole), not a unit mix-up: without a well the distance and "
                     "binding windows say nothing about units (reported, not failed here; "
                     "dimer_curve judges the hole)")
    elif lowest == len(scan["d"]) - 1:
        notes.append(f"the energy keeps falling up to the longest distance scanned ({scan['d'][-1]:.3g} Å)")
    if 0 < e_b < floor:
        notes.append(f"binding energy × 27.2 = {e_b * 27.211:.3g} eV would be plausible: energies in Hartree?")
    if "energies" in model.tags.properties:
        out = model.evaluate(scans.dimer(a, b, scan["r_min"]), ("energy", "energies"))
        fields.append(Field("|Σ energies - energy|", abs(float(out["energies"].sum()) - out["energy"]),
                            ctx.tol["energy_atol"] * 2, "eV"))
    if model.tags.has_stress:
        fields.extend(_stress_shape_fields(model, a, ctx))
    body = ("from ase import Atoms\nfrom ase.data import covalent_radii, atomic_numbers\n"
            f"r = (covalent_radii[atomic_numbers[{a!r}]] + covalent_radii[atomic_numbers[{b!r}]]) "
            "* np.geomspace(0.4, 2.5, 15)\n"
            f"E = [Atoms([{a!r}, {b!r}], positions=[[0, 0, 0], [d, 0, 0]], calculator=calc)"
            ".get_potential_energy() for d in r]\nprint(r[np.argmin(E)], E)")
    return Verdict(fields, what=f"{a}-{b} dimer scan ({len(scan['d'])} points)", note="\n".join(notes),
                   reproducer=case_reproducer(case, ctx, body),
                   details={"d": scan["d"], "energy": scan["energy"], "force": scan["force"],
                            "r_min": scan["r_min"], "binding": e_b, "force_slope_ratio": ratio})


def _stress_shape_fields(model, symbol: str, ctx) -> list[Field]:
    """Raw stress of a small periodic crystal: (6,) Voigt or symmetric (3, 3)."""
    from ase.build import bulk

    try:
        atoms = bulk(symbol)
    except Exception:  # no reference crystal: a simple cubic cell
        atoms = Atoms(symbol, cell=[3.0, 3.0, 3.0], pbc=True)
    calc = model.calc
    try:
        with model.calling(atoms, how=", raw stress"):
            if hasattr(calc, "reset"):
                calc.reset()
            raw = np.asarray(calc.get_property("stress", atoms.copy()), dtype=float)
    except MissingProperty:
        return []
    validate({"stress": raw}, len(atoms))  # shape (6,) or (3, 3), finite
    if raw.shape == (3, 3):
        asym = float(np.abs(raw - raw.T).max())
        return [Field("stress asymmetry |σ - σᵀ| (3×3 form)", asym,
                      ctx.tol["stress_atol"] + ctx.tol["stress_rtol"] * float(np.abs(raw).max()), "eV/Å³")]
    return []

