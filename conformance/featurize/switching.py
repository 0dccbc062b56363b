"""Quintic switching function that takes pair terms smoothly to zero at the cutoff.

Between ``r_on`` and ``r_c`` the function is the quintic smoothstep
``s(x) = 1 - 10 x^3 + 15 x^4 - 6 x^5`` of ``x = (r - r_on) / (r_c - r_on)``; it is 1
below ``r_on`` and 0 above ``r_c``.  Value, first and second derivative are (1, 0, 0) at
``r_on`` and (0, 0, 0) at ``r_c``, so energies, forces and force constants of a model
built on it are continuous everywhere (C2).

Examples
--------
>>> import numpy as np
>>> f, df, d2f = quintic_switch(np.array([1.0, 2.0, 3.0]), r_on=1.0, r_c=3.0)
>>> f.tolist(), df.tolist()
([1.0, 0.5, 0.0], [-0.0, -0.9375, 0.0])
"""

from __future__ import annotations

import numpy as np

__all__ = ["quintic_switch"]


def quintic_switch(r, r_on: float, r_c: float):
    """Quintic switching function and its first two derivatives.

    Parameters
    ----------
    r : array_like, shape (...)
        Distances in Å.
    r_on : float
        Distance (Å) where switching starts; the function is 1 for ``r <= r_on``.
    r_c : float
        Cutoff (Å); the function is 0 for ``r >= r_c``.  Must satisfy ``r_c > r_on``.

    Returns
    -------
    f : ndarray, shape (...)
        Value (dimensionless), in [0, 1].
    df : ndarray, shape (...)
        First derivative d f / d r in 1/Å.
    d2f : ndarray, shape (...)
        Second derivative d² f / d r² in 1/Å².
    """
    if not r_c > r_on:
        raise ValueError(f"need r_c > r_on, got r_on={r_on} Å, r_c={r_c} Å")
    width = r_c - r_on
    x = np.clip((np.asarray(r, dtype=float) - r_on) / width, 0.0, 1.0)
    x2 = x * x
    f = 1.0 + x2 * x * (-10.0 + x * (15.0 - 6.0 * x))
    df = x2 * (-30.0 + x * (60.0 - 30.0 * x)) / width
    d2f = x * (-60.0 + x * (180.0 - 120.0 * x)) / width**2
    return f, df, d2f
