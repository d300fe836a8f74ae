"""Non-finite steps (train.nonfinite / train.max_nonfinite): NaN/Inf injected into the loss or into one
parameter's gradient at chosen steps; skipped updates leave every piece of training state alone,
are counted, stay deterministic across resume; the stop policy leaves the last checkpoint usable."""

from __future__ import annotations

import json
import math

import pytest
import torch

from noisecraft.train import loop
from noisecraft.runs.checkpoint import CheckpointError, flatten_state, latest_checkpoint, load_checkpoint
from noisecraft.config import ConfigError
from noisecraft.train import TrainingError, train

ACCUM = 2  # tiny_config: two micro-batches per attempted step


@pytest.fixture(autouse=True)
def _no_loss_plot(monkeypatch):
    monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)  # matplotlib time, irrelevant here


def _inject_loss(monkeypatch, bad: dict[int, float], seen: list | None = None):
    """Make the loss of the first micro-batch of attempt k (0-based, skipped ones included) equal bad[k].
    `seen` collects (attempt, parameters at the start of the attempt)."""
    real = loop.make_loss

    def make_loss(cfg):
        fn, calls = real(cfg), [0]

        def wrapped(denoiser, x0, **kw):
            attempt, first = divmod(calls[0], ACCUM)[0], calls[0] % ACCUM == 0
            calls[0] += 1
            if seen is not None and first:
                seen.append((attempt, [p.detach().clone() for p in denoiser.parameters()]))
            loss = fn(denoiser, x0, **kw)
            return loss * bad[attempt] if first and attempt in bad else loss

        return wrapped

    monkeypatch.setattr(loop, "make_loss", make_loss)


def _inject_grad(monkeypatch, bad: dict[int, float]):
    """Put bad[k] into one element of one parameter's gradient during attempt k."""
    real = loop.build_net

    def build_net(*args, **kw):
        net = real(*args, **kw)
        param = next(p for p in net.parameters() if p.numel() > 4)
        calls = [0]

        def hook(g):
            attempt = calls[0] // ACCUM
            calls[0] += 1
            if attempt in bad and calls[0] % ACCUM == 1:
                g = g.clone()
                g.view(-1)[3] = bad[attempt]
            return g

        param.register_hook(hook)
        return net

    monkeypatch.setattr(loop, "build_net", build_net)


def _state(run):
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))


def _same(a, b, *, ignore_config: bool = False):
    (sa, ma), (sb, mb) = a, b
    ta, ja = flatten_state(ma)
    tb, jb = flatten_state(mb)
    if ignore_config:  # runs that differ only in train.nonfinite / max_nonfinite
        ja, jb = ({k: v for k, v in j.items() if k != "config"} for j in (ja, jb))
    assert sa == sb and ja == jb and ta.keys() == tb.keys()
    assert not [k for k in ta if not torch.equal(ta[k], tb[k])]


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_config_keys_are_checked(tiny_config):
    assert tiny_config().train.nonfinite == "skip" and tiny_config().train.max_nonfinite == 5
    with pytest.raises(ConfigError, match="train.nonfinite = 'ignore'.*skip, stop"):
        tiny_config("train.nonfinite=ignore")
    with pytest.raises(ConfigError, match="train.max_nonfinite = 0"):
        tiny_config("train.max_nonfinite=0")


@pytest.mark.parametrize("where", ["loss", "grad", "grad-noclip"])
def test_skip_policy_skips_exactly_the_bad_updates(tiny_config, tmp_path, small_ds, monkeypatch, where):
    cfg = tiny_config("train.steps=8", "train.checkpoint_every=4", "train.log_every=1", "ema.phema_every=2",
                      *(["optim.grad_clip=0"] if where == "grad-noclip" else []))
    bad = {2: math.nan, 6: math.inf}  # attempts 2 and 6 (0-based) fail; attempt 6 follows the retry of 2
    seen: list = []
    if where == "loss":
        _inject_loss(monkeypatch, bad, seen)
    else:
        _inject_grad(monkeypatch, bad)
        _inject_loss(monkeypatch, {}, seen)
    result = train(cfg, tmp_path / "r", dataset=small_ds, progress=False)
    assert result.step == 8 and result.nonfinite_steps == 2 and len(result.losses) == 8
    assert all(math.isfinite(v) for v in result.losses)
    # parameters at the start of the attempt after a bad one equal those at the start of the bad one
    params = dict(seen)
    assert len(params) == 10  # 8 applied + 2 skipped attempts
    for k in bad:
        assert all(torch.equal(p, q) for p, q in zip(params[k], params[k + 1]))
    assert not all(torch.equal(p, q) for p, q in zip(params[1], params[2]))  # a good attempt does update
    step, state = _state(tmp_path / "r")
    assert step == 8 and state["progress"] == {"step": 8, "samples_seen": 64, "nonfinite_steps": 2}
    assert state["ema"]["num_updates"] == 8  # EMA updated once per applied step only
    assert {int(s["step"]) for s in state["optim"]["state"].values()} == {8}  # AdamW moments likewise
    assert state["data_order"] == {"epoch": 1, "index": 40, "num_items": 40}  # 10 batches of 8 consumed, not 8
    flat, _ = flatten_state(state)
    assert all(torch.isfinite(t).all() for t in flat.values() if t.is_floating_point())
    snaps = sorted(p.name for p in (tmp_path / "r" / "phema").iterdir())
    assert snaps[-1].startswith("snap-000000000064-")  # post-hoc EMA time = samples of applied updates
    rows = _rows(tmp_path / "r")
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert [r["nonfinite_steps"] for r in rows] == [0, 0, 1, 1, 1, 2, 2, 2]
    assert all(math.isfinite(r["grad_norm"]) for r in rows)


def test_skipped_steps_are_deterministic_and_resume_exactly(tiny_config, tmp_path, small_ds, monkeypatch):
    cfg = tiny_config("train.steps=8", "train.checkpoint_every=100")
    _inject_loss(monkeypatch, {3: math.nan, 4: -math.inf})
    a = train(cfg, tmp_path / "a", dataset=small_ds, progress=False)
    b = train(cfg, tmp_path / "b", dataset=small_ds, progress=False)
    assert a.losses == b.losses and a.nonfinite_steps == b.nonfinite_steps == 2
    _same(_state(tmp_path / "a"), _state(tmp_path / "b"))
    # attempts 3 and 4 fail, so steps 4 and 5 are retried; stop after step 5 and resume
    part = train(cfg, tmp_path / "c", dataset=small_ds, progress=False, stop_at=5)
    assert part.nonfinite_steps == 2
    monkeypatch.undo()  # the resumed process has no injection: the counter comes from the checkpoint
    monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)
    rest = train(None, tmp_path / "c", resume=True, dataset=small_ds, progress=False)
    assert rest.resumed_from == 5 and rest.nonfinite_steps == 2 and rest.losses == a.losses[5:]
    _same(_state(tmp_path / "a"), _state(tmp_path / "c"))


def test_stop_policy_and_max_consecutive_stop_with_a_clear_message(tiny_config, tmp_path, small_ds, monkeypatch):
    straight = None
    for policy in ("stop", "skip"):
        cfg = tiny_config("train.steps=8", "train.checkpoint_every=2", f"train.nonfinite={policy}", "train.max_nonfinite=3")
        if straight is None:  # the policy changes nothing in a run without non-finite steps
            straight = train(cfg, tmp_path / "ok", dataset=small_ds, progress=False)
        # stop: fails at once on attempt 5; skip: attempts 5, 6, 7 in a row reach max_nonfinite = 3
        bad = {5: math.nan} if policy == "stop" else {5: math.nan, 6: math.inf, 7: math.nan}
        _inject_loss(monkeypatch, bad)
        with pytest.raises(TrainingError) as e:
            train(cfg, tmp_path / policy, dataset=small_ds, progress=False)
        msg = str(e.value)
        assert "\n" not in msg and "training stopped at step 6: non-finite loss" in msg
        assert "optim.lr" in msg and "optim.grad_clip" in msg and "ckpt-00000004" in msg
        if policy == "stop":
            assert "train.nonfinite = 'stop'" in msg and "(1 non-finite steps in this run)" in msg
        else:
            assert "3 consecutive non-finite steps reached train.max_nonfinite = 3" in msg and "(3 non-finite" in msg
        ckpt = latest_checkpoint(tmp_path / policy / "checkpoints")
        assert ckpt.name == "ckpt-00000004"
        step, state = load_checkpoint(ckpt)  # intact: checksums and finiteness verified
        assert step == 4 and state["progress"]["nonfinite_steps"] == 0
        monkeypatch.undo()
        monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)
        rest = train(None, tmp_path / policy, resume=True, dataset=small_ds, progress=False)
        assert rest.resumed_from == 4 and rest.losses == straight.losses[4:] and rest.nonfinite_steps == 0
        _same(_state(tmp_path / "ok"), _state(tmp_path / policy), ignore_config=True)


def test_policy_may_change_on_resume(tiny_config, tmp_path, small_ds, monkeypatch):
    cfg = tiny_config("train.steps=6", "train.checkpoint_every=2", "train.nonfinite=stop")
    _inject_loss(monkeypatch, {3: math.nan})
    with pytest.raises(TrainingError, match="step 4"):
        train(cfg, tmp_path / "r", dataset=small_ds, progress=False)
    more = tiny_config("train.steps=6", "train.checkpoint_every=2", "train.nonfinite=skip", "train.max_nonfinite=2")
    # the same NaN comes back (the resume is exact) and is now skipped
    result = train(more, tmp_path / "r", resume=True, dataset=small_ds, progress=False)
    assert result.step == 6 and result.nonfinite_steps == 1


def test_a_checkpoint_with_nonfinite_weights_is_never_written(tiny_config, tmp_path, small_ds, monkeypatch):
    """Non-finite weights that slip past the loss/gradient check (here: a corrupted optimizer step)
    are refused by save_checkpoint; the previous checkpoint stays the newest and loads."""
    cfg = tiny_config("train.steps=6", "train.checkpoint_every=2")
    real_step, calls = torch.optim.AdamW.step, [0]

    def step(self, *a, **kw):
        out = real_step(self, *a, **kw)
        calls[0] += 1
        if calls[0] == 4:  # step 4, right before the checkpoint of step 4
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = math.nan
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    with pytest.raises(CheckpointError, match="refusing to save checkpoint ckpt-00000004: tensor 'model/.*non-finite"):
        train(cfg, tmp_path / "r", dataset=small_ds, progress=False)
    ckpts = tmp_path / "r" / "checkpoints"
    assert latest_checkpoint(ckpts).name == "ckpt-00000002"
    assert sorted(p.name for p in ckpts.iterdir()) == ["ckpt-00000002", "latest"]
    load_checkpoint(latest_checkpoint(ckpts))
