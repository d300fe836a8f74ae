"""`noisecraft distill`: a few-step student of a trained run, written as a normal run folder.

    noisecraft distill RUN --method consistency|progressive --steps K --out RUN2 [--train-steps N] [--lr LR]
                       [--guidance W | --guidance-range LO,HI] [--solver heun|euler] [--levels N] [--from N] [--seed S] [--quiet]
    noisecraft distill --resume RUN2
"""

from __future__ import annotations

import click

from .common import UserError, user_errors


@click.command()
@click.argument("run_dir", required=False)
@click.option("--method", type=click.Choice(["consistency", "progressive"]), help="Consistency distillation (Song et al. 2023) or progressive distillation (Salimans & Ho 2022).")
@click.option("--steps", type=int, help="K: the student's network calls per sample (its default sampler's NFE).")
@click.option("--out", type=click.Path(file_okay=False), help="The student's run folder (new or empty).")
@click.option("--resume", "resume_dir", type=click.Path(), help="Continue an interrupted distillation in this run folder.")
@click.option("--train-steps", type=int, default=600, show_default=True, help="Optimizer steps (progressive: over all stages).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Peak AdamW learning rate (cosine decay).")
@click.option("--guidance", type=float, help="The one CFG weight distilled into the student (default: the teacher's [sample] guidance; its interval is kept); with --guidance-range the weight is an input instead.")
@click.option("--guidance-range", "guidance_range", metavar="LO,HI", help="Distill guidance as an input of the student "
              "(Meng et al. 2023): every training sample draws w uniformly from [LO, HI] (e.g. 1,3) and the teacher's target is "
              "CFG at that w; `noisecraft sample OUT --guidance W` then takes any W in the range, one call per step.")
@click.option("--guidance-lr-scale", "guidance_lr_scale", type=float, help="With --guidance-range: the learning rate "
              "of the (zero-initialised) w embedding as a multiple of --lr  [default: 10, chosen on digits' tuning seed]")
@click.option("--solver", type=click.Choice(["heun", "euler"]), default="heun", show_default=True, help="The teacher's ODE step (progressive: in the first stage).")
@click.option("--levels", "n_levels", type=int, default=18, show_default=True, help="Consistency: N of the Karras discretization.")
@click.option("--from", "start_steps", type=int, default=32, show_default=True, help="Progressive: the first teacher's steps; halved down to K.")
@click.option("--ema-decay", type=float, default=0.99, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def distill_cmd(run_dir, method, steps, out, resume_dir, train_steps, batch_size, lr, guidance, guidance_range, guidance_lr_scale, solver, n_levels,
                start_steps, ema_decay, seed, quiet) -> None:
    """Distill the trained RUN_DIR into a K-call student (docs/distillation.md); `noisecraft sample OUT`
    then uses its K-step sampler (consistency / euler_open) by default, guidance distilled in (one fixed
    weight, or with --guidance-range any `--guidance W` in the range)."""
    with user_errors():
        from ..distill.runner import distill, resume_distill

        if resume_dir is not None:
            if run_dir or out or method:
                raise UserError("--resume RUN2 takes no RUN_DIR, --out or --method (the run's saved settings are used)")
            result = resume_distill(resume_dir, progress=not quiet)
        else:
            missing = [f for f, v in (("RUN_DIR", run_dir), ("--method", method), ("--steps", steps), ("--out", out)) if v is None]
            if missing:
                raise UserError(f"missing {', '.join(missing)}: noisecraft distill RUN_DIR --method consistency|progressive --steps K --out RUN2")
            if guidance is not None and guidance_range is not None:
                raise UserError(f"--guidance {guidance} and --guidance-range {guidance_range} were both given; --guidance "
                                "distills one fixed weight, --guidance-range makes the weight an input: give one")
            if guidance_range is None and guidance_lr_scale is not None:
                raise UserError(f"--guidance-lr-scale {guidance_lr_scale} needs --guidance-range (it scales the w embedding's lr)")
            extra = {} if guidance is None else {"guidance": guidance}
            if guidance_range is not None:
                from ..conditioning import check_guidance_range

                try:
                    extra["guidance_range"] = list(check_guidance_range(guidance_range, "--guidance-range"))
                    if guidance_lr_scale is not None:
                        extra["guidance_lr_scale"] = guidance_lr_scale
                except ValueError as e:
                    raise UserError(str(e)) from None
            result = distill(run_dir, out, method=method, steps=steps, progress=not quiet, train_steps=train_steps,
                             batch_size=batch_size, lr=lr, solver=solver, n_levels=n_levels, start_steps=start_steps,
                             ema_decay=ema_decay, seed=seed, **extra)
        click.echo(f"distilled into {result.run_dir} ({result.step} steps, {result.seconds:.0f} s); "
                   f"try: noisecraft sample {result.run_dir} --n 8 --out samples")
