"""`noisecraft eval`: score a trained run, and fit the feature classifier the scores use.

    noisecraft eval RUN_DIR --out REPORT_DIR [--n N] [--metrics fd,kid,pr,acc,nll] [--solver S] [--nfe K]
                    [--guidance W] [--seed S] [--weights ema] [--features PATH] [--sweep-nfe 4,8,16]
                    [--nll-n 64] [--nll-levels 256]
    noisecraft eval fit-features DATASET --out FEATURES [--resolution 16] [--steps 1200] [--seed 0]

Audio runs are scored with their own metrics (--metrics fd,kid,acc,timbre,pitch,copies; see
docs/audio.md), video runs with motion metrics (--metrics acc,identity,trajectory,fvd; docs/video.md;
text- or class-conditional moving-shapes runs with colour, shape and motion follow rates, --metrics follow),
field runs with physical statistics (--metrics spectrum,pixels,residual; docs/fields.md);
the run's modality chooses (noisecraft.eval.report.evaluate_run).

`eval` is a group whose default command is `run`: `noisecraft eval RUN_DIR ...` is
`noisecraft eval run RUN_DIR ...`. Register it in the main CLI with `cli.add_command(eval_group, "eval")`.
"""

from __future__ import annotations

import math

import click

from .common import UserError, user_errors

__all__ = ["eval_group", "eval_run", "fit_features_cmd"]


class _DefaultGroup(click.Group):
    """A group that runs `run` when its first argument is not a sub-command name."""

    default_command = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args:  # plain `noisecraft eval`: show the help, not an error
            click.echo(ctx.get_help())
            ctx.exit(0)
        if args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def _errors():
    return user_errors()


def _usage(message: str) -> Exception:
    return UserError(message)


def _int_list(text: str | None, option: str) -> list[int]:
    if not text:
        return []
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise _usage(f"{option} {text!r} is not a comma-separated list of integers (e.g. 4,8,16,32)") from None


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
def eval_group() -> None:
    """Evaluate a trained run (default command: run), or fit the feature classifier.

    \b
    noisecraft eval RUN_DIR --out REPORT_DIR       same as `noisecraft eval run RUN_DIR ...`
    noisecraft eval fit-features DATASET --out FEATURES
    """


@eval_group.command("run")
@click.argument("run_dir", type=click.Path())
@click.option("--out", type=click.Path(), required=True, help="Report folder (report.json, report.md, pictures).")
@click.option("--n", "n", type=int,
              help="Samples to generate and score. Default: 1000 for images; for audio and video the floor's number of "
                   "clips (half the held-out split), so FD and KID compare like with like; for moving-shapes runs the clips "
                   "per group (held-out and seen prompts), default 90; for fields the test split's size.")
@click.option("--metrics",
              help="Comma-separated. Images (default fd,kid,pr,acc): fd, kid, pr (precision/recall), acc (class "
                   "accuracy/coverage), nll (likelihood). Audio (default all): fd, kid, acc, timbre, pitch (within "
                   "±50 cents), copies (near copies of training clips). Video (default all): acc (per-frame digit), "
                   "identity, trajectory (residual in px), fvd; moving-shapes runs: follow (colour, shape and motion follow "
                   "rates). Fields (default all): spectrum (power per wavenumber "
                   "band), pixels, residual (Darcy PDE residual; darcy runs).")
@click.option("--solver", help="Solver name (default: the run's sample.solver).")
@click.option("--nfe", type=int, help="Network evaluations per sample (default: the run's sample.nfe).")
@click.option("--guidance", type=float, help="Classifier-free guidance weight (default: the run's sample.guidance); a guidance-distilled student (distill --guidance-range) takes W as an input, one call per step, within its range.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sample i uses seed + i; also seeds KID subsets.")
@click.option("--weights", default="ema", show_default=True, help="raw | ema | phema-<std> (post-hoc EMA).")
@click.option("--features", type=str,
              help="A folder from `eval fit-features`, an Inception weight file (.pth/.safetensors), or 'inception' "
                   "(the file in its default place). Default: the built-in dataset's classifier.")
@click.option("--sweep-nfe", help="Also score samples at these NFE, e.g. 4,8,16,32, and plot quality vs NFE.")
@click.option("--nll-n", type=int, default=64, show_default=True, help="Held-out images scored by the nll metric.")
@click.option("--nll-levels", type=int, default=256, show_default=True,
              help="Levels the held-out images are quantized to on [-1, 1] for the dequantized bits/dim bound (256 = 8-bit).")
@click.option("--kid-subsets", type=int, default=100, show_default=True, help="Random subsets KID is averaged over.")
@click.option("--cache-dir", type=click.Path(),
              help="Cache folder (default: $NOISECRAFT_CACHE/reference for images' reference features, "
                   "$NOISECRAFT_CACHE/audio-features for audio runs' fitted feature classifier, "
                   "$NOISECRAFT_CACHE/video-features for video runs' frame and motion classifiers).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the reference-feature cache.")
@click.option("--physics", type=float, help="Field runs with a PDE residual (darcy): sample with physics guidance of this weight ζ_p (docs/fields.md).")
@click.option("--physics-sigma", type=float, default=math.inf, show_default=True, help="With --physics: the largest σ at which it acts.")
@click.option("--quiet", is_flag=True, help="Only the final line.")
def eval_run(run_dir, out, n, metrics, solver, nfe, guidance, seed, weights, features, sweep_nfe, nll_n, nll_levels,
             kid_subsets, cache_dir, no_cache, physics, physics_sigma, quiet) -> None:
    """Sample RUN_DIR and score the samples against its training data; writes REPORT_DIR.

    Every metric is also reported for the held-out real split against the same reference (the
    noise floor). Results are deterministic for a fixed --seed. Audio runs get their own report
    (class, timbre and pitch accuracy, near copies; docs/audio.md), video runs a motion report
    (frame accuracy, identity, trajectory residual, FVD; docs/video.md), field runs a physics report
    (power spectrum per wavenumber band, pixel statistics, Darcy residual; docs/fields.md).
    """
    with _errors():
        from ..eval.report import evaluate_run

        sweep = _int_list(sweep_nfe, "--sweep-nfe")
        if n is not None and n < 2:
            raise _usage(f"--n {n} is out of range; valid: an integer >= 2")
        if not 0 <= seed <= 2**63 - max(n or 1, 1):  # sample i uses seed + i (64-bit generator seeds)
            raise _usage(f"--seed {seed} is out of range; valid: 0 <= seed <= 2**63 - N (N = --n {n})")
        if nll_n < 1:
            raise _usage(f"--nll-n {nll_n} is out of range; valid: an integer >= 1")
        if nll_levels < 2:
            raise _usage(f"--nll-levels {nll_levels} is out of range; valid: an integer >= 2")
        if kid_subsets < 1:
            raise _usage(f"--kid-subsets {kid_subsets} is out of range; valid: an integer >= 1")
        echo = (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))
        report = evaluate_run(run_dir, out, n=n, metrics=metrics, solver=solver, nfe=nfe, guidance=guidance,
                              seed=seed, weights=weights, features=features, sweep_nfe=sweep, nll_n=nll_n,
                              nll_levels=nll_levels, kid_subsets=kid_subsets, cache_dir=cache_dir, use_cache=not no_cache, echo=echo,
                              physics=physics, physics_sigma=physics_sigma)
    gen, floor = report["generated"], report["noise_floor"]
    parts = []
    for key in report["directions"]:  # the protocol's metrics, in its order
        if isinstance(gen.get(key), float):
            fl = f" (floor {floor[key]:.4g})" if isinstance(floor.get(key), float) else ""
            parts.append(f"{key} {gen[key]:.4g}{fl}")
    click.echo(f"wrote {out}/report.md: " + ", ".join(parts))


@eval_group.command("fit-features")
@click.argument("dataset")
@click.option("--out", type=click.Path(), required=True, help="Folder for extractor.json + weights.safetensors.")
@click.option("--resolution", type=int, default=16, show_default=True,
              help="Image size the classifier sees (use the resolution of the runs it will score; 0 = as stored).")
@click.option("--channels", type=int, default=0, show_default=True, help="1 or 3 to convert; 0 = as stored.")
@click.option("--steps", type=int, default=1200, show_default=True, help="Training steps.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--width", type=int, default=16, show_default=True, help="Channels of the first conv stage.")
@click.option("--feature-dim", type=int, default=64, show_default=True, help="Size of the feature layer (F).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def fit_features_cmd(dataset, out, resolution, channels, steps, batch_size, width, feature_dim, seed, quiet) -> None:
    """Train the small feature classifier on DATASET's labels (offline) and save it to FEATURES.

    DATASET is a built-in name (digits) or a folder of images in class sub-folders. Built-ins report
    accuracy on their test split; folders hold out 15% of each class.
    """
    with _errors():
        from pathlib import Path

        from ..eval import fit_features, save_extractor

        # upper bounds keep a typo from allocating terabytes (the classifier is a few conv layers)
        for name, value, lo, hi in (("--steps", steps, 1, 10_000_000), ("--batch-size", batch_size, 1, 65_536),
                                    ("--width", width, 1, 1024), ("--feature-dim", feature_dim, 1, 4096)):
            if not lo <= value <= hi:
                raise _usage(f"{name} {value} is out of range; valid: {lo}..{hi}")
        if not (resolution == 0 or 4 <= resolution <= 1024):
            raise _usage(f"--resolution {resolution} is out of range; valid: 0 (as stored) or 4..1024")
        if not 0 <= seed < 2**63:
            raise _usage(f"--seed {seed} is out of range; valid: 0 <= seed < 2**63")
        if channels not in (0, 1, 3):
            raise _usage(f"--channels {channels} is not valid; valid: 0 (as stored), 1, 3")
        outp = Path(out)
        if outp.exists() and not outp.is_dir():
            raise _usage(f"--out {out!r} is a file; give a folder")
        result = fit_features(dataset, resolution=resolution or None, channels=channels or None, steps=steps,
                              batch_size=batch_size, width=width, feature_dim=feature_dim, seed=seed,
                              progress=not quiet)
        save_extractor(result.extractor, outp)
    held = "n/a" if result.held_out_accuracy is None else f"{result.held_out_accuracy:.4f}"
    click.echo(f"wrote {out}: held-out accuracy {held} ({result.extractor.info.get('held_out_images', 0)} images), "
               f"train accuracy {result.train_accuracy:.4f}, {result.seconds:.1f} s")
