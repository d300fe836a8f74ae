"""Adapters that sample diffusers models with noisecraft solvers.

A diffusers DDPM-family model is a network ε̂(x_t, t) (or v̂, or x̂0) trained under a table of
betas, with x_t = sqrt(ᾱ_t)·x0 + sqrt(1-ᾱ_t)·ε. In σ-space that process is `DiscreteVPProcess`
(σ_t = sqrt((1-ᾱ_t)/ᾱ_t), x = x_t/sqrt(ᾱ_t)), so wrapping the model is one `Precond`:

    denoiser = from_diffusers(unet, scheduler)      # any scheduler: only its betas and
    x0 = noisecraft.sample(denoiser, noise, ...)     # prediction_type are read

The network receives exactly what it saw in training: x_t = x/sqrt(1+σ²) and the timestep t(σ),
fractional between table entries (log σ is interpolated linearly in t, as diffusers' Karras-sigma
schedulers and k-diffusion do).

diffusers itself is imported only when a scheduler config has to be turned into betas; pass a
scheduler object (or betas) and nothing from diffusers is imported here.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from ..core.precond import Precond
from ..core.processes import DiscreteVPProcess

__all__ = ["from_diffusers", "eps_model_to_denoiser", "process_from_scheduler", "PREDICTION_TYPES"]

# diffusers' `prediction_type` -> noisecraft's Precond target.
PREDICTION_TYPES: Mapping[str, str] = {"epsilon": "eps", "v_prediction": "v", "sample": "x0"}

_INSTALL_HINT = "from_diffusers needs the diffusers package: pip install noisecraft[diffusers]"


def _import_diffusers():
    try:
        import diffusers
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from err
    return diffusers


def _config_of(scheduler_or_config: Any) -> Mapping[str, Any]:
    if isinstance(scheduler_or_config, Mapping):
        return scheduler_or_config
    config = getattr(scheduler_or_config, "config", None)
    if isinstance(config, Mapping):
        return config
    raise TypeError(
        "scheduler_or_config must be a diffusers scheduler or its config (a mapping), "
        f"got {type(scheduler_or_config).__name__}"
    )


def _alphas_cumprod(scheduler_or_config: Any) -> Tensor:
    """ᾱ_t of the training process, as the scheduler itself computes it."""
    table = getattr(scheduler_or_config, "alphas_cumprod", None)
    if isinstance(table, Tensor) and table.ndim == 1 and table.numel() >= 2:
        return table.detach().to("cpu", torch.float64)
    config = dict(_config_of(scheduler_or_config))
    if not isinstance(scheduler_or_config, Mapping) or not ({"beta_schedule", "trained_betas"} & config.keys()):
        name = config.get("_class_name") or type(scheduler_or_config).__name__
        raise ValueError(
            f"{name} has no DDPM beta table (alphas_cumprod / beta_schedule / trained_betas); from_diffusers wraps "
            "models trained under DDPM-family schedulers (DDPM, DDIM, PNDM, DPMSolver*, UniPC, DEIS, Euler*, Heun, "
            "LMS, KDPM2, ...). EDM/flow-matching models need Precond with their own process."
        )
    # A config only: let diffusers build its own tables (every beta_schedule, trained_betas, ...).
    diffusers = _import_diffusers()
    known = set(inspect.signature(diffusers.DDPMScheduler.__init__).parameters) - {"self"}
    scheduler = diffusers.DDPMScheduler(**{k: v for k, v in config.items() if k in known})
    return scheduler.alphas_cumprod.detach().to(torch.float64)


def process_from_scheduler(scheduler_or_config: Any) -> DiscreteVPProcess:
    """The `DiscreteVPProcess` a diffusers scheduler (or scheduler config) was trained under.

    The betas are recovered from ᾱ_t (β_t = 1 - ᾱ_t/ᾱ_{t-1}), so σ_t matches diffusers' own
    sqrt((1-ᾱ_t)/ᾱ_t) to float64 round-off.
    """
    ac = _alphas_cumprod(scheduler_or_config)
    if not ((ac > 0) & (ac < 1)).all():
        bad = ac[(ac <= 0) | (ac >= 1)][:3].tolist()
        raise ValueError(
            f"alphas_cumprod must lie in (0, 1) for a σ-space process, got values like {bad}; "
            "zero-terminal-SNR schedules (rescale_betas_zero_snr=True) have σ = ∞ at the last step and are "
            "not supported - sample them with their own scheduler or clip alphas_cumprod first"
        )
    betas = torch.cat([1 - ac[:1], 1 - ac[1:] / ac[:-1]])
    return DiscreteVPProcess(betas=betas)


def _prediction_of(scheduler_or_config: Any, prediction_type: str | None) -> str:
    if prediction_type is None:
        prediction_type = _config_of(scheduler_or_config).get("prediction_type", "epsilon")
    try:
        return PREDICTION_TYPES[prediction_type]
    except (KeyError, TypeError):
        raise ValueError(
            f"unsupported prediction_type {prediction_type!r}; valid: {', '.join(PREDICTION_TYPES)}"
        ) from None


class _DiffusersNet(nn.Module):
    """net(x_t, t, **cond) -> raw model output, in the model's dtype and device.

    Models with a learned variance (IDDPM-style, 2·C output channels) return the prediction in
    the first C channels; the variance half is dropped - ODE solvers do not use it.
    """

    def __init__(self, unet: nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x_in: Tensor, t: Tensor, **cond) -> Tensor:
        param = next(self.unet.parameters(), None)
        if param is not None:
            x_in = x_in.to(device=param.device, dtype=param.dtype)
            t = t.to(device=param.device)
        out = self.unet(x_in, t, **cond)
        out = getattr(out, "sample", out)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if out.ndim >= 2 and out.shape[1] == 2 * x_in.shape[1] and out.shape[2:] == x_in.shape[2:]:
            out = out[:, : x_in.shape[1]]
        return out


def from_diffusers(unet: nn.Module, scheduler_or_config: Any, *, prediction_type: str | None = None) -> Precond:
    """Wrap a diffusers DDPM-family model as a σ-space denoiser D(x, σ, **cond).

    unet: a diffusers model called as `unet(x_t, timestep, **cond)` whose output has `.sample`
        (UNet2DModel, UNet2DConditionModel, ...), or any module returning a tensor.
    scheduler_or_config: the model's scheduler (any DDPM-family scheduler: DDPM, DDIM, DPMSolver...,
        only `alphas_cumprod` and `config.prediction_type` are read) or its config dict.
    prediction_type: overrides the config's 'epsilon' | 'v_prediction' | 'sample'.
    Conditioning keywords given to the denoiser (class_labels=..., encoder_hidden_states=...) are
    passed to the unet. The denoiser computes in the dtype of x (the unet in its own dtype).
    """
    prediction = _prediction_of(scheduler_or_config, prediction_type)
    return Precond(_DiffusersNet(unet), prediction, process_from_scheduler(scheduler_or_config))


class _CallableNet(nn.Module):
    def __init__(self, fn: Callable[..., Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x_in: Tensor, t: Tensor, **cond) -> Tensor:
        return self.fn(x_in, t, **cond)


def eps_model_to_denoiser(eps_fn: Callable[..., Tensor], betas: Tensor | str = "linear") -> Precond:
    """Wrap a plain ε-prediction callable `eps_fn(x_t, t, **cond)` trained under DDPM `betas`
    (a 1-D table, or 'linear' | 'scaled_linear' | 'cosine' for the 1000-step tables) as a σ-space
    denoiser. t is the (fractional) timestep index, shape (B,)."""
    if not callable(eps_fn):
        raise TypeError(f"eps_fn must be callable, got {type(eps_fn).__name__}")
    return Precond(_CallableNet(eps_fn), "eps", DiscreteVPProcess(betas=betas))
