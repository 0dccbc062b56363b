"""Comparison of two evaluations that must agree, shared by the check families.

Measure, then judge: :func:`compare` returns one :class:`Field` per property
(largest absolute difference and where it occurs) next to the tolerance that
property is held to, scaled with the system size and the force/stress
magnitude of the reference:

* energy: ``energy_atol × N`` (eV);
* forces: ``force_atol + force_rtol × max|F|`` (eV/Å);
* stress: ``stress_atol + stress_rtol × max|σ|`` (eV/Å³).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..core.tolerances import Tolerances

VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")


def properties_for(model, case) -> tuple[str, ...]:
    """Properties to compare on a case: energy, forces, and stress when the
    model has it and the case is periodic in all three directions."""
    props = ["energy", "forces"]
    if model.tags.has_stress and "periodic3" in case.tags:
        props.append("stress")
    return tuple(props)


def compare(expected: Mapping[str, Any], got: Mapping[str, Any], tol: Tolerances,
            n_atoms: int, prefix: str = "", noise=None) -> list:
    """Fields comparing ``got`` with ``expected`` (both from Model.evaluate).

    Parameters
    ----------
    expected, got : dict
        ``energy`` (eV), ``forces`` (N, 3) eV/Å, ``stress`` (6,) eV/Å³;
        only keys present in both are compared.
    tol : Tolerances
    n_atoms : int
        Number of atoms the energy is a sum over.
    prefix : str
        Prepended to field names (``"rotated "``).
    noise : conformance.toolkit.noise.Noise, optional
        The model's noise floor on the case; ``noise_factor`` times it is added
        to each tolerance (float32 models).
    """
    from ..toolkit.noise import Noise
    from ..core.result import Field

    noise = noise or Noise()
    k = tol["noise_factor"]
    fields = []
    if "energy" in expected and "energy" in got:
        err = abs(got["energy"] - expected["energy"])
        fields.append(Field(prefix + "|ΔE|", err, tol["energy_atol"] * n_atoms + k * noise.energy, "eV"))
    if "forces" in expected and "forces" in got:
        f0 = np.asarray(expected["forces"])
        diff = np.linalg.norm(np.asarray(got["forces"]) - f0, axis=1)
        i = int(np.argmax(diff)) if len(diff) else 0
        scale = float(np.abs(f0).max()) if f0.size else 0.0
        fields.append(Field(prefix + "max |ΔF|", float(diff.max()) if len(diff) else 0.0,
                            tol["force_atol"] + tol["force_rtol"] * scale + k * noise.forces, "eV/Å",
                            f"atom {i}"))
    if "stress" in expected and "stress" in got:
        s0 = np.asarray(expected["stress"])
        diff = np.abs(np.asarray(got["stress"]) - s0)
        j = int(np.argmax(diff))
        fields.append(Field(prefix + "max |Δσ|", float(diff.max()),
                            tol["stress_atol"] + tol["stress_rtol"] * float(np.abs(s0).max())
                            + k * noise.stress, "eV/Å³", f"component {VOIGT[j]}"))
    return fields


def case_reproducer(case, ctx, body: str) -> str:
    """Python lines that rebuild ``case`` (as ``atoms``) and then run ``body``.

    ``calc`` is loaded from the run's model spec when there is one, else it stands
    for the user's calculator; the species are the run's, so
    :func:`conformance.toolkit.structures.find_case` rebuilds the identical case.
    """
    species = list(ctx.species) or sorted(set(case.atoms.get_chemical_symbols()))
    modules = "structures, transforms" if "transforms." in body else "structures"
    spec = ctx.config.model
    if spec:
        kwargs = f", {ctx.config.model_kwargs!r}" if ctx.config.model_kwargs else ""
        calc = f"import adapters\ncalc = adapters.load({spec!r}{kwargs}).calc\n"
    else:
        calc = "calc = ...  # your calculator\n"
    return (f"import numpy as np\nfrom conformance.toolkit import {modules}\n"
            f"atoms = structures.find_case({case.name!r}, species={species!r}, "
            f"seed={ctx.config.seed}).copy()\n" + calc + body)
