"""Training: config dataclasses, the loop, EMA and post-hoc EMA, checkpoints, run folders, the demo.

    cfg = load_config("digits", ["train.steps=500"])
    result = train(cfg, "runs/digits")                 # or train(None, "runs/digits", resume=True)
    denoiser, info = load_denoiser("runs/digits")       # EMA weights by default
    images = generate(denoiser, 8, (1, 16, 16), class_labels=3, num_classes=10, guidance=2.0)
"""

from .checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import (
    Config,
    ConfigError,
    DataConfig,
    EMAConfig,
    EvalConfig,
    LossConfig,
    NetConfig,
    OptimConfig,
    ProcessConfig,
    SampleConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    load_config,
    preset_names,
)
from .ema import EMA
from .loop import DataOrder, RunResult, TrainingError, learning_rate, train
from .phema import PowerEMA, exp_to_std, power_beta, reconstruct, solve_posthoc_coefficients, std_to_exp
from .run import RunError, RunInfo, generate, is_run, load_denoiser, read_run, reconstruct_phema, resolve_class

__all__ = [
    "CheckpointError", "latest_checkpoint", "load_checkpoint", "save_checkpoint",
    "Config", "ConfigError", "DataConfig", "EMAConfig", "EvalConfig", "LossConfig", "NetConfig", "OptimConfig", "ProcessConfig",
    "SampleConfig", "TrainConfig", "apply_overrides", "config_from_dict", "load_config", "preset_names",
    "EMA", "DataOrder", "RunResult", "TrainingError", "learning_rate", "train",
    "PowerEMA", "exp_to_std", "power_beta", "reconstruct", "solve_posthoc_coefficients", "std_to_exp",
    "RunError", "RunInfo", "generate", "is_run", "load_denoiser", "read_run", "reconstruct_phema", "resolve_class",
]
