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
bulk           per species, ASE reference state, ≥ 24 atoms                xyz
slab           fcc(111)-like, 3 layers, 6 Å vacuum each side               xy
wire           2×2 conventional cells in x,y, vacuum, periodic along z     z
alloy          (≥ 2 species) fcc with species assigned at random           xyz
small_cell     2-atom triclinic cell, every length < 2 × any cutoff        xyz
user           structures read from ``--mlip-structures``                  file's
=============  ==========================================================  =========
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc111
from ase.cluster import Icosahedron
from ase.data import atomic_numbers, covalent_radii, reference_states
from ase.neighborlist import neighbor_list

KINDS = ("dimer", "trimer", "cluster", "bulk", "slab", "wire", "alloy", "small_cell")
ISOLATED = frozenset({"isolated"})
PERIODIC = frozenset({"periodic"})
FULLY_PERIODIC = frozenset({"periodic3"})
ANY = frozenset({"isolated", "periodic"})

RATTLE = 0.05  # Å, standard deviation of the Gaussian displacement


@dataclass(frozen=True)
class Case:
    """A named structure to evaluate a model on.

    Attributes
    ----------
    name : str
        Unique id, used in pytest ids: ``bulk_Cu_fcc``.
    kind : str
        One of :data:`KINDS` or ``user``.
    atoms : ase.Atoms
        The structure (never mutated by checks; use ``case.copy()``).
    tags : frozenset of str
        ``kind`` plus ``isolated`` or ``periodic`` and ``periodic1/2/3``
        (number of periodic directions).
    """

    name: str
    kind: str
    atoms: Atoms
    tags: frozenset

    def copy(self) -> Atoms:
        """A fresh copy of the structure without calculator."""
        atoms = self.atoms.copy()
        atoms.calc = None
        return atoms

    @property
    def periodic(self) -> bool:
        return bool(self.atoms.pbc.any())

    @property
    def n_periodic(self) -> int:
        return int(self.atoms.pbc.sum())

    def __len__(self) -> int:
        return len(self.atoms)


def case_rng(seed: int, name: str) -> np.random.Generator:
    """Generator seeded by (seed, name): stable across processes and runs."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _tags(kind: str, atoms: Atoms) -> frozenset:
    n = int(np.sum(atoms.pbc))
    tags = {kind, "periodic" if n else "isolated"}
    if n:
        tags.add(f"periodic{n}")
    return frozenset(tags)


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
    builders.append(("cluster", None, lambda rng: _cluster(species, rng)))
    for s in species:
        atoms_s, structure = _bulk(s)
        builders.append(("bulk", f"bulk_{s}_{structure}", lambda rng, a=atoms_s: a.copy()))
    builders.append(("slab", f"slab_{species[0]}_fcc111", lambda rng: _slab(species[0])))
    builders.append(("wire", f"wire_{species[0]}_fcc100", lambda rng: _wire(species[0])))
    if len(species) > 1:
        builders.append(("alloy", f"alloy_{''.join(species)}_fcc", lambda rng: _alloy(species, rng)))
    builders.append(("small_cell", None, lambda rng: _small_cell(species, rng)))

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
        cases.append(Case(name, kind, atoms, _tags(kind, atoms)))
    if "user" in kinds or user_structures:
        for i, atoms in enumerate(user_structures):
            atoms = atoms.copy()
            atoms.calc = None
            cases.append(Case(f"user{i}_{_formula(atoms)}", "user", atoms, _tags("user", atoms)))
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
