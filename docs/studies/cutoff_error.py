"""Energy truncation error versus cutoff radius: a model metal and a model ionic insulator.

When does the locality assumption of an MLIP (energy = sum of atomic energies
that see only neighbours within r_c) hold? This study truncates two textbook
models at r_c and compares with their converged energies:

* metal — fcc Cu in the second-moment tight-binding / embedded-atom form of
  Cleri & Rosato (Phys. Rev. B 48, 22 (1993)): E_i = Σ_j A exp(-p (r_ij/r0 - 1))
  - sqrt(Σ_j ξ² exp(-2q (r_ij/r0 - 1))). Both functions decay exponentially
  (screening), so the truncation error does too. Reference: r_c = 25 Å.
  (ASE's EMT is not used: its own cutoff is fixed inside the calculator.)
* ionic insulator — rock-salt NaCl with point charges ±e and Born-Mayer
  repulsion B exp(-r/ρ) between unlike ions (ρ = 0.317 Å, B set for
  equilibrium at r0 = 2.8201 Å). The Coulomb sum is truncated three ways:
  plain (every ion within r_c), neutral (Wolf et al., J. Chem. Phys. 110, 8254
  (1999), α = 0: each ion's sphere made charge-neutral by a compensating
  surface charge, i.e. the potential shifted to zero at r_c) and damped Wolf
  (α = 0.2 Å⁻¹). Reference: the Madelung energy from an Ewald sum.

Run ``python docs/studies/cutoff_error.py`` to print the Markdown table and
write ``cutoff_error.png`` next to this file. Everything is a lattice sum over
a perfect crystal (no ASE calculator, no randomness); it takes about a second.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy.special import erfc

COULOMB = 14.399645  # e²/(4π ε0) in eV Å
# Cleri & Rosato (1993), Cu: A (eV), ξ (eV), p, q, r0 (Å, nearest-neighbour distance)
TBSMA_CU = dict(A=0.0855, xi=1.2240, p=10.960, q=2.2780, r0=2.5563)
NACL_R0 = 2.8201   # Å, nearest-neighbour distance (a = 5.6402 Å)
BORN_MAYER_RHO = 0.317  # Å
WOLF_ALPHA = 0.2   # 1/Å, damping of the damped Wolf sum
R_REF_METAL = 25.0  # Å, converged metal reference
R_MAX = 30.0       # Å, largest cutoff studied for the insulator
TABLE_CUTOFFS = (5.0, 6.0, 8.0, 10.0, 12.0, 15.0, 20.0)
WINDOW = 1.0       # Å: table entries are the worst |error| for r_c' in [r_c, r_c + WINDOW]


# --------------------------------------------------------------------------- lattices

def lattice_points(vectors: np.ndarray, r_max: float) -> np.ndarray:
    """Lattice vectors n·vectors (excluding 0) with length < r_max, as (M, 3) Å."""
    shortest = np.min(np.linalg.norm(vectors, axis=1))
    n_max = int(math.ceil(r_max / shortest * 1.8)) + 1
    g = np.arange(-n_max, n_max + 1)
    n = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    pts = n @ vectors
    d = np.linalg.norm(pts, axis=1)
    keep = (d > 0) & (d < r_max)
    return pts[keep]


def fcc_distances(r0: float, r_max: float) -> np.ndarray:
    """Sorted neighbour distances (Å) of an fcc atom with nearest-neighbour distance r0."""
    a = r0 * math.sqrt(2)
    prim = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    return np.sort(np.linalg.norm(lattice_points(prim, r_max), axis=1))


def rocksalt_neighbours(r0: float, r_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances (Å) and charges (e) of the ions around a +1 ion in rock salt,
    sorted by distance (a simple cubic lattice of spacing r0, alternating sign)."""
    pts = lattice_points(r0 * np.eye(3), r_max)
    n = np.rint(pts / r0).astype(int)
    d = np.linalg.norm(pts, axis=1)
    q = (-1.0) ** n.sum(axis=1)
    order = np.argsort(d, kind="stable")
    return d[order], q[order]


# --------------------------------------------------------------------------- energies

def metal_energy(rc, params=TBSMA_CU) -> np.ndarray:
    """TB-SMA energy per atom (eV) of fcc Cu with every neighbour within ``rc`` (Å) counted."""
    rc = np.atleast_1d(np.asarray(rc, dtype=float))
    d = fcc_distances(params["r0"], max(rc.max(), R_REF_METAL) + 1e-9)
    x = d / params["r0"] - 1.0
    rep = np.concatenate([[0.0], np.cumsum(params["A"] * np.exp(-params["p"] * x))])
    band = np.concatenate([[0.0], np.cumsum(params["xi"] ** 2 * np.exp(-2 * params["q"] * x))])
    m = np.searchsorted(d, rc, side="left")  # neighbours with d < rc
    return rep[m] - np.sqrt(band[m])


def born_mayer_prefactor(r0: float = NACL_R0, rho: float = BORN_MAYER_RHO) -> float:
    """B (eV) such that the rock-salt crystal is in equilibrium at r0 with
    6 unlike nearest neighbours: M k/(2 r0²) = 3 (B/ρ) exp(-r0/ρ)."""
    return madelung_constant() * COULOMB * rho / (6 * r0 * r0) * math.exp(r0 / rho)


def ionic_energy(rc, mode: str = "neutral", alpha: float = WOLF_ALPHA, r0: float = NACL_R0) -> np.ndarray:
    """Energy per ion (eV) of rock-salt NaCl with the Coulomb sum truncated at ``rc`` (Å).

    ``mode``: ``plain`` (every ion within rc), ``neutral`` (Wolf, α = 0: the
    Coulomb potential shifted to zero at rc, plus the self term -k q²/(2 rc)),
    ``damped`` (Wolf with damping ``alpha``). Born-Mayer repulsion between
    unlike ions within rc is included.
    """
    rc = np.atleast_1d(np.asarray(rc, dtype=float))
    d, q = rocksalt_neighbours(r0, rc.max() + 1e-9)
    m = np.searchsorted(d, rc, side="left")
    cum = lambda v: np.concatenate([[0.0], np.cumsum(v)])  # noqa: E731
    charge = cum(q)[m]  # net charge of the sphere, without the central ion
    if mode == "plain":
        coul = 0.5 * COULOMB * cum(q / d)[m]
    elif mode == "neutral":
        coul = 0.5 * COULOMB * (cum(q / d)[m] - charge / rc) - 0.5 * COULOMB / rc
    elif mode == "damped":
        shift = erfc(alpha * rc) / rc
        coul = (0.5 * COULOMB * (cum(q * erfc(alpha * d) / d)[m] - charge * shift)
                - (0.5 * shift + alpha / math.sqrt(math.pi)) * COULOMB)
    else:
        raise ValueError(f"mode must be plain, neutral or damped, got {mode!r}")
    unlike = q < 0
    bm = 0.5 * cum(np.where(unlike, born_mayer_prefactor(r0) * np.exp(-d / BORN_MAYER_RHO), 0.0))[m]
    return coul + bm


def madelung_constant(alpha: float = 1.2, n_real: int = 3, n_recip: int = 8) -> float:
    """Madelung constant of rock salt (referred to the nearest-neighbour distance) by Ewald summation.

    Conventional cell of side 2 (nearest-neighbour distance 1), 8 ions; the
    potential at a +1 ion is the real-space erfc sum over ``n_real`` image
    shells, the reciprocal sum over |m_i| <= ``n_recip`` and the self term.

    >>> round(madelung_constant(), 9)
    1.747564595
    """
    L = 2.0
    frac = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
                     [.5, 0, 0], [0, .5, 0], [0, 0, .5], [.5, .5, .5]])
    pos = frac * L
    q = np.array([1, 1, 1, 1, -1, -1, -1, -1], dtype=float)
    g = np.arange(-n_real, n_real + 1)
    shifts = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) * L
    r = np.linalg.norm(pos[None, :, :] + shifts[:, None, :], axis=-1)
    qq = np.broadcast_to(q, r.shape)
    mask = r > 1e-12
    real = float(np.sum(qq[mask] * erfc(alpha * r[mask]) / r[mask]))
    h = np.arange(-n_recip, n_recip + 1)
    m = np.stack(np.meshgrid(h, h, h, indexing="ij"), -1).reshape(-1, 3)
    m = m[np.any(m != 0, axis=1)]
    G = 2 * math.pi * m / L
    G2 = (G * G).sum(axis=1)
    S = (q[None, :] * np.cos(G @ pos.T)).sum(axis=1)
    recip = float(4 * math.pi / L**3 * np.sum(np.exp(-G2 / (4 * alpha**2)) / G2 * S))
    phi = real + recip - 2 * alpha / math.sqrt(math.pi)
    return -phi


def ionic_reference(r0: float = NACL_R0) -> float:
    """Converged energy per ion (eV): Madelung (Ewald) plus the converged Born-Mayer sum."""
    d, q = rocksalt_neighbours(r0, 12.0)
    bm = 0.5 * float(np.sum(np.where(q < 0, born_mayer_prefactor(r0) * np.exp(-d / BORN_MAYER_RHO), 0.0)))
    return -madelung_constant() * COULOMB / (2 * r0) + bm


# --------------------------------------------------------------------------- study

def errors(rc: np.ndarray) -> dict[str, np.ndarray]:
    """|E(rc) - E_ref| per atom (eV) for the metal and the three ionic truncations."""
    metal_ref = float(metal_energy(R_REF_METAL)[0])
    ion_ref = ionic_reference()
    out = {"metal (TB-SMA Cu)": np.abs(metal_energy(rc) - metal_ref)}
    for mode, label in (("plain", "NaCl, plain truncation"), ("neutral", "NaCl, neutral (Wolf α=0)"),
                        ("damped", f"NaCl, damped Wolf (α={WOLF_ALPHA:g}/Å)")):
        out[label] = np.abs(ionic_energy(rc, mode) - ion_ref)
    return out


def window_max(rc_grid: np.ndarray, err: np.ndarray, rc: float, width: float = WINDOW) -> float:
    """Largest error for cutoffs in [rc, rc + width] (errors jump at every shell)."""
    sel = (rc_grid >= rc - 1e-9) & (rc_grid <= rc + width + 1e-9)
    return float(err[sel].max())


def cutoff_for_accuracy(rc_grid: np.ndarray, err: np.ndarray, target: float) -> float | None:
    """Smallest cutoff (Å) beyond which the error stays below ``target`` on the grid (None: never)."""
    bad = np.flatnonzero(err >= target)
    if not len(bad):
        return float(rc_grid[0])
    if bad[-1] + 1 >= len(rc_grid):
        return None
    return float(rc_grid[bad[-1] + 1])


def study(step: float = 0.01) -> dict:
    """Errors on a grid of cutoffs 3 Å .. R_MAX, the table and the 1 meV/atom cutoffs."""
    rc = np.arange(3.0, R_MAX + step / 2, step)
    err = errors(rc)
    table = {label: [window_max(rc, e, c) for c in TABLE_CUTOFFS] for label, e in err.items()}
    meV = {label: cutoff_for_accuracy(rc, e, 1e-3) for label, e in err.items()}
    return {"rc": rc, "errors": err, "table": table, "cutoff_1meV": meV,
            "madelung": madelung_constant(), "metal_cohesive": float(metal_energy(R_REF_METAL)[0]),
            "ionic_reference": ionic_reference()}


def markdown_table(result: dict) -> str:
    """Table of worst |error| (eV/atom) for r_c in [r_c, r_c + 1 Å]."""
    head = "| model / truncation | " + " | ".join(f"{c:g} Å" for c in TABLE_CUTOFFS) + " | r_c for < 1 meV |"
    lines = [head, "|---|" + "---|" * (len(TABLE_CUTOFFS) + 1)]
    for label, row in result["table"].items():
        need = result["cutoff_1meV"][label]
        lines.append(f"| {label} | " + " | ".join(f"{v:.1e}" for v in row)
                     + f" | {f'{need:.1f} Å' if need is not None else f'> {R_MAX:g} Å'} |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> Path:
    """Write the semilog plot of |error| against r_c (matplotlib's Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, e in result["errors"].items():
        ax.semilogy(result["rc"], np.maximum(e, 1e-12), lw=1.2, label=label)
    ax.axhline(1e-3, color="k", ls=":", lw=0.8, label="1 meV/atom")
    ax.set_xlabel("cutoff radius r_c (Å)")
    ax.set_ylabel("|E(r_c) − E(∞)| per atom (eV)")
    ax.set_ylim(1e-10, 1e2)
    ax.set_title("Truncation error: screened metal vs ionic insulator")
    ax.legend(fontsize=8, loc="lower left")
    fig.savefig(path)
    return path


def main() -> None:  # pragma: no cover - exercised by the test through study()/plot()
    result = study()
    print(f"Madelung constant (Ewald): {result['madelung']:.9f}")
    print(f"metal cohesive energy: {result['metal_cohesive']:.4f} eV/atom; "
          f"NaCl reference: {result['ionic_reference']:.4f} eV/ion")
    print(markdown_table(result))
    out = plot(result, Path(__file__).with_name("cutoff_error.png"))
    print(f"wrote {out}")


if __name__ == "__main__":  # pragma: no cover
    main()
