"""High-accuracy solution of the probability-flow ODE, the yardstick for solver errors and for
`optimize_schedule`: scipy's DOP853 (8th order) in u = ln σ, dx/du = x - D(x, e^u)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

__all__ = ["solve_pf_ode"]


def solve_pf_ode(
    denoiser: Callable[..., Tensor],
    x: Tensor,
    sigma_from: float,
    sigma_to: float,
    *,
    rtol: float = 1e-10,
    atol: float = 1e-10,
    **cond,
) -> Tensor:
    """x at σ = sigma_to from x at sigma_from along the PF-ODE. sigma_to = 0 integrates down to
    σ = 1e-6·sigma_from... then denoises once (the remaining change is O(σ²), below 1e-12 here).
    All arithmetic in float64; returns x's dtype."""
    if not sigma_from > sigma_to >= 0:
        raise ValueError(f"need sigma_from > sigma_to >= 0, got {sigma_from}, {sigma_to}")
    shape, dtype = x.shape, x.dtype
    end = sigma_to if sigma_to > 0 else min(1e-7, sigma_from * 1e-6)

    def rhs(u: float, y: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(y).reshape(shape)
        sig = torch.full((shape[0],), math.exp(u), dtype=torch.float64)
        with torch.no_grad():
            d = denoiser(xt, sig, **cond).to(torch.float64)
        return (xt - d).reshape(-1).numpy()

    y0 = x.detach().to(torch.float64).reshape(-1).cpu().numpy()
    sol = solve_ivp(rhs, (math.log(sigma_from), math.log(end)), y0, method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"reference ODE solve failed: {sol.message}")
    out = torch.from_numpy(sol.y[:, -1].copy()).reshape(shape)
    if sigma_to == 0:
        with torch.no_grad():
            out = denoiser(out, torch.full((shape[0],), end, dtype=torch.float64), **cond).to(torch.float64)
    return out.to(dtype)
