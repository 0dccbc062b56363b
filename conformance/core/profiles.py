"""Audit profiles: how much each check measures (``--mlip-profile``).

A profile scales what costs model calls without changing what is judged:
the number of random operations of the symmetry checks, the density of the
smoothness scans and their refinement budget, the length of the memory and
MD runs. ``standard`` is the audit as documented per check; ``quick`` is for
iterating on an expensive model (about 60 % of ``standard``'s calls for the
static families: 865 against 1,454 on EMT Cu, the dimer scan keeping its
points; it still catches every broken model of the test zoo that
``standard`` catches); ``thorough`` is for a pre-publication audit (denser
scans, more operations, every species pair, production-length MD).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """How much a run measures.

    Attributes
    ----------
    name : str
    examples : int
        Random operations per symmetry check (when ``--mlip-examples`` is not given).
    scan_density : float
        Factor on the number of points of every smoothness scan (dimer, trimer,
        strain, cutoff crossing, compression).
    refine_calls : int
        Model calls each scan may spend refining suspected jumps.
    memory_calls : int
        Calls of ``memory_growth`` after its warm-up.
    md_factor : float
        Factor on the default MD lengths (``--mlip-md-steps`` overrides it).
    max_pairs : int or None
        Species pairs scanned as dimers: all of them up to this many, else a
        covering sample linear in the number of species
        (:func:`conformance.toolkit.scans.species_pairs`); None: all pairs.
    kinds : tuple of str or None
        Case kinds built when ``--mlip-structure-kinds`` is not given (None: all).
    walk_step : float
        Step (Å) of ``walk_history``'s walk: below half the smallest neighbour-list
        skin it can see through (ASE's 0.3 Å skin: 0.15 Å).
    dimer_density : float
        Factor on the points of the dimer scan, which also judges F = -dE/dr by
        finite differences and so keeps its own density.
    """

    name: str
    examples: int
    scan_density: float
    refine_calls: int
    memory_calls: int
    md_factor: float
    max_pairs: int | None = 45   # all pairs of up to 9 species
    kinds: tuple | None = None
    walk_step: float = 0.05
    dimer_density: float = 1.0

    def points(self, n: int, density: float | None = None, minimum: int = 9) -> int:
        """``n`` scan points scaled by ``density`` (default :attr:`scan_density`), at
        least ``minimum``."""
        density = self.scan_density if density is None else density
        return max(minimum, int(round(n * density)))


PROFILES = {
    # wires and alloys left out; scans at a fifth of their points (the dimer scan at full
    # density); walks in 0.1 Å steps (two thirds of skin/2 for ASE's smallest, 0.3 Å); 20
    # measured memory calls
    "quick": Profile("quick", examples=2, scan_density=0.2, refine_calls=40, memory_calls=40,
                     md_factor=0.5, kinds=("dimer", "trimer", "cluster", "molecule", "bulk",
                                           "slab", "small_cell"), walk_step=0.1),
    "standard": Profile("standard", examples=4, scan_density=1.0, refine_calls=600, memory_calls=100,
                        md_factor=1.0),
    "thorough": Profile("thorough", examples=12, scan_density=2.0, refine_calls=2000,
                        memory_calls=300, md_factor=20.0, max_pairs=None, dimer_density=2.0),
}
STANDARD = PROFILES["standard"]
