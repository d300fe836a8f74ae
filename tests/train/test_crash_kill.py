"""SIGKILL crash safety: a training process is killed at seeded random moments - between steps, while
it starts or loads a checkpoint, and inside save_checkpoint at each of its stages - and resumed each
time until done; the result must equal an uninterrupted run bitwise (model, EMA, optimizer, RNG and
data position, post-hoc EMA snapshots, logged losses).

Kills inside a save use the documented test hook NOISECRAFT_TEST_SAVE_PAUSE (checkpoint.py), which
sleeps at each stage of a save so the killer can see the stage on disk and kill there:
    tmp       the temp folder exists (files being written / written, not renamed)
    unmarked  renamed into place, no COMPLETE marker yet
    unlinked  complete, but `latest` still names the previous checkpoint

The fast test forks the test process (no interpreter start-up); the slow one (`make test-slow`)
runs real processes: a small driver around noisecraft.train.train, and the CLI for the
uninterrupted reference run and the final resume.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from noisecraft.train import folder, loop
from noisecraft.runs.checkpoint import MARKER, flatten_state, latest_checkpoint, load_checkpoint
from noisecraft.runs import is_run

PAUSE_ENV = "NOISECRAFT_TEST_SAVE_PAUSE"
STAGES = ("tmp", "unmarked", "unlinked")


# ------------------------------------------------------------------------------------------------
# Looking at a run folder


def _save_stage(run: Path, pid: int, name: str | None) -> str:
    """Where the save of checkpoint folder `name` by process `pid` is, judged from the files."""
    ck = run / "checkpoints"
    if name is None or not ck.is_dir():
        return "none"
    if (ck / f".tmp-{name}-{pid}").is_dir():
        return "tmp"
    if not (ck / name).is_dir():
        return "none"
    if not (ck / name / MARKER).is_file():
        return "unmarked"
    pointer = ck / "latest"
    return "unlinked" if not pointer.is_file() or pointer.read_text().strip() != name else "done"


def _saving(run: Path, pid: int) -> str | None:
    """The checkpoint folder name process `pid` is writing right now (its temp folder exists), else None."""
    ck = run / "checkpoints"
    if ck.is_dir():
        for p in ck.iterdir():
            if p.name.startswith(".tmp-ckpt-") and p.name.endswith(f"-{pid}"):
                return p.name[len(".tmp-"): -len(f"-{pid}")]
    return None


def _check_after_kill(run: Path) -> int:
    """A killed run is either not started (only start leftovers) or a run whose newest complete
    checkpoint loads (checksums, finiteness); returns that checkpoint's step (0 = none)."""
    if not is_run(run):
        assert not run.exists() or all(folder._start_leftover(p) for p in run.iterdir()), list(run.iterdir())
        return 0
    ckpt = latest_checkpoint(run / "checkpoints")
    return load_checkpoint(ckpt)[0] if ckpt is not None else 0


def _final(run: Path):
    return load_checkpoint(latest_checkpoint(run / "checkpoints"))


def _snapshots(run: Path) -> dict:
    from safetensors import safe_open

    out = {}
    for p in sorted((run / "phema").glob("snap-*.safetensors")):
        with safe_open(str(p), framework="pt") as f:
            out[p.name] = {k: f.get_tensor(k) for k in f.keys()}
    return out


def _assert_same_run(a: Path, b: Path) -> None:
    (sa, ma), (sb, mb) = _final(a), _final(b)
    ta, ja = flatten_state(ma)
    tb, jb = flatten_state(mb)
    assert sa == sb and ja == jb  # step, samples, RNG states, data position, optimizer hyper-state, config
    assert ta.keys() == tb.keys() and any(k.startswith("ema/") for k in ta) and any(k.startswith("optim/") for k in ta)
    assert not [k for k in ta if not torch.equal(ta[k], tb[k])]  # model, EMA, AdamW moments, post-hoc EMA tracks
    pa, pb = _snapshots(a), _snapshots(b)
    assert pa.keys() == pb.keys() and pa
    assert all(torch.equal(pa[n][k], pb[n][k]) for n in pa for k in pa[n])
    keys = ("step", "samples", "loss", "lr", "nonfinite_steps")
    rows = [[{k: r[k] for k in keys} for r in map(json.loads, (x / "metrics.jsonl").read_text().splitlines())] for x in (a, b)]
    assert rows[0] == rows[1]  # every step logged once, with the same loss
    leftovers = [p for p in b.rglob(".*") if p.name not in (".", "..")]
    assert not leftovers, leftovers  # no temp files or folders of the killed writes remain


# ------------------------------------------------------------------------------------------------
# Starting and killing a training process


class _Proc:
    """A training process that reports `ready` and `step N` lines; `pid`, `lines` (a queue), `kill()`."""

    def __init__(self, pid: int, stream, popen: subprocess.Popen | None = None):
        self.pid, self.popen, self.lines = pid, popen, queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.put(line.decode() if isinstance(line, bytes) else line)
        self.lines.put(None)

    def kill(self) -> bool:
        """SIGKILL; True if the process was still running (so the kill landed)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        status = self.popen.wait(60) if self.popen is not None else os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return status == -signal.SIGKILL


def _wait_step(proc: _Proc, target: int, timeout: float = 120.0) -> bool:
    """Block until the process reports a step >= target (True) or ends (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            line = proc.lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            return False
        if line.startswith("step ") and int(line.split()[1]) >= target:
            return True
    raise AssertionError(f"no step {target} within {timeout} s")


def _wait_line(proc: _Proc, text: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.lines.get(timeout=max(0.01, end - time.monotonic()))
        assert line is not None, f"process ended before printing {text!r}"
        if line.strip() == text:
            return
    raise AssertionError(f"no {text!r} within {timeout} s")


def _wait_stage(proc: _Proc, run: Path, stage: str, timeout: float = 120.0) -> str:
    """Wait until this process starts a save (its own temp folder appears), then until that save
    reaches `stage`; returns the checkpoint name. Stale folders of earlier kills cannot fool it."""
    end, name = time.monotonic() + timeout, None
    while time.monotonic() < end:
        name = name or _saving(run, proc.pid)
        if name is not None and _save_stage(run, proc.pid, name) == stage:
            return name
        time.sleep(0.002)
    raise AssertionError(f"stage {stage!r} of a save not seen within {timeout} s")


def _kill_at(proc: _Proc, run: Path, moment: tuple, rng: random.Random) -> tuple[bool, str]:
    """Kill `proc` at `moment`: ("startup", delay) | ("step", target) | ("save", target, stage).
    Returns (the kill landed, what it hit: startup / step / the save stage the files show after it)."""
    kind = moment[0]
    _wait_line(proc, "ready")
    if kind == "startup":  # loading data, building the net, reading the checkpoint, first steps
        time.sleep(moment[1])
        return proc.kill(), "startup"
    if not _wait_step(proc, moment[1]):
        return proc.kill(), "ended"  # it finished or failed first: the caller reports the kill as missed
    if kind == "step":
        time.sleep(rng.uniform(0, 0.05))  # somewhere inside the next step, log write, snapshot or save
        return proc.kill(), "step"
    name = _wait_stage(proc, run, moment[2])
    landed = proc.kill()
    return landed, _save_stage(run, proc.pid, name)


def _plan(rng: random.Random, steps: int, n_startup: int, n_step: int, n_save: int) -> list[tuple]:
    targets = sorted(rng.sample(range(1, steps - 1), n_step + n_save))
    kinds = ["step"] * n_step + ["save"] * n_save
    rng.shuffle(kinds)
    moments, stage = [], 0
    for t, kind in zip(targets, kinds):
        if kind == "save":
            moments.append(("save", t, STAGES[stage % 3]))
            stage += 1
        else:
            moments.append(("step", t))
    for _ in range(n_startup):
        moments.insert(rng.randrange(len(moments) + 1), ("startup", rng.uniform(0.0, 0.6)))
    return moments


def _kill_loop(run: Path, start, moments, rng: random.Random) -> dict:
    """Start (fresh or resume), kill at each moment, check the folder after every kill."""
    stats = {"kills": 0, "hit": {}, "progress": []}
    for moment in moments:
        pause = moment[0] == "save"
        proc = start(pause)
        landed, hit = _kill_at(proc, run, moment, rng)
        assert landed, f"the process finished before the kill at {moment}"
        if pause:
            assert hit == moment[2], (moment, hit)  # killed inside that stage of the save
        stats["kills"] += 1
        stats["hit"][hit] = stats["hit"].get(hit, 0) + 1
        stats["progress"].append(_check_after_kill(run))
    return stats


# ------------------------------------------------------------------------------------------------
# Fast: forked processes (make test)


def _forked(run: Path, cfg, ds):
    def start(pause: bool) -> _Proc:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: train, report progress on the pipe, never return into pytest
            code = 1
            try:
                os.close(r)
                out = os.fdopen(w, "w", buffering=1)
                os.environ[PAUSE_ENV] = "0.2" if pause else ""
                out.write("ready\n")
                resume = is_run(run)
                loop.train(None if resume else cfg, run, resume=resume, dataset=ds, progress=False,
                           on_step=lambda step, loss: out.write(f"step {step}\n"))
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        return _Proc(pid, os.fdopen(r, "r"))

    return start


def test_sigkill_at_random_moments_fast(tiny_config, tmp_path, small_ds, monkeypatch):
    monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)  # matplotlib time; the slow test plots
    monkeypatch.delenv(PAUSE_ENV, raising=False)
    cfg = tiny_config("train.steps=8", "train.checkpoint_every=2", "train.log_every=1", "ema.phema_every=2")
    loop.train(cfg, tmp_path / "ref", dataset=small_ds, progress=False)
    rng = random.Random(20240605)
    # killed in the save of step 2 (temp folder), 4 (no marker), 6 (`latest` not updated), then mid-step 7
    moments = [("save", 1, "tmp"), ("save", 3, "unmarked"), ("save", 5, "unlinked"), ("step", 7)]
    stats = _kill_loop(tmp_path / "run", _forked(tmp_path / "run", cfg, small_ds), moments, rng)
    assert stats["kills"] == 4 and stats["hit"] == {"tmp": 1, "unmarked": 1, "unlinked": 1, "step": 1}
    assert stats["progress"] == [0, 2, 4, 6]  # a save killed before `latest` moved resumes from the one before
    result = loop.train(None, tmp_path / "run", resume=True, dataset=small_ds, progress=False)
    assert result.step == 8 and result.resumed_from == 6
    _assert_same_run(tmp_path / "ref", tmp_path / "run")


# ------------------------------------------------------------------------------------------------
# Slow: real processes, 30 kills (make test-slow)

DRIVER = """
import sys, torch
torch.set_num_threads(1)
from noisecraft.config import load_config
from noisecraft.train import train
from noisecraft.runs import is_run
out, overrides = sys.argv[1], sys.argv[2:]
print("ready", flush=True)
resume = is_run(out)  # what a user does after a crash: resume a run, start again if it never began
train(None if resume else load_config("tiny", overrides), out, resume=resume, progress=False,
      on_step=lambda step, loss: print(f"step {step}", flush=True))
"""

SLOW_OVERRIDES = ["train.steps=40", "train.batch_size=16", "train.checkpoint_every=4", "train.log_every=1",
                  "train.keep_checkpoints=2", "ema.phema_every=2", "sample.nfe=2", "sample.per_class=1",
                  "train.tensorboard=false", "train.threads=1"]


def _env(pause: bool) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env[PAUSE_ENV] = "0.3" if pause else ""
    return env


@pytest.mark.slow
def test_sigkill_30_times_real_processes(tmp_path):
    t0 = time.perf_counter()
    py = sys.executable
    ref = subprocess.run([py, "-m", "noisecraft", "train", "tiny", "--out", str(tmp_path / "ref"), "--quiet",
                          *[a for o in SLOW_OVERRIDES for a in ("--set", o)]],
                         env=_env(False), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]
    run = tmp_path / "run"

    def start(pause: bool) -> _Proc:
        p = subprocess.Popen([py, "-c", DRIVER, str(run), *SLOW_OVERRIDES], env=_env(pause),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return _Proc(p.pid, p.stdout, p)

    rng = random.Random(5)
    moments = _plan(rng, 40, n_startup=8, n_step=12, n_save=10)
    stats = _kill_loop(run, start, moments, rng)
    done = subprocess.run([py, "-m", "noisecraft", "train", "--resume", str(run), "--quiet"], env=_env(False),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "step 40" in done.stdout
    _assert_same_run(tmp_path / "ref", run)
    assert stats["kills"] == 30 and stats["hit"] == {"startup": 8, "step": 12, "tmp": 4, "unmarked": 3, "unlinked": 3}
    print(f"\n{stats['kills']} SIGKILLs: {stats['hit']}, checkpoint step after each kill "
          f"{stats['progress']}, {time.perf_counter() - t0:.0f} s; final state bitwise equal to the uninterrupted run")
