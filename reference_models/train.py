"""Train the reference models from the shipped EMT data.

Usage::

    python -m reference_models.train linear          # weighted ridge fit, ~1 min
    python -m reference_models.train nn              # residual MLP (fits linear first if needed)
    python -m reference_models.train nn_direct       # direct-force models, with and without penalties
    python -m reference_models.train all --check     # everything, then the conformance verdict
    python -m reference_models.train linear --extras # also Pareto front and multi-fidelity demo

Progress and errors are printed after each stage; parameters go to ``--out``
(default: the package's ``params/`` folder).
"""

from __future__ import annotations

import os

# one BLAS thread (unless set): the shipped parameters were trained so; more threads
# change the summation order, which the network's thousands of Adam steps amplify
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from . import PARAMS_DIR, data  # noqa: E402
from .calculator import ReferenceCalculator, load_model, save_model  # noqa: E402
from .descriptors import Descriptor  # noqa: E402
from .linear import (KINDS, Sigmas, fit_linear, fold_of, multifidelity_fit,  # noqa: E402
                     normal_equations, pareto_front)
from .metrics import EV_PER_A3_TO_GPA, force_std, rmse  # noqa: E402
from .nn import train_direct, train_residual  # noqa: E402

#: Descriptor of the shipped models: products without self terms (zero on a dimer) and a
#: gated pair term (zero in condensed phases) carrying the dimer curve.
DESCRIPTOR = dict(species=["Cu", "Au"], cutoff=5.5, r_on=0.0, n_radial=8, n_angular=4,
                  l_max=2, n_cubic=5, exclude_self=True, n_gated=8, gate_width=1.0)
#: Row weights of the linear fit: with DESCRIPTOR the dimer scans only constrain the
#: gated pair term, so they get full weight, as binding energies (relative to the free
#: atoms); isolated atoms only weakly pin e0 (a factor two in bulk error otherwise).
FIT = dict(config_weights={"dimer": 1.0, "atom": 0.005}, binding=True)
#: Training settings of the shipped models.
NN_SETTINGS = dict(n_hidden=32, epochs=150, n_batches=16, lr=3e-3, eval_every=10, sigma_s=3e-4)
DIRECT_SETTINGS = dict(n_project=8, n_hidden=32, epochs=40, n_batches=16, lr=3e-3)
DIRECT_PENALTY = 1.0


def describe(err: dict, fstd: float) -> str:
    """One line: energy meV/atom, force eV/Å (and % of the force std), stress GPa."""
    return (f"E {err['energy'] * 1e3:6.2f} meV/atom   F {err['forces']:.4f} eV/Å "
            f"({100 * err['forces'] / fstd:4.1f}% of std {fstd:.3f})   "
            f"S {err['stress'] * EV_PER_A3_TO_GPA:.3f} GPa")


def report(model, test, label: str, log=print) -> dict:
    """Print and return test errors, overall and per system."""
    out = {}
    for system in ("all", "Cu", "CuAu"):
        subset = test if system == "all" else [a for a in test if a.info["system"] == system]
        err = rmse(model, subset)
        out[system] = dict(err, force_std=force_std(subset))
        log(f"  {label:22s} {system:5s} {describe(err, out[system]['force_std'])}")
    return out


def stage_linear(train, test, seed=0, extras=False, log=print):
    t0 = time.perf_counter()
    descriptor = Descriptor(**DESCRIPTOR)
    log(f"[linear] {descriptor!r}, D = {descriptor.n_features} per element")
    folds = fold_of(train, 5, seed)
    stats = normal_equations(train, descriptor, lambda a: folds[a.info["trajectory"]], **FIT)
    log(f"[linear] normal equations of {len(train)} structures in {time.perf_counter() - t0:.0f} s")
    model, cv = fit_linear(train, descriptor, stats=stats, lambdas=np.logspace(-14, -6, 5),
                           seed=seed)
    log("[linear] grouped 5-fold CV (whole trajectories per fold):")
    for row in cv.itertuples():
        log(f"    lambda {row.lam:.0e}  E {row.rmse_energy * 1e3:6.2f} meV/atom  "
            f"F {row.rmse_forces:.4f} eV/Å  S {row.rmse_stress * EV_PER_A3_TO_GPA:.3f} GPa")
    log(f"[linear] chosen lambda {model.info['lam']:.0e}; fit in {time.perf_counter() - t0:.0f} s")
    model.info["test"] = report(model, test, "linear (test)", log)
    if extras:
        run_extras(train, test, descriptor, stats, model.info["lam"], seed, log)
    return model


def run_extras(train, test, descriptor, stats, lam, seed, log=print):
    """Pareto front of the loss weights and the multi-fidelity comparison."""
    test_stats = normal_equations(test, descriptor, lambda a: "test")
    front = pareto_front(stats, test_stats, descriptor.n_species, lam)
    log("[linear] Pareto front of test errors as energy/stress weights vary (force weight fixed):")
    for row in front[front["pareto"]].itertuples():
        log(f"    w_E {row.weight_energy:8.0f}  w_S {row.weight_stress:8.0f}  "
            f"E {row.rmse_energy * 1e3:6.2f} meV/atom  F {row.rmse_forces:.4f} eV/Å  "
            f"S {row.rmse_stress * EV_PER_A3_TO_GPA:.3f} GPa")
    log("[linear] multi-fidelity: 6 high-fidelity structures + all training structures "
        "relabelled by the biased, noisy low-fidelity oracle")
    table = multifidelity_demo(train, test_stats, descriptor, lam, seed=seed)
    for row in table.itertuples():
        log(f"    {row.fit:10s}  E {row.rmse_energy * 1e3:7.2f} meV/atom  "
            f"F {row.rmse_forces:.4f} eV/Å  S {row.rmse_stress * EV_PER_A3_TO_GPA:.3f} GPa")
    return front, table


def multifidelity_demo(train, test_stats, descriptor, lam, n_high: int = 6, seed: int = 0):
    """High-only vs low-only vs combined fits, judged on high-fidelity test data.

    The bias of the low-fidelity labels is estimated where both fidelities exist (the
    high-fidelity structures): ``bias² = mean (y_low - y_high)² - noise_low²`` per kind.
    """
    rng = np.random.default_rng(seed)
    low = data.low_fidelity_labels(train, seed=seed + 1)
    pick = rng.choice(len(train), n_high, replace=False)
    high = [train[k] for k in pick]
    p = data.LOW_FIDELITY
    noise_low = Sigmas(p["noise_energy_per_atom"], p["noise_force"], p["noise_stress"])
    diffs = {k: [] for k in KINDS}
    for k in pick:
        hi, lo = train[k].calc.results, low[k].calc.results
        diffs["energy"].append((lo["energy"] - hi["energy"]) / len(train[k]))
    # the combined fit gives the low fidelity its own reference energies: only the
    # spread of the energy difference around its mean is bias
    diffs["energy"] = list(np.asarray(diffs["energy"]) - np.mean(diffs["energy"]))
    for k in pick:
        hi, lo = train[k].calc.results, low[k].calc.results
        diffs["forces"].extend((lo["forces"] - hi["forces"]).ravel())
        if "stress" in hi:
            diffs["stress"].extend(lo["stress"] - hi["stress"])
    bias = Sigmas(*[np.sqrt(max(np.mean(np.square(diffs[k])) - getattr(noise_low, k) ** 2,
                                0.1 * getattr(noise_low, k) ** 2)) for k in KINDS])
    noise_high = Sigmas(1e-4, 1e-3, 1e-5)  # EMT labels are exact up to the file's rounding
    stats_high = normal_equations(high, descriptor, lambda a: "high", **FIT)
    stats_low = normal_equations(low, descriptor, lambda a: "low", **FIT)
    table = multifidelity_fit(stats_high, stats_low, test_stats, descriptor.n_species,
                              max(lam, 1e-8), noise_high, noise_low, bias)
    table.attrs["bias"] = bias
    return table


def condensed(structures):
    """Structures other than isolated dimers and atoms (which only the linear fit sees)."""
    return [a for a in structures if a.info.get("config_type") not in ("dimer", "atom")]


def stage_nn(train, test, linear, seed=0, log=print):
    dimers = [a for a in train if a.info.get("config_type") in ("dimer", "atom")]
    fit, validation = data.split_by_trajectory(condensed(train), test_fraction=0.15,
                                                seed=seed + 1)
    log(f"[nn] residual MLP on top of the linear model: {NN_SETTINGS}; "
        f"{len(fit)} fit / {len(validation)} validation structures (split by trajectory)")
    t0 = time.perf_counter()
    # the validation trajectories must be unseen by the linear part too
    base, _ = fit_linear(fit + dimers, linear.descriptor,
                         lambdas=[linear.info.get("lam", 1e-10)], seed=seed, **FIT)
    log(f"[nn] linear part refitted on the fit split in {time.perf_counter() - t0:.0f} s")
    selection = train_residual(fit, base, validation=validation, seed=seed, log=log,
                               **NN_SETTINGS)
    best = selection.info["selected_epoch"]
    log(f"[nn] validation selects epoch {best}; repeating the run on all "
        f"{len(condensed(train))} training structures on top of the full linear model")
    settings = {**NN_SETTINGS, "epochs": NN_SETTINGS["epochs"]}
    model = train_residual(condensed(train), linear, seed=seed, log=log,
                           stop_after=max(best, 0), **settings)
    model.info["selected_epoch"] = best
    log(f"[nn] trained in {time.perf_counter() - t0:.0f} s")
    model.info["test"] = report(model, test, "nn (test)", log)
    return model


def stage_direct(train, test, linear, penalty, seed=0, log=print):
    train = condensed(train)
    name = "nn_direct_penalised" if penalty else "nn_direct"
    log(f"[{name}] direct-force pair MLP, penalty {penalty}: {DIRECT_SETTINGS}")
    t0 = time.perf_counter()
    model = train_direct(train, linear, penalty=penalty, seed=seed, log=log, **DIRECT_SETTINGS)
    log(f"[{name}] trained in {time.perf_counter() - t0:.0f} s")
    model.info["test"] = report(model, test, f"{name} (test)", log)
    return model


def check(name, path, log=print):
    """Print the conformance verdict if :mod:`conformance` is installed."""
    try:
        from conformance import audit
    except ImportError:
        log("[check] conformance.audit not importable; skipped")
        return None
    calc = ReferenceCalculator(load_model(path), name=name)
    result = audit(calc, species=calc.species)
    counts = result.df["status"].value_counts().to_dict()
    log(f"[check] {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    failed = result.df[result.df["status"].isin(["failed", "error"])]
    for row in failed.head(20).itertuples():
        message = str(getattr(row, "message", "")).splitlines()
        log(f"    {getattr(row, 'check', '?')} {getattr(row, 'case', '')}: "
            f"{message[0] if message else ''}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=["linear", "nn", "nn_direct", "all"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=PARAMS_DIR, help="parameter folder")
    parser.add_argument("--data", type=Path, default=None, help="extxyz data file")
    parser.add_argument("--check", action="store_true", help="run the conformance audit")
    parser.add_argument("--extras", action="store_true",
                        help="Pareto front and multi-fidelity comparison (linear)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    structures = data.load(args.data)
    train, test = data.split_by_trajectory(structures)
    print(f"data: {len(structures)} structures, train {len(train)} / test {len(test)} "
          f"(split by trajectory), test force std {force_std(test):.3f} eV/Å")
    written = []
    linear_path = args.out / "linear.npz"
    if args.model in ("linear", "all") or not linear_path.exists():
        linear = stage_linear(train, test, args.seed, args.extras)
        written.append(("linear", save_model(linear, linear_path)))
    else:
        linear = load_model(linear_path)
        print(f"[linear] loaded {linear_path}")
    if args.model in ("nn", "all"):
        written.append(("nn", save_model(stage_nn(train, test, linear, args.seed),
                                         args.out / "nn.npz")))
    if args.model in ("nn_direct", "all"):
        for penalty, name in ((0.0, "nn_direct"), (DIRECT_PENALTY, "nn_direct_penalised")):
            model = stage_direct(train, test, linear, penalty, args.seed)
            written.append((name, save_model(model, args.out / f"{name}.npz")))
    for name, path in written:
        print(f"wrote {path}")
    print(f"total time {time.perf_counter() - t0:.0f} s")
    if args.check:
        for name, path in written:
            check(name, path)


if __name__ == "__main__":
    main()
