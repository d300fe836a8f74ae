"""Physics (PDE-residual) guidance: sample fields that also satisfy their equation.

A field model knows the equation only through its training pairs; its samples satisfy it at large
scale but not to the pixel (a generated Darcy pair's FV residual is ~10⁶× a solved pair's,
docs/fields.md). Physics guidance adds the equation as a measurement "residual = 0" to DPS
(Chung et al. 2023), as DiffusionPDE (Huang et al. 2024, Eq. 7) adds a PDE loss to its observation
loss:

    D'(x, σ) = D - σ²·[ζ·√m·∇‖y - A·D‖ + ζ_p·√p·1{σ ≤ σ_p}·∇‖r(D)‖],   ∇ = ∇_x (through D),

with r the p-vector residual of the denoised field D(x, σ); the first term is `tasks.dps` (left out
when nothing is observed: generation). σ_p: the physics term acts only at σ ≤ σ_p, where D is sharp
enough for its residual to mean something (DiffusionPDE applies the PDE loss late in sampling).

Darcy (`fields.darcy`): `darcy_fv_residual(a, u)` is the finite-volume residual A(a)·u - h²·f of
`darcy_matrix`, batched and differentiable in torch. The guidance uses it Jacobi-scaled,
diag(A(a))⁻¹·(A(a)·u - h²·f) (`darcy_jacobi_residual`): the change of u_P that would satisfy cell P's
equation with its neighbours fixed, in units of u, so its gradient is O(1) per pixel (the raw residual's
is ~8·a/h² ≈ 4·10⁵ times larger) and ζ_p reads like DPS's ζ. In the guidance the scaling diag(A(a)) is a
fixed metric (no gradient flows through it): otherwise the cheapest way to shrink the scaled residual is to
raise a everywhere (diag⁻¹·h²f → 0), which is what an early version did (mean a pushed to the upper value).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.precond import expand_sigma
from ..tasks.inverse import _check_number, _sigma_vector
from ..tasks.operators import LinearOperator

__all__ = ["darcy_fv_residual", "darcy_jacobi_residual", "darcy_physics", "physics_dps"]


def _check_pair(a: Tensor, u: Tensor) -> None:
    if a.shape != u.shape or a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"a and u must be square fields of one shape (..., N, N), got {tuple(a.shape)} and {tuple(u.shape)}")


def _fv_terms(a: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """(A(a)·u, diag A(a)) of `fields.darcy.darcy_matrix` for fields (..., N, N), without h² scaling of f."""
    tx = 2 * a[..., 1:, :] * a[..., :-1, :] / (a[..., 1:, :] + a[..., :-1, :])  # faces between rows (harmonic mean)
    ty = 2 * a[..., :, 1:] * a[..., :, :-1] / (a[..., :, 1:] + a[..., :, :-1])  # faces between columns
    fx = tx * (u[..., 1:, :] - u[..., :-1, :])  # flux-like differences across each interior face
    fy = ty * (u[..., :, 1:] - u[..., :, :-1])
    n = a.shape[-1]
    walls = torch.zeros(n, n, dtype=a.dtype, device=a.device)  # boundary faces per cell (corners have two)
    walls[0, :] += 1
    walls[-1, :] += 1
    walls[:, 0] += 1
    walls[:, -1] += 1
    au = F.pad(-fx, (0, 0, 0, 1)) + F.pad(fx, (0, 0, 1, 0)) + F.pad(-fy, (0, 1)) + F.pad(fy, (1, 0)) + 2 * walls * a * u
    diag = F.pad(tx, (0, 0, 0, 1)) + F.pad(tx, (0, 0, 1, 0)) + F.pad(ty, (0, 1)) + F.pad(ty, (1, 0)) + 2 * walls * a
    return au, diag


def darcy_fv_residual(a: Tensor, u: Tensor, f: float | Tensor = 1.0) -> Tensor:
    """A(a)·u - h²·f (..., N, N) per cell: `darcy_matrix(a) @ u - h²f` of `fields.darcy`, batched and
    differentiable. a > 0 (not checked here: a harmonic mean of a <= 0 is meaningless)."""
    _check_pair(a, u)
    au, _ = _fv_terms(a, u)
    return au - torch.as_tensor(f, dtype=u.dtype, device=u.device) / a.shape[-1] ** 2


def darcy_jacobi_residual(a: Tensor, u: Tensor, f: float | Tensor = 1.0, *, fixed_scale: bool = False) -> Tensor:
    """diag(A(a))⁻¹·(A(a)·u - h²·f) (..., N, N): the FV residual in units of u (module notes); 0 for a solved pair.
    fixed_scale: no gradient through diag(A(a)) (the guidance's metric, module notes)."""
    _check_pair(a, u)
    au, diag = _fv_terms(a, u)
    res = au - torch.as_tensor(f, dtype=u.dtype, device=u.device) / a.shape[-1] ** 2
    return res / (diag.detach() if fixed_scale else diag)


def darcy_physics(to_physical: Callable[[Tensor], Tensor], u_scale: float, *, f: float = 1.0,
                  a_floor: float = 1e-3) -> Callable[[Tensor], Tensor]:
    """The residual r(x) (B, N²) of normalized Darcy pairs x (B, 2, N, N) (channel 0 a, channel 1 u), for
    `physics_dps`: the Jacobi-scaled residual divided by u_scale, the stored unit of u (physical u =
    offset + u_scale·x), so r is in the units the model samples in. to_physical: normalized -> physical
    (the dataset's `to_physical`). a is clamped to >= a_floor (a generated a may cross 0 mid-sampling)."""
    if not (isinstance(u_scale, Real) and math.isfinite(u_scale) and u_scale > 0):
        raise ValueError(f"u_scale must be a finite number > 0, got {u_scale!r}")

    def residual(x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != 2:
            raise ValueError(f"Darcy physics needs pairs (B, 2, N, N) (a, u), got shape {tuple(x.shape)}")
        p = to_physical(x)
        r = darcy_jacobi_residual(p[:, 0].clamp_min(a_floor), p[:, 1], f, fixed_scale=True)
        return r.reshape(x.shape[0], -1) / u_scale

    return residual


def physics_dps(denoiser: Callable[..., Tensor], residual: Callable[[Tensor], Tensor], *, physics_step: float,
                sigma_max: float = math.inf, operator: LinearOperator | Callable[[Tensor], Tensor] | None = None,
                y: Tensor | None = None, step_size: float = 3.0) -> Callable[..., Tensor]:
    """DPS with the PDE residual as one more measurement (module notes) as a denoiser.

    residual: x (B, ...) -> (B, p), e.g. `darcy_physics(...)`. physics_step: ζ_p > 0. sigma_max: σ_p, the
    largest σ at which the physics term acts. operator, y: the observations (both or neither); step_size:
    their ζ, as in `tasks.dps`."""
    physics_step = _check_number("physics_step", physics_step, positive=True)
    if isinstance(sigma_max, bool) or not isinstance(sigma_max, Real) or not sigma_max > 0:  # inf allowed
        raise ValueError(f"physics sigma_max must be a number > 0, got {sigma_max!r}")
    if (operator is None) != (y is None):
        raise ValueError("operator and y come together: give both (reconstruction) or neither (generation)")
    step_size = _check_number("DPS step_size", step_size, positive=True)
    forward = operator.forward if isinstance(operator, LinearOperator) else operator
    m = math.prod(y.shape[1:]) if y is not None else 0
    tiny = torch.finfo(torch.float32).tiny

    def guided(x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        sig = _sigma_vector(sigma, x)
        if forward is None and not bool((sig <= sigma_max).any()):
            return denoiser(x, sig, **cond)  # nothing to guide at this σ: no gradient needed
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            d = denoiser(xg, sig, **cond)
            r = residual(d)
            p = r.shape[1]
            weight = physics_step * math.sqrt(p) * (sig <= sigma_max).to(x.dtype)  # (B,) the physics term's ζ_p·√p
            loss = (weight * (r.pow(2).sum(1) + tiny).sqrt()).sum()
            if forward is not None:
                pred = forward(d)
                if pred.shape != y.shape:
                    raise ValueError(f"measurement y has shape {tuple(y.shape)}, but the operator maps x of shape "
                                     f"{tuple(x.shape)} to {tuple(pred.shape)}")
                ro = (y.to(pred.dtype) - pred).reshape(x.shape[0], -1)
                loss = loss + step_size * math.sqrt(m) * (ro.pow(2).sum(1) + tiny).sqrt().sum()
            (grad,) = torch.autograd.grad(loss, xg)  # samples are independent: per-sample gradients
        return d.detach() - expand_sigma(sig, x) ** 2 * grad

    return guided
