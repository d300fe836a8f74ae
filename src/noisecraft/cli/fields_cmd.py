"""`noisecraft reconstruct`: a whole field with its uncertainty from sparse point observations.

    noisecraft reconstruct RUN --observations OBS.npz [--n 32] [--seed S] [--method dps|pigdm|projection|tmpd]
                           [--solver S] [--nfe K] [--zeta Z] [--truth F.npz] [--weights W] --out DIR

RUN is any unconditional model of a field dataset (modality "field"); OBS.npz is described in
docs/fields.md (idx (M, 2), values (M,) or (M, C), optional noise_std). Writes DIR/posterior.npz
(samples, mean, std), DIR/mean.png and DIR/std.png, and with --truth (an NPZ with key "field", as
`noisecraft data export` writes) DIR/error.png and DIR/metrics.json (relative L2 error, coverage of
the 50 % and 90 % intervals, CRPS, spread-skill ratio).
"""

from __future__ import annotations

import math

import click

from .common import UserError, check_out_folder, user_errors

__all__ = ["reconstruct_cmd"]


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option("--observations", "obs_path", required=True, type=click.Path(), help="OBS.npz: idx (M, 2), values (M,) or (M, C), optional noise_std.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for posterior.npz and the heat maps.")
@click.option("--n", "n", type=int, default=32, show_default=True, help="Posterior samples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sample i uses seed + i.")
@click.option("--method", default="dps", show_default=True, help="dps | pigdm | projection | tmpd (exact covariance; M·C backward passes per step). dps: the best per CPU-second measured (docs/fields.md).")
@click.option("--solver", help="Sampler (default: ddpm; heun for tmpd).")
@click.option("--nfe", type=int, default=100, show_default=True, help="Network evaluations per sample.")
@click.option("--zeta", type=float, help="DPS step size ζ (--method dps only; default 3, chosen on grf; 10 on darcy and navier-stokes, docs/fields.md).")
@click.option("--truth", type=click.Path(), help="The true field (NPZ, key 'field'): adds error.png and metrics.json.")
@click.option("--weights", default="ema", show_default=True, help="raw | ema | best | phema-<std>, as for `sample`.")
def reconstruct_cmd(run_dir, obs_path, out, n, seed, method, solver, nfe, zeta, truth, weights) -> None:
    """Reconstruct a field from point observations with a trained field model (zero-shot posterior sampling)."""
    with user_errors():
        from ..fields import RECONSTRUCT_METHODS, read_observations, reconstruct
        from ..fields.plots import write_reconstruction
        from ..runs import Run
        from ..runtime import num_threads
        from ..sampling import SOLVERS

        run = Run.open(run_dir)
        if run.modality != "field":
            raise UserError(f"run {run_dir} is a model of {run.modality} data; reconstruct needs a field model "
                            "(trained on grf, darcy or navier-stokes)")
        if run.conditioners:
            raise UserError(f"run {run_dir} is conditional ({', '.join(c.key for c in run.conditioners)}); reconstruct "
                            "needs an unconditional field model (data.conditional = false)")
        if method not in RECONSTRUCT_METHODS:
            raise UserError(f"--method {method!r} is not a method; valid: {', '.join(RECONSTRUCT_METHODS)}")
        solver = solver or ("heun" if method == "tmpd" else "ddpm")
        if solver not in SOLVERS:
            raise UserError(f"--solver {solver!r} is not a solver; valid: {', '.join(SOLVERS)}")
        if not 1 <= n <= 10_000:
            raise UserError(f"--n {n} is out of range; valid: 1..10000")
        if not 1 <= nfe <= 10_000:
            raise UserError(f"--nfe {nfe} is out of range; valid: 1..10000")
        if seed < 0 or seed + n > 2**63:
            raise UserError(f"--seed {seed} is out of range; valid: 0..{2**63 - n}")
        if zeta is not None and method != "dps":
            raise UserError(f"--zeta is DPS's step size; it applies to --method dps only, not {method!r}")
        if zeta is not None and not (math.isfinite(zeta) and 0 < zeta <= 1e4):
            raise UserError(f"--zeta {zeta} is out of range; valid: 0 < zeta <= 10000 (default 3)")
        shape = tuple(run.shape)
        obs = read_observations(obs_path, shape)
        true = run.get_modality().read(truth, shape) if truth is not None else None
        outp = check_out_folder(out)
        with num_threads(run.config.train.threads):
            post = reconstruct(run.denoiser(weights), obs, shape, n=n, method=method, seed=seed, solver=solver,
                               nfe=nfe, sigma_data=run.config.process.sigma_data,
                               **({} if zeta is None else {"step_size": zeta}))
        _, metrics = write_reconstruction(outp, post.samples, post.mean, post.std, method=method,
                                          observations=obs.count, truth=true)
        line = f"wrote {n} posterior samples ({method}, {obs.count} points) to {out}/posterior.npz, mean.png, std.png"
        if metrics is not None:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v))
            line += f"; error.png, metrics.json ({shown})"
    click.echo(line)
