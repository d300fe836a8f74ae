"""The conditioner interface: one object per kind of condition (class label, text, image, ...).

Everything that feeds a network a condition - the training loop, `generate`, the preview grids,
the inference tasks, the CLI - goes through these methods and never asks which kind it holds:

    training    c.train_inputs(net, batch, generator, device)  -> {"class_labels": ...}  (with dropout)
    sampling    v = c.prepare(value, n); c.sample_inputs(net, v[i:j], device)  -> the same keys
    guidance    c.null_inputs(net, cond)-> cond with this condition replaced by "no condition" (CFG)
    the net     c.net_overrides()   -> keyword overrides of the network (num_classes, context_dim, ...)
                c.wrap_net(net)     -> the module to train/save (a text encoder rides along)
    run.json    c.meta()            -> JSON to rebuild it (`conditioning.from_meta`)
    previews    c.preview_values(ds, idx), c.preview_rows(values)

`key` is the keyword a user gives to `Run.generate(spec, n, **{key: value})` and also the name
errors use (the CLI maps it to its flag). Conditioners are stateless between calls except for a
frozen encoder they hold; random draws come from the generator handed in, so training stays
bitwise reproducible.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

__all__ = ["Batch", "Conditioner", "ConditionError"]


class ConditionError(ValueError):
    """A condition value that does not fit the model; names the parameter (`key`) and what is valid."""


@dataclass
class Batch:
    """One training micro-batch: x0 (B, C, *spatial) on the device, its dataset indices and the dataset."""

    x0: Tensor
    idx: Tensor
    dataset: Any


class Conditioner(ABC):
    key: str = ""  # keyword of Run.generate / the sampled network input
    kind: str = ""  # "class", "text", "image": for messages and run.json
    guided: bool = True  # classifier-free guidance extrapolates away from null_inputs
    spec_guidance: bool = False  # True: its value is the SamplingSpec's guidance weight, fed to the net in place of CFG

    @abstractmethod
    def meta(self) -> dict[str, Any]:
        """JSON for run.json: enough to rebuild this conditioner (`kind` included)."""

    def net_overrides(self) -> dict[str, Any]:
        """Keyword overrides of the network this condition needs (e.g. {"num_classes": 10})."""
        return {}

    def wrap_net(self, net: nn.Module) -> nn.Module:
        """The module that is trained, averaged and saved (default: the net itself)."""
        return net

    def param_groups(self, net: nn.Module) -> list[dict] | None:
        """Optimizer groups when this condition trains parameters at their own rate (None: one group)."""
        return None

    @abstractmethod
    def train_inputs(self, net: nn.Module, batch: Batch, generator: torch.Generator,
                     device: torch.device | str) -> dict[str, Tensor]:
        """The network inputs of one training micro-batch, condition dropout included."""

    @abstractmethod
    def prepare(self, value: Any, n: int) -> Any:
        """Check a user's value for n samples and return one entry per sample (sliceable)."""

    def default_value(self, n: int) -> Any:
        """The value when the user gives none; ConditionError if the condition is required."""
        raise ConditionError(f"{self.key} is required for this model ({self.kind}-conditioned); give {self.key}=...")

    @abstractmethod
    def sample_inputs(self, net: nn.Module, values: Any, device: torch.device | str) -> dict[str, Tensor]:
        """The network inputs for prepared values (a slice of what `prepare` returned)."""

    def null_inputs(self, net: nn.Module, cond: dict[str, Any]) -> dict[str, Any]:
        """`cond` with this condition replaced by "no condition" (default: unchanged)."""
        return cond

    def preview_values(self, dataset: Any, idx: Tensor) -> Any:
        """Values for preview samples taken from training examples `idx` (prepared, one per index)."""
        return self.prepare(None, len(idx))

    def preview_rows(self, values: Any) -> Tensor | None:
        """Pictures of the condition itself (N, C, *spatial) to show above the samples, or None."""
        return None

    def describe(self, values: Sequence[Any]) -> list[str] | None:
        """One text line per sample (e.g. the prompt) for a samples folder, or None."""
        return None
