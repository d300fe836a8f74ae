"""The `noisecraft` command line. Commands are thin: they parse options and call library functions.

    noisecraft train CONFIG --out RUN_DIR [--steps N] [--checkpoint-every N] [--seed S] [--set key=value ...] [--dry-run]
    noisecraft train --resume RUN_DIR [--steps N]
    torchrun --standalone --nproc_per_node=N -m noisecraft train CONFIG --out RUN_DIR [--dist-timeout S]   (docs/scaling.md)
    noisecraft sample RUN_DIR --n N [--class C | --prompt TEXT ...] [--solver S] [--nfe K] [--guidance W] [--seed S] [--weights W] --out DIR
    noisecraft inpaint RUN_DIR (--image IMG --mask MASK | --audio WAV --span START:END) [--n N] [--class C] [--guidance W] [--solver S] [--nfe K] [--resample U] [--seed S] --out DIR
    noisecraft img2img RUN_DIR --image IMG --strength 0.6 [--n N] [--class C] [--guidance W] [--solver S] [--nfe K] [--seed S] --out DIR
    noisecraft upscale RUN_DIR --image LOWRES [--method projection|pigdm|dps] [--sigma-y 0] [--n N] [--class C] [--solver S] [--nfe K] [--seed S] --out DIR
    noisecraft predict VIDEO_RUN --video IN.gif --keep K [--n N] [--class C] [--solver S] [--nfe K] [--resample U] [--seed S] --out DIR
    noisecraft interpolate VIDEO_RUN --video IN.gif --keep 0,15 [--n N] [--class C] [--solver S] [--nfe K] [--resample U] [--seed S] --out DIR
    noisecraft reconstruct RUN_DIR --observations OBS.npz [--n 32] [--seed S] [--method M] [--truth F.npz] --out DIR
    noisecraft forecast RUN_DIR --state STATE.npz [--steps 8] [--n 8] [--seed S] [--truth TRAJ.npz] --out DIR
    noisecraft distill RUN_DIR --method consistency|progressive --steps K --out RUN2   (docs/distillation.md)
    noisecraft demo [--out runs/demo]
    noisecraft ema RUN_DIR --std S
    noisecraft serve [RUN_DIR ...] [--host 127.0.0.1] [--port 7860]   (the web app, docs/webapp.md)

Every user error prints one line `error: ...` to stderr and exits with status 2 (see
cli/common.py). Weight files are read only through noisecraft.io_safety: a pickle or a malformed
safetensors file is a one-line status-2 error.
"""

from __future__ import annotations

import math
import os
import sys
import warnings

import click

from .common import Group, UserError, check_out_folder, condition_values, sampling_spec, user_errors, write_samples


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="noisecraft")
def cli() -> None:
    """noisecraft: train diffusion models from scratch and sample them with fast, accurate solvers."""


# ------------------------------------------------------------------------------------------------
# train


def _resolve_config(config: str, steps, checkpoint_every, seed, sets):
    from ..config import load_config

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
@click.option("--dist-timeout", type=float, default=600.0, show_default=True,
              help="Under torchrun: seconds to wait for the other processes at start-up and at every collective "
                   "before ending the job with an error.")
def train(config, out, resume_dir, steps, checkpoint_every, seed, sets, dry_run, quiet, device, dist_timeout) -> None:
    """Train a model from CONFIG: a preset name or a TOML file.

    \b
    Presets: digits (the demo recipe), tiny (seconds; for tests), shapes and shapes-minilm
    (text-to-image with the small or the pretrained text encoder; sample with --prompt), notes
    (audio: synthetic notes, sample with --class pluck:A4), grf (unconditional Gaussian random
    fields; reconstruct from sparse observations with `noisecraft reconstruct`), grf-scales
    (fields conditioned on a continuous length scale; sample with --param length=0.07).
    Every config key is described in docs/training.md; --dry-run shows them all. Under torchrun
    (`torchrun --nproc_per_node=N -m noisecraft train ...`) the N processes train one run with DDP;
    train.batch_size stays the global batch (docs/scaling.md).
    """
    with user_errors():
        from ..config import preset_names
        from ..runs import Run
        from ..train import loop

        if resume_dir is not None:
            if config or out or sets or seed is not None or checkpoint_every is not None:
                raise UserError("--resume RUN_DIR takes no CONFIG, --out, --set, --seed or --checkpoint-every (the run's saved config is used; only --steps may extend it)")
            cfg = Run.open(resume_dir).config
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
        from ..train import distributed

        world = None
        if distributed.launched_distributed():
            try:
                world = distributed.init_from_env(cfg.train.device, dist_timeout)
            except distributed.DistributedError as e:
                click.echo(f"error: {e}", err=True)
                sys.exit(1)
        try:
            result = _run_training(loop.train, cfg, run_dir, resume=resume, progress=not quiet)
        finally:
            distributed.shutdown()
        if world is not None and not world.is_main:
            return
    click.echo(f"trained {result.run_dir}: step {result.step}, {result.samples_seen} samples seen, "
               f"loss {result.loss:.4f}, {result.seconds:.1f} s; checkpoint {result.checkpoint}")


# ------------------------------------------------------------------------------------------------
# sample


@cli.command()
@click.argument("run_dir", type=click.Path())
@click.option("--n", "n", type=int, required=True, help="Number of samples.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for the sample files and grid.png.")
@click.option("--class", "class_", help="Class index or name for every sample (conditional models). Default: classes in turn.")
@click.option("--prompt", "prompt", multiple=True, help="Text prompt (text-conditioned models); repeat it for several "
              "prompts, each drawn N / #prompts times (one grid row each).")
@click.option("--param", "param", multiple=True, metavar="NAME=VALUE", help="A continuous parameter for every sample "
              "(parameter-conditioned models, e.g. --param length=0.07 for grf-scales), inside the trained range; "
              "repeat it for each parameter. Default: the first parameter swept over its range.")
@click.option("--solver", help="Solver name (default: the run's sample.solver).")
@click.option("--nfe", type=int, help="Network evaluations per sample (default: the run's sample.nfe).")
@click.option("--guidance", type=float, help="Classifier-free guidance weight (default: the run's sample.guidance); a guidance-distilled student (distill --guidance-range) takes W as an input, one call per step, within its range.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sample i uses seed + i.")
@click.option("--weights", default="ema", show_default=True, help="raw | ema | best (eval.keep_best) | phema-<std> (post-hoc EMA).")
@click.option("--scale", type=int, help="Upscale factor of the saved PNGs (default: the run's sample.scale).")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N | auto (CUDA when available).")
@click.option("--physics", type=float, help="Field runs with a PDE residual (darcy): physics guidance of this weight ζ_p (docs/fields.md).")
@click.option("--physics-sigma", type=float, default=math.inf, show_default=True, help="With --physics: the largest σ at which it acts.")
def sample(run_dir, n, out, class_, prompt, param, solver, nfe, guidance, seed, weights, scale, device, physics,
           physics_sigma) -> None:
    """Draw N samples from a trained run; writes DIR/000000.png ... (.npz for array runs, 16-bit
    .wav at the run's sample rate for audio runs, a looping .gif and an .mp4 for video runs) and
    DIR/grid.png at the display scale (audio: spectrograms; video: a frame strip per sample), and
    DIR/prompts.txt, one prompt per sample, with --prompt (DIR/params.txt, each sample's parameters, for a
    parameter-conditioned model)."""
    with user_errors():
        from ..runs import Run
        from ..runtime import num_threads

        run = Run.open(run_dir)
        wrap = None
        if physics is not None:
            from ..eval.field_run import physics_wrapper

            if run.modality != "field" or run.conditioners:
                raise UserError(f"--physics guides unconditional field runs with a PDE residual (darcy); run {run_dir} "
                                f"is {run!r}")
            wrap = physics_wrapper(run.config.data.source, dict(run.config.data.options), physics, physics_sigma)
        values = condition_values(run, class_, prompt, n, param)
        spec = sampling_spec(run, n=n, solver=solver, nfe=nfe, guidance=guidance, seed=seed)
        scale = run.config.sample.scale if scale is None else scale
        if not 1 <= scale <= 64:
            raise UserError(f"--scale {scale} is out of range; valid: 1..64")
        outp = check_out_folder(out)
        pcond = run.conditioner("params")
        if pcond is not None:  # θ per sample, once: what generate draws with and what params.txt lists
            values["params"] = pcond.prepare(values.get("params"), n)
        with num_threads(run.config.train.threads), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            x = run.generate(spec, n, weights=weights, device=device, wrap=wrap, **values)
        for message in dict.fromkeys(str(w.message) for w in caught if "truncated" in str(w.message)):
            click.echo(f"warning: {message}", err=True)  # e.g. a prompt longer than the text encoder's max_length
        k = run.num_classes
        nrow = k if (class_ is None and k and n >= k) else max(1, math.ceil(math.sqrt(n)))
        if "prompts" in values:
            nrow = n // len(prompt) if len(prompt) > 1 else nrow
            outp.mkdir(parents=True, exist_ok=True)
            ext = run.get_modality().file_ext
            lines = "".join(f"{i:06d}{ext}\t{p}\n" for i, p in enumerate(values["prompts"]))
            (outp / "prompts.txt").write_text(lines, encoding="utf-8")
        if pcond is not None:  # which θ each sample was drawn with (the default sweeps the first parameter)
            outp.mkdir(parents=True, exist_ok=True)
            ext = run.get_modality().file_ext
            rows = pcond.describe(values["params"])
            (outp / "params.txt").write_text("".join(f"{i:06d}{ext}\t{r}\n" for i, r in enumerate(rows)), encoding="utf-8")
        write_samples(run, x, outp, nrow=nrow, scale=scale)
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
    with user_errors():
        from ..runs import Run, reconstruct_phema

        Run.open(run_dir)
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
    with user_errors():
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
    from .data_cmd import data_group
    from .distill_cmd import distill_cmd
    from .eval_cmd import eval_group
    from .fields_cmd import forecast_cmd, reconstruct_cmd
    from .latent_cmd import train_autoencoder_cmd
    from .serve_cmd import serve_cmd
    from .tasks_cmd import img2img_cmd, inpaint_cmd, interpolate_cmd, predict_cmd, upscale_cmd

    cli.add_command(data_group, "data")
    cli.add_command(eval_group, "eval")
    cli.add_command(inpaint_cmd, "inpaint")
    cli.add_command(img2img_cmd, "img2img")
    cli.add_command(upscale_cmd, "upscale")
    cli.add_command(predict_cmd, "predict")
    cli.add_command(interpolate_cmd, "interpolate")
    cli.add_command(reconstruct_cmd, "reconstruct")
    cli.add_command(forecast_cmd, "forecast")
    cli.add_command(serve_cmd, "serve")
    cli.add_command(distill_cmd, "distill")
    cli.add_command(train_autoencoder_cmd, "train-autoencoder")


_register_subcommands()


def main() -> None:
    cli(prog_name="noisecraft")
