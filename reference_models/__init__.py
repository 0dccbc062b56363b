"""Bundled reference models: trained from EMT data until the conformance suite passes.

>>> import reference_models
>>> reference_models.available()
['linear', 'nn', 'nn_direct', 'nn_direct_penalised']
>>> calc = reference_models.load("linear")
>>> calc.species, calc.cutoff, calc.precision
(['Cu', 'Au'], 5.5, 'float64')

Modules: :mod:`.switching` (quintic cutoff), :mod:`.neighbors` (vesin neighbour list),
:mod:`.descriptors` (density-expansion descriptors with analytic derivatives),
:mod:`.data` (EMT training data and sampling plan), :mod:`.linear` (weighted ridge fit,
Pareto front, multi-fidelity), :mod:`.nn` (residual MLP and direct-force model),
:mod:`.core` (fixed short-range repulsion), :mod:`.calculator` (ASE calculator,
parameter files), :mod:`.metrics` (errors), :mod:`.train` (command line),
:mod:`.speed` (timings next to EMT).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["load", "available", "PARAMS_DIR"]

PARAMS_DIR = Path(__file__).with_name("params")
_MODELS = ("linear", "nn", "nn_direct", "nn_direct_penalised")


def available() -> list[str]:
    """Names accepted by :func:`load` whose parameter files are shipped."""
    return [name for name in _MODELS if (PARAMS_DIR / f"{name}.npz").exists()]


def load(name: str = "linear", **kwargs):
    """A fresh ASE calculator for a bundled model.

    Parameters
    ----------
    name : {"linear", "nn", "nn_direct", "nn_direct_penalised"}
    **kwargs
        Passed to :class:`~reference_models.calculator.ReferenceCalculator`; ``path``
        loads parameters from another ``.npz`` file.

    Returns
    -------
    ReferenceCalculator
    """
    from .calculator import ReferenceCalculator, load_model

    if name not in _MODELS:
        raise ValueError(f"unknown reference model {name!r}; choose from {list(_MODELS)}")
    path = Path(kwargs.pop("path", PARAMS_DIR / f"{name}.npz"))
    if not path.exists():
        raise FileNotFoundError(f"no parameters for {name!r} at {path}; "
                                f"run `python -m reference_models.train {name}`")
    return ReferenceCalculator(load_model(path), name=name, **kwargs)
