"""Bridges to other libraries' models. diffusers is optional: `pip install noisecraft[diffusers]`."""

from .diffusers import PREDICTION_TYPES, eps_model_to_denoiser, from_diffusers, process_from_scheduler

__all__ = ["PREDICTION_TYPES", "eps_model_to_denoiser", "from_diffusers", "process_from_scheduler"]
