"""Class-label conditioning: a one-hot row per sample, all-zero for "no label".

Training drops each label with probability `dropout` (an all-zero row), which trains the
unconditional model that classifier-free guidance extrapolates from (Ho & Salimans 2022,
Sec. 3.2); the null condition at sampling is the same all-zero row (no magic null index).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import rng
from .base import Batch, ConditionError, Conditioner

__all__ = ["ClassLabels"]


class ClassLabels(Conditioner):
    key = "class_labels"
    kind = "class"

    def __init__(self, class_names: Sequence[str], dropout: float = 0.0) -> None:
        self.class_names = [str(c) for c in class_names]
        if not self.class_names:
            raise ValueError("class conditioning needs at least one class name")
        if not 0 <= dropout < 1:
            raise ValueError(f"class dropout {dropout} is out of range; valid: 0 <= dropout < 1")
        self.dropout = float(dropout)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "class_names": list(self.class_names), "dropout": self.dropout}

    def net_overrides(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes}

    def train_inputs(self, net: nn.Module, batch: Batch, generator: torch.Generator, device) -> dict[str, Tensor]:
        labels = batch.dataset.labels[batch.idx]
        onehot = F.one_hot(labels, self.num_classes).float()  # (B, classes)
        if self.dropout > 0:  # all-zero rows = "no label" for classifier-free guidance
            keep = rng.rand(generator, len(labels)).cpu() >= self.dropout
            onehot = onehot * keep[:, None].float()
        return {"class_labels": onehot.to(device)}

    def resolve(self, value: str | int) -> int:
        """A class index from an index or a class name; ConditionError naming the valid classes."""
        text = str(value)
        if text.lstrip("-").isdigit() and 0 <= int(text) < self.num_classes:
            return int(text)
        if text in self.class_names:
            return self.class_names.index(text)
        names = self.class_names
        shown = ", ".join(names) if len(names) <= 20 else f"{', '.join(names[:20])}, ..."
        raise ConditionError(f"class_labels {value} is not a class of this model; valid: 0..{len(names) - 1} or a "
                             f"class name ({shown})")

    def prepare(self, value: Any, n: int) -> Tensor:
        """One class index per sample from an index/name for all, or one per sample; None: classes in turn."""
        if value is None:
            return self.default_value(n)
        if isinstance(value, Tensor):
            value = value.reshape(-1).tolist()
        items = [value] if isinstance(value, (str, int)) else list(value)
        idx = torch.tensor([self.resolve(v) for v in items], dtype=torch.long)
        if idx.numel() == 1:
            idx = idx.expand(n)
        if idx.numel() != n:
            raise ConditionError(f"got {idx.numel()} class_labels for {n} samples; give one for all or one per sample")
        return idx

    def default_value(self, n: int) -> Tensor:
        return torch.arange(n) % self.num_classes  # classes in turn: a grid row per class

    def sample_inputs(self, net: nn.Module, values: Tensor, device) -> dict[str, Tensor]:
        return {"class_labels": F.one_hot(values, self.num_classes).float().to(device)}

    def null_inputs(self, net: nn.Module, cond: dict[str, Any]) -> dict[str, Any]:
        return {**cond, "class_labels": torch.zeros_like(cond["class_labels"])}

    def preview_values(self, dataset: Any, idx: Tensor) -> Tensor:
        return dataset.labels[idx].clone()

    def describe(self, values: Tensor) -> list[str]:
        return [self.class_names[int(v)] for v in values]
