"""Training: the loop, its state and hooks, EMA and post-hoc EMA tracks, the demo. Writes runs.

    cfg = load_config("digits", ["train.steps=500"])   # noisecraft.config
    result = train(cfg, "runs/digits")                  # or train(None, "runs/digits", resume=True)
    run = Run.open("runs/digits")                        # noisecraft.runs: reading is not training's job
"""

from .build import build_dataset, build_net, make_loss
from .ema import EMA, PowerEMA
from .hooks import Hook, StepInfo
from .loop import RunResult, TrainingError, train
from .state import DataOrder, TrainState
from .step import apply_update, learning_rate, train_step

__all__ = [
    "build_dataset", "build_net", "make_loss", "EMA", "PowerEMA", "Hook", "StepInfo", "RunResult", "TrainingError",
    "train", "DataOrder", "TrainState", "apply_update", "learning_rate", "train_step",
]
