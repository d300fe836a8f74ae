"""ODE inversion round trips and slerp."""

from __future__ import annotations

import math

import pytest
import torch

import noisecraft as nc
from noisecraft.tasks import interpolate, invert


@pytest.mark.parametrize(
    "solver, nfe, tol",
    [
        # measured max |error| over 64 points: dpmpp_2m 2.9e-3, heun 4.5e-3, unipc_3 4.3e-3 at nfe 80;
        # euler (first order) 5.1e-2 at nfe 160
        ("dpmpp_2m", 80, 1e-2),
        ("heun", 80, 1e-2),
        ("unipc_3", 80, 1e-2),
        ("euler", 160, 0.1),
    ],
)
def test_invert_then_sample_reconstructs(mixture2d, solver, nfe, tol):
    image = mixture2d.sample(64, generator=torch.Generator().manual_seed(0))
    noise = invert(mixture2d, image, solver=solver, nfe=nfe)
    rec = nc.sample(mixture2d, noise, solver=solver, nfe=nfe)
    assert (rec - image).abs().max() < tol


def test_inversion_error_shrinks_at_the_solver_order(mixture2d):
    """Round-trip error of a 2nd-order solver falls ~4x per doubling (measured 6.5x and 7.7x)."""
    image = mixture2d.sample(64, generator=torch.Generator().manual_seed(0))
    errors = []
    for nfe in [40, 80, 160]:
        rec = nc.sample(mixture2d, invert(mixture2d, image, solver="dpmpp_2m", nfe=nfe), solver="dpmpp_2m", nfe=nfe)
        errors.append(float((rec - image).abs().max()))
    assert errors[0] / errors[1] > 3 and errors[1] / errors[2] > 3, errors


def test_inverted_data_looks_like_standard_noise(mixture2d):
    """The PF-ODE carries the data distribution to N(0, σ_max²·I): inverted data is standard normal."""
    noise = invert(mixture2d, mixture2d.sample(2000, generator=torch.Generator().manual_seed(1)), solver="dpmpp_2m", nfe=40)
    assert noise.mean(0).abs().max() < 0.07  # standard error 0.022
    assert (noise.std(0) - 1).abs().max() < 0.06


def test_interpolate():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    torch.testing.assert_close(interpolate(a, b, 0.0), a)
    torch.testing.assert_close(interpolate(a, b, 1.0), b)
    mid = interpolate(a, b, 0.5)
    norms = lambda t: t.reshape(4, -1).norm(dim=1)  # noqa: E731
    # nearly orthogonal high-dimensional noise keeps its norm along the arc (a lerp would lose ~30%)
    torch.testing.assert_close(norms(mid), 0.5 * (norms(a) + norms(b)), rtol=0.05, atol=0)
    assert (norms(0.5 * (a + b)) < 0.8 * norms(mid)).all()
    # t = 1/2 points along a + b (the arc's midpoint direction)
    cos = lambda u, v: (u * v).sum() / (u.norm() * v.norm())  # noqa: E731
    assert math.isclose(float(cos(mid[0], a[0] + b[0])), 1.0, rel_tol=1e-6)
    torch.testing.assert_close(interpolate(a, a, 0.3), a)  # parallel: falls back to lerp
    with pytest.raises(ValueError, match="1.5"):
        interpolate(a, b, 1.5)
    with pytest.raises(ValueError, match="same shape"):
        interpolate(a, b[:2], 0.5)


def test_bad_inversion_input(mixture2d):
    image = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="deterministic fixed-schedule solver; valid: euler"):
        invert(mixture2d, image, solver="ddpm")
    with pytest.raises(ValueError, match="nfe >= 2"):
        invert(mixture2d, image, solver="euler", nfe=1)
