"""Few-step generators from a trained run: consistency distillation, consistency training and
progressive distillation (docs/distillation.md)."""

from .losses import (
    ConsistencyDistillationLoss,
    ConsistencyTrainingLoss,
    ProgressiveDistillationLoss,
    curriculum_steps,
    karras_levels,
    ode_step,
    pseudo_huber,
)

__all__ = [
    "ConsistencyDistillationLoss", "ConsistencyTrainingLoss", "ProgressiveDistillationLoss",
    "curriculum_steps", "karras_levels", "ode_step", "pseudo_huber",
]
