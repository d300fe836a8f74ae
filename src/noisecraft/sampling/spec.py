"""`SamplingSpec`: how to draw samples, in one place with one set of defaults.

    spec = SamplingSpec(solver="dpmpp_2m", nfe=20, guidance=1.75, seed=0)
    x = run.generate(spec, 16, class_labels=3)

Everything that draws samples takes a spec: `noisecraft sample`, `Run.generate`, evaluation
(during training and `noisecraft eval`), the preview grids of the trainer and the inference tasks.
A run's `[sample]` config section holds the same fields (`SampleConfig.spec()`), so the defaults
below are the only ones in the package.

Sample i of a call is drawn from the generator seeded `seed + i` (noise and, for stochastic
solvers, the per-step noise), so a batch of 4 equals four calls of 1 and a result can be redrawn
alone.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .registry import DEFAULT_SOLVER, SOLVERS

__all__ = ["SamplingSpec", "SpecError"]


class SpecError(ValueError):
    """A sampling setting out of range; the message names the parameter and what is valid."""


@dataclass(frozen=True)
class SamplingSpec:
    solver: str = DEFAULT_SOLVER  # a name in noisecraft.SOLVERS; the registry's default (sample() uses it too)
    nfe: int = 20  # denoiser evaluations per sample (an exact budget); what every preset uses
    sigma_min: float = 0.002  # σ range of the schedule; the last step goes to σ = 0
    sigma_max: float = 80.0
    guidance: float = 1.0  # classifier-free guidance weight w (1 = the plain conditional model)
    guidance_interval: tuple[float, float] | None = None  # guide only for σ in (lo, hi] (Kynkäänniemi et al. 2024)
    seed: int = 0  # sample i is drawn from seed + i

    def __post_init__(self) -> None:
        if self.guidance_interval is not None:
            object.__setattr__(self, "guidance_interval", tuple(float(v) for v in self.guidance_interval))
        self.validate()

    def validate(self) -> "SamplingSpec":
        if self.solver not in SOLVERS:
            raise SpecError(f"solver {self.solver!r} is not a solver; valid: {', '.join(SOLVERS)}")
        if isinstance(self.nfe, bool) or not isinstance(self.nfe, int) or not 1 <= self.nfe <= 10_000:
            raise SpecError(f"nfe {self.nfe!r} is out of range; valid: an integer 1..10000")
        if not (0 < self.sigma_min < self.sigma_max < math.inf):
            raise SpecError(f"sigma_min/sigma_max ({self.sigma_min}, {self.sigma_max}) are out of range; "
                            "valid: 0 < sigma_min < sigma_max < inf")
        if not (math.isfinite(self.guidance) and 0 <= self.guidance < 100):
            raise SpecError(f"guidance {self.guidance} is out of range; valid: 0 <= guidance < 100 (1 = no guidance)")
        iv = self.guidance_interval
        if iv is not None and not (len(iv) == 2 and 0 <= iv[0] < iv[1] and not math.isnan(iv[1])):
            raise SpecError(f"guidance_interval {iv!r} is not valid; valid: None or (lo, hi) with 0 <= lo < hi")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise SpecError(f"seed {self.seed!r} is out of range; valid: an integer 0 <= seed < 2**63")
        return self

    def replace(self, **changes: Any) -> "SamplingSpec":
        """A copy with some fields changed (None values are ignored: 'keep the default')."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def check_seed_range(self, n: int) -> None:
        """Sample i uses seed + i, a 64-bit generator seed: seed + n must stay below 2**63."""
        if self.seed > 2**63 - n:
            raise SpecError(f"seed {self.seed} is out of range for n = {n} samples; valid: 0 <= seed <= 2**63 - n")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["guidance_interval"] = list(self.guidance_interval) if self.guidance_interval is not None else None
        return d
