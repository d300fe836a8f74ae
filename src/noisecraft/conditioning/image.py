"""Concatenation conditioning on an image built from x0 (`[cond] image = "mask" | "lowres" | "frames"`) or held
by the data (`"previous"`).

The network reads the condition concatenated to its input (`cond_channels` of the net config):
SR3-style super-resolution (Saharia et al. 2021) and Palette-style inpainting (Saharia et al.
2022). The format is `noisecraft.tasks.image_cond`'s, the one the inference tasks build from a
user's input, so training and inference cannot disagree:

    "mask"    keep = 1 outside 1..mask_boxes random boxes, each side uniform in
              [mask_min, mask_max]·side at a uniform position  ->  image_cond = [x0·keep, keep]
    "lowres"  y = f×f block average of x0 (f = lowres_factor)  ->  image_cond = nearest-upsampled y
    "frames"  (video) keep = 1 on whole frames of the clip (`random_frame_masks`, MCVD's masking,
              Voleti et al. 2022): with prob. frames_past_p the first k frames, k uniform in
              1..frames_past_max, and independently with prob. frames_future_p the last j frames,
              j uniform in 1..frames_future_max; neither = nothing kept (unconditional
              generation)  ->  image_cond = [x0·keep, keep] as for "mask"
    "points"  (fields) keep = 1 on scattered pixels, each kept with probability f, f log-uniform in
              [points_min, points_max] per example (`random_point_masks`): sparse point observations,
              as `noisecraft reconstruct` gives them  ->  image_cond = [x0·keep, keep] as for "mask"
    "previous" (forecasting) the state one interval before x0, which the data holds
              (`ForecastDataset.previous`, navier-stokes-forecast)  ->  image_cond = that state; a
              rollout feeds each prediction back as the next condition (`noisecraft.fields.forecast`)

Masks are drawn from each sample's generator (keyed by the step and its position), so bitwise
resume holds and the draw does not depend on the process count. The condition is never dropped (it is not guided): guidance applies to the other
conditions of the model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..tasks.image_cond import image_cond_channels, lowres_condition, mask_condition
from ..core import rng
from ..tasks.operators import Downsample
from .base import Batch, ConditionError, Conditioner

__all__ = ["ImageCondition", "random_box_masks", "random_frame_masks", "random_point_masks"]

PREVIEW_SEED = 0x9C0D  # previews draw their masks from a generator of their own, never the trainer's


def random_box_masks(n: int, height: int, width: int, *, boxes: int, side_min: float, side_max: float,
                     generator: rng.Generators) -> Tensor:
    """keep masks (n, 1, H, W), 1 = known, 0 inside the union of 1..boxes random boxes (`generator`:
    one, or one per mask)."""
    k = boxes

    def sides(size: int) -> tuple[int, int]:
        lo = max(1, round(side_min * size))
        return lo, max(lo, min(size, round(side_max * size)))

    (lo_h, hi_h), (lo_w, hi_w) = sides(height), sides(width)
    dev = rng.generator_device(generator) or torch.device("cpu")
    bh = rng.randint(generator, lo_h, hi_h + 1, n, k)  # (n, k) box heights
    bw = rng.randint(generator, lo_w, hi_w + 1, n, k)
    top = (rng.rand(generator, n, k) * (height - bh + 1)).floor().long()  # uniform in 0..H-h
    left = (rng.rand(generator, n, k) * (width - bw + 1)).floor().long()
    count = rng.randint(generator, 1, k + 1, n)  # boxes used per image
    rows = torch.arange(height, device=dev)[None, None, :]  # (1, 1, H)
    cols = torch.arange(width, device=dev)[None, None, :]
    in_rows = (rows >= top[..., None]) & (rows < (top + bh)[..., None])  # (n, k, H)
    in_cols = (cols >= left[..., None]) & (cols < (left + bw)[..., None])  # (n, k, W)
    used = torch.arange(k, device=dev)[None, :] < count[:, None]  # (n, k)
    unknown = (in_rows[..., :, None] & in_cols[..., None, :] & used[..., None, None]).any(dim=1)  # (n, H, W)
    return (~unknown).float()[:, None]


def random_point_masks(n: int, height: int, width: int, *, fraction_min: float, fraction_max: float,
                       generator: rng.Generators) -> Tensor:
    """keep masks (n, 1, H, W), 1 = an observed pixel: each pixel kept independently with probability f,
    f = exp(U(log fraction_min, log fraction_max)) drawn per mask (`generator`: one, or one per mask)."""
    if not 0 < fraction_min <= fraction_max <= 1:
        raise ValueError(f"need 0 < fraction_min <= fraction_max <= 1, got {fraction_min!r}, {fraction_max!r}")
    lo, hi = math.log(fraction_min), math.log(fraction_max)
    f = torch.exp(lo + (hi - lo) * rng.rand(generator, n, 1, 1, 1))  # (n, 1, 1, 1)
    return (rng.rand(generator, n, 1, height, width) < f).float()


def random_frame_masks(n: int, frames: int, *, past_p: float, past_max: int, future_p: float, future_max: int,
                       generator: rng.Generators) -> Tensor:
    """keep flags (n, T) float, 1 = a kept frame: the first k frames with probability past_p (k uniform
    in 1..past_max) and, independently, the last j with probability future_p (j uniform in
    1..future_max); MCVD's past/future masking (Voleti et al. 2022, Sec. 3) with a random count.
    Four numbers are drawn per mask whatever the options, so a mask depends only on its generator.
    past_max + future_max < frames, so at least one frame is always left to generate."""
    if not past_max + future_max < frames:
        raise ValueError(f"past_max ({past_max}) + future_max ({future_max}) must be below the clip's {frames} frames "
                         "so that a frame is always left to generate")
    u = rng.rand(generator, n, 2)  # (n, 2): the past and future coin flips
    k = rng.randint(generator, 1, past_max + 1, n)  # frames kept at the start, if the past is kept
    j = rng.randint(generator, 1, future_max + 1, n)
    t = torch.arange(frames, device=u.device)[None, :]  # (1, T)
    past = (t < k[:, None]) & (u[:, :1] < past_p)
    future = (t >= frames - j[:, None]) & (u[:, 1:] < future_p)
    return (past | future).float()


class ImageCondition(Conditioner):
    key = "image_cond"
    kind = "image"
    guided = False

    def __init__(self, image: str, channels: int, *, lowres_factor: int = 2, mask_min: float = 0.25,
                 mask_max: float = 0.75, mask_boxes: int = 1, frames_past_p: float = 0.5, frames_past_max: int = 4,
                 frames_future_p: float = 0.5, frames_future_max: int = 4, points_min: float = 0.005,
                 points_max: float = 0.1) -> None:
        if image not in ("mask", "lowres", "frames", "previous", "points"):
            raise ValueError(f"image condition {image!r} is not valid; valid: 'mask', 'lowres', 'frames', 'previous', 'points'")
        self.image, self.channels = image, int(channels)
        self.lowres_factor, self.mask_min, self.mask_max, self.mask_boxes = lowres_factor, mask_min, mask_max, mask_boxes
        self.frames_past_p, self.frames_past_max = float(frames_past_p), int(frames_past_max)
        self.frames_future_p, self.frames_future_max = float(frames_future_p), int(frames_future_max)
        self.points_min, self.points_max = float(points_min), float(points_max)

    @property
    def cond_channels(self) -> int:
        return image_cond_channels(self.image, self.channels)

    def meta(self) -> dict[str, Any]:
        out = {"kind": self.kind, "image": self.image, "channels": self.channels, "lowres_factor": self.lowres_factor,
               "mask_min": self.mask_min, "mask_max": self.mask_max, "mask_boxes": self.mask_boxes}
        if self.image == "frames":  # only frames runs record these (older run.json files lack them)
            out.update(frames_past_p=self.frames_past_p, frames_past_max=self.frames_past_max,
                       frames_future_p=self.frames_future_p, frames_future_max=self.frames_future_max)
        if self.image == "points":
            out.update(points_min=self.points_min, points_max=self.points_max)
        return out

    def net_overrides(self) -> dict[str, Any]:
        return {"cond_channels": self.cond_channels}

    def build(self, x0: Tensor, generator: rng.Generators) -> Tensor:
        """The condition of a batch x0 (B, C, H, W) (a clip batch (B, C, T, H, W) for "frames"), on x0's device."""
        if self.image == "previous":
            raise ValueError("a 'previous' condition is the state before x0, which the data holds; it cannot be built "
                             "from x0 (use the dataset's `previous`)")
        if self.image == "frames":
            keep = random_frame_masks(x0.shape[0], x0.shape[2], past_p=self.frames_past_p, past_max=self.frames_past_max,
                                      future_p=self.frames_future_p, future_max=self.frames_future_max,
                                      generator=generator)
            keep = keep.to(x0.device, x0.dtype)[:, None, :, None, None].expand(-1, 1, -1, *x0.shape[3:])
            return mask_condition(x0, keep)
        if self.image == "points":
            keep = random_point_masks(x0.shape[0], x0.shape[-2], x0.shape[-1], fraction_min=self.points_min,
                                      fraction_max=self.points_max, generator=generator)
            return mask_condition(x0, keep.to(x0.device, x0.dtype))
        if self.image == "mask":
            keep = random_box_masks(x0.shape[0], x0.shape[-2], x0.shape[-1], boxes=self.mask_boxes,
                                    side_min=self.mask_min, side_max=self.mask_max, generator=generator)
            return mask_condition(x0, keep.to(x0.device, x0.dtype))
        return lowres_condition(Downsample(self.lowres_factor)(x0), self.lowres_factor)

    def train_inputs(self, net: nn.Module, batch: Batch, generator: torch.Generator, device) -> dict[str, Tensor]:
        if self.image == "previous":
            prev = batch.dataset.previous[batch.idx.cpu()]
            return {"image_cond": prev.to(batch.x0.device, batch.x0.dtype, non_blocking=True)}
        return {"image_cond": self.build(batch.x0, generator)}

    def prepare(self, value: Any, n: int) -> Tensor:
        if value is None:
            return self.default_value(n)
        if not isinstance(value, Tensor) or value.ndim < 3 or value.shape[-3 if value.ndim == 3 else 1] != self.cond_channels:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            axes = "T, H, W" if self.image == "frames" else "H, W"
            if self.image == "previous":
                raise ConditionError(f"image_cond must be the current state, a tensor (n, {self.cond_channels}, H, W), for "
                                     f"this forecasting model, got {got}")
            builder = "lowres_condition" if self.image == "lowres" else "mask_condition"
            raise ConditionError(f"image_cond must be a tensor (n, {self.cond_channels}, {axes}) for this {self.image}-"
                                 f"conditioned model (build it with noisecraft.tasks.{builder}), got {got}")
        value = value.unsqueeze(0) if value.ndim == 3 else value
        if value.shape[0] == 1:
            value = value.expand(n, *value.shape[1:])
        if value.shape[0] != n:
            raise ConditionError(f"image_cond has {value.shape[0]} rows for {n} samples; give one for all or one per sample")
        return value

    def default_value(self, n: int) -> Tensor:
        use = {"mask": "noisecraft inpaint RUN --image ... --mask ...` (or tasks.inpaint",
               "frames": "noisecraft predict RUN --video ... --keep K` or `noisecraft interpolate` (or "
                         "tasks.predict_frames / inpaint_frames",
               "lowres": "noisecraft upscale RUN --image ...` (or tasks.super_resolve",
               "previous": "noisecraft forecast RUN --state STATE.npz` (or fields.forecast",
               "points": "noisecraft reconstruct RUN --observations OBS.npz` (or fields.reconstruct"}[self.image]
        raise ConditionError(f"a {self.image}-conditioned model ([cond] image = {self.image!r}) needs a condition "
                             f"to draw from; use `{use})")

    def sample_inputs(self, net: nn.Module, values: Tensor, device) -> dict[str, Tensor]:
        return {"image_cond": values.to(device)}

    def preview_values(self, dataset: Any, idx: Tensor) -> Tensor:
        if self.image == "previous":
            return dataset.previous[idx]
        gen = torch.Generator().manual_seed(PREVIEW_SEED)
        return self.build(dataset.data[idx], gen)

    def preview_rows(self, values: Tensor) -> Tensor:
        """What the model was given: the masked image or clip (unknown pixels 0, mid-gray), the upsampled low-res
        image, or the state before."""
        if self.image in ("mask", "frames", "points"):
            return values[:, :-1] * values[:, -1:]
        return values
