"""Models that fail the way compiled model code fails: crash, run out of memory, hang.

:class:`FaultyOn` is a correct smooth pair potential except on the structures of
the kinds it is told about, where it commits one fault each, e.g.
``FaultyOn(faults={"trimer": "abort", "bulk": "segfault"})``. The kind is read
from the structure (number of atoms and periodic directions, see
:func:`structure_kind`), so a check that makes one call on its case (``net_force``)
meets the fault exactly once. The session's probe of the classes of structure
evaluates the smallest case of each class (dimer, slab, small cell): faults on
trimer, cluster, bulk and wire leave it alone.

A fault that ends the process must not run in the pytest process itself: run
these models through ``pytest --mlip-model=tests/zoo/crashing.py:FaultyOn``
(isolation on), or with ``--mlip-isolate=no`` in a pytest subprocess.
"""

from __future__ import annotations

import os
import signal
import time
import warnings

import numpy as np
from ase.calculators.calculator import all_changes

from .base import SmoothPair


def structure_kind(atoms) -> str:
    """The built-in case kind a structure looks like (from its size and periodicity)."""
    periodic = int(np.sum(atoms.pbc))
    if periodic == 0:
        return {2: "dimer", 3: "trimer"}.get(len(atoms), "cluster")
    if periodic == 1:
        return "wire"
    if periodic == 2:
        return "slab"
    return "small_cell" if len(atoms) <= 2 else "bulk"


def abort():
    """``abort()``: SIGABRT, as a failed C assertion or an uncaught C++ exception."""
    os.abort()


def segfault():
    """Read address 0: SIGSEGV, as a null pointer in an extension."""
    import ctypes

    ctypes.string_at(0)


def oom_kill():
    """SIGKILL of the process, as the kernel's out-of-memory killer sends it."""
    os.kill(os.getpid(), signal.SIGKILL)


def memory_error():
    """A Python MemoryError, as an allocation that fails inside the model."""
    raise MemoryError("simulated: could not allocate 23.8 GiB")


def allocate():
    """Reserve 8 GB at once: a MemoryError under a smaller memory limit (address
    space); without one, nothing (the pages are never touched)."""
    block = np.empty(int(8e9) // 8)
    return block.nbytes


def python_loop():
    """A hang in Python code."""
    while True:
        pass


def sleep_loop():
    """A hang in a C call that returns now and then (``time.sleep`` in a loop)."""
    while True:
        time.sleep(0.01)


def blocking_read():
    """A hang in one blocking C call: ``os.read`` on a pipe nobody writes to."""
    read_end, write_end = os.pipe()
    os.read(read_end, 1)


def native_hang():
    """A hang inside one C function that holds the GIL and never checks for
    signals (``sum`` over a huge range): no alarm gets control back."""
    sum(range(10**15))


def exit_call():
    """A library that calls ``exit(3)``."""
    os._exit(3)


def mutate_globals():
    """Change process-wide state and carry on: the working directory, signal
    handlers, numpy's error handling, the warnings filter."""
    import tempfile

    os.chdir(tempfile.gettempdir())
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    np.seterr(all="ignore")
    warnings.simplefilter("ignore")


FAULTS = {f.__name__: f for f in (abort, segfault, oom_kill, memory_error, allocate, python_loop,
                                  sleep_loop, blocking_read, native_hang, exit_call, mutate_globals)}
#: faults that spoil the output instead of the process
OUTPUT_FAULTS = ("nan", "wrong_shape")


class FaultyOn(SmoothPair):
    """A correct smooth pair potential, except on the structure kinds in ``faults``.

    Parameters
    ----------
    faults : dict
        ``{kind or formula: fault}`` with kinds from :func:`structure_kind` (a kind
        wins over a formula: ``{"wire": ..., "Cu32": ...}`` tells the Cu wire from
        bulk Cu) and faults from :data:`FAULTS` or :data:`OUTPUT_FAULTS` (``nan``
        forces, forces with a ``wrong_shape``).
    log : str, optional
        A file that gets one line ``kind pid`` per call (to count calls across
        processes).
    """

    species = ["Cu"]

    def __init__(self, faults: dict | None = None, log: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.faults = dict(faults or {})
        unknown = set(self.faults.values()) - set(FAULTS) - set(OUTPUT_FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        self.log = log

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        kind = structure_kind(atoms)
        if self.log:
            with open(self.log, "a") as handle:
                handle.write(f"{kind} {os.getpid()}\n")
        fault = self.faults.get(kind) or self.faults.get(atoms.get_chemical_formula())
        if fault in FAULTS:
            FAULTS[fault]()
        super().calculate(atoms, properties, system_changes)
        if fault == "nan":
            self.results["forces"] = self.results["forces"].copy()
            self.results["forces"][0] = np.nan
        elif fault == "wrong_shape":
            self.results["forces"] = self.results["forces"][:-1]


class SlowPair(SmoothPair):
    """A correct smooth pair potential that takes ``seconds`` per call (to
    interrupt a run half-way), logging each call like :class:`FaultyOn`."""

    species = ["Cu"]

    def __init__(self, seconds: float = 0.5, log: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seconds = seconds
        self.log = log

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if self.log:
            with open(self.log, "a") as handle:
                handle.write(f"{structure_kind(atoms)} {os.getpid()}\n")
        time.sleep(self.seconds)
        super().calculate(atoms, properties, system_changes)


class OtherInWorker(SmoothPair):
    """Loads in the pytest process but not the same in a worker process:
    ``raises`` there (a model that cannot be loaded twice, e.g. a GPU held by the
    first), or declares another ``cutoff`` (items and tags would differ)."""

    species = ["Cu"]

    def __init__(self, mode: str = "raises", **kwargs):
        import multiprocessing

        in_worker = multiprocessing.parent_process() is not None
        if in_worker and mode == "raises":
            raise RuntimeError("device busy: the model is loaded in another process (simulated)")
        super().__init__(**kwargs)
        self.mode = mode
        if in_worker and mode == "cutoff":
            self.parameters.rc = 4.5


class CrashesOnLoad(SmoothPair):
    """Segfaults while being constructed (a broken extension module, a bad
    checkpoint): with isolation the pytest process never loads it."""

    species = ["Cu"]

    def __init__(self, **kwargs):
        segfault()
