"""The real-model corpus, part two: machine-learned and quantum potentials on torch.

Optional: ``python -m pip install -e ".[test,models]"`` installs torch (CPU) with
CHGNet, SevenNet, TorchANI, MACE and tblite; ``python -m pytest -m models
tests/corpus`` runs them (they take minutes to tens of minutes each on 2 cores)
and ``python -m tests.corpus.table`` writes the README's model × family table.
Without the extra every test here skips.

Everything loads offline: CHGNet and SevenNet-0 ship their weights in the
wheel, ANI-1x's ensemble is read from the files TorchANI 2.2 ships (newer
TorchANI releases download them), MACE gets random weights built here, and
GFN2-xTB needs no parameters file.

Each entry states how a user would audit the model (species, structure kinds,
families, declared tags) and the findings the audit must make for a physical
reason (``expected``), so that a correct model ends CONFORMANT or with exactly
these findings.
"""

from __future__ import annotations

import importlib.util

from .models import CorpusModel

#: packages the optional extra installs (``pip install -e ".[models]"``)
TORCH_PACKAGES = ("torch", "chgnet", "sevenn", "torchani", "mace", "tblite")


def available(*packages: str) -> bool:
    """Whether all ``packages`` can be imported (without importing them)."""
    return all(importlib.util.find_spec(p) is not None for p in packages)


def _torch_load_compatible() -> None:
    """torch >= 2.6 loads checkpoints with ``weights_only=True``; e3nn's constants
    (used by SevenNet and MACE) pickle a ``slice``: allow exactly that."""
    import torch

    torch.serialization.add_safe_globals([slice])
    torch.set_num_threads(1)


def chgnet():
    """CHGNet 0.3.0 weights (pip ``chgnet``), float32, CPU. Needs a periodic cell:
    the suite learns that from its first error and boxes isolated cases."""
    _torch_load_compatible()
    from chgnet.model.dynamics import CHGNetCalculator

    calc = CHGNetCalculator(use_device="cpu")
    calc.precision = "float32"
    return calc


def sevennet0():
    """SevenNet-0 (11 Jul 2024, pip ``sevenn``), float32, CPU: 5 message-passing
    layers of a 5 Å cutoff, so its receptive field (declared) is 25 Å."""
    _torch_load_compatible()
    from sevenn.calculator import SevenNetCalculator

    calc = SevenNetCalculator("7net-0", device="cpu")
    calc.precision = "float32"
    calc.mlip_tags = {"receptive_field": 25.0}
    return calc


def ani1x():
    """ANI-1x (8-model ensemble, H C N O), float64, from the parameter files that
    TorchANI 2.2 ships in its wheel (``torchani.models.ANI1x`` downloads them)."""
    _torch_load_compatible()
    from pathlib import Path

    import torchani
    from torchani import neurochem

    root = Path(torchani.__file__).parent / "resources" / "ani-1x_8x"
    if not (root / "train0").is_dir():
        raise FileNotFoundError(f"{root}: ANI-1x parameters not shipped with this TorchANI "
                                f"({torchani.__version__}); install torchani 2.2.x")
    consts = neurochem.Constants(str(root / "rHCNO-5.2R_16-3.5A_a4-8.params"))
    model = torchani.nn.Sequential(torchani.AEVComputer(**consts),
                                   neurochem.load_model_ensemble(consts.species, str(root / "train"), 8),
                                   neurochem.load_sae(str(root / "sae_linfit.dat"))).double()
    calc = torchani.ase.Calculator(consts.species, model)
    calc.species = ["H", "C", "N", "O"]
    calc.cutoff = 5.2
    calc.precision = "float64"
    return calc


def mace_random(dtype: str = "float64", seed: int = 0):
    """A MACE model (2 layers, r_max 5 Å, L = 2, correlation 3) with random weights
    for Cu, built here: not a physical potential, but an exactly equivariant and
    conservative one, so the static families must pass."""
    _torch_load_compatible()
    import numpy as np
    import torch
    from e3nn import o3
    from mace import modules
    from mace.calculators import MACECalculator

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == "float64" else torch.float32)
    try:
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        model = modules.MACE(r_max=5.0, num_bessel=8, num_polynomial_cutoff=6, max_ell=2,
                             interaction_cls=block, interaction_cls_first=block, num_interactions=2,
                             num_elements=1, hidden_irreps=o3.Irreps("16x0e + 16x1o"),
                             MLP_irreps=o3.Irreps("16x0e"), gate=torch.nn.functional.silu,
                             atomic_energies=np.array([-1.0]), avg_num_neighbors=8.0,
                             atomic_numbers=[29], correlation=3, radial_type="bessel")
        calc = MACECalculator(models=model, device="cpu", default_dtype=dtype)
    finally:
        torch.set_default_dtype(previous)
    calc.species = ["Cu"]
    calc.precision = dtype
    calc.mlip_tags = {"receptive_field": 10.0}
    return calc


def gfn2_xtb():
    """GFN2-xTB tight binding (pip ``tblite``), float64: a quantum-chemical
    reference for molecules, no cutoff, SCF converged 100x tighter than the
    default (``accuracy=1e-3``) so finite differences see the model, not the
    convergence threshold. It covers 86 elements: no species declared."""
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", verbosity=0, accuracy=1e-3)


NO_CELL_STRESS = ("SevenNet returns a stress for a structure without a cell (its volume is zero: ~1e16 eV/Å³) instead of raising")

MACE_EXPECTED = {
    **{f"stress_consistency[{case}]": "MACE's calculator returns a stress (~1e-6..1e-5 eV/Å³) for a "
                                      "structure without a cell instead of raising"
       for case in ("dimer_Cu2", "trimer_Cu3", "cluster_Cu13")},
    **{f"stress_consistency[{case}]": "on a slab or wire MACE's stress is not the strain derivative "
                                      "of its own energy: off by a vacuum-dependent factor (17.3 "
                                      "with 6 Å of vacuum, 15.7 with 10 Å; exact once pbc=True)"
       for case in ("slab_Cu_fcc111", "wire_Cu_fcc100")},
    "dimer_curve": "random weights: no repulsive wall (a 0.34 eV hole near 1 Å, a non-monotonic wall)",
}

#: GFN2-xTB converged to accuracy 1e-3 (100x tighter than tblite's default): a warm-started
#: SCF (the calculator reused without reset) lands ~1e-7 eV/Å from a cold start, and its
#: torques cancel to ~1e-6 eV; a user auditing an SCF method holds it to its convergence
SCF_TOLERANCES = {"energy_atol": 1e-7, "force_atol": 1e-6, "md_momentum_rtol": 1e-6, "net_force_rtol": 1e-5}
SCF_RADICALS = ("restricted (non-spin-polarised) GFN2-xTB cannot converge the SCF of separating "
                "radical fragments: the C-H dimer beyond ~3 Å ends in 'SCF not converged'")

#: (entry, packages it needs, audit options: kinds, checks, ...)
TORCH_CORPUS = [
    (CorpusModel("CHGNet-Si", chgnet, ("Si",), {
        "dimer_curve": "no repulsive prior: the Si-Si dimer energy falls by 4.3 eV below 0.94 Å "
                       "(a short-range hole where training data is thin)",
        "compression_scan[bulk_Si_diamond]": "the same hole in the crystal: diamond Si compressed "
                       "uniformly turns over below 0.525 of its bond length (1.23 Å), the energy "
                       "falling by 0.62 eV/atom to 0.5",
        **{f"left_handed_cell[{case}]": "CHGNet's stress depends on the handedness of the cell "
                                        "matrix: with -a, -b, -c (det < 0) it is off by 0.04-1 eV/Å³"
           for case in ("bulk_Si_diamond", "small_cell_Si2")},
    }), ("torch", "chgnet"), {}),
    (CorpusModel("SevenNet-0-Si", sevennet0, ("Si",), {
        # planar and two-atom cases are their own mirror images up to a rotation: they pass
        **{f"inversion_invariance[{case}]": "SevenNet-0 is built with is_parity=False (SE(3)-, not "
                                            "E(3)-equivariant): a mirror image gets other forces, up "
                                            "to 0.06 eV/Å on the wire"
           for case in ("cluster_Si13", "bulk_Si_diamond", "slab_Si_fcc111", "wire_Si_fcc100")},
        "compression_scan[bulk_Si_diamond]": "the dimer's hole in the crystal: diamond Si compressed "
                                             "below 0.54 of its bond length falls by 1e5 eV/atom",
        "stress_consistency[dimer_Si2]": NO_CELL_STRESS,
        "stress_consistency[trimer_Si3]": NO_CELL_STRESS,
        "stress_consistency[cluster_Si13]": NO_CELL_STRESS,
        "dimer_curve": "no repulsive prior: the Si-Si dimer energy falls by 10.6 eV below 1.17 Å",
    }), ("torch", "sevenn"), {}),
    (CorpusModel("ANI-1x-CHNO", ani1x, ("C", "H", "N", "O"), {
        "compression_scan[molecule_H2O2]": "no repulsive wall: H2O2 compressed uniformly below "
                                           "0.525 of its bond lengths (O-H 0.5 Å) falls by 0.11 eV/atom",
        "dimer_curve": "no repulsive wall: ANI-1x was trained on near-equilibrium molecules; its "
                       "dimers fall into holes at short range (C-H -1053 eV at 0.43 Å, O-O by 23 eV "
                       "at 0.53 Å)"}), ("torch", "torchani"),
     {"structure_kinds": ["dimer", "trimer", "molecule"]}),
    (CorpusModel("MACE-random-f64-Cu", mace_random, ("Cu",), {
        **MACE_EXPECTED,
        **{f"compression_scan[{case}]": "random weights: no repulsive wall in the crowd either "
                                        "(compressed below 0.6-0.65 of its distances the energy "
                                        "falls, by 0.44 eV/atom in the cluster, 2.8 in the crystal)"
           for case in ("cluster_Cu13", "bulk_Cu_fcc")}}), ("torch", "mace"),
     {"checks": ["symmetry", "conservation", "hygiene", "smoothness", "locality"]}),
    (CorpusModel("MACE-random-f32-Cu", lambda: mace_random("float32"), ("Cu",), MACE_EXPECTED),
     ("torch", "mace"), {"checks": ["symmetry", "conservation", "hygiene", "smoothness", "locality"]}),
    (CorpusModel("GFN2-xTB-CHNO", gfn2_xtb, ("C", "H", "N", "O"), {
        "dimer_curve": SCF_RADICALS, "output_sanity": SCF_RADICALS, "trimer_angle": SCF_RADICALS,
        "extensivity": SCF_RADICALS + " (the cutoff search scans the C-H dimer)",
        "walk_history[molecule_H2O2]": SCF_RADICALS + " (an O atom walking in from 9 Å)",
        "walk_history[molecule_N2O]": SCF_RADICALS + " (an O atom walking in from 9 Å)",
        "hot_nvt_stability[molecule_H2O2]": "at 1000 K the O-O bond stretches into the region where "
                                            "restricted GFN2-xTB switches SCF solution: T jumps 10x "
                                            "within 10 steps at 26 fs",
    }), ("tblite",), {"structure_kinds": ["dimer", "trimer", "molecule"], "tolerances": SCF_TOLERANCES}),
]
