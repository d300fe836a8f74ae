"""Training the regressor baseline of video prediction (`noisecraft.eval.video_regressor`): the
frames-conditioned config's network, masks, optimizer and schedule, with the regression loss
instead of the denoising loss, through the ordinary trainer (checkpoints, EMA, bit-for-bit resume)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..eval.video_regressor import REGRESSOR_SIGMA, RegressorLoss
from ..tasks.image_cond import MASK_CONDS
from .loop import train

__all__ = ["train_regressor"]


def train_regressor(config: Any, out_dir: str | Path, *, resume: bool = False, **kwargs: Any) -> Any:
    """Train the regressor baseline into the run folder `out_dir` with `noisecraft.train.train`
    (checkpoints, EMA and resume as for any run); config: a frames- or mask-conditioned config
    without other conditions. run.json records {"regressor": {"sigma": REGRESSOR_SIGMA}}."""
    cond = getattr(config, "cond", None)
    if config is not None and (cond is None or cond.image not in MASK_CONDS or config.data.conditional
                               or config.text.encoder):
        raise ValueError("the regressor baseline trains a run with [cond] image = 'frames' (or 'mask') and no other "
                         "condition (data.conditional = false, no text encoder)")
    return train(config, out_dir, resume=resume, loss=RegressorLoss(),
                 run_meta={"regressor": {"sigma": REGRESSOR_SIGMA}}, **kwargs)
