"""Turn a model specification into an ASE calculator.

Specs
-----
``ase:EMT``
    Any calculator class shipped with ASE, by class name (``ase:EMT``,
    ``ase:LennardJones``, ``ase:MorsePotential``) or by ASE's short name
    (``ase:emt``, ``ase:lj``).
``package.module:attr``
    ``attr`` is a Calculator instance, a Calculator class, or a zero-argument
    factory returning a calculator (keyword arguments from ``kwargs``).
``path/to/file.py:attr``
    Same, from a Python file.
``reference:linear``, ``reference:nn``
    The reference models bundled in :mod:`reference_models`.
``entry:NAME``
    A factory registered by another package under the entry-point group
    ``mlip_conformance.models``.

A model may declare ``species`` (list of symbols), ``cutoff`` (Å) and
``precision`` (``"float64"``/``"float32"``) as attributes of the calculator or
of the factory; :func:`load` reads them when present.

Every way a spec can be wrong raises :class:`SpecError` with a message that
says what was tried and what to do.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

__all__ = ["SpecError", "LoadedModel", "load", "is_calculator"]

ENTRY_POINT_GROUP = "mlip_conformance.models"


class SpecError(ValueError):
    """The model spec cannot be turned into a calculator."""


@dataclass
class LoadedModel:
    """A calculator plus what the adapter learnt about it.

    Attributes
    ----------
    calc : Calculator
    factory : callable
        Zero-argument callable giving a fresh equivalent calculator.
    spec : str
    species : list of str or None
    cutoff : float or None  (Å)
    precision : str or None
    """

    calc: Any
    factory: Callable[[], Any]
    spec: str
    species: list | None = None
    cutoff: float | None = None
    precision: str | None = None
    kwargs: dict = field(default_factory=dict)


def is_calculator(obj: Any) -> bool:
    """Duck-typed ASE calculator: has ``get_property`` or ``calculate`` + ``results``."""
    if inspect.isclass(obj):
        return False
    return callable(getattr(obj, "get_property", None)) or (
        callable(getattr(obj, "calculate", None)) and hasattr(obj, "results"))


def _is_calculator_class(obj: Any) -> bool:
    if not inspect.isclass(obj):
        return False
    try:
        from ase.calculators.calculator import BaseCalculator
    except ImportError:  # pragma: no cover
        from ase.calculators.calculator import Calculator as BaseCalculator
    return issubclass(obj, BaseCalculator) or callable(getattr(obj, "get_property", None))


def _ase_class(name: str):
    from ase.calculators.calculator import get_calculator_class, special

    lower = name.lower()
    for key, cls_name in special.items():
        if cls_name.lower() == lower:
            lower = key
    try:
        return get_calculator_class(lower)
    except (ImportError, AttributeError):
        pass
    raise SpecError(f"ase:{name}: ASE has no calculator called {name!r}; examples: ase:EMT, "
                    f"ase:LennardJones, ase:MorsePotential (class names) or ase:emt, ase:lj")


def _import_module(module_name: str, spec: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise SpecError(f"{spec}: module {module_name!r} not found (is the package installed "
                            f"and on sys.path? current directory: {Path.cwd()})") from None
        raise SpecError(f"{spec}: importing {module_name!r} failed: missing module {exc.name!r}") from exc
    except Exception as exc:
        raise SpecError(f"{spec}: importing {module_name!r} raised {type(exc).__name__}: {exc}") from exc


def _load_file(path_str: str, spec: str):
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise SpecError(f"{spec}: file {str(path)!r} not found (relative to {Path.cwd()})")
    name = f"_mlip_model_{abs(hash(str(path.resolve())))}"
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # as `python path/file.py` does: modules beside it import
        sys.path.insert(0, folder)
    mod_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module
    try:
        mod_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SpecError(f"{spec}: executing {path} raised {type(exc).__name__}: {exc}") from exc
    return module


def _resolve_attr(module, attr: str, spec: str, where: str | None = None):
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            public = sorted(n for n in dir(module) if not n.startswith("_"))[:20]
            raise SpecError(f"{spec}: {where or module.__name__} has no attribute "
                            f"{attr!r}; it defines: {', '.join(public)}") from None
    return obj


def _instantiate(obj: Any, kwargs: dict, spec: str) -> tuple[Any, Callable[[], Any]]:
    """(calculator, factory) from an instance, a class or a factory."""
    if is_calculator(obj):
        if kwargs:
            raise SpecError(f"{spec}: is a calculator instance; it takes no model keyword arguments")
        return obj, lambda: copy.deepcopy(obj)
    if not callable(obj):
        raise SpecError(f"{spec}: {obj!r} is not a calculator, a calculator class or a factory")

    def factory():
        return obj(**kwargs)

    try:
        calc = factory()
    except TypeError as exc:
        raise SpecError(f"{spec}: calling {getattr(obj, '__name__', obj)!s}(**{kwargs}) failed: {exc}"
                        " (a factory must accept zero arguments, or the keyword arguments given "
                        "with --mlip-model-kwargs)") from exc
    except Exception as exc:
        raise SpecError(f"{spec}: the factory raised {type(exc).__name__}: {exc}") from exc
    if not is_calculator(calc):
        raise SpecError(f"{spec}: {getattr(obj, '__name__', obj)!s}() returned "
                        f"{type(calc).__name__}, not an ASE calculator (needs get_property or "
                        f"calculate/results)")
    return calc, factory


def _declared(calc: Any, source: Any, name: str):
    value = getattr(calc, name, None)
    if value is None and source is not None and not inspect.isclass(source):
        value = getattr(source, name, None)
    return value


def load(spec: str, kwargs: dict | None = None) -> LoadedModel:
    """Load a model spec as a calculator.

    Parameters
    ----------
    spec : str
        See the module docstring.
    kwargs : dict, optional
        Keyword arguments for the class or factory.

    Raises
    ------
    SpecError
        With a message naming what was wrong.
    """
    kwargs = dict(kwargs or {})
    if not isinstance(spec, str) or ":" not in spec:
        raise SpecError(f"model spec {spec!r} must look like 'ase:EMT', 'package.module:attr', "
                        "'path/to/file.py:attr' or 'reference:linear'")
    prefix, _, attr = spec.rpartition(":")
    if not prefix or not attr:
        raise SpecError(f"model spec {spec!r}: both sides of ':' are needed, e.g. 'ase:EMT'")
    source = None
    if prefix == "ase":
        source = _ase_class(attr)
    elif prefix == "reference":
        try:
            import reference_models
        except ImportError as exc:  # pragma: no cover
            raise SpecError(f"{spec}: reference models unavailable: {exc}") from exc
        names = reference_models.available() if hasattr(reference_models, "available") else []
        if attr not in names:
            raise SpecError(f"{spec}: no reference model {attr!r}; available: {', '.join(names) or 'none'}")
        source = lambda **kw: reference_models.load(attr, **kw)  # noqa: E731
    elif prefix == "entry":
        from importlib.metadata import entry_points

        eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        if attr not in eps:
            raise SpecError(f"{spec}: no entry point {attr!r} in group {ENTRY_POINT_GROUP}; "
                            f"installed: {', '.join(sorted(eps)) or 'none'}")
        try:
            source = eps[attr].load()
        except Exception as exc:
            raise SpecError(f"{spec}: loading entry point raised {type(exc).__name__}: {exc}") from exc
    elif prefix.endswith(".py") or "/" in prefix or "\\" in prefix:
        source = _resolve_attr(_load_file(prefix, spec), attr, spec, where=prefix)
    else:
        source = _resolve_attr(_import_module(prefix, spec), attr, spec)
    calc, factory = _instantiate(source, kwargs, spec)
    species = _declared(calc, source, "species")
    cutoff = _declared(calc, source, "cutoff")
    precision = _declared(calc, source, "precision")
    return LoadedModel(calc=calc, factory=factory, spec=spec,
                       species=list(species) if species else None,
                       cutoff=float(cutoff) if isinstance(cutoff, (int, float)) else None,
                       precision=precision if precision in ("float64", "float32") else None,
                       kwargs=kwargs)
