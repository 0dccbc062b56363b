"""One conformance run: model, cases, tolerances and the (check, case) items.

Both the Python API (:func:`conformance.audit`) and the pytest plugin build a
:class:`Session` from a :class:`~conformance.run.config.RunConfig`; the plugin
then turns each item into a pytest item, the API runs them in a loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import ConfigError, RunConfig, did_you_mean
from ..core.model import Model
from ..core.profiles import PROFILES
from ..core.registry import CheckSpec, generate, select
from ..core.result import CheckResult
from .runner import item_id, run_check
from ..core.cases import PSEUDO_KINDS, Case
from ..toolkit.structures import build_cases, read_structures
from ..core.tags import infer_tags
from ..core.tolerances import Tolerances


@dataclass
class Session:
    """A prepared conformance run.

    Attributes
    ----------
    config : RunConfig
    model : Model
    cases : list of Case
    tolerances : Tolerances
    items : list of (CheckSpec, Case)
    worker : ModelWorker or None
        With isolation (:mod:`conformance.run.isolation`), the worker process that
        runs the items; None: they run in this process.
    probed : bool
        Whether the classes of structure were probed in this process
        (:func:`probe_classes`; done before the first item runs here).
    compare : Model or None
        The second model of ``--mlip-compare`` (read by ``compare_outputs``), else None.
    """

    config: RunConfig
    model: Model
    cases: list
    tolerances: Tolerances
    items: list
    report_dir: Path | None = None
    results: list = field(default_factory=list)
    worker: Any = None
    probed: bool = False
    compare: Model | None = None

    def run_item(self, spec: CheckSpec, case: Case, progress=None) -> CheckResult:
        """Run one item, in the model worker when there is one."""
        if self.worker is not None:
            result = self.worker.run(spec, case, progress)
        else:
            self.probe()
            result = run_check(spec, self.model, case, self.config, self.tolerances, self.report_dir,
                               progress, compare=self.compare)
        result.xfail = self.xfail_reason(spec, case)
        self.results.append(result)
        return result

    def run(self, progress: Callable[[CheckResult], Any] | None = None):
        """Run every item; returns a :class:`~conformance.reporting.report.Report`."""
        from ..reporting.report import Report

        try:
            for spec, case in self.items:
                result = self.run_item(spec, case)
                if progress is not None:
                    progress(result)
        finally:
            self.close()
        return Report(self.results, metadata(self))

    def probe(self) -> None:
        """Probe the classes of structure (model calls), once, if any item needs it."""
        if self.probed:
            return
        self.probed = True
        if any(case.kind == "support" for case in self.cases):
            probe_classes(self.model, [c for c in self.cases if c.kind not in PSEUDO_KINDS])

    def close(self) -> None:
        """Stop the model worker, if any (a later item starts a new one)."""
        if self.worker is not None:
            self.worker.close()

    def xfail_reason(self, spec: CheckSpec, case: Case) -> str | None:
        """Reason if ``check`` or ``check[case]`` is declared a known failure."""
        xfail = self.config.xfail
        return xfail.get(item_id(spec.name, case.name)) or xfail.get(spec.name)


def load_model(config: RunConfig, calc: Any = None) -> Model:
    """The Model for ``config.model`` (a spec) or for an in-memory ``calc``."""
    factory = None
    spec = config.model
    declared = {}
    if calc is None:
        if not config.model:
            raise ConfigError("no model given: pass --mlip-model=SPEC (e.g. ase:EMT) or set "
                              "model in [tool.mlip-conformance]")
        from adapters import load

        loaded = load(config.model, config.model_kwargs)
        calc, factory = loaded.calc, loaded.factory
        # species, cutoff, precision declared on the factory or class (the adapter reads them)
        declared = {"species": loaded.species, "cutoff": loaded.cutoff, "precision": loaded.precision}
    from adapters.batching import with_native_batching

    calc = with_native_batching(calc)  # a library's own batches, where they pay
    overrides = {}
    if config.precision:
        overrides["precision"] = config.precision
    if config.species:
        overrides["species"] = tuple(config.species)
    tags = infer_tags(calc, overrides, declared)
    return Model(calc, factory=factory, spec=spec, tags=tags, timeout=config.timeout)


def load_compared(config: RunConfig, calc: Any = None, species: tuple = ()) -> Model | None:
    """The second model of ``--mlip-compare`` (``config.compare``, a spec) or ``calc``
    (a calculator given to :func:`conformance.audit`); None when there is none. Its
    precision is its own declaration (``--mlip-precision`` is the audited model's);
    its species are the audited model's."""
    if calc is None and not config.compare:
        return None
    other = config.replace(model=config.compare, model_kwargs={}, precision=None,
                           species=tuple(species))
    return load_model(other, calc)


def open_session(config: RunConfig, calc: Any = None, report_dir: Path | None = None,
                 probe: bool = True, compare_calc: Any = None) -> Session:
    """Load the model, build cases and items for ``config``.

    ``probe=False`` leaves out the probe of the classes of structure (model calls)
    here: for a process that only collects items while another process runs them;
    should it run items itself, it probes before the first. ``compare_calc`` is a
    calculator to compare the model with (instead of the spec ``config.compare``).

    The session runs its items in this process; for items run in a model worker
    process, see :func:`conformance.run.isolation.open_isolated_session`.

    Raises
    ------
    adapters.SpecError, ConfigError, ValueError
        With a message for the user (bad spec, no species, unknown check...).
    """
    validate_names(config)
    model = load_model(config, calc)
    species = list(model.tags.species)
    if not species and config.train:  # the data's own species
        from ..audits.data import species_of

        species = species_of(read_structures(config.train))
        model.tags = model.tags.replace(species=tuple(species))
    if not species:
        raise ConfigError(f"model {model.spec} declares no species: pass --mlip-species "
                          "(e.g. --mlip-species=Cu,Au) or set species in [tool.mlip-conformance]")
    user = read_structures(config.structures) if config.structures else []
    kinds = config.structure_kinds or PROFILES[config.profile].kinds
    cases = build_cases(species, config.seed, kinds=kinds, user_structures=user)
    from ase import Atoms

    if config.train or config.test:  # the data audits run once, on the data files
        cases.append(Case("train_test", "data", Atoms(), frozenset({"data"})))
    if config.golden:  # the regression family: once each, on the cases and their variants
        cases.append(Case("golden_file", "golden", Atoms(), frozenset({"golden"})))
    compared = load_compared(config, compare_calc, tuple(species))
    if compared is not None:
        cases.append(Case("compared_model", "compare", Atoms(), frozenset({"compare"})))
    checks = [c for c in select(config.checks) if c.name not in config.skip
              and c.family not in config.skip]
    structure_cases = [c for c in cases if c.kind not in PSEUDO_KINDS]
    if any(c.applies_to(case) for c in checks for case in structure_cases):
        cases.append(Case("classes", "support", Atoms(), frozenset({"support"})))
    tolerances = config.make_tolerances(model.tags.precision)
    if report_dir is None and config.report:
        report_dir = Path(config.report).parent
    items = generate(checks, cases)
    ids = {item_id(spec.name, case.name) for spec, case in items} | {spec.name for spec, _ in items}
    stale = [key for key in config.xfail if "[" in key and key not in ids]
    if stale:
        raise ConfigError(f"xfail declares {stale}, but this run has no such item "
                          f"(cases: {', '.join(c.name for c in cases)})")
    session = Session(config, model, cases, tolerances, items, report_dir, compare=compared)
    if probe:
        session.probe()
    return session


def probe_classes(model: Model, cases: list) -> None:
    """Probe which classes of structure the model evaluates (:mod:`conformance.run.probe`);
    the items of a class it cannot evaluate at all are skipped with the reason."""
    from ..core.boxing import structure_class
    from .probe import probe_support, unsupported_kinds

    model.support = probe_support(model, cases)
    for name in unsupported_kinds(model.support, cases):
        case = next(c for c in cases if c.name == name)
        model.unsupported[name] = (f"the model cannot evaluate {structure_class(case.atoms)} "
                                   "structures (see structure_support[classes])")


def validate_names(config: RunConfig) -> None:
    """Every check or family named in checks, skip, xfail and per-check
    tolerances exists (raise ConfigError naming the unknown ones)."""
    from ..core.registry import all_checks

    checks = all_checks()
    known = set(checks) | {c.family for c in checks.values()}
    named = {"checks": list(config.checks), "skip": list(config.skip),
             "xfail": [key.split("[")[0] for key in config.xfail],
             "tolerances": [k for k, v in config.tolerances.items() if isinstance(v, dict)]}
    for where, names in named.items():
        unknown = [n for n in names if n not in known]
        if unknown:
            hint = did_you_mean(unknown[0], known)
            raise ConfigError(f"{where}: unknown checks or families {unknown}{hint}; families: "
                              f"{', '.join(sorted({c.family for c in checks.values()}))}; checks: "
                              f"{', '.join(checks)}")


def metadata(session: Session) -> dict:
    """Model, versions, machine, precision, seed, tolerances of a run."""
    import datetime
    import platform
    import sys

    from .. import __version__

    versions = {"mlip-conformance": __version__, "python": sys.version.split()[0]}
    for mod in ("ase", "numpy", "scipy", "pandas", "hypothesis", "pytest", "vesin"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover
            pass
    from ..core.registry import all_checks

    families_run = sorted({spec.family for spec, _ in session.items})
    # data runs with --mlip-train, regression with --mlip-golden / --mlip-compare
    model_checks = {n: c for n, c in all_checks().items() if c.family not in ("data", "regression")}
    checks_run = {spec.name for spec, _ in session.items}
    return {
        "model": session.model.spec,
        **({"compared_model": session.compare.spec} if getattr(session, "compare", None) else {}),
        "families_run": families_run,
        "families_not_run": sorted({c.family for c in model_checks.values()} - set(families_run)),
        "checks_not_run": sorted(set(model_checks) - checks_run),
        "n_checks": len(model_checks),
        "tolerance_overrides": dict(session.config.tolerances),
        "xfail": dict(session.config.xfail),
        "species": list(session.model.tags.species),
        "precision": session.model.tags.precision,
        "seed": session.config.seed,
        "versions": versions,
        "machine_info": {"node": platform.node(), "machine": platform.machine(),
                         "system": platform.system(), "python_implementation":
                         platform.python_implementation(), "cpu_count": __import__("os").cpu_count()},
        "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "tolerances": session.tolerances.as_dict(),
        "cases": [c.name for c in session.cases],
        # in a model worker the calls are made there: counted on the results it returns
        "model_calls": (session.model.n_calls if session.worker is None
                        else sum(r.n_calls for r in session.results)),
        "calc_seconds": (session.model.calc_seconds if session.worker is None
                         else sum(r.calc_seconds for r in session.results)),
        "isolation": session.worker.describe() if session.worker else {"isolated": False},
    }
