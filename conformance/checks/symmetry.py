"""Symmetry family: permutation, translation, rotation, inversion, periodic images.

Every check evaluates the case once as reference, applies symmetry operations
drawn from hypothesis strategies (seeded; a violation is shrunk to a minimal
operation), and compares energy, forces (N, 3) and stress with the reference
mapped through the operation. Transforms are computed in float64.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..toolkit import strategies as strat
from ..toolkit import transforms as tf
from ..core.model import Skip
from ..core.registry import check
from ..core.result import Field, Verdict
from ..core.tolerances import define
from ..core.cases import ANY, PERIODIC
from ..toolkit.noise import Noise, noise_floor
from ._compare import case_reproducer, compare, properties_for

COMPARE = "\n# evaluate both structures with calc and compare energy, mapped forces and stress"


def _reproducer(case, ctx, line: str) -> str:
    return case_reproducer(case, ctx, line + COMPARE)


def _search_verdict(model, case, ctx, rng, strategy, apply: Callable, label: str,
                    reproduce: Callable, ref: dict | None = None) -> Verdict:
    """Reference evaluation, then a hypothesis search over ``strategy``.

    ``apply(example, atoms, reference) -> (atoms2, expected)`` builds the
    transformed structure and the reference properties mapped through the
    operation; ``reproduce(example) -> str`` is a line of Python.
    """
    props = properties_for(model, case)
    atoms = case.copy()
    if ref is None:
        ref = model.evaluate(atoms, props)
    noise = noise_floor(model, case, props)

    def measure(example):
        new_atoms, expected = apply(example, atoms, ref)
        return compare(expected, model.evaluate(new_atoms, props), ctx.tol, len(atoms), noise=noise)

    outcome = strat.search(strategy, measure, seed=int(rng.integers(2**32)), examples=ctx.config.examples)
    details = {"examples_tried": outcome.examples_tried, "noise_floor": noise.as_dict()}
    note = noise.describe() if noise.measured else ""
    if outcome.failure is not None:
        example, fields = outcome.failure
        return Verdict(fields, what=f"{example} on {case.name}", note=note,
                       reproducer=_reproducer(case, ctx, reproduce(example)),
                       details=dict(details, example=str(example)))
    return Verdict(list(outcome.worst.values()), note=note,
                   what=f"{outcome.examples_tried} random {label} of {case.name}", details=details)


@check(family="symmetry", cases=ANY, calls="1 + examples (≤ 25 more to shrink a failure)", unit="eV/Å")
def permutation_invariance(model, case, ctx, rng):
    """Energy is unchanged and forces (and stress) follow when atoms are relabelled.

    Two kinds of relabelling: swapping atoms of the same species (same
    structure, new order), and reordering the whole list with the species
    travelling with their atoms. Controls: the permutation is never the
    identity.
    """
    numbers = case.atoms.numbers
    if len(numbers) < 2:
        raise Skip("a single atom has no permutation")
    options = [strat.permutations(numbers, same_species=False)]
    try:
        options.insert(0, strat.permutations(numbers, same_species=True))
    except ValueError:  # no species with two atoms
        pass

    def apply(order, atoms, ref):
        order = np.asarray(order)
        expected = dict(ref, forces=ref["forces"][order])
        return tf.permute(atoms, order), expected

    return _search_verdict(model, case, ctx, rng, strat.one_of(*options), apply, "permutations",
                           lambda order: f"atoms2 = transforms.permute(atoms, {list(order)})")


@check(family="symmetry", cases=ANY, calls="1 + examples (+1 periodic) (≤ 25 more to shrink a failure)",
       unit="eV/Å")
def translation_invariance(model, case, ctx, rng):
    """Energy, forces and stress are unchanged by a rigid translation.

    Isolated cases: random vectors up to 10 Å. Periodic cases: random vectors,
    with and without wrapping the atoms back into the cell, plus moving
    individual atoms by random integer lattice vectors (same crystal).
    """
    def apply(example, atoms, ref):
        vector, wrap = example
        moved = tf.translate(atoms, vector)
        return (tf.wrap(moved) if wrap else moved), ref

    def reproduce(example):
        vector, wrap = example
        line = f"atoms2 = transforms.translate(atoms, {list(vector)})"
        return line + ("\natoms2 = transforms.wrap(atoms2)" if wrap else "")

    atoms = case.copy()
    props = properties_for(model, case)
    ref = model.evaluate(atoms, props)
    verdict = _search_verdict(model, case, ctx, rng, strat.translations(10.0, wrap=case.periodic), apply,
                              "translations", reproduce, ref)
    if case.periodic and not any(not f.ok for f in verdict.fields):
        shifts = rng.integers(-2, 3, size=(len(atoms), 3)) * atoms.pbc
        fields = compare(ref, model.evaluate(tf.lattice_shift(atoms, shifts), props), ctx.tol,
                         len(atoms), prefix="lattice-shifted ", noise=noise_floor(model, case, props))
        verdict.fields.extend(fields)
        if any(not f.ok for f in fields):
            verdict.what = f"atoms moved by integer lattice vectors on {case.name}"
            verdict.reproducer = _reproducer(case, ctx, "atoms2 = transforms.lattice_shift(atoms, "
                                             f"{shifts.tolist()})")
    return verdict


LARGE_OFFSET = np.array([700.3, -500.1, 499.7])  # Å, |v| ≈ 990 Å
STIFFNESS_STEP = 0.01  # Å per component, displacement that measures the force constant

define("offset_precision_factor", "1", 2.0, 2.0,
       "multiple of ε × |offset| × K allowed for the force change of large_offset, where ε is "
       "the model precision's machine epsilon (float32 1.2e-7) and K (eV/Å²) the largest force "
       "change per Å measured on the case: a model storing absolute coordinates in its precision "
       "rounds each of two atoms' positions by up to ε|x|/2, so an honest model errs by "
       "<= ε|x|K; errors growing faster than the offset (e.g. |x|² cancellations) still fail")


def scaled_noise(noise: Noise, n: int) -> Noise:
    """The noise floor of an n-fold supercell: energy noise grows like n, forces stay."""
    return Noise(noise.energy * n, noise.forces, noise.stress, noise.measured, noise.resolution * n)


def sensitivity(model, atoms, props, ref, rng) -> dict:
    """Change per Å of each compared field (``|ΔE|`` eV/Å, ``max |ΔF|`` eV/Å²,
    ``max |Δσ|`` eV/Å³/Å) under a random displacement of every atom by at most
    STIFFNESS_STEP per component (1 model call)."""
    moved = atoms.copy()
    step = rng.uniform(-STIFFNESS_STEP, STIFFNESS_STEP, moved.positions.shape)
    moved.positions = moved.positions + step
    fields = compare(ref, model.evaluate(moved, props), {"energy_atol": 0, "force_atol": 0, "force_rtol": 0,
                                                         "stress_atol": 0, "stress_rtol": 0,
                                                         "noise_factor": 0}, len(atoms))
    return {f.name: f.error / float(np.abs(step).max()) for f in fields}


@check(family="symmetry", cases=ANY, calls="2 (float32: 4: + a displaced copy + a 10× smaller offset)",
       unit="eV/Å")
def large_offset(model, case, ctx, rng):
    """Energy, forces and stress are unchanged when the structure sits ~1000 Å
    from the origin, within what the model's precision allows there.

    Catches models that compute in absolute coordinates at low precision. A
    float32 coordinate at 1000 Å is only resolved to 6e-5 Å: a float32 model is
    allowed ``offset_precision_factor`` × ε × |offset| × (the field's change per Å
    of displacement, measured on the case) on every field, and the report gives
    the offset at which its force error crosses the offset-free tolerance (from
    a second offset 10× smaller; informational). Float64 models are held to the
    table.
    """
    atoms = case.copy()
    props = properties_for(model, case)
    ref = model.evaluate(atoms, props)
    noise = noise_floor(model, case, props)
    got = model.evaluate(tf.translate(atoms, LARGE_OFFSET), props)
    fields = compare(ref, got, ctx.tol, len(atoms), noise=noise)
    what = f"translation by {LARGE_OFFSET.tolist()} Å of {case.name}"
    reproducer = _reproducer(case, ctx, f"atoms2 = transforms.translate(atoms, {LARGE_OFFSET.tolist()})")
    details = {"noise_floor": noise.as_dict()}
    if model.tags.precision != "float32":
        return Verdict(fields, what=what, reproducer=reproducer, details=details)
    eps = float(np.finfo(np.float32).eps)
    offset = float(np.linalg.norm(LARGE_OFFSET))
    per_angstrom = sensitivity(model, atoms, props, ref, rng)
    allowance = {name: ctx.tol["offset_precision_factor"] * eps * offset * k for name, k in per_angstrom.items()}
    err = {f.name: f for f in fields}["max |ΔF|"]
    near = compare(ref, model.evaluate(tf.translate(atoms, LARGE_OFFSET / 10), props), ctx.tol, len(atoms),
                   noise=noise)
    err_near = {f.name: f for f in near}["max |ΔF|"].error
    growth = float(np.log10(err.error / err_near)) if err.error > 0 and err_near > 0 else 1.0
    crossing = offset * (err.tolerance / err.error) ** (1 / max(growth, 0.1)) if err.error > err.tolerance \
        else None
    loss = Field("max |ΔF| from float32 absolute coordinates", err.error, err.tolerance, "eV/Å",
                 f"~{crossing:.3g} Å from the origin, where it crosses the offset-free tolerance" if crossing
                 else "", severity="informational")
    judged = [Field(f.name, f.error, f.tolerance + allowance[f.name], f.unit, f.where) for f in fields]
    note = (f"float32 precision at {offset:.0f} Å: ε|x| = {eps * offset:.2g} Å; allowances "
            + ", ".join(f"{name} {a:.2g}" for name, a in allowance.items())
            + f"; |ΔF| = {err_near:.2g} eV/Å at {offset / 10:.0f} Å and {err.error:.2g} eV/Å at "
              f"{offset:.0f} Å (growth ∝ offset^{growth:.2f}); {noise.describe()}")
    if any(not f.ok for f in judged):
        note += ("\nthe error exceeds what float32 rounding of absolute coordinates explains: the model "
                 "loses more than the precision of its positions far from the origin")
    details.update(sensitivity=per_angstrom, allowance=allowance, error_near=err_near, growth_exponent=growth,
                   crossing_offset=crossing)
    return Verdict(judged + [loss], what=what, note=note, reproducer=reproducer, details=details)


@check(family="symmetry", cases=PERIODIC, calls="2", unit="eV/Å", severity="consistency")
def left_handed_cell(model, case, ctx, rng):
    """The same crystal given with a left-handed cell matrix (lattice vectors -a,
    -b, -c: same lattice, det < 0) has the same energy, forces and stress.

    Improper symmetry operations and some file formats produce left-handed
    cells; a model that takes det(cell) as the volume or builds its neighbour
    search on a right-handed basis gets a wrong stress (seen: CHGNet 0.4.2, by
    0.04-1 eV/Å³) or wrong energies there.
    """
    atoms = case.copy()
    if atoms.cell.rank < 3:
        raise Skip("no full cell to reorient")
    props = properties_for(model, case)
    ref = model.evaluate(atoms, props)
    got = model.evaluate(tf.left_handed(atoms), props)
    fields = compare(ref, got, ctx.tol, len(atoms), noise=noise_floor(model, case, props))
    note = ""
    if any(not f.ok for f in fields):
        note = ("the model's outputs depend on the handedness of the cell matrix, not only on the "
                "crystal: it takes det(cell) (negative here) as the volume, or its neighbour search "
                "assumes a right-handed basis")
    return Verdict(fields, what=f"cell -a, -b, -c (det {np.linalg.det(-atoms.cell.array):.4g} Å³) of {case.name}",
                   note=note, reproducer=_reproducer(case, ctx, "atoms2 = transforms.left_handed(atoms)"))


def _rotated_reference(matrix, ref):
    expected = dict(ref, forces=tf.rotate_forces(ref["forces"], matrix))
    if "stress" in ref:
        expected["stress"] = tf.rotate_stress(ref["stress"], matrix)
    return expected


@check(family="symmetry", cases=ANY, calls="1 + examples (≤ 25 more to shrink a failure)", unit="eV/Å")
def rotation_invariance(model, case, ctx, rng):
    """Energy is invariant, forces rotate as vectors and stress as R σ Rᵀ under
    proper rotations.

    Rotations about the origin by 5°-180° about random axes; periodic cells are
    rotated together with their atoms.
    """
    def apply(rotation, atoms, ref):
        return tf.rotate(atoms, rotation.matrix), _rotated_reference(rotation.matrix, ref)

    return _search_verdict(model, case, ctx, rng, strat.rotations(), apply, "rotations",
                           lambda r: f"atoms2 = transforms.rotate(atoms, {r.code()})")


@check(family="symmetry", cases=ANY, calls="2 × examples (≤ 25 more to shrink a failure)",
       unit="eV/Å")
def inversion_invariance(model, case, ctx, rng):
    """Energy is invariant and forces/stress transform correctly under improper
    operations (inversion, mirrors, rotoinversions).

    An improper operation M = -R is compared with the proper rotation R of the
    same structure, so this check isolates parity: a model that breaks only
    rotations does not fail here, a chirality-sensitive (pseudoscalar) term
    does.
    """
    props = properties_for(model, case)
    atoms = case.copy()
    noise = noise_floor(model, case, props)

    def measure(op):
        proper = -op.matrix  # det = +1
        ref = model.evaluate(tf.rotate(atoms, proper), props)
        got = model.evaluate(tf.right_handed(tf.rotate(atoms, op.matrix)), props)
        return compare(_rotated_reference(-np.eye(3), ref), got, ctx.tol, len(atoms), noise=noise)

    outcome = strat.search(strat.improper_rotations(), measure, seed=int(rng.integers(2**32)),
                           examples=ctx.config.examples)
    details = {"examples_tried": outcome.examples_tried, "noise_floor": noise.as_dict()}
    note = noise.describe() if noise.measured else ""
    if outcome.failure is not None:
        op, fields = outcome.failure
        code = op.code()
        note = ("not parity-equivariant: the mirror image of the structure gets other energies or "
                "forces than the structure itself, while the comparison is made with the proper "
                "rotation -M (so a model that only breaks rotations does not fail here); a model "
                "built without parity (e.g. SE(3)- but not E(3)-equivariant features, SevenNet's "
                "is_parity=False) shows this" + (f"\n{note}" if note else ""))
        return Verdict(fields, what=f"{op} (compared with the proper rotation -M) on {case.name}",
                       note=note,
                       reproducer=_reproducer(case, ctx, f"M = {code}\natoms_improper = transforms.right_handed("
                                              "transforms.rotate(atoms, M))\natoms_proper = "
                                              "transforms.rotate(atoms, -M)"),
                       details=dict(details, example=str(op)))
    return Verdict(list(outcome.worst.values()), note=note,
                   what=f"{outcome.examples_tried} improper operations of {case.name}", details=details)


def supercell_reps(case) -> tuple:
    """2 along every periodic direction, or along the shortest one for big cells."""
    pbc = case.atoms.pbc
    if len(case.atoms) * 2 ** int(pbc.sum()) <= 300:
        return tuple(2 if p else 1 for p in pbc)
    lengths = np.where(pbc, case.atoms.cell.lengths(), np.inf)
    return tuple(2 if i == int(np.argmin(lengths)) else 1 for i in range(3))


@check(family="symmetry", cases=PERIODIC, calls="2", unit="eV/Å")
def supercell_consistency(model, case, ctx, rng):
    """An n×m×k supercell has n·m·k times the energy, the same forces on every
    image of an atom, and the same stress.

    Repeats along the periodic directions only (bulk, slab, wire), including
    cells shorter than the cutoff, where minimum-image bugs show.
    """
    atoms = case.copy()
    props = properties_for(model, case)
    reps = supercell_reps(case)
    n = int(np.prod(reps))
    ref = model.evaluate(atoms, props)
    got = model.evaluate(tf.supercell(atoms, reps), props)
    expected = dict(ref, energy=n * ref["energy"], forces=np.tile(ref["forces"], (n, 1)))
    noise = noise_floor(model, case, props)
    return Verdict(compare(expected, got, ctx.tol, n * len(atoms), noise=scaled_noise(noise, n)),
                   what=f"{'×'.join(map(str, reps))} supercell of {case.name}",
                   reproducer=_reproducer(case, ctx, f"atoms2 = transforms.supercell(atoms, {reps})"
                                          f"  # expect {n}× the energy"))


def unimodular_matrix(pbc, rng) -> np.ndarray:
    """A random integer basis change with det +1 that only mixes periodic directions
    (handedness is :func:`left_handed_cell`'s subject, not this check's).

    With one periodic direction the only choice is reversing it, together with
    a non-periodic vector (det +1); otherwise a product of shears a_i += ±a_j
    (|coefficients| ≤ 1 per step, 2 steps).
    """
    periodic = np.flatnonzero(pbc)
    m = np.eye(3, dtype=int)
    if len(periodic) == 1:
        free = int(np.flatnonzero(~np.asarray(pbc))[0])
        m[periodic[0], periodic[0]] = m[free, free] = -1
        return m
    for _ in range(2):
        i, j = rng.choice(periodic, size=2, replace=False)
        shear = np.eye(3, dtype=int)
        shear[i, j] = rng.choice([-1, 1])
        m = shear @ m
    return m


@check(family="symmetry", cases=PERIODIC, calls="2", unit="eV/Å")
def cell_basis_invariance(model, case, ctx, rng):
    """The same crystal described by another cell basis (a unimodular integer
    transformation of the lattice vectors, e.g. a sheared but equivalent cell)
    has the same energy, forces and stress.

    Atoms are wrapped into the new cell, so positions are listed differently.
    Catches neighbour searches that assume a fixed image range.
    """
    atoms = case.copy()
    props = properties_for(model, case)
    m = unimodular_matrix(atoms.pbc, rng)
    ref = model.evaluate(atoms, props)
    got = model.evaluate(tf.change_basis(atoms, m), props)
    return Verdict(compare(ref, got, ctx.tol, len(atoms), noise=noise_floor(model, case, props)),
                   what=f"cell basis {m.tolist()} @ cell of {case.name}",
                   reproducer=_reproducer(case, ctx, f"atoms2 = transforms.change_basis(atoms, "
                                          f"np.array({m.tolist()}))"))
