"""Small pieces of the loop: learning-rate schedule, data order, classic EMA."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noisecraft.config import OptimConfig
from noisecraft.train.ema import EMA
from noisecraft.train import DataOrder, learning_rate


def test_warmup_then_cosine():
    cfg = OptimConfig(lr=1.0, warmup_steps=4, decay="cosine", min_lr=0.1)
    lrs = [learning_rate(cfg, s, 20) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))


def test_linear_and_inv_sqrt_and_none():
    assert learning_rate(OptimConfig(lr=1.0, warmup_steps=0, decay="linear", min_lr=0.0), 9, 10) == pytest.approx(0.0)
    inv = OptimConfig(lr=1.0, warmup_steps=0, decay="inv_sqrt", decay_start=10)
    assert learning_rate(inv, 5, 100) == 1.0 and learning_rate(inv, 40, 100) == pytest.approx(0.5)
    assert learning_rate(OptimConfig(lr=0.3, warmup_steps=0), 50, 100) == 0.3


def test_data_order_is_a_permutation_per_epoch_and_resumable():
    order = DataOrder(10, seed=1)
    first = order.take(10)
    second = order.take(10)
    assert sorted(first.tolist()) == list(range(10)) == sorted(second.tolist())
    assert not torch.equal(first, second)
    a = DataOrder(10, seed=1)
    a.take(7)
    b = DataOrder.from_state(a.state(), 10, seed=1)
    assert torch.equal(a.take(9), b.take(9))
    assert torch.equal(DataOrder(10, seed=1).take(25)[:20], torch.cat([first, second]))


def test_ema_update_and_roundtrip():
    net = nn.Linear(2, 1, bias=False)
    ema = EMA(net, decay=0.5, warmup=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    before = ema.module.weight.clone()
    ema.update(net)
    torch.testing.assert_close(ema.module.weight, 0.5 * before + 0.5)
    other = EMA(nn.Linear(2, 1, bias=False), decay=0.1)
    other.load_state_dict(ema.state_dict())
    assert torch.equal(other.module.weight, ema.module.weight) and other.num_updates == 1 and other.decay == 0.5
    assert EMA(net, 0.999, warmup=True).current_decay() == pytest.approx(0.1)
