"""Regression family: the same model two ways, and the same model across versions.

Runs only when asked for. ``--mlip-golden=FILE`` adds the pseudo-case ``golden_file``
(kind ``golden``) and the item ``golden_outputs[golden_file]``; ``--mlip-compare=SPEC``
(or ``audit(model, compare=calc)``) adds ``compare_outputs[compared_model]`` (kind
``compare``). Each runs once, on the structures of
:func:`conformance.toolkit.differential.output_structures`: the audit's seeded cases
(the run's species, seed, kinds and ``--mlip-structures``) plus a rattled variant of
each and a strained variant of each fully periodic one.

The measuring is done by :mod:`conformance.toolkit.differential` (outputs and worst
differences) and :mod:`conformance.toolkit.golden` (the file).
"""

from __future__ import annotations

import datetime

from ..core.model import ModelError, Skip
from ..core.registry import check
from ..core.result import Field, Verdict
from ..core.tolerances import Tolerances
from ..toolkit import differential, golden
from ..toolkit.noise import Noise, noise_floor
from ..toolkit.structures import build_cases, read_structures

GOLDEN = frozenset({"golden"})
COMPARE = frozenset({"compare"})


def audit_structures(ctx) -> list:
    """The structures of a regression item: the run's cases and their variants."""
    config = ctx.config
    user = read_structures(config.structures) if config.structures else ()
    kinds = config.structure_kinds or ctx.profile.kinds
    cases = build_cases(list(ctx.species), config.seed, kinds=kinds, user_structures=user)
    return differential.output_structures(cases, config.seed)


def _not_evaluated(errors: dict, what: str) -> list:
    """A field counting structures one side could not evaluate (tolerance 0), if any."""
    if not errors:
        return []
    first = next(iter(errors))
    return [Field(what, float(len(errors)), 0.0, "structures", f"{first}: {errors[first][:200]}")]


def _load_calc_lines(spec, kwargs, name: str, placeholder: str) -> str:
    if not spec:
        return f"{name} = ...  # {placeholder}\n"
    extra = f", {kwargs!r}" if kwargs else ""
    return f"{name} = adapters.load({spec!r}{extra}).calc\n"


def _rebuild_lines(structure: str, ctx) -> str:
    """Python lines rebuilding a structure of :func:`audit_structures` as ``atoms``."""
    base, _, which = structure.partition("~")
    config = ctx.config
    user = (f", user_structures=read({config.structures!r}, index=':')" if config.structures else "")
    lines = ("from ase.io import read\n" if config.structures else "")
    lines += (f"case = structures.find_case({base!r}, species={list(ctx.species)!r}, "
              f"seed={config.seed}{user})\n")
    if which:
        lines += f"case = differential.variant(case, {which!r}, seed={config.seed})\n"
    return lines + "atoms = case.copy()\n"


def _header(model, ctx, tol) -> dict:
    from .. import __version__

    calc = model.calc
    return {"model": model.spec, "model_kwargs": dict(ctx.config.model_kwargs),
            "model_class": f"{type(calc).__module__}.{type(calc).__qualname__}",
            "versions": golden.package_versions(calc), "suite_version": __version__,
            "precision": model.tags.precision, "seed": ctx.config.seed,
            "species": list(ctx.species),
            "tolerances": {name: tol[name] for name in golden.TOLERANCE_NAMES},
            "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _changes(old: dict, new: dict) -> list[str]:
    """What differs between two golden headers: model, class, precision, versions."""
    out = [f"{key} {old.get(key)!r} -> {new[key]!r}"
           for key in ("model", "model_kwargs", "model_class", "precision")
           if key in old and old.get(key) != new[key]]
    versions = old.get("versions", {})
    out += [f"{name} {versions[name]} -> {v}" for name, v in new["versions"].items()
            if name in versions and versions[name] != v]
    return out


@check(family="regression", needs={"energy", "forces"}, cases=GOLDEN,
       calls="structures (≈ 2.3 × cases); writing: 2 × structures", unit="eV/Å")
def golden_outputs(model, case, ctx, rng):
    """Energies, forces and stress equal those of the golden file (`--mlip-golden`).

    The first run (or ``--mlip-golden-update``) writes the file: the model's outputs
    on the audit's seeded cases and a rattled and a strained variant of them, with
    the structures themselves, the model spec and class, the versions of ase, numpy
    and the model's package, and the tolerances; it then evaluates the stored
    structures again and compares (the model is deterministic and the file reads
    back to the bit). Later runs evaluate the stored structures and report, per
    property, the largest difference against the run's tolerances (``energy_atol``
    × N, ``force_atol`` + ``force_rtol`` × max|F|, ``stress_atol`` + ``stress_rtol`` ×
    max|σ|), the structure and a reproducer: a new model version or a dependency
    bump that changes outputs fails; the note lists what changed in the header.
    """
    from pathlib import Path

    path = Path(ctx.config.golden)
    tol = ctx.tol
    header = _header(model, ctx, tol)
    existed = path.exists()
    notes = []
    if ctx.config.golden_update or not existed:
        structures = audit_structures(ctx)
        errors: dict = {}
        outputs = differential.evaluate_outputs(model, structures, errors=errors)
        if not outputs:
            raise ModelError(f"the model evaluated none of the {len(structures)} structures: "
                             f"{next(iter(errors.values()))}")
        golden.write_golden(path, header, structures, outputs)
        notes.append(f"golden file {'rewritten (--mlip-golden-update)' if existed else 'written'}: "
                     f"{path} ({len(outputs)} structures); the stored structures were evaluated "
                     "again and compared with it")
        if errors:
            notes.append(f"{len(errors)} structures not evaluated, left out: {', '.join(errors)}")
        old = {}
    else:
        try:
            old, _, _ = golden.read_golden(path)
        except golden.GoldenError as exc:
            raise Skip(f"{exc}; rewrite it with --mlip-golden-update") from None
        changes = _changes(old, header)
        if changes:
            notes.append("changed since the file was written: " + "; ".join(changes))
    _, stored, expected = golden.read_golden(path)
    errors = {}
    got = differential.evaluate_outputs(model, stored, errors=errors)
    n_atoms = {c.name: len(c) for c in stored}
    worst = differential.worst_differences(expected, got, tol, n_atoms)
    fields = differential.as_fields(worst) + _not_evaluated(errors, "structures not evaluated")
    if not fields:
        raise Skip(f"{path} holds no structure this model evaluates")
    worst_one = max(worst.values(), key=lambda d: d.ratio) if worst else None
    reproducer = ""
    if worst_one is not None:
        name = worst_one.structure
        reproducer = ("import numpy as np\nimport adapters\n"
                      "from conformance.toolkit.golden import read_golden\n"
                      f"header, stored, outputs = read_golden({str(path)!r})\n"
                      f"atoms = next(c for c in stored if c.name == {name!r}).copy()\n"
                      + _load_calc_lines(ctx.config.model, ctx.config.model_kwargs, "calc",
                                         "your calculator")
                      + "atoms.calc = calc\n"
                      f"print('|dE|', abs(atoms.get_potential_energy() - outputs[{name!r}]['energy']), 'eV')\n"
                      f"print('max |dF|', np.linalg.norm(atoms.get_forces() - outputs[{name!r}]['forces'], "
                      "axis=1).max(), 'eV/Å')")
    what = (f"{len(got)} structures of {path.name} (written {old.get('written', 'now')})"
            if old else f"{len(got)} structures of {path.name}")
    return Verdict(fields, what=what, reproducer=reproducer, note="\n".join(notes),
                   details={"golden": str(path), "written": not existed or ctx.config.golden_update,
                            "worst": {p: vars(d) for p, d in worst.items()},
                            "not_evaluated": errors})


def _combined_noise(models, structure, props) -> Noise:
    """Sum of the noise floors of the float32 models among ``models`` on ``structure``."""
    floors = [noise_floor(m, structure, props) for m in models if m.tags.precision == "float32"]
    if not floors:
        return Noise()
    return Noise(sum(n.energy for n in floors), sum(n.forces for n in floors),
                 sum(n.stress for n in floors), True, max(n.resolution for n in floors))


@check(family="regression", needs={"energy", "forces"}, cases=COMPARE,
       calls="structures (≈ 2.3 × cases) per model; + 4 per structure for a float32 model "
             "(noise floor)", unit="eV/Å")
def compare_outputs(model, case, ctx, rng):
    """Two implementations of the same model agree (`--mlip-compare=SPEC`).

    Both models are evaluated on the audit's seeded cases plus a rattled and a
    strained variant of them (a fast kernel against the reference one, float32
    against float64, compiled against eager, a native wrapper against the ASE
    calculator). Per property, the largest difference is held to the tolerance
    of the lower of the two precisions: float32 against float64 is judged with
    the float32 table plus ``noise_factor`` times the float32 model's measured
    noise floor; the message names the structure and gives a reproducer.
    """
    other = getattr(ctx, "compare", None)
    if other is None:
        raise Skip("no model to compare with: pass --mlip-compare=SPEC or audit(..., compare=...)")
    precision = ("float32" if "float32" in (model.tags.precision, other.tags.precision)
                 else "float64")
    tol = Tolerances(precision, ctx.tol.overrides, ctx.tol.per_check, ctx.tol.check)

    def props(m, structure):
        both = differential.properties_of(model, structure)
        return tuple(p for p in both if p in differential.properties_of(other, structure))

    structures = audit_structures(ctx)
    errors_a: dict = {}
    errors_b: dict = {}
    calls_before = other.n_calls
    a = differential.evaluate_outputs(model, structures, props, errors_a)
    b = differential.evaluate_outputs(other, structures, props, errors_b)
    both = [s for s in structures if s.name in a and s.name in b]
    noise = {s.name: _combined_noise((model, other), s, props(model, s)) for s in both}
    n_atoms = {s.name: len(s) for s in structures}
    worst = differential.worst_differences(a, b, tol, n_atoms, noise)
    one_sided = {k: v for k, v in {**errors_a, **errors_b}.items() if k not in errors_a or k not in errors_b}
    fields = differential.as_fields(worst) + _not_evaluated(one_sided, "evaluated by one model only")
    if not fields:
        raise ModelError(f"neither model evaluated any of the {len(structures)} structures: "
                         f"{next(iter(errors_a.values()), '')}")
    other_spec = ctx.config.compare if isinstance(ctx.config.compare, str) else None
    reproducer = ""
    if worst:
        name = max(worst.values(), key=lambda d: d.ratio).structure
        reproducer = ("import numpy as np\nimport adapters\n"
                      "from conformance.toolkit import differential, structures\n"
                      + _rebuild_lines(name, ctx)
                      + _load_calc_lines(ctx.config.model, ctx.config.model_kwargs, "calc",
                                         "your calculator")
                      + _load_calc_lines(other_spec, {}, "other", "the compared calculator")
                      + "a, b = atoms.copy(), atoms.copy()\na.calc, b.calc = calc, other\n"
                      "print('|dE|', abs(a.get_potential_energy() - b.get_potential_energy()), 'eV')\n"
                      "print('max |dF|', np.linalg.norm(a.get_forces() - b.get_forces(), axis=1).max(), "
                      "'eV/Å')")
    measured = [n for n in noise.values() if n.measured]
    note = (f"judged at float32 with the float32 model's noise floor (largest: "
            f"{max(n.forces for n in measured):.2g} eV/Å)" if measured
            else f"judged at {precision} (table tolerances)")
    if errors_a.keys() & errors_b.keys():
        note += f"; {len(errors_a.keys() & errors_b.keys())} structures neither model evaluated"
    return Verdict(fields, what=f"{other.spec} on {len(both)} structures", reproducer=reproducer,
                   note=note, details={"compared": other.spec, "precision": precision,
                                       "compared_model_calls": other.n_calls - calls_before,
                                       "worst": {p: vars(d) for p, d in worst.items()},
                                       "not_evaluated": {"model": errors_a, "compared": errors_b}})
