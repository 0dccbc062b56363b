"""ASE calculator around the reference models, and their parameter files.

Every model exposes ``descriptor`` and ``evaluate(atoms) -> dict`` with ``energy`` (eV),
``energies`` (N,) eV, ``forces`` (N, 3) eV/Å and ``virial`` (3, 3) eV, the strain
derivative dE/dε at fixed fractional coordinates.  :class:`ReferenceCalculator` turns
that into the ASE contract:

* ``implemented_properties``: energy, free_energy, energies, forces, stress;
* stress in Voigt order xx, yy, zz, yz, xz, xy in eV/Å³, ``stress = virial / volume``
  (ASE's sign: positive under tension), available only when the cell has rank 3,
  otherwise :class:`~ase.calculators.calculator.PropertyNotImplementedError`;
* ``species`` (element symbols), ``cutoff`` (Å) and ``precision`` ("float64");
* unknown elements raise ``ValueError`` naming them; the input Atoms is never modified
  (ASE's ``Calculator.calculate`` keeps a copy, and the models only read it).

Parameters are stored in ``.npz`` files: a ``kind`` string, the descriptor's constructor
arguments as JSON and the model's arrays.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase.calculators.calculator import (Calculator, PropertyNotImplementedError,
                                        all_changes)

from .descriptors import Descriptor

__all__ = ["ReferenceCalculator", "save_model", "load_model", "MODEL_KINDS"]

VOIGT = ([0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1])


def _model_kinds():
    from .linear import LinearModel
    from .nn import DirectForceModel, ResidualNetwork
    return {"linear": LinearModel, "nn": ResidualNetwork, "nn_direct": DirectForceModel}


MODEL_KINDS = ("linear", "nn", "nn_direct")


def save_model(model, path) -> Path:
    """Write a model's parameters to ``path`` (.npz).

    Parameters
    ----------
    model : LinearModel, ResidualNetwork or DirectForceModel
    path : str or Path

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = model.to_arrays()
    np.savez(path, kind=np.array(model.kind),
             descriptor=np.array(json.dumps(model.descriptor.get_params())),
             info=np.array(json.dumps(model.info, default=float)), **arrays)
    return path


def load_model(path):
    """Read a model written by :func:`save_model`."""
    with np.load(path, allow_pickle=False) as f:
        kind = str(f["kind"])
        descriptor = Descriptor(**json.loads(str(f["descriptor"])))
        info = json.loads(str(f["info"]))
        arrays = {k: f[k] for k in f.files if k not in ("kind", "descriptor", "info")}
    model = _model_kinds()[kind].from_arrays(descriptor, arrays)
    model.info = info
    return model


class ReferenceCalculator(Calculator):
    """ASE calculator for a bundled reference model.

    Parameters
    ----------
    model : LinearModel, ResidualNetwork or DirectForceModel
        Fitted model (see :func:`reference_models.load`).
    name : str, optional
        Label shown in reports.

    Attributes
    ----------
    species : list of str
        Elements the model knows.
    cutoff : float
        Interaction cutoff in Å.
    precision : str
        "float64".
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]
    precision = "float64"

    def __init__(self, model, name: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.model_name = name or model.kind
        self.species = list(model.descriptor.species)
        self.cutoff = float(model.descriptor.cutoff)

    def __repr__(self) -> str:
        return f"ReferenceCalculator({self.model_name!r}, species={self.species}, cutoff={self.cutoff})"

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms  # a private copy made by Calculator.calculate
        rank3 = atoms.cell.rank == 3
        if "stress" in properties and not rank3:
            raise PropertyNotImplementedError(
                "stress needs a cell of rank 3; this structure's cell has rank "
                f"{atoms.cell.rank}")
        out = self.model.evaluate(atoms)
        self.results = {
            "energy": float(out["energy"]),
            "free_energy": float(out["energy"]),
            "energies": out["energies"],
            "forces": out["forces"],
        }
        if rank3:
            virial = out["virial"]
            sym = 0.5 * (virial + virial.T)
            self.results["stress"] = sym[VOIGT] / abs(atoms.cell.volume)
