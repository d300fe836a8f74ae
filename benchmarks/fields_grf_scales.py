"""A continuous-parameter field model asked for fixed length scales, against exact fields of the same ℓ.

    PYTHONPATH=src python benchmarks/fields_grf_scales.py RUN [--lengths 0.05,0.07,0.1,0.14,0.2] [--n 128] \
        [--seed 6000] [--out benchmarks/results/grf_scales_lengths.json]

RUN is a `grf-scales` run (or any run conditioned on `length` over a range inside 0.02..0.5). For each ℓ:
n fields drawn with `--param length=ℓ` (sample seeds SEED.., the run's [sample] solver and NFE, EMA weights)
and n exact Matérn fields of that ℓ (`fields.grf.MaternGRF`, noise stream SEED); for both, the
maximum-likelihood ℓ of each field (`data.fields.fit_lengths` on a grid 1.35 % apart): 10 / 50 / 90th
percentiles, the median |ln(ℓ_fit / ℓ)|, the share within 10 %, and the radially averaged power
spectrum's worst and mean relative error per wavenumber band against the exact fields of that ℓ (bands
1..Nyquist; two exact sets of the same size give the floor). ℓ values between the grf-lengths classes
(0.07, 0.14) are ones a class-conditional model cannot be asked for.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np
import torch

from noisecraft.data.fields import GRF_PARAMS, fit_lengths
from noisecraft.eval.field_run import LENGTH_FIT_GRID
from noisecraft.fields import MaternGRF, radial_power_spectrum
from noisecraft.runs import Run


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _fit_stats(x: torch.Tensor, ell: float) -> dict:
    fit = fit_lengths(x.double(), grid=LENGTH_FIT_GRID).numpy()
    err = np.abs(np.log(fit / ell))
    return {"fit_p10_p50_p90": [round(float(q), 4) for q in np.percentile(fit, [10, 50, 90])],
            "log_error_median": round(float(np.median(err)), 4), "within_10pct": round(float((err <= np.log(1.1)).mean()), 4)}


def _spectrum_error(x: torch.Tensor, ref_spec: torch.Tensor) -> dict:
    rel = (radial_power_spectrum(x.double())[0, 1:] / ref_spec[0, 1:] - 1).abs()
    return {"spectrum_max_rel_error": round(float(rel.max()), 4), "spectrum_mean_rel_error": round(float(rel.mean()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--lengths", default="0.05,0.07,0.1,0.14,0.2")
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--seed", type=int, default=6000)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = Run.open(args.run)
    size = run.shape[-1]
    spec = run.spec(seed=args.seed)
    rows = []
    for ell in (float(v) for v in args.lengths.split(",")):
        grf = MaternGRF(size, nu=GRF_PARAMS["nu"], length=ell, std=GRF_PARAMS["std"])
        exact = grf.sample(args.n, args.seed)
        exact2 = grf.sample(args.n, args.seed, start=args.n)  # a second exact set: the floor of the spectrum error
        ref_spec = radial_power_spectrum(exact)
        t0, c0 = time.perf_counter(), _cpu()
        gen = run.generate(spec, args.n, params={"length": ell})
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        row = {"length": ell, "generated": {**_fit_stats(gen, ell), **_spectrum_error(gen, ref_spec)},
               "exact": {**_fit_stats(exact, ell), **_spectrum_error(exact2, ref_spec)},
               "sampling_wall_s": round(wall, 1), "sampling_cpu_s": round(cpu, 1)}
        rows.append(row)
        g, e = row["generated"], row["exact"]
        print(f"l={ell:g}: fitted l 10/50/90 % {g['fit_p10_p50_p90']} (exact {e['fit_p10_p50_p90']}), |ln err| median "
              f"{g['log_error_median']} (exact {e['log_error_median']}), within 10 % {g['within_10pct']:.3f} (exact "
              f"{e['within_10pct']:.3f}); spectrum worst / mean band {g['spectrum_max_rel_error']} / "
              f"{g['spectrum_mean_rel_error']} (exact vs exact {e['spectrum_max_rel_error']} / {e['spectrum_mean_rel_error']})",
              flush=True)
    result = {"run": args.run, "n": args.n, "seed": args.seed, "solver": spec.solver, "nfe": spec.nfe,
              "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread",
              "training": {"steps": run.config.train.steps, "batch_size": run.config.train.batch_size,
                           "seed": run.config.train.seed}, "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
