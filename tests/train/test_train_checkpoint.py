"""Checkpoints: flatten/unflatten, atomic saves that survive a crash, retention, refusal of bad files."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from noisecraft.runs import checkpoint as ck
from noisecraft.runs.checkpoint import (
    CheckpointError,
    decode_bytes,
    encode_bytes,
    flatten_state,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    unflatten_state,
)


def _state(v: float) -> dict:
    return {
        "model": {"conv.weight": torch.full((2, 3), v), "conv.bias": torch.arange(3.0)},
        "optim": {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.ones(2)}}, "param_groups": [{"lr": 0.1, "betas": [0.9, 0.99], "params": [0]}]},
        "progress": {"step": 7, "samples_seen": 448},
        "flags": [True, None, "x"],
    }


def _equal(a, b) -> bool:
    ta, ma = flatten_state(a)
    tb, mb = flatten_state(b)
    return ma == mb and ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_flatten_roundtrip_keeps_int_keys():
    s = _state(1.0)
    t, m = flatten_state(s)
    back = unflatten_state(t, json.loads(json.dumps(m)))
    assert 0 in back["optim"]["state"]
    assert _equal(back, s)


def test_generator_state_roundtrip():
    g = torch.Generator().manual_seed(3)
    torch.rand(5, generator=g)
    text = encode_bytes(g.get_state())
    h = torch.Generator()
    h.set_state(decode_bytes(text))
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=h))


def test_save_load_and_retention(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, _state(step), keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000002", "ckpt-00000003"]
    step, state = load_checkpoint(latest_checkpoint(tmp_path))
    assert step == 3 and _equal(state, _state(3))


def test_crash_before_rename_keeps_previous(tmp_path):
    save_checkpoint(tmp_path, 1, _state(1.0))

    def crash(tmp):
        raise OSError("disk died")

    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 2, _state(2.0), _before_rename=crash)
    latest = latest_checkpoint(tmp_path)
    assert latest.name == "ckpt-00000001"
    assert _equal(load_checkpoint(latest)[1], _state(1.0))
    # the next save cleans up the leftovers of the crashed one
    save_checkpoint(tmp_path, 2, _state(2.0))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert latest_checkpoint(tmp_path).name == "ckpt-00000002"


def test_crash_before_marker_keeps_previous(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, _state(1.0))
    real = ck.atomic_write_text

    def failing(path, text):
        if path.name == ck.MARKER:
            raise KeyboardInterrupt  # killed right after the rename
        real(path, text)

    monkeypatch.setattr(ck, "atomic_write_text", failing)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, 2, _state(2.0))
    monkeypatch.setattr(ck, "atomic_write_text", real)
    assert (tmp_path / "ckpt-00000002").is_dir()  # renamed into place but never marked complete
    assert latest_checkpoint(tmp_path).name == "ckpt-00000001"
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-00000001"]
    save_checkpoint(tmp_path, 2, _state(2.0))  # the retry replaces the incomplete folder
    assert _equal(load_checkpoint(latest_checkpoint(tmp_path))[1], _state(2.0))


def test_latest_pointer_to_missing_folder_falls_back(tmp_path):
    save_checkpoint(tmp_path, 1, _state(1.0))
    save_checkpoint(tmp_path, 2, _state(2.0))
    (tmp_path / "latest").write_text("ckpt-00000009\n")
    assert latest_checkpoint(tmp_path).name == "ckpt-00000002"


def test_corrupt_file_is_refused(tmp_path):
    path = save_checkpoint(tmp_path, 1, _state(1.0))
    data = bytearray((path / "state.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (path / "state.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(path)


def test_nonfinite_tensors_refused(tmp_path):
    bad = _state(1.0)
    bad["model"]["conv.weight"][0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="non-finite"):
        save_checkpoint(tmp_path, 1, bad)
    # a file that was written with NaN by something else (checksums made consistent) is refused on load
    path = save_checkpoint(tmp_path, 2, _state(1.0))
    from safetensors.torch import save as st_save

    t, _ = flatten_state(_state(1.0))
    t["model/conv.weight"][1, 1] = float("inf")
    blob = st_save(t)
    (path / "state.safetensors").write_bytes(blob)
    marker = json.loads((path / "COMPLETE").read_text())
    marker["files"]["state.safetensors"] = hashlib.sha256(blob).hexdigest()
    (path / "COMPLETE").write_text(json.dumps(marker))
    with pytest.raises(CheckpointError, match="non-finite"):
        load_checkpoint(path)


def test_incomplete_folder_is_not_loaded(tmp_path):
    path = save_checkpoint(tmp_path, 1, _state(1.0))
    (path / "COMPLETE").unlink()
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        load_checkpoint(path)
    assert latest_checkpoint(tmp_path) is None
