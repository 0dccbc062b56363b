"""Data sets as lazily read partitions of many files (extxyz shards, ASE databases).

``--mlip-train``/``--mlip-test`` name one file, several (comma-separated) or glob
patterns (``data/train-*.extxyz``); :func:`partitions` splits them into
:class:`Partition` s of at most ``partition_size`` frames without reading a
structure (frame counts come from a scan of the extxyz headers or the database's
row count), and :func:`read_partition` reads and validates one partition. Memory
is bounded by the partition, not the data set.

Frames are numbered two ways: ``frame`` within its shard (what a user opens the
file at) and ``index`` in the data set (shards in the order given, patterns
expanded in sorted order): the audits report the data-set index, errors name the
shard and its frame.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .data import REQUIRED, DataError, check_labelled

__all__ = ["Partition", "expand_paths", "count_frames", "partitions", "read_partition",
           "PARTITION_SIZE", "describe"]

#: Frames per partition: ~2000 small structures are ~10-50 MB of working memory in
#: the audits' featurisation.
PARTITION_SIZE = 2000
_DB_SUFFIXES = (".db", ".json", ".aselmdb")


@dataclass(frozen=True)
class Partition:
    """Frames ``start:stop`` of one shard, the ``offset``-th frame of the data set first.

    Attributes
    ----------
    path : str
        Shard file.
    start, stop : int
        Frame range within the shard.
    offset : int
        Data-set index of frame ``start``.
    """

    path: str
    start: int
    stop: int
    offset: int

    def __len__(self) -> int:
        return self.stop - self.start

    def where(self, k: int) -> str:
        """``'<shard> frame <f>'`` of the partition's k-th frame."""
        return f"{self.path} frame {self.start + k}"


def expand_paths(spec) -> list[Path]:
    """Files named by ``spec``: a path, a glob pattern, a comma-separated list of either,
    or a sequence of them; patterns expand in sorted order.

    Raises
    ------
    DataError
        A name that is no file, or a pattern that matches nothing.
    """
    items = [spec] if isinstance(spec, (str, Path)) else list(spec)
    names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if not names:
        raise DataError("no data files given")
    out = []
    for name in names:
        if glob.has_magic(name):
            matches = sorted(Path(p) for p in glob.glob(name) if Path(p).is_file())
            if not matches:
                raise DataError(f"{name}: pattern matches no file")
            out.extend(matches)
        else:
            path = Path(name)
            if not path.is_file():
                raise DataError(f"{path}: no such file")
            out.append(path)
    return out


def _is_database(path: Path) -> bool:
    return path.suffix in _DB_SUFFIXES


def count_frames(path) -> int:
    """Number of frames in a file without parsing them.

    extxyz/xyz: a scan of the atom-count lines; ASE databases: their row count;
    any other format: all frames read once.

    Raises
    ------
    DataError
        Empty or unreadable file (the message names it and, for extxyz, the line).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (no structures)")
    try:
        if path.suffix in (".extxyz", ".xyz"):
            return _count_xyz(path)
        if _is_database(path):
            import ase.db

            with ase.db.connect(str(path)) as db:
                return db.count()
        from ase.io import read

        frames = read(str(path), index=":")
        return len(frames) if isinstance(frames, list) else 1
    except DataError:
        raise
    except Exception as exc:  # ase raises many exception types for bad files
        raise DataError(f"{path}: cannot read structures: {type(exc).__name__}: {exc}") from exc


def _count_xyz(path: Path) -> int:
    count, line_no = 0, 0
    with open(path, "rb") as handle:
        while True:
            line = handle.readline()
            line_no += 1
            if not line:
                break
            if not line.strip():
                continue
            try:
                n = int(line.split()[0])
            except ValueError:
                raise DataError(f"{path}: cannot read structures: line {line_no} should give "
                                f"the number of atoms of frame {count}, got "
                                f"{line[:40].decode(errors='replace')!r}") from None
            for _ in range(n + 1):
                if not handle.readline():
                    raise DataError(f"{path}: cannot read structures: frame {count} is cut "
                                    "short (fewer lines than its atom count)")
            line_no += n + 1
            count += 1
    if count == 0:
        raise DataError(f"{path}: no structures in file")
    return count


def partitions(spec, partition_size: int = PARTITION_SIZE) -> list[Partition]:
    """Split the files of ``spec`` (see :func:`expand_paths`) into partitions.

    Raises
    ------
    DataError
        Missing, empty or unreadable files.
    """
    if partition_size < 1:
        raise ValueError(f"partition_size must be positive, got {partition_size}")
    out, offset = [], 0
    for path in expand_paths(spec):
        n = count_frames(path)
        for start in range(0, n, partition_size):
            stop = min(start + partition_size, n)
            out.append(Partition(str(path), start, stop, offset))
            offset += stop - start
    return out


def describe(spec) -> str:
    """Short name of a data spec for messages: the file, or the first file and a count."""
    try:
        files = expand_paths(spec)
    except DataError:
        return str(spec)
    return str(files[0]) if len(files) == 1 else f"{files[0]} and {len(files) - 1} more files"


def read_partition(part: Partition, species: Sequence[str] | None = None,
                   require: Sequence[str] = REQUIRED) -> list:
    """Read and validate the frames of one partition.

    Returns
    -------
    list of ase.Atoms
        Labelled copies (see :func:`conformance.audits.data.check_labelled`).

    Raises
    ------
    DataError
        Unreadable frames, frames without a required label, unknown species, non-finite
        labels; the message names the shard and the frame within it.
    """
    path = Path(part.path)
    try:
        if _is_database(path):
            import ase.db

            with ase.db.connect(str(path)) as db:
                frames = [row.toatoms(add_additional_information=True)
                          for row in db.select(offset=part.start, limit=len(part))]
            for atoms in frames:
                _db_info(atoms)
        else:
            from ase.io import read

            frames = read(str(path), index=f"{part.start}:{part.stop}")
            frames = frames if isinstance(frames, list) else [frames]
    except Exception as exc:  # ase raises many exception types for bad files
        raise DataError(f"{path}: cannot read frames {part.start}-{part.stop - 1}: "
                        f"{type(exc).__name__}: {exc}") from exc
    if len(frames) != len(part):
        raise DataError(f"{path}: expected frames {part.start}-{part.stop - 1}, read "
                        f"{len(frames)} (the file changed while it was audited?)")
    return check_labelled(frames, str(path), species, require, first_frame=part.start,
                          copy=False)


def _db_info(atoms) -> None:
    """Move an ASE database row's key-value pairs into ``atoms.info``."""
    extra = atoms.info.pop("key_value_pairs", None) or {}
    atoms.info.update(extra)
    atoms.info.pop("unique_id", None)
