"""Everything a training run carries from step to step, saved and restored as one object.

`TrainState` holds the module being trained, AdamW, the classic EMA, the post-hoc EMA tracks,
a random generator, the data order and the progress counters (which key the per-sample generators). `state_dict()` is what
a checkpoint stores (with torch's global RNG, used only by networks with dropout), and
`load_state_dict()` restores it exactly after checking every tensor's name, shape and dtype, so a
resumed run continues bitwise where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..io_safety import check_tensors_match
from ..runs.checkpoint import CheckpointError, decode_bytes, encode_bytes
from .build import mix_seed
from .ema import EMA, PowerEMA

__all__ = ["DataOrder", "TrainState"]


class DataOrder:
    """Sequential reader over per-epoch permutations; the state is (epoch, index)."""

    def __init__(self, num_items: int, seed: int, epoch: int = 0, index: int = 0):
        if num_items < 1:
            raise ValueError("cannot train on an empty dataset")
        self.num_items, self.seed, self.epoch, self.index = num_items, seed, epoch, index
        self._perm = self._permutation(epoch)

    def _permutation(self, epoch: int) -> Tensor:
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch, 0x0DA7A))
        return torch.randperm(self.num_items, generator=g)

    def take(self, k: int) -> Tensor:
        out = []
        while k > 0:
            if self.index >= self.num_items:
                self.epoch, self.index = self.epoch + 1, 0
                self._perm = self._permutation(self.epoch)
            m = min(k, self.num_items - self.index)
            out.append(self._perm[self.index : self.index + m])
            self.index += m
            k -= m
        return torch.cat(out)

    def state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "num_items": self.num_items}

    @classmethod
    def from_state(cls, state: Any, num_items: int, seed: int, where: str = "checkpoint") -> "DataOrder":
        if not isinstance(state, dict) or not all(isinstance(state.get(k), int) and not isinstance(state.get(k), bool)
                                                  for k in ("epoch", "index", "num_items")):
            raise CheckpointError(f"{where} has missing or corrupt data-order state {state!r}; cannot resume exactly")
        if state["num_items"] != num_items:
            raise CheckpointError(f"{where} was trained on {state['num_items']} items but the dataset now has {num_items}; "
                                  "the data changed, cannot resume exactly")
        if not (state["epoch"] >= 0 and 0 <= state["index"] <= num_items):
            raise CheckpointError(f"{where} has an invalid data position {state!r}")
        return cls(num_items, seed, state["epoch"], state["index"])


@dataclass
class TrainState:
    net: nn.Module
    opt: torch.optim.Optimizer
    ema: EMA
    pema: PowerEMA | None
    # Training draws from per-sample generators keyed by the step (step.py); this one is kept and
    # checkpointed so checkpoints keep their format (older runs resume with it restored).
    generator: torch.Generator
    order: DataOrder
    step: int = 0  # optimizer updates applied
    samples_seen: int = 0
    nonfinite_steps: int = 0  # updates skipped for a non-finite loss/gradient, whole run
    eval_best: dict | None = None  # the best evaluation so far (eval.keep_best), continued on resume

    def state_dict(self, config: dict) -> dict:
        state = {
            "model": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "optim": self.opt.state_dict(),
            "progress": {"step": self.step, "samples_seen": self.samples_seen, "nonfinite_steps": self.nonfinite_steps},
            "rng": {"trainer": encode_bytes(self.generator.get_state()), "torch": encode_bytes(torch.get_rng_state())},
            "data_order": self.order.state(),
            "config": config,
        }
        if self.pema is not None:
            state["phema"] = self.pema.state_dict()
        if self.eval_best is not None:
            state["eval_best"] = self.eval_best  # so a resumed run continues the comparison
        return state

    def load_state_dict(self, step: int, state: dict, seed: int, where: str) -> None:
        """Restore from a checkpoint's state; CheckpointError (one line) when it does not match."""
        try:
            # names, shapes and dtypes first (load_state_dict would cast dtypes, and a wrong-shaped
            # optimizer moment would only fail at the first step): a WeightMismatchError is a ValueError
            check_tensors_match(self.net.state_dict(), state["model"], source=f"{where} [model]")
            check_tensors_match(self.ema.module.state_dict(), state["ema"]["module"], source=f"{where} [ema]")
            self.net.load_state_dict(state["model"])
            self.ema.load_state_dict(state["ema"])
            self.opt.load_state_dict(state["optim"])
            self._check_optimizer_shapes()
            if self.pema is not None:
                for i, track in enumerate(self.pema.tracks):
                    check_tensors_match(dict(zip(self.pema._names, track)), state["phema"]["tracks"][f"{i}"],
                                        source=f"{where} [phema track {i}]")
                self.pema.load_state_dict(state["phema"])
            self.samples_seen = int(state["progress"]["samples_seen"])
            self.nonfinite_steps = int(state["progress"].get("nonfinite_steps", 0))
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{where} does not match this run's model/optimizer: {e}".splitlines()[0]) from None
        self.step = step
        _restore_rng(self.generator, state.get("rng"), where)
        self.order = DataOrder.from_state(state.get("data_order"), self.order.num_items, seed, where)
        self.eval_best = state.get("eval_best")

    def _check_optimizer_shapes(self) -> None:
        for p in (q for g in self.opt.param_groups for q in g["params"]):
            for k, v in self.opt.state.get(p, {}).items():
                if k != "step" and isinstance(v, Tensor) and v.shape != p.shape:
                    raise ValueError(f"optimizer state {k!r} has shape {list(v.shape)}, its parameter {list(p.shape)}")


def _restore_rng(gen: torch.Generator, rng: Any, where: str) -> None:
    if not isinstance(rng, dict):
        raise CheckpointError(f"{where} has no RNG state; cannot resume exactly")
    for key in ("trainer", "torch"):
        text = rng.get(key)
        try:
            state = decode_bytes(text)
            if state.numel() != gen.get_state().numel():
                raise ValueError("wrong length")
            (gen.set_state if key == "trainer" else torch.set_rng_state)(state)
        except Exception:  # noqa: BLE001 - any failure means the state is unusable
            raise CheckpointError(f"{where} has missing or corrupt RNG state {key!r}; cannot resume exactly") from None
