"""Saved runs: the trainer writes them; evaluation, the CLI, tasks and the web app read them.

    run = Run.open("runs/demo")
    images = run.generate(run.spec(seed=0), 8, class_labels=3)
"""

from .checkpoint import (CheckpointError, CheckpointWriteError, atomic_write_bytes, atomic_write_text,
                         latest_checkpoint, load_checkpoint, save_checkpoint)
from .errors import RunError
from .generation import conditioned, generate, prepare_values
from .phema import exp_to_std, power_beta, reconstruct, solve_posthoc_coefficients, std_to_exp
from .run import LATENT_AE_FOLDER, READABLE_FORMATS, RUN_FORMAT, Run, build_denoiser, is_run
from .weights import best_path, list_snapshots, load_weights, phema_path, reconstruct_phema, weight_choices

__all__ = [
    "Run", "RunError", "LATENT_AE_FOLDER", "RUN_FORMAT", "READABLE_FORMATS", "is_run", "build_denoiser", "generate", "prepare_values", "conditioned",
    "CheckpointError", "CheckpointWriteError", "atomic_write_bytes", "atomic_write_text", "latest_checkpoint",
    "load_checkpoint", "save_checkpoint", "exp_to_std", "power_beta", "reconstruct", "solve_posthoc_coefficients",
    "std_to_exp", "best_path", "list_snapshots", "load_weights", "phema_path", "reconstruct_phema", "weight_choices",
]
