"""Hygiene family: correct models pass, each misbehaving zoo model is caught by
the check meant for it; raw-calculator calls are counted, timed and turned
into error results like Model.evaluate's."""

import re

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.constraints import FixAtoms

from conformance import audit
from conformance.run.config import build_config
from conformance.run.session import open_session
from conformance.checks.hygiene import atoms_differences, call_calculator, unit_hint
from conformance.core.model import Model, ModelError
from tests.conftest import failed_checks, statuses
from tests.zoo.base import SmoothPair
from tests.zoo.conservation import DirectForceOnly
from tests.zoo.faulty import Hangs, NoStress, Raising
from tests.zoo.hygiene import (AcceptsAnySpecies, AtomicUnits, CacheComparesCommonAtoms, CacheIgnoresCell,
                               CacheIgnoresNumbers, CacheIgnoresPbc, CacheKeyedOnPositions, DeclaredDeterministicJitter,
                               DeclaredNondeterministic, DropoutLeftOn, FailsForSpecies, Float32Jitter, Leaky,
                               KeyedCache, MutatesInput, RoundoffJitter, SharedBuffer, StaleCache, VerletLastCall,
                               VerletList)

HYGIENE = ["hygiene"]
SPECIES = ["Cu", "Au"]
# enough kinds for every hygiene check (dimer: species/memory/output; cluster, bulk: threads)
KINDS = ["dimer", "cluster", "bulk"]


@pytest.mark.parametrize("calc", [EMT(), LennardJones(sigma=2.3, epsilon=0.4, rc=6.0, smooth=True),
                                  SmoothPair()], ids=["EMT", "LJ", "SmoothPair"])
def test_correct_models_pass_every_hygiene_item(calc):
    report = audit(calc, species=SPECIES, checks=HYGIENE)
    assert statuses(report) == {"passed"}, report
    counts = report.df.groupby("check").size().to_dict()
    assert counts == {"determinism": 9, "stale_cache": 9, "size_reuse": 9, "species_support": 1,
                      "input_untouched": 9, "thread_safety": 4, "memory_growth": 1, "output_sanity": 1,
                      "walk_history": 1, "structure_support": 1}
    assert set(report.df["status"]) == {"passed"}


@pytest.mark.parametrize("model, expected", [
    (StaleCache(), {"stale_cache", "walk_history"}),  # the walk moves atoms in place too
    (RoundoffJitter(), set()),  # reported by determinism, not failed (DropoutLeftOn: see below)
    (VerletList(), set()),
    (VerletLastCall(), {"walk_history"}),
    (FailsForSpecies(), {"species_support"}),
    (AcceptsAnySpecies(), {"species_support"}),
    (MutatesInput(), {"input_untouched"}),
    (SharedBuffer(), {"thread_safety"}),
    (Leaky(), {"memory_growth"}),
    # a units mix also breaks F = -dE/dr and σ = dE/dε: caught there too
    (AtomicUnits(), {"output_sanity", "force_consistency", "stress_consistency"}),
], ids=lambda x: type(x).__name__ if not isinstance(x, set) else "")
def test_broken_model_caught_by_its_check_only(model, expected):
    families = ["hygiene", "conservation"] if isinstance(model, AtomicUnits) else ["hygiene"]
    report = audit(model, species=["Cu"], checks=families, structure_kinds=KINDS)
    assert failed_checks(report) == expected, report
    assert "error" not in set(report.df["status"])


def test_species_table_from_first_call_caught_by_size_reuse():
    # a spec, so that model.fresh() builds new instances (a deepcopy of the audited
    # instance would carry the table it already built)
    report = audit("tests.zoo.hygiene:SpeciesTableFromFirstCall", species=SPECIES, checks=HYGIENE,
                   structure_kinds=KINDS)
    assert failed_checks(report) == {"size_reuse"}
    r = report["size_reuse[dimer_CuAu]"]
    assert r.status == "failed"
    assert r.message.startswith("|ΔE| = ")
    assert "instance reused for Au3 (3 atoms) → Au2Cu2 (4 atoms) → dimer_CuAu vs a fresh instance" in r.message


def test_stale_cache_message_names_the_in_place_change_and_counts_calls():
    r = audit(StaleCache(), species=["Cu"], checks=["stale_cache"],
              structure_kinds=["bulk"])["stale_cache[bulk_Cu_fcc]"]
    assert r.status == "failed"
    assert "bulk_Cu_fcc: the calculator returned cached results after atoms.positions += δ" in r.message
    assert "after atoms.set_cell(1.01 × cell, scale_atoms=True): " in r.message  # detected, ok
    # 1 initial + 8 changes (one species, none declared: no numbers change), each raw and fresh
    assert r.n_calls == 18
    assert r.details["not_tested"] == ["atomic numbers (one species audited, the calculator declares no other)"]
    assert "atoms.positions += np.random.default_rng(0)" in r.message


@pytest.mark.parametrize("model, species, stale", [
    (CacheKeyedOnPositions(), ["Cu", "Au"], ["atoms.set_cell(1.02 × cell, scale_atoms=False)", "atoms.numbers[6] = 79 (Au)",
                                             "a new Atoms with the same positions and 0.98 × the cell",
                                             "atoms.pbc = (True, True, False)"]),
    (CacheIgnoresCell(), ["Cu"], ["atoms.set_cell(1.02 × cell, scale_atoms=False)",
                                  "a new Atoms with the same positions and 0.98 × the cell"]),
    (CacheIgnoresPbc(), ["Cu"], ["atoms.pbc = (True, True, False)"]),
    # one species audited: the second element is one the calculator declares
    (CacheIgnoresNumbers(), ["Cu"], ["atoms.numbers[6] = 79 (Au)"]),
    (CacheComparesCommonAtoms(), ["Cu"], ["del atoms[-1]"]),
], ids=lambda x: type(x).__name__ if not isinstance(x, list) else "")
def test_caches_keyed_on_part_of_the_input_are_caught(model, species, stale):
    r = audit(model, species=species, checks=["stale_cache"], structure_kinds=["bulk"])["stale_cache[bulk_Cu_fcc]"]
    assert r.status == "failed"
    assert r.details["stale"] == stale
    assert f"bulk_Cu_fcc: the calculator returned cached results after {stale[0]}" in r.message
    assert not r.details["unchanged"] and not r.details["not_tested"]


def test_stale_cache_messages_give_the_size_of_the_error():
    r = audit(CacheIgnoresPbc(), species=["Cu"], checks=["stale_cache"],
              structure_kinds=["bulk"])["stale_cache[bulk_Cu_fcc]"]
    # the bulk cut open along z: 17.7 eV of surface energy missed by the cache
    assert re.match(r"after atoms.pbc = \(True, True, False\): \|ΔE\| = 17.\d eV > tolerance 3.2e-08 eV", r.message)
    shrunk = audit(CacheComparesCommonAtoms(), species=["Cu"], checks=["stale_cache"],
                   structure_kinds=["dimer"])["stale_cache[dimer_Cu2]"]
    assert "after del atoms[-1]: forces has shape (2, 3), expected (1, 3)" in shrunk.message
    assert "not tested here: cell and pbc (an isolated case; tested on periodic cases)\n" in shrunk.message
    one = audit(EMT(), species=["Cu"], checks=["stale_cache"], structure_kinds=["bulk"]).results[0]
    assert one.status == "passed"
    assert "not tested here: atomic numbers (one species audited, the calculator declares no other)" in one.message


def test_complete_cache_key_passes_stale_cache():
    report = audit(KeyedCache(), species=["Cu"], checks=["stale_cache"])
    assert statuses(report) == {"passed"}, report


def test_walk_history_catches_a_verlet_list_rebuilt_on_the_wrong_test():
    good, bad = VerletList(), VerletLastCall()
    ok = audit(good, species=["Cu"], checks=["walk_history"]).results[0]
    assert ok.status == "passed" and good.rebuilds >= 16  # rebuilt every 0.5 Å of the 8 Å walk
    assert "atom 6 (Cu) walked 8 Å in 160 steps of 0.05 Å" in ok.message
    assert "control: its approach changed the fresh results" in ok.message
    session = open_session(build_config({"species": ["Cu"], "checks": ["walk_history"]}), bad)
    before = bad.rebuilds  # the session's probe of the classes of structure builds lists too
    r = session.run().results[0]
    assert r.status == "failed" and bad.rebuilds - before == 1  # built once, after the reset, never again
    # the walking atom never entered the list: its 2.26 eV of bonds are missing at the end
    assert re.match(r"\|ΔE\| = 2.26 eV > tolerance 1.3e-08 eV at step 160 of 160 \(0 Å from the site\) for a "
                    r"walk of atom 6 into cluster_Cu13 from 8 Å away", r.message), r.message
    assert "for s in range(n + 1):  # steps of ~0.05 Å, below any skin/2" in r.message
    # SmoothPair declares rc = 5 Å: 160 steps + 1, and 9 comparisons on a fresh instance
    assert r.n_calls == ok.n_calls == 170
    assert r.details["steps"] == 160 and r.details["length_A"] == 8.0


def test_stale_cache_is_invisible_to_checks_that_reset():
    report = audit(StaleCache(), species=["Cu"], checks=["symmetry", "conservation"], structure_kinds=KINDS)
    assert report.passed


def test_declared_species_failure_reports_the_exception_text():
    r = audit(FailsForSpecies(), species=SPECIES, checks=["species_support"])["species_support[dimer_CuAu]"]
    assert r.status == "failed"
    assert r.message.startswith("declared species failing = 1 species > tolerance 0 species for Ni: "
                                "model raised ValueError: no parameters for element Ni (Z=28)")
    assert "Xe2 (not declared) raised: model raised KeyError" in r.message  # loud failure: fine
    silent = audit(AcceptsAnySpecies(), species=SPECIES, checks=["species_support"]).results[0]
    assert silent.message.startswith("undeclared species (Xe) accepted silently = 1")


def test_species_support_only_reports_for_models_declaring_none():
    r = audit(EMT(), species=SPECIES, checks=["species_support"]).results[0]
    assert r.status == "passed"
    assert "Xe2 (not declared) raised: model raised NotImplementedError" in r.message
    assert "the model declares no species" in r.message


def test_input_untouched_names_the_attribute():
    r = audit(MutatesInput(), species=["Cu"], checks=["input_untouched"],
              structure_kinds=["bulk"])["input_untouched[bulk_Cu_fcc]"]
    assert r.message.startswith("max |Δr| of the input = ")
    assert "the model modified positions of the caller's Atoms" in r.message


def test_atoms_differences_sees_info_arrays_and_constraints():
    a = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]], cell=[5, 5, 5], pbc=True)
    a.set_constraint(FixAtoms([0]))
    b = a.copy()
    b.info["x"] = 1
    b.set_tags([1, 0])
    b.set_constraint()
    b.set_cell([5, 5, 5.1])
    dr, dcell, changed = atoms_differences(a, b)
    assert dr == 0 and dcell == pytest.approx(0.1)
    assert changed == ["info", "arrays['tags'] added", "constraints"]


def test_thread_safety_skipped_when_declared_unsafe():
    class Declared(SharedBuffer):
        mlip_tags = {"thread_safe": False}

    report = audit(Declared(), species=["Cu"], checks=["thread_safety"], structure_kinds=["bulk"])
    r = report.results[0]
    assert r.status == "skipped" and r.message == "model declares thread_safe=False"


def test_thread_safety_message():
    r = audit(SharedBuffer(), species=["Cu"], checks=["thread_safety"],
              structure_kinds=["bulk"])["thread_safety[bulk_Cu_fcc]"]
    assert r.status == "failed" and "thread 0" in r.message
    assert "2 instances × 4 rounds on bulk_Cu_fcc and a rattled copy" in r.message
    assert r.n_calls == 10


def test_memory_growth_message():
    r = audit(Leaky(), species=["Cu"], checks=["memory_growth"]).results[0]
    assert r.message.startswith("Python memory retained per call = ")
    assert r.unit == "B/call" and r.measured > 1500 and r.n_calls == 110


def test_output_sanity_names_the_unit_mix():
    r = audit(AtomicUnits(), species=SPECIES, checks=["output_sanity"]).results[0]
    assert r.message.startswith("|F / (-dE/dr) - 1| on the dimer = 0.471")
    assert "Cu-Au: r_min = 2.61 Å (Σr_cov = 2.68 Å), binding energy 0.01263 eV" in r.message
    assert "F / (-dE/dr) = 0.5292 ≈ 1/(Bohr/Å): mixed units?" in r.message
    assert unit_hint(27.2) == " ≈ Hartree/eV: mixed units?" and unit_hint(1.3) == ""


def test_raw_calls_turn_exceptions_and_timeouts_into_model_errors():
    report = audit(Raising(), species=["Cu"], checks=["stale_cache", "input_untouched"],
                   structure_kinds=["bulk"])
    assert set(report.df["status"]) == {"error"}
    msg = report["stale_cache[bulk_Cu_fcc]"].message
    assert msg.startswith("model error: model raised RuntimeError: CUDA out of memory (simulated)")
    assert "via atoms.calc = calc; atoms.get_...()" in msg
    hung = audit(Hangs(), species=["Cu"], checks=["stale_cache"], structure_kinds=["bulk"], timeout=0.3)
    assert "exceeded the time limit of 0.3 s" in hung.results[0].message
    assert hung.results[0].status == "error"


def test_call_calculator_counts_times_and_validates():
    model = Model(EMT())
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]])
    out = call_calculator(model, atoms, ("energy", "forces"))
    assert out["forces"].shape == (2, 3) and atoms.calc is model.calc
    assert model.n_calls == 1 and model.calc_seconds > 0
    with pytest.raises(ModelError, match="model raised"):
        call_calculator(Model(Raising()), atoms.copy(), ("energy",))


def test_models_without_stress_or_energy_are_handled():
    assert audit(NoStress(), species=["Cu"], checks=HYGIENE, structure_kinds=["dimer", "bulk"]).passed
    report = audit(DirectForceOnly(), species=["Cu"], checks=HYGIENE, structure_kinds=["dimer", "bulk"])
    assert report.passed
    assert report["output_sanity[dimer_Cu2]"].message == "model does not implement energy"


def test_determinism_reports_roundoff_and_fails_real_noise_or_a_broken_promise():
    def run(model):
        return audit(model, species=["Cu"], checks=["determinism"], structure_kinds=["bulk"]).results[0]

    exact = run(EMT())
    assert exact.status == "passed" and not exact.findings
    assert "bit-identical (declare mlip_tags = {'deterministic': True} to require" in exact.message
    # 1e-14 relative jitter (an unordered float64 reduction): a finding, not a failure
    jitter = run(RoundoffJitter())
    assert jitter.status == "passed" and exact.n_calls == jitter.n_calls == 4
    f = next(x for x in jitter.findings if "max |ΔF|" in x)
    assert f.startswith("informational: not bit-identical: max |ΔF| = ")
    assert 1e-15 < float(f.split("= ")[1].split()[0]) < 1e-13
    assert "(reported, not failed)" in jitter.message
    assert "accepted as round-off up to 1e-12 × the scale (float64)" in jitter.message
    # float32: 1e-6 relative passes against 1e-5 × max(|F|, 1 eV/Å)
    f32 = run(Float32Jitter())
    assert f32.status == "passed" and any("not bit-identical: max |ΔF|" in x for x in f32.findings)
    assert "up to 1e-05 × the scale (float32)" in f32.message
    # declared deterministic=True: the same jitter fails, bit-identical required
    strict = run(DeclaredDeterministicJitter())
    assert strict.status == "failed" and "> tolerance 0 eV" in strict.message
    assert "model declares deterministic=True: bit-identical results required" in strict.message
    # dropout left on (1e-3 relative): fails, far above round-off
    noise = run(DropoutLeftOn())
    assert noise.status == "failed" and not noise.findings
    assert noise.measured / noise.tolerance > 1e6, noise.message
    loose = run(DeclaredNondeterministic())
    assert loose.status == "passed" and "held to the shared tolerances" in loose.message
    assert np.isfinite(loose.measured)


def test_exceptions_in_threads_are_failures_not_hangs():
    import threading

    class RaisesInThreads(SmoothPair):
        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            if threading.current_thread() is not threading.main_thread():
                raise RuntimeError("not reentrant")
            super().calculate(atoms, properties)

    r = audit(RaisesInThreads(), species=["Cu"], checks=["thread_safety"], structure_kinds=["bulk"]).results[0]
    assert r.status == "failed"
    assert r.message.startswith("exceptions in threads = ")
    assert "thread 0: RuntimeError: not reentrant" in r.message or "thread 1: RuntimeError" in r.message


def test_stress_as_3x3_is_accepted_and_must_be_symmetric():
    from ase.stress import voigt_6_to_full_3x3_stress

    class Stress3x3(SmoothPair):
        skew = 0.0

        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            super().calculate(atoms, properties)
            if "stress" in self.results:
                s = voigt_6_to_full_3x3_stress(self.results["stress"])
                self.results["stress"] = s + self.skew * np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 0]])

    class Skewed(Stress3x3):
        skew = 1e-3

    ok = audit(Stress3x3(), species=["Cu"], checks=["stress_consistency", "stale_cache", "output_sanity"],
               structure_kinds=["dimer", "bulk"])
    assert ok.passed, ok
    assert "stress asymmetry |σ - σᵀ| (3×3 form)" in ok["output_sanity[dimer_Cu2]"].message
    bad = audit(Skewed(), species=["Cu"], checks=["output_sanity"])
    assert bad.results[0].message.startswith("stress asymmetry |σ - σᵀ| (3×3 form) = 0.002 eV/Å³ > tolerance")


def test_output_sanity_names_a_short_range_hole():
    class Hole(SmoothPair):
        """Attractive all the way in: -50 eV/Å² (2 Å - r)² below 2 Å beats the Morse wall."""

        def pair_term(self, D, d):
            e, g = super().pair_term(D, d)
            inside = d < 2.0
            e = e - 50.0 * np.where(inside, (2.0 - d) ** 2, 0.0)
            g = g + (100.0 * np.where(inside, 2.0 - d, 0.0) / d)[:, None] * D
            return e, g

    report = audit(Hole(), species=SPECIES, checks=["output_sanity", "dimer_curve"], structure_kinds=["dimer"])
    r = report["output_sanity[dimer_CuAu]"]
    # no well: the unit windows cannot judge; the hole fails in the family that names it
    assert r.status == "passed" and "no repulsive wall (a short-range hole), not a unit mix-up" in r.message
    assert any(f.startswith("informational: Σr_cov / dimer r_min") for f in r.findings), r.findings
    assert report["dimer_curve[dimer_CuAu]"].status == "failed"
    assert "short-range hole depth" in report["dimer_curve[dimer_CuAu]"].message
