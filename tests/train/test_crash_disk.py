"""Disk full and unwritable output folders: `train --out` fails before reading any data with one
line; a write that fails half-way (ENOSPC simulated in the low-level write) names the folder,
leaves the previous checkpoint and `latest` intact, and the run resumes bitwise exactly."""

from __future__ import annotations

import errno
import os
import shutil

import pytest
import torch

from noisecraft.io import files
from noisecraft.runs import checkpoint as ck
from noisecraft.train import loop
from noisecraft.runs.checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    flatten_state,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from noisecraft.train import TrainingError, train
from noisecraft.runs import RunError



def run(*args):
    from click.testing import CliRunner

    from noisecraft.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_user_error(result, *fragments: str):
    """Exit code 2 and one line `error: ...` holding every fragment, no traceback."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output and all(f in lines[0] for f in fragments), (fragments, lines[0])


@pytest.fixture(autouse=True)
def _no_loss_plot(monkeypatch):
    monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)  # matplotlib time, irrelevant here


@pytest.fixture
def no_data(monkeypatch):
    """Reading the training data fails the test: errors about --out must come first."""

    def build_dataset(cfg):
        raise AssertionError("the dataset was read before the --out folder was checked")

    monkeypatch.setattr(loop, "build_dataset", build_dataset)


def _disk_full_after(monkeypatch, name: str, nth: int = 1):
    """The nth write of a file called `name` (or its temp file) writes half its bytes, then ENOSPC."""
    real, seen = files.write_synced, [0]

    def write(path, data):
        if path.name == name or path.name.startswith(f".{name}.tmp-"):
            seen[0] += 1
            if seen[0] == nth:
                with open(path, "wb") as f:
                    f.write(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    monkeypatch.setattr(files, "write_synced", write)


def _same_final(a, b):
    (sa, ma), (sb, mb) = (load_checkpoint(latest_checkpoint(x / "checkpoints")) for x in (a, b))
    ta, ja = flatten_state(ma)
    tb, jb = flatten_state(mb)
    assert sa == sb and ja == jb and all(torch.equal(ta[k], tb[k]) for k in ta)


# ------------------------------------------------------------------------------------------------
# --out checks before training


def test_out_inside_a_file_fails_first_with_one_line(tmp_path, no_data):
    (tmp_path / "afile").write_text("x")
    assert_user_error(run("train", "tiny", "--out", tmp_path / "afile" / "run"), "afile", "is a file, not a folder")
    assert_user_error(run("train", "tiny", "--out", tmp_path / "afile"), "afile", "is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write into a read-only folder")
def test_unwritable_out_fails_first(tmp_path, no_data):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_user_error(run("train", "tiny", "--out", locked / "run"), "not writable", "locked")
        assert_user_error(run("train", "tiny", "--out", locked), "not writable")
    finally:
        locked.chmod(0o700)
    assert not list(locked.iterdir())


def test_unwritable_out_fails_first_simulated(tmp_path, no_data, monkeypatch):
    """The same refusal where the tests run as root (permissions do not stop root): os.access says no."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(tmp_path) else real(p, mode, **kw))
    assert_user_error(run("train", "tiny", "--out", tmp_path / "a" / "run"), "not writable", str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_not_enough_free_space_fails_before_the_run_folder_exists(tiny_config, tmp_path, small_ds, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1 << 20))
    with pytest.raises(RunError, match=r"not enough free space .* 1 MiB free .* needs about \d+ MiB") as e:
        train(tiny_config(), tmp_path / "r", dataset=small_ds, progress=False)
    assert "\n" not in str(e.value) and not (tmp_path / "r").exists()


def test_a_start_killed_before_run_json_can_be_started_again(tiny_config, tmp_path, small_ds):
    out = tmp_path / "r"
    out.mkdir()
    (out / "config.json").write_text("{}")  # what a kill between the two files of a fresh start leaves
    (out / ".run.json.tmp-123").write_text("{")
    train(tiny_config("train.steps=2"), out, dataset=small_ds, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="non-empty folder that is not a run"):
        train(tiny_config("train.steps=2"), tmp_path / "other", dataset=small_ds, progress=False)


# ------------------------------------------------------------------------------------------------
# A disk that fills up during training


def test_save_checkpoint_disk_full_leaves_nothing_behind(tmp_path, monkeypatch):
    state = {"w": torch.ones(64), "progress": {"step": 1}}
    save_checkpoint(tmp_path, 1, state)
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for name in ("state.safetensors", "state.json", ck.MARKER, "latest"):
        _disk_full_after(monkeypatch, name)
        with pytest.raises(CheckpointWriteError) as e:
            save_checkpoint(tmp_path, 2, {"w": torch.zeros(64), "progress": {"step": 2}})
        monkeypatch.undo()
        assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC
        msg = str(e.value)
        assert "\n" not in msg and str(tmp_path) in msg and "disk full" in msg, msg
        assert "the previous checkpoint ckpt-00000001 is intact" in msg
        after = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
        assert after == before, name  # no temp files, no half checkpoint, `latest` unchanged
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-00000001", "latest"]
        assert load_checkpoint(latest_checkpoint(tmp_path))[0] == 1


def test_disk_full_during_a_checkpoint_then_resume(tiny_config, tmp_path, small_ds, monkeypatch):
    cfg = tiny_config("train.steps=6", "train.checkpoint_every=2")
    train(cfg, tmp_path / "ok", dataset=small_ds, progress=False)
    for name in ("state.safetensors", ck.MARKER):  # the data, or the marker after the rename
        _disk_full_after(monkeypatch, name, nth=2)  # the save of step 4
        with pytest.raises(CheckpointError) as e:
            train(cfg, tmp_path / name, dataset=small_ds, progress=False)
        msg = str(e.value)
        ckpts = tmp_path / name / "checkpoints"
        assert "\n" not in msg and "cannot write checkpoint ckpt-00000004" in msg and str(ckpts) in msg
        assert "No space left on device (disk full)" in msg and "ckpt-00000002 is intact" in msg
        assert sorted(p.name for p in ckpts.iterdir()) == ["ckpt-00000002", "latest"]
        assert (ckpts / "latest").read_text().strip() == "ckpt-00000002" and load_checkpoint(ckpts / "ckpt-00000002")[0] == 2
        monkeypatch.undo()
        monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)
        rest = train(None, tmp_path / name, resume=True, dataset=small_ds, progress=False)
        assert rest.resumed_from == 2 and rest.step == 6
        _same_final(tmp_path / "ok", tmp_path / name)


def test_disk_full_outside_checkpoints_names_the_file_and_resumes(tiny_config, tmp_path, small_ds, monkeypatch):
    cfg = tiny_config("train.steps=6", "train.checkpoint_every=2", "ema.phema_every=3")
    train(cfg, tmp_path / "ok", dataset=small_ds, progress=False)
    _disk_full_after(monkeypatch, "snap-000000000048-0.100.safetensors")  # the post-hoc EMA snapshot of step 6
    with pytest.raises(TrainingError) as e:
        train(cfg, tmp_path / "r", dataset=small_ds, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "snap-000000000048-0.100.safetensors" in msg and "No space left on device" in msg
    assert "the newest checkpoint ckpt-00000004 is intact" in msg and "--resume" in msg
    monkeypatch.undo()
    monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)
    train(None, tmp_path / "r", resume=True, dataset=small_ds, progress=False)
    _same_final(tmp_path / "ok", tmp_path / "r")
    assert not [p for p in (tmp_path / "r").rglob(".*")]


def test_cli_disk_full_is_one_line(tmp_path, monkeypatch):
    _disk_full_after(monkeypatch, "state.safetensors")
    result = run("train", "tiny", "--out", tmp_path / "r", "--steps", 2, "--quiet")
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot write checkpoint ckpt-00000002"), result.output
    assert "disk full" in lines[0] and "no earlier checkpoint exists" in lines[0]
