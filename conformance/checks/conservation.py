"""Conservation family: net force and torque vanish; forces and stress are
derivatives of the energy.

A model without an external field has an energy invariant under rigid
translations (every case, including slabs and wires) and, for isolated
structures, rigid rotations; Noether's theorem then makes the net force and
net torque vanish. A conservative model has forces F = -∂E/∂r and stress
σ = (1/V) ∂E/∂ε; both are tested by directional finite differences (2 model
calls per random direction) rather than full numerical Jacobians.

Finite differences use a step per precision (``fd_step``, ``strain_step``)
and remove the h² error term of the central difference with the forces
(stresses) at the two displaced points, which is Simpson's rule for the work
along the segment: O(h⁴) truncation at no extra model call.
"""

from __future__ import annotations

import numpy as np
from ase.stress import voigt_6_to_full_3x3_stress

from ..core.model import MissingProperty, ModelError, Skip
from ..toolkit.noise import noise_floor
from ..toolkit.transforms import strained
from ..core.registry import check
from ..core.result import Field, Verdict
from ..core.cases import ANY, ISOLATED
from ..core.tolerances import define
from ._compare import VOIGT, case_reproducer

define("net_force_rtol", "1", 1e-10, 1e-5,
       "net force per √atom relative to the largest force component: a sum of N force rows, each "
       "with round-off ~eps × the pair terms, grows as √N; added to force_atol and multiplied by "
       "√N (and by the largest distance from the centre of mass for the torque)")
define("fd_step", "Å", 1e-4, 5e-3,
       "displacement per atom of force_consistency (≈ eps^(1/3) × 1 Å for float32); smaller float64 "
       "steps magnify tiny energy jumps of real models (EMT's hard cut of its Fermi-smoothed cutoff "
       "jumps by ~1e-9 eV: error δE/2h), larger ones the O(h²) error of the Jacobian test")
define("force_consistency_rtol", "1", 1e-5, 2e-3,
       "the residual F·u + dE/dh relative to F·u (at least its typical size for a random "
       "direction): the Simpson-corrected difference errs by O(h⁴) + eps·E/h + jumps/2h; measured "
       "≤ 3e-6 (EMT, LJ, pair potential over 15 seeds, float64) and ≤ 7e-5 (float32 EMT); forces "
       "wrong by 1 % give 1e-2")
define("jacobian_symmetry_rtol", "1", 1e-3, 2e-2,
       "the asymmetry u·(∂F/∂r)v - v·(∂F/∂r)u relative to a typical u·(∂F/∂r)v: central differences of "
       "forces err by O(h²), and by up to ~1e-3 when a pair crosses a cutoff where the second "
       "derivative jumps (ASE's smooth LJ is only C1): measured ≤ 4e-4 (float64) and ≤ 2e-3 "
       "(float32); a curl of a few % of the force constants (direct-force heads) gives ~1e-2")
define("strain_step", "1", 1e-4, 1e-2,
       "strain amplitude of the stress finite differences (as fd_step: 1e-4 float64, 1e-2 float32)")
define("stress_consistency_atol", "eV/Å³", 1e-8, 2e-5,
       "absolute floor of the residual σ:ε - (1/V) dE/dε: energy round-off eps·E/(ηV) ≈ 1e-12 "
       "(float64) and ≈ 1e-6 eV/Å³ (float32) for E ~ 100 eV, V ~ 400 Å³; EMT's 1e-9 eV cutoff "
       "jumps give ≤ 1e-8")
define("stress_consistency_rtol", "1", 1e-5, 2e-3,
       "the residual σ:ε - (1/V) dE/dε relative to the norm of σ of the pre-strained case "
       "(measured ≤ 1e-7 float64, ≤ 1e-4 float32); a sign error gives 2, a missing 1/V gives ~V")

N_DIRECTIONS = 3  # random directions of force_consistency (1 along F, 2 random)
N_STRAINS = 3  # random symmetric strains of stress_consistency
PRESTRAIN = 0.02  # Frobenius norm of the random strain applied before testing the stress

# -- net force and torque -------------------------------------------------------------------

def net_force_tolerance(forces: np.ndarray, tol) -> float:
    """√N (force_atol + net_force_rtol max|F|) in eV/Å."""
    n = len(forces)
    scale = float(np.abs(forces).max()) if n else 0.0
    return float(np.sqrt(max(n, 1)) * (tol["force_atol"] + tol["net_force_rtol"] * scale))


@check(family="conservation", needs={"forces"}, cases=ANY, calls="1", unit="eV/Å")
def net_force(model, case, ctx, rng):
    """The forces sum to zero, ‖Σᵢ Fᵢ‖ (eV/Å), on isolated and periodic cases.

    Translation invariance of the energy (no external field) along every
    direction, including the vacuum directions of slabs and wires, makes the
    net force vanish. A non-zero sum means a spurious external field, forces
    that break Newton's third law (direct-force heads), or an unbalanced
    neighbour list. Tolerance √N (force_atol + net_force_rtol max|F|).
    """
    atoms = case.copy()
    forces = model.evaluate(atoms, ("forces",))["forces"]
    total = forces.sum(axis=0)
    tol = net_force_tolerance(forces, ctx.tol)
    vec = np.array2string(total, precision=3, separator=", ")
    return Verdict([Field("|ΣF|", float(np.linalg.norm(total)), tol, "eV/Å")],
                   what=f"ΣF = {vec} eV/Å over {len(atoms)} atoms of {case.name}",
                   reproducer=case_reproducer(case, ctx, "atoms.calc = calc\n"
                                          "print(atoms.get_forces().sum(axis=0))  # expect ~0"),
                   details={"net_force": total, "max_abs_force": float(np.abs(forces).max())})


def net_torque_vector(atoms, forces: np.ndarray) -> np.ndarray:
    """Σᵢ (rᵢ - r_com) × (Fᵢ - F̄) in eV.

    The mean force F̄ is removed first: that makes the torque independent of
    the reference point and leaves a net force to :func:`net_force`.
    """
    r = atoms.positions - atoms.get_center_of_mass()
    return np.cross(r, forces - forces.mean(axis=0)).sum(axis=0)


@check(family="conservation", needs={"forces"}, cases=ISOLATED, calls="1", unit="eV")
def net_torque(model, case, ctx, rng):
    """The net torque about the centre of mass vanishes, ‖Σᵢ (rᵢ - r_com) × Fᵢ‖
    (eV), on isolated cases.

    Rotational invariance of an isolated structure's energy makes the torque
    vanish (periodic cells are not rotation invariant as a whole, so only
    isolated cases are tested). The mean force is subtracted first, which
    makes the torque independent of the reference point. A non-zero torque
    means forces that are not equivariant or a rotational (curl) force field.
    """
    atoms = case.copy()
    forces = model.evaluate(atoms, ("forces",))["forces"]
    torque = net_torque_vector(atoms, forces)
    radius = float(np.linalg.norm(atoms.positions - atoms.get_center_of_mass(), axis=1).max())
    tol = max(radius, 1.0) * net_force_tolerance(forces, ctx.tol)
    vec = np.array2string(torque, precision=3, separator=", ")
    body = ("atoms.calc = calc\nF = atoms.get_forces()\nr = atoms.positions - atoms.get_center_of_mass()\n"
            "print(np.cross(r, F - F.mean(axis=0)).sum(axis=0))  # expect ~0")
    return Verdict([Field("|Σ r×F|", float(np.linalg.norm(torque)), tol, "eV")],
                   what=f"τ = {vec} eV about the centre of mass of {case.name}",
                   reproducer=case_reproducer(case, ctx, body), details={"net_torque": torque})


# -- forces as the energy gradient ----------------------------------------------------------

def fd_directions(forces: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` orthogonal directions (k, N, 3) in configuration space, each with
    ‖u‖ = √N (unit rms displacement per atom); the first along the forces.

    Orthogonality is the control of the Jacobian test: u·Jv = v·Ju is trivial
    for v = u.
    """
    n = len(forces)
    k = min(k, 3 * n)
    cols = rng.normal(size=(3 * n, k))
    flat = forces.ravel()
    if np.linalg.norm(flat) > 0:
        cols[:, 0] = flat
    q, r = np.linalg.qr(cols)
    q = q * np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))  # first column along +F
    return (q.T * np.sqrt(n)).reshape(k, n, 3)


def simpson_residual(e_plus: float, e_minus: float, g_plus: float, g0: float, g_minus: float,
                     h: float) -> float:
    """dE/dh + g(0) with the h² error term removed, g = F·u along the segment.

    The central difference (E₊ - E₋)/2h = E'(0) + h²E'''(0)/6 + O(h⁴) with
    E''' = -g'' ≈ -(g₊ - 2g₀ + g₋)/h²; correcting it and adding g₀ gives
    (E₊ - E₋)/2h + (g₊ + 4g₀ + g₋)/6 (Simpson's rule for the work), zero to
    O(h⁴) for a conservative model.
    """
    return (e_plus - e_minus) / (2 * h) + (g_plus + 4 * g0 + g_minus) / 6


def measure_force_consistency(evaluate, atoms, ref: dict, directions: np.ndarray, h: float) -> dict:
    """Raw errors of F = -∇E (no tolerances applied).

    Parameters
    ----------
    evaluate : callable Atoms -> dict with ``forces`` (and ``energy``)
    atoms : Atoms, reference configuration
    ref : dict, ``evaluate(atoms)``; without ``energy`` only the Jacobian is tested
    directions : (k, N, 3) from :func:`fd_directions`
    h : float, step (Å per unit of u)

    Returns
    -------
    dict with ``directional`` (k,) residuals F·u + dE/dh (eV/Å, signed),
    ``central`` (k,) the same from the plain central difference, ``f_dot_u``
    (k,) F·u, ``force_scale`` (k,) max(|F·u|, typical |F·u| of a random
    direction ‖F‖‖u‖/√(3N)), ``jacobian`` (k, k) estimates uᵢ·(∂F/∂r)uⱼ (eV/Å²),
    ``jacobian_scale`` (k, k), ``loop_work`` (k, k): work of the forces around
    the diamond x+hu → x+hv → x-hu → x-hv (eV), equal to 2h²(v·Ju - u·Jv).
    """
    n = len(atoms)
    k = len(directions)
    has_energy = "energy" in ref
    f0 = ref["forces"]
    jac_u = np.empty_like(directions)
    directional = np.full(k, np.nan)
    central = np.full(k, np.nan)
    g0 = np.array([float(np.vdot(f0, u)) for u in directions])
    for i, u in enumerate(directions):
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions = atoms.positions + h * u
        minus.positions = atoms.positions - h * u
        p, m = evaluate(plus), evaluate(minus)
        jac_u[i] = (p["forces"] - m["forces"]) / (2 * h)
        if has_energy:
            gp, gm = float(np.vdot(p["forces"], u)), float(np.vdot(m["forces"], u))
            directional[i] = simpson_residual(p["energy"], m["energy"], gp, g0[i], gm, h)
            central[i] = (p["energy"] - m["energy"]) / (2 * h) + g0[i]
    norm_u = np.linalg.norm(directions.reshape(k, -1), axis=1)
    force_scale = np.maximum(np.abs(g0), np.linalg.norm(f0) * norm_u / np.sqrt(3 * n))
    jac = np.einsum("iab,jab->ij", directions, jac_u)  # jac[i, j] = u_i · J u_j
    norm_ju = np.linalg.norm(jac_u.reshape(k, -1), axis=1)
    jscale = (np.outer(norm_u, norm_ju) + np.outer(norm_ju, norm_u)) / (2 * np.sqrt(3 * n))
    return {"directional": directional, "central": central, "f_dot_u": g0, "force_scale": force_scale,
            "jacobian": jac, "jacobian_scale": jscale, "loop_work": 2 * h * h * (jac - jac.T)}


def _relative_errors(m: dict, floor: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """(k,) relative directional errors (NaN without energy) and the relative
    Jacobian asymmetry of each pair of directions (upper triangle)."""
    rel = np.abs(m["directional"]) / np.maximum(m["force_scale"], floor)
    jac = m["jacobian"]
    iu = np.triu_indices(len(jac), 1)
    asym = np.abs(jac - jac.T)[iu] / np.maximum(m["jacobian_scale"][iu], floor / h)
    return rel, asym


@check(family="conservation", needs={"forces"}, cases=ANY,
       calls=f"1 + 2 × {N_DIRECTIONS} directions (+ 2 × {N_DIRECTIONS} at step/3 and at step/10 to confirm a failure)",
       unit="1")
def force_consistency(model, case, ctx, rng):
    """Forces are the negative energy gradient: relative error of F·u against
    -dE/dh along random directions u, and the force Jacobian is symmetric
    (zero work around a closed loop).

    Directional central differences with step ``fd_step`` (Å per atom) along
    three orthogonal directions, the first along the forces, the h² term
    removed with the forces at the displaced points. The same six
    evaluations give the Jacobian-vector products (∂F/∂r)u, whose symmetry
    u·(∂F/∂r)v = v·(∂F/∂r)u holds for any gradient field; the work of the
    forces around the loop x+hu → x+hv → x-hu → x-hv equals 2h²(v·Ju - u·Jv),
    so the second test also says how much energy a closed cycle creates.
    This catches direct-force (non-conservative) models even without an
    energy; a model declaring ``conservative=False`` still runs it (and is
    expected to fail).
    """
    props = ("energy", "forces") if "energy" in model.tags.properties else ("forces",)
    atoms = case.copy()
    h = ctx.tol["fd_step"]
    ref = model.evaluate(atoms, props)
    directions = fd_directions(ref["forces"], N_DIRECTIONS, rng)
    evaluate = lambda a: model.evaluate(a, props)  # noqa: E731
    m = measure_force_consistency(evaluate, atoms, ref, directions, h)
    n = len(atoms)
    floor = ctx.tol["force_atol"] * np.sqrt(n)
    noise = noise_floor(model, case, props)
    tol_f, tol_j = ctx.tol["force_consistency_rtol"], ctx.tol["jacobian_symmetry_rtol"]

    def judged(m, step):
        """Relative errors and their tolerances, widened by the model's noise floor:
        energy noise enters the difference as δE/h, force noise as δF √N (and δF N/h
        in the Jacobian); a float32 energy cannot resolve a difference below its own
        spacing (one ulp of |E|), which enters the central difference as ulp/h
        (twice the worst case ulp/2h)."""
        rel, asym = _relative_errors(m, floor, step)
        k = ctx.tol["noise_factor"]
        tol_dir = tol_f + (k * (noise.energy / step + noise.forces * np.sqrt(n))
                           + noise.resolution / step) / np.maximum(m["force_scale"], floor)
        iu = np.triu_indices(len(m["jacobian"]), 1)
        tol_jac = tol_j + k * noise.forces * n / step / np.maximum(m["jacobian_scale"][iu], floor / step)
        return rel, tol_dir, asym, tol_jac

    rel, tol_dir, asym, tol_jac = judged(m, h)
    retried = ""
    if np.any(rel > tol_dir) or np.any(asym > tol_jac):
        # a violation must persist on shorter segments: a pair crossing a cutoff (jump or kink
        # of a conservative model) or a steep but smooth switch (finite-difference error
        # O(h²) or faster) fades, a curl or a scale does not. h/3 first: in float32 the
        # force noise grows as 1/h, and on h/10 it can hide the fading of a steep switch
        # (CHGNet's trimer near its 3 Å bond-graph cutoff: 0.107 at h, 0.006 at h/2.5)
        tried = []
        for step in (h / 3, h / 10):
            m2 = measure_force_consistency(evaluate, atoms, ref, directions, step)
            rel2, tol_dir2, asym2, tol_jac2 = judged(m2, step)
            tried.append(f"{step:g}")
            # a retry clears a violation only if it did not persist: its error shrank to less
            # than half, not merely its ratio, which a tolerance widened on a shorter step by
            # float32 quantization lowers by itself
            second = ((np.nan_to_num(rel2 / tol_dir2, nan=np.inf)
                       < np.nan_to_num(rel / tol_dir, nan=np.inf)) & (rel2 < 0.5 * rel))
            rel, tol_dir = np.where(second, rel2, rel), np.where(second, tol_dir2, tol_dir)
            second = (asym2 / tol_jac2 < asym / tol_jac) & (asym2 < 0.5 * asym)
            asym, tol_jac = np.where(second, asym2, asym), np.where(second, tol_jac2, tol_jac)
            if not (np.any(rel > tol_dir) or np.any(asym > tol_jac)):
                break
        retried = (f"\nretried at step {' and '.join(tried)} Å (an error that shrank to less "
                   "than half there is reported from the shorter step)")
    fields = []
    if "energy" in props:
        i = int(np.nanargmax(rel / tol_dir))
        fields.append(Field("|F·u + dE/dh| / |F·u|", float(rel[i]), float(tol_dir[i]),
                            "", "direction 0 (along F)" if i == 0 else f"random direction {i}"))
    k = len(directions)
    iu = np.triu_indices(k, 1)
    j = int(np.argmax(asym / tol_jac))
    fields.append(Field("|u·Jv - v·Ju| / |u·Jv|typ", float(asym[j]), float(tol_jac[j]),
                        "", f"directions ({iu[0][j]}, {iu[1][j]})"))
    work = float(np.abs(m["loop_work"]).max())
    note = (f"work of the forces around a closed loop of half-diagonal {h:g} Å: max |∮F·dr| = "
            f"{work:.3g} eV (zero for forces that are a gradient)")
    if "energy" in props:
        g, r = m["f_dot_u"][0], m["directional"][0]
        if g - r != 0:
            note = (f"along the forces F·u = {g:.6g} eV/Å, -dE/dh = {g - r:.6g} eV/Å "
                    f"(ratio {g / (g - r):.6g})\n" + note)
    note += retried + (f"\n{noise.describe()}" if noise.measured else "")
    if not model.tags.conservative:
        note += ("\nthe model declares conservative=False (direct forces): this finding is its "
                 "declared design, and MD with it does not conserve energy")
    body = (f"h = {h!r}\natoms.calc = calc\nF = atoms.get_forces()\n"
            "u = F * np.sqrt(len(atoms)) / np.linalg.norm(F)  # direction along the forces\n"
            "plus, minus = atoms.copy(), atoms.copy()\n"
            "plus.positions += h * u\nminus.positions -= h * u\n"
            "plus.calc, minus.calc = calc, calc\n"
            "dE = (plus.get_potential_energy() - minus.get_potential_energy()) / (2 * h)\n"
            "print(dE, -np.vdot(F, u))  # equal for a conservative model")
    if "energy" not in props:
        body = (f"h = {h!r}\nrng = np.random.default_rng(0)\nu, v = rng.normal(size=(2, len(atoms), 3))\n"
                "def F(x):\n    a = atoms.copy(); a.positions = x; a.calc = calc; return a.get_forces()\n"
                "x = atoms.positions\nJu = (F(x + h * u) - F(x - h * u)) / (2 * h)\n"
                "Jv = (F(x + h * v) - F(x - h * v)) / (2 * h)\n"
                "print(np.vdot(u, Jv), np.vdot(v, Ju))  # equal for a conservative model")
    return Verdict(fields, what=f"{k} directions of {n} atoms of {case.name}, step {h:g} Å",
                   note=note, reproducer=case_reproducer(case, ctx, body),
                   details={"directional": m["directional"], "central": m["central"],
                            "force_scale": m["force_scale"], "jacobian": m["jacobian"],
                            "loop_work": m["loop_work"], "step": h})


# -- stress as the strain derivative --------------------------------------------------------

def voigt_to_matrix(s: np.ndarray) -> np.ndarray:
    """(6,) Voigt xx, yy, zz, yz, xz, xy -> symmetric (3, 3) (ASE's order)."""
    return voigt_6_to_full_3x3_stress(np.asarray(s))


def periodic_strains(cell: np.ndarray, pbc, k: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``k`` random symmetric strains (k, 3, 3), orthonormal in the
    Frobenius product, acting only within the span of the periodic cell
    vectors (slabs: in-plane; wires: along the axis)."""
    periodic = np.asarray(cell)[np.asarray(pbc, dtype=bool)]
    q, _ = np.linalg.qr(periodic.T)  # (3, p) orthonormal basis of the periodic span
    p = q.shape[1]
    k = min(k, p * (p + 1) // 2)
    mats = []
    for _ in range(k):
        s = rng.normal(size=(p, p))
        e = q @ (0.5 * (s + s.T)) @ q.T
        for m in mats:
            e = e - np.sum(e * m) * m
        mats.append(e / np.linalg.norm(e))
    return np.array(mats)




def measure_stress_consistency(evaluate, atoms, strains: np.ndarray, eta: float) -> dict:
    """Raw errors of σ = (1/V) ∂E/∂ε along ``strains`` (no tolerances).

    With g(η) = dE/dη = V(η) σ(η) : ε(I + ηε)⁻¹ (the stress of the deformed
    configuration contracted with the incremental strain), the residual
    (E₊ - E₋)/2η - (g₊ + 4g₀ + g₋)/6 is zero to O(η⁴).

    Returns
    -------
    dict with ``residual`` (k,) in eV/Å³ (divided by V), ``sigma_eps`` (k,)
    σ:ε of the reference (eV/Å³), ``stress`` (6,) of the reference.
    """
    ref = evaluate(atoms)
    v0 = atoms.get_volume()

    def g(out, a, eta_):
        inc = eps @ np.linalg.inv(np.eye(3) + eta_ * eps)
        return a.get_volume() * float(np.sum(voigt_to_matrix(out["stress"]) * inc))

    residual, sigma_eps = [], []
    for eps in strains:
        ap, am = strained(atoms, eta * eps), strained(atoms, -eta * eps)
        p, m = evaluate(ap), evaluate(am)
        simpson = (g(p, ap, eta) + 4 * g(ref, atoms, 0.0) + g(m, am, -eta)) / 6
        residual.append(abs((p["energy"] - m["energy"]) / (2 * eta) - simpson) / v0)
        sigma_eps.append(g(ref, atoms, 0.0) / v0)
    return {"residual": np.array(residual), "sigma_eps": np.array(sigma_eps), "stress": ref["stress"]}


def _stress_absent(model, case, ctx):
    """Isolated case without cell volume: stress must be absent or an explicit error."""
    if abs(case.atoms.cell.volume) > 1e-9:
        raise Skip("no periodic direction but a full cell (a boxed molecule): ASE divides the "
                   "virial by the box volume by convention; not checked")
    atoms = case.copy()
    model.evaluate(atoms, ("energy",))  # the model must work here: an error now is a real error
    try:
        out = model.evaluate(atoms, ("stress",))
    except MissingProperty as exc:
        note = f"stress is absent, as it should be ({exc})"
        value = 0.0
    except ModelError as exc:
        if exc.__cause__ is None:  # timeout, NaN, wrong shape: a real error
            raise
        note = f"stress request raised an explicit error, as it may: {exc}"
        value = 0.0
    else:
        value = float(np.abs(out["stress"]).max())
        note = ("stress returned as all zeros (accepted; ASE convention is PropertyNotImplementedError)"
                if value == 0 else
                f"stress returned for a structure with no periodic direction and no cell volume: "
                f"{np.array2string(out['stress'], precision=3, separator=', ')} eV/Å³ (silent numbers "
                "for an undefined quantity; raise PropertyNotImplementedError instead)")
    body = "atoms.calc = calc\nprint(atoms.get_stress())  # expect PropertyNotImplementedError"
    return Verdict([Field("max |σ| returned without cell", value, 0.0, "eV/Å³")],
                   what=f"{case.name} (no periodic direction)", note=note,
                   reproducer=case_reproducer(case, ctx, body))


@check(family="conservation", needs={"energy", "stress"}, cases=ANY,
       calls=f"1 + 2 × {N_STRAINS} strains (periodic), 2 (isolated)", unit="eV/Å³")
def stress_consistency(model, case, ctx, rng):
    """Stress is the strain derivative of the energy per volume: σ:ε against
    (1/V) dE/dε (eV/Å³) for random symmetric strains ε; structures without
    periodic direction give no stress.

    Periodic cases are first pre-strained by a random 2 % strain (so that the
    stress is far from zero and a sign error cannot hide), then strained by
    ±η ε with the atoms moving with the cell (``set_cell(scale_atoms=True)``),
    ε restricted to the periodic directions (slabs: xx, yy, xy in-plane;
    wires: along the axis) and V the cell volume including vacuum, as in ASE.
    ASE conventions: σ = (1/V) ∂E/∂ε, Voigt order xx, yy, zz, yz, xz, xy.
    Catches sign errors and a missing 1/V. On cases with no periodic
    direction and no cell, stress must be absent (PropertyNotImplementedError)
    or an explicit error, never numbers.
    """
    if not case.periodic:
        return _stress_absent(model, case, ctx)
    atoms = case.copy()
    pre = periodic_strains(atoms.cell.array, atoms.pbc, 1, rng)[0] * PRESTRAIN
    atoms = strained(atoms, pre)
    strains = periodic_strains(atoms.cell.array, atoms.pbc, N_STRAINS, rng)
    eta = ctx.tol["strain_step"]
    m = measure_stress_consistency(lambda a: model.evaluate(a, ("energy", "stress")), atoms, strains, eta)
    scale = float(np.linalg.norm(voigt_to_matrix(m["stress"])))
    noise = noise_floor(model, case, ("energy", "forces", "stress"))
    tol = (ctx.tol["stress_consistency_atol"] + ctx.tol["stress_consistency_rtol"] * scale
           + ctx.tol["noise_factor"] * (noise.energy / (eta * atoms.get_volume()) + noise.stress))
    i = int(np.argmax(m["residual"]))
    eps_txt = np.array2string(strains[i], precision=4, separator=", ").replace("\n", "")
    note = (f"worst strain ε = {eps_txt}, σ:ε = {m['sigma_eps'][i]:.4g} eV/Å³; periodic directions "
            f"{''.join('xyz'[d] for d in np.flatnonzero(atoms.pbc))}, V = {atoms.get_volume():.4g} Å³")
    body = (f"atoms.set_cell(atoms.cell.array @ (np.eye(3) + np.array({(pre).tolist()})).T, "
            f"scale_atoms=True)  # pre-strain\n"
            f"eps = np.array({strains[i].tolist()})\neta = {eta!r}\n"
            "def E(a):\n    a.calc = calc; return a.get_potential_energy()\n"
            "plus, minus = atoms.copy(), atoms.copy()\n"
            "plus.set_cell(atoms.cell.array @ (np.eye(3) + eta * eps).T, scale_atoms=True)\n"
            "minus.set_cell(atoms.cell.array @ (np.eye(3) - eta * eps).T, scale_atoms=True)\n"
            "atoms.calc = calc\ns = atoms.get_stress(voigt=False)\n"
            "print(np.sum(s * eps), (E(plus) - E(minus)) / (2 * eta) / atoms.get_volume())"
            "  # equal (to O(eta²))")
    return Verdict([Field("|σ:ε - (1/V) dE/dε|", float(m["residual"][i]), tol, "eV/Å³",
                          f"strain {i}")],
                   what=f"{len(strains)} random strains of {case.name} (step {eta:g})", note=note,
                   reproducer=case_reproducer(case, ctx, body),
                   details={"residual": m["residual"], "sigma_eps": m["sigma_eps"],
                            "stress": m["stress"], "voigt": list(VOIGT), "prestrain": pre})
