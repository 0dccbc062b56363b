"""Models that misbehave as software: raise, return NaN, hang, lack properties."""

from __future__ import annotations

import time

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from .base import SmoothPair


class Raising(Calculator):
    """Raises on every call."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        raise RuntimeError("CUDA out of memory (simulated)")


class ReturnsNaN(SmoothPair):
    """Correct except that forces of atom 0 are NaN."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"] = self.results["forces"].copy()
        self.results["forces"][0] = np.nan


class WrongShape(SmoothPair):
    """Returns forces with one row missing."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"] = self.results["forces"][:-1]


class Hangs(SmoothPair):
    """Sleeps far longer than any sensible timeout on periodic structures."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if self.atoms is None and atoms is not None and atoms.pbc.any():
            time.sleep(30)
        super().calculate(atoms, properties, system_changes)


class NoStress(SmoothPair):
    """A molecule-only model: energy and forces, no stress."""

    implemented_properties = ["energy", "free_energy", "forces"]
