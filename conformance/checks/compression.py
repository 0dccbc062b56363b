"""Short-range holes in many-body environments: uniform compression of bulk and clusters.

A dimer scan sees one neighbour at a time. A machine-learned potential
without a repulsive prior can be repulsive for a dimer and still open an
energy hole where *many* neighbours come close at once (high coordination,
high density: a region its training data never reached). Compressing a
bulk cell or a cluster uniformly to half its nearest-neighbour distance
brings every neighbour in together; below the equilibrium volume the energy
must rise all the way in. A hole there is where hot MD collapses.
"""

from __future__ import annotations

import numpy as np

from ..toolkit import scans
from ..core.registry import check
from ..core.result import Field, Verdict
from ..core.tolerances import define
from ._compare import case_reproducer

define("compression_hole_atol", "eV/atom", 1e-3, 2e-3,
       "largest energy drop allowed going inward along a uniform compression (per atom): a "
       "correct potential rises monotonically below its equilibrium volume (EMT Cu bulk by "
       "~40 eV/atom at half the nearest-neighbour distance), so only round-off may reverse it; "
       "a many-body hole opened at high coordination falls by eV per atom")

#: uniform scale factors of all distances, most compressed first (half the built distances);
#: the run's profile scales the number of points
SCALES = np.linspace(0.5, 1.05, 45)


def scales_for(profile) -> np.ndarray:
    """The scale factors of a run: :data:`SCALES` with the profile's density."""
    return np.linspace(SCALES[0], SCALES[-1], profile.points(len(SCALES)))


def compressed(atoms, s: float):
    """Copy of ``atoms`` with every interatomic distance scaled by ``s``: the cell with
    it when periodic, else the positions about their centroid."""
    out = atoms.copy()
    if out.pbc.any():
        out.set_cell(out.cell.array * s, scale_atoms=True)
    else:
        centre = out.positions.mean(axis=0)
        out.positions = centre + s * (out.positions - centre)
    return out


@check(family="smoothness", cases={"bulk", "cluster"}, unit="eV/atom", calls=f"{len(SCALES)}")
def compression_scan(model, case, ctx, rng):
    """Compressed uniformly to half its nearest-neighbour distance, a bulk cell
    or a cluster rises in energy monotonically below its equilibrium: no
    many-body hole at high density that a dimer scan cannot see.

    Every distance is scaled by s from 1.05 down to 0.5 (45 points; the cell with
    the atoms for bulk, about the centroid for clusters and molecules). From the
    well nearest s = 1 inward the energy must not fall: the field is the largest
    drop met going inward (eV/atom), held to ``compression_hole_atol`` plus the
    round-off of the energies at its two ends; the wall height at s = 0.5 is reported.
    """
    n = len(case.atoms)
    scales = scales_for(ctx.profile)
    outs = model.evaluate_many([compressed(case.atoms, s) for s in scales], ("energy",))
    energies = np.array([out["energy"] for out in outs])
    per_atom = energies / n
    # round-off of an energy is relative to its own size: near equilibrium for the well, at
    # the two ends of a drop for the drop (a wall rising to 1e8 eV/atom, SevenNet-0's, must
    # not widen the tolerance of the whole curve)
    atol, rtol = ctx.tol["compression_hole_atol"], ctx.tol["smooth_noise_rtol"]
    at_built = float(abs(per_atom[int(np.argmin(np.abs(scales - 1.0)))]))
    well = scans.main_well(scales, per_atom, atol + 4 * rtol * at_built, 1.0)
    if well == 0:  # lowest at the most compressed: the whole curve up to its maximum is a collapse
        well = int(np.argmax(per_atom))
    depth, i_in, j_out = scans.repulsion_hole(per_atom, well)
    ends = max(abs(per_atom[i_in]), abs(per_atom[j_out])) if depth > 0 else at_built
    tolerance = atol + 4 * rtol * float(ends)
    wall = float(per_atom[0] - per_atom[well])
    where = (f"s = {scales[j_out]:.3f} -> {scales[i_in]:.3f} of the built distances" if depth > 0 else "")
    fields = [Field("energy drop going inward", depth, tolerance, "eV/atom", where)]
    notes = [f"wall: E(s = 0.5) - E(well at s = {scales[well]:.3f}) = {wall:+.3g} eV/atom"]
    if depth > tolerance:
        notes.insert(0, f"short-range hole: compressing {case.name} uniformly from s = {scales[j_out]:.3f} "
                        f"to s = {scales[i_in]:.3f} lowers the energy by {depth:.3g} eV/atom instead of "
                        "raising it (many neighbours close at once: a density the model was not "
                        "trained on; hot MD falls into it)")
    body = ("from conformance.checks.compression import compressed\n"
            "atoms.calc = None\n"
            f"for s in ({scales[i_in]:.4f}, {scales[j_out]:.4f}):\n"
            "    a = compressed(atoms, s)\n    a.calc = calc\n"
            "    print(s, a.get_potential_energy() / len(a))  # expect the first to be higher")
    return Verdict(fields, what=f"uniform compression of {case.name} to 0.5 × its distances "
                                f"({len(scales)} points)",
                   note="\n".join(notes), reproducer=case_reproducer(case, ctx, body),
                   details={"scale": scales, "energy_per_atom": per_atom, "well_scale": float(scales[well]),
                            "wall_eV_per_atom": wall,
                            "plots": [{"title": f"{case.name}: uniform compression", "xlabel": "scale s",
                                       "ylabel": "E (eV/atom)",
                                       "series": [{"x": scales, "y": per_atom, "label": "energy"}]}]})
