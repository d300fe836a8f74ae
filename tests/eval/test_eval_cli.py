"""`noisecraft eval` and `noisecraft eval fit-features`: reports, determinism, one-line errors."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

import noisecraft.eval as ev
from noisecraft.cli.eval_cmd import eval_group
from noisecraft.cli.common import Group as _Group
from noisecraft.cli.main import cli as main_cli


def _cli() -> click.Group:
    """The main CLI with `eval` registered the way the lead will register it."""

    @click.group(cls=_Group)
    def cli() -> None:
        pass

    for name, cmd in main_cli.commands.items():
        cli.add_command(cmd, name)
    cli.add_command(eval_group, "eval")
    return cli


def run(*args):
    return CliRunner().invoke(_cli(), [str(a) for a in args])


def assert_user_error(result, *fragments: str):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = run("train", "tiny", "--out", out, "--steps", 2, "--set", "train.batch_size=8", "--set", "sample.nfe=2",
                 "--set", "sample.per_class=1", "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_eval_writes_a_deterministic_report(tiny_run, tiny_features, tmp_path):
    folder, _ = tiny_features
    args = ["eval", tiny_run, "--n", 30, "--features", folder, "--nfe", 2, "--sweep-nfe", "1,2", "--kid-subsets", 5,
            "--quiet"]
    first = run(*args, "--out", tmp_path / "a")
    assert first.exit_code == 0, first.output
    assert "fd " in first.output and "floor" in first.output
    for name in ("report.json", "report.md", "samples.png", "classes.png", "nfe_sweep.png"):
        assert (tmp_path / "a" / name).is_file(), name
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    assert rep["n"] == 30 and rep["solver"] == "euler" and rep["reference"]["n_holdout"] > 0
    assert {"fd", "kid", "precision", "recall", "accuracy", "coverage"} <= set(rep["generated"])
    assert {"fd", "kid", "precision", "recall", "accuracy"} <= set(rep["noise_floor"])
    assert [r["nfe"] for r in rep["nfe_sweep"]] == [1, 2]
    assert not rep["reference"]["from_cache"]
    md = (tmp_path / "a" / "report.md").read_text()
    assert "noise floor" in md and "![samples](samples.png)" in md and "| FD |" in md
    # Same seed: same numbers (the reference now comes from the cache); `eval run` is the same command.
    second = run("eval", "run", *args[1:], "--out", tmp_path / "b")
    assert second.exit_code == 0, second.output
    rep2 = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep2["reference"]["from_cache"]
    assert rep2["generated"] == rep["generated"] and rep2["noise_floor"] == rep["noise_floor"]
    third = run(*args[:-1], "--seed", 1, "--quiet", "--out", tmp_path / "c")
    assert json.loads((tmp_path / "c" / "report.json").read_text())["generated"] != rep["generated"]


def test_eval_nll(tiny_run, tiny_features, tmp_path):
    result = run("eval", tiny_run, "--n", 12, "--features", tiny_features[0], "--metrics", "nll", "--nll-n", 2,
                 "--quiet", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["nll"]["nll_n"] == 2 and {"bpd", "bpd_std_err"} <= set(rep["generated"])
    assert "nll_nats_per_dim" not in rep["nll"] and "bpd_8bit" not in rep["nll"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Likelihood" in md and "bits/dim (dequantized bound)" in md and "upper bound" in md
    # Even the native 8x8 digits have constant pixels: the report says the data fill a subspace.
    span = rep["nll"]["span"]
    assert span["rank"] < span["dims"] and f"span only {span['rank']} of {span['dims']}" in md
    bad = run("eval", tiny_run, "--metrics", "nll", "--nll-levels", 1, "--out", tmp_path / "x")
    assert bad.exit_code == 2 and "--nll-levels 1 is out of range" in bad.output


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["--metrics", "fd,fid"], ["unknown metric 'fid'", "fd, kid, pr, acc, nll"]),
        (["--features", "inception"], ["Inception weight file not found", ev.INCEPTION_URL, "put it there"]),
        (["--features", "{tmp}/nope"], ["does not exist", "fit-features"]),
        (["--solver", "nope"], ["--solver 'nope' is not a solver; valid:"]),
        (["--sweep-nfe", "4,x"], ["--sweep-nfe", "comma-separated"]),
    ],
)
def test_eval_user_errors(tiny_run, tmp_path, extra, fragments):
    extra = [str(e).replace("{tmp}", str(tmp_path)) for e in extra]
    result = run("eval", tiny_run, "--out", tmp_path / "r", *extra)
    assert_user_error(result, *fragments)


def test_eval_not_a_run(tmp_path):
    assert_user_error(run("eval", tmp_path, "--out", tmp_path / "r"), "is not a noisecraft run")
    assert_user_error(run("eval", tmp_path / "missing", "--out", tmp_path / "r"), "does not exist")


def test_fit_features_cli(tmp_path):
    out = tmp_path / "feat"
    result = run("eval", "fit-features", "digits", "--out", out, "--resolution", 8, "--steps", 3, "--width", 4,
                 "--feature-dim", 8, "--quiet")
    assert result.exit_code == 0, result.output
    assert "held-out accuracy" in result.output
    ext = ev.load_extractor(out)
    assert ext.feature_dim == 8 and ext.info["held_out_images"] > 0 and ext.info["train"]["steps"] == 3
    assert_user_error(run("eval", "fit-features", "nope", "--out", tmp_path / "x", "--steps", 1), "unknown dataset 'nope'")
    assert_user_error(run("eval", "fit-features", "digits", "--out", tmp_path / "x", "--channels", 2),
                      "--channels 2 is not valid")


def test_eval_help_lists_both_commands():
    result = run("eval", "--help")
    assert result.exit_code == 0 and "fit-features" in result.output and "run" in result.output


def test_eval_too_few_samples_for_fd(tiny_run, tiny_features, tmp_path):
    result = run("eval", tiny_run, "--n", 5, "--features", tiny_features[0], "--out", tmp_path / "r")
    assert_user_error(result, "--n 5 is too small for FD with 8-d features", "need at least 9")
    assert not (tmp_path / "r").exists()


def test_eval_of_a_run_without_default_features_is_one_line(tmp_path):
    """A 1-D (array) run: no default evaluation features yet, said in one line before any work."""
    from noisecraft.config import load_config
    from noisecraft.train import train

    train(load_config("tiny", ["data.source=waves", "data.resolution=16", "train.steps=1", "ema.phema_every=0",
                               "train.tensorboard=false", "sample.per_class=1"]), tmp_path / "w", progress=False)
    res = CliRunner().invoke(main_cli, ["eval", str(tmp_path / "w"), "--out", str(tmp_path / "rep"), "--n", "16"])
    assert res.exit_code == 2 and "no default evaluation features for the array modality" in res.output
    assert not (tmp_path / "rep").exists()
