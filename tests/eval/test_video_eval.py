"""Motion evaluation: on real `moving-digits` clips every metric sits at its floor (trajectory residual
≈ 0, frame accuracy high, identity kept); corrupted clips (frames shuffled, the second half frozen, a
digit swapped half way) score worse; prediction scores rank a perfect prediction above the baselines;
`noisecraft eval` runs end to end on a 2-step tiny video run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from click.testing import CliRunner

from noisecraft.cli.main import cli as main_cli
from noisecraft.data import load_moving_digits
from noisecraft.eval import (
    EvalError,
    centroids,
    copy_last_frame,
    extrapolate_centroid,
    fit_bounce,
    fit_frame_classifier,
    fit_motion_features,
    identity_consistency,
    prediction_scores,
    psnr,
    ssim,
    trajectory_residuals,
)
from noisecraft.eval import video_run
from noisecraft.eval.audio import real_halves
from noisecraft.eval.metrics import frechet_distance
from noisecraft.eval.video_features import shuffle_frames
from noisecraft.eval.video_run import parse_video_metrics, video_scores

RES, T = 16, 8


@pytest.fixture(scope="module")
def clips():
    tr = load_moving_digits(split="train", resolution=RES, frames=T, num_clips=200)
    te = load_moving_digits(split="test", resolution=RES, frames=T, num_clips=100)
    return tr, te


@pytest.fixture(scope="module")
def classifiers(clips, tmp_path_factory):
    tr, te = clips
    cache = tmp_path_factory.mktemp("vf")
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        frame = fit_frame_classifier(tr.data, tr.labels, tr.class_names, holdout=(te.data, te.labels), steps=800,
                                     cache_dir=cache)
        motion = fit_motion_features(tr.data, tr.labels, tr.class_names, holdout=(te.data, te.labels), steps=800,
                                     feature_dim=8, cache_dir=cache)
    return frame, motion, cache


def _corrupt(x: torch.Tensor) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    frozen = x.clone()
    frozen[:, :, T // 2:] = x[:, :, T // 2:T // 2 + 1]
    other = x.roll(1, 0)  # the neighbour clip: another digit in another place
    swapped = x.clone()
    swapped[:, :, T // 2:] = other[:, :, T // 2:]
    return {"shuffled": shuffle_frames(x, g), "frozen": frozen, "swapped": swapped}


def test_centroid_path_of_real_clips_is_the_sprite_path_plus_a_constant():
    ds = load_moving_digits(split="test", resolution=32, num_clips=20)
    offset = centroids(ds.data) - ds.positions[:, 0]
    assert np.abs(offset - offset[:, :1]).max() < 1e-5  # a rigid sprite: the ink centroid moves like the centre


def test_fit_bounce_recovers_exact_bouncing_paths():
    ds = load_moving_digits(split="test", resolution=32, num_clips=20)
    span = float(ds.walls[0, 1] - ds.walls[0, 0])
    for p in ds.positions[:5, 0]:
        assert np.abs(fit_bounce(p + 3.7, span) - (p + 3.7)).max() < 0.01  # walls anywhere: the offset is free
    def rms(path):
        return np.sqrt(((fit_bounce(path, 30.0) - path) ** 2).sum(1).mean())

    still = np.full(16, 5.0)
    speeding = np.stack([np.r_[np.arange(8.0), 7 + 2 * np.arange(1, 9.0)], still], 1)  # 1 then 2 px/frame
    zigzag = np.stack([np.abs(((np.arange(16.0) + 5) % 10) - 5), still], 1)  # turns every 5 px, walls 30 px apart
    one_turn = np.stack([np.r_[np.arange(8.0), np.arange(8.0)[::-1]], still], 1)  # one turn: a wall may be there
    assert rms(speeding) > 0.3 and rms(zigzag) > 0.3 and rms(one_turn) < 0.01
    with pytest.raises(ValueError, match="span must be a positive"):
        fit_bounce(one_turn, 0.0)


def test_trajectory_residual_floor_and_corruptions(clips):
    _, te = clips
    span = float(te.walls[0, 1] - te.walls[0, 0])
    x = te.data[:30]
    real = trajectory_residuals(x, span)
    assert np.median(real) < 0.01 and real.max() < 0.05
    bad = _corrupt(x)
    for name in ("shuffled", "frozen", "swapped"):
        assert np.median(trajectory_residuals(bad[name], span)) > 0.2, name
    empty = x[:2].clone()
    empty[:, :, 3] = -1.0
    assert np.isinf(trajectory_residuals(empty, span)).all()


def test_identity_consistency():
    share, kept = identity_consistency(np.array([[1] * 10, [1] * 9 + [2], [1] * 8 + [2, 3]]))
    assert share.tolist() == [1.0, 0.9, 0.8] and kept.tolist() == [True, True, False]


def test_frame_accuracy_identity_and_fvd_floor_and_corruptions(clips, classifiers):
    _, te = clips
    frame, motion, cache = classifiers
    assert frame.info["held_out_accuracy"] > 0.7 and motion.info["held_out_accuracy"] > 0.2
    span = float(te.walls[0, 1] - te.walls[0, 0])
    labels = te.labels.numpy()
    real = video_scores(te.data, labels, frame_classifier=frame, span=span)
    assert real["frame_accuracy"] > 0.7 and real["identity_rate"] > 0.6
    bad = _corrupt(te.data)
    swapped = video_scores(bad["swapped"], labels, frame_classifier=frame, span=span)
    assert swapped["frame_accuracy"] < real["frame_accuracy"] - 0.2
    assert swapped["identity_rate"] < real["identity_rate"] - 0.3
    a, b = real_halves(te.labels)
    ref = motion.features(te.data[a])
    floor = frechet_distance(ref, motion.features(te.data[b]))
    for name in ("shuffled", "swapped"):
        assert frechet_distance(ref, motion.features(bad[name][b])) > 2 * floor, name
    again = fit_motion_features(clips[0].data, clips[0].labels, clips[0].class_names, holdout=(te.data, te.labels),
                                steps=800, feature_dim=8, cache_dir=cache)
    assert again.info["from_cache"] and again.fingerprint == motion.fingerprint


def test_prediction_scores_rank_truth_above_baselines(clips):
    _, te = clips
    x, keep = te.data[:20], 3
    span = float(te.walls[0, 1] - te.walls[0, 0])
    assert np.isinf(psnr(x, x, keep)).all() and np.allclose(ssim(x, x, keep), 1.0)
    copy, lin = copy_last_frame(x, keep), extrapolate_centroid(x, keep)
    assert torch.equal(copy[:, :, :keep], x[:, :, :keep]) and torch.equal(lin[:, :, :keep], x[:, :, :keep])
    assert (ssim(lin, x, keep).mean() > ssim(copy, x, keep).mean())  # the digits do move on
    noise = torch.rand(2, *x.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    samples = torch.stack([x, noise[0]])  # one of K = 2 tries is perfect
    s = prediction_scores(samples, x, keep, span=span)
    assert s["k"] == 2 and s["best_of_k"]["psnr"] == 100.0 and s["psnr_gain_over_best_baseline"] > 10
    assert s["trajectory_residual_median_real"] < 0.01
    worse = prediction_scores(noise, x, keep)
    assert worse["psnr_gain_over_best_baseline"] < 0
    with pytest.raises(ValueError, match="keep 8 is out of range for clips of 8 frames"):
        psnr(x, x, 8)


def test_parse_video_metrics():
    assert parse_video_metrics(None) == ("acc", "identity", "trajectory", "fvd")
    assert parse_video_metrics("fvd, trajectory") == ("fvd", "trajectory")
    with pytest.raises(EvalError, match="metric 'kid' is not a video metric; valid for video runs: acc, identity"):
        parse_video_metrics("kid")


def cli(*args):
    return CliRunner().invoke(main_cli, [str(a) for a in args])


TINY = ["--set", "data.source=moving-digits", "--set", "data.resolution=16", "--set", "data.options.frames=4",
        "--set", "data.options.num_clips=48", "--set", "train.batch_size=4", "--set", "sample.nfe=2"]


def test_eval_runs_end_to_end_on_a_tiny_video_run(tmp_path, monkeypatch):
    run_dir = tmp_path / "md"
    assert cli("train", "tiny", "--out", run_dir, "--steps", 2, *TINY, "--quiet").exit_code == 0
    for name, value in (("FRAME_STEPS", 20), ("MOTION_STEPS", 20), ("FEATURE_DIM", 4)):
        monkeypatch.setattr(video_run, name, value)
    out = tmp_path / "rep"
    res = cli("eval", run_dir, "--out", out, "--nfe", 2, "--quiet")
    assert res.exit_code == 0, res.output
    assert "frame_accuracy" in res.output and "fvd" in res.output and "(floor" in res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["format"] == "noisecraft-video-report/1" and rep["n"] == rep["reference"]["n_floor"] == 20  # half B of 48
    for key in ("frame_accuracy", "identity_rate", "trajectory_residual_median", "fvd"):
        assert isinstance(rep["generated"][key], float) and isinstance(rep["noise_floor"][key], float), key
    assert rep["noise_floor"]["trajectory_residual_median"] < 0.01
    assert (out / "report.md").is_file() and (out / "samples.png").is_file()
    assert sorted(p.name for p in (out / "samples").iterdir())[:2] == ["000000.gif", "000001.gif"]
    bad = cli("eval", run_dir, "--out", tmp_path / "r2", "--metrics", "kid")
    assert bad.exit_code == 2 and "not a video metric" in bad.output
    bad = cli("eval", run_dir, "--out", tmp_path / "r3", "--sweep-nfe", "2,4")
    assert bad.exit_code == 2 and "sweep-nfe is not available for video runs" in bad.output
