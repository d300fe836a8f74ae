"""Training on several processes (torch.distributed, gloo, CPU): the math does not depend on the
process count, resume is exact, EMA is the same on every rank, and a dead or stuck rank ends the
job with an error instead of a hang. Ranks are forked from the test process (no interpreter
start-up) and meet through a file store; the CLI under torchrun is the slow test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist

from noisecraft.conditioning import conditioners_for_training
from noisecraft.runs import build_denoiser
from noisecraft.runs.checkpoint import flatten_state, latest_checkpoint, load_checkpoint
from noisecraft.train import apply_update, build_net, loop, make_loss, train, train_step
from noisecraft.train.distributed import World, current_world

pytestmark = pytest.mark.skipif(not dist.is_available() or sys.platform == "win32",
                                reason="needs torch.distributed and fork")


def _fork_ranks(tmp: Path, fn, *args, world: int = 2, timeout_s: float = 20.0, join_s: float = 90.0) -> list[int]:
    """Run fn(rank, *args) in `world` forked processes joined in a gloo group; their exit codes
    (0 = fn returned; 1 = it raised, traceback in tmp/rank-R.err)."""
    store = tmp / f"store-{time.monotonic_ns()}"
    pids = []
    for rank in range(world):
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                torch.set_num_threads(1)
                dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world,
                                        timeout=timedelta(seconds=timeout_s))
                fn(rank, *args)
                code = 0
            except BaseException:  # noqa: BLE001 - reported through the file and the exit code
                (tmp / f"rank-{rank}.err").write_text(traceback.format_exc())
            finally:
                os._exit(code)
        pids.append(pid)
    codes, deadline = [], time.monotonic() + join_s
    for pid in pids:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                codes.append(os.waitstatus_to_exitcode(status))
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                codes.append(-999)  # hung
                break
            time.sleep(0.02)
    return codes


def _errors(tmp: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(tmp.glob("rank-*.err")))


def test_rank_layout_splits_the_global_batch_without_growing_the_micro_batch():
    from noisecraft.config import ConfigError, TrainConfig
    from noisecraft.train.step import rank_layout

    def layout(batch, accum, n):
        return rank_layout(TrainConfig(batch_size=batch, accum_steps=accum), World(size=n))

    assert layout(8, 2, 1) == (8, 2)  # one process: as configured
    assert layout(8, 2, 2) == (4, 1) and layout(8, 4, 2) == (4, 2) and layout(8, 1, 4) == (2, 1)
    assert layout(6, 3, 2) == (3, 3)  # 2 micro-batches would not divide 3: micro-batch 1 <= 6/3
    with pytest.raises(ConfigError, match="train.batch_size = 7 cannot be split over 2 processes"):
        layout(7, 1, 2)


# ------------------------------------------------------------------------------------------------
# One step: 2 processes x (B/2) = 1 process x B (float64)


def _pieces(cfg, ds, world: World):
    conds = conditioners_for_training(cfg, ds)
    net = build_net(cfg, ds.sample_shape, conds).double()
    state = loop._new_state(SimpleNamespace(cfg=cfg, net=net, conditioners=conds, dataset=ds), torch.device("cpu"))
    ddp = None
    if world.size > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(state.net)
    denoiser = build_denoiser(ddp if ddp is not None else state.net, cfg).train()
    return state, conds, denoiser, ddp


def _one_step(cfg, ds, world: World):
    state, conds, denoiser, ddp = _pieces(cfg, ds, world)
    loss, norm, _ = train_step(state, cfg, ds, denoiser, make_loss(cfg), conds, torch.device("cpu"), world, ddp)
    grads = {n: p.grad.clone() for n, p in state.net.named_parameters() if p.grad is not None}
    apply_update(state, cfg.train.batch_size)
    return loss, norm, grads, {n: p.detach().clone() for n, p in state.net.named_parameters()}


def _step_rank(rank, cfg, ds, out):
    loss, norm, grads, params = _one_step(cfg, ds, current_world())
    torch.save({"loss": loss, "norm": norm, "grads": grads, "params": params}, out / f"step-{rank}.pt")


@pytest.mark.parametrize("accum", [1, 2])
def test_two_process_step_equals_one_process_step_float64(tiny_config, small_ds, tmp_path, accum):
    ds = type(small_ds)(small_ds.data.clone(), small_ds.labels, class_names=small_ds.class_names, hflip=True)
    ds.data = ds.data.double()  # float64 through and through: the check is on summation order only
    cfg = tiny_config("train.batch_size=8", f"train.accum_steps={accum}")
    _assert_two_processes_step_alike(cfg, ds, tmp_path)


def _assert_two_processes_step_alike(cfg, ds, tmp_path):
    """One step on 2 forked ranks gives every rank the 1-process loss, gradient norm, gradients and weights."""
    loss1, norm1, grads1, params1 = _one_step(cfg, ds, World())
    codes = _fork_ranks(tmp_path, _step_rank, cfg, ds, tmp_path)
    assert codes == [0, 0], _errors(tmp_path)
    for rank in range(2):
        got = torch.load(tmp_path / f"step-{rank}.pt", weights_only=True)
        assert abs(got["loss"] - loss1) <= 1e-12 * abs(loss1)
        assert abs(got["norm"] - norm1) <= 1e-12 * abs(norm1)
        assert got["grads"].keys() == grads1.keys()
        for n, g in grads1.items():
            assert torch.allclose(got["grads"][n], g, rtol=0, atol=1e-12 * max(1.0, float(g.abs().max()))), n
            assert torch.allclose(got["params"][n], params1[n], rtol=0, atol=1e-12), n


def test_two_process_step_with_single_frames_equals_one_process_step_float64(tiny_config, tmp_path):
    """train.image_frames: each rank trains its share of the frames before its clips, and the one
    gradient all-reduce at the clips' last micro-batch carries both."""
    from noisecraft.data import load_moving_digits

    ds = load_moving_digits(split="train", resolution=8, frames=3, num_clips=16)
    ds.data = ds.data.double()
    cfg = tiny_config("train.batch_size=4", "train.image_frames=6", "data.resolution=8")
    _assert_two_processes_step_alike(cfg, ds, tmp_path)
    from noisecraft.config import ConfigError, TrainConfig
    from noisecraft.train.step import rank_layout

    with pytest.raises(ConfigError, match="train.image_frames = 3 cannot be split over 2 processes"):
        rank_layout(TrainConfig(batch_size=4, image_frames=3), World(size=2))


# ------------------------------------------------------------------------------------------------
# Whole runs: 2 processes = 1 process within rounding; resume 2->2 bitwise, 2->1 and 1->2 close


def _train_rank(rank, cfg, run, ds, stop_at, resume, out):
    """Train on this rank, then save what it holds: weights, EMA and post-hoc EMA tracks."""
    held = {}
    real = loop.apply_update

    def spy(state, batch_size):  # keep a reference to the rank's live state
        real(state, batch_size)
        held["state"] = state

    loop.apply_update = spy
    try:
        train(None if resume else cfg, run, resume=resume, stop_at=stop_at, dataset=ds, progress=False)
    finally:
        loop.apply_update = real
    st = held["state"]
    tensors = {f"net.{k}": v.clone() for k, v in st.net.state_dict().items()}
    tensors.update({f"ema.{k}": v.clone() for k, v in st.ema.module.state_dict().items()})
    for i, track in enumerate(st.pema.tracks):
        tensors.update({f"pema{i}.{j}": t.clone() for j, t in enumerate(track)})
    torch.save(tensors, out / f"held-{rank}.pt")


def _run2(tmp, cfg, run, ds, stop_at=None, resume=False):
    codes = _fork_ranks(tmp, _train_rank, cfg, run, ds, stop_at, resume, tmp)
    assert codes == [0, 0], _errors(tmp)
    a, b = (torch.load(tmp / f"held-{r}.pt", weights_only=True) for r in range(2))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "ranks disagree (weights, EMA or post-hoc EMA)"


def _state(run: Path):
    step, state = load_checkpoint(latest_checkpoint(run / "checkpoints"))
    tensors, meta = flatten_state(state)
    return step, tensors, meta


def _assert_bitwise(a: Path, b: Path):
    (sa, ta, ma), (sb, tb, mb) = _state(a), _state(b)
    assert sa == sb and ma == mb and ta.keys() == tb.keys()
    assert not [k for k in ta if not torch.equal(ta[k], tb[k])]


def _assert_close(a: Path, b: Path, atol: float = 2e-5):
    (sa, ta, ma), (sb, tb, mb) = _state(a), _state(b)
    assert sa == sb and ta.keys() == tb.keys()
    assert ma["progress"] == mb["progress"] and ma["data_order"] == mb["data_order"]
    worst = max(float((ta[k].double() - tb[k].double()).abs().max()) for k in ta
                if ta[k].is_floating_point() and ta[k].numel())
    assert worst <= atol, worst


@pytest.fixture
def run_cfg(tiny_config):
    return tiny_config("train.steps=6", "train.batch_size=8", "train.accum_steps=2", "ema.phema_every=3")


def test_two_process_run_equals_one_process_run_and_resumes_exactly(run_cfg, small_ds, tmp_path, monkeypatch):
    monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)
    one = tmp_path / "one"
    train(run_cfg, one, dataset=small_ds, progress=False)
    two = tmp_path / "two"
    _run2(tmp_path, run_cfg, two, small_ds)  # also: both ranks hold the same weights, EMA and post-hoc EMA
    _assert_close(one, two)
    # 2 -> 2: bitwise
    part = tmp_path / "part"
    _run2(tmp_path, run_cfg, part, small_ds, stop_at=3)
    shutil.copytree(part, tmp_path / "part-for-1")
    _run2(tmp_path, run_cfg, part, small_ds, resume=True)
    _assert_bitwise(two, part)
    # 2 -> 1: within rounding of the 1-process run
    train(None, tmp_path / "part-for-1", resume=True, dataset=small_ds, progress=False)
    _assert_close(one, tmp_path / "part-for-1")
    # 1 -> 2
    back = tmp_path / "back"
    train(run_cfg, back, stop_at=3, dataset=small_ds, progress=False)
    _run2(tmp_path, run_cfg, back, small_ds, resume=True)
    _assert_close(one, back)


# ------------------------------------------------------------------------------------------------
# Faults: a killed or stuck rank ends the job with an error, within the timeout


def _faulty_rank(rank, cfg, run, ds, fault, out):
    def on_step(step, loss):
        if rank == 1 and step == 2:
            if fault == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)  # stuck past the 4 s timeout (then it finds rank 0 gone and fails too)

    t0 = time.monotonic()
    try:
        train(cfg, run, dataset=ds, progress=False, on_step=on_step)
    except loop.TrainingError as e:
        (out / f"error-{rank}.txt").write_text(f"{time.monotonic() - t0:.1f}\n{e}")
        raise


@pytest.mark.parametrize("fault", ["kill", pytest.param("stuck", marks=pytest.mark.slow)])
def test_a_dead_or_stuck_rank_ends_the_job_with_an_error(run_cfg, small_ds, tmp_path, fault, monkeypatch):
    monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)
    t0 = time.monotonic()
    codes = _fork_ranks(tmp_path, _faulty_rank, run_cfg, tmp_path / "run", small_ds, fault, tmp_path, timeout_s=4.0,
                        join_s=60.0)
    assert codes[0] == 1, (codes, _errors(tmp_path))  # rank 0 raised; it did not hang
    seconds, message = (tmp_path / "error-0.txt").read_text().split("\n", 1)
    assert "another process died, or was stuck longer than the 4 s timeout" in message
    assert "rank 0 of 2" in message and "--resume" in message
    assert time.monotonic() - t0 < 40


# ------------------------------------------------------------------------------------------------
# Every signal and condition kind on 2 processes (slow: a few seconds each)

KINDS = {  # name -> (config overrides, dataset factory)
    "text": (["data.source=shapes", "data.resolution=8", "data.conditional=false", "text.encoder=small", "text.dim=16",
              "text.depth=1", "text.heads=2", "text.max_length=24", "text.caption_dropout=0.25"],
             lambda: __import__("noisecraft.data.shapes", fromlist=["x"]).load_shapes(
                 split="train", num_images=48, resolution=8, labels=False)),
    "mask": (["cond.image=mask", "data.resolution=8"], None),
    "1d": (["data.source=waves", "data.resolution=32"], lambda: _waves()),
}


def _waves():
    from noisecraft.data import load_dataset

    ds = load_dataset("waves", resolution=32, split="train")
    return type(ds)(ds.data[:48].clone(), ds.labels[:48].clone(), class_names=ds.class_names, name=ds.name,
                    modality=ds.modality)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_trains_alike_on_two_processes(tiny_config, small_ds, tmp_path, kind, monkeypatch):
    monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)
    overrides, make = KINDS[kind]
    cfg = tiny_config("train.steps=3", "train.batch_size=8", "train.accum_steps=2", "ema.phema_every=3", *overrides)
    ds = make() if make is not None else small_ds
    train(cfg, tmp_path / "one", dataset=ds, progress=False)
    _run2(tmp_path, cfg, tmp_path / "two", ds)
    _assert_close(tmp_path / "one", tmp_path / "two")


# What torchrun's own launcher prints when its rendezvous store cannot be reached or bound (a port
# already in use, a connection refused or reset): an environment failure, not ours.
_LAUNCHER_NETWORK_ERRORS = ("RendezvousConnectionError", "RendezvousTimeoutError", "DistNetworkError",
                            "Address already in use", "Connection refused", "Connection reset by peer")


def _torchrun(args: list[str], env: dict, tries: int = 2, new_folder: Path | None = None) -> subprocess.CompletedProcess:
    """Run `torchrun --standalone --nproc_per_node=2 -m noisecraft ARGS`; on failure the test shows
    the tail of what it printed. Only a failure of the launcher's network rendezvous (before any
    rank trained) is retried, once (`new_folder`: the run folder a fresh run creates, removed
    first); any other failure fails at once."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "noisecraft"]
    for attempt in range(tries):
        done = subprocess.run(cmd + args, env=env, timeout=300, capture_output=True, text=True)
        if done.returncode == 0:
            return done
        printed = done.stdout + done.stderr
        launcher = any(e in printed for e in _LAUNCHER_NETWORK_ERRORS) and "trained " not in done.stdout
        if not launcher or attempt == tries - 1:
            raise AssertionError(f"torchrun {' '.join(args)} exited {done.returncode} (try {attempt + 1}):\n"
                                 + printed[-6000:])
        if new_folder is not None:
            shutil.rmtree(new_folder, ignore_errors=True)
    raise AssertionError("unreachable")


@pytest.mark.slow
def test_torchrun_cli_trains_and_resumes(tmp_path):
    """The documented commands: torchrun with 2 processes, then a resume on 2 and the same run on 1."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    common = ["--set", "train.batch_size=8", "--set", "train.accum_steps=2", "--set", "train.threads=1", "--quiet",
              "--dist-timeout", "60"]
    two, one = tmp_path / "two", tmp_path / "one"
    _torchrun(["train", "tiny", "--out", str(two), "--steps", "3"] + common, env, new_folder=two)
    done = _torchrun(["train", "--resume", str(two), "--steps", "6", "--quiet", "--dist-timeout", "60"], env)
    assert done.stdout.count("trained ") == 1  # rank 0 reports, rank 1 is silent
    subprocess.run([sys.executable, "-m", "noisecraft", "train", "tiny", "--out", str(one), "--steps", "6"] + common[:-2],
                   env=env, check=True, timeout=300)
    _assert_close(one, two)


def _killed_rank(rank, cfg, run, ds, at):
    def on_step(step, loss):
        if step == at:
            os.kill(os.getpid(), signal.SIGKILL)  # both ranks: the whole job dies between steps

    train(cfg, run, dataset=ds, progress=False, on_step=on_step)


@pytest.mark.slow
def test_whole_job_killed_mid_run_resumes_bitwise(run_cfg, small_ds, tmp_path, monkeypatch):
    monkeypatch.setattr("noisecraft.train.folder.plot_losses", lambda rows, path: None)
    cfg = run_cfg
    cfg.train.checkpoint_every = 2
    _run2(tmp_path, cfg, tmp_path / "straight", small_ds)
    codes = _fork_ranks(tmp_path, _killed_rank, cfg, tmp_path / "killed", small_ds, 5)
    assert codes == [-signal.SIGKILL, -signal.SIGKILL], (codes, _errors(tmp_path))
    assert _state(tmp_path / "killed")[0] == 4  # the newest checkpoint before the kill
    _run2(tmp_path, cfg, tmp_path / "killed", small_ds, resume=True)
    _assert_bitwise(tmp_path / "straight", tmp_path / "killed")


def _start_rank(rank, cfg, run, ds, out):
    try:
        train(cfg, run, dataset=ds, progress=False)
    except Exception as e:
        (out / f"start-{rank}.txt").write_text(f"{type(e).__name__}: {e}")
        raise


def test_an_error_on_rank_0_at_start_up_stops_every_rank(run_cfg, small_ds, tmp_path):
    run = tmp_path / "taken"
    run.mkdir()
    (run / "notes.txt").write_text("not a run")  # a non-empty folder: rank 0 refuses it before writing
    codes = _fork_ranks(tmp_path, _start_rank, run_cfg, run, small_ds, tmp_path, join_s=60.0)
    assert codes == [1, 1], _errors(tmp_path)
    assert "RunError" in (tmp_path / "start-0.txt").read_text()
    other = (tmp_path / "start-1.txt").read_text()
    assert other.startswith("TrainingError: rank 1: 1 other rank(s) failed during creating the run folder")
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
