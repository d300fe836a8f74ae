"""The Darcy finite-volume solver converges at second order to a manufactured solution."""

from __future__ import annotations

import numpy as np
import pytest

from noisecraft.fields.darcy import darcy_coefficient, darcy_residual, solve_darcy


def _manufactured(n: int) -> float:
    """RMS error of the FV solution of -∇·(a∇u) = f for u = sin(πx)sin(πy), a = 1 + ½sin(2πx)cos(2πy)."""
    pi = np.pi
    c = (np.arange(n) + 0.5) / n
    x, y = np.meshgrid(c, c, indexing="ij")
    a = 1 + 0.5 * np.sin(2 * pi * x) * np.cos(2 * pi * y)
    ax, ay = pi * np.cos(2 * pi * x) * np.cos(2 * pi * y), -pi * np.sin(2 * pi * x) * np.sin(2 * pi * y)
    u = np.sin(pi * x) * np.sin(pi * y)
    ux, uy = pi * np.cos(pi * x) * np.sin(pi * y), pi * np.sin(pi * x) * np.cos(pi * y)
    f = -(ax * ux + ay * uy - 2 * pi**2 * a * u)
    return float(np.sqrt(np.mean((solve_darcy(a, f) - u) ** 2)))


def test_second_order_convergence_on_a_manufactured_solution():
    errors = [_manufactured(n) for n in (8, 16, 32, 64)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 3e-4
    assert np.all(orders > 1.9) and np.all(orders < 2.1), orders


def test_solved_pairs_have_zero_residual_and_a_positive_pressure():
    a = darcy_coefficient("piecewise", 16, 0, np.arange(3))
    assert set(np.unique(a)) == {3.0, 12.0}
    for ai in a:
        u = solve_darcy(ai)
        assert darcy_residual(ai, u) < 1e-10
        assert u.min() > 0  # f = 1 > 0 and u = 0 on the boundary: the maximum principle
        assert darcy_residual(ai, u * 1.01) > 1e-3  # the residual sees a 1 % error
    b = darcy_coefficient("lognormal", 16, 0, np.arange(2))
    assert np.all(b > 0) and len(np.unique(b)) > 100


def test_bad_coefficients_are_refused():
    with pytest.raises(ValueError, match="positive values"):
        solve_darcy(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="valid: piecewise, lognormal"):
        darcy_coefficient("smooth", 8, 0, np.arange(1))
