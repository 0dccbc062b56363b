import numpy as np
import pytest

from reference_models.switching import quintic_switch

R_ON, R_C = 4.0, 5.5


@pytest.mark.parametrize(
    "r, expected",
    [(R_ON, (1.0, 0.0, 0.0)), (R_C, (0.0, 0.0, 0.0))],
    ids=["r_on", "r_c"],
)
def test_boundary_values(r, expected):
    values = quintic_switch(np.array([r]), R_ON, R_C)
    for value, target in zip(values, expected):
        assert value[0] == pytest.approx(target, abs=1e-14)


def test_constant_outside_switching_region():
    f, df, d2f = quintic_switch(np.array([0.0, 1.0, R_ON - 1e-9, R_C + 1e-9, 9.0]), R_ON, R_C)
    np.testing.assert_allclose(f, [1, 1, 1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(df, 0.0, atol=1e-7)
    np.testing.assert_allclose(d2f, 0.0, atol=1e-6)


def test_derivatives_match_finite_differences():
    r = np.linspace(R_ON + 0.01, R_C - 0.01, 57)
    h = 1e-5
    f, df, d2f = quintic_switch(r, R_ON, R_C)
    fp, dfp, _ = quintic_switch(r + h, R_ON, R_C)
    fm, dfm, _ = quintic_switch(r - h, R_ON, R_C)
    np.testing.assert_allclose(df, (fp - fm) / (2 * h), atol=1e-9)
    np.testing.assert_allclose(d2f, (dfp - dfm) / (2 * h), atol=1e-8)


@pytest.mark.parametrize("r0", [R_ON, R_C])
def test_c2_continuity_numerically(r0):
    """Value, slope and curvature agree from both sides of each knot."""
    eps = 1e-7
    left = quintic_switch(np.array([r0 - eps]), R_ON, R_C)
    right = quintic_switch(np.array([r0 + eps]), R_ON, R_C)
    for k, (lo, hi) in enumerate(zip(left, right)):
        assert abs(lo[0] - hi[0]) < 10 ** (-12 + 4 * k), k


def test_monotone_and_bounded():
    f, df, _ = quintic_switch(np.linspace(0, 7, 701), R_ON, R_C)
    assert np.all((f >= 0) & (f <= 1))
    assert np.all(df <= 0)


def test_rejects_bad_interval():
    with pytest.raises(ValueError, match="r_c > r_on"):
        quintic_switch(1.0, 3.0, 3.0)
