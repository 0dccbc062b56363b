"""Performance targets as ratios measured in one run (for the README's performance table).

``python benchmarks/compare.py`` prints, each number measured in this process against a
baseline measured in the same run:

1. energy+forces atoms/s of the reference models / ASE's EMT on an 864-atom Cu cell
   (target: linear ≥ 2×, nn ≥ 1.5×);
2. linear model time per atom at 6912 (and 108) atoms / at 864 atoms (target: O(N),
   within 20 % from 864 to 6912);
3. suite overhead: share of a whole EMT audit (every family but data) spent outside
   the calculator (target < 10 %);
4. MD: share of a velocity-Verlet step on a 108-atom cell spent outside the calculator
   (target < 25 %);
5. leakage audit: time at 10k and 100k train = test structures (dimension 50) and its
   growth against N log N;
6. with ``--training``: wall time of ``python -m reference_models.train linear`` and
   ``nn`` (written to a temporary folder);
7. with ``--isolation``: the whole EMT audit through pytest (Cu, every family but
   data) with the model in a worker process / in the pytest process (target ≤ 1.10;
   ~4 min: the median ratio of three pairs of runs).

Threads are pinned to one (OPENBLAS/OMP) so ratios compare like with like.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

ROWS: list[tuple[str, str, str, str]] = []  # (quantity, value, target, verdict)


def row(quantity: str, value: float, target: str, ok: bool | None, fmt: str = "{:.2f}") -> None:
    verdict = "" if ok is None else ("met" if ok else "MISSED")
    ROWS.append((quantity, fmt.format(value), target, verdict))
    print(f"  {quantity}: {fmt.format(value)}  ({target}) {verdict}", flush=True)


def model_speed(repeats: int) -> None:
    from ase.calculators.emt import EMT

    import reference_models
    from reference_models.speed import cell, seconds_per_call

    print("1. energy + forces, 864-atom Cu cell", flush=True)
    atoms = cell(6)
    n = len(atoms)
    emt = seconds_per_call(EMT(), atoms, repeats, step=0.001)  # EMT reusing its neighbour list
    for name, target in (("linear", 2.0), ("nn", 1.5)):
        t = seconds_per_call(reference_models.load(name), atoms, repeats)
        row(f"{name} / EMT atoms/s", emt / t, f"≥ {target}×", emt / t >= target)
    print(f"  (EMT {n / emt:.0f} atoms/s)")

    print("2. linear model, time per atom vs size", flush=True)
    calc = reference_models.load("linear")
    per_atom = {}
    for repeat in (3, 6, 12):
        big = cell(repeat)
        t = seconds_per_call(calc, big, max(1, repeats * 216 // repeat**3))
        per_atom[len(big)] = t / len(big)
    row("µs/atom at 6912 / at 864", per_atom[6912] / per_atom[864], "1 ± 0.2 (O(N))",
        abs(per_atom[6912] / per_atom[864] - 1) <= 0.2)
    row("µs/atom at 108 / at 864", per_atom[108] / per_atom[864], "fixed cost per call shows", None)


def audit_overhead() -> None:
    from conformance.run.config import build_config
    from conformance.core.registry import all_checks
    from conformance.run.session import open_session

    print("3. whole EMT audit (Cu, every family but data): time outside the calculator", flush=True)
    families = sorted({c.family for c in all_checks().values()} - {"data"})
    open_session(build_config({"model": "ase:EMT", "species": ["Cu"], "checks": ["large_offset"]})).run()
    session = open_session(build_config({"model": "ase:EMT", "species": ["Cu"], "checks": families}))
    t0 = time.perf_counter()
    report = session.run()
    wall = time.perf_counter() - t0
    share = 1 - session.model.calc_seconds / wall
    row("time outside calculator / audit time", 100 * share, "< 10 %", share < 0.10, "{:.1f} %")
    print(f"  ({len(report)} items, {session.model.n_calls} model calls, {wall:.1f} s)")


def md_overhead(steps: int) -> None:
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.md.verlet import VelocityVerlet
    from ase.md.velocitydistribution import thermalize_momenta
    from ase import units

    from conformance.toolkit.md import AuditedCalculator
    from conformance.core.model import Model

    print("4. MD step, 108-atom Cu cell: time outside the calculator", flush=True)
    for label, make in (("EMT", EMT), ("linear", lambda: __import__("reference_models").load("linear"))):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
        thermalize_momenta(atoms, 300, rng=np.random.default_rng(0))
        model = Model(make())
        atoms.calc = AuditedCalculator(model)
        dyn = VelocityVerlet(atoms, 5 * units.fs)
        dyn.run(5)
        model.calc_seconds = 0.0
        t0 = time.perf_counter()
        dyn.run(steps)
        wall = time.perf_counter() - t0
        share = 1 - model.calc_seconds / wall
        row(f"outside calculator / MD step ({label})", 100 * share, "< 25 %", share < 0.25, "{:.1f} %")


def leakage_scaling(sizes) -> None:
    from benchmarks.bench_audits import descriptor_sets
    from conformance.audits import mahalanobis_leakage

    print("5. leakage audit, train = test = N, dimension 50", flush=True)
    times = {}
    for n in sizes:
        train, test, _ = descriptor_sets(n)
        t0 = time.perf_counter()
        mahalanobis_leakage(train, test)
        times[n] = time.perf_counter() - t0
        print(f"  N = {n}: {times[n]:.2f} s")
    n0, n1 = sizes[0], sizes[-1]
    growth = times[n1] / times[n0]
    nlogn = n1 * np.log(n1) / (n0 * np.log(n0))
    quadratic = (n1 / n0) ** 2
    row(f"time growth {n0} -> {n1} / N log N growth", growth / nlogn,
        f"≈ 1 for N log N; {quadratic / nlogn:.1f} for N²", growth / nlogn < 2.0)


def training_times() -> None:
    print("6. training (python -m reference_models.train)", flush=True)
    with tempfile.TemporaryDirectory() as out:
        for name in ("linear", "nn"):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "reference_models.train", name, "--out", out],
                           check=True, capture_output=True)
            row(f"train {name} (s)", time.perf_counter() - t0, "a few minutes", None, "{:.0f}")


def isolation_overhead() -> None:
    from benchmarks.bench_isolation import isolation_ratio

    print("7. pytest EMT audit (Cu, every family but data): model worker / in-process", flush=True)
    isolated, in_process, ratio = isolation_ratio()
    row("audit time, isolated / in-process", ratio, "≤ 1.10", ratio <= 1.10)
    print(f"  (median {isolated:.1f} s with --mlip-isolate=yes, {in_process:.1f} s with no)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--md-steps", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--training", action="store_true", help="also time the training")
    parser.add_argument("--isolation", action="store_true",
                        help="also time the pytest audit with and without the model worker (~4 min)")
    parser.add_argument("--only-isolation", action="store_true",
                        help="time only the audit with and without the model worker")
    args = parser.parse_args(argv)
    if args.only_isolation:
        isolation_overhead()
        return
    model_speed(args.repeats)
    audit_overhead()
    md_overhead(args.md_steps)
    leakage_scaling(args.sizes)
    if args.training:
        training_times()
    if args.isolation:
        isolation_overhead()
    print("\n| quantity | ratio | target | |\n|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
