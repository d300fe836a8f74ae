"""`generate`: draw samples of any shape from a denoiser and its conditioners, per a `SamplingSpec`.

One code path for `noisecraft sample`, `Run.generate`, training previews and evaluation: every
condition goes through its conditioner (`prepare` -> `sample_inputs`), and classifier-free
guidance (Ho & Salimans 2022) extrapolates away from the null inputs of the guided conditioners
(class labels, prompts; an image condition is kept in both branches). A guidance-distilled student
(a `spec_guidance` conditioner, conditioning.guidance) takes the spec's weight as a network input
instead: one call per step, no unconditional branch.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from ..conditioning import ConditionError, Conditioner
from ..guidance.cfg import cfg
from ..sampling import SamplingSpec, sample, seeded_generators

__all__ = ["generate", "prepare_values", "conditioned", "with_spec_guidance"]


def prepare_values(conditioners: Sequence[Conditioner], values: Mapping[str, Any] | None, n: int) -> dict[str, Any]:
    """Each conditioner's value for n samples (its default where none is given; none for a guidance
    weight input, which `generate` takes from the spec); ConditionError for a key no conditioner takes."""
    values = dict(values or {})
    keys = [c.key for c in conditioners]
    unknown = [k for k, v in values.items() if k not in keys and v is not None]
    if unknown:
        valid = ", ".join(keys) if keys else "none (the model is unconditional)"
        raise ConditionError(f"{unknown[0]} is not a condition of this model; valid: {valid}")
    # a guidance-weight input without a value is left out: `generate` gives it the spec's weight
    return {c.key: c.prepare(values.get(c.key), n) for c in conditioners
            if not (c.spec_guidance and values.get(c.key) is None)}


def with_spec_guidance(conditioners: Sequence[Conditioner], values: Mapping[str, Any] | None,
                       spec: SamplingSpec) -> dict[str, Any]:
    """`values` with spec.guidance as the value of each conditioner that takes the guidance weight as a
    network input (a guidance-distilled student), unless a value is given for it."""
    out = dict(values or {})
    for c in conditioners:
        if c.spec_guidance and out.get(c.key) is None:
            out[c.key] = spec.guidance
    return out


def _guided(denoiser: Callable[..., Tensor], net: Any, conditioners: Sequence[Conditioner],
            spec: SamplingSpec) -> Callable[..., Tensor]:
    guided = [c for c in conditioners if c.guided]
    if not guided or spec.guidance == 1.0 or any(c.spec_guidance for c in conditioners):
        return denoiser  # no CFG; a guidance-distilled student gets the weight as an input instead

    def uncond(cond: dict[str, Any]) -> dict[str, Any]:
        for c in guided:
            cond = c.null_inputs(net, cond)
        return cond

    return cfg(denoiser, spec.guidance, interval=spec.guidance_interval, uncond=uncond)


def conditioned(denoiser: Callable[..., Tensor], conditioners: Sequence[Conditioner], spec: SamplingSpec,
                values: Mapping[str, Any] | None, n: int, device: str | torch.device = "cpu"
                ) -> tuple[Callable[..., Tensor], dict[str, Any]]:
    """(guided denoiser, network inputs) for n samples: what a task function (inpaint, img2img, ...)
    hands to its sampler as `denoiser, **cond`."""
    prepared = prepare_values(conditioners, with_spec_guidance(conditioners, values, spec), n)
    net = getattr(denoiser, "net", denoiser)
    cond: dict[str, Any] = {}
    for c in conditioners:
        cond.update(c.sample_inputs(net, prepared[c.key], device))
    return _guided(denoiser, net, conditioners, spec), cond


def generate(
    denoiser: Callable[..., Tensor],
    n: int,
    shape: Sequence[int],
    spec: SamplingSpec | None = None,
    conditioners: Sequence[Conditioner] = (),
    values: Mapping[str, Any] | None = None,
    *,
    batch_size: int = 250,
    callback: Callable[[dict], None] | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """n samples (n, *shape) in σ-space units (the data range); sample i drawn from spec.seed + i.

    values: {conditioner key: value}, e.g. {"class_labels": 3} or {"prompts": ["a red circle"]};
    a conditioner without a value uses its default (classes in turn) or says it is required.
    Guidance (spec.guidance != 1) applies when the model has a guided condition.
    device: where the noise and conditions go (None: the denoiser's parameters' device); noise is
    drawn on the CPU so a seed means the same on every device; the result comes back on the CPU.
    """
    spec = spec or SamplingSpec()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    spec.check_seed_range(n)
    prepared = prepare_values(conditioners, with_spec_guidance(conditioners, values, spec), n)
    net = getattr(denoiser, "net", denoiser)
    den = _guided(denoiser, net, conditioners, spec)
    if device is None:
        params = getattr(denoiser, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        device = first.device if first is not None else torch.device("cpu")
    out = []
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        gens = seeded_generators(range(spec.seed + start, spec.seed + stop))
        noise = torch.stack([torch.randn(tuple(shape), generator=g) for g in gens]).to(device)  # (b, *shape)
        cond: dict[str, Any] = {}
        for c in conditioners:
            cond.update(c.sample_inputs(net, prepared[c.key][start:stop], device))
        with torch.no_grad():
            out.append(sample(den, noise, solver=spec.solver, nfe=spec.nfe, sigma_min=spec.sigma_min,
                              sigma_max=spec.sigma_max, generator=gens, callback=callback, **cond).cpu())
    return torch.cat(out)
