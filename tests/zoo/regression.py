"""Models for the regression family: a float32 build, a twin with a faulty fast path,
changed parameters. Only absolute imports: loaded as ``tests/zoo/regression.py:NAME``
specs, too."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT


class Float32Reference(Calculator):
    """A bundled reference model run as a float32 build would: positions and cell
    rounded to float32 on the way in, every output rounded to float32 on the way out.

    Parameters
    ----------
    name : str
        Reference model (``nn``, ``linear``).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]
    precision = "float32"

    def __init__(self, name: str = "nn", **kwargs):
        super().__init__(**kwargs)
        import reference_models

        self.inner = reference_models.load(name)
        self.species = list(self.inner.species)
        self.cutoff = self.inner.cutoff

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        work.positions = work.positions.astype(np.float32).astype(float)
        work.set_cell(work.cell.array.astype(np.float32).astype(float), scale_atoms=False)
        self.inner.calculate(work, properties, all_changes)
        self.results = {}
        for key, value in self.inner.results.items():
            if key in ("energy", "free_energy"):
                self.results[key] = float(np.float32(value))
            elif key in ("forces", "stress"):
                self.results[key] = np.asarray(value).astype(np.float32).astype(float)


class FastPathTwin(EMT):
    """EMT whose "fast path" is off by 1e-4 eV/Å (along x) on the forces of every
    atom of one element (``element``, default Ni); energies and stress are EMT's."""

    element = "Ni"
    offset = 1e-4  # eV/Å

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        mask = np.array(self.atoms.get_chemical_symbols()) == self.element
        forces = self.results["forces"].copy()
        forces[mask, 0] += self.offset
        self.results["forces"] = forces


class ScaledEMT(EMT):
    """EMT with every energy, force and stress scaled by ``1 + scale`` (default 1e-6):
    a changed parameter of the model."""

    scale = 1e-6

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        for key in ("energy", "free_energy", "energies", "forces", "stress"):
            if key in self.results:
                self.results[key] = self.results[key] * (1.0 + self.scale)


def make_emt_cu_ni():
    """EMT declaring the species Cu and Ni."""
    calc = EMT()
    calc.species = ["Cu", "Ni"]
    return calc
