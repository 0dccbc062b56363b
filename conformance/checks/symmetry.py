"""Symmetry family: permutation, translation, rotation, inversion, periodic images.

Each check declares its operation on the Atoms (drawn from a hypothesis
strategy where it is random: seeded, a violation shrunk to a minimal
operation) and how the outputs transform with it, as an :class:`Image`; the
engine (:mod:`._equivariance`) evaluates both structures, maps the reference
outputs and compares energy, forces (N, 3) and stress with the tolerance table.
"""

from __future__ import annotations

import numpy as np

from ..toolkit import strategies as strat
from ..toolkit import transforms as tf
from ..core.model import Skip
from ..core.registry import check
from ..core.result import Field
from ..core.tolerances import define
from ..core.cases import ANY, PERIODIC
from ._compare import compare
from ._equivariance import Equivariance, Image


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
    return Equivariance(model, case, ctx).search(
        rng, strat.one_of(*options), lambda order, atoms: Image(tf.permute(atoms, order), order=order),
        lambda order: f"atoms2 = transforms.permute(atoms, {list(order)})", "random permutations")


@check(family="symmetry", cases=ANY, calls="1 + examples (+1 periodic) (≤ 25 more to shrink a failure)",
       unit="eV/Å")
def translation_invariance(model, case, ctx, rng):
    """Energy, forces and stress are unchanged by a rigid translation.

    Isolated cases: random vectors up to 10 Å. Periodic cases: random vectors,
    with and without wrapping the atoms back into the cell, plus moving
    individual atoms by random integer lattice vectors (same crystal).
    """
    sym = Equivariance(model, case, ctx)
    verdict = sym.search(rng, strat.translations(10.0, wrap=case.periodic),
                         lambda t, atoms: Image(tf.wrap(tf.translate(atoms, t.vector)) if t.wrap
                                                else tf.translate(atoms, t.vector)),
                         lambda t: f"atoms2 = transforms.translate(atoms, {list(t.vector)})"
                                   + ("\natoms2 = transforms.wrap(atoms2)" if t.wrap else ""),
                         "random translations")
    if case.periodic and all(f.ok for f in verdict.fields):
        shifts = rng.integers(-2, 3, size=(len(sym.atoms), 3)) * sym.atoms.pbc
        fields = sym.fields(Image(tf.lattice_shift(sym.atoms, shifts)), prefix="lattice-shifted ")
        verdict.fields.extend(fields)
        if any(not f.ok for f in fields):
            verdict.what = f"atoms moved by integer lattice vectors on {case.name}"
            verdict.reproducer = sym.reproducer(f"atoms2 = transforms.lattice_shift(atoms, {shifts.tolist()})")
    return verdict


LARGE_OFFSET = np.array([700.3, -500.1, 499.7])  # Å, |v| ≈ 990 Å
STIFFNESS_STEP = 0.01  # Å per component, displacement that measures the force constant

define("offset_precision_factor", "1", 2.0, 2.0,
       "multiple of ε × |offset| × K allowed for the force change of large_offset, where ε is "
       "the model precision's machine epsilon (float32 1.2e-7) and K (eV/Å²) the largest force "
       "change per Å measured on the case: a model storing absolute coordinates in its precision "
       "rounds each of two atoms' positions by up to ε|x|/2, so an honest model errs by "
       "<= ε|x|K; errors growing faster than the offset (e.g. |x|² cancellations) still fail")


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
    sym = Equivariance(model, case, ctx)
    verdict = sym.judge(Image(tf.translate(sym.atoms, LARGE_OFFSET)), f"translation by {LARGE_OFFSET.tolist()} Å",
                        f"atoms2 = transforms.translate(atoms, {LARGE_OFFSET.tolist()})")
    verdict.details = {"noise_floor": sym.noise.as_dict()}
    if model.tags.precision != "float32":
        return verdict
    eps = float(np.finfo(np.float32).eps)
    offset = float(np.linalg.norm(LARGE_OFFSET))
    per_angstrom = sensitivity(model, sym.atoms, sym.props, sym.ref, rng)
    allowance = {name: ctx.tol["offset_precision_factor"] * eps * offset * k for name, k in per_angstrom.items()}
    err = {f.name: f for f in verdict.fields}["max |ΔF|"]
    near = sym.fields(Image(tf.translate(sym.atoms, LARGE_OFFSET / 10)))
    err_near = {f.name: f for f in near}["max |ΔF|"].error
    growth = float(np.log10(err.error / err_near)) if err.error > 0 and err_near > 0 else 1.0
    crossing = offset * (err.tolerance / err.error) ** (1 / max(growth, 0.1)) if err.error > err.tolerance \
        else None
    loss = Field("max |ΔF| from float32 absolute coordinates", err.error, err.tolerance, "eV/Å",
                 f"~{crossing:.3g} Å from the origin, where it crosses the offset-free tolerance" if crossing
                 else "", severity="informational")
    judged = [Field(f.name, f.error, f.tolerance + allowance[f.name], f.unit, f.where) for f in verdict.fields]
    note = (f"float32 precision at {offset:.0f} Å: ε|x| = {eps * offset:.2g} Å; allowances "
            + ", ".join(f"{name} {a:.2g}" for name, a in allowance.items())
            + f"; |ΔF| = {err_near:.2g} eV/Å at {offset / 10:.0f} Å and {err.error:.2g} eV/Å at "
              f"{offset:.0f} Å (growth ∝ offset^{growth:.2f}); {sym.noise.describe()}")
    if any(not f.ok for f in judged):
        note += ("\nthe error exceeds what float32 rounding of absolute coordinates explains: the model "
                 "loses more than the precision of its positions far from the origin")
    verdict.details.update(sensitivity=per_angstrom, allowance=allowance, error_near=err_near,
                           growth_exponent=growth, crossing_offset=crossing)
    verdict.fields, verdict.note = judged + [loss], note
    return verdict


@check(family="symmetry", cases=PERIODIC, calls="2", unit="eV/Å", severity="consistency")
def left_handed_cell(model, case, ctx, rng):
    """The same crystal given with a left-handed cell matrix (lattice vectors -a,
    -b, -c: same lattice, det < 0) has the same energy, forces and stress.

    Improper symmetry operations and some file formats produce left-handed
    cells; a model that takes det(cell) as the volume or builds its neighbour
    search on a right-handed basis gets a wrong stress (seen: CHGNet 0.4.2, by
    0.04-1 eV/Å³) or wrong energies there.
    """
    if case.atoms.cell.rank < 3:
        raise Skip("no full cell to reorient")
    sym = Equivariance(model, case, ctx)
    return sym.judge(Image(tf.left_handed(sym.atoms)),
                     f"cell -a, -b, -c (det {np.linalg.det(-case.atoms.cell.array):.4g} Å³)",
                     "atoms2 = transforms.left_handed(atoms)",
                     explain="the model's outputs depend on the handedness of the cell matrix, not only on "
                             "the crystal: it takes det(cell) (negative here) as the volume, or its neighbour "
                             "search assumes a right-handed basis")


@check(family="symmetry", cases=ANY, calls="1 + examples (≤ 25 more to shrink a failure)", unit="eV/Å")
def rotation_invariance(model, case, ctx, rng):
    """Energy is invariant, forces rotate as vectors and stress as R σ Rᵀ under
    proper rotations.

    Rotations about the origin by 5°-180° about random axes; periodic cells are
    rotated together with their atoms.
    """
    return Equivariance(model, case, ctx).search(
        rng, strat.rotations(), lambda r, atoms: Image(tf.rotate(atoms, r.matrix), matrix=r.matrix),
        lambda r: f"atoms2 = transforms.rotate(atoms, {r.code()})", "random rotations")


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
    return Equivariance(model, case, ctx).search(
        rng, strat.improper_rotations(),  # M x (cell made right-handed) is the inversion of -M x
        lambda op, atoms: Image(tf.right_handed(tf.rotate(atoms, op.matrix)), matrix=tf.INVERSION,
                                reference=tf.rotate(atoms, -op.matrix)),
        lambda op: f"M = {op.code()}\natoms_improper = transforms.right_handed(transforms.rotate(atoms, M))"
                   "\natoms_proper = transforms.rotate(atoms, -M)",
        "improper operations", describe=lambda op: f"{op} (compared with the proper rotation -M)",
        explain="not parity-equivariant: the mirror image of the structure gets other energies or forces "
                "than the structure itself, while the comparison is made with the proper rotation -M (so "
                "a model that only breaks rotations does not fail here); a model built without parity "
                "(e.g. SE(3)- but not E(3)-equivariant features, SevenNet's is_parity=False) shows this")


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
    reps = supercell_reps(case)
    n = int(np.prod(reps))
    sym = Equivariance(model, case, ctx)
    return sym.judge(Image(tf.supercell(sym.atoms, reps), images=n), f"{'×'.join(map(str, reps))} supercell",
                     f"atoms2 = transforms.supercell(atoms, {reps})  # expect {n}× the energy")
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
    m = unimodular_matrix(case.atoms.pbc, rng)
    sym = Equivariance(model, case, ctx)
    return sym.judge(Image(tf.change_basis(sym.atoms, m)), f"cell basis {m.tolist()} @ cell",
                     f"atoms2 = transforms.change_basis(atoms, np.array({m.tolist()}))")
