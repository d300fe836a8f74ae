"""Helpers for the untrusted-file tests (a plain module: conftest files of different folders clash).

A tiny real run folder with every kind of weight file noisecraft reads, pickles that create a
marker file when unpickled, and safetensors files with one defect each.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import json
import pickle
import shutil
import struct
from pathlib import Path

import torch
from click.testing import CliRunner
from safetensors.torch import save as st_save

from noisecraft.cli.main import cli

TINY = ["--steps", "4", "--checkpoint-every", "4", "--set", "train.batch_size=8", "--set", "sample.nfe=2",
        "--set", "sample.per_class=1", "--set", "ema.phema_every=2", "--quiet"]
PHEMA_STD = "0.100"


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit 2, one line `error: ...` holding every fragment, no traceback; returns the line."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------------------
# A tiny run with checkpoint, snapshots, a post-hoc EMA reconstruction, best/ and a feature extractor


def build_tiny_run(root: Path) -> dict[str, Path]:
    run = root / "run"
    r = run_cli("train", "tiny", "--out", run, *TINY)
    assert r.exit_code == 0, r.output
    r = run_cli("ema", run, "--std", PHEMA_STD)
    assert r.exit_code == 0, r.output
    # best/ as the eval hook writes it (EMA weights + best.json), without running an evaluation
    from noisecraft.runs.checkpoint import latest_checkpoint, load_checkpoint

    _, state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    (run / "best").mkdir()
    ema = {k: v.contiguous() for k, v in state["ema"]["module"].items()}
    (run / "best" / "ema.safetensors").write_bytes(st_save(ema))
    (run / "best" / "best.json").write_text(json.dumps({"metric": "fd", "value": 1.0, "step": 4}))
    feats = root / "features"
    r = run_cli("eval", "fit-features", "digits", "--out", feats, "--resolution", 8, "--steps", 2, "--width", 4,
                "--feature-dim", 4, "--batch-size", 8, "--quiet")
    assert r.exit_code == 0, r.output
    image = root / "image.png"
    from noisecraft.io import save_image

    save_image(torch.zeros(1, 8, 8), image)
    save_image(torch.zeros(1, 8, 8), root / "mask.png")
    save_image(torch.zeros(1, 4, 4), root / "low.png")
    return {"run": run, "features": feats, "image": image, "mask": root / "mask.png", "low": root / "low.png"}


_SHARED: dict[str, Path] = {}


def shared_tiny_run(tmp_path_factory) -> dict[str, Path]:
    """build_tiny_run once per test session (both test modules of this folder use it; read-only)."""
    if not _SHARED:
        torch.set_num_threads(1)
        _SHARED.update(build_tiny_run(tmp_path_factory.mktemp("tiny-run")))
    return dict(_SHARED)


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("samples", "tb", "loss.png"))
    return dst


def checkpoint_dir(run: Path) -> Path:
    return sorted((run / "checkpoints").glob("ckpt-*"))[-1]


def forge_checkpoint_state(run: Path, data: bytes) -> Path:
    """Replace the newest checkpoint's state.safetensors and re-write COMPLETE with its checksum, as an
    attacker would: the checksum then passes and only the content checks stand in the way."""
    ckpt = checkpoint_dir(run)
    (ckpt / "state.safetensors").write_bytes(data)
    marker = json.loads((ckpt / "COMPLETE").read_text())
    marker["files"]["state.safetensors"] = hashlib.sha256(data).hexdigest()
    (ckpt / "COMPLETE").write_text(json.dumps(marker))
    return ckpt / "state.safetensors"


# ------------------------------------------------------------------------------------------------
# Pickles that run code


class _CreatesMarker:
    """Unpickling this calls open(marker, 'w'): the file appears iff code from the pickle ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


PICKLE_FORMATS = ("pickle-p2", "pickle-p5", "torch.save")


def evil_pickle(marker: Path, fmt: str) -> bytes:
    """A state dict whose one value creates `marker` when unpickled, as raw pickle or torch.save zip."""
    obj = {"weight": _CreatesMarker(marker)}
    if fmt == "torch.save":
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()
    return pickle.dumps(obj, protocol=2 if fmt == "pickle-p2" else 5)


# ------------------------------------------------------------------------------------------------
# safetensors files with one defect each


def raw_safetensors(header: dict, data: bytes, *, length: int | None = None) -> bytes:
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head) if length is None else length) + head + data


def good_tensors() -> dict[str, torch.Tensor]:
    return {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4, dtype=torch.float32)}


def hostile_variants() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, the io_safety error class name expected)."""
    good = st_save(good_tensors())
    n = struct.unpack("<Q", good[:8])[0]
    data = good[8 + n:]
    a = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    b = {"dtype": "F32", "shape": [4], "data_offsets": [24, 40]}
    nan = st_save({"a": torch.tensor([1.0, float("nan")]), "b": torch.ones(2)})
    inf = st_save({"a": torch.ones(2, dtype=torch.float16), "b": torch.tensor([float("-inf"), 0.0], dtype=torch.bfloat16)})
    return {
        "empty": (b"", "TruncatedFileError"),
        "truncated-in-length": (good[:5], "TruncatedFileError"),
        "truncated-in-header": (good[:8 + n // 2], "SafetensorsHeaderError"),
        "truncated-in-data": (good[:-3], "TruncatedFileError"),
        "oversized-header-length": (struct.pack("<Q", 2**63) + good[8:], "SafetensorsHeaderError"),
        "header-length-off-by-one": (struct.pack("<Q", len(good) - 7) + good[8:], "SafetensorsHeaderError"),
        "header-not-json": (struct.pack("<Q", 8) + b"{not js}", "SafetensorsHeaderError"),
        "header-not-utf8": (struct.pack("<Q", 4) + b"\xff\xfe{}", "SafetensorsHeaderError"),
        "header-is-a-list": (struct.pack("<Q", 2) + b"[]", "SafetensorsHeaderError"),
        "header-duplicate-key": (_duplicate_key(data), "SafetensorsHeaderError"),
        "header-deep-nesting": (struct.pack("<Q", 200_000) + b"[" * 100_000 + b"]" * 100_000, "SafetensorsHeaderError"),
        "unknown-dtype": (raw_safetensors({"a": {**a, "dtype": "F128"}, "b": b}, data), "SafetensorsHeaderError"),
        "negative-shape": (raw_safetensors({"a": {**a, "shape": [-2, -3]}, "b": b}, data), "SafetensorsHeaderError"),
        "bool-shape": (raw_safetensors({"a": {**a, "shape": [True, 6]}, "b": b}, data), "SafetensorsHeaderError"),
        "extra-entry-field": (raw_safetensors({"a": {**a, "code": "import os"}, "b": b}, data), "SafetensorsHeaderError"),
        "metadata-not-strings": (raw_safetensors({"__metadata__": {"x": 1}, "a": a, "b": b}, data), "SafetensorsHeaderError"),
        "overlapping-offsets": (raw_safetensors({"a": a, "b": {**b, "shape": [4], "data_offsets": [16, 32]}}, data[:32]),
                                "SafetensorsOffsetError"),
        "same-offsets": (raw_safetensors({"a": {**a, "shape": [6]}, "b": {**a, "shape": [6]}}, data[:24]),
                         "SafetensorsOffsetError"),
        "offsets-out-of-range": (raw_safetensors({"a": a, "b": {**b, "data_offsets": [24, 40 + 2**40]}}, data),
                                 "SafetensorsOffsetError"),
        "offsets-past-end": (raw_safetensors({"a": a, "b": {**b, "shape": [6], "data_offsets": [24, 48]}}, data),
                             "TruncatedFileError"),
        "offsets-reversed": (raw_safetensors({"a": a, "b": {**b, "data_offsets": [40, 24]}}, data), "SafetensorsOffsetError"),
        "offsets-negative": (raw_safetensors({"a": {**a, "data_offsets": [-24, 0]}, "b": b}, data), "SafetensorsOffsetError"),
        "size-not-shape-times-dtype": (raw_safetensors({"a": {**a, "dtype": "F64"}, "b": b}, data), "SafetensorsOffsetError"),
        "gap-between-tensors": (raw_safetensors({"a": a, "b": {**b, "data_offsets": [28, 44]}}, data + b"\0" * 4),
                                "SafetensorsOffsetError"),
        "trailing-bytes": (good + b"\0" * 16, "SafetensorsOffsetError"),
        "nan-weights": (nan, "NonFiniteWeightsError"),
        "inf-weights-bf16": (inf, "NonFiniteWeightsError"),
    }


def _duplicate_key(data: bytes) -> bytes:
    a = '{"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}'
    head = ('{"a": ' + a + ', "a": ' + a + ', "b": {"dtype": "F32", "shape": [4], "data_offsets": [24, 40]}}').encode()
    return struct.pack("<Q", len(head)) + head + data
