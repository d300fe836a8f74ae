"""Masked-frame conditioning (`[cond] image = "frames"`, MCVD-style): the frame-mask sampler draws
whole-frame prefix/suffix masks with the documented probabilities and is deterministic per
generator; a tiny frames-conditioned video run trains, resumes bit for bit and predicts in one
sampler pass with the kept frames exact; the regressor baseline trains on the same conditions;
bad options are one-line errors."""

from __future__ import annotations

import pytest
import torch

from noisecraft.conditioning import ImageCondition, random_frame_masks
from noisecraft.config import ConfigError, load_config
from noisecraft.core import rng
from noisecraft.eval.video_regressor import RegressorLoss, regress
from noisecraft.train.regressor import train_regressor
from noisecraft.runs import Run
from noisecraft.tasks import MASK_CONDS, image_cond_of, inpaint_frames, predict_frames
from noisecraft.train import train

FRAMES = ["data.source=moving-digits", "data.resolution=16", "data.options.frames=4", "data.options.num_clips=32",
          "data.conditional=false", "train.batch_size=4", "sample.nfe=2", "sample.per_class=1", "cond.image=frames",
          "cond.frames_past_max=2", "cond.frames_future_max=1", "ema.phema_every=0"]


def _masks(n: int, seed: int, **kw) -> torch.Tensor:
    opts = dict(frames=8, past_p=0.7, past_max=3, future_p=0.4, future_max=2) | kw
    frames = opts.pop("frames")
    return random_frame_masks(n, frames, generator=torch.Generator().manual_seed(seed), **opts)


def test_frame_masks_are_a_prefix_and_a_suffix_with_the_documented_probabilities():
    m = _masks(20000, 0)
    assert m.shape == (20000, 8) and set(m.unique().tolist()) <= {0.0, 1.0}
    past = m[:, 0] == 1
    future = m[:, -1] == 1
    k = m[:, :4].cumprod(1).sum(1)  # length of the kept prefix (at most past_max = 3)
    j = m.flip(1)[:, :4].cumprod(1).sum(1)
    assert torch.equal(m.sum(1), k + j)  # kept frames are exactly one prefix and one suffix
    assert abs(past.float().mean() - 0.7) < 0.015 and abs(future.float().mean() - 0.4) < 0.015
    assert abs((past & future).float().mean() - 0.7 * 0.4) < 0.015  # independent
    assert abs((~past & ~future).float().mean() - 0.3 * 0.6) < 0.015  # nothing kept: unconditional
    for count, most in ((k[past], 3), (j[future], 2)):  # uniform in 1..max
        shares = torch.bincount(count.long(), minlength=most + 1)[1:].float() / len(count)
        assert len(shares) == most and (shares - 1 / most).abs().max() < 0.02
    assert (m.sum(1) <= 5).all()  # never all frames


def test_frame_masks_are_deterministic_per_generator():
    assert torch.equal(_masks(64, 3), _masks(64, 3))
    assert not torch.equal(_masks(64, 3), _masks(64, 4))
    gens = rng.sample_generators(7, range(6))
    a = random_frame_masks(6, 8, past_p=0.5, past_max=3, future_p=0.5, future_max=2, generator=gens)
    b = random_frame_masks(2, 8, past_p=0.5, past_max=3, future_p=0.5, future_max=2,
                           generator=rng.sample_generators(7, range(4, 6)))
    assert torch.equal(a[4:], b)  # a mask depends only on its own generator (micro-batch split invariant)
    assert not random_frame_masks(50, 8, past_p=0, past_max=3, future_p=0, future_max=2, generator=gens[0]).any()
    with pytest.raises(ValueError, match=r"past_max \(3\) \+ future_max \(2\) must be below the clip's 5 frames"):
        random_frame_masks(1, 5, past_p=1, past_max=3, future_p=1, future_max=2, generator=None)


def test_the_condition_masks_whole_frames_of_the_clip():
    x0 = torch.rand(6, 1, 8, 4, 4) * 2 - 1
    c = ImageCondition("frames", 1, frames_past_p=0.6, frames_past_max=3, frames_future_p=0.6, frames_future_max=2)
    cond = c.build(x0, torch.Generator().manual_seed(1))
    keep = cond[:, 1:]
    assert cond.shape == (6, 2, 8, 4, 4) and c.cond_channels == 2
    assert torch.equal(keep, keep[..., :1, :1].expand_as(keep))  # constant over each frame
    assert torch.equal(cond[:, :1], x0 * keep) and 0 < keep.mean() < 1
    assert c.meta()["frames_past_max"] == 3 and "frames" in MASK_CONDS


@pytest.mark.parametrize("overrides, match", [
    (["cond.frames_past_p=1.5"], r"cond.frames_past_p = 1.5 is out of range; valid: a probability 0..1"),
    (["cond.frames_future_p=-0.1"], r"cond.frames_future_p = -0.1 is out of range"),
    (["cond.frames_past_max=0"], r"cond.frames_past_max = 0 is out of range; valid: an integer 1..1024"),
    (["cond.image=frame"], r"cond.image = 'frame' is not valid; valid: .*'frames' \(video\)"),
])
def test_bad_frame_options_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config("tiny", overrides)


@pytest.mark.parametrize("overrides, match", [
    (["cond.image=frames"], r"cond.image = 'frames' keeps whole frames of video clips, but the data has samples of "
                            r"shape \(1, 8, 8\)"),
    (FRAMES + ["cond.frames_past_max=3"], r"cond.frames_past_max \+ cond.frames_future_max = 3 \+ 1 must be below "
                                          r"the clips' 4 frames"),
    (FRAMES + ["cond.image=mask"], r"cond.image = 'mask' conditions on 2-D images, but the data has samples of shape "
                                   r"\(1, 4, 16, 16\); valid: 'frames' for video clips"),
])
def test_frames_need_video_data_that_leaves_a_frame(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        train(load_config("tiny", ["train.steps=1", "data.resolution=8"] + overrides), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def frames_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mdf"
    train(load_config("tiny", FRAMES + ["train.steps=4", "train.checkpoint_every=2"]), out, progress=False)
    return out


def test_a_frames_run_resumes_bit_for_bit(frames_run, tmp_path):
    part = tmp_path / "part"
    train(load_config("tiny", FRAMES + ["train.steps=4", "train.checkpoint_every=2"]), part, stop_at=2, progress=False)
    train(None, part, resume=True, progress=False)
    a, b = Run.open(frames_run), Run.open(part)
    sa, sb = a.denoiser("raw").net.state_dict(), b.denoiser("raw").net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.conditioner("image_cond").image == "frames" and b.conditioner("image_cond").frames_past_max == 2


def test_a_frames_run_predicts_in_one_pass_with_the_kept_frames_exact(frames_run):
    run = Run.open(frames_run)
    den = run.denoiser("ema")
    assert image_cond_of(den) == ("mask", 0)  # the mask form: inpaint's one-pass path
    clips = torch.rand(2, 1, 4, 16, 16) * 2 - 1
    steps = []
    x = predict_frames(den, clips, 2, solver="euler", nfe=3, generator=torch.Generator().manual_seed(0),
                       callback=steps.append)
    assert len(steps) == 3  # one sampler pass, no RePaint resampling
    assert torch.equal(x[:, :, :2], clips[:, :, :2]) and not torch.equal(x[:, :, 2:], clips[:, :, 2:])
    y = inpaint_frames(den, clips, (0, 3), solver="euler", nfe=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y[:, :, [0, 3]], clips[:, :, [0, 3]])
    with pytest.raises(ValueError, match="RePaint needs a denoiser without an image condition"):
        predict_frames(den, clips, 2, method="repaint")


def test_the_regressor_baseline_trains_and_keeps_the_given_frames(tmp_path):
    res = train_regressor(load_config("tiny", FRAMES + ["train.steps=2"]), tmp_path / "reg", progress=False)
    assert res.step == 2 and torch.isfinite(torch.tensor(res.loss))
    run = Run.open(tmp_path / "reg")
    assert "regressor" in run.meta
    den = run.denoiser("ema")
    clips = torch.rand(3, 1, 4, 16, 16) * 2 - 1
    known = torch.zeros(1, 4, 16, 16)
    known[:, :2] = 1
    a, b = regress(den, clips, known), regress(den, clips, known)
    assert torch.equal(a, b) and torch.equal(a[:, :, :2], clips[:, :, :2])  # deterministic, kept frames exact
    # the loss ignores the given frames: changing the truth there changes nothing
    cond = torch.cat([clips * known, known.expand(3, 1, 4, 16, 16)], 1)
    other = clips.clone()
    other[:, :, :2] = 0
    loss = RegressorLoss()
    assert torch.equal(loss(den, clips, image_cond=cond), loss(den, other, image_cond=cond))
    with pytest.raises(ValueError, match="the regressor baseline trains a run with"):
        train_regressor(load_config("tiny", ["train.steps=1"]), tmp_path / "bad", progress=False)


def test_the_web_app_predicts_with_a_frames_run_in_one_pass(frames_run, tmp_path):
    from noisecraft.data import load_moving_digits
    from noisecraft.web import Jobs, Result, Settings, tasks_of

    ds = load_moving_digits(split="test", resolution=16, frames=4, num_clips=1)
    gif = tmp_path / "clip.gif"
    ds.get_modality().write(ds.data[0], gif, scale=2)
    clip = ds.get_modality().read(gif, (1, 4, 16, 16))
    run = Run.open(frames_run)
    (tmp_path / "jobs").mkdir()
    jobs = Jobs({"mdf": run}, tmp_path / "jobs")
    assert tasks_of(run) == ["generate", "predict", "interpolate"]
    work = jobs.frames_work("mdf", "predict", Settings(solver="euler", nfe=3, n=1), str(gif), 2, resample=None)
    result = [e for e in jobs.stream(work, min_interval=0) if isinstance(e, Result)][0]
    out = ds.get_modality().read(result.files[0], (1, 4, 16, 16))
    assert torch.equal(out[:, :2], clip[:, :2])  # kept frames exact through the GIFs
