"""Broken twins of the corpus models: the same third-party potential with one
realistic defect, each to be caught by the family that names it.

Wrappers, so the twin differs from its correct model in exactly one place.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from . import models


class Wrapped(Calculator):
    """Delegates to ``inner`` on a copy of the structure; subclasses change one thing."""

    nolabel = True

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner
        self.implemented_properties = [p for p in inner.implemented_properties
                                       if p in ("energy", "free_energy", "energies", "forces", "stress")]
        for name in ("cutoff", "species", "precision", "mlip_tags"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def evaluate(self, atoms, properties):
        work = atoms.copy()
        work.calc = None
        self.inner.reset()
        return {p: np.array(self.inner.get_property(p, work)) for p in properties}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        props = list(dict.fromkeys(list(properties) + ["energy", "forces"]))
        self.results.update(self.evaluate(self.atoms, props))
        self.results["free_energy"] = self.results["energy"]


class ScaledForces(Wrapped):
    """Forces 1.02 × -∇E (a normalisation slip of a force head): conservation."""

    def evaluate(self, atoms, properties):
        out = super().evaluate(atoms, properties)
        out["forces"] = 1.02 * out["forces"]
        return out


class FlippedStress(Wrapped):
    """Stress with the wrong sign (pressure for stress): conservation."""

    def evaluate(self, atoms, properties):
        out = super().evaluate(atoms, properties)
        if "stress" in out:
            out["stress"] = -out["stress"]
        return out


class PositionsOnlyCache(Wrapped):
    """Results cached on the positions alone: a changed cell or species is missed (hygiene)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        key = atoms.positions.tobytes() if atoms is not None else None
        cached = getattr(self, "_cache", None)
        if cached is not None and cached[0] == key and all(p in cached[1] for p in properties):
            Calculator.calculate(self, atoms, properties, system_changes)
            self.results.update(cached[1])
            return
        super().calculate(atoms, properties, system_changes)
        self._cache = (key, dict(self.results))


class Anisotropic(Wrapped):
    """Evaluates the structure stretched by 0.2 % along x (a frame-dependent
    preprocessing step): symmetry."""

    def evaluate(self, atoms, properties):
        work = atoms.copy()
        stretch = np.diag([1.002, 1.0, 1.0])
        work.positions = work.positions @ stretch
        if work.cell.rank == 3:
            work.cell = work.cell.array @ stretch
        return super().evaluate(work, properties)


class NetForceBias(Wrapped):
    """A constant 0.01 eV/Å added to every atom's x force (a spurious field): conservation."""

    def evaluate(self, atoms, properties):
        out = super().evaluate(atoms, properties)
        out["forces"] = out["forces"] + np.array([0.01, 0.0, 0.0])
        return out


def hard_cut_lennard_jones():
    """ASE's Lennard-Jones without its smooth switch: energy shifted to zero at r_c,
    the force jumps there (smoothness)."""
    from ase.calculators.lj import LennardJones

    return LennardJones(sigma=3.40, epsilon=0.0104, rc=10.2, smooth=False)


#: corpus model name -> (broken twin factory, the family that must catch it)
TWINS = {
    "EMT-Cu,Au": (lambda: Anisotropic(models.emt()), "symmetry"),
    "EMT-Ni,Pd": (lambda: PositionsOnlyCache(models.emt()), "hygiene"),
    "EMT-Ag,Pt,Al": (lambda: NetForceBias(models.emt()), "conservation"),
    "LJ-Ar": (hard_cut_lennard_jones, "smoothness"),
    "Morse-Cu": (lambda: ScaledForces(models.morse_copper()), "conservation"),
    "SW-Si": (lambda: FlippedStress(models.stillinger_weber_si()), "conservation"),
    "Tersoff-Si": (lambda: Anisotropic(models.tersoff_si()), "symmetry"),
    "Kumagai-Si": (lambda: PositionsOnlyCache(models.kumagai_si()), "hygiene"),
}
