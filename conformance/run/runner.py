"""Run one check on one case and turn whatever happens into a CheckResult.

A failing check is a finding, not a crash: a model that raises, times out or
returns NaN gives an ``error`` result with the exception text; a property the
model lacks gives ``skipped`` with the reason.
"""

from __future__ import annotations

import re
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .config import RunConfig
from ..core.model import InputError, MissingProperty, Model, ModelError, Skip
from ..core.registry import CheckSpec
from ..core.profiles import PROFILES, STANDARD, Profile
from ..core.result import CheckResult, Verdict, judge
from ..core.cases import Case
from ..core.tolerances import Tolerances


@dataclass
class CheckContext:
    """What a check may read besides the model and the case.

    Attributes
    ----------
    tol : Tolerances
        Tolerances for this check (per-check overrides applied).
    config : RunConfig
        The run's options (examples, md_steps, seed, ...).
    reproducer : str
        Command line that reruns exactly this item (for messages).
    report_dir : Path or None
        Folder for artefacts (e.g. MD trajectories of failed runs).
    species : tuple of str
        The species the run's cases were built for.
    model_name : str
        The model spec as a file-name-safe string (for artefact names).
    progress : callable(done, total, what)
        Long checks (MD, data audits) call it to report progress; the pytest
        plugin shows it in the terminal. Default: does nothing.
    profile : Profile
        How much the check measures (:mod:`conformance.core.profiles`).
    compare : Model or None
        The second model of ``--mlip-compare`` (``compare_outputs`` reads it).
    """

    tol: Tolerances
    config: RunConfig = field(default_factory=RunConfig)
    reproducer: str = ""
    report_dir: Path | None = None
    species: tuple = ()
    model_name: str = "model"
    progress: Callable[[int, int, str], None] = field(default=lambda done, total, what: None)
    profile: Profile = STANDARD
    compare: Model | None = None

    @property
    def examples(self) -> int:
        """Random operations per symmetry check: ``--mlip-examples``, else the profile's."""
        return self.config.examples or self.profile.examples


def item_id(check: str, case: str) -> str:
    """``check[case]``: the pytest item name and the key for xfail declarations."""
    return f"{check}[{case}]"


def check_rng(seed: int, check: str, case: str) -> np.random.Generator:
    """Generator seeded by (seed, check, case): independent of run order."""
    return np.random.default_rng([int(seed), zlib.crc32(check.encode()), zlib.crc32(case.encode())])


def reproducer_command(config: RunConfig, check: str, case: str) -> str:
    """A pytest command line that reruns one item."""
    parts = ["pytest"]
    if config.model:
        parts.append(f"--mlip-model={config.model}")
    if config.model_kwargs:
        import json
        parts.append(f"--mlip-model-kwargs='{json.dumps(config.model_kwargs)}'")
    if config.species:
        parts.append(f"--mlip-species={','.join(config.species)}")
    if config.precision:
        parts.append(f"--mlip-precision={config.precision}")
    if config.structures:
        parts.append(f"--mlip-structures={config.structures}")
    for key in ("train", "test", "golden", "compare"):  # data, golden file, second model
        if getattr(config, key):
            parts.append(f"--mlip-{key}={getattr(config, key)}")
    parts.append(f"--mlip-seed={config.seed}")
    parts.append(f"-k '{check} and {case}'")
    return " ".join(parts)


def run_check(spec: CheckSpec, model: Model, case: Case, config: RunConfig | None = None,
              tolerances: Tolerances | None = None, report_dir: Path | None = None,
              progress: Callable[[int, int, str], None] | None = None,
              compare: Model | None = None) -> CheckResult:
    """Run ``spec`` on ``case``; never raises for model or check failures.

    ``compare`` is the second model of ``--mlip-compare``, handed to the check as
    ``ctx.compare``.
    """
    seconds_before = model.calc_seconds
    warned_before = dict(model.warnings)
    result = _run_check(spec, model, case, config, tolerances, report_dir, progress, compare)
    result.calc_seconds = model.calc_seconds - seconds_before
    warned = {k: n - warned_before.get(k, 0) for k, n in model.warnings.items()
              if n > warned_before.get(k, 0)}
    if warned:  # reported with the item, never raised
        result.details["model_warnings"] = warned
    return result


def _run_check(spec, model, case, config, tolerances, report_dir, progress, compare=None) -> CheckResult:
    config = config or RunConfig()
    tolerances = tolerances or config.make_tolerances(model.tags.precision)
    base = dict(check=spec.name, case=case.name, family=spec.family, unit=spec.unit,
                severity=spec.severity)
    reason = spec.skip_reason(model.tags) or model.unsupported.get(case.name)
    if reason:
        return CheckResult(status="skipped", message=reason, **base)
    ctx = CheckContext(tol=tolerances.for_check(spec.name), config=config,
                       reproducer=reproducer_command(config, spec.name, case.name),
                       report_dir=report_dir, species=tuple(model.tags.species),
                       model_name=re.sub(r"[^A-Za-z0-9_.-]+", "_", model.spec).strip("_") or "model",
                       profile=PROFILES[config.profile], compare=compare)
    if progress is not None:
        ctx.progress = progress
    rng = check_rng(config.seed, spec.name, case.name)
    calls_before = model.n_calls
    try:
        verdict = spec.func(model, case, ctx, rng)
    except (Skip, MissingProperty) as exc:
        return CheckResult(status="skipped", message=str(exc), n_calls=model.n_calls - calls_before, **base)
    except ModelError as exc:
        return CheckResult(status="error", message=f"model error: {exc}",
                           n_calls=model.n_calls - calls_before, **base)
    except InputError as exc:
        return CheckResult(status="error", message=f"input error: {exc}",
                           n_calls=model.n_calls - calls_before, **base)
    except Exception as exc:  # a bug in the check itself, reported, not raised
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-3))
        return CheckResult(status="error", message=f"check raised {type(exc).__name__}: {exc}\n{tb}",
                           n_calls=model.n_calls - calls_before, **base)
    if not isinstance(verdict, Verdict):
        raise TypeError(f"check {spec.name} returned {type(verdict).__name__}, expected Verdict")
    j = judge(verdict, spec.severity, config.fail_on)
    message = j.message
    if j.status == "failed" and ctx.reproducer:
        message += f"\nrerun: {ctx.reproducer}"
    return CheckResult(status=j.status, measured=j.measured, tolerance=j.tolerance,
                       n_calls=model.n_calls - calls_before, message=message, quantity=j.quantity,
                       details=verdict.details, findings=j.findings, **dict(base, unit=j.unit))
