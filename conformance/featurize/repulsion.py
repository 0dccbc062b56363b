"""Fixed short-range repulsion: a wall where training data have no pairs.

No training structure has atoms closer than about 2.0 Å, so a fitted model is an
extrapolation below that and a polynomial basis can turn over into an attractive hole
(an MD run then collapses).  :class:`CoreRepulsion` adds a steep, prescribed pair term
``epsilon (sigma / r)^12`` switched off smoothly (quintic, C2) between ``r_on`` and
``r_off`` -- below every distance in the data, so the fitted part never has to undo it.
The fits subtract it from their labels, so it is part of the model, not of the data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .switching import quintic_switch

__all__ = ["CoreRepulsion"]


@dataclass(frozen=True)
class CoreRepulsion:
    """Pair repulsion ``epsilon (sigma/r)^12 fc(r)``, fc = 1 below ``r_on``, 0 above ``r_off``.

    Attributes
    ----------
    epsilon : float
        eV.
    sigma, r_on, r_off : float
        Å.
    """

    epsilon: float = 1.0
    sigma: float = 2.0
    r_on: float = 1.4
    r_off: float = 1.9

    def pair_energy(self, r):
        """Energy (eV) and its derivative dE/dr (eV/Å) of pairs at distances r (P,)."""
        fc, dfc, _ = quintic_switch(r, self.r_on, self.r_off)
        inside = r < self.r_off
        x = np.where(inside, self.sigma / np.where(inside, r, 1.0), 0.0)
        x12 = x**12
        e = self.epsilon * x12 * fc
        de = self.epsilon * (x12 * dfc - 12.0 * x12 / np.where(inside, r, 1.0) * fc)
        return e, de

    def evaluate(self, expansion):
        """Per-atom energies (N,) in eV (half of each pair to each atom) and dE/dr_p (P, 3)."""
        n = expansion.n_atoms
        inside = np.flatnonzero(expansion._d < self.r_off)
        energies, gradient = np.zeros(n), np.zeros((len(expansion._d), 3))
        if len(inside) == 0:      # condensed phases: no pair within the core
            return energies, gradient
        e, de = self.pair_energy(expansion._d[inside])
        i, j = expansion.i[inside], expansion.j[inside]
        energies += 0.5 * (np.bincount(i, e, minlength=n) + np.bincount(j, e, minlength=n))
        gradient[inside] = de[:, None] * expansion._u[inside]
        return energies, gradient

    def to_dict(self) -> dict:
        return asdict(self)
