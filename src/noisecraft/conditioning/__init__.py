"""Conditioners: one object per kind of condition, used alike by training, sampling, previews and tasks.

    conds = conditioners_for_training(cfg, dataset)     # from the config ([data] conditional, [cond], [text])
    conds = conditioners_from_meta(run_json["conditioners"])   # a saved run's
    x = generate(denoiser, n, shape, spec, conds, {"class_labels": 3})   # noisecraft.runs.generate

See `base.Conditioner` for the interface; adding a kind of condition is one new module here
plus one line in `_FROM_META` (and in `conditioners_for_training` if a config section turns it on).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch

from ..config import Config, ConfigError
from .base import Batch, ConditionError, Conditioner
from .guidance import GuidanceWeight, check_guidance_range
from .image import ImageCondition, random_box_masks, random_frame_masks, random_point_masks
from .labels import ClassLabels
from .params import Parameters, parse_param_settings
from .text import TextConditionedNet, TextPrompts, find_text_conditioner

__all__ = [
    "Batch", "ConditionError", "Conditioner", "ClassLabels", "Parameters", "parse_param_settings", "GuidanceWeight", "check_guidance_range", "ImageCondition",
    "TextPrompts", "TextConditionedNet",
    "find_text_conditioner", "random_box_masks", "random_frame_masks", "random_point_masks", "conditioners_for_training", "conditioners_from_meta",
]


def conditioners_for_training(cfg: Config, dataset: Any, *, saved: Sequence[Mapping[str, Any]] | None = None,
                              progress: bool = False) -> list[Conditioner]:
    """The conditioners a config asks for, in the order the trainer draws their randomness
    (class dropout, image masks, captions). `saved`: run.json's entries when resuming."""
    out: list[Conditioner] = []
    if cfg.data.conditional:
        if not dataset.num_classes:
            raise ConfigError(f"data.conditional = true but dataset {cfg.data.source!r} has no class labels; "
                              "set data.conditional=false")
        out.append(ClassLabels(dataset.class_names, cfg.train.class_dropout))
    cc = cfg.cond
    if cc.image:
        side = int(dataset.data.shape[-1])
        _check_image_kind(cc, tuple(dataset.data.shape[1:]), dataset)
        if cc.image == "lowres" and side % cc.lowres_factor:
            raise ConfigError(f"cond.lowres_factor = {cc.lowres_factor} does not divide the training resolution {side}; "
                              f"valid: a divisor of {side} that is >= 2")
        if cfg.eval.every > 0:
            raise ConfigError(f"eval.every = {cfg.eval.every}: evaluation during training samples without an image "
                              f"condition, which a cond.image = {cc.image!r} model needs; set eval.every = 0")
        out.append(ImageCondition(cc.image, dataset.channels, lowres_factor=cc.lowres_factor, mask_min=cc.mask_min,
                                  mask_max=cc.mask_max, mask_boxes=cc.mask_boxes, frames_past_p=cc.frames_past_p,
                                  frames_past_max=cc.frames_past_max, frames_future_p=cc.frames_future_p,
                                  frames_future_max=cc.frames_future_max, points_min=cc.points_min,
                                  points_max=cc.points_max))
    if cc.params:
        names = getattr(dataset, "param_names", None)
        if not names or getattr(dataset, "param_values", None) is None:
            raise ConfigError(f"cond.params = true conditions on the dataset's physical parameters, but "
                              f"{cfg.data.source!r} carries none; valid: a dataset with parameters (grf-scales), "
                              "or cond.params = false")
        out.append(Parameters(names, dataset.param_ranges, dataset.param_log, cc.params_dropout))
    if cfg.text.encoder:
        saved_text = next((m["encoder"] for m in saved or () if m.get("kind") == "text"), None)
        out.append(TextPrompts.for_training(cfg, dataset, saved_text, progress=progress))
    if cc.guidance_range:  # a guidance-distilled student (noisecraft distill --guidance-range): w is an input
        out.append(GuidanceWeight(cc.guidance_range, cc.guidance_lr_scale))
    return out


def _check_image_kind(cc: Any, shape: tuple[int, ...], dataset: Any = None) -> None:
    """cond.image against the data's sample shape: "frames" needs clips (C, T, H, W) and its past/future
    counts must leave a frame to generate; "mask" and "lowres" need images (C, H, W); "previous" needs
    data that holds the state before each example (`dataset.previous`, navier-stokes-forecast)."""
    if cc.image == "previous":
        prev = getattr(dataset, "previous", None)
        if not isinstance(prev, torch.Tensor) or prev.shape != dataset.data.shape:
            raise ConfigError(f"cond.image = 'previous' conditions each example on the state before it, which only "
                              f"forecasting data holds (data.source = 'navier-stokes-forecast'); "
                              f"{getattr(dataset, 'name', '') or 'this data'!r} has none")
        return
    if cc.image == "frames":
        if len(shape) != 4:
            raise ConfigError(f"cond.image = 'frames' keeps whole frames of video clips, but the data has samples of shape "
                              f"{shape}; valid for this data: 'mask' or 'lowres' (images), '' (none)")
        t = shape[1]
        if cc.frames_past_max + cc.frames_future_max >= t:
            raise ConfigError(f"cond.frames_past_max + cond.frames_future_max = {cc.frames_past_max} + "
                              f"{cc.frames_future_max} must be below the clips' {t} frames (a frame must be left to "
                              f"generate); valid: a sum of at most {t - 1}")
    elif len(shape) != 3:
        raise ConfigError(f"cond.image = {cc.image!r} conditions on 2-D images, but the data has samples of shape "
                          f"{shape}; valid: 'frames' for video clips (C, T, H, W), or '' (none)"
                          if len(shape) == 4 else
                          f"cond.image = {cc.image!r} conditions on 2-D images, but the data has samples of shape "
                          f"{shape}; valid for this data: '' (none)")


def _image_from_meta(meta: Mapping[str, Any], device: Any) -> ImageCondition:
    frames = {k: meta[k] for k in ("frames_past_p", "frames_past_max", "frames_future_p", "frames_future_max",
                                   "points_min", "points_max") if k in meta}
    return ImageCondition(meta["image"], int(meta["channels"]), lowres_factor=int(meta["lowres_factor"]),
                          mask_min=float(meta["mask_min"]), mask_max=float(meta["mask_max"]),
                          mask_boxes=int(meta["mask_boxes"]), **frames)


_FROM_META: dict[str, Callable[[Mapping[str, Any], Any], Conditioner]] = {
    "class": lambda m, device: ClassLabels(m["class_names"], float(m.get("dropout", 0.0))),
    "params": lambda m, device: Parameters.from_meta(m),
    "image": _image_from_meta,
    "text": lambda m, device: TextPrompts.from_meta(m, device=device),
    "guidance": lambda m, device: GuidanceWeight(m["range"], float(m.get("lr_scale", 1.0))),
}


def conditioners_from_meta(entries: Sequence[Mapping[str, Any]], *, device: Any = "cpu") -> list[Conditioner]:
    """Rebuild conditioners from their `meta()` (run.json); ValueError for an unknown kind."""
    out = []
    for m in entries:
        kind = m.get("kind") if isinstance(m, Mapping) else None
        if kind not in _FROM_META:
            raise ValueError(f"unknown conditioner {kind!r} in run.json; valid: {', '.join(_FROM_META)}")
        out.append(_FROM_META[kind](m, device))
    return out
