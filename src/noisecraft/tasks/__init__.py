"""Inference tasks as small functions around `sample()` or Denoiser -> Denoiser wrappers.

    inpaint(denoiser, image, mask, ...)                 RePaint resampling, mask = 1 on known pixels
    img2img(denoiser, image, strength, ...)             SDEdit
    solve_inverse_problem(denoiser, A, y, method=...)   DPS / range-space projection; operators below
    super_resolve(denoiser, low_res, factor, ...)       the same with Downsample(factor), or a low-res-conditioned model
    mask_condition / lowres_condition                   the image_cond of mask- / low-res-conditioned models
    invert(denoiser, image, ...) / interpolate(a, b, t) ODE inversion and slerp of noise
    predict_frames / inpaint_frames(denoiser, clips, keep)  video prediction / interpolation (inpainting in time)
"""

from .frames import check_keep_frames, frame_mask, inpaint_frames, parse_keep_frames, predict_frames, read_kept_frames
from .img2img import check_strength, img2img, strength_to_sigma
from .image_cond import IMAGE_CONDS, MASK_CONDS, image_cond_channels, image_cond_of, lowres_condition, mask_condition
from .inpaint import INPAINT_METHODS, INPAINT_SOLVERS, check_mask, inpaint, repaint_walk
from .inverse import METHODS, SR_METHODS, dps, projection, solve_inverse_problem, super_resolve, upscale_factor
from .inversion import INVERTIBLE_SOLVERS, interpolate, invert
from .operators import Blur, Downsample, LinearOperator, Masking, SparsePoints, gaussian_kernel

__all__ = [
    "img2img", "strength_to_sigma", "check_strength",
    "inpaint", "repaint_walk", "check_mask", "INPAINT_SOLVERS", "INPAINT_METHODS",
    "dps", "projection", "solve_inverse_problem", "super_resolve", "upscale_factor", "METHODS", "SR_METHODS",
    "IMAGE_CONDS", "MASK_CONDS", "image_cond_channels", "image_cond_of", "lowres_condition", "mask_condition",
    "predict_frames", "inpaint_frames", "frame_mask", "check_keep_frames", "parse_keep_frames", "read_kept_frames",
    "invert", "interpolate", "INVERTIBLE_SOLVERS",
    "LinearOperator", "Masking", "SparsePoints", "Downsample", "Blur", "gaussian_kernel",
]
