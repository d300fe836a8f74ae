"""Continuous-parameter conditioning: physical parameters (a length scale, a Reynolds number, ...) as inputs.

A dataset that carries per-example parameters (`param_names`, `param_ranges`, `param_log`,
`param_values` (N, P)) trains a model p(x | θ) that can be asked for any θ inside the trained range,
not only the values it saw: `noisecraft sample RUN --param length=0.07`. Each parameter is mapped to
[-1, 1] over its range (in log space for a `log` parameter, so a length scale is spread evenly over
its decades) and embedded like the time step (`nets.layers.ParamEmbedding`). A value outside the
range is refused, naming the range: the model never saw it and extrapolation is not a product.

Training drops the parameters of a sample with probability `dropout` (a row of NaN, "not given"),
which trains the unconditional model classifier-free guidance extrapolates from; with dropout 0
the model has no unconditional mode and is not guided (`guided` is False).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..core import rng
from .base import Batch, ConditionError, Conditioner

__all__ = ["Parameters", "parse_param_settings"]


def parse_param_settings(items: Sequence[str]) -> dict[str, float]:
    """{"length": 0.07} from ["length=0.07"] (CLI --param); ConditionError naming the bad item."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, text = str(item).partition("=")
        name = name.strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value):
            raise ConditionError(f"params {item!r} is not NAME=VALUE with a finite number (e.g. length=0.07)")
        if name in out:
            raise ConditionError(f"params {name} is given twice; give each parameter once")
        out[name] = value
    return out


class Parameters(Conditioner):
    """Parameters θ (B, P) from the dataset's `param_values`; the net input `params` (B, P), normalized."""

    key = "params"
    kind = "params"

    def __init__(self, names: Sequence[str], ranges: Sequence[Sequence[float]], log: Sequence[bool],
                 dropout: float = 0.0) -> None:
        self.names = [str(n) for n in names]
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"parameter conditioning needs distinct parameter names, got {self.names}")
        if len(ranges) != len(self.names) or len(log) != len(self.names):
            raise ValueError(f"got {len(self.names)} parameter names, {len(ranges)} ranges and {len(log)} log flags; "
                             "give one of each per parameter")
        self.ranges = [(float(lo), float(hi)) for lo, hi in ranges]
        self.log = [bool(v) for v in log]
        for name, (lo, hi), lg in zip(self.names, self.ranges, self.log):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and (lo > 0 or not lg)):
                raise ValueError(f"parameter {name} range [{lo}, {hi}] is not valid; valid: finite lo < hi "
                                 "(lo > 0 for a log-scaled parameter)")
        if not 0 <= dropout < 1:
            raise ValueError(f"params dropout {dropout} is out of range; valid: 0 <= dropout < 1")
        self.dropout = float(dropout)

    @property
    def guided(self) -> bool:  # type: ignore[override]
        return self.dropout > 0  # without dropped examples there is no unconditional model to guide from

    @property
    def num_params(self) -> int:
        return len(self.names)

    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "names": list(self.names), "ranges": [list(r) for r in self.ranges],
                "log": list(self.log), "dropout": self.dropout}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "Parameters":
        return cls(meta["names"], meta["ranges"], meta["log"], float(meta.get("dropout", 0.0)))

    def net_overrides(self) -> dict[str, Any]:
        return {"num_params": self.num_params}

    def normalize(self, values: Tensor) -> Tensor:
        """Physical θ (B, P) -> the net's units (B, P) float32: each range onto [-1, 1] (log ones in log space)."""
        v = values.to(torch.float64)
        cols = []
        for i, ((lo, hi), lg) in enumerate(zip(self.ranges, self.log)):
            x, a, b = (v[:, i].log(), math.log(lo), math.log(hi)) if lg else (v[:, i], lo, hi)
            cols.append(2 * (x - a) / (b - a) - 1)
        return torch.stack(cols, 1).float()

    def train_inputs(self, net: nn.Module, batch: Batch, generator: torch.Generator, device) -> dict[str, Tensor]:
        p = self.normalize(torch.as_tensor(batch.dataset.param_values)[batch.idx])
        if self.dropout > 0:  # NaN rows = "not given" for classifier-free guidance
            drop = rng.rand(generator, len(batch.idx)).cpu() < self.dropout
            p = torch.where(drop[:, None], torch.full_like(p, math.nan), p)
        return {"params": p.to(device)}

    def _check(self, name: str, value: float) -> float:
        lo, hi = self.ranges[self.names.index(name)]
        slack = 1e-6 * max(abs(lo), abs(hi))  # a bound given in float32 (0.2 -> 0.20000000298) is the bound
        if math.isfinite(value) and lo - slack <= value <= hi + slack:
            value = min(max(value, lo), hi)
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ConditionError(f"params {name}={value:g} is outside the range this model was trained on; valid: "
                                 f"{lo:g} <= {name} <= {hi:g}")
        return float(value)

    def _row(self, value: Any) -> list[float]:
        """One sample's θ from {name: value}, "name=value[,name=value]", or a number (one-parameter models)."""
        if isinstance(value, str):
            value = parse_param_settings([s for s in value.split(",") if s.strip()])
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.num_params != 1:
                raise ConditionError(f"params {value!r}: this model takes {self.num_params} parameters "
                                     f"({', '.join(self.names)}); give them by name, e.g. {self.names[0]}=...")
            value = {self.names[0]: float(value)}
        if not isinstance(value, Mapping):
            raise ConditionError(f"params {value!r} is not valid; valid: {{name: value}} or 'name=value' for "
                                 f"{', '.join(self.names)}")
        unknown = [k for k in value if k not in self.names]
        missing = [k for k in self.names if k not in value]
        if unknown or missing:
            what = f"unknown {', '.join(map(str, unknown))}" if unknown else f"missing {', '.join(missing)}"
            given = ",".join(f"{k}={v}" for k, v in value.items())
            raise ConditionError(f"params {given}: {what}; this model takes {', '.join(self.names)} "
                                 f"({self.describe_ranges()})")
        return [self._check(k, float(value[k])) for k in self.names]

    def describe_ranges(self) -> str:
        return ", ".join(f"{lo:g} <= {n} <= {hi:g}" for n, (lo, hi) in zip(self.names, self.ranges))

    def prepare(self, value: Any, n: int) -> Tensor:
        """θ (n, P) float64 from one setting for all samples, one per sample, or a (n, P) / (P,) tensor."""
        if value is None:
            return self.default_value(n)
        if isinstance(value, Tensor):
            t = value.to(torch.float64)
            t = t.reshape(1, -1) if t.ndim <= 1 and t.numel() == self.num_params else t
            if t.ndim != 2 or t.shape[1] != self.num_params:
                raise ConditionError(f"params of shape {tuple(value.shape)} do not fit this model; valid: (n, "
                                     f"{self.num_params}) or ({self.num_params},) for {', '.join(self.names)}")
            rows = [[self._check(k, float(v)) for k, v in zip(self.names, r)] for r in t.tolist()]
        elif isinstance(value, (str, int, float, Mapping)):
            rows = [self._row(value)]
        else:
            rows = [self._row(v) for v in value]
        out = torch.tensor(rows, dtype=torch.float64).reshape(-1, self.num_params)
        if out.shape[0] == 1:
            out = out.expand(n, -1)
        if out.shape[0] != n:
            raise ConditionError(f"got {out.shape[0]} params settings for {n} samples; give one for all or one per sample")
        return out

    def default_value(self, n: int) -> Tensor:
        """Without a value: the first parameter swept evenly over its range (log-evenly for a log one) and
        the others at their range's middle, so a grid shows what the parameter does."""
        u = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.full((1,), 0.5, dtype=torch.float64)
        cols = []
        for i, ((lo, hi), lg) in enumerate(zip(self.ranges, self.log)):
            t = u if i == 0 else torch.full_like(u, 0.5)
            cols.append(torch.exp(math.log(lo) + t * (math.log(hi) - math.log(lo))) if lg else lo + t * (hi - lo))
        return torch.stack(cols, 1)

    def sample_inputs(self, net: nn.Module, values: Tensor, device) -> dict[str, Tensor]:
        return {"params": self.normalize(values).to(device)}

    def null_inputs(self, net: nn.Module, cond: dict[str, Any]) -> dict[str, Any]:
        return {**cond, "params": torch.full_like(cond["params"], math.nan)}

    def preview_values(self, dataset: Any, idx: Tensor) -> Tensor:
        return torch.as_tensor(dataset.param_values)[idx].to(torch.float64).clone()

    def describe(self, values: Tensor) -> list[str]:
        return [",".join(f"{k}={v:.4g}" for k, v in zip(self.names, row)) for row in values.tolist()]
