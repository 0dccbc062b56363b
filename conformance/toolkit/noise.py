"""A model's own noise floor: how much its outputs move when nothing physical changes.

A float32 model rounds every coordinate to ~6e-8 relative; a rotation, a
permutation or a finite-difference step changes that rounding, and a model
that sums hundreds of float32 terms (CHGNet, SevenNet) answers with noise well
above a fixed table tolerance. Judging it against the table would fail correct
models; judging it against its own noise does not hide a real symmetry break,
which is orders of magnitude larger.

Measured per case, once per session (cached on the model), for float32 models:
the case evaluated, evaluated again (repeat: non-deterministic reductions),
and twice with every coordinate and cell component moved by a random amount
of at most one float32 ulp (sub-ε jitter: the rounding a transform causes).
Float64 models are judged by the table alone (no calls).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.tolerances import define

define("noise_factor", "1", 4.0, 4.0,
       "multiple of the model's measured noise floor (largest change under a repeat and two "
       "sub-ulp jitters, float32 models only) added to a symmetry or derivative tolerance: the "
       "largest of a few samples of the same noise varies by ~2x between samples, so 4 keeps a "
       "correct model's rounding noise below the tolerance; a real symmetry break is >= 100x it")

N_JITTERS = 2
#: Model calls of one noise-floor measurement (reference, repeat, jitters).
CALLS = 2 + N_JITTERS


@dataclass(frozen=True)
class Noise:
    """Largest change (eV, eV/Å per atom, eV/Å³) of a case's outputs under a
    repeat and sub-ulp jitters; zeros when not measured (float64 models)."""

    energy: float = 0.0
    forces: float = 0.0
    stress: float = 0.0
    measured: bool = False
    #: spacing of float32 numbers at the case's energy (eV): eps32 × |E|, the smallest
    #: energy difference the model can return (a 32-atom cell at |E| = 256 eV: 3.1e-5 eV),
    #: which repeats and sub-ulp jitters need not show
    resolution: float = 0.0

    def describe(self) -> str:
        if not self.measured:
            return "noise floor not measured (float64: table tolerances)"
        text = f"noise floor |ΔE| {self.energy:.2g} eV, max |ΔF| {self.forces:.2g} eV/Å"
        text += f", max |Δσ| {self.stress:.2g} eV/Å³" if self.stress else ""
        return text + (f"; energy resolution {self.resolution:.2g} eV" if self.resolution else "")

    def as_dict(self) -> dict:
        return {"energy": self.energy, "forces": self.forces, "stress": self.stress,
                "measured": self.measured, "resolution": self.resolution}


def jittered(atoms, rng: np.random.Generator, ulps: float = 1.0):
    """Copy with every position and cell component moved by a uniform random
    amount of at most ``ulps`` float32 ulps of its own magnitude (Å)."""
    out = atoms.copy()
    out.calc = None
    eps = float(np.finfo(np.float32).eps)
    pos = out.positions
    out.positions = pos + ulps * eps * np.maximum(np.abs(pos), 1.0) * rng.uniform(-1, 1, pos.shape)
    if out.cell.rank == 3:
        cell = out.cell.array
        out.set_cell(cell + ulps * eps * np.abs(cell) * rng.uniform(-1, 1, cell.shape),
                     scale_atoms=False)
    return out


def _change(a: dict, b: dict) -> Noise:
    forces = float(np.linalg.norm(a["forces"] - b["forces"], axis=1).max()) if len(a["forces"]) else 0.0
    stress = float(np.abs(a["stress"] - b["stress"]).max()) if "stress" in a else 0.0
    return Noise(abs(a["energy"] - b["energy"]), forces, stress, True)


def noise_floor(model, case, properties: tuple) -> Noise:
    """The case's noise floor for this model (cached per case and properties on ``model``)."""
    if model.tags.precision != "float32":
        return Noise()
    cache = model.__dict__.setdefault("noise_cache", {})
    key = (case.name, tuple(properties))
    if key in cache:
        return cache[key]
    import zlib

    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    atoms = case.copy()
    ref = model.evaluate(atoms, properties)
    samples = [model.evaluate(atoms, properties)]
    samples += [model.evaluate(jittered(atoms, rng), properties) for _ in range(N_JITTERS)]
    changes = [_change(ref, s) for s in samples]
    resolution = float(np.finfo(np.float32).eps) * abs(ref["energy"]) if "energy" in ref else 0.0
    noise = Noise(max(c.energy for c in changes), max(c.forces for c in changes),
                  max(c.stress for c in changes), True, resolution)
    cache[key] = noise
    return noise
