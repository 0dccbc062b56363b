"""The reference models' outputs across commits, against golden files kept here.

``benchmarks/golden/reference-<model>.json`` hold the outputs of the bundled
reference models (``reference:linear``, ``reference:nn``, species Cu and Au, seed 0)
on the audit's seeded cases and their rattled and strained variants, written once by
``python -m benchmarks.bench_regression --write``. Every benchmarked commit evaluates
the models again through the suite's own ``golden_outputs`` item
(:mod:`conformance.checks.regression`): ``track_golden_difference`` follows the
largest difference per property (|ΔE| eV, per-atom |ΔF| eV/Å, |Δσ| eV/Å³) and
``track_golden_ratio`` the same divided by its float64 tolerance (above 1: the
``golden_outputs`` item fails). A change of the descriptors, the switching function,
the neighbour lists or the shipped parameters shows as a step.
"""

from __future__ import annotations

import sys
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
MODELS = ["linear", "nn"]
PROPERTIES = ["energy", "forces", "stress"]


def golden_path(model: str) -> Path:
    """The golden file of a reference model."""
    return GOLDEN_DIR / f"reference-{model}.json"


def golden_worst(model: str, update: bool = False) -> dict:
    """``{property: {"error", "tolerance", "structure", "where"}}`` of the reference
    model against its golden file (``update``: rewrite the file first)."""
    from conformance import audit

    path = golden_path(model)
    if not update and not path.is_file():
        raise FileNotFoundError(f"{path}: write it with python -m benchmarks.bench_regression --write")
    (result,) = audit(f"reference:{model}", checks=["regression"], golden=str(path),
                      golden_update=update).results
    if result.status not in ("passed", "failed"):
        raise RuntimeError(f"golden_outputs {result.status}: {result.message}")
    return result.details["worst"]


class GoldenDifference:
    """Largest difference between a reference model's outputs and its golden file."""

    params = [MODELS, PROPERTIES]
    param_names = ["model", "property"]
    timeout = 300

    def setup_cache(self):
        return {model: golden_worst(model) for model in MODELS}

    def track_golden_difference(self, worst, model, prop):
        return worst[model][prop]["error"]

    track_golden_difference.unit = "eV | eV/Å | eV/Å³"

    def track_golden_ratio(self, worst, model, prop):
        d = worst[model][prop]
        return d["error"] / d["tolerance"]

    track_golden_ratio.unit = "error / tolerance"


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["--write"]:
        for name in MODELS:
            golden_worst(name, update=True)
            print(f"wrote {golden_path(name)} ({golden_path(name).stat().st_size} bytes)")
    else:
        for name in MODELS:
            for prop, d in golden_worst(name).items():
                print(f"{name:7s} {prop:7s} {d['error']:.3g} (tolerance {d['tolerance']:.3g}) "
                      f"at {d['structure']} {d['where']}")
