"""Broken models for the dynamics family: each fails in molecular dynamics in
one characteristic way (SmoothPair or EMT with one thing changed)."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import all_changes

from .base import SmoothPair, quintic_switch
from .hygiene import VerletLastCall


class StiffPair(SmoothPair):
    """SmoothPair with a stiffer wall and a nearest-neighbour-shell cutoff
    (alpha = 2.5 /Å, switch 3.0-3.9 Å): a correct pair model that stays a
    well-behaved melt at 1.5 × the melting point. (SmoothPair's soft, long-ranged
    Morse, alpha r0 = 3.3, squeezes its melt: bonds stay 0.5-0.7 Å shorter than
    its dimer bond length, which hot_nvt_stability reports as a collapse.)"""

    default_parameters = dict(SmoothPair.default_parameters, alpha=2.5, r_on=3.0, rc=3.9)


class ThinSkinVerletLastCall(VerletLastCall):
    """The wrong Verlet rebuild test with a 0.05 Å skin on SmoothPair (cutoff
    5 Å, fcc Cu's 4th shell at 5.1 Å): 300 K vibrations move 4th-shell pairs
    in and out of the cutoff while no step moves an atom by 0.025 Å, so NVE
    sees the history (the walk, whose 0.05 Å steps exceed skin/2, rebuilds
    every step and does not)."""

    skin = 0.05


class ShortRangeHole(StiffPair):
    """StiffPair whose repulsive wall is missing at short range: below r_out the
    pair energy crosses over smoothly (quintic, C2) from the Morse wall to a
    flat -W below r_in — a model trained without close-contact data.

    Smooth and conservative, identical to StiffPair beyond r_out = 2.2 Å
    (nearest neighbours at 300 K stay above ~2.3 Å): the barrier into the hole
    (~1 eV) is never crossed at room temperature but is within a picosecond
    at 1.5 × the melting point; atoms that cross stay bound at < 1.5 Å.
    Caught by hot_nvt_stability as a collapse.
    """

    W = 3.0  # eV
    r_in, r_out = 1.8, 2.3  # Å

    def pair_term(self, D, d):
        e, g = super().pair_term(D, d)
        s, ds = quintic_switch(d, self.r_in, self.r_out)  # 1 inside r_in, 0 beyond r_out
        de = (g * D).sum(axis=1) / d  # d e / d r of the Morse part
        e_new = (1 - s) * e - self.W * s
        de_new = (1 - s) * de - ds * e - self.W * ds
        return e_new, (de_new / d)[:, None] * D


class WallHole(StiffPair):
    """StiffPair with an attractive hole inside its repulsive wall, the way ML
    potentials without a repulsive prior often are where training data is thin:
    a C2 well -W (1 - x²)³, x = (r - r_h)/w, with W = 16 eV, r_h = 1.75 Å,
    w = 0.45 Å (support 1.3-2.2 Å), added to the Morse pair.

    Identical to StiffPair from 2.2 Å (0.86 × its 2.55 Å bond) outwards; the
    dimer energy rises to a barrier of +0.54 eV at 2.15 Å (0.89 eV above the
    bond's -0.35 eV), falls into a second minimum of -6.2 eV at 1.86 Å
    (0.73 × the bond) and rises again below 1.3 Å (the wall is restored: +166 eV
    at 1.3 Å). Smooth and conservative: NVE at 300 K never reaches it; hot MD
    pairs fall in and stay. A static dimer scan down to 0.5 × the bond finds
    the second minimum and the sign flip of the radial force.
    """

    W, r_h, w = 16.0, 1.75, 0.45  # eV, Å, Å

    def pair_term(self, D, d):
        e, g = super().pair_term(D, d)
        x = (d - self.r_h) / self.w
        inside = np.abs(x) < 1
        bump = np.where(inside, (1 - x * x) ** 3, 0.0)
        dbump = np.where(inside, -6 * x * (1 - x * x) ** 2 / self.w, 0.0)
        return e - self.W * bump, g + (-self.W * dbump / d)[:, None] * D


class HardCutoff(SmoothPair):
    """Morse truncated at rc without a switch: forces are the exact gradient
    inside rc, but the energy jumps by -phi(rc) ≈ 28 meV whenever a pair
    crosses rc (fcc Au's third shell and Cu's fourth shell sit at ~5 Å).
    Caught by nve_energy_drift: total-energy jumps that do not shrink with dt."""

    def pair_term(self, D, d):
        p = self.parameters
        x = np.exp(-p.alpha * (d - p.r0))
        e = p.D * (x * x - 2 * x)
        de = p.D * (-2 * p.alpha * x * x + 2 * p.alpha * x)
        return e, (de / d)[:, None] * D


class ScaledForces(SmoothPair):
    """Forces are 1.1 × (-∇E): smooth, momentum-conserving, but not the
    gradient of the reported energy (a direct-force head with a scale error).
    In NVE, K + 1.1 E is conserved instead of K + E, so E_tot follows E_pot
    with slope 1 - 1.1 = -0.1. Caught by nve_energy_drift."""

    scale = 1.1

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"] = self.scale * self.results["forces"]


class ForceBias(SmoothPair):
    """Adds the same force b to every atom (ΣF = N b ≠ 0): breaks Newton's
    third law, the total momentum grows linearly in NVE. Caught by
    momentum_conservation (and by nve_energy_drift as a drift)."""

    bias = np.array([0.02, -0.01, 0.005])  # eV/Å

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"] = self.results["forces"] + self.bias


class NaNAfter(SmoothPair):
    """Correct for ``after`` calls, then returns NaN forces (a model that
    breaks mid-run, e.g. an overflow far from its training data). Must give an
    ``error`` result naming the step, not a crash."""

    after = 40

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        if self.calls > self.after:
            self.results["forces"] = np.full_like(self.results["forces"], np.nan)
