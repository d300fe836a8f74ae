"""Training image-conditioned models ([cond] image = "mask" | "lowres"): the conditions built per
micro-batch, config checks, bitwise resume, and the runs' denoisers in the tasks."""

from __future__ import annotations

import pytest
import torch

from noisecraft.sampling import seeded_generators
from noisecraft.tasks import Downsample, image_cond_of, inpaint, super_resolve
from noisecraft.runs.checkpoint import flatten_state, latest_checkpoint, load_checkpoint
from noisecraft.config import ConfigError, load_config
from noisecraft.conditioning import ImageCondition, random_box_masks
from noisecraft.train import train
from noisecraft.runs import Run


def test_random_boxes_have_the_configured_sizes():
    cc = dict(boxes=1, side_min=0.25, side_max=0.5)
    keep = random_box_masks(500, 16, 16, **cc, generator=torch.Generator().manual_seed(0))
    assert keep.shape == (500, 1, 16, 16) and set(keep.unique().tolist()) == {0.0, 1.0}
    hole = keep[:, 0] == 0
    rows, cols = hole.any(2).sum(1), hole.any(1).sum(1)  # the one box's height and width
    assert int(rows.min()) == 4 and int(rows.max()) == 8 and int(cols.min()) == 4 and int(cols.max()) == 8
    assert torch.equal(hole.sum((1, 2)), rows * cols)  # a single rectangle per image
    # every position is used: the hole covers each pixel in some image, corners included
    assert bool(hole.any(0).all())
    again = random_box_masks(500, 16, 16, **cc, generator=torch.Generator().manual_seed(0))
    assert torch.equal(keep, again)


def test_several_boxes_cover_more():
    one = random_box_masks(400, 16, 16, boxes=1, side_min=0.25, side_max=0.75, generator=torch.Generator().manual_seed(1))
    many = random_box_masks(400, 16, 16, boxes=4, side_min=0.25, side_max=0.75, generator=torch.Generator().manual_seed(1))
    assert float((many == 0).float().mean()) > float((one == 0).float().mean()) + 0.1


def test_conditions_from_x0():
    x0 = torch.rand(6, 3, 8, 8) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    cond = ImageCondition("mask", x0.shape[1]).build(x0, gen)
    keep = cond[:, 3:]
    assert cond.shape == (6, 4, 8, 8) and torch.equal(cond[:, :3], x0 * keep)
    low = ImageCondition("lowres", x0.shape[1], lowres_factor=4).build(x0, None)
    assert low.shape == x0.shape
    assert torch.allclose(Downsample(4)(low), Downsample(4)(x0))  # the block means of x0, nothing more
    assert torch.equal(low[..., :4, :4], low[..., :1, :1].expand(6, 3, 4, 4))


@pytest.mark.parametrize("overrides, match", [
    (["cond.image=box"], "cond.image = 'box' is not valid; valid: '' \\(none\\), 'mask', 'lowres'"),
    (["cond.lowres_factor=1"], "cond.lowres_factor = 1 is out of range"),
    (["cond.mask_min=0.8", "cond.mask_max=0.5"], "cond.mask_max = 0.5 is out of range"),
    (["cond.mask_boxes=0"], "cond.mask_boxes = 0 is out of range"),
])
def test_bad_cond_values_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config("tiny", overrides)


@pytest.mark.parametrize("overrides, match", [
    (["cond.image=lowres", "cond.lowres_factor=3"], "lowres_factor = 3 does not divide the training resolution 8"),
    (["cond.image=mask", "eval.every=5"], "eval.every = 5: .*set eval.every = 0"),
    (["cond.image=mask", "net.overrides.cond_channels=1"], "net.overrides.cond_channels = 1 contradicts the conditioning, which needs 2"),
])
def test_settings_that_cannot_train_fail_before_the_run_starts(tiny_config, tmp_path, small_ds, overrides, match):
    with pytest.raises(ConfigError, match=match):
        train(tiny_config(*overrides), tmp_path / "r", dataset=small_ds, progress=False)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kind", ["mask", "lowres"])
def test_resume_is_bitwise_identical_with_image_conditions(tiny_config, tmp_path, small_ds, kind):
    cfg = tiny_config(f"cond.image={kind}", "cond.lowres_factor=4", "train.steps=6", "ema.phema_every=0")
    straight = train(cfg, tmp_path / "a", dataset=small_ds, progress=False)
    train(cfg, tmp_path / "b", dataset=small_ds, progress=False, stop_at=3)
    rest = train(None, tmp_path / "b", resume=True, dataset=small_ds, progress=False)
    assert straight.losses[3:] == rest.losses
    (sa, a), (sb, b) = (load_checkpoint(latest_checkpoint(tmp_path / r / "checkpoints")) for r in ("a", "b"))
    ta, ja = flatten_state(a)
    tb, jb = flatten_state(b)
    assert sa == sb and ja == jb and all(torch.equal(ta[k], tb[k]) for k in ta)
    # the grid shows conditions | results | originals
    assert (tmp_path / "a" / "samples" / "step-00000006.png").is_file()


@pytest.fixture(scope="module")
def cond_runs(tmp_path_factory):
    """Two tiny 8x8 digit runs (4 steps): mask- and low-res-conditioned (factor 2)."""
    runs = {}
    base = ["train.steps=4", "train.batch_size=8", "sample.nfe=2", "sample.per_class=2", "ema.phema_every=0"]
    for kind in ("mask", "lowres"):
        out = tmp_path_factory.mktemp("runs") / kind
        train(load_config("tiny", base + [f"cond.image={kind}"]), out, progress=False)
        runs[kind] = out
    return runs


def test_run_denoisers_are_recognised_and_used_by_the_tasks(cond_runs):
    info = Run.open(cond_runs["mask"])
    den = info.denoiser()
    assert (image_cond_of(den), info.conditioner("image_cond").image, den.net.cfg.cond_channels) == (("mask", 0), "mask", 2)
    image = torch.rand(2, 1, 8, 8) * 2 - 1
    keep = torch.ones(1, 1, 8, 8)
    keep[..., 2:6, 2:6] = 0
    out = inpaint(den, image, keep, solver="dpmpp_2m", nfe=3, generator=seeded_generators([0, 1]))  # auto -> model
    assert out.shape == image.shape and torch.equal(out[..., :2, :], image[..., :2, :])
    with pytest.raises(ValueError, match="needs a low-res-conditioned denoiser.*mask condition"):
        super_resolve(den, Downsample(2)(image), 2, method="model")

    info = Run.open(cond_runs["lowres"])
    den = info.denoiser()
    assert (image_cond_of(den), info.conditioner("image_cond").lowres_factor, den.net.cfg.cond_channels) == (("lowres", 0), 2, 1)
    up = super_resolve(den, Downsample(2)(image), 2, nfe=3)  # auto -> model
    assert up.shape == image.shape and bool(up.isfinite().all())
    with pytest.raises(ValueError, match="needs a mask-conditioned denoiser.*low-res condition"):
        inpaint(den, image, keep, method="model")
    assert Run.open(cond_runs["lowres"]).config.cond.lowres_factor == 2
