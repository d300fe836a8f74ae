"""One optimizer step: the learning rate, micro-batches with their conditions, the loss, the update.

The batch, flips and condition inputs come from the `TrainState`'s data order and generator, in
a fixed order (flips, then each conditioner in turn, then the loss's σ and ε), so the same state
gives the same step on every run and after every resume.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..conditioning import Batch, Conditioner
from ..config import Config, OptimConfig
from .state import TrainState

__all__ = ["learning_rate", "train_step", "grad_norm"]


def learning_rate(cfg: OptimConfig, step: int, total_steps: int) -> float:
    """Learning rate for 0-based `step`: linear warm-up to cfg.lr, then the chosen decay."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    start = max(cfg.decay_start, cfg.warmup_steps)
    if cfg.decay == "none" or step < start:
        return cfg.lr
    if cfg.decay == "inv_sqrt":  # EDM2 Eq. 16: α_ref / sqrt(max(t / t_ref, 1))
        return cfg.lr / math.sqrt(max(step / max(start, 1), 1.0))
    frac = min(1.0, (step - start) / max(1, total_steps - 1 - start))
    if cfg.decay == "cosine":
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * frac))
    return cfg.lr + (cfg.min_lr - cfg.lr) * frac  # linear


def grad_norm(params: list[Tensor]) -> float:
    """Global L2 norm of the gradients (what clip_grad_norm_ reports), without clipping."""
    norms = [torch.linalg.vector_norm(p.grad.detach().float()) for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def _micro_batch(state: TrainState, dataset: Any, size: int, device: torch.device) -> Batch:
    idx = state.order.take(size)
    x0 = dataset.data[idx]  # (B, C, *spatial)
    if dataset.hflip:  # flips along the last axis, drawn from the trainer's generator
        flip = torch.rand(size, generator=state.generator) < 0.5
        x0 = torch.where(flip.reshape((-1,) + (1,) * (x0.ndim - 1)), x0.flip(-1), x0)
    return Batch(x0.to(device, non_blocking=True), idx, dataset)


def train_step(state: TrainState, cfg: Config, dataset: Any, denoiser: nn.Module, loss_fn: Callable[..., Tensor],
               conditioners: Sequence[Conditioner], device: torch.device) -> tuple[float, float, float]:
    """Accumulate the gradient of one step; returns (loss, gradient norm, lr). The update itself is
    `apply_update` (the loop skips it when the loss or the gradient is not finite)."""
    tc, oc = cfg.train, cfg.optim
    lr = learning_rate(oc, state.step, tc.steps)
    for group in state.opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    state.opt.zero_grad(set_to_none=True)
    total = 0.0
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.bf16)
    for _ in range(tc.accum_steps):
        batch = _micro_batch(state, dataset, tc.batch_size // tc.accum_steps, device)
        cond: dict[str, Tensor] = {}
        for c in conditioners:
            cond.update(c.train_inputs(state.net, batch, state.generator, device))
        with autocast:
            loss = loss_fn(denoiser, batch.x0, generator=state.generator, **cond)
        (loss / tc.accum_steps).backward()
        total += float(loss.detach()) / tc.accum_steps
    params = [p for p in state.net.parameters() if p.requires_grad]
    norm = float(nn.utils.clip_grad_norm_(params, oc.grad_clip)) if oc.grad_clip > 0 else grad_norm(params)
    return total, norm, lr


def apply_update(state: TrainState, batch_size: int) -> None:
    """The optimizer step and everything that follows it: counters, EMA, post-hoc EMA tracks."""
    state.opt.step()
    state.step += 1
    state.samples_seen += batch_size
    state.ema.update(state.net)
    if state.pema is not None:
        state.pema.update(state.net, state.samples_seen, batch_size)
