"""Structure support: which classes of structure the model evaluates (one finding per class).

The session probes every class once before the checks run
(:func:`conformance.run.probe.probe_support`); this item reports the outcome,
so a model that needs a vacuum box, or cannot do a class at all, gets one
finding that names the class, the error and the declaration that fixes it,
instead of one identical error per item.
"""

from __future__ import annotations

from ..core.model import Skip
from ..core.registry import check
from ..core.result import Field, Verdict

FIX = {
    "isolated": "declare mlip_tags = {'periodic_only': True} to box them without probing, or leave "
                "them out with --mlip-structure-kinds (e.g. bulk,alloy,small_cell)",
    "partly periodic": "leave slabs and wires out with --mlip-structure-kinds (e.g. "
                       "dimer,trimer,cluster,bulk,alloy,small_cell)",
    "periodic": "leave periodic cases out with --mlip-structure-kinds=dimer,trimer,cluster "
                "(a molecules-only model)",
}


@check(family="hygiene", needs={"energy", "forces"}, cases={"support"}, unit="",
       calls="0 (the session's probe: 1 per class of structure present, + 1 per class needing a box)")
def structure_support(model, case, ctx, rng):
    """Every class of structure (isolated, partly periodic, periodic) evaluates,
    as given or in a periodic vacuum box; a class the model needs boxed is
    reported (informational), a class it cannot evaluate at all fails here
    once and its items are skipped with a pointer to this finding.

    Probed on the smallest case of each class present in the run. A model that
    raises on isolated structures but evaluates them in a box with vacuum
    ≥ 2 × cutoff + 2 Å (CHGNet, matscipy's Manybody: ``LinAlgError: Singular
    matrix`` without a cell) is tagged ``periodic_only``: every isolated case
    is then boxed, so net torque and rotations of clusters keep their meaning.
    """
    support = getattr(model, "support", None)
    if support is None:
        raise Skip("the classes of structure were not probed in this process")
    fields, notes = [], []
    for cls, s in support.items():
        if s.status == "native":
            fields.append(Field(f"{cls}: evaluation fails", 0.0, 0.5, "", s.case))
            continue
        if s.status == "boxed":
            fields.append(Field(f"{cls}: needs a vacuum box", 1.0, 0.5, "", s.case,
                                severity="informational"))
            notes.append(f"{cls} structures: the model raised on {s.case} as given ({s.error}); in a "
                         f"periodic box with vacuum ≥ 2 × cutoff + 2 Å it evaluates, so every {cls} case "
                         f"was evaluated boxed. {FIX[cls] if cls == 'isolated' else ''}".rstrip())
            continue
        fields.append(Field(f"{cls}: cannot be evaluated", 1.0, 0.5, "", s.case))
        boxed = f"; in a vacuum box: {s.boxed_error}" if s.boxed_error else ""
        notes.append(f"{cls} structures: the model raised on {s.case} ({s.error}{boxed}); every "
                     f"{cls} item is skipped. {FIX[cls]}")
    if not fields:
        fields.append(Field("classes probed", 0.0, 0.5, ""))
    summary = ", ".join(f"{cls} {s.status}" for cls, s in support.items())
    return Verdict(fields, what=f"classes of structure: {summary}", note="\n".join(notes),
                   details={"support": {cls: vars(s) for cls, s in support.items()}})
