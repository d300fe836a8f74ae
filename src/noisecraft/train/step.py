"""One optimizer step: the learning rate, micro-batches with their conditions, the loss, the update.

The global batch (train.batch_size items) comes from the `TrainState`'s data order; each of the
N processes takes its contiguous slice in micro-batches (`rank_layout`). Every sample draws its
flip, condition inputs and the loss's σ and ε, in that order, from a generator of its own keyed by
(train.seed, step attempt, position in the global batch) (core.rng.sample_generators), so the
same state gives the same step on every run, after every resume, and on 1 or N processes (up to
the order of float summation in the gradient average). With train.image_frames = K (video), each
process first trains its K/N single frames in one micro-batch, keyed the same way under a key of their own.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..conditioning import Batch, Conditioner
from ..config import Config, ConfigError, OptimConfig, TrainConfig
from ..core import rng
from .build import mix_seed
from .distributed import World
from .state import TrainState

__all__ = ["learning_rate", "train_step", "grad_norm", "rank_layout", "step_key"]


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


def _norm(params: list[Tensor]) -> Tensor:
    norms = [torch.linalg.vector_norm(p.grad.detach().float()) for p in params if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


def grad_norm(params: list[Tensor]) -> float:
    """Global L2 norm of the gradients (what clip_grad_norm_ reports), without clipping."""
    return float(_norm(params))


def rank_layout(tc: TrainConfig, world: World) -> tuple[int, int]:
    """(items per process, micro-batches per process) for the global train.batch_size on
    `world.size` processes: the fewest micro-batches, at least accum_steps / N, that divide the
    process's share, so no micro-batch is larger than the 1-process one (batch_size / accum_steps)."""
    n = world.size
    if tc.batch_size % n:
        raise ConfigError(f"train.batch_size = {tc.batch_size} cannot be split over {n} processes; "
                          f"use a multiple of {n} (it is the global batch) or another process count")
    if tc.image_frames % n:
        raise ConfigError(f"train.image_frames = {tc.image_frames} cannot be split over {n} processes; "
                          f"use a multiple of {n} (it is the global count) or another process count")
    share = tc.batch_size // n
    micro = max(1, -(-tc.accum_steps // n))
    while share % micro:
        micro += 1
    return share, micro


def step_key(tc: TrainConfig, state: TrainState) -> int:
    """The key of this step attempt's per-sample generators: skipped (non-finite) attempts count, so a
    retry draws fresh numbers, and both counters are in every checkpoint."""
    return mix_seed(tc.seed, 0x5A3B1E, state.step + state.nonfinite_steps)


def _micro_batch(idx: Tensor, gens: list[torch.Generator], dataset: Any, device: torch.device,
                 channels_last: bool = False) -> Batch:
    x0 = dataset.data[idx]  # (B, C, *spatial)
    if dataset.hflip:  # flips along the last axis, one draw per sample
        flip = rng.rand(gens, len(idx)) < 0.5
        x0 = torch.where(flip.reshape((-1,) + (1,) * (x0.ndim - 1)), x0.flip(-1), x0)
    if channels_last and x0.ndim == 4:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    if device.type == "cuda":
        x0 = x0.pin_memory()  # so the copy below overlaps with the work already queued
    return Batch(x0.to(device, non_blocking=True), idx, dataset)


def _frames_key(tc: TrainConfig, state: TrainState) -> int:
    """The key of this step attempt's single-frame generators (train.image_frames), apart from the clips'."""
    return mix_seed(tc.seed, 0x1F4A3E, state.step + state.nonfinite_steps)


def _frame_batch(gens: list[torch.Generator], dataset: Any, device: torch.device) -> Batch:
    """Single frames as one-frame clips (B, C, 1, H, W), each a uniformly drawn frame of a uniformly
    drawn training clip (joint image-video training, Ho et al. 2022 Sec. 4: the frames are trained as
    independent images). The clip's index travels with it, so its label or caption conditions it."""
    n = len(gens)
    num_clips, num_frames = len(dataset), dataset.data.shape[2]
    clip = rng.randint(gens, 0, num_clips, n)
    frame = rng.randint(gens, 0, num_frames, n)
    x0 = dataset.data[clip, :, frame].unsqueeze(2)  # (B, C, 1, H, W)
    if dataset.hflip:
        flip = rng.rand(gens, n) < 0.5
        x0 = torch.where(flip.reshape(-1, 1, 1, 1, 1), x0.flip(-1), x0)
    return Batch(x0.to(device), clip, dataset)


def _condition_inputs(conditioners: Sequence[Conditioner], net: nn.Module, batch: Batch,
                      gens: list[torch.Generator], device: torch.device) -> dict[str, Tensor]:
    """Every conditioner's network inputs for one micro-batch (labels, context, image condition, ...)."""
    cond: dict[str, Tensor] = {}
    for c in conditioners:
        cond.update(c.train_inputs(net, batch, gens, device))
    return cond


def train_step(state: TrainState, cfg: Config, dataset: Any, denoiser: nn.Module, loss_fn: Callable[..., Tensor],
               conditioners: Sequence[Conditioner], device: torch.device, world: World = World(),
               ddp: nn.Module | None = None) -> tuple[float, float, float]:
    """Accumulate the gradient of one step; returns (loss, gradient norm, lr), the loss averaged
    over all processes and non-finite when it is on any of them. The update itself is
    `apply_update` (the loop skips it when the loss or the gradient is not finite). `ddp`: the
    DistributedDataParallel wrapper that `denoiser` calls (averages gradients across `world`)."""
    tc, oc = cfg.train, cfg.optim
    lr = learning_rate(oc, state.step, tc.steps)
    for group in state.opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    state.opt.zero_grad(set_to_none=True)
    share, micro = rank_layout(tc, world)
    size = share // micro
    idx = state.order.take(tc.batch_size)  # the global batch, the same on every rank
    key = step_key(tc, state)
    total = torch.zeros((), dtype=torch.float64, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.bf16)
    # With train.image_frames = K, every clip and every frame counts as one sample of the loss:
    # loss = (B·mean over clips + K·mean over frames) / (B + K).
    clip_weight = tc.batch_size / (tc.batch_size + tc.image_frames)
    if tc.image_frames:  # the frames go first, so DDP syncs the gradient once, at the clips' last micro-batch
        k_share = tc.image_frames // world.size
        gens = rng.sample_generators(_frames_key(tc, state), range(world.rank * k_share, (world.rank + 1) * k_share))
        batch = _frame_batch(gens, dataset, device)
        cond = _condition_inputs(conditioners, state.net, batch, gens, device)
        with contextlib.nullcontext() if ddp is None else ddp.no_sync():
            with autocast:
                loss = loss_fn(denoiser, batch.x0, generator=gens, **cond) * (1 - clip_weight)
            loss.backward()
        total += loss.detach().double()
    for j in range(micro):
        start = world.rank * share + j * size  # position of the micro-batch in the global batch
        gens = rng.sample_generators(key, range(start, start + size))
        batch = _micro_batch(idx[start:start + size], gens, dataset, device, tc.channels_last)
        cond = _condition_inputs(conditioners, state.net, batch, gens, device)
        # DDP all-reduces the gradients once per step, at the last micro-batch
        sync = ddp is None or j == micro - 1
        with contextlib.nullcontext() if sync else ddp.no_sync():
            with autocast:
                loss = loss_fn(denoiser, batch.x0, generator=gens, **cond) * clip_weight
            (loss / micro).backward()
        total += loss.detach().double() / micro  # on the device: no host synchronisation per micro-batch
    if world.size > 1:  # mean loss over ranks; a non-finite loss anywhere makes the sum non-finite
        bad = (~torch.isfinite(total)).double()
        both = world.all_reduce_sum(torch.stack([torch.nan_to_num(total), bad]), "the loss all-reduce")
        total = torch.where(both[1] > 0, torch.full_like(both[0], math.nan), both[0] / world.size)
    params = [p for p in state.net.parameters() if p.requires_grad]
    norm = nn.utils.clip_grad_norm_(params, oc.grad_clip) if oc.grad_clip > 0 else _norm(params)
    loss_value, norm_value = torch.stack([total, norm.to(total)]).tolist()  # the step's one synchronisation
    return loss_value, norm_value, lr


def apply_update(state: TrainState, batch_size: int) -> None:
    """The optimizer step and everything that follows it: counters, EMA, post-hoc EMA tracks."""
    state.opt.step()
    state.step += 1
    state.samples_seen += batch_size
    state.ema.update(state.net)
    if state.pema is not None:
        state.pema.update(state.net, state.samples_seen, batch_size)
