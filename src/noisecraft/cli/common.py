"""What every `noisecraft` command shares: one-line errors, the flags <-> parameters mapping, the
sampling options of a run, condition flags and output folders. Commands live in main.py,
tasks_cmd.py, eval_cmd.py and data_cmd.py and import from here only (no import between them).

Every user error prints one line `error: ...` to stderr and exits with status 2 (set
NOISECRAFT_DEBUG=1 to see the traceback instead). Status 1 (also one line) means the machine
failed the work: a diverged run, out of memory, a full disk.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterator

import click

__all__ = ["USAGE_EXIT", "UserError", "user_errors", "flag_message", "Group", "sampling_spec", "condition_values",
           "prompt_list", "check_out_folder", "write_samples"]

USAGE_EXIT = 2


class UserError(click.ClickException):
    exit_code = USAGE_EXIT

    def show(self, file=None) -> None:  # one line, no usage block
        click.echo(f"error: {self.format_message()}", err=True, file=file)


# Library errors name parameters (`class_labels 12 is not a class ...`); the CLI names its flags.
# Names with an underscore are replaced wherever they stand, short ones only at the start.
PARAM_FLAGS = {
    "out_dir": "--out", "class_labels": "--class", "prompts": "--prompt", "params": "--param", "image_cond": "--image",
    "sweep_nfe": "--sweep-nfe", "sigma_y": "--sigma-y", "n": "--n", "nfe": "--nfe", "solver": "--solver",
    "guidance": "--guidance", "seed": "--seed", "weights": "--weights", "std": "--std", "scale": "--scale",
    "strength": "--strength", "split": "--split", "features": "--features", "span": "--span",
    "physics": "--physics", "physics_sigma": "--physics-sigma",
}
_DISTINCT = re.compile(r"\b(" + "|".join(k for k in PARAM_FLAGS if "_" in k) + r")\b")
_LEADING = re.compile(r"^(" + "|".join(k for k in PARAM_FLAGS if "_" not in k) + r") ")


def flag_message(message: str) -> str:
    """A library message with its parameter names replaced by the CLI's flags."""
    message = _DISTINCT.sub(lambda m: PARAM_FLAGS[m.group(1)], message)
    return _LEADING.sub(lambda m: PARAM_FLAGS[m.group(1)] + " ", message)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from ..config import ConfigError
    from ..data import DataError
    from ..runs import CheckpointError, RunError

    return (ConfigError, RunError, CheckpointError, DataError, ValueError, TypeError, FileNotFoundError)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn library errors into one-line CLI errors (exit 2)."""
    try:
        yield
    except click.ClickException:
        raise
    except _user_error_types() as e:
        if os.environ.get("NOISECRAFT_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(flag_message(msg)) from None


# OS errors of the machine rather than of the arguments: exit 1 (others, e.g. a too-long path: exit 2)
_MACHINE_ERRNOS = {errno.ENOSPC, errno.EIO, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _is_out_of_memory(e: BaseException) -> bool:
    """MemoryError, torch.OutOfMemoryError, or torch's CPU allocator / size-overflow RuntimeError."""
    text = str(e)
    return (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "DefaultCPUAllocator" in text
            or "out of memory" in text or "Storage size calculation overflowed" in text)


class Group(click.Group):
    """A group whose errors (click's own included) are printed as one line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # plain `noisecraft`: the help, not an error
            if not standalone_mode:
                raise
            click.echo(e.ctx.get_help() if e.ctx is not None else e.format_message())
            sys.exit(0)
        except click.ClickException as e:
            if not standalone_mode:
                raise
            hint = ""
            if isinstance(e, click.UsageError) and not isinstance(e, UserError) and e.ctx is not None:
                hint = f" (see '{e.ctx.command_path} --help')"
            message = " ".join(e.format_message().split("\n"))  # always one line
            click.echo(f"error: {message}{hint}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            if not standalone_mode:
                raise
            click.echo("aborted", err=True)
            sys.exit(1)
        except (MemoryError, RuntimeError) as e:  # sizes the machine cannot hold: one line, exit 1
            if not standalone_mode or os.environ.get("NOISECRAFT_DEBUG") or not _is_out_of_memory(e):
                raise
            detail = " ".join(str(e).split())[:200]
            click.echo(f"error: out of memory ({detail}); use smaller sizes (--n, batch size, resolution, width)",
                       err=True)
            sys.exit(1)
        except OSError as e:  # a path the system refuses (too long, not a folder, no permission), a full disk
            if not standalone_mode or os.environ.get("NOISECRAFT_DEBUG"):
                raise
            where = f": {str(e.filename)[:200]!r}" if e.filename is not None else ""
            click.echo(f"error: {' '.join(str(e.strerror or e).split())}{where}", err=True)
            sys.exit(1 if e.errno in _MACHINE_ERRNOS else USAGE_EXIT)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


def sampling_spec(run, *, n: int, solver: str | None, nfe: int | None, guidance: float | None, seed: int,
                  solvers=None, default_solver: str | None = None):
    """The SamplingSpec of a command: the run's [sample] settings with the flags given.

    `solvers` limits the valid solver names (default: all); guidance applies only to a model with
    a guided condition (class labels, prompts): on another one, --guidance other than 1 is an error."""
    from ..sampling import SOLVERS

    if not 1 <= n <= 100_000:
        raise UserError(f"--n {n} is out of range; valid: 1..100000")
    valid = tuple(SOLVERS if solvers is None else solvers)
    solver = solver or default_solver or run.config.sample.solver
    if solver not in valid:
        raise UserError(f"--solver {solver!r} is not a solver{'' if solvers is None else ' for this command'}; valid: {', '.join(valid)}")
    guided = any(c.guided for c in run.conditioners)
    if guidance is not None and not guided and guidance != 1.0:
        if not (math.isfinite(guidance) and 0 <= guidance < 100):
            raise UserError(f"--guidance {guidance} is out of range; valid: 0 <= W < 100 (1 = no guidance)")
        what = ("unconditional" if not run.conditioners else
                f"conditioned on {', '.join(c.kind for c in run.conditioners)} without an unconditional mode to guide "
                "from (none of its conditions was dropped in training)")
        raise UserError(f"--guidance {guidance} needs a class-conditional or text-conditioned model; {run.path} is {what}")
    if not guided:
        guidance = 1.0
    spec = run.spec(solver=solver, nfe=nfe, guidance=guidance, seed=seed)
    spec.check_seed_range(n)
    return spec


def condition_values(run, class_, prompts: tuple[str, ...], n: int, params: tuple[str, ...] = ()) -> dict[str, Any]:
    """{conditioner key: value} from --class, --prompt and --param NAME=VALUE (None: the conditioner's
    default, e.g. classes in turn, a parameter swept over its range); errors name the flag and what this run takes."""
    values: dict[str, Any] = {}
    if params:
        from ..conditioning import parse_param_settings

        cond = run.conditioner("params")
        if cond is None:
            raise UserError(f"--param {params[0]} needs a model conditioned on continuous parameters ([cond] params = "
                            f"true, e.g. the grf-scales preset); {run.path} takes none")
        values["params"] = parse_param_settings(params)
    plist = prompt_list(run, prompts, class_, n)
    if class_ is not None:
        if run.conditioner("class_labels") is None:
            raise UserError(f"--class {class_} was given but the run {str(run.path)!r} trained an unconditional model (no classes)")
        values["class_labels"] = class_
    if plist is not None:
        values["prompts"] = plist
    return values


def prompt_list(run, prompts: tuple[str, ...], class_, n: int) -> list[str] | None:
    """The prompt of each of n samples (None: no --prompt on a model without text); each of k
    prompts is repeated n / k times. Errors for --prompt on a model without text conditioning,
    for a text model without --prompt, and for --prompt together with --class."""
    text = run.conditioner("prompts") is not None
    if not prompts:
        if text:
            raise UserError(f"{run.path} is a text-conditioned model: give --prompt TEXT (--prompt '' draws unprompted samples)")
        return None
    if not text:
        raise UserError(f"--prompt needs a text-conditioned model; {run.path} was trained without text "
                        "(text.encoder = ''): use --class or no condition")
    if class_ is not None:
        raise UserError(f"--class {class_} and --prompt cannot be combined: {run.path} is text-conditioned; give --prompt only")
    if n % len(prompts):
        raise UserError(f"--n {n} is not a multiple of the {len(prompts)} prompts given; valid: one --prompt, or N a "
                        f"multiple of the number of prompts (each prompt gets N / #prompts samples)")
    return [p for p in prompts for _ in range(n // len(prompts))]


def check_out_folder(out: str) -> Path:
    """--out must not be a run folder or a file."""
    from ..runs import is_run

    outp = Path(out)
    if is_run(outp):
        raise UserError(f"--out {out!r} is a run folder; write samples to another folder")
    if outp.exists() and not outp.is_dir():
        raise UserError(f"--out {out!r} is a file, not a folder")
    return outp


def write_samples(run, x, out: Path, *, nrow: int, scale: int | None = None, first=None) -> None:
    """OUT/000000.<ext> ... in the run's modality (PNG, NPZ, WAV at the run's sample rate, GIF plus
    MP4 for video), and OUT/grid.png (with `first`, e.g. the input of a task, as its first tile);
    image and video files at the display scale (`scale`, default the run's sample.scale), which every
    command also reads back."""
    import torch

    from ..io.video import FFmpegMissing

    modality = run.get_modality()
    scale = run.config.sample.scale if scale is None else scale
    out.mkdir(parents=True, exist_ok=True)
    x = x.clamp(-1, 1)
    for i in range(x.shape[0]):
        modality.write(x[i], out / f"{i:06d}{modality.file_ext}", scale=scale)
    for ext in getattr(modality, "also_writes", ()):  # video: an MP4 beside every GIF
        try:
            for i in range(x.shape[0]):
                modality.write(x[i], out / f"{i:06d}{ext}", scale=scale)
        except FFmpegMissing as e:
            click.echo(f"warning: {e}; wrote no {ext} files", err=True)
    tiles = x if first is None else torch.cat([first.unsqueeze(0).clamp(-1, 1), x])
    modality.write_preview(tiles, out / "grid.png", nrow=nrow, scale=scale)
