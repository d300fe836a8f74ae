"""`noisecraft eval RUN` for field runs: physical statistics of generated fields, each next to its real floor.

The field modality names this protocol (`FieldModality.eval_features = "field-statistics"`). Real
data are the run's own dataset (its data options, resolution and channels): up to `REFERENCE_MAX`
fields of the "train" split are the reference R; the "test" split (never trained on) is the floor
set B, and n defaults to |B| so both compare at the same size. Every figure is computed for the
generated set G against R and for B against R (`fields.statistics`):

| group | keys | what |
|---|---|---|
| spectrum | spectrum_max_rel_error, spectrum_mean_rel_error, spectrum_bands_within_10pct | radially averaged power spectrum per integer wavenumber band 1..K (K = Nyquist), |E(k) / E_R(k) - 1|: worst band and channel, mean, share of (band, channel) pairs within 10 % |
| pixels | pixel_w1, pixel_mean_error, pixel_std_ratio | per channel 1-Wasserstein distance of the pixel-value distributions, |mean - mean_R|, std / std_R (worst channel) |
| vorticity | ns_enstrophy_ratio, ns_enstrophy_distance, ns_energy_ratio, ns_energy_distance, ns_max_vorticity_distance, ns_mean_vorticity_abs, ns_mean_vorticity_rel | `navier-stokes` runs only, physical ω (`fields.vorticity_statistics`): mean enstrophy ½⟨ω²⟩ and kinetic energy ½⟨u·u⟩ (u from ω by the streamfunction) over the set / the reference's; 1-Wasserstein distance of the per-field enstrophy, energy and max abs(ω) distributions / the reference mean (`fields.distribution_distance`); mean over fields of abs⟨ω⟩ (0 for real fields: zero circulation on the torus), absolute and / the reference's ω rms. No divergence: a velocity recovered from ω is divergence-free by construction |
| residual | darcy_residual_median, darcy_residual_mean, darcy_residual_p90, darcy_nonpositive_a, darcy_residual_snapped_median, darcy_u_error_median | `darcy` runs only: relative FV residual (`fields.darcy.darcy_residual`) of each (a, u) pair in physical units, after float32 storage; inf for a pair with a <= 0 somewhere (their share: darcy_nonpositive_a); for the piecewise coefficient also the median with a snapped to {3, 12}; darcy_u_error_median: median relative L2 distance of u from the solver's u for the pair's a (snapped when piecewise; `fields.darcy_solution_errors`) |

With `--features FEATS` (a classifier fitted on fields: `noisecraft eval fit-features grf-lengths --resolution 64
--out FEATS`) the report adds fd, the Fréchet distance between the fields' and the reference's features
(generated and floor), and for a class-conditional run whose classes the classifier knows,
feature_class_accuracy. The Inception image network is refused for fields.

A class-conditional run (`grf-lengths`) draws classes in turn and adds, per class c against the reference
fields of class c (`per_class` in report.json): the spectrum and pixel figures above, summarized as
class_spectrum_max_rel_error (worst band, worst class), class_spectrum_mean_rel_error (mean over classes),
class_pixel_std_ratio (worst class); and class_accuracy: the share of samples whose class the dataset's
exact oracle (`data.fields.classify_lengths`, the Bayes classifier between the classes' GRFs) gives back,
per class with where the others went, and the maximum-likelihood ℓ of each field (10/50/90th percentiles).

A run conditioned on a continuous parameter (`grf-scales`, `[cond] params = true`) draws field i at the ℓ of
test field i (cycled when n exceeds the test split), so generated and floor fields ask for the same spread of ℓ,
and adds length_log_error_median / length_log_error_p90 (|ln(ℓ_fit / ℓ_asked)| over the fields, ℓ_fit the
maximum-likelihood ℓ on a grid 1.35 % apart: `data.fields.fit_lengths`) and length_within_10pct (the share
with ℓ_fit within 10 % of ℓ_asked); the floor's are the same fit on the real test fields against their true ℓ.
Its per-class figures (`per_class`) are those of three log-even bins of ℓ ("l in [0.05, 0.0794)", ...): the
generated fields of a bin (by the ℓ asked) and the test fields of a bin (by their ℓ) against the reference
fields of that bin.

Band 0 (the power of the field's mean) is listed per band in report.json but left out of the
headline figures: it is one mode per field, so its estimate from a few hundred fields is noisy (the
floor shows it). Generated fields are not clamped (fields are not bounded like pixels).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..io.files import atomic_write_text
from .features import EvalError
from .output import check_report_out, environment, format_value, json_values
from .run_options import RunEvalOptions, sample_count

__all__ = ["FIELD_METRICS", "FIELD_METRIC_DIRECTIONS", "parse_field_metrics", "field_scores", "evaluate_field_run",
           "physics_wrapper",
           "write_field_report", "REFERENCE_MAX"]

FIELD_METRICS: dict[str, tuple[str, ...]] = {
    "spectrum": ("spectrum_max_rel_error", "spectrum_mean_rel_error", "spectrum_bands_within_10pct"),
    "pixels": ("pixel_w1", "pixel_mean_error", "pixel_std_ratio"),
    "residual": ("darcy_residual_median", "darcy_residual_mean"),
    "vorticity": ("ns_enstrophy_ratio", "ns_enstrophy_distance", "ns_energy_ratio", "ns_energy_distance",
                  "ns_max_vorticity_distance", "ns_mean_vorticity_abs", "ns_mean_vorticity_rel"),
}
_ONLY = {"residual": "darcy", "vorticity": "navier-stokes"}  # metric groups of one dataset
FIELD_METRIC_DIRECTIONS = {"spectrum_max_rel_error": "min", "spectrum_mean_rel_error": "min",
                           "spectrum_bands_within_10pct": "max", "pixel_w1": "min", "pixel_mean_error": "min",
                           "darcy_residual_median": "min", "darcy_u_error_median": "min",
                           "ns_enstrophy_distance": "min", "ns_energy_distance": "min",
                           "ns_max_vorticity_distance": "min", "ns_mean_vorticity_abs": "min",
                           "class_accuracy": "max", "class_spectrum_max_rel_error": "min", "fd": "min",
                           "feature_class_accuracy": "max",
                           "class_spectrum_mean_rel_error": "min", "length_log_error_median": "min",
                           "length_log_error_p90": "min", "length_within_10pct": "max"}
REFERENCE_MAX = 2000  # training fields in the reference set R (the spectrum's reference noise ~ 1/sqrt(|R|·modes))


def parse_field_metrics(metrics: str | Sequence[str] | None, source: str) -> tuple[str, ...]:
    """'spectrum,pixels' or a list -> metric groups; None -> all that apply (residual: darcy only; vorticity:
    navier-stokes only)."""
    valid = [m for m in FIELD_METRICS if _ONLY.get(m, source) == source]
    if metrics is None:
        return tuple(valid)
    items = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    if not items:
        raise EvalError(f"no metrics given; valid for this field run: {', '.join(valid)}")
    for m in items:
        if m not in valid:
            why = f" ({_ONLY[m]} runs only)" if m in _ONLY else ""
            raise EvalError(f"metric {m!r} is not a field metric{why}; valid for this field run: {', '.join(valid)}")
    return tuple(dict.fromkeys(items))


def field_scores(x: torch.Tensor, ref: torch.Tensor, ref_spectrum: torch.Tensor | None, metrics: Sequence[str], *,
                 physical=None, levels: tuple[float, float] | None = None,
                 ref_vorticity: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The figures of fields x (N, C, H, W) against the reference set `ref` (its spectrum precomputed).
    physical: normalized -> physical units (needed by "residual" and "vorticity"); levels: the two values of
    a piecewise Darcy coefficient (adds the residual with a snapped to them); ref_vorticity: the reference's
    `vorticity_statistics` (computed here when not given)."""
    from ..fields import (darcy_residuals, darcy_solution_errors, distribution_distance, pixel_statistics, pixel_w1,
                          radial_power_spectrum, spectrum_errors, vorticity_statistics)

    out: dict[str, Any] = {}
    if "spectrum" in metrics:
        spec = radial_power_spectrum(x)
        err = spectrum_errors(spec, ref_spectrum)
        head = err[:, 1:]
        out.update(spectrum_max_rel_error=float(head.max()), spectrum_mean_rel_error=float(head.mean()),
                   spectrum_bands_within_10pct=float((head <= 0.1).double().mean()),
                   spectrum=spec.tolist(), spectrum_rel_error=err.tolist())
    if "pixels" in metrics:
        s, r = pixel_statistics(x), pixel_statistics(ref)
        out.update(pixel_w1=max(pixel_w1(x, ref)),
                   pixel_mean_error=max(abs(a - b) for a, b in zip(s["mean"], r["mean"])),
                   pixel_std_ratio=max((a / b for a, b in zip(s["std"], r["std"])), key=lambda v: abs(math.log(v))),
                   pixel_mean=s["mean"], pixel_std=s["std"])
    if "residual" in metrics:
        res = darcy_residuals(physical(x.float()).double())  # float32 storage, then the FV residual in float64
        out.update(darcy_residual_median=float(np.median(res)), darcy_residual_mean=float(res.mean()),
                   darcy_residual_p90=float(np.percentile(res, 90)), darcy_nonpositive_a=float(np.isinf(res).mean()))
        if levels is not None:
            snapped = darcy_residuals(physical(x.float()).double(), levels=levels)
            out.update(darcy_residual_snapped_median=float(np.median(snapped)))
        out.update(darcy_u_error_median=float(np.median(darcy_solution_errors(physical(x.float()).double(), levels=levels))))
    if "vorticity" in metrics:
        v = vorticity_statistics(physical(x.float()).double())
        r = ref_vorticity if ref_vorticity is not None else vorticity_statistics(physical(ref.float()).double())
        rms = math.sqrt(2 * float(r["enstrophy"].mean()))
        out.update(ns_enstrophy_ratio=float(v["enstrophy"].mean() / r["enstrophy"].mean()),
                   ns_enstrophy_distance=distribution_distance(v["enstrophy"], r["enstrophy"]),
                   ns_energy_ratio=float(v["energy"].mean() / r["energy"].mean()),
                   ns_energy_distance=distribution_distance(v["energy"], r["energy"]),
                   ns_max_vorticity_distance=distribution_distance(v["max_abs"], r["max_abs"]),
                   ns_mean_vorticity_abs=float(np.abs(v["mean"]).mean()),
                   ns_mean_vorticity_rel=float(np.abs(v["mean"]).mean() / rms),
                   ns_enstrophy_median=float(np.median(v["enstrophy"])),
                   ns_max_vorticity_median=float(np.median(v["max_abs"])))
    return out


def _field_extractor(features: Any):
    """The fitted field classifier of --features (a `fit-features` folder or an extractor), or None."""
    if features is None:
        return None
    from .features import FeatureExtractor, load_extractor

    if isinstance(features, (str, Path)) and (str(features) == "inception" or Path(features).suffix in
                                              (".pth", ".pt", ".safetensors", ".bin")):
        raise EvalError("field runs take a classifier fitted on fields (`noisecraft eval fit-features grf-lengths "
                        "--resolution 64 --out FEATS`), not the Inception image network")
    return features if isinstance(features, FeatureExtractor) else load_extractor(features)


def _feature_scores(extractor: Any, samples: torch.Tensor, floor_set: torch.Tensor, ref: torch.Tensor,
                    gen: dict[str, Any], floor: dict[str, Any], classes: tuple | None) -> None:
    """fd (Fréchet distance to the reference in the extractor's features) for the samples and the floor set; for
    a class-conditional run whose classes the extractor knows, feature_class_accuracy (its predicted class)."""
    from .metrics import frechet_distance, min_samples_for_stats

    need = min_samples_for_stats(extractor.feature_dim)
    if min(len(samples), len(floor_set), len(ref)) < need:
        raise EvalError(f"FD with {extractor.feature_dim}-d features needs at least {need} fields per set; got "
                        f"{len(samples)} generated, {len(floor_set)} floor, {len(ref)} reference")
    real = extractor.features(ref.float())
    fs, ps = extractor.features_and_predictions(samples.float())
    ff, pf = extractor.features_and_predictions(floor_set.float())
    gen["fd"], floor["fd"] = frechet_distance(real, fs), frechet_distance(real, ff)
    if classes is not None and ps is not None and list(extractor.class_names) == list(classes[2]):
        gen["feature_class_accuracy"] = float((ps == classes[0].numpy()).mean())
        floor["feature_class_accuracy"] = float((pf == classes[1].numpy()).mean())


def class_scores(samples: torch.Tensor, labels: torch.Tensor, floor_set: torch.Tensor, floor_labels: torch.Tensor,
                 ref: torch.Tensor, ref_labels: torch.Tensor, names: Sequence[str], metrics: Sequence[str],
                 score_kw: dict) -> dict[str, Any]:
    """Spectrum and pixel figures per class (each against the reference fields of its class), summarized:
    {"classes": [{"class", "generated", "noise_floor"}, ...], "generated": summary, "noise_floor": summary}."""
    from ..fields import radial_power_spectrum

    keep = [m for m in metrics if m in ("spectrum", "pixels")]
    heads = ("spectrum_max_rel_error", "spectrum_mean_rel_error", "spectrum_bands_within_10pct", "pixel_w1",
             "pixel_std_ratio")
    rows = []
    for c, name in enumerate(names):
        rc = ref[ref_labels == c]
        spec = radial_power_spectrum(rc) if "spectrum" in keep else None
        g = field_scores(samples[labels == c], rc, spec, keep, **score_kw)
        f = field_scores(floor_set[floor_labels == c], rc, spec, keep, **score_kw)
        rows.append({"class": name, "n": int((labels == c).sum()), "n_floor": int((floor_labels == c).sum()),
                     "generated": {k: g[k] for k in heads if k in g}, "noise_floor": {k: f[k] for k in heads if k in f}})
    out: dict[str, Any] = {"classes": rows}
    for side in ("generated", "noise_floor"):
        vals = [r[side] for r in rows]
        summary = {}
        if "spectrum" in keep:
            summary["class_spectrum_max_rel_error"] = max(v["spectrum_max_rel_error"] for v in vals)
            summary["class_spectrum_mean_rel_error"] = float(np.mean([v["spectrum_mean_rel_error"] for v in vals]))
        if "pixels" in keep:
            summary["class_pixel_std_ratio"] = max((v["pixel_std_ratio"] for v in vals), key=lambda r: abs(math.log(r)))
        out[side] = summary
    return out


LENGTH_FIT_GRID = np.geomspace(0.02, 0.5, 241)  # ℓ values 1.35 % apart: finer than the floor's error (~0.6 %)


def _length_scores(samples: torch.Tensor, asked: torch.Tensor, floor_set: torch.Tensor, floor_lengths: torch.Tensor,
                   ref: torch.Tensor, ref_lengths: torch.Tensor, length_range: tuple[float, float],
                   metrics: Sequence[str], score_kw: dict, gen: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """grf-scales: how far each field's maximum-likelihood ℓ lies from the ℓ it was asked for (generated) or drawn
    with (floor), into gen / floor; and the per-bin spectrum and pixel figures (three log-even bins of ℓ)."""
    from ..data.fields import fit_lengths

    for side, x, want in (("generated", samples, asked), ("noise_floor", floor_set, floor_lengths)):
        err = (fit_lengths(x.double(), grid=LENGTH_FIT_GRID) / want.double()).log().abs().numpy()
        d = gen if side == "generated" else floor
        d["length_log_error_median"] = float(np.median(err))
        d["length_log_error_p90"] = float(np.percentile(err, 90))
        d["length_within_10pct"] = float((err <= math.log(1.1)).mean())
    lo, hi = length_range
    edges = np.geomspace(lo, hi, 4)
    names = [f"l in [{edges[i]:.3g}, {edges[i + 1]:.3g}{']' if i == 2 else ')'}" for i in range(3)]

    def bins(v: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.clip(np.searchsorted(edges, v.numpy(), side="right") - 1, 0, 2))

    per = class_scores(samples, bins(asked), floor_set, bins(floor_lengths), ref, bins(ref_lengths), names, metrics,
                       score_kw)
    gen.update(per["generated"])
    floor.update(per["noise_floor"])
    return per


def physics_wrapper(source: str, data_options: dict, physics: float | None, physics_sigma: float = math.inf):
    """Denoiser -> physics-guided denoiser (`fields.physics.physics_dps` with the dataset's residual,
    `data.fields.field_physics`) for ζ_p = physics, or None when physics is None; EvalError for a dataset
    without a residual or a weight / σ out of range."""
    if physics is None:
        return None
    from ..data.fields import physics_options
    from ..fields import physics_dps

    try:
        opts = physics_options(source, data_options, physics, physics_sigma)
    except ValueError as e:
        raise EvalError(str(e)) from None
    return lambda den: physics_dps(den, opts["physics"], physics_step=opts["physics_step"],
                                   sigma_max=opts["physics_sigma_max"])


def evaluate_field_run(run: Any, run_dir: str | Path, out_dir: str | Path, options: RunEvalOptions) -> dict[str, Any]:
    """Sample a field run (an opened `Run`), score it against its dataset's real fields, write REPORT_DIR
    (report.json, report.md, spectrum.png, samples.png). features: a classifier fitted on fields (adds fd and,
    for class-conditional runs, feature_class_accuracy); sweep_nfe is refused; nll_n / nll_levels / kid_subsets
    are not read."""
    from ..data import BUILTIN_DATASETS
    from ..fields import radial_power_spectrum
    from ..fields.darcy import PIECEWISE_VALUES
    from ..runs import prepare_values
    from ..runtime import num_threads
    from ..sampling import SpecError

    o = options
    extractor = _field_extractor(o.features)
    if o.sweep_nfe:
        raise EvalError("sweep_nfe is not available for field runs yet; evaluate one NFE per call (--nfe)")
    data = run.config.data
    if data.source not in ("grf", "grf-lengths", "grf-scales", "darcy", "navier-stokes"):
        raise EvalError(f"field evaluation needs a run trained on a built-in field dataset (grf, grf-lengths, grf-scales, "
                        f"darcy, navier-stokes); run {str(run_dir)!r} was trained on {data.source!r}")
    if any(c.kind not in ("class", "params") for c in run.conditioners):
        raise EvalError(f"field evaluation scores unconditional, class-conditional and parameter-conditioned runs; "
                        f"{str(run_dir)!r} is conditioned on {', '.join(c.key for c in run.conditioners)}")
    pcond = run.conditioner("params")
    metric_list = parse_field_metrics(o.metrics, data.source)
    wrap = physics_wrapper(data.source, dict(data.options), o.physics, o.physics_sigma)
    try:
        spec = run.spec(solver=o.solver, nfe=o.nfe, guidance=o.guidance if run.num_classes > 0 else 1.0, seed=o.seed)
    except SpecError as e:
        raise EvalError(str(e)) from None
    out = check_report_out(out_dir)
    _, h, _ = run.shape
    load = BUILTIN_DATASETS[data.source]
    kw = dict(resolution=h, channels=data.channels or None, **dict(data.options))
    t0 = time.perf_counter()
    train, test = load(split="train", **kw), load(split="test", **kw)
    if tuple(test.data.shape[1:]) != tuple(run.shape):
        raise EvalError(f"the real fields of {data.source!r} are {tuple(test.data.shape[1:])}, but the run makes "
                        f"{tuple(run.shape)}; cannot score it")
    ref, floor_set = train.data[:REFERENCE_MAX], test.data
    n = sample_count(o.n, len(floor_set), "fields", spec)
    ref_spectrum = radial_power_spectrum(ref) if "spectrum" in metric_list else None
    ref_vort = None
    if "vorticity" in metric_list:
        from ..fields import vorticity_statistics

        ref_vort = vorticity_statistics(test.to_physical(ref.float()).double())
    timings: dict[str, float] = {"reference_seconds": time.perf_counter() - t0}

    guided = "" if wrap is None else f", physics guidance ζ_p {o.physics:g} at σ <= {o.physics_sigma:g}"
    o.echo(f"sampling {n} fields ({spec.solver}, nfe={spec.nfe}{guided}) ...")
    t0 = time.perf_counter()
    asked = None
    if pcond is not None:  # field i at the parameters of test field i: the same spread of θ as the floor set
        if getattr(test, "param_names", None) != pcond.names:
            raise EvalError(f"the run is conditioned on {', '.join(pcond.names)} but {data.source!r} carries "
                            f"{', '.join(getattr(test, 'param_names', None) or ['no parameters'])}")
        asked = test.param_values[torch.arange(n) % len(test.param_values)].to(torch.float64)
    given = {} if asked is None else {"params": asked}
    with num_threads(run.config.train.threads):
        samples = run.generate(spec, n, weights=o.weights, wrap=wrap, **prepare_values(run.conditioners, given, n))
    timings["sampling_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    levels = PIECEWISE_VALUES if data.source == "darcy" and test.params.get("coefficient") == "piecewise" else None
    score_kw = dict(physical=test.to_physical, levels=levels, ref_vorticity=ref_vort)
    gen = field_scores(samples, ref, ref_spectrum, metric_list, **score_kw)
    floor = field_scores(floor_set, ref, ref_spectrum, metric_list, **score_kw)
    per_class = None
    if run.num_classes > 0:
        if train.num_classes != run.num_classes:
            raise EvalError(f"the run has {run.num_classes} classes but {data.source!r} has {train.num_classes}")
        gen_labels = torch.arange(n) % run.num_classes  # what prepare_values gave: classes in turn
        per_class = class_scores(samples, gen_labels, floor_set, test.labels, ref, train.labels[:len(ref)],
                                 train.class_names, metric_list, score_kw)
        gen.update(per_class["generated"])
        floor.update(per_class["noise_floor"])
        if data.source == "grf-lengths":
            from ..data.fields import classify_lengths, fit_lengths

            pred_gen, pred_floor = classify_lengths(samples), classify_lengths(floor_set)
            fit_gen, fit_floor = fit_lengths(samples).numpy(), fit_lengths(floor_set).numpy()
            gen["class_accuracy"] = float((pred_gen == gen_labels).double().mean())
            floor["class_accuracy"] = float((pred_floor == test.labels).double().mean())
            for c, row in enumerate(per_class["classes"]):  # per class: accuracy and where the rest went
                row["generated"]["class_accuracy"] = float((pred_gen[gen_labels == c] == c).double().mean())
                row["noise_floor"]["class_accuracy"] = float((pred_floor[test.labels == c] == c).double().mean())
                row["generated_predicted"] = torch.bincount(pred_gen[gen_labels == c], minlength=run.num_classes).tolist()
                for side, fit, lab in (("generated", fit_gen, gen_labels), ("noise_floor", fit_floor, test.labels)):
                    v = fit[(lab == c).numpy()]
                    row[side]["length_fit"] = [float(q) for q in np.percentile(v, [10, 50, 90])]
    if asked is not None and data.source == "grf-scales":
        per_class = _length_scores(samples, asked[:, 0], floor_set, test.param_values[:, 0], ref,
                                   train.param_values[:len(ref), 0], pcond.ranges[0], metric_list, score_kw, gen, floor)
    if extractor is not None:
        _feature_scores(extractor, samples, floor_set, ref, gen, floor,
                        None if run.num_classes == 0 else (torch.arange(n) % run.num_classes, test.labels,
                                                           train.class_names))
    timings["evaluation_seconds"] = time.perf_counter() - t0
    report: dict[str, Any] = {
        "format": "noisecraft-field-report/1", "run": str(run_dir), "weights": o.weights, "dataset": data.source,
        "data_options": dict(data.options), "channels": test.channel_names, "shape": list(run.shape), "n": n,
        "seed": o.seed, "solver": spec.solver, "nfe": spec.nfe, "sigma_min": spec.sigma_min,
        "sigma_max": spec.sigma_max, "guidance": spec.guidance,
        "physics": None if wrap is None else {"step": o.physics, "sigma_max": o.physics_sigma if math.isfinite(
            o.physics_sigma) else "inf"},  # JSON has no infinity
        "features": None if extractor is None else {"name": extractor.name, "fingerprint": extractor.fingerprint,
                                                    "dim": extractor.feature_dim, "info": extractor.info},
        "metrics": list(metric_list), "per_class": None if per_class is None else per_class["classes"], "generated": gen, "noise_floor": floor,
        "directions": {k: v for k, v in FIELD_METRIC_DIRECTIONS.items() if k in gen},
        "reference": {"n_reference": len(ref), "reference_split": "train", "n_floor": len(floor_set),
                      "floor_split": "test"},
        "spectrum_reference": ref_spectrum.tolist() if ref_spectrum is not None else None,
        "timings": timings, "environment": environment(run.config.train.threads),
    }
    out.mkdir(parents=True, exist_ok=True)
    modality = run.get_modality()
    k = min(n, 16)
    modality.write_preview(samples[:k], out / "samples.png", nrow=int(math.ceil(math.sqrt(k))))
    write_field_report(report, out)
    return report


_LABELS = {"spectrum_max_rel_error": "power spectrum, worst band |E/E_ref - 1|",
           "spectrum_mean_rel_error": "power spectrum, mean over bands |E/E_ref - 1|",
           "spectrum_bands_within_10pct": "bands within 10 % of the reference",
           "pixel_w1": "pixel values, 1-Wasserstein distance", "pixel_mean_error": "pixel mean, |difference|",
           "pixel_std_ratio": "pixel std / reference std", "darcy_residual_median": "Darcy residual, median",
           "class_accuracy": "class accuracy (exact oracle: the most likely class's GRF)",
           "length_log_error_median": "|ln(fitted ℓ / asked ℓ)|, median over fields",
           "length_log_error_p90": "|ln(fitted ℓ / asked ℓ)|, 90th percentile",
           "length_within_10pct": "fields whose fitted ℓ is within 10 % of the asked ℓ (share)",
           "fd": "Fréchet distance in the fitted field classifier's features (--features)",
           "feature_class_accuracy": "class accuracy of the fitted field classifier (--features)",
           "class_spectrum_max_rel_error": "per class: power spectrum, worst band and class",
           "class_spectrum_mean_rel_error": "per class: power spectrum, mean over bands and classes",
           "class_pixel_std_ratio": "per class: pixel std / the class's reference std (worst class)",
           "darcy_residual_mean": "Darcy residual, mean", "darcy_residual_p90": "Darcy residual, 90th percentile",
           "darcy_nonpositive_a": "Darcy pairs with a <= 0 somewhere (share)",
           "darcy_residual_snapped_median": "Darcy residual with a snapped to {3, 12}, median",
           "darcy_u_error_median": "u vs the solver's u for the pair's a, relative L2, median",
           "ns_enstrophy_ratio": "enstrophy ½⟨ω²⟩, mean / reference mean",
           "ns_enstrophy_distance": "enstrophy per field, W1 / reference mean",
           "ns_energy_ratio": "kinetic energy ½⟨|u|²⟩, mean / reference mean",
           "ns_energy_distance": "kinetic energy per field, W1 / reference mean",
           "ns_max_vorticity_distance": "max |ω| per field, W1 / reference mean",
           "ns_mean_vorticity_abs": "|mean ω| per field (0 on a torus), mean",
           "ns_mean_vorticity_rel": "|mean ω| / reference ω rms",
           "ns_enstrophy_median": "enstrophy, median", "ns_max_vorticity_median": "max |ω|, median"}


def _spectrum_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = np.asarray(report["spectrum_reference"])
    fig, axes = plt.subplots(1, ref.shape[0], figsize=(4.5 * ref.shape[0], 3.5), squeeze=False)
    for c, ax in enumerate(axes[0]):
        k = np.arange(1, ref.shape[1])
        ax.loglog(k, ref[c, 1:], "k-", label="reference (train)")
        ax.loglog(k, np.asarray(report["noise_floor"]["spectrum"])[c, 1:], "b:", label="real test")
        ax.loglog(k, np.asarray(report["generated"]["spectrum"])[c, 1:], "r--", label="generated")
        ax.set_xlabel("wavenumber band k"), ax.set_ylabel("power"), ax.set_title(report["channels"][c])
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_field_report(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """report.json, report.md and (with the spectrum group) spectrum.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen, floor, ref, t = report["generated"], report["noise_floor"], report["reference"], report["timings"]
    keys = [k for k in _LABELS if k in gen]
    rows = [f"| {_LABELS[k]} | {format_value(gen[k])} | {format_value(floor.get(k))} |" for k in keys]
    lines = [
        f"# Evaluation of `{report['run']}` (fields)", "",
        f"- weights: {report['weights']}; {report['n']} fields of shape {tuple(report['shape'])}, seed {report['seed']}",
        f"- sampler: {report['solver']}, NFE {report['nfe']}" + ("" if not report.get("physics") else
            f"; physics guidance ζ_p {report['physics']['step']:g} at σ <= {report['physics']['sigma_max']}"),
        f"- real data: {report['dataset']!r} {report['data_options'] or ''}: reference = the first "
        f"{ref['n_reference']} training fields; floor = the {ref['n_floor']} test fields against the same reference",
        "", "| metric | generated | floor (real test fields) |", "|---|---|---|", *rows, "",
        "Spectrum: radially averaged power per integer wavenumber band 1..Nyquist, relative to the reference's; "
        "worst (band, channel), mean, and the share within 10 %. Pixels: worst channel. "
        "The floor is what a perfect generator scores at this sample size.", "",
    ]
    if report.get("per_class"):
        by_length = "length_log_error_median" in report["generated"]  # a parameter-conditioned run: bins of ℓ
        keys = ("spectrum_max_rel_error", "spectrum_mean_rel_error", "pixel_std_ratio") + (() if by_length else
                                                                                            ("class_accuracy",))
        if by_length:
            lines += ["Per bin of ℓ (generated fields by the ℓ asked, test fields by their ℓ, each against the "
                      "reference fields of the bin; field i asked for test field i's ℓ):", "",
                      "| ℓ bin | n | spectrum worst band | floor | spectrum mean | floor | pixel std ratio | floor |",
                      "|---|---|---|---|---|---|---|---|"]
        else:
            lines += ["Per class (each against its class's reference fields; classes in turn):", "",
                      "| class | n | spectrum worst band | floor | spectrum mean | floor | pixel std ratio | floor | "
                      "class accuracy | floor | generated, classified as |",
                      "|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in report["per_class"]:
            g, f = row["generated"], row["noise_floor"]
            cells = " | ".join(f"{format_value(g.get(k))} | {format_value(f.get(k))}" for k in keys)
            lines.append(f"| {row['class']} | {row['n']} | {cells} |"
                         + ("" if by_length else f" {row.get('generated_predicted', '–')} |"))
        if "length_fit" in report["per_class"][0]["generated"]:
            lines += ["", "Maximum-likelihood length scale ℓ of each field (`fields.grf.fit_length_scale`), "
                      "10th / 50th / 90th percentile:", "", "| class | generated | floor |", "|---|---|---|"]
            lines += [f"| {row['class']} | " + " | ".join(" / ".join(f"{q:.3f}" for q in row[side]["length_fit"])
                                                       for side in ("generated", "noise_floor")) + " |"
                      for row in report["per_class"]]
        lines.append("")
    if "spectrum" in gen:
        _spectrum_plot(report, out / "spectrum.png")
        lines += ["![spectrum](spectrum.png)", "", "| band | " + " | ".join(
            f"{c} generated | {c} floor" for c in report["channels"]) + " |",
            "|---|" + "---|---|" * len(report["channels"])]
        g, f = np.asarray(gen["spectrum_rel_error"]), np.asarray(floor["spectrum_rel_error"])
        for k in range(g.shape[1]):
            lines.append(f"| {k} | " + " | ".join(f"{g[c, k]:.3f} | {f[c, k]:.3f}" for c in range(g.shape[0])) + " |")
        lines.append("")
    lines += ["## Samples", "", "![samples](samples.png)", "", "## Timings", "",
              f"- reference: {t['reference_seconds']:.1f} s; sampling: {t['sampling_seconds']:.1f} s; scoring: "
              f"{t['evaluation_seconds']:.1f} s",
              f"- machine: {report['environment']['cpu']}, {report['environment']['cpus']} CPUs, torch "
              f"{report['environment']['torch']}", ""]
    json_path, md_path = out / "report.json", out / "report.md"
    atomic_write_text(json_path, json.dumps(json_values(report), indent=2) + "\n")
    atomic_write_text(md_path, "\n".join(lines))
    return json_path, md_path
