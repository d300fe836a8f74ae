"""GPU speed options, checked for correctness on the CPU: channels-last trains the same model (up to
rounding) and resumes bitwise; torch.compile trains the same model (slow: it compiles)."""

from __future__ import annotations

import pytest
import torch

from noisecraft.runs.checkpoint import flatten_state, latest_checkpoint, load_checkpoint
from noisecraft.train import train


def _weights(run):
    tensors, _ = flatten_state(load_checkpoint(latest_checkpoint(run / "checkpoints"))[1])
    return tensors


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point() and a[k].numel())


def test_channels_last_trains_the_same_model_and_resumes_bitwise(tiny_config, small_ds, tmp_path):
    plain = tiny_config("train.steps=4")
    fast = tiny_config("train.steps=4", "train.channels_last=true")
    train(plain, tmp_path / "plain", dataset=small_ds, progress=False)
    train(fast, tmp_path / "fast", dataset=small_ds, progress=False)
    assert _max_diff(_weights(tmp_path / "plain"), _weights(tmp_path / "fast")) < 1e-5
    train(fast, tmp_path / "part", dataset=small_ds, progress=False, stop_at=2)
    train(None, tmp_path / "part", resume=True, dataset=small_ds, progress=False)
    a, b = _weights(tmp_path / "fast"), _weights(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_compiled_training_matches_eager(tiny_config, small_ds, tmp_path):
    train(tiny_config("train.steps=3"), tmp_path / "eager", dataset=small_ds, progress=False)
    train(tiny_config("train.steps=3", "train.compile=true"), tmp_path / "compiled", dataset=small_ds, progress=False)
    assert _max_diff(_weights(tmp_path / "eager"), _weights(tmp_path / "compiled")) < 1e-4
