"""Calls and wall time of each profile, side by side in one run (issue 17).

    python benchmarks/profiles.py                 # EMT and the reference NN, Cu
    python benchmarks/profiles.py --torch CHGNet-Si   # also a torch model of the corpus (.[models])
    python benchmarks/profiles.py --markdown      # the README's table

Per model and profile: model calls and wall time of the static families
(symmetry, conservation, hygiene, smoothness, locality) and of the dynamics
family, and the share of the static wall time spent inside the model
(``calc_seconds`` / wall). Every number of a row comes from the same process;
the ratios quick/standard compare runs made one after the other here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STATIC = ["symmetry", "conservation", "hygiene", "smoothness", "locality"]
PROFILE_NAMES = ("quick", "standard", "thorough")


def measure(make_calc, species, profile: str, families) -> dict:
    """Calls, wall seconds and model seconds of one audit."""
    from conformance.run.config import build_config
    from conformance.run.session import open_session

    session = open_session(build_config({"species": list(species), "checks": families,
                                         "profile": profile}), make_calc())
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session.run()
    wall = time.perf_counter() - t0
    return {"calls": session.model.n_calls, "wall": wall, "model": session.model.calc_seconds}


def models(torch_names):
    from ase.calculators.emt import EMT

    import reference_models

    out = [("EMT", EMT, ("Cu",)), ("reference NN", lambda: reference_models.load("nn"), ("Cu",))]
    if torch_names:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.corpus.torch_models import TORCH_CORPUS, available

        for entry, packages, _ in TORCH_CORPUS:
            if entry.name in torch_names and available(*packages):
                out.append((entry.name, entry.factory, entry.species))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch", nargs="*", default=[], help="corpus torch models to add")
    parser.add_argument("--profiles", nargs="*", default=list(PROFILE_NAMES))
    parser.add_argument("--no-dynamics", action="store_true", help="static families only")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    for name, make_calc, species in models(args.torch):
        for profile in args.profiles:
            static = measure(make_calc, species, profile, STATIC)
            dynamics = None if args.no_dynamics else measure(make_calc, species, profile, ["dynamics"])
            rows.append((name, profile, static, dynamics))
            dyn = (f"{dynamics['calls']:,} calls, {dynamics['wall']:.0f} s" if dynamics else "—")
            print(f"{name:14s} {profile:9s} static {static['calls']:6,} calls {static['wall']:7.1f} s "
                  f"({100 * static['model'] / static['wall']:.1f} % in the model); dynamics {dyn}",
                  flush=True)
    if args.markdown:
        print("\n| model | profile | static calls | static wall | in the model | dynamics calls | dynamics wall |")
        print("|---|---|---|---|---|---|---|")
        for name, profile, s, d in rows:
            dyn = (f"{d['calls']:,} | {d['wall']:.0f} s" if d else "— | —")
            print(f"| {name} | {profile} | {s['calls']:,} | {s['wall']:.1f} s | "
                  f"{100 * s['model'] / s['wall']:.1f} % | {dyn} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
