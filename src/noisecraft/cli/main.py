"""The `noisecraft` command line. Commands are thin: they parse options and call library functions.

    noisecraft train CONFIG --out RUN_DIR [--steps N] [--checkpoint-every N] [--seed S] [--set key=value ...] [--dry-run]
    noisecraft train --resume RUN_DIR [--steps N]
    noisecraft sample RUN_DIR --n N [--class C | --prompt TEXT ...] [--solver S] [--nfe K] [--guidance W] [--seed S] [--weights W] --out DIR
    noisecraft inpaint RUN_DIR --image IMG --mask MASK [--n N] [--class C] [--guidance W] [--solver S] [--nfe K] [--resample U] [--seed S] --out DIR
    noisecraft img2img RUN_DIR --image IMG --strength 0.6 [--n N] [--class C] [--guidance W] [--solver S] [--nfe K] [--seed S] --out DIR
    noisecraft upscale RUN_DIR --image LOWRES [--method projection|pigdm|dps] [--sigma-y 0] [--n N] [--class C] [--solver S] [--nfe K] [--seed S] --out DIR
    noisecraft demo [--out runs/demo]
    noisecraft ema RUN_DIR --std S

Every user error prints one line `error: ...` to stderr and exits with status 2 (set
NOISECRAFT_DEBUG=1 to see the traceback instead). Status 1 (also one line) means the machine
failed the work: a diverged run, out of memory, a full disk. Weight files are read only through
noisecraft.io_safety: a pickle or a malformed safetensors file is a one-line status-2 error.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator

import click

USAGE_EXIT = 2


class UserError(click.ClickException):
    exit_code = USAGE_EXIT

    def show(self, file=None) -> None:  # one line, no usage block
        click.echo(f"error: {self.format_message()}", err=True, file=file)


def _user_error_types() -> tuple[type[BaseException], ...]:
    from ..train.checkpoint import CheckpointError
    from ..train.config import ConfigError
    from ..train.run import RunError

    types: list[type[BaseException]] = [ConfigError, RunError, CheckpointError, ValueError, TypeError, FileNotFoundError]
    try:
        from ..data import DataError

        types.append(DataError)
    except ImportError:  # pragma: no cover - data package missing
        pass
    return tuple(types)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn library errors into one-line CLI errors (exit 2)."""
    try:
        yield
    except click.ClickException:
        raise
    except _user_error_types() as e:
        if os.environ.get("NOISECRAFT_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(msg) from None


# OS errors of the machine rather than of the arguments: exit 1 (others, e.g. a too-long path: exit 2)
_MACHINE_ERRNOS = {errno.ENOSPC, errno.EIO, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _is_out_of_memory(e: BaseException) -> bool:
    """MemoryError, torch.OutOfMemoryError, or torch's CPU allocator / size-overflow RuntimeError."""
    text = str(e)
    return (isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or "DefaultCPUAllocator" in text
            or "out of memory" in text or "Storage size calculation overflowed" in text)


class _Group(click.Group):
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


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="noisecraft")
def cli() -> None:
    """noisecraft: train diffusion models from scratch and sample them with fast, accurate solvers."""


# ------------------------------------------------------------------------------------------------
# train


def _resolve_config(config: str, steps, checkpoint_every, seed, sets):
    from ..train.config import load_config

    overrides = list(sets)
    if steps is not None:
        overrides.append(f"train.steps={steps}")
    if checkpoint_every is not None:
        overrides.append(f"train.checkpoint_every={checkpoint_every}")
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    try:
        return load_config(config, overrides)
    except UnicodeDecodeError:  # e.g. an image given as CONFIG
        raise UserError(f"config file {config!r} is not a TOML text file (not UTF-8); give a TOML file or a preset") from None


def _run_training(fn, cfg, run_dir, **kw):
    """Call the training loop; an interrupt or a diverged run ends with one line, not a traceback."""
    from ..train.loop import TrainingError

    try:
        return fn(cfg, run_dir, **kw)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; continue with: noisecraft train --resume {run_dir}", err=True)
        sys.exit(130)
    except TrainingError as e:
        if os.environ.get("NOISECRAFT_DEBUG"):
            raise
        click.echo(f"error: {e}", err=True)
        sys.exit(1)


@cli.command()
@click.argument("config", required=False)
@click.option("--out", type=click.Path(file_okay=False), help="Run folder to create (must be new or empty).")
@click.option("--resume", "resume_dir", type=click.Path(), help="Continue the run in this folder from its newest checkpoint.")
@click.option("--steps", type=int, help="Override train.steps (with --resume: extend the run to N steps).")
@click.option("--checkpoint-every", type=int, help="Override train.checkpoint_every.")
@click.option("--seed", type=int, help="Override train.seed.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override any config key, e.g. --set optim.lr=2e-3 (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config as JSON and exit.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--device", help="Override train.device: cpu | cuda | cuda:N | auto (also allowed with --resume).")
def train(config, out, resume_dir, steps, checkpoint_every, seed, sets, dry_run, quiet, device) -> None:
    """Train a model from CONFIG: a preset name or a TOML file.

    \b
    Presets: digits (the demo recipe), tiny (seconds; for tests), shapes and shapes-minilm
    (text-to-image with the small or the pretrained text encoder; sample with --prompt).
    Every config key is described in docs/training.md; --dry-run shows them all.
    """
    with _user_errors():
        from ..train import loop
        from ..train.config import preset_names

        if resume_dir is not None:
            if config or out or sets or seed is not None or checkpoint_every is not None:
                raise UserError("--resume RUN_DIR takes no CONFIG, --out, --set, --seed or --checkpoint-every (the run's saved config is used; only --steps may extend it)")
            from ..train.run import read_run

            info = read_run(resume_dir)
            cfg = info.config
            if steps is not None:
                if steps < cfg.train.steps:
                    raise UserError(f"--steps {steps} is less than the run's train.steps ({cfg.train.steps}); give a value >= {cfg.train.steps}")
                cfg.train.steps = steps
            run_dir, resume = resume_dir, True
        else:
            if not config:
                raise UserError(f"missing CONFIG: give a preset ({', '.join(preset_names())}) or a TOML file, or use --resume RUN_DIR")
            cfg = _resolve_config(config, steps, checkpoint_every, seed, sets)
            run_dir, resume = out, False
        if device is not None:
            cfg.train.device = device
        cfg.validate()
        if dry_run:
            click.echo(cfg.to_json())
            return
        if not run_dir:
            raise UserError("missing --out RUN_DIR: the folder to write the run into")
        result = _run_training(loop.train, cfg, run_dir, resume=resume, progress=not quiet)
    click.echo(f"trained {result.run_dir}: step {result.step}, {result.samples_seen} samples seen, "
               f"loss {result.loss:.4f}, {result.seconds:.1f} s; checkpoint {result.checkpoint}")


# ------------------------------------------------------------------------------------------------
# sample


def check_sampling_options(info, *, n: int, solver: str | None, nfe: int | None, guidance: float | None, seed: int,
                           solvers=None, default_solver: str | None = None, text: bool = False):
    """Validate the options shared by `sample` and the task commands; defaults from the run's [sample].

    Returns (solver, nfe, guidance, seed); guidance is None when not given and the model is
    unconditional (nothing to guide). `solvers` limits the valid solver names (default: all).
    text: the samples are prompted (a text-conditioned model), so guidance applies."""
    from ..sampling import SOLVERS

    sc = info.config.sample
    if not 1 <= n <= 100_000:
        raise UserError(f"--n {n} is out of range; valid: 1..100000")
    valid = tuple(SOLVERS if solvers is None else solvers)
    solver = solver or default_solver or sc.solver
    if solver not in valid:
        raise UserError(f"--solver {solver!r} is not a solver{'' if solvers is None else ' for this command'}; valid: {', '.join(valid)}")
    nfe = sc.nfe if nfe is None else nfe
    if not 1 <= nfe <= 10_000:
        raise UserError(f"--nfe {nfe} is out of range; valid: 1..10000")
    if guidance is not None:
        if not (math.isfinite(guidance) and 0 <= guidance < 100):
            raise UserError(f"--guidance {guidance} is out of range; valid: 0 <= W < 100 (1 = no guidance)")
        if not (info.conditional or text) and guidance != 1.0:
            raise UserError(f"--guidance {guidance} needs a class-conditional model; {info.path} is unconditional")
    elif info.conditional or text:
        guidance = sc.guidance
    if not 0 <= seed <= 2**63 - n:  # sample i uses seed + i, a 64-bit generator seed
        raise UserError(f"--seed {seed} is out of range; valid: 0 <= seed <= 2**63 - N (N = --n {n})")
    return solver, nfe, 1.0 if guidance is None else guidance, seed


def class_labels(info, class_, n: int):
    """The class of each of n samples: --class for all, classes in turn when not given, None for
    an unconditional model (--class on one is an error)."""
    from ..train.run import resolve_class

    if class_ is not None:
        return resolve_class(info, class_)
    if info.conditional:
        return [i % info.num_classes for i in range(n)]
    return None


def prompt_list(info, prompts: tuple[str, ...], class_, n: int) -> list[str] | None:
    """The prompt of each of n samples (None: no --prompt on a model without text); each of k
    prompts is repeated n / k times. Errors for --prompt on a model without text conditioning,
    for a text model without --prompt, and for --prompt together with --class."""
    if not prompts:
        if info.text is not None:
            raise UserError(f"{info.path} is a text-conditioned model: give --prompt TEXT (--prompt '' draws unprompted samples)")
        return None
    if info.text is None:
        raise UserError(f"--prompt needs a text-conditioned model; {info.path} was trained without text "
                        "(text.encoder = ''): use --class or no condition")
    if class_ is not None:
        raise UserError(f"--class {class_} and --prompt cannot be combined: {info.path} is text-conditioned; give --prompt only")
    if n % len(prompts):
        raise UserError(f"--n {n} is not a multiple of the {len(prompts)} prompts given; valid: one --prompt, or N a "
                        f"multiple of the number of prompts (each prompt gets N / #prompts samples)")
    return [p for p in prompts for _ in range(n // len(prompts))]


def check_out_folder(out: str) -> Path:
    """--out must not be a run folder or a file."""
    from ..train.run import is_run

    outp = Path(out)
    if is_run(outp):
        raise UserError(f"--out {out!r} is a run folder; write samples to another folder")
    if outp.exists() and not outp.is_dir():
        raise UserError(f"--out {out!r} is a file, not a folder")
    return outp


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--n", "n", type=int, required=True, help="Number of samples.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for the PNGs and grid.png.")
@click.option("--class", "class_", help="Class index or name for every sample (conditional models). Default: classes in turn.")
@click.option("--prompt", "prompt", multiple=True, help="Text prompt (text-conditioned models); repeat it for several "
              "prompts, each drawn N / #prompts times (one grid row each).")
@click.option("--solver", help="Solver name (default: the run's sample.solver).")
@click.option("--nfe", type=int, help="Network evaluations per sample (default: the run's sample.nfe).")
@click.option("--guidance", type=float, help="Classifier-free guidance weight (default: the run's sample.guidance).")
@click.option("--seed", type=int, default=0, show_default=True, help="Sample i uses seed + i.")
@click.option("--weights", default="ema", show_default=True, help="raw | ema | best (eval.keep_best) | phema-<std> (post-hoc EMA).")
@click.option("--scale", type=int, help="Upscale factor of the saved PNGs (default: the run's sample.scale).")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N | auto (CUDA when available).")
def sample(run_dir, n, out, class_, prompt, solver, nfe, guidance, seed, weights, scale, device) -> None:
    """Draw N samples from a trained run; writes DIR/000000.png ... and DIR/grid.png
    (and DIR/prompts.txt, one prompt per sample, with --prompt)."""
    with _user_errors():
        from ..io import save_grid, save_image
        from ..train.run import generate, load_denoiser, num_threads, read_run

        info = read_run(run_dir)
        info.require_no_image_cond("noisecraft sample")
        sc = info.config.sample
        prompts = prompt_list(info, prompt, class_, n)
        solver, nfe, guidance, seed = check_sampling_options(info, n=n, solver=solver, nfe=nfe, guidance=guidance, seed=seed,
                                                             text=prompts is not None)
        scale = sc.scale if scale is None else scale
        if not 1 <= scale <= 64:
            raise UserError(f"--scale {scale} is out of range; valid: 1..64")
        labels = class_labels(info, class_, n)
        outp = check_out_folder(out)
        with num_threads(info.config.train.threads), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            den, _ = load_denoiser(run_dir, weights, device=device)
            x = generate(den, n, (info.channels, info.resolution, info.resolution), seed=seed,
                         class_labels=labels, num_classes=info.num_classes, guidance=guidance, solver=solver, nfe=nfe,
                         sigma_min=sc.sigma_min, sigma_max=sc.sigma_max, prompts=prompts).clamp(-1, 1)
        for message in dict.fromkeys(str(w.message) for w in caught if "truncated" in str(w.message)):
            click.echo(f"warning: {message}", err=True)  # e.g. a prompt longer than the text encoder's max_length
        outp.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            save_image(x[i], outp / f"{i:06d}.png", scale=scale)
        nrow = info.num_classes if (class_ is None and info.conditional and n >= info.num_classes) else max(1, math.ceil(math.sqrt(n)))
        if prompts is not None:
            nrow = n // len(prompt) if len(prompt) > 1 else nrow
            (outp / "prompts.txt").write_text("".join(f"{i:06d}.png\t{p}\n" for i, p in enumerate(prompts)), encoding="utf-8")
        save_grid(x, outp / "grid.png", nrow, scale=scale)
    click.echo(f"wrote {n} samples and grid.png to {out}")


# ------------------------------------------------------------------------------------------------
# ema


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--std", type=float, required=True, help="Relative EMA std to reconstruct (EDM2 σ_rel), e.g. 0.08.")
def ema(run_dir, std) -> None:
    """Reconstruct a post-hoc EMA of relative std S from the run's snapshots (EDM2).

    Writes RUN_DIR/phema/phema-<std>.safetensors; sample it with `--weights phema-<std>`.
    """
    with _user_errors():
        from ..train.run import read_run, reconstruct_phema

        read_run(run_dir)
        _, path = reconstruct_phema(run_dir, std)
    click.echo(f"wrote {path} (sample with --weights phema-{std:.3f})")


# ------------------------------------------------------------------------------------------------
# demo


@cli.command()
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False), help="Run folder to write.")
@click.option("--steps", type=int, hidden=True, help="Override the number of training steps (tests).")
@click.option("--per-class", type=int, hidden=True, help="Samples per class row in grid.png (tests).")
@click.option("--nfe", type=int, hidden=True, help="Sampler NFE (tests).")
@click.option("--set", "sets", multiple=True, hidden=True, metavar="KEY=VALUE", help="Override a key of the digits preset.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def demo(out, steps, per_class, nfe, sets, quiet) -> None:
    """Train a class-conditional digits model (under 5 minutes on 2 CPU cores) and draw it.

    Writes into OUT: the run itself, grid.png (one row per digit), process.png and process.gif
    (a digit dissolving into noise, and noise becoming digits).
    """
    with _user_errors():
        from ..train.demo import run_demo

        try:
            result = run_demo(out, steps=steps, per_class=per_class, nfe=nfe, overrides=sets, progress=not quiet,
                              echo=click.echo)
        except KeyboardInterrupt:
            click.echo(f"\ninterrupted; run `noisecraft demo --out {out}` again to continue", err=True)
            sys.exit(130)
    click.echo(f"demo done in {result['seconds']:.0f} s (training {result['train_seconds']:.0f} s): "
               f"{result['grid']}, {result['process_png']}, {result['process_gif']}")
    click.echo(f"try: noisecraft sample {out} --class 3 --n 8 --out samples-3")


def _register_subcommands() -> None:
    from .eval_cmd import eval_group
    from .tasks_cmd import img2img_cmd, inpaint_cmd, upscale_cmd

    cli.add_command(eval_group, "eval")
    cli.add_command(inpaint_cmd, "inpaint")
    cli.add_command(img2img_cmd, "img2img")
    cli.add_command(upscale_cmd, "upscale")


_register_subcommands()


def main() -> None:
    cli(prog_name="noisecraft")
