"""Energy+forces of the reference models next to ASE's EMT, and their cost split.

Sizes: fcc Cu cubes of 108, 864 and 6912 atoms. ``track_atoms_per_second`` makes
the EMT ratio visible in one run; the neighbour-list / descriptor / model split
shows where the reference models spend their time.
"""

from __future__ import annotations

import numpy as np

from benchmarks.common import cu_cell, energy_and_forces, make_calculator

SIZES = [108, 864, 6912]
MODELS = ["emt", "linear", "nn"]


class EnergyForces:
    params = [MODELS, SIZES]
    param_names = ["model", "n_atoms"]
    timeout = 600

    def setup(self, model, n_atoms):
        self.calc = make_calculator(model)
        self.atoms = cu_cell(n_atoms)
        self.rng = np.random.default_rng(0)
        energy_and_forces(self.calc, self.atoms, self.rng)  # warm-up (imports, buffers)

    def time_energy_forces(self, model, n_atoms):
        energy_and_forces(self.calc, self.atoms, self.rng)

    def peakmem_energy_forces(self, model, n_atoms):
        energy_and_forces(self.calc, self.atoms, self.rng)


class CostSplit:
    """Neighbour list (vesin) vs descriptors (+ derivatives) vs the full model call."""

    params = [SIZES]
    param_names = ["n_atoms"]

    def setup(self, n_atoms):
        import reference_models

        self.calc = reference_models.load("linear")
        self.atoms = cu_cell(n_atoms)
        self.cutoff = self.calc.cutoff

    def time_neighbor_list(self, n_atoms):
        from reference_models.neighbors import neighbor_list

        neighbor_list(self.atoms, self.cutoff)

    def time_ase_neighbor_list(self, n_atoms):
        from ase.neighborlist import neighbor_list

        neighbor_list("ijS", self.atoms, self.cutoff)

    def time_descriptors(self, n_atoms):
        self.calc.model.descriptor.compute(self.atoms)

    def time_model_call(self, n_atoms):
        self.calc.calculate(self.atoms, ["energy", "forces"])
