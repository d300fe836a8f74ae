"""`noisecraft train shapes` and `noisecraft sample --prompt` on a tiny text-to-image run."""

from __future__ import annotations

import json

import pytest

from cli_helpers import assert_user_error, run

TINY_TEXT = ["--set", "data.resolution=8", "--set", "net.name=unet-tiny", "--set", "text.dim=16", "--set", "text.depth=1",
             "--set", "text.heads=2", "--set", "text.max_length=24", "--set", "train.batch_size=8",
             "--set", "train.tensorboard=false", "--set", "ema.phema_every=0", "--set", "sample.nfe=2",
             "--set", "sample.per_class=1", "--set", "sample.solver=euler"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "shapes"
    result = run("train", "shapes", "--out", out, "--steps", 2, "--checkpoint-every", 2, *TINY_TEXT, "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def class_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = run("train", "tiny", "--out", out, "--steps", 1, "--set", "train.batch_size=8", "--set", "ema.phema_every=0",
                 "--set", "sample.nfe=2", "--set", "sample.per_class=1", "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_shapes_presets_dry_run():
    for preset, encoder in (("shapes", "small"), ("shapes-minilm", "hf")):
        result = run("train", preset, "--dry-run")
        assert result.exit_code == 0, result.output
        cfg = json.loads(result.output)
        assert cfg["data"]["source"] == "shapes" and cfg["text"]["encoder"] == encoder and not cfg["data"]["conditional"]


def test_train_shapes_writes_a_text_run(text_run):
    meta = json.loads((text_run / "run.json").read_text())
    assert meta["conditioners"][0]["encoder"]["name"] == "small" and meta["net"]["context_dim"] == 16 and meta["net"]["pooled_context"]
    assert (text_run / "samples" / "step-00000002.png").is_file()


def test_sample_with_prompts(text_run, tmp_path):
    out = tmp_path / "s"
    result = run("sample", text_run, "--prompt", "a green triangle on the right", "--prompt", "a red circle at the top",
                 "--n", 4, "--guidance", 2, "--nfe", 2, "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("0*.png")) == [f"{i:06d}.png" for i in range(4)]
    lines = (out / "prompts.txt").read_text().splitlines()
    assert [line.split("\t")[1] for line in lines] == ["a green triangle on the right"] * 2 + ["a red circle at the top"] * 2
    again = tmp_path / "again"
    assert run("sample", text_run, "--prompt", "a green triangle on the right", "--n", 2, "--guidance", 2, "--nfe", 2,
               "--out", again).exit_code == 0
    assert (again / "000001.png").read_bytes() == (out / "000001.png").read_bytes()  # one prompt for all, seeded


def test_long_prompt_is_truncated_with_a_warning(text_run, tmp_path):
    result = run("sample", text_run, "--prompt", "a red circle " * 9, "--n", 1, "--nfe", 1, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "max_length=24" in result.output and "truncated" in result.output


@pytest.mark.parametrize("args, fragments", [
    (["--prompt", "a red circle", "--class", "3"], ["--class 3 and --prompt cannot be combined"]),
    (["--prompt", "a red circle", "--guidance", "-1"], ["--guidance -1.0 is out of range", "valid: 0 <= guidance < 100"]),
    (["--prompt", "a", "--prompt", "b", "--n", "3"], ["--n 3 is not a multiple of the 2 prompts"]),
    ([], ["is a text-conditioned model: give --prompt TEXT"]),
])
def test_prompt_errors(text_run, tmp_path, args, fragments):
    n = [] if "--n" in args else ["--n", "2"]
    assert_user_error(run("sample", text_run, *n, *args, "--out", tmp_path / "s"), *fragments)


def test_prompt_on_a_model_without_text(class_run, tmp_path):
    result = run("sample", class_run, "--prompt", "a red circle", "--n", 2, "--out", tmp_path / "s")
    assert_user_error(result, "--prompt needs a text-conditioned model", "text.encoder = ''")
