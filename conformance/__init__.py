"""mlip-conformance: audit machine-learned interatomic potentials for physical conformance.

Python API
----------
>>> from ase.calculators.emt import EMT
>>> from conformance import audit
>>> report = audit(EMT(), species=["Cu"], checks=["translation_invariance"])
>>> report.passed
True
>>> sorted(report.df["case"])[:2]
['bulk_Cu_fcc', 'cluster_Cu13']
"""

from __future__ import annotations

from typing import Any, Sequence

__version__ = "0.1.0"

_LAZY = {
    "ConfigError": "run.config", "RunConfig": "run.config", "build_config": "run.config",
    "REGISTRY": "core.registry", "CheckSpec": "core.registry", "all_checks": "core.registry",
    "check": "core.registry", "Report": "reporting.report", "CheckResult": "core.result",
    "Field": "core.result", "Verdict": "core.result", "Tags": "core.tags",
    "Tolerances": "core.tolerances",
}


def __getattr__(name: str):
    """Lazy public names: importing the pytest plugin must stay cheap."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'conformance' has no attribute {name!r}")


__all__ = ["audit", "parametrize_checks", "CheckResult", "Report", "RunConfig", "Tags",
           "Tolerances", "check", "all_checks", "REGISTRY", "CheckSpec", "Field", "Verdict",
           "ConfigError", "__version__"]


def _config(model: Any, species, checks, precision, seed, **options):
    from .run.config import build_config

    calc = None
    values = dict(options)
    if isinstance(model, str):
        values["model"] = model
    else:
        calc = model
    values.update(species=species, checks=checks, precision=precision, seed=seed)
    return build_config({k: v for k, v in values.items() if v is not None}), calc


def audit(model: Any, species: Sequence[str] | None = None, checks: Sequence[str] | None = None,
          precision: str | None = None, seed: int = 0, progress=None, compare: Any = None,
          **options):
    """Run the conformance checks on a model and return a :class:`Report`.

    Parameters
    ----------
    model : ase Calculator or str
        A calculator instance, or a model spec such as ``"ase:EMT"``.
    species : list of str, optional
        Species to build test cases for (default: the model's ``species``).
    checks : list of str, optional
        Check names or families (default: all).
    precision : {"float64", "float32"}, optional
    seed : int
    progress : callable(CheckResult), optional
        Called after each item.
    compare : ase Calculator or str, optional
        A second implementation of the model (a calculator, or a spec as for
        ``model``): adds the item ``compare_outputs[compared_model]``, both models
        evaluated on the seeded cases and variants.
    **options
        Any other :class:`RunConfig` field (``structures``, ``examples``,
        ``md_steps``, ``tolerances``, ``skip``, ``timeout``, ...).

    Returns
    -------
    Report
        ``report.df`` is a pandas DataFrame with one row per (check, case).
    """
    from .run.isolation import open_isolated_session
    from .run.session import open_session

    compare_calc = None
    if isinstance(compare, str):
        options["compare"] = compare
    else:
        compare_calc = compare
    config, calc = _config(model, species, checks, precision, seed, **options)
    if config.isolate:
        if compare_calc is not None:
            from .run.config import ConfigError

            raise ConfigError("isolate=True loads the models from specs: pass compare as a spec "
                              "string, not as a calculator object")
        session = open_isolated_session(config, calc)
    else:
        session = open_session(config, calc, compare_calc=compare_calc)
    return session.run(progress)


def parametrize_checks(model: Any, species: Sequence[str] | None = None,
                       checks: Sequence[str] | None = None, **options):
    """``pytest.mark.parametrize`` over every (check, case) of a model.

    Like scikit-learn's ``parametrize_with_checks``: use it in your own test
    files; each parameter is a callable that runs the check and raises
    ``AssertionError`` (failed/error) with the message, or skips.

    Example
    -------
    ::

        from conformance import parametrize_checks

        @parametrize_checks(MyCalculator(), species=["Cu"])
        def test_my_model(conformance_check):
            conformance_check()
    """
    import pytest

    from .run.runner import item_id
    from .run.session import open_session

    config, calc = _config(model, species, checks, options.pop("precision", None),
                           options.pop("seed", 0), **options)
    session = open_session(config, calc)

    def make(spec, case):
        def run_conformance_check():
            result = session.run_item(spec, case)
            __tracebackhide__ = True
            if result.status == "skipped":
                pytest.skip(result.message)
            if result.status in ("failed", "error"):  # declared xfails are marked on the param
                pytest.fail(f"{result.check}[{result.case}] {result.status}: {result.message}",
                            pytrace=False)
            return result

        return run_conformance_check

    params = []
    for spec, case in session.items:
        marks = []
        reason = session.xfail_reason(spec, case)
        if reason:
            marks.append(pytest.mark.xfail(reason=reason, strict=True))
        params.append(pytest.param(make(spec, case), id=item_id(spec.name, case.name), marks=marks))
    return pytest.mark.parametrize("conformance_check", params)
