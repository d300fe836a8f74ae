"""Inpainting in time: the frame mask, the checks on kept frames, and prediction / interpolation keeping
the given frames exactly (with a stand-in denoiser; the trained path is in tests/cli/test_cli_video_tasks.py)."""

from __future__ import annotations

import pytest
import torch

from noisecraft.tasks import check_keep_frames, frame_mask, inpaint_frames, parse_keep_frames, predict_frames


def _shrink(x, sigma, **_):
    return x / (1 + sigma.view(-1, 1, 1, 1, 1) ** 2)  # the posterior mean of N(0, I) data


def test_frame_mask_marks_whole_frames():
    m = frame_mask((1, 5, 3, 4), (0, 3))
    assert m.shape == (1, 5, 3, 4)
    assert m[:, [0, 3]].eq(1).all() and m[:, [1, 2, 4]].eq(0).all()


@pytest.mark.parametrize("method", ["repaint"])
def test_predict_and_interpolate_keep_the_given_frames_exactly(method):
    gen = torch.Generator().manual_seed(0)
    clips = torch.rand(2, 3, 6, 4, 4, generator=gen) * 2 - 1
    x = predict_frames(_shrink, clips, 2, method=method, nfe=4, resample_steps=2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x[:, :, :2], clips[:, :, :2])
    assert not torch.equal(x[:, :, 2:], clips[:, :, 2:]) and x.isfinite().all()
    y = inpaint_frames(_shrink, clips, (0, 5), nfe=4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(y[:, :, [0, 5]], clips[:, :, [0, 5]])
    assert (y[:, :, 1:5] - clips[:, :, 1:5]).abs().max() > 0.1


@pytest.mark.parametrize("keep, message", [
    ((), "no frame to keep"), ((0, 1, 2, 3), "nothing to generate"), ((4,), "frame 4 is out of range.*0..3"),
    ((-1,), "frame -1 is out of range"), ((1, 1), "frame 1 is listed twice"), ((1.5,), "not an integer"),
])
def test_bad_kept_frames_are_one_line_errors(keep, message):
    with pytest.raises(ValueError, match=message):
        check_keep_frames(keep, 4)


def test_parse_and_predict_range_errors():
    assert parse_keep_frames("3, 0", 4) == (0, 3)
    with pytest.raises(ValueError, match="not a comma-separated list"):
        parse_keep_frames("0-3", 4)
    clips = torch.zeros(1, 1, 4, 2, 2)
    for k in (0, 4):
        with pytest.raises(ValueError, match=f"keep {k} is out of range for clips of 4 frames; valid: 1..3"):
            predict_frames(_shrink, clips, k)
    with pytest.raises(ValueError, match=r"clips must be a tensor \(B, C, T, H, W\)"):
        inpaint_frames(_shrink, torch.zeros(1, 4, 2, 2), (0,))
