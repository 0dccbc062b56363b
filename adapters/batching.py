"""Native batched evaluation for libraries that have it (the batch protocol).

The suite asks a calculator for many independent structures at once through
``calc.calculate_batch(list_of_atoms, properties) -> list of dict`` (see
:meth:`conformance.core.model.Model.evaluate_many`). A calculator may define it
itself; :func:`with_native_batching` adds it to calculators of libraries whose
models take batches:

- CHGNet (``chgnet.model.dynamics.CHGNetCalculator``): the crystal graphs of
  all structures go through ``CHGNet.predict_graph`` in batches of
  :data:`CHGNET_BATCH_SIZE`, as ``CHGNet.predict_structure`` does for a list.
  Only on an accelerator: on the CPU a batch of 16 rattled 64-atom Si cells took
  6.4 s against 2.3 s one at a time (measured here, 1 thread; results identical
  to the bit), so a CPU model is left unbatched unless ``force=True``.

Units and shapes as ASE's: energy eV, forces (N, 3) eV/Å, stress (6,) Voigt
eV/Å³ (ASE's sign: positive in tension).
"""

from __future__ import annotations

import types
from typing import Any, Sequence

CHGNET_BATCH_SIZE = 16


def with_native_batching(calc: Any, force: bool = False) -> Any:
    """``calc`` with a ``calculate_batch`` method when its library batches natively,
    it runs on an accelerator (or ``force``) and it has none yet; other
    calculators are returned unchanged."""
    if hasattr(calc, "calculate_batch"):
        return calc
    if type(calc).__name__ == "CHGNetCalculator" and type(calc).__module__.startswith("chgnet"):
        if force or str(getattr(calc, "device", "cpu")) != "cpu":
            calc.calculate_batch = types.MethodType(_chgnet_batch, calc)
    return calc


def _chgnet_batch(calc, structures: Sequence, properties: Sequence[str]) -> list[dict]:
    """CHGNet on many structures: one graph each, predicted in batches."""
    from pymatgen.io.ase import AseAtomsAdaptor

    model = calc.model
    graphs = [model.graph_converter(AseAtomsAdaptor.get_structure(atoms)).to(calc.device)
              for atoms in structures]
    task = "efs" if "stress" in properties else "ef"
    predictions = model.predict_graph(graphs, task=task, batch_size=CHGNET_BATCH_SIZE)
    if isinstance(predictions, dict):  # one structure
        predictions = [predictions]
    out = []
    for atoms, p in zip(structures, predictions):
        n = len(atoms)
        energy = float(p["e"]) * (n if model.is_intensive else 1)
        result = {"energy": energy, "free_energy": energy, "forces": p["f"]}
        if "s" in p:  # GPa -> eV/Å³ with the calculator's own factor, as it does itself
            result["stress"] = p["s"] * calc.stress_weight
        out.append({k: v for k, v in result.items() if k in properties})
    return out
