"""Cases: a named structure, its kind and the tags checks select on.

The builders live in :mod:`conformance.toolkit.structures`; this module holds
what the registry and the checks need to name and select cases: the kinds
(:class:`Kind`), the periodicity tags and :class:`Case` itself.
"""

from __future__ import annotations

import enum
import zlib
from dataclasses import dataclass

import numpy as np
from ase import Atoms


class Kind(str, enum.Enum):
    """The kinds of case (``user``: structures read from a file; ``data``,
    ``support``, ``golden`` and ``compare``: pseudo-cases of the data family, of the
    structure probe and of the regression family's golden file and second model)."""

    DIMER = "dimer"
    TRIMER = "trimer"
    CLUSTER = "cluster"
    MOLECULE = "molecule"
    BULK = "bulk"
    SLAB = "slab"
    WIRE = "wire"
    ALLOY = "alloy"
    SMALL_CELL = "small_cell"
    USER = "user"
    #: pseudo-cases without a structure: the train/test data of the data
    #: family, and the structure-class probe of ``structure_support``
    DATA = "data"
    SUPPORT = "support"
    #: pseudo-cases of the regression family: the golden file (``--mlip-golden``)
    #: and the second model (``--mlip-compare``)
    GOLDEN = "golden"
    COMPARE = "compare"

    def __str__(self) -> str:
        return self.value


#: Kinds built from the species (every kind but ``user``), in build order.
#: Kinds of the pseudo-cases: no structure, one item per check that applies.
PSEUDO_KINDS = (Kind.DATA.value, Kind.SUPPORT.value, Kind.GOLDEN.value, Kind.COMPARE.value)
KINDS = tuple(k.value for k in Kind if k != Kind.USER and k.value not in PSEUDO_KINDS)
ISOLATED = frozenset({"isolated"})
PERIODIC = frozenset({"periodic"})
FULLY_PERIODIC = frozenset({"periodic3"})
ANY = frozenset({"isolated", "periodic"})
#: Every tag a case can carry: a check's ``cases=`` must name some of these.
CASE_TAGS = frozenset({k.value for k in Kind} | ANY | {"periodic1", "periodic2", "periodic3"})


def validate_case_tags(tags) -> frozenset:
    """``tags`` as a frozenset, or ValueError naming the unknown ones (a typo
    in ``@check(cases=...)`` would otherwise select no case at all)."""
    tags = frozenset(str(t) for t in tags)
    unknown = tags - CASE_TAGS
    if unknown or not tags:
        raise ValueError(f"unknown case tags {sorted(unknown) or '(none given)'}; "
                         f"known: {', '.join(sorted(CASE_TAGS))}")
    return tags


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
        (number of periodic directions); molecules also carry ``cluster``.
    note : str
        Where the structure comes from when it is not built from scratch
        (``G2 molecule CH4 ...``; :func:`conformance.toolkit.relax.relax_cases` adds
        how it was relaxed); empty otherwise.
    """

    name: str
    kind: str
    atoms: Atoms
    tags: frozenset
    note: str = ""

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


def case_tags(kind: str, atoms: Atoms) -> frozenset:
    """The tags of a case of ``kind``: the kind, ``isolated`` or ``periodic`` and
    ``periodicN`` (N periodic directions); molecules are also ``cluster``."""
    kind = Kind(kind).value
    n = int(np.sum(atoms.pbc))
    tags = {kind, "periodic" if n else "isolated"}
    if n:
        tags.add(f"periodic{n}")
    if kind == "molecule":  # an isolated cluster for the checks selecting clusters (MD)
        tags.add("cluster")
    return frozenset(tags)
