"""`sample()`: the public entry point that validates input, plans the schedule for the NFE budget,
guards the denoiser and runs a solver."""

from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..core.schedules import get_schedule
from .noise import Generators, NoiseSource
from .registry import DEFAULT_OPTIONS, DEFAULT_SOLVER, SolverInfo, get_solver

__all__ = ["sample", "default_sigmas", "DenoiserError", "BudgetExceeded", "check_sigmas"]

DEFAULT_SIGMA_MIN = 0.002
DEFAULT_SIGMA_MAX = 80.0


class DenoiserError(RuntimeError):
    """The denoiser returned a non-finite value or a wrongly shaped tensor."""


class BudgetExceeded(RuntimeError):
    """A solver tried to call the denoiser more often than its NFE budget (a solver bug)."""


class GuardedDenoiser:
    """Counts calls, enforces the budget, checks shape and finiteness, broadcasts σ to (B,).

    On CUDA (or with defer=True) the finiteness check does not synchronise the host with the device
    at every call: the index of the first non-finite call is kept in a device tensor and `check()`,
    called once after the solver, raises the same DenoiserError. On the CPU it raises at once."""

    def __init__(self, denoiser: Callable[..., Tensor], nfe: int, sigmas: list[float], cond: dict[str, Any],
                 defer: bool | None = None):
        self.denoiser, self.nfe, self.sigmas, self.cond = denoiser, nfe, sigmas, cond
        self.calls = 0
        self.defer = defer
        self._called: list[float] = []  # σ of each call (host values; for the deferred message)
        self._first_bad: Tensor | None = None  # device: the first non-finite call's number, 0 = none

    def _step_of(self, sigma: float) -> int:
        """Index i of the schedule interval σ_i ≥ σ > σ_{i+1} (for error messages)."""
        for i in range(len(self.sigmas) - 1):
            if sigma > self.sigmas[i + 1]:
                return i
        return len(self.sigmas) - 2

    def __call__(self, x: Tensor, sigma: float) -> Tensor:
        if self.calls >= self.nfe:
            raise BudgetExceeded(f"solver exceeded its budget of nfe={self.nfe} denoiser calls")
        self.calls += 1
        sig = torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)
        out = self.denoiser(x, sig, **self.cond)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise DenoiserError(
                f"denoiser returned shape {got} for input {tuple(x.shape)} at step {self._step_of(sigma)} "
                f"(sigma={sigma:.6g}); it must return a tensor shaped like x"
            )
        if self.defer if self.defer is not None else out.is_cuda:
            self._called.append(sigma)
            bad = ~torch.isfinite(out).all()  # stays on the device: no synchronisation
            first = self._first_bad if self._first_bad is not None else torch.zeros((), dtype=torch.long, device=out.device)
            self._first_bad = torch.where(bad & (first == 0), torch.full_like(first, self.calls), first)
            return out.to(x.dtype)
        # One reduction instead of an elementwise mask: NaN/Inf propagate into the sum; a finite
        # output whose sum overflows is re-checked elementwise.
        if not torch.isfinite(out.sum()) and not torch.isfinite(out).all():
            self._raise_nonfinite(sigma, self.calls)
        return out.to(x.dtype)

    def _raise_nonfinite(self, sigma: float, call: int) -> None:
        raise DenoiserError(f"denoiser returned NaN/Inf at step {self._step_of(sigma)} (sigma={sigma:.6g}, call {call})")

    def check(self) -> None:
        """Raise the deferred DenoiserError of the first non-finite call, if any (one synchronisation)."""
        if self._first_bad is not None:
            call = int(self._first_bad)
            if call:
                self._raise_nonfinite(self._called[call - 1], call)


def check_sigmas(sigmas: Tensor | list[float]) -> list[float]:
    """Validate a user schedule and return it as a list of floats."""
    t = torch.as_tensor(sigmas, dtype=torch.float64)
    if t.ndim != 1 or t.numel() < 2:
        raise ValueError(f"sigmas must be a 1-D sequence of at least 2 values, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"sigmas must be finite, got {t.tolist()}")
    if (t < 0).any() or t[0] <= 0:
        raise ValueError(f"sigmas must be >= 0 with sigmas[0] > 0, got {t.tolist()}")
    if not (t[1:] < t[:-1]).all():
        raise ValueError(f"sigmas must be strictly decreasing, got {t.tolist()}")
    return t.tolist()


def _check_range(sigma_min: float, sigma_max: float) -> None:
    for name, v in (("sigma_min", sigma_min), ("sigma_max", sigma_max)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    if sigma_min >= sigma_max:
        raise ValueError(f"sigma_min must be < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")


def _check_nfe(nfe: Any) -> int:
    if isinstance(nfe, bool) or not isinstance(nfe, int) or nfe < 1:
        raise ValueError(f"nfe must be an integer >= 1, got {nfe!r}")
    return nfe


def default_sigmas(
    solver: str, nfe: int, sigma_min: float = DEFAULT_SIGMA_MIN, sigma_max: float = DEFAULT_SIGMA_MAX, **options
) -> Tensor:
    """The schedule `sample()` uses for `solver` at this budget (float64, ends in 0)."""
    info = get_solver(solver)
    _check_range(sigma_min, sigma_max)
    n = info.steps_for_nfe(_check_nfe(nfe), options)
    if info.adaptive:
        return torch.tensor([sigma_max, sigma_min, 0.0], dtype=torch.float64)
    return get_schedule(info.schedule, n, sigma_min, sigma_max, **info.schedule_options)


def _split_options(info: SolverInfo, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options the solver accepts vs conditioning forwarded to the denoiser."""
    params = inspect.signature(info.function).parameters
    solver_keys = {k for k, p in params.items() if p.kind == p.KEYWORD_ONLY} - {"nfe", "noise", "callback"}
    solver_opts = {**DEFAULT_OPTIONS.get(info.name, {}), **{k: v for k, v in options.items() if k in solver_keys}}
    for k, v in info.fixed_options.items():
        if k in solver_opts and k in options and options[k] != v:
            raise ValueError(f"solver {info.name!r} fixes {k}={v}; got {k}={options[k]!r} (use another solver name)")
        solver_opts[k] = v
    cond = {k: v for k, v in options.items() if k not in solver_keys}
    return solver_opts, cond


def sample(
    denoiser: Callable[..., Tensor],
    noise: Tensor,
    *,
    solver: str = DEFAULT_SOLVER,
    nfe: int | None = None,
    sigma_min: float = DEFAULT_SIGMA_MIN,
    sigma_max: float = DEFAULT_SIGMA_MAX,
    sigmas: Tensor | list[float] | None = None,
    generator: Generators = None,
    callback: Callable[[dict], None] | None = None,
    **options: Any,
) -> Tensor:
    """Draw samples by integrating from `sigma_max·noise` down to σ = 0.

    denoiser(x, sigma, **cond) -> E[x0 | x] for σ-space x = x0 + σ·ε, sigma of shape (B,).
    noise: standard normal, shape (B, ...). solver: a key of `SOLVERS` (default `DEFAULT_SOLVER`).
    nfe: the exact budget of denoiser calls (never exceeded). Default 20, or with `sigmas` the
        number the schedule needs.
    sigmas: an explicit decreasing schedule; sampling starts at sigmas[0]·noise. If it ends in 0 the
        result is a clean sample, otherwise x at sigmas[-1].
    generator: a torch.Generator or one per sample (noise for stochastic solvers).
    callback: called after every step with {"i", "x", "sigma", "sigma_next", "denoised"}.
    options: solver options (e.g. eta, order, s_churn, rtol) by name; all other keywords are
        conditioning passed to the denoiser (e.g. class_labels=...).
    """
    info = get_solver(solver)
    if not isinstance(noise, Tensor) or noise.ndim < 1 or not noise.is_floating_point():
        raise ValueError("noise must be a floating-point tensor of shape (B, ...)")
    solver_opts, cond = _split_options(info, options)
    if sigmas is None:
        nfe = _check_nfe(20 if nfe is None else nfe)
        sigma_list = default_sigmas(solver, nfe, sigma_min, sigma_max, **solver_opts).tolist()
    else:
        sigma_list = check_sigmas(sigmas)
        nfe = info.max_calls(sigma_list, solver_opts) if nfe is None else _check_nfe(nfe)
        if info.min_calls(sigma_list) > nfe:
            raise ValueError(
                f"solver {solver!r} needs at least {info.min_calls(sigma_list)} denoiser calls for "
                f"{len(sigma_list)} sigmas, but nfe={nfe}"
            )
    guarded = GuardedDenoiser(denoiser, nfe, sigma_list, cond)
    x = noise * sigma_list[0]
    kwargs: dict[str, Any] = {"nfe": nfe, "callback": callback, **solver_opts}
    if info.stochastic:
        kwargs["noise"] = NoiseSource(generator)
    with torch.no_grad():
        out = info.function(guarded, x, sigma_list, **kwargs)
    guarded.check()
    return out
