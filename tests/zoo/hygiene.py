"""Broken models for the hygiene family: each misbehaves as software in one
way, on top of the correct :class:`SmoothPair`."""

from __future__ import annotations

import time

import numpy as np
from ase.calculators.calculator import all_changes
from ase.neighborlist import neighbor_list

from .base import SmoothPair

HARTREE = 27.211386  # eV
BOHR = 0.52917721  # Å


class StaleCache(SmoothPair):
    """Remembers the caller's positions array by reference (not a copy) to
    decide whether to recompute: ``atoms.positions += d`` changes the array in
    place, so the cache looks valid and old results come back. Invisible to
    checks that call ``reset()`` first."""

    _positions = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self._positions = atoms.positions  # bug: a reference, not a copy

    def check_state(self, atoms, tol=1e-15):
        changes = [c for c in super().check_state(atoms, tol) if c != "positions"]
        if self._positions is None or not np.array_equal(self._positions, atoms.positions):
            changes.append("positions")
        return changes


class KeyedCache(SmoothPair):
    """Returns its last results while its cache key of the input is unchanged.
    The key here is complete (positions, numbers, cell, pbc): correct; each
    subclass leaves out one part of the input, as real caches do. Declares Cu
    and Au with per-element pair strengths, so that changing an element is
    tested (and matters) with one species audited."""

    _key = None
    species = ["Cu", "Au"]
    strengths = {29: 1.0, 79: 1.3}

    def pair_weights(self, atoms, i, j):
        w = np.array([self.strengths.get(z, 1.0) for z in atoms.numbers.tolist()])
        return np.sqrt(w[i] * w[j])

    def key(self, atoms):
        return (atoms.positions.copy(), atoms.numbers.copy(), atoms.cell.array.copy(), atoms.pbc.copy())

    def same(self, old, new) -> bool:
        return all(np.array_equal(a, b) for a, b in zip(old, new))

    def check_state(self, atoms, tol=1e-15):
        if self._key is None or not self.same(self._key, self.key(atoms)):
            return list(all_changes)
        return []

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self._key = self.key(self.atoms)

    def reset(self):
        super().reset()
        self._key = None


class CacheKeyedOnPositions(KeyedCache):
    """Cache keyed on the positions only (a copy: moving atoms is seen): a new
    cell, pbc or element at the same positions returns the old results."""

    def key(self, atoms):
        return (atoms.positions.copy(),)


class CacheIgnoresCell(KeyedCache):
    """Cache keyed on positions, numbers and pbc, not the cell: misses
    ``set_cell(..., scale_atoms=False)`` and a new Atoms with another cell."""

    def key(self, atoms):
        return (atoms.positions.copy(), atoms.numbers.copy(), atoms.pbc.copy())


class CacheIgnoresPbc(KeyedCache):
    """Cache keyed on positions, numbers and cell, not the pbc flags."""

    def key(self, atoms):
        return (atoms.positions.copy(), atoms.numbers.copy(), atoms.cell.array.copy())


class CacheIgnoresNumbers(KeyedCache):
    """Cache keyed on positions, cell and pbc, not the atomic numbers."""

    def key(self, atoms):
        return (atoms.positions.copy(), atoms.cell.array.copy(), atoms.pbc.copy())


class CacheComparesCommonAtoms(KeyedCache):
    """Complete key, but positions compared over the atoms both structures
    have (``old[:n] == new[:n]``, n the smaller count, as code that grows its
    buffers in place does): deleting the last atom or appending one is missed."""

    def same(self, old, new) -> bool:
        n = min(len(old[0]), len(new[0]))
        return np.array_equal(old[0][:n], new[0][:n]) and np.array_equal(old[1][:n], new[1][:n]) \
            and all(np.array_equal(a, b) for a, b in zip(old[2:], new[2:]))


class RoundoffJitter(SmoothPair):
    """Results jitter at the 1e-14 relative level from call to call, like an
    unordered parallel reduction in float64 (torch's threaded CPU sums): not
    bit-identical, but at round-off. Reported, not failed, unless the model
    declares ``deterministic=True``."""

    jitter = 1e-14

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._rng = np.random.default_rng(0)  # a different draw on every call, the same in every run

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        r = self.results
        r["energy"] = r["free_energy"] = r["energy"] * (1 + self.jitter * self._rng.normal())
        r["forces"] = r["forces"] * (1 + self.jitter * self._rng.normal(size=r["forces"].shape))
        if "stress" in r:
            r["stress"] = r["stress"] * (1 + self.jitter * self._rng.normal(size=6))


class DeclaredDeterministicJitter(RoundoffJitter):
    """The same round-off jitter from a model that declares bit-identical results."""

    mlip_tags = {"deterministic": True}


class Float32Jitter(RoundoffJitter):
    """A float32 model whose reductions are unordered: 1e-6 relative jitter
    (torch CPU in float32 differs by ~1e-6 eV/Å between repeats)."""

    precision = "float32"
    jitter = 1e-6


class DropoutLeftOn(RoundoffJitter):
    """Dropout (or random features) left on at inference: 1e-3 relative noise
    on every call. A real non-determinism, failed whatever is declared."""

    jitter = 1e-3


class DeclaredNondeterministic(RoundoffJitter):
    """Round-off jitter, honestly declared ``deterministic=False`` (held to the
    shared tolerances)."""

    mlip_tags = {"deterministic": False}


class FailsForSpecies(SmoothPair):
    """Declares Cu, Au and Ni but has no parameters for Ni (and rejects
    undeclared elements properly)."""

    species = ["Cu", "Au", "Ni"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if atoms is not None:
            unknown = set(atoms.get_chemical_symbols()) - set(self.species)
            if unknown:
                raise KeyError(f"unsupported elements {sorted(unknown)}; this model knows {self.species}")
            if "Ni" in atoms.get_chemical_symbols():
                raise ValueError("no parameters for element Ni (Z=28)")
        super().calculate(atoms, properties, system_changes)


class AcceptsAnySpecies(SmoothPair):
    """Declares Cu and Au but silently evaluates any element with the same
    parameters (silent nonsense for Xe)."""

    species = ["Cu", "Au"]


class MutatesInput(SmoothPair):
    """Centres the caller's structure at its centre of mass, in place."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if atoms is not None:
            atoms.positions -= atoms.get_center_of_mass()
        super().calculate(atoms, properties, system_changes)


_SCRATCH: dict = {}  # module level: shared by every instance


class SharedBuffer(SmoothPair):
    """Writes its results to a module-level scratch buffer and reads them back
    after a device synchronisation (sleep): another instance running in
    another thread overwrites the buffer in between."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        _SCRATCH["energy"] = self.results["energy"]
        _SCRATCH["forces"] = self.results["forces"]
        time.sleep(0.005)
        self.results["energy"] = self.results["free_energy"] = _SCRATCH["energy"]
        self.results["forces"] = np.array(_SCRATCH["forces"])


class Leaky(SmoothPair):
    """Keeps every structure and its results in a history list."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.history = []

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.history.append((self.atoms.copy(), {k: np.copy(v) for k, v in self.results.items()}))


class AtomicUnits(SmoothPair):
    """A model trained in atomic units whose wrapper forgot to convert the
    outputs: energies in Hartree, forces in Hartree/Bohr, stress in
    Hartree/Bohr³ (positions are converted correctly)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        r = self.results
        for key in ("energy", "free_energy", "energies"):
            if key in r:
                r[key] = r[key] / HARTREE
        r["forces"] = r["forces"] * BOHR / HARTREE
        if "stress" in r:
            r["stress"] = r["stress"] * BOHR**3 / HARTREE


class SpeciesTableFromFirstCall(SmoothPair):
    """Builds its per-species parameter table from the first structure it sees;
    species first met later get a default weight (silently wrong results when
    one instance evaluates structures of different species)."""

    strengths = {29: 1.0, 79: 1.3, 28: 0.9}
    default = 0.5

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._table = None

    def pair_weights(self, atoms, i, j):
        if self._table is None:
            self._table = {z: self.strengths.get(z, 1.0) for z in set(atoms.numbers.tolist())}
        w = np.array([self._table.get(z, self.default) for z in atoms.numbers.tolist()])
        return np.sqrt(w[i] * w[j])


class VerletList(SmoothPair):
    """SmoothPair with a Verlet neighbour list (correct): pairs within
    rc + skin, reused until an atom has moved more than skin/2 since the list
    was built; rebuilt when numbers, cell or pbc change (as ASE's LennardJones
    does: after ``reset()`` every property counts as changed)."""

    skin = 1.0  # Å

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._list = self._built_at = self._last = None
        self._rebuild = True
        self.rebuilds = 0

    def displacement(self, atoms) -> float:
        """The rebuild test: largest displacement (Å) since the list was built."""
        return float(np.linalg.norm(atoms.positions - self._built_at, axis=1).max())

    def pairs(self, atoms):
        if (self._rebuild or self._list is None or len(atoms) != len(self._built_at)
                or self.displacement(atoms) > 0.5 * self.skin):
            self._list = neighbor_list("ijS", atoms, self.parameters.rc + self.skin)
            self._built_at = atoms.positions.copy()
            self.rebuilds += 1
        self._last = atoms.positions.copy()
        i, j, shifts = self._list
        return i, j, atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        self._rebuild = bool(set(system_changes) & {"numbers", "cell", "pbc"})
        super().calculate(atoms, properties, system_changes)


class VerletLastCall(VerletList):
    """The Verlet list with the wrong rebuild test: the displacement is measured
    from the previous call instead of the last rebuild. Along a trajectory of
    small steps (each < skin/2) the list is never rebuilt, and atoms that come
    within the cutoff from beyond rc + skin are missed. Every single call, and
    every check that calls ``reset()`` first, looks correct."""

    def displacement(self, atoms) -> float:
        if len(self._last) != len(atoms):
            return np.inf
        return float(np.linalg.norm(atoms.positions - self._last, axis=1).max())
