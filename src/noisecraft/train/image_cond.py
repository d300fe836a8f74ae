"""Image conditions for training (`[cond] image = "mask" | "lowres"`): built from x0 per micro-batch.

The network reads the condition concatenated to its input (`cond_channels` of the net config, set
here from the data's channels): SR3-style super-resolution (Saharia et al. 2021) and Palette-style
inpainting (Saharia et al. 2022). The condition format is `noisecraft.tasks.image_cond`'s, the one
the inference tasks build from user input, so training and inference cannot disagree:

    "mask"    keep = 1 outside 1..mask_boxes random boxes, each side uniform in
              [mask_min, mask_max]·side at a uniform position  ->  image_cond = [x0·keep, keep]
    "lowres"  y = f×f block average of x0 (f = lowres_factor)  ->  image_cond = nearest-upsampled y

Masks are drawn from the trainer's generator (after the class-dropout draws), whose state is in
every checkpoint, so bitwise resume holds. The preconditioning scales x only: the condition
reaches the network unscaled (`Precond` passes **cond through).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..tasks.image_cond import image_cond_channels, lowres_condition, mask_condition
from ..tasks.operators import Downsample
from .config import Config, CondConfig, ConfigError

__all__ = ["net_overrides", "random_box_masks", "build_image_cond", "condition_preview", "write_cond_grid"]


def net_overrides(cfg: Config, channels: int, resolution: int) -> dict[str, Any]:
    """cfg.net.overrides plus cond_channels for cfg.cond; ConfigError for settings that cannot train."""
    overrides = dict(cfg.net.overrides)
    cc = cfg.cond
    if not cc.image:
        return overrides
    if cc.image == "lowres" and resolution % cc.lowres_factor:
        raise ConfigError(f"cond.lowres_factor = {cc.lowres_factor} does not divide the training resolution {resolution}; "
                          f"valid: a divisor of {resolution} that is >= 2")
    if cfg.eval.every > 0:
        raise ConfigError(f"eval.every = {cfg.eval.every}: evaluation during training samples without an image "
                          f"condition, which a cond.image = {cc.image!r} model needs; set eval.every = 0")
    channels_needed = image_cond_channels(cc.image, channels)
    given = overrides.get("cond_channels", channels_needed)
    if given != channels_needed:
        raise ConfigError(f"net.overrides.cond_channels = {given!r} contradicts cond.image = {cc.image!r}, which needs "
                          f"{channels_needed} for {channels}-channel data; drop the override")
    overrides["cond_channels"] = channels_needed
    return overrides


def random_box_masks(n: int, height: int, width: int, cc: CondConfig, generator: torch.Generator | None) -> Tensor:
    """keep masks (n, 1, H, W), 1 = known, 0 inside the union of 1..cc.mask_boxes random boxes."""
    k = cc.mask_boxes

    def sides(size: int) -> tuple[int, int]:
        lo = max(1, round(cc.mask_min * size))
        return lo, max(lo, min(size, round(cc.mask_max * size)))

    (lo_h, hi_h), (lo_w, hi_w) = sides(height), sides(width)
    dev = generator.device if generator is not None else torch.device("cpu")
    bh = torch.randint(lo_h, hi_h + 1, (n, k), generator=generator, device=dev)  # (n, k) box heights
    bw = torch.randint(lo_w, hi_w + 1, (n, k), generator=generator, device=dev)
    top = (torch.rand(n, k, generator=generator, device=dev) * (height - bh + 1)).floor().long()  # uniform in 0..H-h
    left = (torch.rand(n, k, generator=generator, device=dev) * (width - bw + 1)).floor().long()
    count = torch.randint(1, k + 1, (n,), generator=generator, device=dev)  # boxes used per image
    rows = torch.arange(height, device=dev)[None, None, :]  # (1, 1, H)
    cols = torch.arange(width, device=dev)[None, None, :]
    in_rows = (rows >= top[..., None]) & (rows < (top + bh)[..., None])  # (n, k, H)
    in_cols = (cols >= left[..., None]) & (cols < (left + bw)[..., None])  # (n, k, W)
    used = torch.arange(k, device=dev)[None, :] < count[:, None]  # (n, k)
    unknown = (in_rows[..., :, None] & in_cols[..., None, :] & used[..., None, None]).any(dim=1)  # (n, H, W)
    return (~unknown).float()[:, None]


def build_image_cond(cc: CondConfig, x0: Tensor, generator: torch.Generator | None) -> Tensor:
    """The image condition of a micro-batch x0 (B, C, H, W), on x0's device."""
    if cc.image == "mask":
        keep = random_box_masks(x0.shape[0], x0.shape[2], x0.shape[3], cc, generator).to(x0.device, x0.dtype)
        return mask_condition(x0, keep)
    if cc.image == "lowres":
        return lowres_condition(Downsample(cc.lowres_factor)(x0), cc.lowres_factor)
    raise ValueError(f"cond.image = {cc.image!r} builds no image condition; valid: 'mask', 'lowres'")


def condition_preview(kind: str, image_cond: Tensor) -> Tensor:
    """What the model was given, as images (B, C, H, W): the masked image with unknown pixels gray
    (0), or the upsampled low-res image."""
    if kind == "mask":
        image, keep = image_cond[:, :-1], image_cond[:, -1:]
        return image * keep  # unknown pixels are 0: mid-gray in [-1, 1]
    return image_cond


def write_cond_grid(run_dir: Path, cfg: Config, denoiser, ds, num_classes: int, step: int, writer) -> Path:
    """Sample grid of an image-conditioned run: rows = conditions, results, originals, for the first
    sample.per_class training images (fixed masks from a generator of their own)."""
    from ..io import make_grid, save_grid
    from .run import generate

    sc = cfg.sample
    k = min(sc.per_class, len(ds))
    x0 = ds.images[:k]
    gen = torch.Generator().manual_seed(int(cfg.train.seed) + 0x9C0D)  # never the trainer's generator
    image_cond = build_image_cond(cfg.cond, x0, gen)
    labels = ds.labels[:k] if num_classes > 0 else None
    x = generate(denoiser, k, tuple(x0.shape[1:]), seed=cfg.train.seed, class_labels=labels, num_classes=num_classes,
                 guidance=sc.guidance, solver=sc.solver, nfe=sc.nfe, sigma_min=sc.sigma_min, sigma_max=sc.sigma_max,
                 image_cond=image_cond)
    tiles = torch.cat([condition_preview(cfg.cond.image, image_cond), x, x0]).clamp(-1, 1)
    path = save_grid(tiles, run_dir / "samples" / f"step-{step:08d}.png", k, scale=sc.scale)
    if writer is not None:
        writer.add_image("samples", (make_grid(tiles, k) + 1) / 2, step)
    return path
