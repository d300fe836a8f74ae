"""Promise 2: hostile safetensors files are refused cleanly, each with a typed, one-line error.

noisecraft.io_safety validates the header itself (length, JSON, dtypes, shapes, offsets) before
safetensors decodes anything, refuses NaN/Inf, and checks names/shapes/dtypes against the model
before load_state_dict. Every loading path of a run goes through it; the CLI prints one line, exit 2.
"""

from __future__ import annotations

import struct

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from noisecraft import io_safety
from noisecraft.io_safety import (
    SafetensorsHeaderError,
    SafetensorsOffsetError,
    TruncatedFileError,
    WeightFileError,
    WeightMismatchError,
    check_safetensors_file,
    check_tensors_match,
    load_safetensors_bytes,
    read_safetensors,
)
from untrusted_helpers import (
    assert_one_line_error,
    copy_run,
    forge_checkpoint_state,
    good_tensors,
    hostile_variants,
    raw_safetensors,
    run_cli,
    shared_tiny_run,
)

VARIANTS = hostile_variants()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return shared_tiny_run(tmp_path_factory)


@pytest.fixture
def run(tiny, tmp_path):
    return copy_run(tiny["run"], tmp_path / "run")


def test_a_valid_file_round_trips(tmp_path):
    t = good_tensors()
    (tmp_path / "ok.safetensors").write_bytes(st_save(t, metadata={"std": "0.1"}))
    got, meta = read_safetensors(tmp_path / "ok.safetensors")
    assert meta == {"std": "0.1"} and set(got) == set(t) and all(torch.equal(got[k], t[k]) for k in t)
    header = check_safetensors_file(tmp_path / "ok.safetensors")
    assert header.tensors["a"] == ("F32", (2, 3), (0, 24)) and header.data_bytes == 40
    empty = st_save({"e": torch.zeros(0, 3)})  # zero-size tensors are fine
    assert load_safetensors_bytes(empty)[0]["e"].shape == (0, 3)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_each_defect_has_its_typed_one_line_error(tmp_path, variant):
    data, expected = VARIANTS[variant]
    path = tmp_path / f"{variant}.safetensors"
    path.write_bytes(data)
    with pytest.raises(WeightFileError) as info:
        read_safetensors(path)
    assert type(info.value).__name__ == expected, str(info.value)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and len(msg) < 500
    if expected != "NonFiniteWeightsError":  # the header-only check finds the same defect without the data
        with pytest.raises(getattr(io_safety, expected)):
            check_safetensors_file(path)


def test_error_types_nest_as_documented():
    assert issubclass(TruncatedFileError, SafetensorsOffsetError)
    for cls in (SafetensorsHeaderError, SafetensorsOffsetError, WeightMismatchError, io_safety.NonFiniteWeightsError,
                io_safety.PickleFileError):
        assert issubclass(cls, WeightFileError) and issubclass(cls, ValueError)


def test_header_size_limit(monkeypatch):
    monkeypatch.setattr(io_safety, "MAX_HEADER_BYTES", 16)
    with pytest.raises(SafetensorsHeaderError, match="more than the 16 allowed"):
        load_safetensors_bytes(st_save(good_tensors()), name="big.safetensors")


# A valid file and single-byte / truncation / splice mutations of it: io_safety either returns exactly what
# safetensors returns, or raises a WeightFileError; never another exception, never accepts what
# safetensors would refuse.
_GOOD = st_save({"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "i": torch.arange(3, dtype=torch.int64),
                 "h": torch.ones(2, dtype=torch.float16)}, metadata={"k": "v"})


@st.composite
def _mutated(draw):
    data = bytearray(_GOOD)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[i] = draw(st.sampled_from([0, 0x20, 0x22, 0x2C, 0x5B, 0x7B, 0x7D, 0x30, 0x39, 0xFF]))
        elif kind == "cut":
            del data[i:]
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[i:i + draw(st.integers(1, 8))]
    return bytes(data)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_files_are_refused_or_read_exactly(data):
    try:
        ours, _ = load_safetensors_bytes(data, name="fuzz.safetensors")
    except WeightFileError as e:
        assert "\n" not in str(e) and "fuzz.safetensors" in str(e)
        return
    theirs = st_load(data)  # we accepted: safetensors must accept it too, with the same tensors
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_length_field_is_little_endian_and_bounded():
    good = st_save(good_tensors())
    n = struct.unpack("<Q", good[:8])[0]
    big_endian = struct.pack(">Q", n) + good[8:]
    with pytest.raises(SafetensorsHeaderError, match="header length field says"):
        load_safetensors_bytes(big_endian)


# ------------------------------------------------------------------------------------------------
# Through the run folder and the CLI


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cli_sample_refuses_each_hostile_best_file(run, tmp_path, variant):
    data, expected = VARIANTS[variant]
    (run / "best" / "ema.safetensors").write_bytes(data)
    line = assert_one_line_error(run_cli("sample", run, "--n", 1, "--out", tmp_path / "s", "--weights", "best"),
                                 "best/ema.safetensors", "refused")
    assert not (tmp_path / "s").exists(), line


@pytest.mark.parametrize("variant", ["truncated-in-data", "oversized-header-length", "header-not-json",
                                     "overlapping-offsets", "offsets-out-of-range", "nan-weights"])
def test_forged_checkpoint_with_hostile_state_is_refused(run, tmp_path, variant):
    """COMPLETE re-written with the hostile file's checksum: the content checks still refuse it."""
    forge_checkpoint_state(run, VARIANTS[variant][0])
    for args in (["sample", run, "--n", 1, "--out", tmp_path / "s"], ["train", "--resume", run, "--quiet"]):
        assert_one_line_error(run_cli(*args), "state.safetensors")


def _model_state(run):
    from noisecraft.runs.checkpoint import latest_checkpoint, load_checkpoint

    return load_checkpoint(latest_checkpoint(run / "checkpoints"))[1]


def _first_weight(state: dict) -> str:
    return next(k for k, v in state.items() if v.ndim >= 2)


@pytest.mark.parametrize("defect", ["float64", "float16", "int", "shape", "extra", "missing"])
def test_weights_that_do_not_match_the_model_are_refused(run, tmp_path, defect):
    ema = {k: v.clone() for k, v in _model_state(run)["ema"]["module"].items()}
    k = _first_weight(ema)
    if defect in ("float64", "float16"):
        ema[k] = ema[k].to(getattr(torch, defect))
        fragments = [k, defect, "expects float32"]
    elif defect == "int":
        ema[k] = torch.zeros(ema[k].shape, dtype=torch.int32)
        fragments = [k, "int32"]
    elif defect == "shape":
        ema[k] = torch.zeros(ema[k].shape[0] + 1, *ema[k].shape[1:])
        fragments = [k, "shape"]
    elif defect == "extra":
        ema["payload.weight"] = torch.zeros(2)
        fragments = ["payload.weight", "does not have"]
    else:
        del ema[k]
        fragments = [k, "lacks"]
    (run / "best" / "ema.safetensors").write_bytes(st_save(ema))
    assert_one_line_error(run_cli("sample", run, "--n", 1, "--out", tmp_path / "s", "--weights", "best"),
                          "best/ema.safetensors", *fragments)


@pytest.mark.parametrize("where", ["model", "ema"])
def test_resume_and_sample_refuse_a_checkpoint_of_another_shape(run, tmp_path, where):
    from noisecraft.runs.checkpoint import flatten_state

    state = _model_state(run)
    sub = state[where] if where == "model" else state["ema"]["module"]
    k = _first_weight(sub)
    sub[k] = torch.zeros(sub[k].shape[0] + 2, *sub[k].shape[1:])
    tensors, _ = flatten_state(state)
    forge_checkpoint_state(run, st_save(tensors, metadata={"format": "noisecraft-checkpoint/1"}))
    for args in (["sample", run, "--n", 1, "--out", tmp_path / "s"], ["train", "--resume", run, "--quiet"]):
        assert_one_line_error(run_cli(*args), k, "shape")


def test_check_tensors_match_unit():
    model = {"w": torch.zeros(2, 3), "b": torch.zeros(3)}
    check_tensors_match(model, {"w": torch.ones(2, 3), "b": torch.ones(3)}, source="f")
    check_tensors_match(model, {"w": torch.ones(2, 3)}, source="f", strict=False)
    with pytest.raises(WeightMismatchError, match=r"'b' has shape \[4\] but the model expects \[3\]"):
        check_tensors_match(model, {"w": torch.ones(2, 3), "b": torch.ones(4)}, source="f")
    with pytest.raises(WeightMismatchError, match="'w' is a str"):
        check_tensors_match(model, {"w": "x", "b": torch.ones(3)}, source="f")
    with pytest.raises(WeightMismatchError, match="expected a mapping"):
        check_tensors_match(model, [torch.ones(3)], source="f")


def test_phema_snapshots_of_different_shapes_are_refused(run):
    snaps = sorted((run / "phema").glob("snap-*.safetensors"))
    t, meta = read_safetensors(snaps[-1])
    k = _first_weight(t)
    t[k] = torch.zeros(t[k].shape[0] + 1, *t[k].shape[1:])
    snaps[-1].write_bytes(st_save(t, metadata=meta))
    assert_one_line_error(run_cli("ema", run, "--std", 0.07), snaps[-1].name, "shape")


def test_hostile_run_json_is_one_line(run, tmp_path):
    (run / "run.json").write_text("[" * 100_000 + "]" * 100_000)  # deeper than the JSON parser's recursion limit
    assert_one_line_error(run_cli("sample", run, "--n", 1, "--out", tmp_path / "s"), "not a noisecraft run")


def test_shapes_judge_and_cache_readers_use_the_validator(tmp_path):
    from noisecraft.eval import cache
    from noisecraft.eval.shapes_judge import ShapesJudge

    bad = VARIANTS["offsets-out-of-range"][0]
    (tmp_path / "k.safetensors").write_bytes(bad)
    with pytest.raises(SafetensorsOffsetError, match="k.safetensors"):
        cache._read(tmp_path / "k.safetensors", "k")
    (tmp_path / "judge.json").write_text('{"format": "noisecraft-shapes-judge", "version": 1, "config": {"width": 2, "hidden": 4}}')
    (tmp_path / "judge.safetensors").write_bytes(bad)
    with pytest.raises(SafetensorsOffsetError, match="judge.safetensors"):
        ShapesJudge.load(tmp_path)
    (tmp_path / "judge.safetensors").write_bytes(st_save(good_tensors()))  # valid file, not a judge
    with pytest.raises(WeightMismatchError, match="judge.safetensors"):
        ShapesJudge.load(tmp_path)
