"""The training loop: bitwise resume, crash before the first checkpoint, refusals, loss goes down."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from noisecraft.runs import checkpoint as ck
from noisecraft.runs.checkpoint import CheckpointError, flatten_state, latest_checkpoint, load_checkpoint
from noisecraft.train import build_net, make_loss, train
from noisecraft.conditioning import ClassLabels
from noisecraft.runs import Run, RunError, build_denoiser


def _final_state(run):
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))


def _assert_same_state(a, b):
    (sa, ma), (sb, mb) = a, b
    assert sa == sb
    ta, ja = flatten_state(ma)
    tb, jb = flatten_state(mb)
    assert ja == jb  # progress, RNG states, data position, optimizer hyper-state, config
    assert ta.keys() == tb.keys()
    diff = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not diff, diff[:5]


def _snapshots(run):
    from safetensors import safe_open

    out = {}
    for p in sorted((run / "phema").iterdir()):
        with safe_open(str(p), framework="pt") as f:
            out[p.name] = (f.metadata(), {k: f.get_tensor(k) for k in f.keys()})
    return out


def _same_snapshots(a, b):
    assert a.keys() == b.keys() and a
    for k in a:
        assert a[k][0] == b[k][0]
        assert all(torch.equal(a[k][1][n], b[k][1][n]) for n in a[k][1])


@pytest.mark.parametrize("stop", [3, 5], ids=["mid-epoch", "epoch-boundary"])
def test_resume_is_bitwise_identical(tiny_config, tmp_path, small_ds, stop):
    cfg = tiny_config()
    straight = train(cfg, tmp_path / "a", dataset=small_ds, progress=False)
    part = train(cfg, tmp_path / "b", dataset=small_ds, progress=False, stop_at=stop)
    assert part.step == stop
    state = _final_state(tmp_path / "b")[1]
    assert state["data_order"]["index"] == (stop * 8) % 40 or state["data_order"]["index"] == 40
    rest = train(None, tmp_path / "b", resume=True, dataset=small_ds, progress=False)
    assert rest.resumed_from == stop and rest.step == 10
    assert straight.losses[stop:] == rest.losses
    _assert_same_state(_final_state(tmp_path / "a"), _final_state(tmp_path / "b"))
    _same_snapshots(_snapshots(tmp_path / "a"), _snapshots(tmp_path / "b"))
    rows = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 10  # no duplicated lines after the resume


def test_run_that_died_before_first_checkpoint_resumes_from_start(tiny_config, tmp_path, small_ds):
    cfg = tiny_config("train.steps=6", "train.checkpoint_every=100")
    straight = train(cfg, tmp_path / "a", dataset=small_ds, progress=False)

    def die(step, loss):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "b", dataset=small_ds, progress=False, on_step=die)
    assert (tmp_path / "b" / "run.json").is_file() and latest_checkpoint(tmp_path / "b" / "checkpoints") is None
    again = train(None, tmp_path / "b", resume=True, dataset=small_ds, progress=False)
    assert again.resumed_from == 0 and again.losses == straight.losses
    _assert_same_state(_final_state(tmp_path / "a"), _final_state(tmp_path / "b"))


def test_crash_during_checkpoint_save_resumes_from_previous(tiny_config, tmp_path, small_ds, monkeypatch):
    cfg = tiny_config("train.steps=6", "train.checkpoint_every=2")
    straight = train(cfg, tmp_path / "a", dataset=small_ds, progress=False)
    real = ck.save_checkpoint

    def crashing(ckpt_dir, step, state, **kw):
        if step == 4:
            return real(ckpt_dir, step, state, _before_rename=lambda tmp: (_ for _ in ()).throw(OSError("power cut")), **kw)
        return real(ckpt_dir, step, state, **kw)

    monkeypatch.setattr("noisecraft.train.hooks.save_checkpoint", crashing)
    with pytest.raises(OSError, match="power cut"):
        train(cfg, tmp_path / "b", dataset=small_ds, progress=False)
    monkeypatch.setattr("noisecraft.train.hooks.save_checkpoint", real)
    assert latest_checkpoint(tmp_path / "b" / "checkpoints").name == "ckpt-00000002"
    rest = train(None, tmp_path / "b", resume=True, dataset=small_ds, progress=False)
    assert rest.resumed_from == 2 and rest.losses == straight.losses[2:]
    _assert_same_state(_final_state(tmp_path / "a"), _final_state(tmp_path / "b"))


def _rewrite_json(ckpt, edit):
    doc = json.loads((ckpt / "state.json").read_text())
    edit(doc["state"])
    text = json.dumps(doc).encode()
    (ckpt / "state.json").write_bytes(text)
    marker = json.loads((ckpt / "COMPLETE").read_text())
    marker["files"]["state.json"] = hashlib.sha256(text).hexdigest()
    (ckpt / "COMPLETE").write_text(json.dumps(marker))


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s["rng"].pop("trainer"), "RNG state 'trainer'"),
        (lambda s: s["rng"].__setitem__("torch", "AAAA"), "RNG state 'torch'"),
        (lambda s: s.pop("rng"), "no RNG state"),
        (lambda s: s.pop("data_order"), "data-order state"),
        (lambda s: s["data_order"].__setitem__("num_items", 41), "dataset now has 40"),
    ],
)
def test_resume_refuses_missing_or_corrupt_state(tiny_config, tmp_path, small_ds, edit, match):
    cfg = tiny_config("train.steps=2", "ema.phema_every=0")
    train(cfg, tmp_path / "r", dataset=small_ds, progress=False)
    ckpt = latest_checkpoint(tmp_path / "r" / "checkpoints")
    _rewrite_json(ckpt, edit)
    before = (ckpt / "state.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match=match) as e:
        train(tiny_config("train.steps=4", "ema.phema_every=0"), tmp_path / "r", resume=True, dataset=small_ds, progress=False)
    assert "\n" not in str(e.value)
    assert (ckpt / "state.safetensors").read_bytes() == before


def test_new_run_refuses_existing_run(tiny_config, tmp_path, small_ds):
    cfg = tiny_config("train.steps=2")
    train(cfg, tmp_path / "r", dataset=small_ds, progress=False)
    snapshot = {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    with pytest.raises(RunError, match="already holds a run"):
        train(cfg, tmp_path / "r", dataset=small_ds, progress=False)
    assert snapshot == {p: p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file()}
    with pytest.raises(RunError, match="not a noisecraft run"):
        train(None, tmp_path / "nothing", resume=True, dataset=small_ds, progress=False)


def test_loss_decreases(tiny_config, tmp_path, digits8):
    cfg = tiny_config("train.steps=40", "train.batch_size=32", "train.accum_steps=1", "optim.lr=4e-3",
                      "train.class_dropout=0", "ema.phema_every=0", "optim.decay=none")
    result = train(cfg, tmp_path / "r", progress=False)
    init = build_net(cfg, (1, 8, 8), [ClassLabels([str(i) for i in range(10)])])
    trained = Run.open(tmp_path / "r").denoiser("raw")
    loss = make_loss(cfg)
    x0 = digits8.images[:256]
    labels = torch.nn.functional.one_hot(digits8.labels[:256], 10).float()

    def evaluate(den):
        with torch.no_grad():
            return float(loss(den, x0, generator=torch.Generator().manual_seed(0), class_labels=labels))

    before, after = evaluate(build_denoiser(init, cfg)), evaluate(trained)
    assert after < 0.7 * before, (before, after)
    assert sum(result.losses[-10:]) < sum(result.losses[:10])
    assert (tmp_path / "r" / "loss.png").stat().st_size > 1000
    assert (tmp_path / "r" / "samples" / "step-00000040.png").is_file()


def test_tensorboard_and_bf16(tiny_config, tmp_path, small_ds):
    cfg = tiny_config("train.steps=2", "train.tensorboard=true", "train.bf16=true", "ema.phema_every=0")
    result = train(cfg, tmp_path / "r", dataset=small_ds, progress=False)
    assert result.step == 2 and torch.isfinite(torch.tensor(result.losses)).all()
    assert list((tmp_path / "r" / "tb").glob("events.out.tfevents.*"))
