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

from ..core.tolerances import Tolerances
from ..toolkit.differential import VOIGT, differences, properties_of  # noqa: F401  (VOIGT re-exported)

#: properties compared on a case: energy, forces, and stress when the model has it and the
#: case is periodic in all three directions
properties_for = properties_of


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
    from ..core.result import Field

    names = {"energy": "|ΔE|", "forces": "max |ΔF|", "stress": "max |Δσ|"}
    return [Field(prefix + names[d.property], d.error, d.tolerance, d.unit, d.where)
            for d in differences(expected, got, tol, n_atoms, noise, resolution=False)]


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
