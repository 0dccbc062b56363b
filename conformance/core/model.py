"""The model under audit: a calculator, how to make a fresh one, and its tags.

Checks never call the calculator directly; they call :meth:`Model.evaluate`,
which copies the structure (so the caller's Atoms is never touched and no
cache can hide a bug), resets the calculator, asks for the properties, checks
that what came back is finite and well shaped, and counts calls and the time
spent inside the calculator.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import threading
import time
import warnings
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress
from ase.calculators.calculator import PropertyNotImplementedError

from .boxing import CLASSES, in_vacuum_box, needs_box, structure_class, vacuum_for
from .tags import Tags, infer_tags


class ModelError(RuntimeError):
    """The model raised, timed out, or returned non-finite / malformed values."""


class MissingProperty(RuntimeError):
    """The model does not implement a property a check needs."""


class InputError(ValueError):
    """The user's input (a data file, a structure file) cannot be used; reported as an
    ``error`` result with this message and no traceback."""


class Skip(Exception):
    """Raised by a check that does not apply to this model/case (with the reason)."""


class Timeout(BaseException):
    """Internal: a model call ran past the time limit."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Interrupt the block after ``seconds`` (main thread only, via SIGALRM)."""
    if not seconds or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "setitimer"):
        yield
        return

    def handler(signum, frame):
        raise Timeout()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def as_voigt(stress: np.ndarray) -> np.ndarray:
    """Stress as Voigt (6,) eV/Å³ from either (6,) or (3, 3)."""
    s = np.asarray(stress, dtype=float)
    return full_3x3_to_voigt_6_stress(s) if s.shape == (3, 3) else s


class Model:
    """A calculator under audit.

    Parameters
    ----------
    calc : ase Calculator
        The model.
    factory : callable, optional
        Zero-argument callable returning a fresh, equivalent calculator (used by
        hygiene checks); default: a deep copy of ``calc`` taken here, before
        any call, so that nothing it caches later (results keyed on part of
        the input survive ``reset()``) leaks into the fresh instances.
    spec : str, optional
        How the model was specified (``ase:EMT``), for reproducers.
    tags : Tags, optional
        Default: inferred from ``calc``.
    timeout : float, optional
        Seconds a single evaluation may take before it is an error.
    """

    def __init__(self, calc: Any, factory: Callable[[], Any] | None = None, spec: str | None = None,
                 tags: Tags | None = None, timeout: float | None = None):
        self.calc = calc
        self._factory = factory
        #: the calculator as it was before any call (see :meth:`fresh`)
        self._pristine = None if factory is not None else _pristine_copy(calc)
        self.spec = spec or type(calc).__name__
        self.tags = tags if tags is not None else infer_tags(calc)
        self.timeout = timeout
        self.n_calls = 0
        self.calc_seconds = 0.0
        #: Why isolated structures are evaluated in a vacuum box (None: they are not):
        #: the model's declaration, or the error it raised on a structure without a cell.
        self.boxing_reason: str | None = ("declared periodic_only" if self.tags.periodic_only
                                          else None)
        #: classes of structure (conformance.core.boxing.CLASSES) evaluated in a vacuum box
        self.boxed_classes: set[str] = set(CLASSES[:2]) if self.tags.periodic_only else set()
        self._box_failed: set[str] = set()  # classes whose boxed retry also raised
        #: warnings the model emitted during calls: "Category: text" -> count
        self.warnings: dict[str, int] = {}
        #: class of structure -> ClassSupport, from the session's probe (conformance.run.probe)
        self.support: dict | None = None
        #: case name -> why its items are skipped (its class cannot be evaluated)
        self.unsupported: dict[str, str] = {}
        #: case name -> the Case relaxed with this model, where MD on an isolated case
        #: starts (conformance.checks.dynamics.start_case): relaxed once per case
        self.relaxed_starts: dict = {}
        #: told when each call starts and ends (``enter(atoms, formula)``, ``exit()``):
        #: the model worker's watchdog (conformance.run.isolation.CallMonitor); None: nobody
        self.monitor = None

    def __repr__(self) -> str:
        return f"Model({self.spec!r}, precision={self.tags.precision!r})"

    @property
    def species(self) -> tuple:
        return self.tags.species

    def fresh(self) -> Any:
        """A new calculator instance equivalent to the audited one, as it was
        before any call: a deep copy of a pristine instance (made by the
        factory once, or copied from the calculator when the Model was built);
        the factory itself when the calculator cannot be deep-copied."""
        if self._pristine is None and self._factory is not None:
            self._pristine = _pristine_copy(self._factory())
        if self._pristine is not None:
            try:
                return copy.deepcopy(self._pristine)
            except Exception:
                pass
        if self._factory is not None:
            return self._factory()
        calc = copy.deepcopy(self.calc)  # cannot copy a pristine one: the calculator as it is now
        if hasattr(calc, "reset"):
            calc.reset()
        return calc

    def evaluate(self, atoms: Atoms, properties: Iterable[str] = ("energy", "forces"),
                 calc: Any = None, adapt: bool = True) -> dict[str, Any]:
        """Evaluate ``properties`` on a copy of ``atoms``.

        With ``adapt`` (default) the copy is put in a periodic vacuum box when the
        model is periodic-only (:meth:`adapt`); a model not yet known to be
        periodic-only that raises on a structure with a non-periodic direction is
        tried once more in a box, and when that works it is tagged
        ``periodic_only`` from then on (:attr:`boxing_reason` says why).

        Returns
        -------
        dict with float ``energy`` (eV), ``forces`` (N, 3) eV/Å, ``stress``
        (6,) Voigt eV/Å³, ``energies`` (N,) eV, as requested, all float64.

        Raises
        ------
        MissingProperty
            The calculator does not implement one of ``properties`` (or stress
            is asked of a cell-less structure a periodic-only model gets boxed).
        ModelError
            The calculator raised, ran past ``timeout``, or returned
            non-finite or wrongly shaped values.
        """
        calc = self.calc if calc is None else calc
        properties = tuple(properties)
        work = atoms.copy()
        work.calc = None
        if not adapt:
            return self._evaluate(calc, work, properties, work)
        try:
            return self._evaluate(calc, self.adapt(work), properties, work)
        except ModelError as exc:
            if not self._should_learn_boxing(work, exc):
                raise
            try:
                out = self._evaluate(calc, self.boxed(work), properties, work)
            except (ModelError, MissingProperty):
                self._box_failed.add(structure_class(work))  # retried once per class, not again
                raise exc from exc.__cause__
            self.learn_boxing(structure_class(work), str(exc))
            return out

    def evaluate_many(self, structures: Sequence[Atoms],
                      properties: Iterable[str] = ("energy", "forces")) -> list[dict[str, Any]]:
        """Evaluate independent structures: one batch when the calculator offers the
        batch protocol, else one at a time (:meth:`evaluate`); the same results either way.

        The batch protocol: ``calc.calculate_batch(list_of_atoms, properties)``
        returns one dict of results per structure (the units and shapes of
        :meth:`evaluate`), e.g. from a GPU model's batched forward pass. Each
        structure counts as one model call. A batch that raises is evaluated again
        one structure at a time, so an error names its structure (and a
        periodic-only model learns its vacuum box there).

        Returns
        -------
        list of dict, one per structure, as :meth:`evaluate` returns.
        """
        properties = tuple(properties)
        batch = getattr(self.calc, "calculate_batch", None)
        if batch is None or len(structures) < 2:
            return [self.evaluate(atoms, properties) for atoms in structures]
        originals = [atoms.copy() for atoms in structures]
        works = [self.adapt(work) for work in originals]
        if "stress" in properties and any(w is not o and o.cell.rank < 3 for w, o in zip(works, originals)):
            return [self.evaluate(atoms, properties) for atoms in structures]
        try:
            with self.calling(works[0], f", in a batch of {len(works)}", count=len(works)):
                raw = list(batch(works, properties))
            if len(raw) != len(works):
                raise ModelError(f"calculate_batch returned {len(raw)} results for {len(works)} structures")
            return [validate(r, len(w)) for r, w in zip(raw, works)]
        except ModelError:
            return [self.evaluate(atoms, properties) for atoms in structures]

    def _evaluate(self, calc, work: Atoms, properties: tuple, original: Atoms) -> dict[str, Any]:
        if "stress" in properties and work is not original and original.cell.rank < 3:
            raise MissingProperty("stress is undefined for a structure without a cell (this "
                                  "periodic-only model is evaluated in a vacuum box)")
        with self.calling(work):
            if hasattr(calc, "reset"):
                calc.reset()
            raw = {p: calc.get_property(p, work) for p in properties}
        return validate(raw, len(work))

    def adapt(self, atoms: Atoms) -> Atoms:
        """``atoms`` as the model can take it: in a periodic vacuum box
        (:meth:`boxed`) for a periodic-only model when a direction is not
        periodic, else unchanged (the same object)."""
        if needs_box(atoms) and structure_class(atoms) in self.boxed_classes:
            return self.boxed(atoms)
        return atoms

    def boxed(self, atoms: Atoms) -> Atoms:
        """``atoms`` in a periodic box with vacuum ≥ 2 × cutoff + 2 Å (20 Å without cutoff)."""
        return in_vacuum_box(atoms, vacuum_for(self.tags.cutoff, self.tags.receptive_field))

    def learn_boxing(self, cls: str, reason: str) -> None:
        """Evaluate structures of class ``cls`` boxed from now on, because of ``reason``
        (what the model raised without a box); isolated ones make it ``periodic_only``."""
        self.boxed_classes.add(cls)
        if cls == CLASSES[0]:
            self.tags = self.tags.replace(periodic_only=True)
        self.boxing_reason = self.boxing_reason or reason

    def _should_learn_boxing(self, atoms: Atoms, exc: ModelError) -> bool:
        """A model that raised (not NaN, shape or timeout) on a structure with a
        non-periodic direction, not yet known to be periodic-only."""
        cls = structure_class(atoms)
        return (needs_box(atoms) and cls not in self.boxed_classes and cls not in self._box_failed
                and exc.__cause__ is not None
                and not isinstance(exc.__cause__, (MemoryError, KeyboardInterrupt)))

    @contextlib.contextmanager
    def calling(self, atoms: Atoms, how: str = "", count: int = 1):
        """Count and time ``count`` model calls (a batch), the first on ``atoms``,
        under the time limit (``count`` × the limit of one call).

        Exceptions raised inside the block become :class:`MissingProperty`
        (PropertyNotImplementedError) or :class:`ModelError` (anything else,
        and the timeout), with the structure named in the message; ``how``
        is appended to it (e.g. how the model was called).
        """
        formula = atoms.get_chemical_formula()
        self.n_calls += count
        monitor = self.monitor
        if monitor is not None:
            monitor.enter(atoms, formula)
        t0 = time.perf_counter()
        limit = None if self.timeout is None else self.timeout * count
        try:
            with time_limit(limit), self._recording_warnings():
                yield
        except PropertyNotImplementedError as exc:
            raise MissingProperty(f"model does not implement a requested property: {exc}") from exc
        except Timeout:
            raise ModelError(f"model call exceeded the time limit of {limit:g} s "
                             f"({len(atoms)} atoms, {formula})") from None
        except (KeyboardInterrupt, SystemExit, ModelError, MissingProperty):
            raise
        except Exception as exc:
            raise ModelError(f"model raised {type(exc).__name__}: {exc} "
                             f"(on {formula}, pbc={atoms.pbc.tolist()}{how})") from exc
        finally:
            self.calc_seconds += time.perf_counter() - t0
            if monitor is not None:
                monitor.exit()

    @contextlib.contextmanager
    def _recording_warnings(self):
        """Warnings the model emits are counted in :attr:`warnings` (text -> count)
        instead of being raised or shown: a user's ``filterwarnings = error``
        must not turn a model's ``UserWarning`` into an error of every check.
        Only in the main thread (``warnings.catch_warnings`` is process-global)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                for w in caught:
                    key = f"{w.category.__name__}: {w.message}"
                    self.warnings[key] = self.warnings.get(key, 0) + 1


def _pristine_copy(calc: Any) -> Any:
    """A deep copy of ``calc`` as handed to the audit, or None when it cannot be
    copied (a calculator holding a lock or an open file: :meth:`Model.fresh`
    then copies the calculator as it is at that time)."""
    try:
        return copy.deepcopy(calc)
    except Exception:
        return None


SHAPES = {"energy": (), "free_energy": (), "forces": ("N", 3), "energies": ("N",), "stress": (6,)}


def validate(raw: dict[str, Any], n_atoms: int) -> dict[str, Any]:
    """Convert to float64, check shapes and finiteness; raise ModelError."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            raise ModelError(f"model returned None for {name}")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"model returned a non-numeric {name}: {exc}") from exc
        if name == "stress":
            if arr.shape not in ((6,), (3, 3)):
                raise ModelError(f"stress has shape {arr.shape}, expected (6,) Voigt or (3, 3)")
            arr = as_voigt(arr)
        shape = tuple(n_atoms if s == "N" else s for s in SHAPES.get(name, arr.shape))
        if name in ("energy", "free_energy") and arr.size == 1:
            arr = arr.reshape(())
        if arr.shape != shape:
            raise ModelError(f"{name} has shape {arr.shape}, expected {shape}")
        bad = ~np.isfinite(arr)
        if bad.any():
            where = f" ({int(bad.any(axis=-1).sum())} of {n_atoms} atoms)" if arr.ndim == 2 else ""
            raise ModelError(f"model returned non-finite {name} (NaN or inf){where}")
        out[name] = float(arr) if arr.ndim == 0 else arr
    return out
