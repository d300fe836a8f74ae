"""The guidance weight as a network input: the condition of a guidance-distilled student.

Meng et al. 2023 ("On Distillation of Guided Diffusion Models", Sec. 4) distill classifier-free
guidance at every weight w of a range into one student that takes w as an input, so one
distillation serves every weight and each sampling step is one call (no unconditional pass).

Training (distillation) draws w per sample uniformly from [lo, hi] with the sample's generator;
sampling feeds the SamplingSpec's guidance weight (`generate` hands it over, see `spec_guidance`)
and refuses one outside the trained range: the student never saw it.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..core import rng
from .base import Batch, ConditionError, Conditioner

__all__ = ["GuidanceWeight", "check_guidance_range"]


def check_guidance_range(value: Any, name: str = "guidance range") -> tuple[float, float]:
    """(lo, hi) from a pair or a "lo,hi" string; ValueError (naming `name`) unless 0 <= lo < hi < 100."""
    try:
        items = value.split(",") if isinstance(value, str) else list(value)
        lo, hi = (float(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"{name} {value!r} is not valid; valid: two weights lo,hi with 0 <= lo < hi < 100 "
                         "(e.g. 1,3)") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi < 100):
        raise ValueError(f"{name} {value!r} is not valid; valid: two weights lo,hi with 0 <= lo < hi < 100 "
                         "(e.g. 1,3)")
    return lo, hi


class GuidanceWeight(Conditioner):
    """w in [lo, hi] per sample: the net input `guidance` (B,) of a net with guidance_embedding."""

    key = "guidance"
    kind = "guidance"
    guided = False  # CFG never extrapolates along it: it *is* the weight
    spec_guidance = True

    def __init__(self, guidance_range: Sequence[float], lr_scale: float = 1.0) -> None:
        self.lo, self.hi = check_guidance_range(guidance_range)
        if isinstance(lr_scale, bool) or not isinstance(lr_scale, (int, float)) or not 0 < lr_scale <= 1000:
            raise ValueError(f"guidance lr_scale {lr_scale!r} is out of range; valid: 0 < lr_scale <= 1000")
        self.lr_scale = float(lr_scale)

    @property
    def range(self) -> tuple[float, float]:
        return self.lo, self.hi

    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "range": [self.lo, self.hi], "lr_scale": self.lr_scale}

    def param_groups(self, net: nn.Module) -> list[dict] | None:
        """The w embedding at optim.lr x lr_scale, the rest at optim.lr: it starts at zero, and Adam moves
        a weight by about lr per step, so at the base rate a short distillation leaves it small."""
        if self.lr_scale == 1.0:
            return None
        own = [p for n, p in net.named_parameters() if n.startswith("guidance_emb.") or ".guidance_emb." in n]
        ids = {id(p) for p in own}
        return [{"params": [p for p in net.parameters() if id(p) not in ids]}, {"params": own, "lr_scale": self.lr_scale}]

    def net_overrides(self) -> dict[str, Any]:
        return {"guidance_embedding": True}

    def train_inputs(self, net: nn.Module, batch: Batch, generator: torch.Generator, device) -> dict[str, Tensor]:
        u = rng.rand(generator, len(batch.idx), dtype=torch.float64).cpu()  # one uniform per sample
        return {"guidance": (self.lo + (self.hi - self.lo) * u).float().to(device)}

    def check(self, w: float) -> float:
        if not (math.isfinite(w) and self.lo <= w <= self.hi):
            raise ConditionError(f"guidance {w:g} is outside the range this student was distilled on; valid: "
                                 f"{self.lo:g} <= guidance <= {self.hi:g}")
        return float(w)

    def prepare(self, value: Any, n: int) -> Tensor:
        """One weight per sample from one weight for all (or one per sample), each inside the range."""
        if value is None:
            return self.default_value(n)
        items = value.reshape(-1).tolist() if isinstance(value, Tensor) else (
            [value] if isinstance(value, (int, float)) else list(value))
        w = torch.tensor([self.check(float(v)) for v in items], dtype=torch.float32)
        if w.numel() == 1:
            w = w.expand(n)
        if w.numel() != n:
            raise ConditionError(f"got {w.numel()} guidance weights for {n} samples; give one for all or one per sample")
        return w

    def default_value(self, n: int) -> Tensor:
        raise ConditionError(f"guidance is required for this guidance-distilled student; valid: {self.lo:g} <= "
                             f"guidance <= {self.hi:g} (sampling passes the SamplingSpec's guidance)")

    def preview_values(self, dataset: Any, idx: Tensor) -> None:
        return None  # previews sample at the run's [sample] guidance (generate fills it in)

    def sample_inputs(self, net: nn.Module, values: Tensor, device) -> dict[str, Tensor]:
        return {"guidance": values.to(device)}
