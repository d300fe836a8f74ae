"""The settings of one `noisecraft eval RUN`, shared by every modality's evaluation protocol.

`evaluate_run` takes them as keywords (its documented API) and hands one `RunEvalOptions` to the
protocol the run's modality names (`report.RUN_EVALUATIONS`), so a new option is added here once
instead of to every protocol's signature. A protocol that cannot honour an option refuses it with
an `EvalError` (e.g. `sweep_nfe` for audio), never ignores it silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["RunEvalOptions", "quiet", "sample_count"]


def sample_count(n: Any, floor_n: int, unit: str, spec: Any) -> int:
    """How many samples a protocol draws: `n` (None: the size of its real floor set, `floor_n`), an integer
    in 2..1000000 that the sampling `spec`'s seed range can hold; otherwise an `EvalError` naming `n`."""
    from ..sampling import SpecError
    from .features import EvalError

    n = floor_n if n is None else n
    if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= 1_000_000:
        raise EvalError(f"n {n!r} is out of range; valid: 2..1000000 (default: the floor's {floor_n} {unit})")
    try:
        spec.check_seed_range(n)
    except SpecError as e:
        raise EvalError(str(e)) from None
    return n


def quiet(_: str) -> None:
    """An echo that prints nothing."""


@dataclass(frozen=True)
class RunEvalOptions:
    """n / metrics: None = the protocol's default. solver / nfe / guidance: None = the run's [sample].
    features: a fitted-features folder, a weight file, "inception" or an extractor (None = the
    built-in default). nll_n / nll_levels: the image likelihood metric's held-out images and levels.
    cache_dir / use_cache: the feature cache. echo: progress lines for people."""

    n: int | None = None
    metrics: str | Sequence[str] | None = None
    solver: str | None = None
    nfe: int | None = None
    guidance: float | None = None
    seed: int = 0
    weights: str = "ema"
    features: Any = None
    sweep_nfe: Sequence[int] = ()
    nll_n: int = 64
    nll_levels: int = 256
    kid_subsets: int = 100
    physics: float | None = None  # field runs with a PDE residual (darcy): physics guidance ζ_p (None: off)
    physics_sigma: float = math.inf  # ... acting at σ <= this
    cache_dir: str | Path | None = None
    use_cache: bool = True
    echo: Callable[[str], None] = quiet
