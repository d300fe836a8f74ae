"""`noisecraft distill`: a distilled tiny run is a normal run (sample, eval, resume bitwise), its
default sampler is the K-step one, guidance is distilled in, and bad settings are one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_helpers import assert_user_error, run  # noqa: E402

from noisecraft.distill.runner import distill, resume_distill, stage_weights  # noqa: E402
from noisecraft.runs import Run, latest_checkpoint, load_checkpoint  # noqa: E402

TINY = ["--steps", 4, "--set", "train.batch_size=8", "--set", "sample.per_class=1", "--set", "sample.guidance=1.5",
        "--set", "train.checkpoint_every=2", "--quiet"]
SMALL = dict(train_steps=4, batch_size=4, progress=False)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    r = run("train", "tiny", "--out", root / "run", *TINY)
    assert r.exit_code == 0, r.output
    return root / "run"


def _state(run_dir: Path) -> dict:
    return load_checkpoint(latest_checkpoint(run_dir / "checkpoints"))[1]


def _same_states(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Names of entries that differ (tensors bitwise, everything else by value)."""
    diff = []
    for k in a.keys() | b.keys():
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            diff += _same_states(va, vb, f"{prefix}{k}/")
        elif isinstance(va, torch.Tensor) and isinstance(vb, torch.Tensor):
            if not torch.equal(va, vb):
                diff.append(prefix + k)
        elif va != vb and k != "saved_at":
            diff.append(prefix + k)
    return diff


def test_consistency_run_samples_with_its_k_step_sampler(teacher, tmp_path):
    out = tmp_path / "cd"
    r = run("distill", teacher, "--method", "consistency", "--steps", 2, "--train-steps", 3, "--batch-size", 4,
            "--levels", 6, "--out", out, "--quiet")
    assert r.exit_code == 0, r.output
    student = Run.open(out)
    spec = student.spec()
    assert (spec.solver, spec.nfe, spec.guidance) == ("consistency", 2, 1.0)  # guidance distilled in
    meta = student.meta["distill"]
    assert meta["method"] == "consistency" and meta["guidance"] == 1.5 and meta["teacher"] == str(teacher.resolve())
    # the student starts as the teacher: after 0 steps its weights would be the teacher's EMA
    r = run("sample", out, "--class", 3, "--n", 3, "--out", tmp_path / "s")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "s").glob("0*.png"))) == 3
    x = student.generate(spec, 2, class_labels=3)
    assert x.shape == (2, *student.shape) and torch.isfinite(x).all()
    feats = tmp_path / "features"
    r = run("eval", "fit-features", "digits", "--out", feats, "--resolution", 8, "--steps", 2, "--width", 4,
            "--feature-dim", 4, "--batch-size", 8, "--quiet")
    assert r.exit_code == 0, r.output
    r = run("eval", "run", out, "--out", tmp_path / "e", "--n", 10, "--metrics", "fd,acc", "--features", feats, "--quiet",
            "--no-cache")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert "consistency" in json.dumps(report)


def test_student_starts_from_the_teacher(teacher, tmp_path):
    distill(teacher, tmp_path / "cd", method="consistency", steps=1, stop_at=1, n_levels=4, **SMALL)
    t = Run.open(teacher).denoiser("ema").net.state_dict()
    s = _state(tmp_path / "cd")
    raw = s["model"]
    moved = [k for k in t if not torch.equal(t[k], raw[k])]
    assert moved and raw.keys() == t.keys()  # one step moved the weights; same architecture
    assert max(float((t[k] - raw[k]).abs().max()) for k in t) < 0.05


@pytest.mark.parametrize("method, extra, stop", [("consistency", dict(n_levels=5), 2),
                                                 ("progressive", dict(start_steps=4), 1),
                                                 ("progressive", dict(start_steps=4), 3)])
def test_resume_is_bitwise(teacher, tmp_path, method, extra, stop):
    """Straight vs stopped + resumed; progressive stops inside the first stage (1) and after the stage
    boundary (3), where the next teacher must come back from distill/stage-0.safetensors."""
    a, b = tmp_path / "a", tmp_path / "b"
    straight = distill(teacher, a, method=method, steps=1, **extra, **SMALL)
    distill(teacher, b, method=method, steps=1, stop_at=stop, **extra, **SMALL)
    rest = resume_distill(b, progress=False)
    assert rest.losses == straight.losses[stop:]
    assert _same_states(_state(a), _state(b)) == []
    if method == "progressive":
        assert stage_weights(a, 0).is_file() and not stage_weights(a, 1).exists()  # 4 -> 2 -> 1: one stage file
        assert stage_weights(a, 0).read_bytes() == stage_weights(b, 0).read_bytes()
        assert Run.open(a).spec().solver == "euler_open"


def test_cli_resume(teacher, tmp_path):
    out = tmp_path / "pd"
    distill(teacher, out, method="progressive", steps=1, start_steps=4, stop_at=1, **{**SMALL, "train_steps": 2})
    r = run("distill", "--resume", out, "--quiet")
    assert r.exit_code == 0, r.output
    assert load_checkpoint(latest_checkpoint(out / "checkpoints"))[0] == 2
    assert stage_weights(out, 0).is_file()


@pytest.mark.parametrize("args, fragments", [
    (["--method", "progressive", "--steps", 3], ["steps 3 is not reached by halving from 32", "power of two"]),
    (["--method", "progressive", "--steps", 32], ["steps 32 is not reached by halving from 32"]),
    (["--method", "progressive", "--steps", 2, "--from", 8, "--train-steps", 1], ["train_steps 1 is fewer than the 2 stages"]),
    (["--method", "consistency", "--steps", 0], ["steps 0 is out of range", "1..1024"]),
    (["--method", "consistency", "--steps", 1, "--levels", 1], ["n_levels 1 is out of range", "2..10000"]),
    (["--method", "consistency", "--steps", 1, "--lr", -1], ["lr -1.0 is out of range"]),
    (["--method", "consistency"], ["missing --steps"]),
])
def test_bad_settings_are_one_line_errors(teacher, tmp_path, args, fragments):
    out = tmp_path / "x"
    assert_user_error(run("distill", teacher, *args, "--out", out), *fragments)
    assert not out.exists()


def test_bad_runs_are_one_line_errors(teacher, tmp_path):
    assert_user_error(run("distill", tmp_path / "nope", "--method", "consistency", "--steps", 1, "--out", tmp_path / "o"),
                      "does not exist")
    assert_user_error(run("distill", "--resume", teacher), "is not a distilled run", "noisecraft train --resume")
    assert_user_error(run("distill", teacher, "--method", "consistency", "--steps", 1, "--out", teacher), "already holds a run")


def test_train_resume_refuses_a_distilled_run(teacher, tmp_path):
    out = tmp_path / "cd"
    distill(teacher, out, method="consistency", steps=1, stop_at=1, n_levels=4, **SMALL)
    assert_user_error(run("train", "--resume", out), "is a distilled run", f"noisecraft distill --resume {out}")
