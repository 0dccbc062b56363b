"""The batch protocol: a calculator offering ``calculate_batch`` gets independent
evaluations as batches, with results identical to one-at-a-time evaluation."""

import numpy as np
import pytest
from ase.calculators.emt import EMT

from conformance import audit
from conformance.core.model import Model, ModelError


class BatchedEMT(EMT):
    """EMT with the batch protocol: records the size of every batch it is given."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.batches = []

    def calculate_batch(self, structures, properties):
        self.batches.append(len(structures))
        out = []
        for atoms in structures:
            atoms = atoms.copy()
            atoms.calc = EMT()
            out.append({p: atoms.calc.get_property(p, atoms) for p in properties})
        return out


class BrokenBatch(BatchedEMT):
    def calculate_batch(self, structures, properties):
        raise RuntimeError("CUDA out of memory")


SMOOTHNESS = ["dimer_curve", "trimer_angle", "compression_scan"]


def _strip(results):
    return [(r.check, r.case, r.status, r.measured, r.n_calls) for r in results]


def test_batched_and_single_evaluation_give_the_same_audit():
    batched, single = BatchedEMT(), EMT()
    options = dict(species=["Cu"], checks=SMOOTHNESS, structure_kinds=["dimer", "trimer", "cluster", "bulk"])
    a, b = audit(batched, **options), audit(single, **options)
    assert _strip(a.results) == _strip(b.results)
    assert a.metadata["model_calls"] == b.metadata["model_calls"] > 400
    # the dimer scan, the trimer scan and two compression scans went as batches
    assert sorted(batched.batches, reverse=True)[:4] == [200, 121, 45, 45]


def test_batch_results_equal_single_results_to_the_bit():
    model = Model(BatchedEMT())
    rng = np.random.default_rng(0)
    from ase.build import bulk

    structures = [bulk("Cu", cubic=True).repeat(2) for _ in range(3)]
    for atoms in structures:
        atoms.rattle(0.05, rng=rng)
    many = model.evaluate_many(structures, ("energy", "forces", "stress"))
    one = [model.evaluate(atoms, ("energy", "forces", "stress")) for atoms in structures]
    for x, y in zip(many, one):
        assert x["energy"] == y["energy"]
        np.testing.assert_array_equal(x["forces"], y["forces"])
        np.testing.assert_array_equal(x["stress"], y["stress"])
    assert model.n_calls == 6 and model.calc.batches == [3]


def test_a_failing_batch_is_evaluated_one_structure_at_a_time():
    from ase import Atoms

    model = Model(BrokenBatch())
    structures = [Atoms("Cu2", positions=[[0, 0, 0], [0, 0, d]]) for d in (2.2, 2.5)]
    out = model.evaluate_many(structures, ("energy",))
    assert [o["energy"] for o in out] == [model.evaluate(a, ("energy",))["energy"] for a in structures]
    model = Model(BrokenBatch(), timeout=None)
    model.calc.get_property = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no GPU"))
    with pytest.raises(ModelError, match="no GPU .*on Cu2"):
        model.evaluate_many(structures, ("energy",))
