"""Pre-relaxation of cases with the model under audit, before the checks run.

A molecule built from the G2 set sits at the MP2 minimum, not at the model's:
a model whose C–H bond is 0.03 Å longer starts MD with forces of several
eV/Å and a potential energy far above the thermostat's, so the dynamics
judge the geometry, not the model. :func:`relax_cases` moves the selected
cases (by default those tagged ``molecule``) to the model's own minimum with
a bounded, deterministic optimiser, then rattles them by a small amplitude
so that no force vanishes by symmetry (the symmetry checks need non-zero
forces, see :data:`conformance.toolkit.structures.RATTLE`).

Cost: at most ``steps + 1`` counted model calls per relaxed case (BFGS, one
energy-and-forces evaluation per step); :class:`Relaxation` records what was
spent. The session calls it once, after building the cases::

    from conformance.toolkit.relax import relax_cases
    log = []
    cases = relax_cases(model, cases, seed=config.seed, log=log)
    calls = sum(r.calls for r in log)

It never raises for the model's sake: a model error or an energy that rose
leaves the case as built, and its ``note`` says why.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from ..core.model import Model, ModelError
from .structures import Case, case_rng

#: Convergence: largest atomic force (eV/Å), ASE's customary criterion for
#: molecules (0.05 eV/Å moves a C–H bond by ~2 mÅ, k ≈ 30 eV/Å²).
RELAX_FMAX = 0.05
#: Most optimiser steps per case (one model call each): G2 molecules relaxed
#: with BFGS from the MP2 geometry converge in 10-30 steps.
RELAX_STEPS = 50
#: Largest step of an atom per BFGS iteration (Å); ASE's default 0.2 Å lets a
#: stiff model overshoot into another basin, 0.1 Å does not.
RELAX_MAXSTEP = 0.1
#: Rattle (Å, Gaussian σ per coordinate) after relaxing: forces of 0.2-2 eV/Å
#: (a signal for the symmetry checks, far above their tolerances) and a start
#: near the model's minimum: the strain energy of a C–H bond (k ≈ 30 eV/Å²)
#: is then ~0.1 k_B T at 300 K, where the built cases' 0.05 Å gives ~3 k_B T
#: (MD started from them runs hotter than its thermostat).
RELAXED_RATTLE = 0.01
#: Relaxed positions are rounded to this (Å) before the rattle, so that
#: processes (pytest-xdist workers) whose model differs by round-off build
#: bit-identical cases.
ROUND_TO = 1e-6


@dataclass(frozen=True)
class Relaxation:
    """What relaxing one case did.

    Attributes
    ----------
    case : str
    steps : int
        Optimiser steps taken.
    calls : int
        Model calls spent (counted by :meth:`Model.evaluate`).
    fmax_before, fmax_after : float
        Largest atomic force (eV/Å) of the case as built and at the end of
        the optimisation (before the thermal rattle).
    energy_change : float
        E_after − E_before (eV).
    converged : bool
        Reached ``fmax`` within the step budget.
    kept : bool
        The relaxed structure replaced the built one (False after a model
        error or a rise of the energy).
    reason : str
        Why it was not kept, else empty.
    """

    case: str
    steps: int
    calls: int
    fmax_before: float
    fmax_after: float
    energy_change: float
    converged: bool
    kept: bool
    reason: str = ""

    def describe(self, rattle: float = RELAXED_RATTLE) -> str:
        """One sentence for the case's note and the report."""
        if not self.kept:
            return f"not relaxed ({self.reason}; {self.calls} model calls spent)"
        state = "converged" if self.converged else "not converged"
        return (f"relaxed with the model: {self.steps} BFGS steps ({self.calls} calls, {state}), "
                f"max |F| {self.fmax_before:.3g} -> {self.fmax_after:.3g} eV/Å, "
                f"ΔE = {self.energy_change:+.4g} eV; then rattled {rattle:g} Å")


def _fmax(forces: np.ndarray) -> float:
    return float(np.sqrt((forces * forces).sum(axis=1)).max()) if len(forces) else 0.0


def relax(model: Model, case: Case, fmax: float = RELAX_FMAX, steps: int = RELAX_STEPS,
          maxstep: float = RELAX_MAXSTEP) -> tuple[np.ndarray | None, Relaxation]:
    """Relax one case with the model (BFGS, bounded).

    Returns
    -------
    positions : (N, 3) ndarray of float, Å, or None
        Relaxed positions rounded to :data:`ROUND_TO`; None when the
        relaxation is not to be used (model error, energy rose).
    record : Relaxation
    """
    from ase.optimize import BFGS

    from .md import AuditedCalculator

    calls0 = model.n_calls
    atoms = case.copy()
    atoms.calc = AuditedCalculator(model)
    try:
        e0 = float(atoms.get_potential_energy())
        f0 = _fmax(atoms.get_forces())
        opt = BFGS(atoms, logfile=None, maxstep=maxstep)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ASE's optimisers warn on API details; never the run's concern
            converged = bool(opt.run(fmax=fmax, steps=steps))
        e1 = float(atoms.get_potential_energy())
        f1 = _fmax(atoms.get_forces())
        n_steps = int(opt.nsteps)
    except ModelError as exc:
        rec = Relaxation(case.name, 0, model.n_calls - calls0, math.nan, math.nan, math.nan, False,
                         False, f"model error: {exc}")
        return None, rec
    calls = model.n_calls - calls0
    if not (e1 <= e0) or not np.isfinite(atoms.positions).all():
        return None, Relaxation(case.name, n_steps, calls, f0, f1, e1 - e0, converged, False,
                                f"the energy rose by {e1 - e0:+.3g} eV")
    positions = np.round(atoms.positions / ROUND_TO) * ROUND_TO
    return positions, Relaxation(case.name, n_steps, calls, f0, f1, e1 - e0, converged, True)


def relax_cases(model: Model, cases: Sequence[Case], seed: int = 0,
                tags: Iterable[str] = ("molecule",), fmax: float = RELAX_FMAX,
                steps: int = RELAX_STEPS, rattle: float = RELAXED_RATTLE,
                log: list | None = None) -> list[Case]:
    """The cases, with those carrying one of ``tags`` relaxed with the model.

    Each selected case is relaxed by :func:`relax` (at most ``steps + 1``
    model calls) and rattled by ``rattle`` Å with a generator seeded by
    ``(seed, case name)``: the result depends only on the model, the seed and
    the case. Other cases are returned as they are (same objects). The
    relaxation is described in the case's ``note``.

    Parameters
    ----------
    model : Model
    cases : sequence of Case
    seed : int
        The run's seed (the rattle after relaxing).
    tags : iterable of str
        Relax cases carrying any of these tags (default: molecules).
    fmax, steps : float, int
        Convergence (eV/Å) and step budget of the optimiser.
    rattle : float
        Gaussian σ (Å) of the displacement applied after relaxing.
    log : list, optional
        Receives one :class:`Relaxation` per relaxed case (calls spent,
        forces before and after).

    Returns
    -------
    list of Case, same order and names.
    """
    wanted = frozenset(tags)
    out = []
    for case in cases:
        if not (case.tags & wanted):
            out.append(case)
            continue
        positions, record = relax(model, case, fmax, steps)
        atoms = case.copy()
        if positions is not None:
            rng = case_rng(seed, case.name + ":relaxed")
            atoms.positions = positions + rng.normal(0.0, rattle, positions.shape)
        if log is not None:
            log.append(record)
        sentence = record.describe(rattle)
        note = f"{case.note}; {sentence}" if case.note else sentence
        out.append(dataclasses.replace(case, atoms=atoms, note=note))
    return out


def find_relaxed_case(name: str, species: Sequence[str], calc, seed: int = 0) -> Case:
    """The case ``name`` as a session that relaxes its cases runs it (for reproducers).

    :func:`conformance.toolkit.structures.find_case` rebuilds the case as built; for a
    relaxed case (a molecule) this relaxes it with ``calc`` exactly as
    :func:`relax_cases` did in the run (same seed, same budget), so the
    positions are the run's when ``calc`` is the run's model.
    """
    from .structures import find_case

    case = find_case(name, species, seed)
    model = calc if isinstance(calc, Model) else Model(calc)
    return relax_cases(model, [case], seed=seed)[0]
