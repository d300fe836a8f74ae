"""Evaluation during training ([eval]): eval.jsonl at the right steps, best/ weights, bitwise resume."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from noisecraft.eval import fit_classifier, save_extractor
from noisecraft.runs.checkpoint import flatten_state, latest_checkpoint, load_checkpoint
from noisecraft.config import ConfigError, load_config
from noisecraft.train import train
from noisecraft.runs import Run, weight_choices


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISECRAFT_CACHE", str(tmp_path / "nc-cache"))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    """A few-step 8-d feature classifier on 8x8 digits, saved as an eval.features folder."""
    from noisecraft.data import load_dataset

    tr = load_dataset("digits", resolution=8, split="train")
    result = fit_classifier(tr.images, tr.labels, tr.class_names, steps=20, batch_size=32, width=4, feature_dim=8,
                            dataset="digits")
    return save_extractor(result.extractor, tmp_path_factory.mktemp("features") / "digits8")


def _eval_config(tiny_config, features, *extra):
    return tiny_config("eval.every=3", "eval.n=32", "eval.nfe=2", 'eval.metrics=["fd", "kid"]',
                       f'eval.features="{features}"', "eval.keep_best=fd", *extra)


def _rows(run):
    return [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]


def _metrics(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _final(run):
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))


def test_metrics_logged_and_best_kept(tiny_config, features, tmp_path, small_ds):
    cfg = _eval_config(tiny_config, features, "train.tensorboard=true")
    train(cfg, tmp_path / "r", dataset=small_ds, progress=False)
    run = tmp_path / "r"
    rows = _rows(run)
    assert [r["step"] for r in rows] == [3, 6, 9, 10]  # every 3 steps and the last step
    assert all({"fd", "kid", "kid_std_err", "samples", "n"} <= r.keys() for r in rows)
    assert all(r["samples"] == 8 * r["step"] and r["n"] == 32 for r in rows)
    best_row = min(rows, key=lambda r: r["fd"])
    best = json.loads((run / "best" / "best.json").read_text())
    assert best["metric"] == "fd" and best["step"] == best_row["step"] and best["value"] == best_row["fd"]
    assert _final(run)[1]["eval_best"] == {"metric": "fd", "value": best_row["fd"], "step": best_row["step"]}
    assert list((run / "tb").glob("events.out.tfevents.*"))
    # `--weights best` loads exactly those weights
    assert "best" in weight_choices(run)
    den = Run.open(run).denoiser("best")
    with safe_open(str(run / "best" / "ema.safetensors"), framework="pt") as f:
        saved = {k: f.get_tensor(k) for k in f.keys()}
        assert f.metadata()["step"] == str(best_row["step"])
    loaded = den.net.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(loaded[k], v) for k, v in saved.items())


def test_resume_with_eval_is_bitwise_identical(tiny_config, features, tmp_path, small_ds):
    cfg = _eval_config(tiny_config, features, "train.checkpoint_every=4")
    train(cfg, tmp_path / "a", dataset=small_ds, progress=False)
    train(cfg, tmp_path / "b", dataset=small_ds, progress=False, stop_at=5)  # checkpoint at 4 and 5
    rest = train(None, tmp_path / "b", resume=True, dataset=small_ds, progress=False)
    assert rest.resumed_from == 5 and rest.step == 10
    (sa, ma), (sb, mb) = _final(tmp_path / "a"), _final(tmp_path / "b")
    ta, ja = flatten_state(ma)
    tb, jb = flatten_state(mb)
    assert sa == sb and ja == jb  # includes the RNG states and the best-so-far value
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert _metrics(_rows(tmp_path / "a")) == _metrics(_rows(tmp_path / "b"))
    assert json.loads((tmp_path / "a" / "best" / "best.json").read_text()) == \
        json.loads((tmp_path / "b" / "best" / "best.json").read_text())
    wa, wb = (safe_open(str(tmp_path / r / "best" / "ema.safetensors"), framework="pt") for r in "ab")
    assert wa.keys() == wb.keys() and all(torch.equal(wa.get_tensor(k), wb.get_tensor(k)) for k in wa.keys())
    # and evaluation does not change training at all: the same run without [eval] ends with the same weights
    train(tiny_config("train.checkpoint_every=4"), tmp_path / "c", dataset=small_ds, progress=False)
    tc, _ = flatten_state(_final(tmp_path / "c")[1])
    assert all(torch.equal(ta[k], tc[k]) for k in ta)


def test_bad_eval_keys_are_one_line_errors():
    with pytest.raises(ConfigError) as e:
        load_config("tiny", ["eval.every=5", "eval.keep_best=fid"])
    msg = str(e.value)
    assert "\n" not in msg and "eval.keep_best = 'fid'" in msg and "fd, kid" in msg
    with pytest.raises(ConfigError, match="eval.keep_best = 'precision'.*valid: '' \\(off\\), fd, kid"):
        load_config("tiny", ["eval.keep_best=precision"])
    with pytest.raises(ConfigError, match="eval.metrics = 'nll' is not valid; valid: fd, kid, pr, acc"):
        load_config("tiny", ['eval.metrics=["fd", "nll"]'])
    with pytest.raises(ConfigError, match="eval.every = -1"):
        load_config("tiny", ["eval.every=-1"])
    assert load_config("tiny", ["eval.metrics=['pr']", "eval.keep_best=recall"]).eval.keep_best == "recall"


def test_cli_keep_best_error_is_one_line(tmp_path):
    from click.testing import CliRunner

    from noisecraft.cli.main import cli

    result = CliRunner().invoke(cli, ["train", "tiny", "--out", str(tmp_path / "r"), "--set", "eval.keep_best=bogus"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "eval.keep_best = 'bogus'" in lines[0], result.output
    assert not (tmp_path / "r").exists()


def test_the_hook_refuses_audio_runs_and_points_to_noisecraft_eval(tmp_path):
    """Audio is scored after training (`noisecraft eval RUN`); the hook's image features would not fit it."""
    cfg = load_config("tiny", ["data.source=notes", "data.resolution=256", "eval.every=1", "train.steps=1"])
    with pytest.raises(ConfigError, match=r"audio modality is evaluated after training \(`noisecraft eval RUN`"):
        train(cfg, tmp_path / "a", progress=False)
