"""Guidance as Denoiser -> Denoiser wrappers: they work with every sampler.

    cfg(denoiser, w, interval=..., rescale=..., uncond=...)   classifier-free guidance
    autoguidance(denoiser, guide_denoiser, w)                  guide with a worse model
    classifier_guidance(denoiser, classifier, w)               noise-aware classifier gradients
"""

from .autoguidance import autoguidance
from .cfg import cfg, classifier_free_guidance, null_labels, zero_class_labels
from .classifier import NoisyClassifierLoss, class_log_likelihood, classifier_guidance
from .combine import extrapolate

__all__ = [
    "cfg", "classifier_free_guidance", "null_labels", "zero_class_labels",
    "autoguidance", "classifier_guidance", "class_log_likelihood", "NoisyClassifierLoss", "extrapolate",
]
