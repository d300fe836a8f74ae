"""Several processes training one run: torch.distributed under torchrun (DDP; gloo on CPU, NCCL on CUDA).

    torchrun --standalone --nproc_per_node=N -m noisecraft train CONFIG --out RUN

`train.batch_size` is the global batch: each of N processes takes its contiguous B/N slice of the
global batch (the same data order on every rank), in micro-batches no larger than the 1-process
micro-batch B/accum_steps, and DDP averages the gradients. Every random draw of a sample comes
from its own generator (core.rng), keyed by the step and the sample's position in the global
batch, so 1 and N processes compute the same update up to the order of float summation.

Rank 0 writes everything (checkpoints, logs, previews, TensorBoard); every rank holds the same
weights, AdamW moments, EMA and post-hoc EMA. The process group is created with a timeout that
bounds its start-up (the rendezvous) and every collective, so a dead or stuck rank ends the job
with a `DistributedError` instead of a hang.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch
import torch.distributed as dist

__all__ = ["World", "DistributedError", "current_world", "init_from_env", "launched_distributed", "shutdown",
           "DEFAULT_TIMEOUT_S"]

DEFAULT_TIMEOUT_S = 600.0  # start-up and every collective; a rank-0 preview or evaluation must fit in it
T = TypeVar("T")


class DistributedError(RuntimeError):
    """The process group failed: a rank died, is stuck past the timeout, or failed before the others. One line."""


@dataclass(frozen=True)
class World:
    """Where this process stands: rank r of `size` processes (size 1 = plain single-process training)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_reduce_sum(self, t: torch.Tensor, what: str) -> torch.Tensor:
        """Sum `t` over all ranks in place (a no-op for one process)."""
        if self.size > 1:
            try:
                dist.all_reduce(t, op=dist.ReduceOp.SUM)
            except (RuntimeError, dist.DistError) as e:
                raise self.failure(what, e) from e
        return t

    def broadcast(self, value: T, what: str) -> T:
        """Rank 0's `value` on every rank (a small picklable object)."""
        if self.size == 1:
            return value
        box = [value]
        try:
            dist.broadcast_object_list(box, src=0)
        except (RuntimeError, dist.DistError) as e:
            raise self.failure(what, e) from e
        return box[0]

    def agree(self, ok: bool, what: str) -> None:
        """A barrier that also says whether every rank got through `what`; the ranks that did raise
        DistributedError when another did not (that rank raises its own error)."""
        if self.size == 1:
            return
        failed = int(self.all_reduce_sum(torch.tensor([0.0 if ok else 1.0], dtype=torch.float64,
                                                      device=self._device()), what).item())
        if failed and ok:
            raise DistributedError(f"rank {self.rank}: {failed} other rank(s) failed during {what}; see their error")

    def rank0_first(self, fn: Callable[[], T], what: str) -> T | None:
        """Run `fn` on rank 0 while the other ranks wait; its error (if any) stops every rank. Returns
        fn's result on rank 0, None elsewhere."""
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except BaseException as e:  # noqa: BLE001 - re-raised below, after the other ranks know
                error = e
        self.agree(error is None, what)
        if error is not None:
            raise error
        return result

    def failure(self, what: str, e: BaseException) -> DistributedError:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return DistributedError(f"rank {self.rank} of {self.size}: {what} failed - another process died, or was stuck "
                                f"longer than the {self.timeout_s:g} s timeout ({first[:200]}); resume from the newest "
                                f"checkpoint with `--resume`")

    def _device(self) -> torch.device:
        if dist.is_initialized() and dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def launched_distributed() -> bool:
    """Whether torchrun (or another launcher setting WORLD_SIZE) started this process as one of several."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def current_world(timeout_s: float | None = None) -> World:
    """This process's place in an initialised process group (World() when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    t = timeout_s if timeout_s is not None else _group_timeout()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), t)


def _group_timeout() -> float:
    """The timeout the default process group was created with (seconds)."""
    try:
        pg = dist.distributed_c10d._get_default_group()
        device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
        return pg._get_backend(device).options._timeout.total_seconds()
    except (AttributeError, RuntimeError):  # a private API: fall back to what init_from_env recorded
        return float(os.environ.get("NOISECRAFT_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))


def init_from_env(device: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> World:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR,
    MASTER_PORT): NCCL when training on CUDA, else gloo. `timeout_s` bounds the rendezvous and every
    collective. DistributedError (one line) when the group cannot be formed in time."""
    if not timeout_s > 0:
        raise ValueError(f"distributed timeout {timeout_s!r} is not valid; give seconds > 0")
    os.environ["NOISECRAFT_DIST_TIMEOUT"] = f"{timeout_s:g}"
    if dist.is_initialized():
        return current_world(timeout_s)
    cuda = str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    try:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError, dist.DistError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DistributedError(f"rank {os.environ.get('RANK', '?')}: could not join the process group of "
                               f"{os.environ.get('WORLD_SIZE', '?')} processes within {timeout_s:g} s ({first[:200]})") from e
    return current_world(timeout_s)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
