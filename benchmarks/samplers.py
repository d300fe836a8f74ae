"""Sampler accuracy and sampling-loop overhead: noisecraft's solvers vs diffusers' schedulers, same run.

    python benchmarks/samplers.py [--quick] [--out benchmarks/out] [--no-optimize]

Accuracy. The model is a Gaussian mixture (8 components in dimension 64, shaped 1x8x8, means in
[-0.7, 0.7], per-pixel stds 0.2-0.6) under the DDPM process of 1000 linear betas 1e-4..0.02
(σ from 0.0100 at t = 0 to 157.4 at t = 999), with its exact denoiser E[x0 | x]:
  * diffusers' schedulers drive the exact ε-network of that mixture (prediction_type="epsilon"),
    ε̂(x_t, t) = (x - D(x, σ_t))/σ_t with x = x_t·sqrt(1 + σ_t²), σ_t the scheduler's own table,
    log-interpolated in t between entries (as diffusers maps fractional timesteps). The EDM
    schedulers drive the same mixture's EDM-preconditioned network F instead.
  * noisecraft's solvers drive D directly, from σ_max = σ(999) to 0 with σ_min = σ(0).
The error of a run is the RMS distance of its output from the exact PF-ODE solution (`solve_pf_ode`,
DOP853, rtol = atol = 1e-10) started from the run's own start state: noisecraft at σ_max·noise;
diffusers at its first timestep from noise·init_noise_sigma (x_t, i.e. σ-space x_t·sqrt(1+σ²), for
the DDPM-style schedulers; σ-space x for the Euler/Karras-style ones). Float64 throughout (diffusers'
Euler-family `step()` computes in float32 internally). NFE = model calls actually made, counted.

Overhead. Wall time of the sampling loop per step with a denoiser that returns its input, against one
forward pass of a ~1.1M-parameter diffusers UNet2DModel on a batch of 32x32 images, and diffusers'
scheduler loop (set_timesteps + scale_model_input + step) for the same solver on the same tensors.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings

# One BLAS thread: scipy's ODE solver and the small matrix products here gain nothing from more,
# and on a loaded machine spinning BLAS threads slowed the reference solves by an order of magnitude.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown, write_outputs  # noqa: E402

try:
    import diffusers
except ImportError:  # pragma: no cover
    sys.exit("benchmarks/samplers.py compares against diffusers: pip install noisecraft[diffusers]")

diffusers.utils.logging.set_verbosity_error()  # config-change notices for every scheduler built
warnings.filterwarnings("ignore", category=FutureWarning, module="diffusers")

import noisecraft  # noqa: E402
from noisecraft import SOLVERS, GaussianMixture, get_schedule, sample, solve_pf_ode  # noqa: E402
from noisecraft.interop import process_from_scheduler  # noqa: E402


def _find_optimize_schedule() -> Callable[..., Tensor] | None:
    fn = getattr(noisecraft, "optimize_schedule", None)
    if fn is None:
        try:
            from noisecraft.sampling.optimize import optimize_schedule as fn
        except ImportError:
            return None
    return fn


optimize_schedule = _find_optimize_schedule()

TRAIN = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
SIGMA_DATA = 0.5
F64 = torch.float64


# ----------------------------------------------------------------------------------------------
# The problem: mixture, process, noise, exact networks


@dataclass
class Problem:
    process: Any  # DiscreteVPProcess with diffusers' own ᾱ table
    mixture: GaussianMixture
    noise: Tensor  # (B, 1, 8, 8) evaluation noise
    calibration: Tensor  # (B', 1, 8, 8) calibration noise for optimize_schedule, a different draw
    sigma_min: float
    sigma_max: float
    _refs: dict = field(default_factory=dict)

    def reference(self, scale: float, sigma_start: float) -> Tensor:
        """Exact PF-ODE solution at σ = 0 from x = scale·noise at sigma_start (cached)."""
        key = (float(scale), float(sigma_start))
        if key not in self._refs:
            self._refs[key] = solve_pf_ode(self.mixture, self.noise * scale, sigma_start, 0.0)
        return self._refs[key]


def make_problem(n_eval: int, n_calib: int, seed: int = 0) -> Problem:
    process = process_from_scheduler(diffusers.DDPMScheduler(**TRAIN))
    g = torch.Generator().manual_seed(seed)
    k, d = 8, 64
    means = (2 * torch.rand(k, d, generator=g, dtype=F64) - 1) * 0.7
    stds = 0.2 + 0.4 * torch.rand(k, d, generator=g, dtype=F64)
    weights = 0.5 + torch.rand(k, generator=g, dtype=F64)
    exact = GaussianMixture(means, stds, weights)
    mixture = exact  # GaussianMixture evaluates a shared-σ batch with matrix products
    noise = torch.randn(n_eval, 1, 8, 8, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    calib = torch.randn(n_calib, 1, 8, 8, generator=torch.Generator().manual_seed(seed + 2), dtype=F64)
    return Problem(process, mixture, noise, calib, process.sigma_min, process.sigma_max)


class Counted:
    """Counts calls of the wrapped model: the honest NFE."""

    def __init__(self, fn: Callable[..., Tensor]):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs) -> Tensor:
        self.calls += 1
        return self.fn(*args, **kwargs)


def _batch(v: Any, b: int) -> Tensor:
    v = torch.as_tensor(v).to(F64).reshape(-1)
    return v.expand(b) if v.numel() == 1 else v


def eps_network(problem: Problem) -> Callable[[Tensor, Any], Tensor]:
    """The exact ε-prediction network ε̂(x_t, t) of the mixture under the DDPM process."""

    def net(x_t: Tensor, t: Any) -> Tensor:
        sigma = problem.process.sigma(_batch(t, x_t.shape[0]))  # (B,)
        s = sigma.reshape(-1, *[1] * (x_t.ndim - 1))
        x = x_t.to(F64) * torch.sqrt(1 + s**2)
        return (x - problem.mixture(x, sigma)) / s

    return net


def edm_network(problem: Problem) -> Callable[[Tensor, Any], Tensor]:
    """The exact EDM-preconditioned network F(c_in·x, ¼ ln σ) (Karras et al. 2022, Eq. 7) of the mixture."""
    sd = SIGMA_DATA

    def net(x_in: Tensor, c_noise: Any) -> Tensor:
        sigma = torch.exp(4 * _batch(c_noise, x_in.shape[0]))
        s = sigma.reshape(-1, *[1] * (x_in.ndim - 1))
        x = x_in.to(F64) * torch.sqrt(s**2 + sd**2)
        c_skip, c_out = sd**2 / (s**2 + sd**2), s * sd / torch.sqrt(s**2 + sd**2)
        return (problem.mixture(x, sigma) - c_skip * x) / c_out

    return net


# ----------------------------------------------------------------------------------------------
# diffusers side


@dataclass(frozen=True)
class DConfig:
    label: str
    cls: str
    kwargs: dict
    # "vp": the sample is x_t (DDPM-style); "sigma": σ-space x (Euler/Karras-style); "edm": σ-space + EDM network
    family: str


def diffusers_configs(problem: Problem) -> list[DConfig]:
    """Every deterministic ODE configuration of the DDPM-compatible schedulers worth trying here:
    each solver with its timestep spacings and sigma schedules (Karras, exponential = log-linear,
    beta, DPM-Solver's Lu lambdas), orders 2 and 3."""
    eps = {**TRAIN, "prediction_type": "epsilon"}
    out: list[DConfig] = []

    def add(label: str, cls: str, family: str = "vp", **kw: Any) -> None:
        out.append(DConfig(label, cls, {**eps, **kw}, family))

    spacing = {"linspace": {}, "trailing": {"timestep_spacing": "trailing"}}
    sigmas = {"karras": {"use_karras_sigmas": True}, "exponential": {"use_exponential_sigmas": True},
              "beta": {"use_beta_sigmas": True}}
    schedules = {**spacing, **sigmas}
    for sp in ("leading", "trailing", "linspace"):
        add(f"DDIM {sp}", "DDIMScheduler", clip_sample=False, set_alpha_to_one=True, timestep_spacing=sp)
    for sp in ("leading", "trailing", "linspace"):
        add(f"PNDM PLMS {sp} (alpha_to_one)", "PNDMScheduler", skip_prk_steps=True, set_alpha_to_one=True,
            timestep_spacing=sp)
    add("PNDM default (PRK warm-up)", "PNDMScheduler")
    for order in (2, 3):
        for name, kw in {**schedules, "lu_lambdas": {"use_lu_lambdas": True}}.items():
            add(f"DPMSolverMultistep++ o{order} {name}", "DPMSolverMultistepScheduler", solver_order=order,
                algorithm_type="dpmsolver++", **kw)
    for name in ("linspace", "karras", "exponential"):
        add(f"DPMSolverMultistep++ o2 heun-type {name}", "DPMSolverMultistepScheduler", solver_order=2,
            algorithm_type="dpmsolver++", solver_type="heun", **schedules[name])
    add("DPMSolverMultistep (eps form) o2 linspace, final sigma_min", "DPMSolverMultistepScheduler", solver_order=2,
        algorithm_type="dpmsolver", final_sigmas_type="sigma_min")  # diffusers rejects 'zero' for this form
    for order in (2, 3):
        for name in ("linspace", "karras", "exponential"):
            add(f"DPMSolverSinglestep++ o{order} {name}", "DPMSolverSinglestepScheduler", solver_order=order,
                **schedules[name])
    for order in (2, 3):
        for name, kw in schedules.items():
            add(f"UniPC o{order} bh2 {name}", "UniPCMultistepScheduler", solver_order=order, solver_type="bh2", **kw)
        for name in ("linspace", "karras", "exponential"):
            kw = schedules[name]
            # bh1 with the default final σ = 0 returns NaN (B(h) = -h = -inf in the last step)
            add(f"UniPC o{order} bh1 {name}", "UniPCMultistepScheduler", solver_order=order, solver_type="bh1", **kw)
            add(f"UniPC o{order} bh1 {name}, final sigma_min", "UniPCMultistepScheduler", solver_order=order,
                solver_type="bh1", final_sigmas_type="sigma_min", **kw)
    for order in (2, 3):
        for name, kw in schedules.items():
            add(f"DEIS o{order} {name}", "DEISMultistepScheduler", solver_order=order, **kw)
    for order in (2, 3):
        for name in ("linspace", "karras", "exponential"):
            add(f"SA-Solver ODE (tau=0) p{order}c{order} {name}", "SASolverScheduler", predictor_order=order,
                corrector_order=order, tau_func=_zero_tau, **schedules[name])
    for name, kw in {**schedules, "leading": {"timestep_spacing": "leading"}}.items():
        add(f"EulerDiscrete {name}", "EulerDiscreteScheduler", "sigma", **kw)
    for cls, short in (("HeunDiscreteScheduler", "HeunDiscrete"), ("LMSDiscreteScheduler", "LMSDiscrete"),
                       ("KDPM2DiscreteScheduler", "KDPM2Discrete")):
        for name in ("linspace", "karras", "exponential"):
            add(f"{short} {name}", cls, "sigma", **schedules[name])
    edm = dict(sigma_min=problem.sigma_min, sigma_max=problem.sigma_max, sigma_data=SIGMA_DATA,
               num_train_timesteps=1000, prediction_type="epsilon")
    for sched in ("karras", "exponential"):
        out.append(DConfig(f"EDMEuler {sched}", "EDMEulerScheduler", {**edm, "sigma_schedule": sched}, "edm"))
        for order in (2, 3):
            out.append(DConfig(f"EDMDPMSolverMultistep o{order} {sched}", "EDMDPMSolverMultistepScheduler",
                               {**edm, "sigma_schedule": sched, "solver_order": order}, "edm"))
    return out


def _zero_tau(t):  # SA-Solver's stochasticity τ(t) = 0: the probability-flow ODE
    return 0


def make_scheduler(cfg: DConfig):
    return getattr(diffusers, cfg.cls)(**cfg.kwargs)


def start_state(problem: Problem, scheduler, family: str) -> tuple[float, float]:
    """(scale, σ_start): the run starts from σ-space x = scale·noise at σ_start."""
    init = float(scheduler.init_noise_sigma)
    sigmas = getattr(scheduler, "sigmas", None)
    if family != "vp":
        return init, float(sigmas[0])
    if isinstance(sigmas, Tensor) and sigmas.numel() > 1:
        sig = float(sigmas[0])
    else:  # DDIM / PNDM keep only ᾱ: σ of the first timestep from the table
        t0 = int(scheduler.timesteps[0])
        sig = float(problem.process.sigmas[t0])
    return init * math.sqrt(1 + sig**2), sig


def run_diffusers(problem: Problem, cfg: DConfig, steps: int, noise: Tensor,
                  nets: dict) -> tuple[Tensor, int, float, float]:
    """(output, model calls, start scale, σ_start) of one diffusers sampling loop, as a pipeline runs it."""
    scheduler = make_scheduler(cfg)
    scheduler.set_timesteps(steps)
    net = Counted(nets["edm" if cfg.family == "edm" else "eps"])
    scale, sigma_start = start_state(problem, scheduler, cfg.family)
    latents = noise * float(scheduler.init_noise_sigma)
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(latents, t)
        latents = scheduler.step(net(x_in, t), t, latents).prev_sample
    return latents.to(F64), net.calls, scale, sigma_start


def steps_within(problem: Problem, cfg: DConfig, nfe: int, nets: dict, cache: dict) -> tuple[int, int] | None:
    """Largest num_inference_steps whose actual model calls fit in nfe, found with dry runs on one
    sample (calls grow with the step count; 2-call schedulers jump straight to about nfe/2)."""

    def calls(steps: int) -> int | None:
        key = (cfg.label, steps)
        if key not in cache:
            try:
                cache[key] = run_diffusers(problem, cfg, steps, problem.noise[:1], nets)[1]
            except Exception as err:  # some schedulers reject tiny step counts
                cache[key] = f"error: {type(err).__name__}: {err}"
        return cache[key] if isinstance(cache[key], int) else None

    steps, too_many = nfe, nfe + 1
    while steps >= 1:
        c = calls(steps)
        if c is not None and c <= nfe:
            break
        too_many = steps
        steps = min(steps - 1, steps * nfe // c) if c else steps - 1
    else:
        return None
    while steps + 1 < too_many and (c := calls(steps + 1)) is not None and c <= nfe:
        steps += 1
    return steps, calls(steps)


def rms(a: Tensor, b: Tensor) -> float:
    return float(torch.sqrt(torch.mean((a.to(F64) - b.to(F64)) ** 2)))


def error_entry(out: Tensor, ref: Tensor) -> dict:
    if not torch.isfinite(out).all():
        return {"error": None, "note": "output has NaN/Inf"}
    return {"error": rms(out, ref)}


def bench_diffusers(problem: Problem, nfes: list[int], progress) -> list[dict]:
    nets = {"eps": eps_network(problem), "edm": edm_network(problem)}
    cache: dict = {}
    rows = []
    for cfg in diffusers_configs(problem):
        for nfe in nfes:
            progress(f"diffusers {cfg.label} @ {nfe}")
            fit = steps_within(problem, cfg, nfe, nets, cache)
            row = {"side": "diffusers", "method": cfg.label, "scheduler": cfg.cls, "nfe": nfe,
                   "config": {k: v for k, v in cfg.kwargs.items() if k not in TRAIN and k != "tau_func"}}
            if fit is None:
                rows.append({**row, "error": None, "note": "no step count fits this NFE"})
                continue
            steps, _ = fit
            out, calls, scale, sigma_start = run_diffusers(problem, cfg, steps, problem.noise, nets)
            ref = problem.reference(scale, sigma_start)
            rows.append({**row, "steps": steps, "calls": calls, "sigma_start": sigma_start,
                         "start_scale": scale, **error_entry(out, ref)})
    return rows


# ----------------------------------------------------------------------------------------------
# noisecraft side

DETERMINISTIC = [name for name, info in SOLVERS.items() if not info.stochastic]
# ddim is euler with the VP-time schedule: its variants would repeat euler's
FIXED_STEP = [name for name in DETERMINISTIC if not SOLVERS[name].adaptive and name != "ddim"]
VARIANT_SCHEDULES: dict[str, tuple[str, dict]] = {
    "karras rho=3": ("karras", {"rho": 3.0}),
    "karras rho=5": ("karras", {"rho": 5.0}),
    "karras rho=7": ("karras", {"rho": 7.0}),
    "karras rho=10": ("karras", {"rho": 10.0}),
    "loglinear": ("loglinear", {}),
    "loglinear knee=10 (density 0.25)": ("loglinear", {"knee": 10.0, "knee_density": 0.25}),
    "loglinear knee=5 (density 0.25)": ("loglinear", {"knee": 5.0, "knee_density": 0.25}),
    "vp_uniform_time": ("vp_uniform_time", {}),
    "ddpm timesteps (linspace t)": ("ddpm_t", {}),
    # One big first step σ_max -> cap, then log-uniform cap -> σ_min: the shape optimize_schedule finds
    # (at high σ the ODE is nearly linear, D ≈ the data mean). cap = 20·σ_data and 40·σ_data here.
    "jump to 10 + loglinear": ("jump_loglinear", {"cap": 10.0}),
    "jump to 20 + loglinear": ("jump_loglinear", {"cap": 20.0}),
}


def variant_sigmas(problem: Problem, solver: str, nfe: int, schedule: str, options: dict) -> list[float]:
    n = SOLVERS[solver].steps_for_nfe(nfe)
    if schedule == "ddpm_t":  # σ at n evenly spaced training timesteps 999 .. 0, then 0
        t = torch.linspace(999, 0, n, dtype=F64) if n > 1 else torch.tensor([999.0], dtype=F64)
        return problem.process.sigma(t).tolist() + [0.0]
    if schedule == "jump_loglinear" and n >= 2 and options["cap"] < problem.sigma_max:
        return [problem.sigma_max] + get_schedule("loglinear", n - 1, problem.sigma_min, options["cap"]).tolist()
    if schedule == "jump_loglinear":
        schedule, options = "loglinear", {}
    return get_schedule(schedule, n, problem.sigma_min, problem.sigma_max, **options).tolist()


def default_variant(solver: str) -> str | None:
    """The VARIANT_SCHEDULES label equal to the solver's registered default schedule, if any."""
    info = SOLVERS[solver]
    base = {"karras": {"rho": 7.0}}.get(info.schedule, {})
    wanted = {**base, **info.schedule_options}
    for label, (name, options) in VARIANT_SCHEDULES.items():
        if name == info.schedule and {**base, **options} == wanted:
            return label
    return None


def run_noisecraft(problem: Problem, solver: str, nfe: int, noise: Tensor, sigmas=None) -> tuple[Tensor, int]:
    den = Counted(problem.mixture)
    out = sample(den, noise, solver=solver, nfe=nfe, sigma_min=problem.sigma_min, sigma_max=problem.sigma_max,
                 sigmas=sigmas)
    return out, den.calls


def bench_noisecraft(problem: Problem, nfes: list[int], progress) -> tuple[list[dict], list[dict]]:
    ref = problem.reference(problem.sigma_max, problem.sigma_max)
    defaults, variants = [], []
    for solver in DETERMINISTIC:
        info = SOLVERS[solver]
        for nfe in nfes:
            progress(f"noisecraft {solver} @ {nfe}")
            row = {"side": "noisecraft", "method": solver, "nfe": nfe,
                   "schedule": "adaptive" if info.adaptive else f"default ({info.schedule}"
                   + "".join(f", {k}={v}" for k, v in info.schedule_options.items()) + ")"}
            try:
                out, calls = run_noisecraft(problem, solver, nfe, problem.noise)
            except ValueError as err:
                defaults.append({**row, "error": None, "note": str(err)})
                continue
            defaults.append({**row, "calls": calls, **error_entry(out, ref)})
    for solver in FIXED_STEP:
        for label, (schedule, options) in VARIANT_SCHEDULES.items():
            for nfe in nfes:
                progress(f"noisecraft {solver} {label} @ {nfe}")
                sig = variant_sigmas(problem, solver, nfe, schedule, options)
                out, calls = run_noisecraft(problem, solver, nfe, problem.noise, sigmas=sig)
                variants.append({"side": "noisecraft", "method": solver, "schedule": label, "nfe": nfe,
                                 "calls": calls, **error_entry(out, ref)})
    return defaults, variants


def bench_optimized(problem: Problem, defaults: list[dict], nfes: list[int], top: int, max_evals: int | None,
                    progress) -> list[dict]:
    if optimize_schedule is None:
        return []
    ref = problem.reference(problem.sigma_max, problem.sigma_max)
    rows = []
    for nfe in nfes:
        ranked = sorted((r for r in defaults if r["nfe"] == nfe and r.get("error") is not None
                         and r["method"] in FIXED_STEP), key=lambda r: r["error"])
        for r in ranked[:top]:
            solver = r["method"]
            progress(f"optimize_schedule {solver} @ {nfe}")
            kwargs = {} if max_evals is None else {"max_evals": max_evals}
            start = time.perf_counter()
            sig = optimize_schedule(problem.mixture, problem.calibration, solver=solver, nfe=nfe,
                                    sigma_min=problem.sigma_min, sigma_max=problem.sigma_max, **kwargs).sigmas
            seconds = time.perf_counter() - start
            out, calls = run_noisecraft(problem, solver, nfe, problem.noise, sigmas=sig)
            rows.append({"side": "noisecraft", "method": solver, "schedule": "optimize_schedule", "nfe": nfe,
                         "calls": calls, **error_entry(out, ref), "sigmas": [float(s) for s in sig],
                         "optimize_seconds": seconds, "default_error": r["error"]})
    return rows


# ----------------------------------------------------------------------------------------------
# Overhead


def make_unet_1m() -> torch.nn.Module:
    """diffusers UNet2DModel with 1.11M parameters (channels 32/64/64, attention at 16x16)."""
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64), layers_per_block=1,
        norm_num_groups=8, down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    ).eval()


OVERHEAD_PAIRS = [
    ("euler", "EulerDiscreteScheduler", {}),
    ("ddim", "DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": True}),
    ("dpmpp_2m", "DPMSolverMultistepScheduler", {"solver_order": 2, "use_karras_sigmas": True}),
    ("dpmpp_3m", "DPMSolverMultistepScheduler", {"solver_order": 3, "use_karras_sigmas": True}),
    ("unipc", "UniPCMultistepScheduler", {"solver_order": 2, "use_karras_sigmas": True}),
]


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _median(values: list[float]) -> float:
    return float(torch.tensor(values, dtype=F64).median())


def bench_overhead(quick: bool, progress) -> dict:
    """Loop cost per step, ours and diffusers' measured alternately (A, B, A, B, ...) so that load
    changes on a shared machine hit both alike; medians of wall and of process CPU time."""
    batch, steps, repeats, unet_repeats = (8, 10, 5, 3) if quick else (32, 20, 15, 5)
    shape = (batch, 3, 32, 32)
    unet = make_unet_1m()
    params = sum(p.numel() for p in unet.parameters())
    x = torch.randn(*shape)
    t = torch.full((batch,), 500.0)
    progress("overhead: unet forward")
    with torch.no_grad():
        unet(x, t)
        unet_runs = [_timed(lambda: unet(x, t).sample) for _ in range(unet_repeats)]
    unet_wall, unet_cpu = _median([r[0] for r in unet_runs]), _median([r[1] for r in unet_runs])

    def null_denoiser(x, sigma):
        return x

    rows = []
    for solver, cls, kw in OVERHEAD_PAIRS:
        progress(f"overhead: {solver} vs {cls}")

        def ours():
            return sample(null_denoiser, x, solver=solver, nfe=steps, sigma_min=0.01, sigma_max=157.0)

        def theirs():
            scheduler = getattr(diffusers, cls)(**TRAIN, **kw)
            scheduler.set_timesteps(steps)
            latents = x * scheduler.init_noise_sigma
            for ts in scheduler.timesteps:
                x_in = scheduler.scale_model_input(latents, ts)
                latents = scheduler.step(x_in, ts, latents).prev_sample  # the "model" returns its input
            return latents

        ours(), theirs()  # warm-up
        a, b = [], []
        for _ in range(repeats):
            a.append(_timed(ours))
            b.append(_timed(theirs))
        row = {"solver": solver, "diffusers": f"{cls} {kw}"}
        for name, runs in (("noisecraft", a), ("diffusers", b)):
            row[f"{name}_step_s"] = _median([r[0] for r in runs]) / steps
            row[f"{name}_step_cpu_s"] = _median([r[1] for r in runs]) / steps
            row[f"{name}_pct_of_unet"] = 100 * row[f"{name}_step_s"] / unet_wall
            row[f"{name}_cpu_pct_of_unet"] = 100 * row[f"{name}_step_cpu_s"] / unet_cpu
        rows.append(row)
    return {"shape": list(shape), "dtype": "float32", "steps": steps, "repeats": repeats, "unet_params": params,
            "unet_forward_s": unet_wall, "unet_forward_cpu_s": unet_cpu, "rows": rows,
            "threads": torch.get_num_threads()}


# ----------------------------------------------------------------------------------------------
# Report


HIDDEN_CONFIG = {"prediction_type", "sigma_min", "sigma_max", "sigma_data"}  # same for every run; stated in the text


def fmt(e: float | None) -> str:
    return "n/a" if e is None else f"{e:.3e}"


def best(rows: list[dict], nfe: int, **match) -> dict | None:
    cands = [r for r in rows if r["nfe"] == nfe and r.get("error") is not None
             and all(r.get(k) == v for k, v in match.items())]
    return min(cands, key=lambda r: r["error"]) if cands else None


def schedule_recommendations(variants: list[dict], nfes: list[int]) -> list[dict]:
    """Per fixed-step solver and NFE: the best variant schedule and how far the default is from it."""
    out = []
    for solver in dict.fromkeys(r["method"] for r in variants):
        default = default_variant(solver) if solver in SOLVERS else None
        for nfe in nfes:
            cells = {r["schedule"]: r["error"] for r in variants
                     if r["method"] == solver and r["nfe"] == nfe and r.get("error") is not None}
            if not cells:
                continue
            best_label = min(cells, key=cells.get)
            out.append({"solver": solver, "nfe": nfe, "best": best_label, "best_error": cells[best_label],
                        "default": default, "default_error": cells.get(default),
                        "default_over_best": cells[default] / cells[best_label] if default in cells else None})
    return out


def report(data: dict) -> tuple[str, list[dict]]:
    """The markdown page, from the JSON-ready results alone (so `--from-json` can re-render it)."""
    pr, nfes, oh = data["problem"], data["nfes"], data["overhead"]
    dif, ours, variants = data["diffusers"], data["noisecraft"], data["noisecraft_variants"]
    optimized = data["noisecraft_optimized"]
    full_range = [r for r in dif if r.get("sigma_start") and abs(r["sigma_start"] / pr["sigma_max"] - 1) < 1e-3]
    L: list[str] = []
    L.append("# Samplers: noisecraft vs diffusers on an exact Gaussian-mixture model\n")
    L.append(machine_markdown(data["machine"]) + "\n")
    L.append(
        f"Generated by `python benchmarks/samplers.py{' --quick' if data['quick'] else ''}` in {data['seconds']:.0f} s. "
        f"Model: {pr['components']}-component Gaussian mixture in dimension {pr['dim']} (1x8x8), DDPM linear betas "
        f"1e-4..0.02 over 1000 steps (σ from {pr['sigma_min']:.4g} to {pr['sigma_max']:.4g}), exact denoiser. diffusers "
        "drives the exact ε-network (EDM schedulers: the exact EDM-preconditioned network, sigma_min/sigma_max set to "
        "the same σ range, sigma_data 0.5); noisecraft drives D with sigma_min = σ(t=0), sigma_max = σ(t=999). "
        "Error: RMS distance (per element) of the output from the exact PF-ODE solution started from the same start "
        f"state, {pr['eval_samples']} evaluation samples, float64. Calls = model evaluations actually made. "
        f"optimize_schedule: {pr['calibration_samples']} calibration samples, a different draw from the evaluation "
        "noise.\n"
    )
    if pr.get("floor") is not None:
        L.append(
            f"Error floor: integrating the ODE exactly to σ_min = {pr['sigma_min']:.4g} and denoising once from there "
            f"(what every sampler here does last) is already {pr['floor']:.3e} away from the σ = 0 solution; "
            "errors near it (NFE 50) measure the floor, not the solver.\n"
        )
    # Summary
    L.append("## Summary: best of each side at each NFE\n")
    L.append("| NFE | best noisecraft, default schedule | error | best diffusers scheduler | error | ours / diffusers "
             "| best diffusers starting at σ_max | error | noisecraft + optimize_schedule | error "
             "| optimized / diffusers |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    summary = []
    for nfe in nfes:
        o, d, p, f = best(ours, nfe), best(dif, nfe), best(optimized, nfe), best(full_range, nfe)
        ratio = o["error"] / d["error"] if o and d else None
        pratio = p["error"] / d["error"] if p and d else None
        summary.append({"nfe": nfe, "ours": o and o["method"], "ours_error": o and o["error"],
                        "diffusers": d and d["method"], "diffusers_error": d and d["error"],
                        "diffusers_sigma_start": d and d.get("sigma_start"),
                        "diffusers_full_range": f and f["method"], "diffusers_full_range_error": f and f["error"],
                        "ratio": ratio, "optimized": p and p["method"], "optimized_error": p and p["error"],
                        "optimized_ratio": pratio})
        below_max = d and d.get("sigma_start") and d not in full_range
        d_start = f", from σ={d['sigma_start']:.3g}" if below_max else ""
        L.append(
            f"| {nfe} | {o['method'] if o else 'n/a'} ({o['calls'] if o else '-'} calls) | {fmt(o and o['error'])} "
            f"| {d['method'] if d else 'n/a'} ({d['calls'] if d else '-'} calls{d_start}) | {fmt(d and d['error'])} "
            f"| {'n/a' if ratio is None else f'{ratio:.2f}'} "
            f"| {f['method'] if f else 'n/a'} | {fmt(f and f['error'])} "
            f"| {p['method'] + ' (' + str(p['calls']) + ' calls)' if p else 'not run'} | {fmt(p and p['error'])} "
            f"| {'n/a' if pratio is None else f'{pratio:.2f}'} |"
        )
    L.append("")
    bv = {nfe: best(variants, nfe) for nfe in nfes}
    L.append("Best noisecraft solver + schedule variant per NFE (any schedule tried below): " + "; ".join(
        f"NFE {nfe}: {v['method']} + {v['schedule']} {fmt(v['error'])}" for nfe, v in bv.items() if v) + ".\n")
    # Per-NFE full tables
    L.append("## All runs per NFE\n")
    L.append("Bold: the best of each side. Ratio: error / best diffusers error at that NFE. "
             "σ_start: where a diffusers run starts ('leading' spacings start below σ_max).\n")
    for nfe in nfes:
        d_best, o_best, p_best = best(dif, nfe), best(ours, nfe), best(optimized, nfe)
        L.append(f"### NFE {nfe}\n")
        L.append("| side | method | schedule / config | calls | σ_start | error | / best diffusers |")
        L.append("|---|---|---|---|---|---|---|")
        rows = [r for r in ours + optimized + dif if r["nfe"] == nfe]
        rows.sort(key=lambda r: (r.get("error") is None, r.get("error") or 0))
        for r in rows:
            b = "**" if (r is d_best or r is o_best or r is p_best) else ""
            sched = r.get("schedule") or ", ".join(f"{k}={v}" for k, v in r.get("config", {}).items()
                                                   if k not in HIDDEN_CONFIG)
            if r.get("note"):
                sched += f" - {r['note']}"
            if r.get("sigma_start"):
                start = f"{r['sigma_start']:.4g}"
            else:
                start = f"{pr['sigma_max']:.4g}" if r["side"] != "diffusers" else "-"
            ratio = (r["error"] / d_best["error"]) if (r.get("error") is not None and d_best) else None
            L.append(f"| {r['side']} | {b}{r['method']}{b} | {sched} | {r.get('calls', '-')} | {start} "
                     f"| {b}{fmt(r.get('error'))}{b} | {'' if ratio is None else f'{ratio:.2f}'} |")
        L.append("")

    # Variants
    L.append("## noisecraft schedule variants (fixed-step solvers)\n")
    L.append("Error of each solver with each schedule; the solver's registered default is marked *, the row's best in "
             "bold. 'ddpm timesteps (linspace t)' = σ at evenly spaced training timesteps 999..0 (what diffusers' "
             "'linspace' spacing gives); vp_uniform_time uses the continuous VP β 0.1..20, the same process. "
             "'jump to c + loglinear': σ_max, then log-uniform from c down to σ_min (first step σ_max -> c).\n")
    labels = list(VARIANT_SCHEDULES)
    for nfe in nfes:
        L.append(f"### NFE {nfe}\n")
        L.append("| solver | " + " | ".join(labels) + " |")
        L.append("|---|" + "---|" * len(labels))
        for solver in dict.fromkeys(r["method"] for r in variants):
            cells = {r["schedule"]: r for r in variants if r["nfe"] == nfe and r["method"] == solver}
            finite = {k: r for k, r in cells.items() if r.get("error") is not None}
            bestlab = min(finite, key=lambda k: finite[k]["error"]) if finite else None
            default_label = default_variant(solver) if solver in SOLVERS else None
            out = []
            for lab in labels:
                e = fmt(cells[lab].get("error")) if lab in cells else "n/a"
                e = f"{e}*" if lab == default_label else e
                out.append(f"**{e}**" if lab == bestlab else e)
            L.append(f"| {solver} | " + " | ".join(out) + " |")
        L.append("")
    recs = schedule_recommendations(variants, nfes)
    L.append("### Default schedule vs the best variant\n")
    L.append("| solver | " + " | ".join(f"NFE {n}: best (default/best)" for n in nfes) + " |")
    L.append("|---|" + "---|" * len(nfes))
    for solver in dict.fromkeys(r["solver"] for r in recs):
        cells = []
        for nfe in nfes:
            r = next((x for x in recs if x["solver"] == solver and x["nfe"] == nfe), None)
            ratio = "" if r is None or r["default_over_best"] is None else f" ({r['default_over_best']:.2f})"
            cells.append("n/a" if r is None else f"{r['best']}{ratio}")
        L.append(f"| {solver} | " + " | ".join(cells) + " |")
    L.append("")

    # Overhead
    L.append("## Sampling-loop overhead\n")
    L.append(
        f"Per step, float32 tensors of shape {tuple(oh['shape'])}, {oh['steps']} steps, torch threads {oh['threads']}; "
        f"noisecraft and diffusers runs alternate ({oh['repeats']} each), medians. noisecraft: `noisecraft.sample` with a "
        "denoiser that returns its input (so the time includes the schedule, the budget/shape/finiteness guard and "
        "the update). diffusers: scheduler construction + set_timesteps + scale_model_input + step with a model that "
        f"returns its input. Reference: one forward pass of a {oh['unet_params'] / 1e6:.2f}M-parameter diffusers "
        f"UNet2DModel on the same batch = {oh['unet_forward_s'] * 1e3:.1f} ms wall, "
        f"{oh['unet_forward_cpu_s'] * 1e3:.1f} ms CPU. Wall times on a shared machine are noisy; CPU time (process "
        "time, all threads) is the steadier measure of the work done.\n"
    )
    L.append("| noisecraft solver | diffusers scheduler | noisecraft per step (wall / CPU) | % of U-Net call (wall / CPU) "
             "| diffusers per step (wall / CPU) | % of U-Net call (wall / CPU) | noisecraft / diffusers (CPU) |")
    L.append("|---|---|---|---|---|---|---|")
    for r in oh["rows"]:
        L.append(
            f"| {r['solver']} | {r['diffusers']} "
            f"| {r['noisecraft_step_s'] * 1e6:.0f} / {r['noisecraft_step_cpu_s'] * 1e6:.0f} µs "
            f"| {r['noisecraft_pct_of_unet']:.3f}% / {r['noisecraft_cpu_pct_of_unet']:.3f}% "
            f"| {r['diffusers_step_s'] * 1e6:.0f} / {r['diffusers_step_cpu_s'] * 1e6:.0f} µs "
            f"| {r['diffusers_pct_of_unet']:.3f}% / {r['diffusers_cpu_pct_of_unet']:.3f}% "
            f"| {r['noisecraft_step_cpu_s'] / r['diffusers_step_cpu_s']:.2f} |"
        )
    L.append("")
    return "\n".join(L), summary


def error_floor(problem: Problem) -> float:
    """RMS distance between 'exact ODE to σ_min, then one denoising' and the exact solution at σ = 0."""
    x = solve_pf_ode(problem.mixture, problem.noise * problem.sigma_max, problem.sigma_max, problem.sigma_min)
    last = problem.mixture(x, torch.full((x.shape[0],), problem.sigma_min, dtype=F64))
    return rms(last, problem.reference(problem.sigma_max, problem.sigma_max))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, NFE 5 and 10 only, short optimization (~1 min)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    ap.add_argument("--no-optimize", action="store_true", help="skip optimize_schedule")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for the overhead timings (default 1: steadier on a loaded machine)")
    ap.add_argument("--from-json", type=Path, help="only re-render the markdown from a results JSON")
    args = ap.parse_args(argv)
    if args.from_json:
        data = json.loads(args.from_json.read_text())
        markdown, data["summary"] = report(data)
        md, js = write_outputs(args.from_json.parent, args.from_json.stem, markdown, data)
        print(markdown)
        print(f"re-rendered {md}")
        return
    # The accuracy runs use tiny tensors: one thread is as fast and immune to oversubscription
    # (on a loaded 2-core machine two spinning OpenMP threads made the reference solves 5-10x slower).
    torch.set_num_threads(1)
    start = time.perf_counter()
    info = machine_info()
    info["torch_threads"] = f"1 (accuracy), {args.threads} (overhead)"
    print(machine_markdown(info), flush=True)

    if args.quick:
        problem, nfes, opt_nfes, top, max_evals = make_problem(64, 32), [5, 10], [10], 1, 150
    else:
        problem, nfes, opt_nfes, top, max_evals = make_problem(256, 128), [5, 10, 20, 50], [5, 10, 20], 3, None

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f}s] {msg}", flush=True)

    ours, variants = bench_noisecraft(problem, nfes, progress)
    dif = bench_diffusers(problem, nfes, progress)
    optimized = [] if args.no_optimize else bench_optimized(problem, ours, opt_nfes, top, max_evals, progress)
    floor = error_floor(problem)
    torch.set_num_threads(args.threads)
    overhead = bench_overhead(args.quick, progress)
    data = {"machine": info, "quick": args.quick, "seconds": time.perf_counter() - start, "nfes": nfes,
            "problem": {"sigma_min": problem.sigma_min, "sigma_max": problem.sigma_max, "dim": 64, "components": 8,
                        "eval_samples": problem.noise.shape[0], "calibration_samples": problem.calibration.shape[0],
                        "floor": floor},
            "noisecraft": ours, "noisecraft_variants": variants, "noisecraft_optimized": optimized,
            "diffusers": dif, "overhead": overhead,
            "optimize_schedule_available": optimize_schedule is not None}
    markdown, data["summary"] = report(data)
    name = "samplers_quick" if args.quick else "samplers"
    md, js = write_outputs(args.out, name, markdown, data)
    print("\n" + markdown)
    print(f"wrote {md} and {js} in {data['seconds']:.0f} s")


if __name__ == "__main__":
    main()
