"""The `noisecraft` command line: dry runs, one-line errors with exit code 2, train -> sample -> ema, demo."""

from __future__ import annotations

import json

import pytest

from noisecraft.cli.main import cli
from cli_helpers import assert_user_error, run

TINY = ["--set", "train.batch_size=8", "--set", "sample.nfe=2", "--set", "sample.per_class=1", "--set", "ema.phema_every=2"]






@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = run("train", "tiny", "--out", out, "--steps", 4, "--checkpoint-every", 2, *TINY, "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def uncond_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "uncond"
    result = run("train", "tiny", "--out", out, "--steps", 1, "--set", "data.conditional=false", *TINY, "--quiet")
    assert result.exit_code == 0, result.output
    return out


def _files(folder):
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_dry_run_prints_resolved_config(tmp_path):
    result = run("train", "tiny", "--dry-run", "--steps", 7, "--seed", 3, "--set", "optim.lr=0.01", "--out", tmp_path / "x")
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert cfg["train"]["steps"] == 7 and cfg["train"]["seed"] == 3 and cfg["optim"]["lr"] == 0.01
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["train", "nope", "--out", "{tmp}/r"], ["unknown preset 'nope'", "digits", "tiny"]),
        (["train", "tiny", "--out", "{tmp}/r", "--set", "optim.lrr=1"], ["unknown key optim.lrr", "valid keys in [optim]"]),
        (["train", "tiny", "--out", "{tmp}/r", "--steps", "-3"], ["train.steps = -3", "integer >= 1"]),
        (["train", "tiny", "--out", "{tmp}/r", "--set", "train.batch_size=0"], ["train.batch_size = 0"]),
        (["train", "tiny", "--out", "{tmp}/r", "--set", "data.source={tmp}/no-such-folder"], ["no-such-folder", "digits"]),
        (["train", "{tmp}/missing.toml", "--out", "{tmp}/r"], ["missing.toml", "does not exist"]),
        (["train", "tiny"], ["missing --out"]),
        (["train", "--resume", "{tmp}"], ["not a noisecraft run"]),
        (["train", "--resume", "{tmp}/nothing-here"], ["does not exist"]),
        (["sample", "{tmp}", "--n", "2", "--out", "{tmp}/s"], ["not a noisecraft run"]),
        (["ema", "{tmp}", "--std", "0.08"], ["not a noisecraft run"]),
        (["sample", "{tmp}", "--out", "{tmp}/s"], ["--n"]),
    ],
)
def test_user_errors_are_one_line(tmp_path, args, fragments):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    fragments = [f.replace("{tmp}", str(tmp_path)) for f in fragments]
    assert_user_error(run(*args), *fragments)
    assert not (tmp_path / "r").exists()


def test_train_writes_a_run(tiny_run):
    for name in ("run.json", "config.json", "metrics.jsonl", "loss.png", "checkpoints/latest"):
        assert (tiny_run / name).is_file(), name
    assert json.loads((tiny_run / "config.json").read_text())["train"]["steps"] == 4


def test_errors_never_damage_a_run(tiny_run, tmp_path):
    before = _files(tiny_run)
    assert_user_error(run("train", "tiny", "--out", tiny_run), "already holds a run")
    assert_user_error(run("sample", tiny_run, "--n", 2, "--class", 10, "--out", tmp_path / "s"), "--class 10", "0..9")
    assert_user_error(run("sample", tiny_run, "--n", 2, "--class", "x", "--out", tmp_path / "s"), "--class x")
    assert_user_error(run("sample", tiny_run, "--n", 0, "--out", tmp_path / "s"), "--n 0", "1..100000")
    assert_user_error(run("sample", tiny_run, "--n", 2, "--solver", "magic", "--out", tmp_path / "s"), "'magic'", "heun")
    assert_user_error(run("sample", tiny_run, "--n", 2, "--weights", "best", "--out", tmp_path / "s"), "'best'", "raw, ema")
    assert_user_error(run("sample", tiny_run, "--n", 2, "--out", tiny_run), "is a run folder")
    assert_user_error(run("ema", tiny_run, "--std", 0.5), "--std 0.5", "0 < std")
    assert_user_error(run("train", "--resume", tiny_run, "--set", "optim.lr=1"), "--resume")
    assert _files(tiny_run) == before


def test_sample_writes_pngs_and_is_deterministic(tiny_run, tmp_path):
    a = run("sample", tiny_run, "--n", 3, "--class", 3, "--seed", 5, "--out", tmp_path / "a")
    assert a.exit_code == 0, a.output
    pngs = sorted(p.name for p in (tmp_path / "a").glob("*.png"))
    assert pngs == ["000000.png", "000001.png", "000002.png", "grid.png"]
    b = run("sample", tiny_run, "--n", 3, "--class", 3, "--seed", 5, "--out", tmp_path / "b")
    assert b.exit_code == 0
    assert _files(tmp_path / "a").values() and [v for _, v in sorted(_files(tmp_path / "a").items())] == [
        v for _, v in sorted(_files(tmp_path / "b").items())]
    # per-sample seeds: sample 1 of seed 5 is sample 0 of seed 6
    c = run("sample", tiny_run, "--n", 1, "--class", 3, "--seed", 6, "--out", tmp_path / "c")
    assert c.exit_code == 0
    assert (tmp_path / "c" / "000000.png").read_bytes() == (tmp_path / "a" / "000001.png").read_bytes()


def test_sample_options(tiny_run, tmp_path):
    r = run("sample", tiny_run, "--n", 2, "--guidance", 2.5, "--solver", "dpmpp_2m", "--nfe", 3, "--weights", "raw",
            "--out", tmp_path / "g")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "g").glob("*.png"))) == 3


def test_ema_command_and_phema_weights(tiny_run, tmp_path):
    r = run("ema", tiny_run, "--std", 0.08)
    assert r.exit_code == 0, r.output
    assert (tiny_run / "phema" / "phema-0.080.safetensors").is_file()
    s = run("sample", tiny_run, "--n", 2, "--weights", "phema-0.08", "--out", tmp_path / "p")
    assert s.exit_code == 0, s.output


def test_unconditional_model_rejects_class(uncond_run, tmp_path):
    assert_user_error(run("sample", uncond_run, "--n", 2, "--class", 1, "--out", tmp_path / "s"), "unconditional")
    assert_user_error(run("sample", uncond_run, "--n", 2, "--guidance", 2, "--out", tmp_path / "s"), "unconditional")
    r = run("sample", uncond_run, "--n", 2, "--out", tmp_path / "ok")
    assert r.exit_code == 0, r.output


def test_resume_extends_a_finished_run(tmp_path):
    out = tmp_path / "r"
    assert run("train", "tiny", "--out", out, "--steps", 2, *TINY, "--quiet").exit_code == 0
    r = run("train", "--resume", out, "--steps", 3, "--quiet")
    assert r.exit_code == 0, r.output
    assert "step 3" in r.output
    assert_user_error(run("train", "--resume", out, "--steps", 1), "--steps 1", ">= 3")


def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    quick = ["--steps", 2, "--per-class", 1, "--nfe", 3, "--set", "train.batch_size=8", "--set", "train.threads=1", "--quiet"]
    r = run("demo", "--out", out, *quick)
    assert r.exit_code == 0, r.output
    for name in ("grid.png", "process.png", "process.gif", "run.json", "loss.png"):
        assert (out / name).is_file(), name
    from PIL import Image

    grid = Image.open(out / "grid.png")
    assert grid.size[1] == (10 * 17 + 1) * 4  # 10 rows of 16x16 digits, 1 px padding, upscaled 4x
    s = run("sample", out, "--class", 3, "--n", 2, "--nfe", 3, "--out", tmp_path / "x")
    assert s.exit_code == 0, s.output
    # running the demo again on the finished run redraws without retraining
    again = run("demo", "--out", out, *quick)
    assert again.exit_code == 0, again.output


def test_module_entry_point_help():
    r = run("--help")
    assert r.exit_code == 0 and "train" in r.output and "sample" in r.output and "demo" in r.output


def test_data_export_through_the_main_cli(tmp_path):
    """`noisecraft data export` is registered on the real CLI; bad values are one-line errors."""
    out = tmp_path / "exp"
    result = run("data", "export", "waves", "--split", "test", "--n", 3, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["000000.npz", "000001.npz", "000002.npz", "labels.csv"]
    assert_user_error(run("data", "export", "waves", "--split", "test", "--n", 3, "--out", out), "not empty")
    assert_user_error(run("data", "export", "nope", "--split", "test", "--n", 3, "--out", tmp_path / "x"), "nope")
