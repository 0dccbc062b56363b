"""The run options, in one table: command line, pyproject keys, defaults, validation, README.

Every option is one :class:`Option` row of :data:`OPTIONS`. The pytest plugin
adds a ``--mlip-<name>`` flag per row (:func:`conformance.plugin.hooks.pytest_addoption`),
:mod:`conformance.run.config` takes the defaults of :class:`~conformance.run.config.RunConfig`
and validates pyproject and command-line values with each row's ``coerce``, and
:func:`markdown_table` writes the README's options table.

``python -m conformance.run.options`` prints that table; ``python -m
conformance.run.options --update README.md`` rewrites every generated block of
the README in place (options, check catalogue, tolerances) and the lists of checks of
the family pages in docs/checks (a test keeps them in
sync). The command lives here because this is the layer that sees both the
options and the reporting layer's catalogue.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..core.profiles import PROFILES
from ..core.tolerances import PRECISIONS, TABLE


class ConfigError(ValueError):
    """Invalid configuration value or key (message says which and why)."""


def did_you_mean(name: str, known) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ------------------------------------------------------------------ coercions
# Each takes (field, value), ``field`` the RunConfig attribute, and returns the
# validated value; ConfigError says what is wrong, TypeError and ValueError are
# reported by the caller with the value.

def optional_text(field: str, value: Any) -> str | None:
    """A string, or None for a missing or empty value."""
    return None if value in (None, "") else str(value)


def name_list(field: str, value: Any) -> tuple:
    """Comma-separated names (or a list of them) as a tuple of stripped strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(str(v).strip() for v in value)


def positive_radii(field: str, value: Any) -> tuple:
    """Comma-separated radii in Å, each > 0, as a tuple of floats."""
    radii = tuple(float(v) for v in name_list(field, value))
    if any(not r > 0 for r in radii):
        raise ConfigError(f"cutoffs must be positive radii in Å, got {value!r}")
    return radii


def json_object(field: str, value: Any) -> dict:
    """A dict, or a JSON object in a string (an empty string is ``{}``)."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, dict):
        raise ConfigError("model-kwargs must be a JSON object, e.g. '{\"sigma\": 2.3}'")
    return dict(value)


def non_negative_int(field: str, value: Any) -> int:
    """An integer >= 0 (a seed)."""
    number = int(value)
    if number < 0:
        raise ConfigError(f"{field} must be a positive integer, got {value!r}")
    return number


def positive_int(field: str, value: Any) -> int:
    """An integer >= 1 (a count)."""
    number = int(value)
    if number < 1:
        raise ConfigError(f"{field} must be a positive integer, got {value!r}")
    return number


def positive_float(field: str, value: Any) -> float:
    """A number > 0 (a time, a temperature, a size)."""
    number = float(value)
    if number <= 0:
        raise ConfigError(f"{field} must be > 0, got {value!r}")
    return number


def switch(field: str, value: Any) -> bool:
    """A flag: a boolean, or a string that is true for 1/true/yes/on."""
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def yes_no(field: str, value: Any) -> bool:
    """``yes``/``no`` (also true/false, on/off, 1/0, booleans) as a bool."""
    if isinstance(value, bool):
        return value
    words = {"yes": True, "true": True, "on": True, "1": True,
             "no": False, "false": False, "off": False, "0": False}
    if str(value).strip().lower() not in words:
        raise ConfigError(f"{field.replace('_', '-')} must be yes or no, got {value!r}")
    return words[str(value).strip().lower()]


def failing_severity(field: str, value: Any) -> str:
    """``mandatory`` or ``consistency``."""
    if value not in ("mandatory", "consistency"):
        raise ConfigError(f"fail-on must be mandatory or consistency, got {value!r}")
    return value


def known_precision(field: str, value: Any) -> str:
    """One of :data:`conformance.core.tolerances.PRECISIONS`."""
    if value not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def known_profile(field: str, value: Any) -> str:
    """One of :data:`conformance.core.profiles.PROFILES`."""
    if value not in PROFILES:
        raise ConfigError(f"profile must be one of {', '.join(PROFILES)}, got {value!r}")
    return value


def dask_target(field: str, value: Any) -> str | None:
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


def known_failures(field: str, value: Any) -> dict:
    """``{"check" or "check[case]": reason}`` as strings."""
    if not isinstance(value, Mapping):
        raise ConfigError("xfail must be a table {\"check\" or \"check[case]\" = \"reason\"}")
    return {str(k): str(v) for k, v in value.items()}


def tolerance_overrides(field: str, value: Any) -> dict:
    """``{name: value}`` or ``{check: {name: value}}`` with known names and values >= 0."""
    if not isinstance(value, Mapping):
        raise ConfigError("tolerances must be a table {name = value}")
    out: dict[str, Any] = {}
    for key, entry in value.items():
        if isinstance(entry, Mapping):
            out[key] = {name: _tolerance_value(name, x) for name, x in entry.items()}
        else:
            out[key] = _tolerance_value(key, entry)
    return out


def _tolerance_value(name: str, value: Any) -> float:
    if name not in TABLE:
        from ..core.registry import load_families

        load_families()  # the families define their tolerance rows
    if name not in TABLE:
        raise ConfigError(f"unknown tolerance {name!r}{did_you_mean(name, TABLE)}; known: "
                          f"{', '.join(sorted(TABLE))}")
    number = float(value)
    if not number >= 0:
        raise ConfigError(f"tolerance {name} must be >= 0, got {value!r}")
    return number


# ------------------------------------------------------------------ the table

@dataclass(frozen=True)
class Option:
    """One run option: flag, pyproject key, default, help and validation.

    Attributes
    ----------
    name : str
        The pyproject key, e.g. ``model-kwargs``; the flag is ``--mlip-model-kwargs``
        and the :class:`~conformance.run.config.RunConfig` attribute ``model_kwargs``.
    metavar : str or None
        What the flag's value looks like (``SPEC``, ``INT``); None for a flag
        without value, which switches the option on (``--mlip-resume``).
    default : Any
        The value when the option is given nowhere.
    shown_default : str
        The default as ``--help`` and the README say it (Markdown).
    help : str
        What the option does (Markdown; ``--help`` shows it without backticks).
    coerce : callable
        ``coerce(field, value) -> value``: the validated value of a pyproject or
        command-line value; raises ConfigError, TypeError or ValueError.
    command_line : bool
        False for a table only pyproject.toml can hold (``xfail``, ``tolerances``).
    """

    name: str
    metavar: str | None
    default: Any
    shown_default: str
    help: str
    coerce: Callable[[str, Any], Any]
    command_line: bool = True

    @property
    def field(self) -> str:
        """The RunConfig attribute, e.g. ``model_kwargs``."""
        return self.name.replace("-", "_")

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--mlip-model-kwargs``."""
        return f"--mlip-{self.name}"

    @property
    def dest(self) -> str:
        """The pytest option name (``config.getoption``), e.g. ``mlip_model_kwargs``."""
        return f"mlip_{self.field}"

    @property
    def cli_help(self) -> str:
        """The ``--help`` text: the help and the default, without Markdown."""
        return f"{self.help} (default: {self.shown_default})".replace("`", "")


# The order of the rows is the order of ``--help`` and of the README table.
OPTIONS = (
    Option("model", "SPEC", None, "none, the suite is off",
           "model to audit: `ase:EMT`, `package.module:attr`, `path/file.py:attr`, `reference:linear`",
           optional_text),
    Option("model-kwargs", "JSON", {}, "`{}`",
           "keyword arguments for the model class or factory, e.g. `'{\"rc\": 5}'`", json_object),
    Option("species", "LIST", (), "the model's declared species",
           "comma-separated species to build cases for, e.g. `Cu,Au`", name_list),
    Option("structures", "FILE", None, "none",
           "extra structures to test (any ase.io format, all frames)", optional_text),
    Option("structure-kinds", "LIST", (), "all",
           "restrict built-in cases to these kinds "
           "(dimer, trimer, cluster, bulk, slab, wire, alloy, small_cell)", name_list),
    Option("precision", "DTYPE", None, "the model's declaration, else float64",
           "`float64` or `float32`: selects the tolerance table", known_precision),
    Option("checks", "LIST", (), "all", "comma-separated check names or families to run",
           name_list),
    Option("skip", "LIST", (), "none", "comma-separated check names or families to leave out",
           name_list),
    Option("report", "PATH", None, "none", "write a report: `.json`, `.md` or `.html`",
           optional_text),
    Option("train", "FILE", None, "none",
           "training set for the data audits: a file, comma-separated files or glob patterns "
           "(extxyz shards, ASE databases; energies and forces), read in partitions", optional_text),
    Option("test", "FILE", None, "none",
           "test set for the data audits (files or patterns as for `--mlip-train`)", optional_text),
    Option("dask", "ADDRESS", None, "a local cluster, one worker per core",
           "where the data audits run: a `distributed` scheduler (`tcp://host:8786`) "
           "or `processes:N` / `threads:N`", dask_target),
    Option("cutoffs", "LIST", (), "none, not run",
           "cutoff radii in Å of the optional `cutoff_convergence` data audit (~1 min), "
           "e.g. `4,5,6,7`", positive_radii),
    Option("golden", "FILE", None, "none, not run",
           "golden file of the model's outputs (JSON): written on the first run, compared on "
           "later runs (`golden_outputs`: energies, forces and stress on the seeded cases and "
           "variants, against the tolerance table)", optional_text),
    Option("golden-update", None, False, "off",
           "rewrite the golden file with the model's current outputs (accepting a change "
           "deliberately)", switch),
    Option("compare", "SPEC", None, "none, not run",
           "a second implementation of the model (spec as for `--mlip-model`): both are "
           "evaluated on the seeded cases and variants and must agree within the tolerances of "
           "the lower precision (`compare_outputs`)", optional_text),
    Option("seed", "INT", 0, "0", "seed of structures, transforms and MD", non_negative_int),
    Option("profile", "NAME", "standard", "`standard`",
           "how much each check measures: `quick` (at most ~600 model calls for the static "
           "families of one species: for iterating on an expensive model), `standard`, `thorough` "
           "(denser scans, more random operations, every species pair, production-length MD)",
           known_profile),
    Option("examples", "INT", None, "the profile's: 2, 4, 12",
           "random transforms per symmetry check", positive_int),
    Option("md-steps", "INT", None, "per check, short", "MD steps per run", positive_int),
    Option("md-temperature", "K", None, "1.5 × melting point", "temperature of the hot MD run",
           positive_float),
    Option("md-timestep", "FS", None, "from the lightest species' mass", "MD time step in fs",
           positive_float),
    Option("timeout", "SECONDS", None, "none",
           "time limit of one model call; a call that does not return (stuck in native code) "
           "is killed with its worker process", positive_float),
    Option("isolate", "yes|no", None, "yes",
           "run the model in a worker process, so that a crash, an out-of-memory kill or a hang "
           "in native code is one item's `error` (`no`: in the pytest process)", yes_no),
    Option("memory-limit", "GB", None, "none",
           "address-space limit of the model worker in GB: running out of memory becomes a "
           "`MemoryError` in the model", positive_float),
    Option("fail-on", "SEVERITY", "consistency", "consistency",
           "lowest severity that fails an item: `consistency` or `mandatory`; "
           "informational findings are always reported, never failed", failing_severity),
    Option("md-long", None, False, "off", "production-length MD preset for a pre-publication audit",
           switch),
    Option("resume", None, False, "off",
           "resume an interrupted audit from its journal (next to the report): items already "
           "done are not run again", switch),
    Option("xfail", None, {}, "none",
           "known failures, each a strict xfail: a table `\"check\" or \"check[case]\" = \"reason\"`",
           known_failures, command_line=False),
    Option("tolerances", None, {}, "the tolerance table below",
           "tolerance overrides: a table `name = value`, for every check or under "
           "`[tool.mlip-conformance.tolerances.CHECK]` for one", tolerance_overrides,
           command_line=False),
)

OPTION_BY_FIELD = {option.field: option for option in OPTIONS}


# ------------------------------------------------------------------ the README

def markdown_table() -> str:
    """The README's options table: option, pyproject key, default, meaning."""
    lines = ["| option | pyproject key | default | meaning |", "|---|---|---|---|"]
    for option in OPTIONS:
        if not option.command_line:
            flag = "pyproject only"
        elif option.metavar is None:
            flag = f"`{option.flag}`"
        else:
            flag = f"`{option.flag}={option.metavar}`"
        cells = [flag, f"`{option.name}`", option.shown_default, option.help]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def render_readme(text: str) -> str:
    """README text with every generated block refreshed (options, catalogue, tolerances)."""
    from ..reporting.catalogue import render_readme as render_catalogue_blocks, replace_block

    return replace_block(render_catalogue_blocks(text), "options", markdown_table())


def update_generated_files(readme: Path) -> list[Path]:
    """Rewrite the README's generated blocks and the family pages of ``docs/checks``
    beside it (their lists of checks); the paths written."""
    from ..reporting.catalogue import family_pages

    readme.write_text(render_readme(readme.read_text(encoding="utf-8")), encoding="utf-8")
    pages = family_pages(readme.resolve().parent / "docs" / "checks")
    for path, text in pages.items():
        path.write_text(text, encoding="utf-8")
    return [readme, *pages]


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) == 3 and sys.argv[1] == "--update":
        update_generated_files(Path(sys.argv[2]))
    else:
        print(markdown_table())
