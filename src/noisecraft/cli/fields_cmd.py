"""`noisecraft reconstruct`: a whole field with its uncertainty from sparse point observations;
`noisecraft forecast`: an ensemble rollout of a next-state field model.

    noisecraft reconstruct RUN --observations OBS.npz [--n 32] [--seed S] [--method dps|pigdm|projection|tmpd]
                           [--solver S] [--nfe K] [--zeta Z] [--physics ZP [--physics-sigma S]]
                           [--truth F.npz] [--weights W] --out DIR

RUN is any unconditional model of a field dataset (modality "field"); OBS.npz is described in
docs/fields.md (idx (M, 2), values (M,) or (M, C), optional noise_std). Writes DIR/posterior.npz
(samples, mean, std), DIR/mean.png and DIR/std.png, and with --truth (an NPZ with key "field", as
`noisecraft data export` writes) DIR/error.png and DIR/metrics.json (relative L2 error, coverage of
the 50 % and 90 % intervals, CRPS, spread-skill ratio). --physics adds the PDE residual to DPS as one
more measurement (darcy runs; `fields.physics`); OBS.npz may observe some channels only (key `channels`,
e.g. [1]: the pressure u of a Darcy pair alone).

    noisecraft forecast RUN --state STATE.npz [--steps 8] [--n 8] [--seed S] [--solver S] [--nfe K]
                        [--truth TRAJ.npz] [--weights W] --out DIR

RUN is a next-state model (`[cond] image = "previous"`, the navier-stokes-forecast preset); STATE.npz
holds the start under key "field" (C, H, W). Each of the n members is rolled forward `steps` states
(`fields.forecast.rollout`). Writes DIR/forecast.npz (samples (n, K, C, H, W), mean, std), heat-map
strips member0.png, mean.png, std.png, and with --truth (key "trajectory" (≥ K + 1, C, H, W), state 0
the start, as `noisecraft data export navier-stokes-forecast` writes) truth.png, error.png and
metrics.json (per lead: relative L2 of the mean, of one member and of persistence, coverage, CRPS,
spread-skill).
"""

from __future__ import annotations

import math

import click

from .common import UserError, check_out_folder, user_errors

__all__ = ["reconstruct_cmd", "forecast_cmd"]


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option("--observations", "obs_path", required=True, type=click.Path(), help="OBS.npz: idx (M, 2), values (M,) or (M, C), optional noise_std.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for posterior.npz and the heat maps.")
@click.option("--n", "n", type=int, default=32, show_default=True, help="Posterior samples.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sample i uses seed + i.")
@click.option("--method", help="dps | pigdm | projection | tmpd (exact covariance; M·C backward passes per step) for an unconditional run (default dps: the best per CPU-second measured, docs/fields.md); model for an observation-conditioned run ([cond] image = 'points'; its default).")
@click.option("--solver", help="Sampler (default: ddpm; heun for tmpd; the run's [sample] solver for model).")
@click.option("--nfe", type=int, help="Network evaluations per sample (default: 100; the run's [sample] nfe for model).")
@click.option("--zeta", type=float, help="DPS step size ζ (--method dps only; default 3, chosen on grf; 10 on darcy and navier-stokes, docs/fields.md).")
@click.option("--physics", type=float, help="Physics guidance weight ζ_p: the PDE residual as one more DPS measurement (darcy runs, --method dps; docs/fields.md).")
@click.option("--physics-sigma", type=float, default=math.inf, show_default=True, help="With --physics: the largest σ at which it acts.")
@click.option("--truth", type=click.Path(), help="The true field (NPZ, key 'field'): adds error.png and metrics.json.")
@click.option("--weights", default="ema", show_default=True, help="raw | ema | best | phema-<std>, as for `sample`.")
def reconstruct_cmd(run_dir, obs_path, out, n, seed, method, solver, nfe, zeta, physics, physics_sigma, truth,
                    weights) -> None:
    """Reconstruct a field from point observations with a trained field model (zero-shot posterior sampling)."""
    with user_errors():
        from ..fields import read_observations, reconstruct, resolve_method
        from ..fields.plots import write_reconstruction
        from ..runs import Run
        from ..runtime import num_threads
        from ..sampling import SOLVERS

        run = Run.open(run_dir)
        if run.modality != "field":
            raise UserError(f"run {run_dir} is a model of {run.modality} data; reconstruct needs a field model "
                            "(trained on grf, darcy or navier-stokes)")
        kinds = [getattr(c, "image", c.kind) for c in run.conditioners]
        if kinds not in ([], ["points"]):
            raise UserError(f"run {run_dir} is conditional ({', '.join(c.key for c in run.conditioners)}); reconstruct "
                            "needs an unconditional field model (data.conditional = false) or an observation-conditioned "
                            "one ([cond] image = 'points')")
        try:
            method = resolve_method(method, kinds == ["points"])
        except ValueError as e:
            raise UserError(f"--{e}") from None
        model = method == "model"
        solver = solver or ("heun" if method == "tmpd" else run.config.sample.solver if model else "ddpm")
        nfe = nfe if nfe is not None else run.config.sample.nfe if model else 100
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
        guide: dict = {}
        if physics is not None:
            from ..data.fields import physics_options

            if method != "dps":
                raise UserError(f"--physics adds a term to DPS; it applies to --method dps only, not {method!r}")
            guide = physics_options(run.config.data.source, dict(run.config.data.options), physics, physics_sigma)
        shape = tuple(run.shape)
        obs = read_observations(obs_path, shape)
        true = run.get_modality().read(truth, shape) if truth is not None else None
        outp = check_out_folder(out)
        with num_threads(run.config.train.threads):
            post = reconstruct(run.denoiser(weights), obs, shape, n=n, method=method, seed=seed, solver=solver,
                               nfe=nfe, sigma_data=run.config.process.sigma_data,
                               **({} if zeta is None else {"step_size": zeta}), **guide)
        label = method if not guide else f"{method}+physics"
        _, metrics = write_reconstruction(outp, post.samples, post.mean, post.std, method=label,
                                          observations=obs.count, truth=true)
        line = f"wrote {n} posterior samples ({label}, {obs.count} points) to {out}/posterior.npz, mean.png, std.png"
        if metrics is not None:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float) and math.isfinite(v))
            line += f"; error.png, metrics.json ({shown})"
    click.echo(line)


@click.command()
@click.argument("run_dir", type=click.Path())
@click.option("--state", "state_path", required=True, type=click.Path(), help="STATE.npz: the start, key 'field' (C, H, W).")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for forecast.npz and the heat maps.")
@click.option("--steps", type=int, default=8, show_default=True, help="States to forecast (each one data interval ahead of the last).")
@click.option("--n", "n", type=int, default=8, show_default=True, help="Ensemble members.")
@click.option("--seed", type=int, default=0, show_default=True, help="Member i's draw at step k uses seed + k·n + i.")
@click.option("--solver", help="Sampler (default: the run's [sample] solver).")
@click.option("--nfe", type=int, help="Network evaluations per step (default: the run's).")
@click.option("--truth", type=click.Path(), help="The true trajectory (NPZ, key 'trajectory' (>= steps + 1, C, H, W), state 0 the start): adds truth.png, error.png, metrics.json.")
@click.option("--weights", default="ema", show_default=True, help="raw | ema | best | phema-<std>, as for `sample`.")
def forecast_cmd(run_dir, state_path, out, steps, n, seed, solver, nfe, truth, weights) -> None:
    """Forecast a field several steps ahead with a next-state model (an ensemble rollout with its spread)."""
    with user_errors():
        from ..data.fields import FORECAST_INTERVAL
        from ..fields.forecast import forecast_scores, read_trajectory, rollout
        from ..fields.plots import write_forecast
        from ..runs import Run
        from ..runtime import num_threads
        from .common import sampling_spec

        run = Run.open(run_dir)
        if [getattr(c, "image", c.kind) for c in run.conditioners] != ["previous"]:
            raise UserError(f"run {run_dir} is not a next-state model; forecast needs one trained with "
                            "[cond] image = 'previous' and no other condition (e.g. `noisecraft train navier-stokes-forecast`)")
        if not 1 <= steps <= 1000:
            raise UserError(f"--steps {steps} is out of range; valid: 1..1000")
        if not 1 <= n <= 1000:
            raise UserError(f"--n {n} is out of range; valid: 1..1000")
        if nfe is not None and not 1 <= nfe <= 10_000:
            raise UserError(f"--nfe {nfe} is out of range; valid: 1..10000")
        if seed < 0 or seed + n * steps > 2**63:
            raise UserError(f"--seed {seed} is out of range; valid: 0..{2**63 - n * steps}")
        spec = sampling_spec(run, n=n * steps, solver=solver, nfe=nfe, guidance=None, seed=seed)
        shape = tuple(run.shape)
        state = run.get_modality().read(state_path, shape)
        true = None
        if truth is not None:
            try:
                true = read_trajectory(truth, shape, steps)
            except ValueError as e:
                raise UserError(f"--truth {e}") from None
        outp = check_out_folder(out)
        with num_threads(run.config.train.threads):
            fc = rollout(run.denoiser(weights), state, steps, n=n, spec=spec)
        rows = forecast_scores(fc, true, state) if true is not None else None
        interval = float(run.config.data.options.get("interval", FORECAST_INTERVAL))
        write_forecast(outp, fc.samples, fc.mean, fc.std, truth=true, rows=rows, interval=interval)
        line = f"wrote a {n}-member forecast of {steps} steps ({steps * interval:g} time units) to {out}/forecast.npz, member0.png, mean.png, std.png"
        if rows is not None:
            last = rows[-1]
            line += (f"; truth.png, error.png, metrics.json (lead {steps}: relative L2 {last['rel_l2']:.3g}, "
                     f"persistence {last['persistence_rel_l2']:.3g})")
    click.echo(line)
