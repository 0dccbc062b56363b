"""Dynamics family: does the model survive molecular dynamics?

Three checks drive the model with ASE integrators through
:class:`conformance.toolkit.md.AuditedCalculator` (every force call is a counted,
timed, validated call of the model's calculator, reused from step to step
without reset as in a user's run; a NaN mid-run is an ``error`` naming the
step). The time step follows the model's stiffest mode (:func:`chosen_timestep`)
and 5 frames of a run are evaluated afresh (:func:`fresh_comparison`):

* ``nve_energy_drift``: velocity-Verlet NVE at dt and dt/2 from a thermalised
  start; drift (meV/atom/ps), total- vs kinetic-energy fluctuation, and the
  dt² scaling of the fluctuation that a smooth, conservative model shows;
* ``hot_nvt_stability``: Langevin at 1.5 x the melting point; collapse
  (bond compression > 0.5 Å, Fu et al. 2022), overlap, a trap in the dimer's
  repulsive wall the run reached (short-range hole), force cap, explosion
  (temperature), coordination change;
* ``momentum_conservation``: total linear (and, for clusters, angular)
  momentum in NVE.

Lengths: ``md_steps`` (per run) overrides the defaults of :data:`DEFAULT_STEPS`;
``md_long`` multiplies them by :data:`LONG_FACTOR`. A failure names the step
and time it happened and writes the trajectory (extxyz) to ``ctx.report_dir``
or ``./mlip-conformance-artifacts/``.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque

import numpy as np
from ase import Atoms, units
from ase.data import atomic_numbers, chemical_symbols
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
from ase.md.verlet import VelocityVerlet

from ..toolkit import md
from ..core.model import ModelError
from ..core.registry import check
from ..core.result import Field, Verdict
from ..core.tolerances import define
from ._compare import compare

#: Default steps per run: NVE runs `nve` steps at dt and 2 x `nve` at dt/2.
DEFAULT_STEPS = {"nve": 150, "hot": 400, "momentum": 100}
LONG_FACTOR = 20  # md_long: production-length runs for a pre-publication audit
NVE_TEMPERATURE_K = md.ROOM_TEMPERATURE_K
BOND_WINDOW_FS = 100.0  # averaging window of the bond-compression criterion
JUMP_INTERVAL = 10  # steps between the temperatures compared for a jump
CN_SHELL = (1 + math.sqrt(2)) / 2  # coordination cutoff: midway between fcc 1st and 2nd shell
DIMER_SCAN = np.linspace(0.5, 1.5, 41)  # x reference bond length

define("md_energy_drift", "meV/atom/ps", 1.0, 1.0,
       "absolute slope of a linear fit of E_tot(t) in NVE; 1 meV/atom/ps heats a solid by ~4 K/ps "
       "(3 k_B per atom) and is resolved in a 1 ps run, where EMT at the default dt drifts by "
       "0.01-0.2 (fit noise of the integration-error oscillation); production runs want "
       "<= 0.05 (GROMACS' default energy-drift target 0.005 kJ/mol/ps per atom): tighten it "
       "together with md_long")
define("md_energy_fluctuation_ratio", "1", 0.05, 0.05,
       "sigma(E_tot)/sigma(E_kin) in NVE; the classic time-step quality measure, 0.01 is the "
       "usual 'good' value and EMT sits at ~0.01 at the default dt (5 fs for Cu), so 0.05 fails "
       "a model 5x rougher than EMT; non-conservative forces make E_tot follow E_pot (~0.1)")
define("md_dt_scaling", "1", 0.4, 0.4,
       "sigma(E_tot) at dt/2 over sigma(E_tot) at dt; velocity Verlet gives 0.25 (error ~ dt^2, "
       "EMT: 0.249); > 0.4 (less than a 2.5x shrink) means the fluctuation is not integration "
       "error (discontinuous energy, noisy or non-conservative forces)")
define("md_energy_noise", "eV/atom", 1e-10, 2e-6,
       "round-off of E_tot per atom; when sigma(E_tot) at dt is below 10x this, the dt^2 "
       "scaling is not resolved and not judged")
define("md_momentum_rtol", "1", 1e-10, 1e-4,
       "norm(P(t) - P(0)) / sum_i norm(p_i) (and the same for the angular momentum of clusters) in NVE; "
       "velocity Verlet conserves both exactly when sum F = 0 (and sum r x F = 0): round-off "
       "gives ~1e-14 (float64, EMT), float32 forces ~1e-7")
define("md_bond_compression", "Å", 0.5, 0.5,
       "collapse: a bond (pair i-j) stays > 0.5 Å shorter than the model's dimer bond length, "
       "averaged over 100 fs (Fu et al. 2022, arXiv:2210.07237: a bond deviating by > 0.5 Å "
       "from equilibrium marks an unstable simulation); the 100 fs average removes thermal "
       "excursions at 1.5 Tm (EMT's closest approach is 0.6 Å inside its crystal distance), "
       "not a pair stuck in a hole; EMT: <= 0.05 Å. Bonds longer than 2 Å get 25 % of their "
       "length (EMT Cu dimer 2.17 Å: 0.54 Å; smooth LJ argon, 3.82 Å: 0.95 Å, which it "
       "approaches to 0.66 Å at 126 K in the crystal's volume)")
define("md_wall_trap", "eV", 0.01, 0.01,
       "depth of a trap in the dimer's repulsive wall between the closest approach of a hot run and "
       "the bond (a pair there must climb this much to get out): 0 on a sound wall, where E falls "
       "monotonically to the bond; 0.01 eV is 1/17 of k_B T at 2000 K, too shallow to hold a pair, "
       "and above scan round-off")
define("md_overlap_fraction", "1", 0.5, 0.5,
       "overlap: 1 - d_min/d_eq for the closest pair; two atoms closer than half the dimer "
       "bond length are inside each other's core (EMT at 1.5 Tm: <= 0.10)")
define("md_force_cap", "eV/Å", 50.0, 50.0,
       "largest atomic force in hot MD; ~6x the largest force of EMT Cu/Au at 1.5 Tm (8 eV/Å); "
       "larger forces mean atoms deep in each other's repulsive core or a diverging model")
define("md_temperature_ratio", "1", 10.0, 10.0,
       "explosion: T exceeds the thermostat temperature by an order of magnitude (MLIPAudit "
       "flags T > T0 + 10000 K; EMT reaches 1.8 x T0 on a 13-atom cluster)")
define("md_temperature_jump", "1", 10.0, 10.0,
       "explosion: T rises by this factor within 10 steps (MLIPAudit flags a 100x jump between "
       "frames 100 steps apart); EMT on 13 atoms: <= 2.5x")
define("md_coordination_change", "1", 0.5, 0.5,
       "abs(CN_end/CN_start - 1) (neighbours within (1+sqrt 2)/2 of the reference nearest-neighbour "
       "distance); EMT at 1.5 Tm: <= 0.03 in bulk; isolated clusters are judged on a rise only "
       "(EMT's 13-atom cluster melts and evaporates atoms: -0.32 in 1 ps, -0.52 in 20 ps)")

NVE_CALLS = ("3 × md_steps + 2 (md_steps at dt, 2 × md_steps at dt/2) + 16 (stiffest mode; 0 with "
             "md_timestep) + 5 (frames evaluated afresh)")


# -- shared helpers -------------------------------------------------------------

def steps_for(ctx, kind: str) -> int:
    """Steps of one run: ``md_steps`` if given, else the default × LONG_FACTOR with
    md_long, else × the profile's ``md_factor``."""
    if ctx.config.md_steps:
        return int(ctx.config.md_steps)
    factor = LONG_FACTOR if ctx.config.md_long else ctx.profile.md_factor
    return max(1, int(round(DEFAULT_STEPS[kind] * factor)))


def timestep_for(ctx, atoms: Atoms, temperature: float = NVE_TEMPERATURE_K) -> float:
    """Time step (fs): ``md_timestep``, else 5 fs x sqrt(m_min / m_Cu), shortened by
    sqrt(300 K / T) (at most 2x) for hot runs, where velocities are larger."""
    if ctx.config.md_timestep:
        return float(ctx.config.md_timestep)
    scale = min(1.0, max(0.5, math.sqrt(NVE_TEMPERATURE_K / temperature)))
    return md.default_timestep_fs(atoms) * scale


def chosen_timestep(model, ctx, atoms: Atoms, temperature: float = NVE_TEMPERATURE_K) -> tuple[float, dict]:
    """Time step (fs) for a run at ``temperature`` and why: ``md_timestep`` if
    given (no model call); else the shortest of the mass-based default
    (:func:`timestep_for`) and T_min / :data:`md.STEPS_PER_PERIOD`, T_min the
    period of the model's stiffest mode at ``atoms``
    (:func:`md.stiffest_mode_timestep_fs`, 2 × :data:`md.LANCZOS_STEPS` model
    calls). Returns (dt, details) with ``dt_source`` and a sentence ``why``."""
    if ctx.config.md_timestep:
        dt = float(ctx.config.md_timestep)
        return dt, {"dt_fs": dt, "dt_source": "md_timestep", "why": f"dt = {dt:.3g} fs from --mlip-md-timestep"}
    default = timestep_for(ctx, atoms, temperature)
    forces = lambda a: model.evaluate(a, ("forces",))["forces"]  # noqa: E731
    mode = md.stiffest_mode_timestep_fs(forces, atoms, np.random.default_rng(0))
    info = {"mass_default_fs": default, "shortest_period_fs": mode["period_fs"],
            "max_frequency_THz": mode["frequency_THz"], "hessian_calls": mode["n_calls"]}
    stiff = (f"shortest period T_min = {mode['period_fs']:.3g} fs ({mode['frequency_THz']:.3g} THz, "
             f"stiffest mode from {mode['n_calls'] // 2} Hessian-vector products)")
    if mode["dt_fs"] is not None and mode["dt_fs"] < default:
        dt = mode["dt_fs"]
        why = (f"dt = {dt:.3g} fs = T_min/{md.STEPS_PER_PERIOD}, {stiff}; shorter than the mass-based "
               f"{default:.3g} fs")
        return dt, dict(info, dt_fs=dt, dt_source="stiffest mode", why=why)
    why = (f"dt = {default:.3g} fs, the mass-based default (5 fs × sqrt(m_min/m_Cu)"
           + (", shortened for the temperature" if temperature > NVE_TEMPERATURE_K else "")
           + (f"); {stiff} would allow {mode['dt_fs']:.3g} fs" if mode["dt_fs"] else
              "); no positive curvature found at the start"))
    return default, dict(info, dt_fs=default, dt_source="mass-based default", why=why)


def start_case(model, case):
    """Where MD starts: the case itself when periodic; for an isolated one
    (cluster, molecule) the case relaxed to the model's own minimum near it
    (:func:`conformance.toolkit.relax.relax_cases`: at most 51 calls, once per case
    and model, kept in ``model.relaxed_starts``), so that the run judges the
    model, not a built geometry far from its minimum (a Si icosahedron at the
    fcc spacing starts with T jumping 12-fold). The returned case's ``note``
    says how it was relaxed."""
    if case.periodic:
        return case
    if case.name not in model.relaxed_starts:
        from ..toolkit.relax import relax_cases

        model.relaxed_starts[case.name] = relax_cases(model, [case], tags=("isolated",))[0]
    return model.relaxed_starts[case.name]


def start_geometry(model, case) -> Atoms:
    """A copy of the atoms MD starts from (:func:`start_case`)."""
    return start_case(model, case).copy()


def thermalised(model, case, temperature: float, rng) -> Atoms:
    """The case (isolated ones relaxed, :func:`start_geometry`) with
    Maxwell-Boltzmann momenta at ``temperature``, no net momentum (and no net
    rotation for isolated cases)."""
    atoms = start_geometry(model, case)
    thermalize_momenta(atoms, temperature, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any() and len(atoms) > 2:
        ZeroRotation(atoms)
    return atoms


def save_trajectory(run: md.MDRun, ctx, check_name: str, case) -> str:
    """Write the run's frames to ``<report_dir>/<model>-<check>-<case>.extxyz``; returns the path."""
    if not run.frames:
        return "none (no step completed)"
    path = md.artifact_dir(ctx.report_dir) / f"{ctx.model_name}-{check_name}-{case.name}.extxyz"
    return str(md.write_trajectory(run.frames, path))


def raise_model_error(run: md.MDRun, ctx, check_name: str, case) -> None:
    """Turn a model error recorded mid-run into a ModelError naming the step."""
    if run.model_error is None:
        return
    path = save_trajectory(run, ctx, check_name, case)
    raise ModelError(f"{run.model_error} at {run.when(run.event.step)} of {run.label} on "
                     f"{case.name}; trajectory up to the failure: {path}") from run.model_error


HISTORY_NOTE = ("the forces the run used differ from a fresh evaluation of the same frame: the "
                "calculator carries history from step to step (e.g. a neighbour list with a skin that is "
                "not rebuilt when it should be; see walk_history)")


FRESH_FRAMES = 5  # frames of a run compared with a fresh evaluation


def fresh_comparison(model, run: md.MDRun, tol, n_frames: int = FRESH_FRAMES) -> list:
    """Energy (eV) and forces (eV/Å) the run used at ``n_frames`` frames spread
    over it (the last included, step 0 excluded) against a fresh evaluation of
    each (``Model.evaluate``: a copy and a ``reset()`` calculator): per
    property the worst, as fields "fresh vs run: ..." (shared tolerances, the
    step in ``where``); [] when no frame after step 0 was recorded. One model
    call per frame."""
    frames = [f for f in run.frames if f.info["step"] > 0]
    if not frames:
        return []
    picks = sorted({int(round(x)) for x in np.linspace(0, len(frames) - 1, n_frames + 1)[1:]})
    worst: dict = {}
    for frame in (frames[i] for i in picks):
        used = {"energy": frame.calc.results["energy"], "forces": frame.calc.results["forces"]}
        fresh = model.evaluate(md.as_model_saw_it(frame), ("energy", "forces"))
        for f in compare(fresh, used, tol, len(frame), prefix="fresh vs run: "):
            if f.name not in worst or f.ratio > worst[f.name].ratio:
                worst[f.name] = dataclasses.replace(f, where=f"step {frame.info['step']}")
    return list(worst.values())


def _label(atom: int, numbers) -> str:
    return f"{atom} ({chemical_symbols[numbers[atom]]})"


# -- nve_energy_drift -----------------------------------------------------------

def nve_statistics(run: md.MDRun) -> dict:
    """Drift (meV/atom/ps), σ(E_tot) about the linear fit and σ(E_kin) (eV), the largest
    and the median one-step change of E_tot (eV), and the slope and correlation of
    E_tot against E_pot (both about their linear trends), the mean net force ΔP/t (eV/Å)
    and |ΔP| / Σ|p_i|."""
    n = run.n_atoms
    t_ps = run.time_fs / 1000.0
    slope, resid = md.linear_fit(t_ps, run.etot / n)
    steps = np.abs(np.diff(run.etot)) if len(run.etot) > 1 else np.zeros(1)
    k = int(np.argmax(steps))
    etot = resid * n
    _, epot = md.linear_fit(t_ps, run.epot)
    t_ase = max(run.time_fs[-1], run.dt_fs) * units.fs
    var_p = float(epot @ epot)
    denom = math.sqrt(var_p * float(etot @ etot))
    return {"drift": abs(slope) * 1e3, "drift_signed": slope * 1e3, "sigma_e": float(resid.std() * n),
            "sigma_k": float(run.ekin.std()), "jump": float(steps[k]), "jump_step": k + 1,
            "net_force": (run.momentum[-1] - run.momentum[0]) / t_ase,
            "momentum_change": float(np.linalg.norm(run.momentum[-1] - run.momentum[0])
                                     / max(run.momentum_scale[0], 1e-300)),
            "epot_slope": float(etot @ epot / var_p) if var_p > 0 else 0.0,
            "epot_corr": float(etot @ epot / denom) if denom > 0 else 0.0}


def diagnose_nve(full: md.MDRun, half: md.MDRun, a: dict, b: dict, scaling_ok: bool,
                 drift_ok: bool) -> str:
    """Sentences saying what kind of energy non-conservation this is.

    * jumps: the largest one-step change of E_tot keeps its size at dt/2 (> 0.7x);
      integration error shrinks it ~8x (∝ dt³), a smooth non-conservative force ~2x;
    * net force: the total momentum changes (ΣF ≠ 0 pumps energy into the centre of mass);
    * force/energy mismatch: E_tot = const + b E_pot with |corr| > 0.8 — forces
      c × (-∇E) conserve K + c E, so b = 1 - c; b is extrapolated to dt -> 0 from the
      runs at dt and dt/2 (Richardson, error ∝ dt²: forces × 1.1 give 1.093 at dt,
      1.098 at dt/2, 1.100 extrapolated);
    * drift: shrinking with dt (integration error) or not (the model).
    """
    why = []
    jumps = b["jump"] > 0.7 * a["jump"] > 0
    if a["momentum_change"] > 1e-6:
        force = a["net_force"]
        why.append(f"the total momentum is not conserved: mean net force {np.round(force, 4).tolist()} "
                   f"eV/Å (|ΣF| = {np.linalg.norm(force):.3g} eV/Å) does work on the centre of mass "
                   "(Newton's third law broken; see momentum_conservation)")
    elif jumps:
        why.append(f"E_tot jumps by up to {a['jump'] * 1e3:.3g} meV in a single step, the largest at "
                   f"{full.when(a['jump_step'])}, and the jumps keep their size at dt/2 "
                   f"({b['jump'] * 1e3:.3g} meV): the energy is discontinuous along the trajectory "
                   "(e.g. a cutoff without a smooth switch)")
    elif not scaling_ok and abs(a["epot_corr"]) > 0.8 and abs(a["epot_slope"]) > 0.01:
        slope = b["epot_slope"] + (b["epot_slope"] - a["epot_slope"]) / 3
        why.append(f"E_tot follows E_pot with slope {a['epot_slope']:+.3f} (correlation "
                   f"{a['epot_corr']:+.2f}): the forces act like {1 - slope:.3f} × (-∇E), "
                   "they are not the gradient of the reported energy (non-conservative forces, "
                   "force/energy scale mismatch)")
    if not drift_ok:
        if b["drift"] < a["drift"] / 2.5:
            why.append(f"the drift shrinks with the time step ({a['drift']:.3g} -> {b['drift']:.3g} "
                       f"meV/atom/ps at dt/2): integration error, dt = {full.dt_fs:.3g} fs is too "
                       "long for this model (set --mlip-md-timestep)")
        else:
            why.append(f"E_tot drifts by {a['drift_signed']:+.3g} meV/atom/ps at dt and "
                       f"{b['drift_signed']:+.3g} at dt/2: the drift does not shrink with the time "
                       "step, it comes from the model, not from the integrator")
    if not why and not scaling_ok:
        why.append("the E_tot fluctuation does not shrink like dt² when dt is halved: it is not "
                   "integration error but noise or non-conservative terms in the forces")
    if not why:
        why.append("E_tot fluctuates strongly against E_kin although it scales like dt²: the time "
                   f"step dt = {full.dt_fs:.3g} fs is too long for this model (set --mlip-md-timestep)")
    return "; ".join(why)


def _energy_plot(case, runs) -> dict:
    series = []
    for run in runs:
        tr = run.trace()
        e0 = run.etot[0]
        series.append({"x": tr["time_fs"], "y": (np.asarray(tr["etot_eV"]) - e0) / run.n_atoms * 1e3,
                       "label": f"dt = {run.dt_fs:.3g} fs", "style": "line"})
    return {"title": f"NVE total energy, {case.name}", "xlabel": "time (fs)",
            "ylabel": "E_tot - E_tot(0) (meV/atom)", "series": series}


@check(family="dynamics", cases={"bulk", "cluster"}, calls=NVE_CALLS, unit="meV/atom/ps")
def nve_energy_drift(model, case, ctx, rng):
    """Total energy is conserved in NVE: no drift, small fluctuation that shrinks
    like dt² when the time step is halved.

    Velocity Verlet from a thermalised start (300 K, no net momentum or
    rotation) at dt and again at dt/2 over the same time. dt is md_timestep if
    given, else the shorter of 5 fs × sqrt(m_lightest/m_Cu) and T_min/30, T_min
    the period of the model's stiffest mode at the start (8 Lanczos
    Hessian-vector products by central differences of forces); the step and
    why are in the message. Measured: drift (|slope| of a linear fit of E_tot,
    meV/atom/ps), σ(E_tot)/σ(E_kin), and σ(E_tot)(dt/2)/σ(E_tot)(dt) (0.25 for
    velocity Verlet on a smooth, conservative model); 5 frames of the dt run
    are evaluated afresh (the calculator is reused without reset along the
    run, as in a user's MD), so history it carries shows. Energy jumps
    (discontinuous cutoff), non-conservative forces and too long a time step
    are told apart in the message.
    """
    n_steps = steps_for(ctx, "nve")
    start = thermalised(model, case, NVE_TEMPERATURE_K, rng)
    dt, step_info = chosen_timestep(model, ctx, start)
    runs = []
    for h, steps in ((dt, n_steps), (dt / 2, 2 * n_steps)):
        atoms = start.copy()
        dyn = VelocityVerlet(atoms, h * units.fs)
        run = md.run_md(model, atoms, dyn, steps, h, f"NVE velocity Verlet, dt = {h:.3g} fs", progress=ctx.progress)
        raise_model_error(run, ctx, "nve_energy_drift", case)
        runs.append(run)
    full, half = runs
    a, b = nve_statistics(full), nve_statistics(half)
    n = len(start)
    resolved = a["sigma_e"] / n > 10 * ctx.tol["md_energy_noise"]
    scaling = b["sigma_e"] / a["sigma_e"] if resolved else 0.0
    fluct = a["sigma_e"] / a["sigma_k"] if a["sigma_k"] > 0 else math.inf
    duration = f"{full.time_fs[-1] / 1000:.3g} ps"
    fields = [
        Field("|drift| of E_tot", a["drift"], ctx.tol["md_energy_drift"], "meV/atom/ps"),
        Field("σ(E_tot)/σ(E_kin)", fluct, ctx.tol["md_energy_fluctuation_ratio"], ""),
        Field("σ(E_tot) at dt/2 / at dt", scaling, ctx.tol["md_dt_scaling"], ""),
    ]
    ok = [f.ok for f in fields]
    history = fresh_comparison(model, full, ctx.tol)
    fields.extend(history)
    what = (f"NVE velocity Verlet, {n_steps} steps of {dt:.3g} fs ({duration}) and {2 * n_steps} "
            f"of {dt / 2:.3g} fs from {NVE_TEMPERATURE_K:.0f} K on {case.name}")
    notes = [step_info["why"]]
    if not resolved:
        notes.append("σ(E_tot) is at round-off level: dt² scaling not resolved, not judged")
    if not all(ok) or not all(f.ok for f in history):
        path = save_trajectory(full, ctx, "nve_energy_drift", case)
        diagnosis = diagnose_nve(full, half, a, b, scaling_ok=ok[2], drift_ok=ok[0]) if not all(ok) else ""
        if not all(f.ok for f in history):
            diagnosis = "; ".join(filter(None, [HISTORY_NOTE, diagnosis]))
        notes.insert(0, f"diagnosis: {diagnosis}\ntrajectory (dt = {dt:.3g} fs): {path}")
    note = "\n".join(notes)
    details = {
        **step_info, "dt_fs": dt, "n_steps": n_steps, "temperature_K": NVE_TEMPERATURE_K,
        "start": start_case(model, case).note,
        "drift_meV_per_atom_ps": {"dt": a["drift_signed"], "dt/2": b["drift_signed"]},
        "sigma_etot_meV": {"dt": a["sigma_e"] * 1e3, "dt/2": b["sigma_e"] * 1e3},
        "fluctuation_ratio": {"dt": fluct, "dt/2": b["sigma_e"] / b["sigma_k"] if b["sigma_k"] > 0 else None},
        "sigma_shrink_factor": (a["sigma_e"] / b["sigma_e"]) if b["sigma_e"] > 0 else None,
        "largest_step_jump_meV": {"dt": a["jump"] * 1e3, "dt/2": b["jump"] * 1e3},
        "trace": full.trace(), "trace_half_dt": half.trace(),
        "plots": [_energy_plot(case, runs)],
    }
    return Verdict(fields, what=what, note=note, details=details)


# -- momentum_conservation ------------------------------------------------------

@check(family="dynamics", cases={"bulk", "cluster"}, calls="md_steps + 1", unit="1")
def momentum_conservation(model, case, ctx, rng):
    """Total linear momentum (and angular momentum of an isolated cluster)
    stays at its initial value in NVE.

    Velocity Verlet conserves P exactly when the forces sum to zero (Newton's
    third law, i.e. translation invariance) and L when their torques cancel
    (rotation invariance). Measured: max |P(t) - P(0)| / Σ|p_i| (and the
    same for L about the centre of mass), dimensionless. A failure reports
    the mean net force ΔP/t (eV/Å) or torque ΔL/t (eV).
    """
    n_steps = steps_for(ctx, "momentum")
    atoms = thermalised(model, case, NVE_TEMPERATURE_K, rng)
    dt = timestep_for(ctx, atoms)
    run = md.run_md(model, atoms, VelocityVerlet(atoms, dt * units.fs), n_steps, dt,
                    f"NVE velocity Verlet, dt = {dt:.3g} fs", progress=ctx.progress)
    raise_model_error(run, ctx, "momentum_conservation", case)
    tol = ctx.tol["md_momentum_rtol"]
    t_ase = max(run.time_fs[-1], dt) * units.fs
    fields, notes = [], []
    checks = [("P", "|ΔP| / Σ|p_i|", run.momentum, run.momentum_scale, "net force", "eV/Å")]
    if not case.periodic and len(run.angular_scale):
        checks.append(("L", "|ΔL| / Σ|r_i||p_i|", run.angular_momentum, run.angular_scale,
                       "net torque", "eV"))
    for key, name, values, scale, force_name, unit in checks:
        delta = np.linalg.norm(values - values[0], axis=1)
        rel = delta / scale[0] if scale[0] > 0 else delta
        k = int(np.argmax(rel))
        field = Field(name, float(rel[k]), tol, "", where=run.when(k))
        fields.append(field)
        if not field.ok:
            mean = (values[-1] - values[0]) / t_ase
            notes.append(f"{key} changes steadily: mean {force_name} {np.round(mean, 4).tolist()} {unit} "
                         f"(|{force_name}| = {np.linalg.norm(mean):.3g} {unit})")
    details = {"dt_fs": dt, "n_steps": n_steps,
               "relative_change": {f.name: f.error for f in fields},
               "trace": run.trace()}
    idx = md.decimate(len(run.time_fs), 200)
    details["plots"] = [{"title": f"Momentum conservation, {case.name}", "xlabel": "time (fs)",
                         "ylabel": "relative change", "logy": True,
                         "series": [{"x": run.time_fs[idx],
                                     "y": np.maximum(np.linalg.norm(run.momentum - run.momentum[0], axis=1)
                                                     / max(run.momentum_scale[0], 1e-300), 1e-18)[idx],
                                     "label": "|ΔP| / Σ|p_i|", "style": "line"}]}]
    note = ""
    if notes:
        path = save_trajectory(run, ctx, "momentum_conservation", case)
        cause = ("forces do not sum to zero (Newton's third law broken, e.g. a constant force bias "
                 "or a direct-force head without a net-force constraint)" if not fields[0].ok else
                 "torques do not cancel (forces not rotation-equivariant or not central)")
        note = "; ".join(notes) + f": {cause}\ntrajectory: {path}"
    return Verdict(fields, what=f"NVE velocity Verlet, {n_steps} steps of {dt:.3g} fs on {case.name}",
                   note=note, details=details)


# -- hot_nvt_stability ----------------------------------------------------------

def dimer_bond_lengths(model, symbols, scans: dict | None = None) -> tuple[np.ndarray, list[str]]:
    """(Z, Z) table of the model's dimer bond lengths (Å) near the reference bond length.

    For every species pair, a 41-point scan of the isolated dimer over
    0.5-1.5 × the reference bond length (mean of the elements'
    nearest-neighbour distances); of its local minima, the one closest to the
    reference is the bond (so a spurious short-range well — the kind of defect
    hot MD looks for — is not taken as the bond), refined by a parabola. Falls
    back to the reference bond length when there is no interior minimum or the
    model cannot evaluate dimers; ``notes`` says so. ``scans``, when given, is
    filled with ``{(Z_a, Z_b): (radii, energies)}`` for both orders.
    """
    ref = md.reference_pair_distance(symbols)
    table = np.full_like(ref, np.nan)
    notes = []
    species = sorted(set(symbols))
    for ia, a in enumerate(species):
        for b in species[ia:]:
            za, zb = atomic_numbers[a], atomic_numbers[b]
            r0 = ref[za, zb]
            radii = DIMER_SCAN * r0
            try:
                energies = np.array([model.evaluate(Atoms([a, b], positions=[[0, 0, 0], [r, 0, 0]]),
                                                    ("energy",))["energy"] for r in radii])
            except ModelError as exc:
                notes.append(f"{a}-{b} dimer not evaluated ({exc}); bond length from the reference "
                             f"crystals: {r0:.3g} Å")
                table[za, zb] = table[zb, za] = r0
                continue
            if scans is not None:
                scans[za, zb] = scans[zb, za] = (radii, energies)
            interior = np.flatnonzero((energies[1:-1] < energies[:-2]) & (energies[1:-1] <= energies[2:])) + 1
            # the well closest to the crystal's bond: a deeper hole at short range is not the bond
            k = int(interior[np.argmin(np.abs(radii[interior] - r0))]) if len(interior) else \
                int(np.argmin(energies))
            if 0 < k < len(radii) - 1:
                e0, e1, e2 = energies[k - 1:k + 2]
                h = radii[1] - radii[0]
                curv = e0 - 2 * e1 + e2
                shift = 0.5 * h * (e0 - e2) / curv if curv > 0 else 0.0
                bond = float(radii[k] + np.clip(shift, -h, h))
            else:
                bond = float(r0)
                side = "short" if k == 0 else "long"
                notes.append(f"{a}-{b} dimer energy keeps falling towards {side} distances (no minimum "
                             f"within {radii[0]:.3g}-{radii[-1]:.3g} Å); bond length from the reference "
                             f"crystals: {r0:.3g} Å")
            table[za, zb] = table[zb, za] = bond
    return table, notes


#: Bond length (Å) beyond which the collapse bound scales with the bond (see HotMonitor)
SOFT_BOND = 2.0


class HotMonitor:
    """Per-step watch of a hot run; returns an :class:`md.Event` at the first failure.

    Tracks the closest approach relative to the dimer bond length, the
    compression of every bond (pair i-j) below the dimer bond length averaged
    over a 100 fs window (a pair that is not compressed counts 0), the largest
    force and the temperature (ratio to the target and rise over 10 steps).
    """

    def __init__(self, atoms: Atoms, bond: np.ndarray, temperature: float, dt_fs: float, tol):
        self.z = atoms.numbers.copy()
        self.n = len(atoms)
        self.bond = bond
        present = np.unique(self.z)
        self.cut = float(np.nanmax(bond[np.ix_(present, present)]))
        self.window = max(1, int(round(BOND_WINDOW_FS / dt_fs)))
        self.history: deque = deque()  # per step: {pair key: compression (Å)} of compressed pairs
        self.sums: dict = {}  # pair key -> summed compression over the window
        self.t0 = temperature
        self.dof = max(3 * self.n - 3, 1)
        self.temps: list[float] = []
        self.tol = {k: tol[k] for k in ("md_bond_compression", "md_overlap_fraction", "md_force_cap",
                                          "md_temperature_ratio", "md_temperature_jump")}
        # Fu et al.'s 0.5 Å is for covalent and metallic bonds (~1-2 Å); a longer, softer
        # bond gets the same 25 % of its length (the shortest bond present decides)
        shortest = float(np.nanmin(bond[np.ix_(present, present)]))
        self.tol["md_bond_compression"] *= max(1.0, shortest / SOFT_BOND)
        self.dt_fs = dt_fs
        # worst values seen: (value, step, description)
        self.worst = {"compression": (0.0, 0, ""), "overlap": (0.0, 0, ""), "force": (0.0, 0, ""),
                      "t_ratio": (0.0, 0, ""), "t_jump": (0.0, 0, "")}
        self.closest = []  # (step, d_min / d_eq) for the plot
        self.closest_by_pair: dict = {}  # (Z_a, Z_b), Z_a <= Z_b -> (d_min Å, step, i, j)

    def _window_add(self, current: dict) -> None:
        """Slide the window: add this step's compressions, drop the oldest step's."""
        self.history.append(current)
        for key, value in current.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        if len(self.history) > self.window:
            for key, value in self.history.popleft().items():
                left = self.sums[key] - value
                if left > 1e-12:
                    self.sums[key] = left
                else:
                    del self.sums[key]

    def _when(self, step: int) -> str:
        return f"step {step} (t = {step * self.dt_fs:.4g} fs)"

    def _update(self, key, value, step, text):
        if value > self.worst[key][0]:
            self.worst[key] = (float(value), step, text)

    def __call__(self, step: int, atoms: Atoms, forces: np.ndarray):
        z = self.z
        i, j, d = md.closest_pairs(atoms, self.cut)
        current = {}
        if len(d):
            ref = self.bond[z[i], z[j]]
            short = ref - d
            for key, value in zip((i * self.n + j)[short > 0], short[short > 0]):
                current[int(key)] = float(value)
            za, zb = np.minimum(z[i], z[j]), np.maximum(z[i], z[j])
            for pair in set(zip(za.tolist(), zb.tolist())):
                m = np.flatnonzero((za == pair[0]) & (zb == pair[1]))
                q = int(m[np.argmin(d[m])])
                if pair not in self.closest_by_pair or d[q] < self.closest_by_pair[pair][0]:
                    self.closest_by_pair[pair] = (float(d[q]), step, int(i[q]), int(j[q]))
            ratio = d / ref
            k = int(np.argmin(ratio))
            self.closest.append((step, float(ratio[k])))
            self._update("overlap", 1 - ratio[k], step,
                         f"atoms {_label(i[k], z)} and {_label(j[k], z)} at {d[k]:.3g} Å "
                         f"(dimer bond length {ref[k]:.3g} Å)")
        else:
            self.closest.append((step, 1.0))
        self._window_add(current)
        if step + 1 >= self.window and self.sums:
            key = max(self.sums, key=self.sums.get)
            mean = self.sums[key] / self.window
            if mean > self.worst["compression"][0]:
                a, p = divmod(key, self.n)
                self._update("compression", mean, step,
                             f"the bond of atoms {_label(a, z)} and {_label(p, z)} is {mean:.3g} Å shorter "
                             f"than the dimer bond length {self.bond[z[a], z[p]]:.3g} Å on average over "
                             f"{self.window * self.dt_fs:.3g} fs (now "
                             f"{atoms.get_distance(a, p, mic=True):.3g} Å)")
        norms = np.sqrt((forces * forces).sum(axis=1))
        a = int(np.argmax(norms))
        self._update("force", norms[a], step, f"|F| = {norms[a]:.3g} eV/Å on atom {_label(a, z)}")
        temp = 2 * atoms.get_kinetic_energy() / (self.dof * units.kB)
        self.temps.append(temp)
        self._update("t_ratio", temp / self.t0, step, f"T = {temp:.4g} K")
        if step >= JUMP_INTERVAL:
            before = max(self.temps[step - JUMP_INTERVAL], 0.1 * self.t0)
            self._update("t_jump", temp / before, step,
                         f"T rose from {self.temps[step - JUMP_INTERVAL]:.4g} K to {temp:.4g} K "
                         f"in {JUMP_INTERVAL} steps")
        return self._event(step)

    def _event(self, step: int):
        tol = self.tol
        rules = [("overlap", "md_overlap_fraction", "collapse (overlap)"),
                 ("compression", "md_bond_compression", "collapse"),
                 ("force", "md_force_cap", "force blow-up"),
                 ("t_ratio", "md_temperature_ratio", "explosion"),
                 ("t_jump", "md_temperature_jump", "explosion")]
        for key, name, kind in rules:
            value, at, text = self.worst[key]
            if at == step and value > tol[name]:
                return md.Event(kind, step, step * self.dt_fs, text)
        return None

    def fields(self) -> list[Field]:
        w, tol = self.worst, self.tol
        return [
            Field("bond compression (100 fs mean)", w["compression"][0], tol["md_bond_compression"], "Å",
                  where=self._when(w["compression"][1])),
            Field("closest approach 1 - d/d_eq", w["overlap"][0], tol["md_overlap_fraction"], "",
                  where=self._when(w["overlap"][1])),
            Field("max |F|", w["force"][0], tol["md_force_cap"], "eV/Å", where=self._when(w["force"][1])),
            Field("T / T_target", w["t_ratio"][0], tol["md_temperature_ratio"], "",
                  where=self._when(w["t_ratio"][1])),
            Field(f"T rise over {JUMP_INTERVAL} steps", w["t_jump"][0], tol["md_temperature_jump"], "",
                  where=self._when(w["t_jump"][1])),
        ]


def wall_trap(radii: np.ndarray, energies: np.ndarray, d_min: float, bond: float) -> tuple[float, int]:
    """Depth (eV) of the deepest trap in a dimer's repulsive wall between the
    closest approach ``d_min`` and the ``bond`` (Å), and the index of its bottom.

    On a sound wall E(r) falls monotonically from d_min to the bond: a pair at
    r is pushed out. A trap at r is an energy E(r') > E(r) at some r' ∈ (r,
    bond]: the pair must climb max E(r') - E(r) to get out (a hole or second
    minimum inside the wall). 0 when there is none; ``radii`` (ascending) and
    ``energies`` are a dimer scan (:func:`dimer_bond_lengths`).
    """
    inside = np.flatnonzero((radii >= d_min) & (radii <= bond))
    if len(inside) < 2:
        return 0.0, -1
    e = energies[inside]
    outward_max = np.maximum.accumulate(e[::-1])[::-1]  # max of E over [r, bond]
    depth = outward_max - e
    k = int(np.argmax(depth))
    return float(depth[k]), int(inside[k])


def trap_fields(monitor, scans: dict, bond: np.ndarray, tol: float) -> tuple[list[Field], list[str]]:
    """One field per species pair the run brought inside its dimer bond length:
    the wall trap between its closest approach and the bond (eV), and a note
    naming the hole when there is one. No model call (the dimer scans exist)."""
    fields, notes = [], []
    for (za, zb), (d_min, step, i, j) in sorted(monitor.closest_by_pair.items()):
        if (za, zb) not in scans or not d_min < bond[za, zb]:
            continue
        radii, energies = scans[za, zb]
        depth, k = wall_trap(radii, energies, d_min, bond[za, zb])
        pair = f"{chemical_symbols[za]}-{chemical_symbols[zb]}"
        fields.append(Field(f"{pair} dimer trap inside the wall", depth, tol, "eV",
                            where=f"r = {d_min:.3g}-{bond[za, zb]:.3g} Å (closest approach: atoms {i} "
                                  f"and {j} at {monitor._when(step)})"))
        if depth > tol:
            r_k, e_k = float(radii[k]), float(energies[k])
            notes.append(f"collapse into a short-range hole: the {pair} dimer energy has a minimum of "
                         f"{e_k:.3g} eV at {r_k:.3g} Å ({r_k / bond[za, zb]:.2f} × the bond, inside the "
                         f"repulsive wall) behind a {depth:.3g} eV rise towards the bond; atoms {i} and {j} "
                         f"reached {d_min:.3g} Å at {monitor._when(step)} — an attractive hole where the "
                         "wall should repel (training data thin at short range; a repulsive prior "
                         "such as ZBL fixes it)")
    return fields, notes


def coordination_change(run: md.MDRun, symbols) -> tuple[float, float, float]:
    """Mean coordination number at the start and over the last fifth of the frames,
    and |CN_end / CN_start - 1|."""
    cutoffs = md.reference_pair_distance(symbols) * CN_SHELL
    frames = run.frames
    if not frames:
        return 0.0, 0.0, 0.0
    start = float(md.coordination(frames[0], cutoffs).mean())
    tail = frames[-max(1, len(frames) // 5):]
    end = float(np.mean([md.coordination(f, cutoffs).mean() for f in tail]))
    return start, end, (abs(end / start - 1) if start > 0 else 0.0)


@check(family="dynamics", cases={"bulk", "alloy", "cluster"},
       calls="md_steps + 1, plus 41 per species pair (dimer scan), 16 (stiffest mode; 0 with md_timestep) "
             "and 5 (frames evaluated afresh)", unit="Å")
def hot_nvt_stability(model, case, ctx, rng):
    """Langevin MD at 1.5 × the melting point neither collapses nor explodes.

    Thermostat temperature: md_temperature, else 1.5 × the highest melting
    point of the case's species (Cu 1358 K, Au 1337 K, Ni 1728 K, Ag 1235 K,
    Al 933 K, Pd 1828 K, Pt 2041 K, else 1000 K); friction 0.01/fs. Failure
    criteria: collapse — an atom's bond stays > 0.5 Å shorter than the model's
    dimer bond length over 100 fs (Fu et al. 2022) or two atoms come closer
    than half of it; a force above 50 eV/Å; explosion — T above 10 × the
    target or rising 10× within 10 steps (MLIPAudit-style); a coordination
    change above 50 % (for isolated clusters only a rise: a hot cluster may
    evaporate atoms); a trap in the dimer's repulsive wall between the run's
    closest approach and the bond (a short-range hole the run fell into,
    from the dimer scan: no extra call; > 0.01 eV); 5 frames differing from a fresh evaluation (history
    carried by the calculator). Time step: md_timestep, else the shorter of
    the mass-based default shortened by sqrt(300 K / T) (at most 2×) and
    T_min/30 of the stiffest mode. The run stops at the first failure, which
    is reported with its step and time, and the trajectory is written.
    """
    symbols = case.atoms.get_chemical_symbols()
    temperature = float(ctx.config.md_temperature or (md.MOLECULE_HOT_TEMPERATURE_K if "molecule" in case.tags
                                                      else md.hot_temperature_K(symbols)))
    n_steps = steps_for(ctx, "hot")
    scans: dict = {}
    bond, bond_notes = dimer_bond_lengths(model, symbols, scans)
    atoms = thermalised(model, case, temperature, rng)
    dt, step_info = chosen_timestep(model, ctx, atoms, temperature)
    monitor = HotMonitor(atoms, bond, temperature, dt, ctx.tol)
    dyn = Langevin(atoms, dt * units.fs, temperature_K=temperature,
                   friction=md.DEFAULT_FRICTION_PER_FS / units.fs, fixcm=False, rng=rng)
    run = md.run_md(model, atoms, dyn, n_steps, dt, f"Langevin NVT at {temperature:.0f} K, dt = {dt:.3g} fs",
                    monitor=monitor, progress=ctx.progress)
    raise_model_error(run, ctx, "hot_nvt_stability", case)
    cn_start, cn_end, cn_change = coordination_change(run, symbols)
    fields = monitor.fields()
    traps, hole_notes = trap_fields(monitor, scans, bond, ctx.tol["md_wall_trap"])
    fields.extend(traps)
    history = fresh_comparison(model, run, ctx.tol)
    fields.extend(history)
    if case.periodic:
        fields.append(Field("coordination change", cn_change, ctx.tol["md_coordination_change"], "",
                            where=f"CN {cn_start:.3g} -> {cn_end:.3g}"))
    else:  # a hot cluster may evaporate atoms (physics): only over-coordination is judged
        rise = max(0.0, cn_end / cn_start - 1) if cn_start > 0 else 0.0
        fields.append(Field("coordination rise", rise, ctx.tol["md_coordination_change"], "",
                            where=f"CN {cn_start:.3g} -> {cn_end:.3g}"))
    what = f"Langevin NVT at {temperature:.0f} K, {n_steps} steps of {dt:.3g} fs on {case.name}"
    if run.event is not None:
        what += f", stopped at {run.when(run.event.step)}"
    notes = list(bond_notes)
    unknown = sorted({s for s in symbols if s not in md.MELTING_POINT_K})
    if unknown and not ctx.config.md_temperature:
        notes.append(f"no melting point known for {', '.join(unknown)}: assumed "
                     f"{md.FALLBACK_MELTING_POINT_K:.0f} K, so T = {temperature:.0f} K; set "
                     "--mlip-md-temperature for this material")
    if any(not f.ok for f in fields):
        path = save_trajectory(run, ctx, "hot_nvt_stability", case)
        if not all(f.ok for f in history):
            notes.insert(0, HISTORY_NOTE)
        notes[:0] = hole_notes
        if run.event is not None:
            notes.insert(0, f"{run.event.kind}: {run.event.message} at {run.when(run.event.step)}")
        elif all(f.ok for f in history):
            notes.insert(0, f"structure changed: mean coordination {cn_start:.3g} -> {cn_end:.3g}")
        notes.append(f"trajectory: {path}")
    notes.append(step_info["why"])
    details = _hot_details(run, monitor, bond, symbols, temperature, dt, n_steps, case)
    details.update(step_info, dt_fs=dt, coordination={"start": cn_start, "end": cn_end},
                   start=start_case(model, case).note)
    if hole_notes and details["event"] is not None:
        details["event"]["kind"] = "collapse (short-range hole)"
    return Verdict(fields, what=what, note="\n".join(notes), details=details)


def _hot_details(run, monitor, bond, symbols, temperature, dt, n_steps, case) -> dict:
    frames = run.frames
    nn = md.reference_pair_distance(symbols)
    present = sorted(set(case.atoms.numbers.tolist()))
    r_max = float(np.nanmax(nn[np.ix_(present, present)]) * 2.2)
    quarter = max(1, len(frames) // 4)
    r, g_early = md.rdf(frames[quarter:2 * quarter] or frames[:1], r_max)
    _, g_late = md.rdf(frames[-quarter:], r_max)
    dr = r[1] - r[0]
    norm = float(g_early.sum() * dr)
    rdf_drift = float(np.abs(g_late - g_early).sum() * dr / norm) if norm > 0 else 0.0
    closest = np.asarray(monitor.closest)
    idx = md.decimate(len(closest), 200)
    tr = run.trace()
    return {
        "temperature_K": temperature, "dt_fs": dt, "n_steps": n_steps, "steps_run": run.n_steps,
        "event": None if run.event is None else {"kind": run.event.kind, "step": run.event.step,
                                                 "time_fs": run.event.time_fs,
                                                 "message": run.event.message},
        "dimer_bond_length_A": {f"{chemical_symbols[a]}-{chemical_symbols[b]}": float(bond[a, b])
                                for a in present for b in present if a <= b},
        "rdf_drift": rdf_drift, "trace": tr,
        "plots": [
            {"title": f"Hot NVT, {case.name}", "xlabel": "time (fs)", "ylabel": "T (K)",
             "series": [{"x": tr["time_fs"], "y": tr["temperature_K"], "label": "T", "style": "line"}],
             "hlines": [{"y": temperature, "label": "thermostat"}]},
            {"title": f"Closest approach, {case.name}", "xlabel": "time (fs)", "ylabel": "d_min / d_eq",
             "series": [{"x": closest[idx, 0] * dt, "y": closest[idx, 1], "label": "closest pair",
                         "style": "line"}],
             "hlines": [{"y": 1 - monitor.tol["md_overlap_fraction"], "label": "overlap"}]},
            {"title": f"g(r), {case.name}", "xlabel": "r (Å)", "ylabel": "g(r)",
             "series": [{"x": r, "y": g_early, "label": "2nd quarter", "style": "line"},
                        {"x": r, "y": g_late, "label": "last quarter", "style": "line"}]},
        ],
    }
