"""Named test cases built for a model's species.

Every case is an :class:`ase.Atoms` plus a name (``bulk_Cu_fcc``) and a set of
*tags* (its kind and periodicity) that checks select on. Cases are rattled
(0.05 Å Gaussian by default) so that no force vanishes by symmetry, and are
deterministic given the seed: the same ``(species, seed)`` gives bit-identical
positions on every machine and in every pytest-xdist worker.

Kinds built (``KINDS``):

=============  ==========================================================  =========
kind           structure                                                   pbc
=============  ==========================================================  =========
dimer          two atoms at ~1.05 × the nearest-neighbour distance          none
trimer         non-linear, non-isosceles triangle                          none
cluster        13-atom icosahedron, species mixed                          none
molecule       G2 molecules covering the molecular species (≤ 4)           none
bulk           per species, ASE reference state, ≥ 24 atoms                xyz
slab           fcc(111)-like, 3 layers, 6 Å vacuum each side               xy
wire           2×2 conventional cells in x,y, vacuum, periodic along z     z
alloy          (≥ 2 species) fcc with species assigned at random           xyz
small_cell     2-atom triclinic cell, every length < 2 × any cutoff        xyz
user           structures read from ``--mlip-structures``                  file's
=============  ==========================================================  =========

Molecular species
-----------------
Elements of molecular chemistry (:data:`MOLECULAR_SPECIES`: H, C, N, O, F, P,
S, Cl, Br, I) form molecules, not metals: a 13-atom icosahedron of C and H at
Vegard's-law spacing, or an fcc "crystal" of hydrogen, is no structure any
model was meant for (ANI-1x, C and H: |F| = 653 eV/Å on such a cluster). For
them the metal-style kinds are replaced or left out, per kind:

==========  ================================================================
kind        with molecular species
==========  ================================================================
dimer       kept: the dimer scan (``dimer_curve``) is where a missing
            repulsive wall shows (ANI-1x: C–H at −1053 eV at 0.43 Å)
trimer      kept: an angle scan of three atoms is meaningful for any chemistry
cluster     built of the non-molecular species only (``cluster_Cu13`` for
            Cu, H, O), left out when there are none: the molecules replace it
molecule    built when a species is molecular: :func:`molecule_cover`
bulk        C keeps its crystal (diamond, a real solid); the others
            (:data:`NO_ATOMIC_CRYSTAL`) are left out: their solids are
            molecular crystals (H2, N2, O2, Cl2, P4, S8), which ASE's
            reference states do not describe and the fcc fallback at twice
            the covalent radius fakes
slab, wire  of the first non-molecular species, left out when there is none
            (an fcc(111) slab of carbon or oxygen is not a surface of anything)
alloy       of the non-molecular species, when there are two or more: random
            substitution of H or O on fcc metal sites at Vegard's spacing is
            no material (hydrides and oxides are not built)
small_cell  of the non-molecular species; carbon alone: its primitive diamond
            cell (2 atoms, 2.5 Å) sheared; left out for H, N, O, ... alone
==========  ================================================================

Molecule cases are tagged ``molecule``, ``isolated`` and ``cluster``: a
molecule is an isolated cluster for every check that selects clusters (MD:
``nve_energy_drift``, ``momentum_conservation``, ``hot_nvt_stability``;
``extensivity``, ``thread_safety``). They start from the G2 geometry
(MP2/6-31G(d)), rattled like the other cases; :func:`conformance.toolkit.relax.relax_cases`
relaxes them with the model before the checks run.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc111
from ase.cluster import Icosahedron
from ase.data import atomic_numbers, covalent_radii, reference_states
from ase.neighborlist import neighbor_list

from ..core.cases import (ANY, FULLY_PERIODIC, ISOLATED, KINDS, PERIODIC, Case,  # noqa: F401
                          case_rng, case_tags)


RATTLE = 0.05  # Å, standard deviation of the Gaussian displacement

#: Elements of molecular chemistry: covalent, finite molecules (the G2 set's
#: elements besides the metals Li, Be, Na, Al and Si, plus Br and I). Cases of
#: these species are molecules, not metal-style clusters and fcc cells
#: (see the module docstring, per kind).
MOLECULAR_SPECIES = frozenset({"H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I"})
#: Molecular species whose elemental solid is a molecular crystal (H2, N2, O2,
#: F2, Cl2, Br2, I2, P4, S8): no one-atom-basis crystal describes them, so no
#: ``bulk`` case is built. Carbon is not among them: diamond is a real crystal.
NO_ATOMIC_CRYSTAL = MOLECULAR_SPECIES - {"C"}
#: At most this many molecules per run (each adds one item per isolated check).
MAX_MOLECULES = 4
#: Two atoms of a G2 molecule are bonded when closer than this × the sum of
#: their covalent radii (ASE's natural_cutoffs use 1; 1.2 keeps long bonds such
#: as O–O in H2O2, 1.45 Å, and leaves geminal H–H in CH4, 1.78 Å, out).
BOND_FACTOR = 1.2


def is_molecular(symbol: str) -> bool:
    """Whether ``symbol`` is an element of molecular chemistry (:data:`MOLECULAR_SPECIES`).

    >>> is_molecular("C"), is_molecular("Cu"), is_molecular("Ar")
    (True, False, False)
    """
    return symbol in MOLECULAR_SPECIES


@dataclass(frozen=True)
class _G2Entry:
    name: str
    atoms: Atoms
    elements: frozenset
    bonds: frozenset  # sorted (A, B) element pairs bonded somewhere in the molecule
    linear: bool


def _bonded_pairs(atoms: Atoms) -> frozenset:
    d = atoms.get_all_distances()
    r = covalent_radii[atoms.numbers]
    i, j = np.nonzero(np.triu(d < BOND_FACTOR * (r[:, None] + r[None, :]), k=1))
    s = atoms.get_chemical_symbols()
    return frozenset(tuple(sorted((s[a], s[b]))) for a, b in zip(i, j))


def _is_linear(atoms: Atoms) -> bool:
    x = atoms.positions - atoms.positions.mean(axis=0)
    sv = np.linalg.svd(x, compute_uv=False)
    return bool(len(atoms) < 3 or sv[1] < 1e-3 * sv[0])


@functools.lru_cache(maxsize=1)
def _g2_catalogue() -> tuple:
    """G2 molecules usable as cases: closed-shell (no initial magnetic moment),
    two atoms or more, ground states (the excited singlet carbene CH2_s1A1d and
    silylene SiH2_s1A1d are left out); in ASE's order."""
    from ase.collections import g2

    out = []
    for name in g2.names:
        atoms = g2[name]
        if len(atoms) < 2 or "_s" in name or np.abs(atoms.get_initial_magnetic_moments()).sum() > 0:
            continue
        atoms = Atoms(atoms.numbers, positions=atoms.positions)  # no magmoms, no cell
        out.append(_G2Entry(name, atoms, frozenset(atoms.get_chemical_symbols()),
                            _bonded_pairs(atoms), _is_linear(atoms)))
    return tuple(out)


def molecule_cover(species: Sequence[str], max_molecules: int = MAX_MOLECULES
                   ) -> tuple[list[str], list[tuple[str, str]]]:
    """A small set of G2 molecules covering the species and their bonds.

    Candidates: closed-shell G2 molecules whose elements are all in
    ``species`` and that contain at least one molecular species. Covered
    items: every species and every bonded element pair that the candidates
    offer. Greedy set cover: repeatedly the molecule covering most uncovered
    items, ties broken by non-linear first (a 3-D environment), then fewer
    atoms, then name; at most ``max_molecules``. Deterministic and independent
    of the order of ``species``.

    Returns
    -------
    names : list of str
        G2 names, in the order chosen.
    uncovered : list of (str, str)
        Bonded pairs (and ``(X,)`` species) the candidates offer but the
        chosen molecules do not cover (only when ``max_molecules`` runs out).

    >>> molecule_cover(["C", "H"])
    (['C2H4', 'H2'], [])
    >>> molecule_cover(["H", "C", "N", "O"])[0]
    ['CH3CONH2', 'H2O2', 'N2O', 'H2']
    >>> molecule_cover(["Cu"])
    ([], [])
    """
    allowed = set(species)
    if not allowed & MOLECULAR_SPECIES:
        return [], []
    candidates = [m for m in _g2_catalogue() if m.elements <= allowed and m.elements & MOLECULAR_SPECIES]

    def items(m):
        return {(e,) for e in m.elements} | set(m.bonds)

    universe = set().union(*(items(m) for m in candidates)) if candidates else set()
    covered: set = set()
    chosen: list[_G2Entry] = []
    while len(chosen) < max_molecules and covered != universe:
        best = min((m for m in candidates if m not in chosen and items(m) - covered),
                   key=lambda m: (-len(items(m) - covered), m.linear, len(m.atoms), m.name))
        chosen.append(best)
        covered |= items(best)
    return [m.name for m in chosen], sorted(universe - covered)


def g2_molecule(name: str) -> Atoms:
    """The G2 molecule ``name`` (ASE's geometry, no cell, no magnetic moments)."""
    for m in _g2_catalogue():
        if m.name == name:
            return m.atoms.copy()
    raise KeyError(f"{name!r} is not a closed-shell G2 molecule")


@functools.lru_cache(maxsize=None)
def nearest_neighbour_distance(symbol: str) -> float:
    """Nearest-neighbour distance (Å) of the element's reference crystal (cached).

    Falls back to twice the covalent radius for elements whose reference state
    is not a crystal (H, N, O, ...).
    """
    try:
        atoms = bulk(symbol)
        return float(neighbor_list("d", atoms, 6.0).min())
    except Exception:
        return float(2 * covalent_radii[atomic_numbers[symbol]])


def fcc_lattice_constant(symbols: Sequence[str]) -> float:
    """Vegard's-law fcc lattice constant (Å) from the species' nn distances."""
    return float(np.mean([nearest_neighbour_distance(s) for s in symbols]) * np.sqrt(2))


def _bulk(symbol: str) -> tuple[Atoms, str]:
    """Reference crystal, ≥ 24 atoms, and its structure name."""
    ref = reference_states[atomic_numbers[symbol]] or {}
    structure = ref.get("symmetry", "")
    try:
        try:
            atoms = bulk(symbol, cubic=True)
        except Exception:
            atoms = bulk(symbol, orthorhombic=True)
    except Exception:
        structure = "fcc"
        atoms = bulk(symbol, "fcc", a=fcc_lattice_constant([symbol]), cubic=True)
    reps = [1, 1, 1]
    while len(atoms) * np.prod(reps) < 24:
        lengths = atoms.cell.lengths() * reps
        reps[int(np.argmin(lengths))] += 1
    return atoms.repeat(reps), structure or "fcc"


def _formula(atoms: Atoms) -> str:
    return atoms.get_chemical_formula(mode="hill")


def _assign_species(n: int, species: Sequence[str], rng: np.random.Generator) -> list[str]:
    """Mix species: each appears at least once (when n allows), rest random."""
    symbols = [species[i % len(species)] for i in range(n)]
    return list(rng.permutation(symbols))


def _dimer(species: Sequence[str]) -> Atoms:
    a, b = (species[0], species[1]) if len(species) > 1 else (species[0], species[0])
    d = 1.05 * 0.5 * (nearest_neighbour_distance(a) + nearest_neighbour_distance(b))
    return Atoms([a, b], positions=[[0, 0, 0], [d, 0, 0]])


def _trimer(species: Sequence[str]) -> Atoms:
    syms = [species[i % len(species)] for i in range(3)]
    d = np.mean([nearest_neighbour_distance(s) for s in syms])
    angle = np.radians(75.0)
    pos = [[0, 0, 0], [d, 0, 0], [1.1 * d * np.cos(angle), 1.1 * d * np.sin(angle), 0]]
    return Atoms(syms, positions=pos)


def _cluster(species: Sequence[str], rng) -> Atoms:
    atoms = Icosahedron(species[0], noshells=2, latticeconstant=fcc_lattice_constant(species))
    atoms.set_chemical_symbols(_assign_species(len(atoms), species, rng))
    atoms.cell[:] = 0.0
    atoms.pbc = False
    return atoms


def _diamond_small_cell(symbol: str, rng) -> Atoms:
    """2-atom primitive diamond cell (2.5 Å for C), sheared like :func:`_small_cell`."""
    atoms = bulk(symbol, "diamond")
    strain = np.eye(3) + 0.03 * rng.uniform(-1, 1, (3, 3))
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    return atoms


def _slab(symbol: str) -> Atoms:
    return fcc111(symbol, size=(2, 2, 3), a=fcc_lattice_constant([symbol]), vacuum=6.0)


def _wire(symbol: str) -> Atoms:
    atoms = bulk(symbol, "fcc", a=fcc_lattice_constant([symbol]), cubic=True).repeat((2, 2, 2))
    atoms.center(vacuum=6.0, axis=(0, 1))
    atoms.pbc = (False, False, True)
    return atoms


def _alloy(species: Sequence[str], rng) -> Atoms:
    atoms = bulk(species[0], "fcc", a=fcc_lattice_constant(species), cubic=True).repeat((2, 2, 2))
    atoms.set_chemical_symbols(_assign_species(len(atoms), species, rng))
    return atoms


def _small_cell(species: Sequence[str], rng) -> Atoms:
    """2-atom triclinic cell: primitive fcc doubled along a1, then sheared."""
    syms = [species[0], species[1] if len(species) > 1 else species[0]]
    atoms = bulk(species[0], "fcc", a=fcc_lattice_constant(syms)).repeat((2, 1, 1))
    atoms.set_chemical_symbols(syms)
    strain = np.eye(3) + 0.03 * rng.uniform(-1, 1, (3, 3))
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    return atoms


def _rattle(atoms: Atoms, rng: np.random.Generator, stdev: float = RATTLE) -> Atoms:
    atoms.positions = atoms.positions + rng.normal(0.0, stdev, atoms.positions.shape)
    return atoms


def build_cases(species: Sequence[str], seed: int = 0, kinds: Iterable[str] | None = None,
                user_structures: Sequence[Atoms] = ()) -> list[Case]:
    """Build the test cases for a model's species.

    Parameters
    ----------
    species : sequence of str
        Chemical symbols the model supports, e.g. ``["Cu", "Au"]``.
    seed : int
        Seed of the rattling and species assignment.
    kinds : iterable of str, optional
        Restrict to these kinds (default: all of :data:`KINDS`).
    user_structures : sequence of Atoms
        Extra cases (kind ``user``), used as given (not rattled).

    Returns
    -------
    list of Case, in a stable order.
    """
    species = list(dict.fromkeys(species))
    if not species:
        raise ValueError("no species given: pass --mlip-species (e.g. Cu,Au) or declare "
                         "`species` on the model")
    for s in species:
        if s not in atomic_numbers:
            raise ValueError(f"unknown chemical symbol {s!r} in species")
    kinds = set(KINDS if kinds is None else kinds)
    unknown = kinds - set(KINDS) - {"user"}
    if unknown:
        raise ValueError(f"unknown structure kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    builders = []
    pair = "".join(species[:2]) if len(species) > 1 else species[0] + "2"
    builders.append(("dimer", f"dimer_{pair}", lambda rng: _dimer(species)))
    builders.append(("trimer", None, lambda rng: _trimer(species)))
    # metal-style kinds are built of the non-molecular species (all of them for metals)
    non_molecular = [s for s in species if not is_molecular(s)]
    if non_molecular:
        builders.append(("cluster", None, lambda rng: _cluster(non_molecular, rng)))
    names, _ = molecule_cover(species)
    taken, notes = set(), {}
    for g2name in names:
        atoms_m = g2_molecule(g2name)
        name = f"molecule_{_formula(atoms_m)}"
        if name in taken:  # an isomer of a molecule already chosen
            name = f"molecule_{_formula(atoms_m)}_{g2name}"
        taken.add(name)
        builders.append(("molecule", name, lambda rng, a=atoms_m: a.copy()))
        notes[name] = f"G2 molecule {g2name} (ase.collections.g2), rattled {RATTLE:g} Å"
    for s in species:
        if s in NO_ATOMIC_CRYSTAL:
            continue
        atoms_s, structure = _bulk(s)
        builders.append(("bulk", f"bulk_{s}_{structure}", lambda rng, a=atoms_s: a.copy()))
    if non_molecular:
        builders.append(("slab", f"slab_{non_molecular[0]}_fcc111", lambda rng: _slab(non_molecular[0])))
        builders.append(("wire", f"wire_{non_molecular[0]}_fcc100", lambda rng: _wire(non_molecular[0])))
    if len(non_molecular) > 1:
        builders.append(("alloy", f"alloy_{''.join(non_molecular)}_fcc", lambda rng: _alloy(non_molecular, rng)))
    if non_molecular:
        builders.append(("small_cell", None, lambda rng: _small_cell(non_molecular, rng)))
    elif "C" in species:
        builders.append(("small_cell", None, lambda rng: _diamond_small_cell("C", rng)))

    cases = []
    for kind, name, build in builders:
        if kind not in kinds:
            continue
        base = name or kind
        rng = case_rng(seed, base)
        atoms = build(rng)
        if name is None:
            name = f"{kind}_{_formula(atoms)}"
        _rattle(atoms, rng, RATTLE if len(atoms) > 1 else 0.0)
        if kind == "dimer":  # keep the dimer on its axis: the distance is what matters
            atoms.positions[:, 1:] = 0.0
        cases.append(Case(name, kind, atoms, case_tags(kind, atoms), notes.get(name, "")))
    if "user" in kinds or user_structures:
        for i, atoms in enumerate(user_structures):
            atoms = atoms.copy()
            atoms.calc = None
            cases.append(Case(f"user{i}_{_formula(atoms)}", "user", atoms, case_tags("user", atoms)))
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), names
    return cases


def find_case(name: str, species: Sequence[str], seed: int = 0,
              user_structures: Sequence[Atoms] = ()) -> Case:
    """The case called ``name`` among :func:`build_cases` (for reproducers)."""
    for case in build_cases(species, seed, user_structures=user_structures):
        if case.name == name:
            return case
    raise KeyError(f"no case {name!r} for species {list(species)}")


def read_structures(path: str) -> list[Atoms]:
    """Read every frame of a structure file (any format ase.io reads)."""
    from ase.io import read

    frames = read(path, index=":")
    if not frames:
        raise ValueError(f"{path}: no structures in file")
    return list(frames)
