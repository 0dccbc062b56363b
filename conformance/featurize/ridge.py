"""Ridge solve of normal equations with a penalty relative to each column's scale.

``(A + lam * diag(A) on penalised columns) theta = b``: ``lam`` is dimensionless, and
the reference-energy columns (the first ``n_species``, and for multi-fidelity fits the
last ``unpenalised_tail``) are not penalised. :func:`ridge_penalty` gives the same
penalty as a diagonal to add to ``X^T X`` (for Cook's distance).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["solve", "penalty_scale", "ridge_penalty"]


def penalty_scale(a, n_species: int, unpenalised_tail: int = 0):
    """Column scales from the diagonal of the weighted normal matrix, and penalty mask."""
    scale = np.sqrt(np.maximum(np.diag(a), 1e-300))
    penalised = np.ones(len(scale), dtype=bool)
    penalised[:n_species] = False
    if unpenalised_tail:
        penalised[-unpenalised_tail:] = False
    return scale, penalised


def solve(a, b, lam: float, n_species: int, unpenalised_tail: int = 0):
    """Ridge solution of ``(A + lam * diag(A) on descriptor columns) theta = b``.

    The penalty is relative to each column's weighted sum of squares, so ``lam`` is
    dimensionless; the reference-energy columns (the first ``n_species`` and, for
    multi-fidelity fits, the last ``unpenalised_tail``) are not penalised.

    Returns
    -------
    ndarray, shape (n_params,)
    """
    scale, penalised = penalty_scale(a, n_species, unpenalised_tail)
    a_s = a / np.outer(scale, scale)
    a_s[np.diag_indices_from(a_s)] += lam * penalised + 1e-12
    theta_s = scipy.linalg.solve(a_s, b / scale, assume_a="pos")
    return theta_s / scale


def ridge_penalty(xtx_diag, lam: float, n_unpenalised: int = 0) -> np.ndarray:
    """Diagonal ridge of :func:`solve` for a given ``diag(X^T X)``.

    ``lam * diag(X^T X)`` on penalised columns plus ``1e-12 * diag(X^T X)`` on all,
    so ``(X^T X + diag(ridge)) theta = X^T y`` reproduces :func:`solve`.
    """
    d = np.asarray(xtx_diag, dtype=float)
    penalised = np.ones(len(d), dtype=bool)
    penalised[:n_unpenalised] = False
    return d * (lam * penalised + 1e-12)
