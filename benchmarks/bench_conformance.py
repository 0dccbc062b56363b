"""Conformance errors of the reference models, tracked across commits.

``track_*`` benchmarks return measured violations (not times): a commit that makes a
reference model less symmetric or less conservative shows up as a step in asv's plot.
"""

from __future__ import annotations


def _measured(model: str, check: str, case: str) -> float:
    from conformance import audit

    report = audit(f"reference:{model}", checks=[check], structure_kinds=[case.split("_")[0]])
    return float(report[f"{check}[{case}]"].measured)


class ReferenceModelErrors:
    params = [["linear", "nn"]]
    param_names = ["model"]
    timeout = 600

    def track_rotation_force_error(self, model):
        return _measured(model, "rotation_invariance", "bulk_Cu_fcc")

    track_rotation_force_error.unit = "eV/Å"

    def track_force_consistency(self, model):
        return _measured(model, "force_consistency", "bulk_Cu_fcc")

    track_force_consistency.unit = "relative"

    def track_nve_worst_ratio(self, model):
        """Headline of nve_energy_drift: the field closest to its tolerance (drift,
        σ(E_tot)/σ(E_kin) or the dt/2 fluctuation ratio)."""
        return _measured(model, "nve_energy_drift", "bulk_Cu_fcc")

    track_nve_worst_ratio.unit = "ratio"
