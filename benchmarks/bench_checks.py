"""Time of each check family on EMT, and the share of it spent inside the calculator.

``track_calc_share`` follows the suite's overhead across commits: the fraction of
wall time (percent) spent inside the model's calls during a family's items; the
target for the static audit (symmetry + conservation + hygiene) is > 90 %.
"""

from __future__ import annotations

import time

from benchmarks import common  # noqa: F401  (sets single-thread BLAS before numpy loads)

FAMILIES = ["symmetry", "conservation", "hygiene", "smoothness", "locality", "dynamics"]


def open_family(family: str, species=("Cu",)):
    from conformance.run.config import build_config
    from conformance.core.registry import all_checks
    from conformance.run.session import open_session

    if family not in {c.family for c in all_checks().values()}:
        raise NotImplementedError(f"no {family} checks in this commit")  # asv: skipped
    return open_session(build_config({"model": "ase:EMT", "species": list(species),
                                      "checks": [family]}))


def run_family(family: str, species=("Cu",)) -> tuple[float, float]:
    """(wall seconds, seconds inside the calculator) of one family's items."""
    session = open_family(family, species)
    t0 = time.perf_counter()
    for spec, case in session.items:
        session.run_item(spec, case)
    return time.perf_counter() - t0, session.model.calc_seconds


class CheckFamilies:
    params = [FAMILIES]
    param_names = ["family"]
    timeout = 600

    def setup(self, family):
        open_family(family)  # raises NotImplementedError (asv skips) where the family is missing

    def time_family(self, family):
        run_family(family)

    def track_calc_share(self, family):
        wall, calc = run_family(family)
        return 100.0 * calc / wall

    track_calc_share.unit = "%"


class StaticAudit:
    """Symmetry + conservation + hygiene on EMT for Cu,Au (the issue-3 acceptance)."""

    timeout = 600

    def _run(self):
        from conformance.run.config import build_config
        from conformance.run.session import open_session

        from conformance.core.registry import all_checks

        present = {c.family for c in all_checks().values()}
        families = [f for f in ("symmetry", "conservation", "hygiene") if f in present]
        session = open_session(build_config({"model": "ase:EMT", "species": ["Cu", "Au"],
                                             "checks": families}))
        t0 = time.perf_counter()
        session.run()
        return time.perf_counter() - t0, session.model.calc_seconds

    def setup(self):
        self._run()  # warm imports and caches

    def time_static_audit(self):
        self._run()

    def track_calc_share(self):
        wall, calc = self._run()
        return 100.0 * calc / wall

    track_calc_share.unit = "%"
