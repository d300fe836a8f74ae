"""What happens after an optimizer step besides the update: hooks called in order by the loop.

    ProgressLog   metrics.jsonl, TensorBoard scalars, the progress bar      every train.log_every
    Snapshots     post-hoc EMA snapshots (phema/)                           every ema.phema_every
    Previews      sample grids in the run's modality (samples/)             every train.sample_every
    Evaluation    metrics of the EMA weights, the best weights (best/)     every eval.every
    Checkpoints   the TrainState + the loss curve                           every train.checkpoint_every

A hook never touches the trainer's generator or the data order, and anything that draws random
numbers forks torch's global RNG, so a run trains (and resumes) exactly alike with or without them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..config import Config
from ..runs import build_denoiser, generate
from ..runs.checkpoint import save_checkpoint
from . import folder
from .state import TrainState

__all__ = ["StepInfo", "Hook", "ProgressLog", "Snapshots", "Previews", "Checkpoints", "due"]


@dataclass
class StepInfo:
    """What the loop knows about the step just applied."""

    loss: float
    lr: float
    grad_norm: float
    last_step: int  # the step this call of train() stops at
    total_steps: int  # train.steps


def due(step: int, every: int, info: StepInfo) -> bool:
    """Whether a hook with period `every` (0 = only at the end of the run) runs after `step`."""
    return (every > 0 and step % every == 0) or step == info.total_steps


class Hook:
    def after_step(self, state: TrainState, info: StepInfo) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass


class ProgressLog(Hook):
    """Mean loss of each log window, lr, speed and gradient norm: metrics.jsonl, TensorBoard, the bar."""

    def __init__(self, out: Path, cfg: Config, rows: list[dict], writer: Any, bar: Any, samples_seen: int) -> None:
        self.out, self.every, self.rows, self.writer, self.bar = out, cfg.train.log_every, rows, writer, bar
        self.window: list[float] = []
        self.t_log, self.samples_log = time.perf_counter(), samples_seen
        self.last_loss = math.nan

    def after_step(self, state: TrainState, info: StepInfo) -> None:
        self.window.append(info.loss)
        if not (state.step % self.every == 0 or state.step == info.last_step):
            return
        now = time.perf_counter()
        speed = (state.samples_seen - self.samples_log) / max(now - self.t_log, 1e-9)
        self.t_log, self.samples_log = now, state.samples_seen
        self.last_loss = sum(self.window) / len(self.window)
        self.window = []
        row = {"step": state.step, "samples": state.samples_seen, "loss": self.last_loss, "lr": info.lr,
               "samples_per_s": speed, "grad_norm": info.grad_norm, "nonfinite_steps": state.nonfinite_steps}
        self.rows.append(row)
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        self.bar.set_postfix(loss=f"{self.last_loss:.4f}", lr=f"{info.lr:.2e}", samples_s=f"{speed:.0f}")
        if self.writer is not None:
            for key, value in (("loss", self.last_loss), ("lr", info.lr), ("samples_per_s", speed),
                               ("samples_seen", state.samples_seen)):
                self.writer.add_scalar(f"train/{key}", value, state.step)


class Snapshots(Hook):
    """Post-hoc EMA snapshots every ema.phema_every steps and at the end (EDM2)."""

    def __init__(self, out: Path, cfg: Config) -> None:
        self.out, self.every = out, cfg.ema.phema_every

    def after_step(self, state: TrainState, info: StepInfo) -> None:
        if state.pema is not None and due(state.step, self.every, info):
            folder.save_snapshot(self.out, state.pema, state.samples_seen, state.step)


class Previews(Hook):
    """A grid of samples of the EMA weights, drawn the same way every time (fixed seeds, the
    first training examples' conditions), written in the run's modality to samples/step-N.png."""

    def __init__(self, out: Path, cfg: Config, dataset: Any, shape: Sequence[int], conditioners: Sequence[Any],
                 modality: Any, writer: Any) -> None:
        self.out, self.cfg, self.ds, self.shape = out, cfg, dataset, tuple(shape)
        self.conditioners, self.modality, self.writer = list(conditioners), modality, writer

    def after_step(self, state: TrainState, info: StepInfo) -> None:
        if due(state.step, self.cfg.train.sample_every, info):
            self.write(state.ema.module, state.step)

    def write(self, module: torch.nn.Module, step: int) -> Path:
        sc = self.cfg.sample
        idx, nrow = preview_indices(self.ds, sc.per_class)
        values = {c.key: c.preview_values(self.ds, idx) for c in self.conditioners}
        denoiser = build_denoiser(module, self.cfg).eval()
        spec = sc.spec(seed=self.cfg.train.seed)
        with torch.random.fork_rng(devices=[]):
            x = generate(denoiser, len(idx), self.shape, spec, self.conditioners, values).clamp(-1, 1)
        tiles = _interleave_rows([c.preview_rows(values[c.key]) for c in self.conditioners], x, nrow)
        path = self.modality.write_preview(tiles, self.out / "samples" / f"step-{step:08d}.png", nrow=nrow,
                                           scale=sc.scale)
        if self.writer is not None:
            self.writer.add_image("samples", self.modality.preview_image(tiles, nrow=nrow), step)
        return path


def preview_indices(dataset: Any, per_row: int) -> tuple[torch.Tensor, int]:
    """Training examples whose conditions the preview uses, and the row length: one row of
    per_row per class (labelled data), per distinct first caption (captioned data), else a
    per_row x per_row square of the first examples."""
    n = len(dataset)
    if getattr(dataset, "num_classes", 0):
        firsts = [int((dataset.labels == c).nonzero()[0]) for c in range(dataset.num_classes) if (dataset.labels == c).any()]
        return torch.tensor(firsts).repeat_interleave(per_row), per_row
    captions = getattr(dataset, "captions", None)
    if captions is not None:
        seen: dict[str, int] = {}
        for i, caps in enumerate(captions):
            seen.setdefault(caps[0], i)
            if len(seen) == per_row:
                break
        return torch.tensor(list(seen.values())).repeat_interleave(per_row), per_row
    return torch.arange(per_row * per_row) % n, per_row


def _interleave_rows(contexts: Sequence[torch.Tensor | None], x: torch.Tensor, nrow: int) -> torch.Tensor:
    """Per grid row: the rows of each condition picture (e.g. the masked input), then the samples."""
    contexts = [c.to(x.dtype).clamp(-1, 1) for c in contexts if c is not None]
    if not contexts:
        return x
    rows = []
    for start in range(0, x.shape[0], nrow):
        rows.extend(c[start:start + nrow] for c in contexts)
        rows.append(x[start:start + nrow])
    return torch.cat(rows)


class Checkpoints(Hook):
    """The whole TrainState every train.checkpoint_every steps and at the last step of the call."""

    def __init__(self, out: Path, cfg: Config, rows: list[dict], saved: Path | None) -> None:
        self.out, self.cfg, self.rows, self.saved = out, cfg, rows, saved

    def after_step(self, state: TrainState, info: StepInfo) -> None:
        if state.step % self.cfg.train.checkpoint_every == 0 or state.step == info.last_step:
            self.saved = save_checkpoint(self.out / "checkpoints", state.step, state.state_dict(self.cfg.to_dict()),
                                         keep=self.cfg.train.keep_checkpoints)
            folder.plot_losses(self.rows, self.out / "loss.png")
