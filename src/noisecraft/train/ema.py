"""Classic exponential moving average of a network's weights.

θ_ema ← d·θ_ema + (1 - d)·θ after every optimizer step. With `warmup` the decay is
min(d, (1 + n)/(10 + n)) after n updates, so the random initial weights are forgotten quickly
in short runs. Buffers (if any) are copied, not averaged.
"""

from __future__ import annotations

import copy
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from ..runs.phema import power_beta, std_to_exp

__all__ = ["EMA", "PowerEMA"]


class EMA:
    """Holds an averaged copy of `module` in `self.module` (eval mode, no gradients)."""

    def __init__(self, module: nn.Module, decay: float = 0.999, warmup: bool = True):
        if not 0 <= decay < 1:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0

    def current_decay(self) -> float:
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        d = self.current_decay()
        for e, p in zip(self.module.parameters(), module.parameters()):
            e.lerp_(p.detach().to(e.dtype), 1.0 - d)
        for e, b in zip(self.module.buffers(), module.buffers()):
            e.copy_(b)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "num_updates": self.num_updates, "decay": self.decay, "warmup": self.warmup}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.num_updates = int(state["num_updates"])
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])


class PowerEMA:
    """Power-function EMA tracks of a module's parameters, one per relative std.

    `update(module, t, dt)` after each optimizer step, with t the samples seen *after* the step and
    dt the batch size; `snapshot()` returns {std: state_dict} ready to be saved.
    """

    def __init__(self, module: nn.Module, stds: Sequence[float] = (0.05, 0.10)):
        self.stds = [float(s) for s in stds]
        for s in self.stds:
            std_to_exp(s)  # validates
        self._names = [n for n, _ in module.named_parameters()]
        self.tracks: list[list[Tensor]] = [
            [p.detach().clone().float() for p in module.parameters()] for _ in self.stds
        ]

    @torch.no_grad()
    def update(self, module: nn.Module, t: float, dt: float) -> None:
        params = [p.detach() for p in module.parameters()]
        for std, track in zip(self.stds, self.tracks):
            beta = power_beta(std, t, dt)
            for e, p in zip(track, params):
                e.lerp_(p.to(e.dtype), 1.0 - beta)

    def snapshot(self) -> dict[float, dict[str, Tensor]]:
        """{std: {parameter name: tensor}} - copies, safe to save."""
        return {std: {n: e.clone() for n, e in zip(self._names, track)} for std, track in zip(self.stds, self.tracks)}

    def state_dict(self) -> dict:
        return {"stds": list(self.stds), "tracks": {f"{i}": {n: e for n, e in zip(self._names, tr)} for i, tr in enumerate(self.tracks)}}

    def load_state_dict(self, state: Mapping) -> None:
        stds = [float(s) for s in state["stds"]]
        if stds != self.stds:
            raise ValueError(f"post-hoc EMA stds in the checkpoint {stds} differ from the config {self.stds}")
        for i, track in enumerate(self.tracks):
            saved = state["tracks"][f"{i}"]
            for n, e in zip(self._names, track):
                e.copy_(saved[n])
