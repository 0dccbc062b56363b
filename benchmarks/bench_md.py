"""MD steps through the audited-model wrapper: cost per step and the share outside
the calculator (target < 25 % for a 108-atom cell)."""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import make_calculator


class VelocityVerletStep:
    params = [["emt", "linear"], [108, 864]]
    param_names = ["model", "n_atoms"]
    timeout = 600

    def setup(self, model, n_atoms):
        from ase import units
        from ase.build import bulk
        from ase.md.velocitydistribution import thermalize_momenta
        from ase.md.verlet import VelocityVerlet

        from conformance.toolkit.md import AuditedCalculator
        from conformance.core.model import Model

        repeat = round((n_atoms / 4) ** (1 / 3))
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(repeat)
        thermalize_momenta(atoms, 300, rng=np.random.default_rng(0))
        self.model = Model(make_calculator(model))
        atoms.calc = AuditedCalculator(self.model)
        self.dyn = VelocityVerlet(atoms, 5 * units.fs)
        self.dyn.run(2)

    def time_md_step(self, model, n_atoms):
        self.dyn.run(1)

    def track_outside_calculator(self, model, n_atoms):
        self.model.calc_seconds = 0.0
        t0 = time.perf_counter()
        self.dyn.run(20)
        return 100.0 * (1 - self.model.calc_seconds / (time.perf_counter() - t0))

    track_outside_calculator.unit = "%"
