"""The real-model acceptance corpus: correct potentials nobody here wrote.

Each entry is a factory of a third-party calculator (ASE, matscipy), the
species it is audited for, and its *expected findings*: the items it fails for
a physical reason, written down (strict xfail, like scikit-learn's
``_xfail_checks``). A correct model must end CONFORMANT or with exactly these.
Each has a broken twin (``tests/corpus/twins.py``) that the suite must catch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class CorpusModel:
    """A correct third-party potential and what an audit of it must find."""

    name: str
    factory: Callable
    species: tuple
    expected: dict = field(default_factory=dict)  # "check" or "check[case]" -> physical reason


def emt():
    from ase.calculators.emt import EMT

    return EMT()


def lennard_jones_argon():
    """Argon, σ = 3.40 Å, ε = 10.4 meV, cut at 3σ with ASE's smooth switch."""
    from ase.calculators.lj import LennardJones

    return LennardJones(sigma=3.40, epsilon=0.0104, rc=10.2, ro=8.5, smooth=True)


def morse_copper():
    """Cu Morse (Girifalco & Weizer 1959: D = 0.3429 eV, α = 1.3588 /Å, r0 = 2.866 Å)
    with ASE's smooth cutoff between 1.5 r0 = 4.30 Å and 1.9 r0 = 5.45 Å (between the
    4th and 5th fcc shells, 5.11 and 5.72 Å; ASE's default 2.7 r0 = 7.7 Å triples the
    neighbours and the cost of every call of this pure-Python potential)."""
    from ase.calculators.morse import MorsePotential

    return MorsePotential(epsilon=0.3429, r0=2.866, rho0=1.3588 * 2.866, rcut1=1.5, rcut2=1.9)


def _manybody(form_name: str, params_module: str, params_name: str):
    import importlib

    from matscipy.calculators.manybody import Manybody
    from matscipy.calculators.manybody import explicit_forms

    form = getattr(explicit_forms, form_name)
    params = getattr(importlib.import_module(f"matscipy.calculators.manybody.explicit_forms.{params_module}"),
                     params_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Manybody(**form(params))


def stillinger_weber_si():
    return _manybody("StillingerWeber", "stillinger_weber", "Stillinger_Weber_PRB_31_5262_Si")


def tersoff_si():
    return _manybody("TersoffBrenner", "tersoff_brenner", "Tersoff_PRB_39_5566_Si_C")


def kumagai_si():
    return _manybody("Kumagai", "kumagai", "Kumagai_Comp_Mat_Sci_39_Si")


CORPUS = [
    CorpusModel("EMT-Cu,Au", emt, ("Cu", "Au")),
    CorpusModel("EMT-Ni,Pd", emt, ("Ni", "Pd")),
    CorpusModel("EMT-Ag,Pt,Al", emt, ("Ag", "Pt", "Al"), {
        "dimer_curve": "ASE's EMT cuts its Fermi-function cutoff off at the neighbour-list radius "
                       "rc + 0.5 Å = 5.877 Å instead of switching it to zero; with Al's slow decay "
                       "(eta2 = 1.24 /Å) the Al-Al dimer's energy steps by 1.1e-3 eV and its force by "
                       "0.014 eV/Å there (Cu-Cu: 1.6e-5 eV, 2.6e-4 eV/Å, within tolerance)",
        "compression_scan[bulk_Al_fcc]": "EMT's Al is fitted near equilibrium: compressed below 0.61 "
                                         "of its distances (4.4x the density) its embedding energy "
                                         "turns over and the energy falls by 4.4 eV/atom down to 0.5"}),
    CorpusModel("LJ-Ar", lennard_jones_argon, ("Ar",)),
    CorpusModel("Morse-Cu", morse_copper, ("Cu",)),
    CorpusModel("SW-Si", stillinger_weber_si, ("Si",)),
    CorpusModel("Tersoff-Si", tersoff_si, ("Si",)),
    CorpusModel("Kumagai-Si", kumagai_si, ("Si",)),
]

