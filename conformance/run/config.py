"""Run configuration: command line and ``[tool.mlip-conformance]`` in pyproject.toml.

Every option of :data:`conformance.run.options.OPTIONS` has a pyproject key
``X-Y`` (or ``X_Y``) and, unless it is a table, a command-line flag
``--mlip-X-Y``; the command line wins. Unknown keys are an error that lists
the known ones. Example::

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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..core.tolerances import Tolerances
from .options import OPTION_BY_FIELD, ConfigError, did_you_mean


def _default(field: str) -> dataclasses.Field:
    """The dataclass field of a RunConfig attribute, with the default of its option."""
    default = OPTION_BY_FIELD[field].default
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default))
    return dataclasses.field(default=default)


@dataclass(frozen=True)
class RunConfig:
    """Everything a conformance run is parameterised by.

    One attribute per option of :data:`conformance.run.options.OPTIONS` (its
    pyproject key with ``_`` for ``-``), which gives its meaning, default and
    validation; :func:`build_config` fills it from pyproject.toml and the
    command line. ``isolate`` is None unless given: the front end decides (on
    in the pytest plugin, off in :func:`conformance.audit`, which then needs a
    model spec).
    """

    model: str | None = _default("model")
    model_kwargs: dict = _default("model_kwargs")
    species: tuple = _default("species")
    structures: str | None = _default("structures")
    precision: str | None = _default("precision")
    checks: tuple = _default("checks")
    skip: tuple = _default("skip")
    xfail: dict = _default("xfail")
    report: str | None = _default("report")
    train: str | None = _default("train")
    test: str | None = _default("test")
    seed: int = _default("seed")
    profile: str = _default("profile")
    examples: int | None = _default("examples")
    md_steps: int | None = _default("md_steps")
    md_long: bool = _default("md_long")
    md_temperature: float | None = _default("md_temperature")
    md_timestep: float | None = _default("md_timestep")
    timeout: float | None = _default("timeout")
    tolerances: dict = _default("tolerances")
    structure_kinds: tuple = _default("structure_kinds")
    cutoffs: tuple = _default("cutoffs")
    fail_on: str = _default("fail_on")
    isolate: bool | None = _default("isolate")
    memory_limit: float | None = _default("memory_limit")
    resume: bool = _default("resume")
    dask: str | None = _default("dask")
    golden: str | None = _default("golden")
    golden_update: bool = _default("golden_update")
    compare: str | None = _default("compare")

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


def coerce(key: str, value: Any) -> Any:
    """Validate and convert one configuration value (raise ConfigError).

    ``key`` is a RunConfig attribute (``model_kwargs``); its option's ``coerce``
    does the work.
    """
    if key not in OPTION_BY_FIELD:
        raise ConfigError(f"unknown key {key!r}")
    try:
        return OPTION_BY_FIELD[key].coerce(key, value)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid value for {key}: {value!r} ({exc})") from None


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
