"""Joint image-video training (`train.image_frames = K`, Ho et al. 2022 Sec. 4): every step also trains
K single frames of random training clips as one-frame clips, conditioned on their clip's label; the
loss counts each clip and each frame as one sample; the run resumes bit for bit; bad settings are
one-line errors."""

from __future__ import annotations

import pytest
import torch

from noisecraft.config import ConfigError, load_config
from noisecraft.core import rng
from noisecraft.data import load_moving_digits
from noisecraft.runs import Run
from noisecraft.train import train
from noisecraft.train.step import _frame_batch

VIDEO = ["data.source=moving-digits", "data.resolution=16", "data.options.frames=4", "data.options.num_clips=32",
         "train.batch_size=4", "train.class_dropout=0", "sample.nfe=2", "sample.per_class=1", "ema.phema_every=0"]


@pytest.fixture(scope="module")
def clips():
    return load_moving_digits(split="train", resolution=16, frames=4, num_clips=32)


def test_frames_are_single_frames_of_random_clips_keyed_by_their_generators(clips):
    gens = rng.sample_generators(11, range(64))
    b = _frame_batch(gens, clips, torch.device("cpu"))
    assert b.x0.shape == (64, 1, 1, 16, 16) and b.idx.shape == (64,)
    for row, c in zip(b.x0, b.idx.tolist()):  # each row is one frame of the clip whose index it carries
        assert any(torch.equal(row[:, 0], clips.data[c, :, t]) for t in range(4))
    assert len(set(b.idx.tolist())) > 20  # drawn over the whole training set, not the step's clips
    again = _frame_batch(rng.sample_generators(11, range(60, 64)), clips, torch.device("cpu"))
    assert torch.equal(again.x0, b.x0[60:]) and torch.equal(again.idx, b.idx[60:])  # per-sample streams
    other = _frame_batch(rng.sample_generators(12, range(64)), clips, torch.device("cpu"))
    assert not torch.equal(other.x0, b.x0)


class _Recorder:
    """A loss that records what it was given and returns 3 for clips and 1 for single frames
    (with a zero-valued path through the net, so that backward runs)."""

    def __init__(self):
        self.calls = []

    def __call__(self, denoiser, x0, *, generator=None, **cond):
        self.calls.append((x0.clone(), {k: v.clone() for k, v in cond.items()}))
        zero = sum(p.sum() for p in denoiser.net.parameters()) * 0
        return zero + (1.0 if x0.shape[2] == 1 else 3.0)


def test_each_step_trains_k_labelled_frames_and_weighs_clips_and_frames_as_samples(clips, tmp_path):
    rec = _Recorder()
    res = train(load_config("tiny", VIDEO + ["train.steps=2", "train.image_frames=6", "data.options.num_clips=32"]),
                tmp_path / "r", progress=False, loss=rec, dataset=clips)
    shapes = [tuple(x.shape) for x, _ in rec.calls]
    assert shapes == [(6, 1, 1, 16, 16), (4, 1, 4, 16, 16)] * 2  # frames, then the clips, every step
    assert res.loss == pytest.approx((4 * 3 + 6 * 1) / (4 + 6), rel=1e-6)  # (B·3 + K·1) / (B + K)
    for x, cond in rec.calls[::2]:  # each frame is conditioned on the label of a clip it belongs to
        labels = cond["class_labels"].argmax(1)
        for row, label in zip(x, labels.tolist()):
            owners = [c for c in range(len(clips)) if any(torch.equal(row[:, 0], clips.data[c, :, t]) for t in range(4))]
            assert owners and label in {int(clips.labels[c]) for c in owners}
    rec0 = _Recorder()
    res0 = train(load_config("tiny", VIDEO + ["train.steps=1"]), tmp_path / "r0", progress=False, loss=rec0, dataset=clips)
    assert [tuple(x.shape) for x, _ in rec0.calls] == [(4, 1, 4, 16, 16)] and res0.loss == 3.0  # off by default


def test_a_joint_run_trains_resumes_bit_for_bit_and_differs_from_clips_only(tmp_path):
    cfg = VIDEO + ["train.steps=4", "train.checkpoint_every=2"]
    train(load_config("tiny", cfg + ["train.image_frames=4"]), tmp_path / "full", progress=False)
    train(load_config("tiny", cfg + ["train.image_frames=4"]), tmp_path / "part", stop_at=2, progress=False)
    train(None, tmp_path / "part", resume=True, progress=False)
    train(load_config("tiny", cfg), tmp_path / "clips", progress=False)
    a, b, c = (Run.open(tmp_path / n).denoiser("raw").net.state_dict() for n in ("full", "part", "clips"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    run = Run.open(tmp_path / "full")
    assert run.config.train.image_frames == 4 and run.shape == (1, 4, 16, 16)
    with pytest.raises(ConfigError, match=r"train.image_frames differs from the config saved"):
        train(load_config("tiny", cfg + ["train.steps=6"]), tmp_path / "full", resume=True, progress=False)


@pytest.mark.parametrize("overrides, match", [
    (["data.resolution=8", "train.image_frames=4"],
     r"train.image_frames = 4 trains single frames of video clips, but the data has samples of shape \(1, 8, 8\); "
     r"valid for \(C, T, H, W\) video data only"),
    (VIDEO + ["data.conditional=false", "cond.image=frames", "cond.frames_past_max=2", "cond.frames_future_max=1",
              "train.image_frames=4"],
     r"train.image_frames = 4 cannot be combined with cond.image = 'frames'"),
])
def test_image_frames_need_video_without_an_image_condition(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        train(load_config("tiny", ["train.steps=1"] + overrides), tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_a_negative_count_is_refused():
    with pytest.raises(ConfigError, match=r"train.image_frames = -1 is out of range; valid: an integer 0 \(off\)"):
        load_config("tiny", ["train.image_frames=-1"])
