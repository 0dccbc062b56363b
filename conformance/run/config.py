"""Run configuration: command line and ``[tool.mlip-conformance]`` in pyproject.toml.

Every command-line option ``--mlip-X-Y`` has a pyproject key ``X-Y`` (or
``X_Y``); the command line wins. Unknown keys are an error that lists the
known ones. Example::

    [tool.mlip-conformance]
    model = "mypkg.calc:make_calculator"
    species = ["Cu", "Ni"]
    precision = "float32"
    checks = ["symmetry", "conservation"]
    skip = ["memory_growth"]
    seed = 1
    [tool.mlip-conformance.xfail]
    "stale_cache" = "known caching bug, issue #12"
    "rotation_invariance[slab_Cu_fcc111]" = "surface term not yet equivariant"
    [tool.mlip-conformance.tolerances]
    force_atol = 1e-6
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..core.tolerances import PRECISIONS, TABLE, Tolerances


class ConfigError(ValueError):
    """Invalid configuration value or key (message says which and why)."""


def did_you_mean(name: str, known) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class RunConfig:
    """Everything a conformance run is parameterised by.

    Attributes
    ----------
    model : str or None
        Model spec, e.g. ``ase:EMT`` (see :mod:`adapters`).
    model_kwargs : dict
        Keyword arguments for the model class or factory.
    species : tuple of str
        Species to build cases for (default: the model's declaration).
    structures : str or None
        Path of extra structures (any ase.io format).
    precision : str or None
        ``float64`` or ``float32`` (default: the model's declaration, else float64).
    checks, skip : tuple of str
        Check names or families to run / to leave out.
    xfail : dict
        ``{"check" or "check[case]": reason}``: known failures (strict xfail).
    report : str or None
        Report path (``.json``, ``.md``, ``.html``).
    train, test : str or None
        Data files for the data audits: a file, comma-separated files or glob
        patterns (extxyz shards, ASE databases), read in partitions.
    seed : int
        Seed of structures, transforms and MD.
    examples : int
        Random transforms tried per symmetry check.
    md_steps : int or None
        MD steps per run (default: per-check default).
    md_long : bool
        Production-length MD preset.
    md_temperature : float or None
        Hot-MD temperature (K); default 1.5 × melting point.
    md_timestep : float or None
        MD time step (fs); default from the lightest species.
    timeout : float or None
        Seconds one model call may take.
    tolerances : dict
        ``{name: value}`` or ``{check: {name: value}}`` overrides.
    structure_kinds : tuple of str
        Restrict built-in structures to these kinds.
    cutoffs : tuple of float
        Cutoff radii (Å) of the optional ``cutoff_convergence`` data audit.
    fail_on : str
        Lowest severity whose violations fail an item: ``consistency`` (default:
        mandatory and consistency checks fail) or ``mandatory`` (consistency
        violations are reported as findings). Informational never fails.
    isolate : bool or None
        Run the model in a worker process (:mod:`conformance.run.isolation`), so that
        a crash, an out-of-memory kill or a hang in native code costs one item,
        not the audit. None: the front end's default (on in the pytest plugin,
        off in :func:`conformance.audit`, which then needs a model spec).
    memory_limit : float or None
        Address-space limit (GB) of the model worker (``RLIMIT_AS``): running
        out of memory becomes a ``MemoryError`` in the model, not a kill.
    resume : bool
        Resume an interrupted pytest run from its journal
        (:mod:`conformance.run.journal`): items already there are not run again.
    dask : str or None
        Where the data audits run: the address of a running ``distributed``
        scheduler (``tcp://host:8786``), or ``processes:N`` / ``threads:N`` for a
        local cluster of N workers started and closed by the audit. None: a local
        cluster (processes, one per core, for data sets of more than two
        partitions; threads otherwise).
    """

    model: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    species: tuple = ()
    structures: str | None = None
    precision: str | None = None
    checks: tuple = ()
    skip: tuple = ()
    xfail: dict = field(default_factory=dict)
    report: str | None = None
    train: str | None = None
    test: str | None = None
    seed: int = 0
    examples: int = 4
    md_steps: int | None = None
    md_long: bool = False
    md_temperature: float | None = None
    md_timestep: float | None = None
    timeout: float | None = None
    tolerances: dict = field(default_factory=dict)
    structure_kinds: tuple = ()
    cutoffs: tuple = ()
    fail_on: str = "consistency"
    isolate: bool | None = None
    memory_limit: float | None = None
    resume: bool = False
    dask: str | None = None

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def make_tolerances(self, precision: str) -> Tolerances:
        """Tolerances for ``precision`` with this config's overrides."""
        flat = {k: v for k, v in self.tolerances.items() if not isinstance(v, Mapping)}
        per_check = {k: dict(v) for k, v in self.tolerances.items() if isinstance(v, Mapping)}
        try:
            return Tolerances(precision, flat, per_check)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None


KEYS = tuple(f.name for f in dataclasses.fields(RunConfig))


def _split_list(value: Any) -> tuple:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v).strip() for v in value)


def coerce(key: str, value: Any) -> Any:
    """Validate and convert one configuration value (raise ConfigError)."""
    try:
        if key in ("species", "checks", "skip", "structure_kinds"):
            return _split_list(value)
        if key == "cutoffs":
            radii = tuple(float(v) for v in _split_list(value))
            if any(not r > 0 for r in radii):
                raise ConfigError(f"cutoffs must be positive radii in Å, got {value!r}")
            return radii
        if key == "model_kwargs":
            if isinstance(value, str):
                value = json.loads(value) if value.strip() else {}
            if not isinstance(value, dict):
                raise ConfigError("model-kwargs must be a JSON object, e.g. '{\"sigma\": 2.3}'")
            return dict(value)
        if key in ("seed", "examples", "md_steps"):
            v = int(value)
            if v < 0 or (key in ("examples", "md_steps") and v < 1):
                raise ConfigError(f"{key} must be a positive integer, got {value!r}")
            return v
        if key in ("timeout", "md_temperature", "md_timestep", "memory_limit"):
            v = float(value)
            if v <= 0:
                raise ConfigError(f"{key} must be > 0, got {value!r}")
            return v
        if key in ("md_long", "resume"):
            if isinstance(value, str):
                return value.lower() in ("1", "true", "yes", "on")
            return bool(value)
        if key == "isolate":
            return _yes_no(key, value)
        if key == "fail_on":
            if value not in ("mandatory", "consistency"):
                raise ConfigError(f"fail-on must be mandatory or consistency, got {value!r}")
            return value
        if key == "precision":
            if value not in PRECISIONS:
                raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
            return value
        if key == "xfail":
            if not isinstance(value, Mapping):
                raise ConfigError("xfail must be a table {\"check\" or \"check[case]\" = \"reason\"}")
            return {str(k): str(v) for k, v in value.items()}
        if key == "tolerances":
            if not isinstance(value, Mapping):
                raise ConfigError("tolerances must be a table {name = value}")
            out: dict[str, Any] = {}
            for k, v in value.items():
                if isinstance(v, Mapping):
                    out[k] = {n: _tolerance_value(n, x) for n, x in v.items()}
                else:
                    out[k] = _tolerance_value(k, v)
            return out
        if key in ("model", "structures", "report", "train", "test"):
            return None if value in (None, "") else str(value)
        if key == "dask":
            return _dask_target(value)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid value for {key}: {value!r} ({exc})") from None
    raise ConfigError(f"unknown key {key!r}")


def _dask_target(value: Any) -> str | None:
    """A scheduler address, or ``processes:N`` / ``threads:N`` (N >= 1)."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    kind, _, count = text.partition(":")
    if kind in ("processes", "threads"):
        if not (count.isdigit() and int(count) >= 1):
            raise ConfigError(f"dask must be an address or processes:N / threads:N with N >= 1, "
                              f"got {value!r}")
        return f"{kind}:{int(count)}"
    if "://" not in text and ":" not in text:
        raise ConfigError(f"dask must be a scheduler address (tcp://host:port) or "
                          f"processes:N / threads:N, got {value!r}")
    return text


def _yes_no(key: str, value: Any) -> bool:
    """``yes``/``no`` (also true/false, on/off, 1/0, booleans) as a bool."""
    if isinstance(value, bool):
        return value
    words = {"yes": True, "true": True, "on": True, "1": True,
             "no": False, "false": False, "off": False, "0": False}
    if str(value).strip().lower() not in words:
        raise ConfigError(f"{key.replace('_', '-')} must be yes or no, got {value!r}")
    return words[str(value).strip().lower()]


def _tolerance_value(name: str, value: Any) -> float:
    if name not in TABLE:
        _load_all_tolerances()
    if name not in TABLE:
        raise ConfigError(f"unknown tolerance {name!r}{did_you_mean(name, TABLE)}; known: "
                          f"{', '.join(sorted(TABLE))}")
    v = float(value)
    if not v >= 0:
        raise ConfigError(f"tolerance {name} must be >= 0, got {value!r}")
    return v


def _load_all_tolerances():
    from ..core.registry import load_families

    load_families()  # the families define their tolerance rows


def normalise_key(key: str) -> str:
    return key.replace("-", "_")


def from_mapping(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Validate a ``{key: value}`` mapping (pyproject table or CLI)."""
    out = {}
    for raw_key, value in values.items():
        key = normalise_key(raw_key)
        if key not in KEYS:
            known = [k.replace("_", "-") for k in KEYS]
            raise ConfigError(f"{source}: unknown key {raw_key!r}"
                              f"{did_you_mean(raw_key.replace('_', '-'), known)}; known keys: "
                              f"{', '.join(known)}")
        try:
            out[key] = coerce(key, value)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    return out


def read_pyproject(path: str | os.PathLike) -> dict[str, Any]:
    """The validated ``[tool.mlip-conformance]`` table of a pyproject.toml ({} if absent)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover  (Python 3.10)
        import tomli as tomllib
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    table = data.get("tool", {}).get("mlip-conformance", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path}: [tool.mlip-conformance] must be a table")
    return from_mapping(table, f"{path} [tool.mlip-conformance]")


def build_config(cli: Mapping[str, Any], pyproject: Mapping[str, Any] | None = None) -> RunConfig:
    """Merge validated pyproject values with CLI values (CLI wins where given)."""
    values = dict(pyproject or {})
    values.update({k: v for k, v in from_mapping(
        {k: v for k, v in cli.items() if v is not None}, "command line").items()})
    return RunConfig(**values)
