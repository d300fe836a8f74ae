"""Determinism on the CPU: the same seed gives bitwise identical training runs and samples, no matter
what the global RNGs hold; resume is exact with every source of randomness in play (dropout through
torch's global generator, flips, label dropout, σ/ε, data order, LR warm-up/decay, EMA, post-hoc EMA)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import noisecraft as nc
from noisecraft.train import loop
from noisecraft.runs.checkpoint import flatten_state, latest_checkpoint, load_checkpoint
from noisecraft.train import train
from noisecraft.runs import Run


@pytest.fixture(autouse=True)
def _no_loss_plot(monkeypatch):
    monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)  # matplotlib time, irrelevant here


def _final(run):
    step, state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    tensors, meta = flatten_state(state)
    return step, tensors, meta


def _assert_equal_runs(a, b):
    (sa, ta, ma), (sb, tb, mb) = _final(a), _final(b)
    assert sa == sb and ma == mb and ta.keys() == tb.keys()
    assert not [k for k in ta if not torch.equal(ta[k], tb[k])]
    snaps = sorted(p.name for p in (a / "phema").iterdir())
    assert snaps == sorted(p.name for p in (b / "phema").iterdir())
    from safetensors import safe_open

    for n in snaps:  # tensors and metadata (the header's key order is not fixed, so not the bytes)
        with safe_open(str(a / "phema" / n), framework="pt") as fa, safe_open(str(b / "phema" / n), framework="pt") as fb:
            assert fa.metadata() == fb.metadata() and set(fa.keys()) == set(fb.keys())
            assert all(torch.equal(fa.get_tensor(k), fb.get_tensor(k)) for k in fa.keys())


def _rows(run, keys=("step", "samples", "loss", "lr", "grad_norm")):
    return [{k: r[k] for k in keys} for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def _global_rng_states():
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def test_two_fresh_runs_are_bitwise_equal_whatever_the_global_rngs(tiny_config, tmp_path, small_ds):
    cfg = tiny_config("train.steps=6", "net.overrides.dropout=0.2")
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    before = _global_rng_states()
    a = train(cfg, tmp_path / "a", dataset=small_ds, progress=False)
    after = _global_rng_states()
    # training neither consumes nor leaves a mark on the global torch / numpy / python generators
    assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
    torch.manual_seed(999), np.random.seed(999), random.seed(999)
    b = train(cfg, tmp_path / "b", dataset=small_ds, progress=False)
    assert a.losses == b.losses and _rows(tmp_path / "a") == _rows(tmp_path / "b")
    _assert_equal_runs(tmp_path / "a", tmp_path / "b")
    c = train(tiny_config("train.steps=6", "net.overrides.dropout=0.2", "train.seed=1"), tmp_path / "c",
              dataset=small_ds, progress=False)
    assert c.losses != a.losses  # and the seed does matter


def test_resume_is_exact_with_dropout_flips_and_schedule(tiny_config, tmp_path, small_ds):
    """Dropout draws from torch's global generator (checkpointed); flips and label dropout from the
    trainer's; the LR warm-up ends at step 3 and cosine decay follows. 40 items, batch 8: step 5 ends
    epoch 0, so stopping at 3 is mid-epoch and at 5 the epoch boundary."""
    cfg = tiny_config("train.steps=8", "net.overrides.dropout=0.2", "train.log_every=1")
    straight = train(cfg, tmp_path / "a", dataset=small_ds, progress=False)
    lrs = [r["lr"] for r in _rows(tmp_path / "a")]
    assert lrs[:3] == pytest.approx([2e-3 / 3, 4e-3 / 3, 2e-3]) and lrs[3] > lrs[4] > lrs[-1]  # warm-up, then decay
    for stop, position in ((3, (0, 24)), (5, (0, 40))):
        run = tmp_path / f"stop{stop}"
        train(cfg, run, dataset=small_ds, progress=False, stop_at=stop)
        order = load_checkpoint(latest_checkpoint(run / "checkpoints"))[1]["data_order"]
        assert (order["epoch"], order["index"]) == position
        rest = train(None, run, resume=True, dataset=small_ds, progress=False)
        assert rest.losses == straight.losses[stop:]
        assert _rows(tmp_path / "a") == _rows(run)  # losses, learning rates, gradient norms per step
        _assert_equal_runs(tmp_path / "a", run)


def test_every_random_source_changes_the_run(tiny_config, tmp_path, small_ds):
    """The resume tests above would miss a lost RNG only if that RNG did nothing: check each one acts."""
    from noisecraft.data import ImageDataset

    # 3 steps: the zero-initialised output layers hide dropout from the first two losses
    base = train(tiny_config("train.steps=3", "net.overrides.dropout=0.2"), tmp_path / "base", dataset=small_ds,
                 progress=False).losses
    no_flip = ImageDataset(small_ds.images, small_ds.labels, class_names=small_ds.class_names, name="digits-40")
    assert train(tiny_config("train.steps=3", "net.overrides.dropout=0.2"), tmp_path / "f", dataset=no_flip,
                 progress=False).losses != base
    assert train(tiny_config("train.steps=3", "net.overrides.dropout=0.0"), tmp_path / "d", dataset=small_ds,
                 progress=False).losses != base
    assert train(tiny_config("train.steps=3", "net.overrides.dropout=0.2", "train.class_dropout=0"), tmp_path / "l",
                 dataset=small_ds, progress=False).losses != base


def test_same_seed_same_samples_bitwise(tiny_config, tmp_path, small_ds):
    train(tiny_config("train.steps=2"), tmp_path / "r", dataset=small_ds, progress=False)
    saved = Run.open(tmp_path / "r")
    den = saved.denoiser("ema")
    for solver in ("heun", "euler_ancestral", "dpmpp_2m_sde"):  # deterministic and two stochastic solvers
        draw = lambda seed, n=4: saved.generate(saved.spec(seed=seed, guidance=2.0, solver=solver, nfe=4), n,  # noqa: E731
                                                class_labels=[1, 2, 3, 4][:n])
        torch.manual_seed(0)
        a = draw(7)
        torch.manual_seed(123)  # the global generator plays no part
        b = draw(7)
        assert torch.equal(a, b) and torch.isfinite(a).all(), solver
        assert not torch.equal(a, draw(8))
        # sample i uses seed + i: the same noise alone or in a batch (equal up to the float rounding of
        # batched convolutions, which is why only same-batch results are promised bitwise)
        torch.testing.assert_close(draw(8, n=1), a[1:2], atol=2e-2, rtol=0)
        # the library call underneath: a generator per sample, same seeds -> same bits
        noise = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 80
        run = lambda: nc.sample(den, noise, solver=solver, nfe=4, class_labels=torch.eye(10)[:3],  # noqa: E731
                                generator=nc.seeded_generators([0, 1, 2]))
        assert torch.equal(run(), run())
