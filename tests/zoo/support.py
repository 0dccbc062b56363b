"""Models that cannot take a whole class of structures as given."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import all_changes

from .base import SmoothPair


class NeedsCell(SmoothPair):
    """Correct, but builds its graph from the lattice: raises on a structure
    without a full cell, as CHGNet and matscipy's Manybody do."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        a = atoms if atoms is not None else self.atoms
        if a is not None and a.cell.rank < 3:
            raise np.linalg.LinAlgError("Singular matrix")
        super().calculate(atoms, properties, system_changes)


class BulkOnly(SmoothPair):
    """Raises on any cell vector longer than 10 Å: no slab, wire or boxed
    molecule can be evaluated, periodic crystals can."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        a = atoms if atoms is not None else self.atoms
        if a is not None and (a.cell.rank < 3 or a.cell.lengths().max() > 10.0 or not a.pbc.all()):
            raise ValueError("this model handles bulk crystals only")
        super().calculate(atoms, properties, system_changes)
