"""What the web app computes, without Gradio: settings checks, the tasks of a run, live previews, result files.

Every request is a pure function of its own settings and seed: it gets its own per-sample
generators (`seed + i`, as `noisecraft sample` and the tasks draw them), its own output folder and
its own thread; the only objects requests share are the opened runs and their read-only denoisers.
Results are written by the run's modality exactly as the CLI writes them (same files, same bytes).
A latent diffusion run (docs/latent.md) samples latents and decodes them as the CLI does; its live
previews decode the x0 estimate with the run's autoencoder (only the estimates actually shown).

    jobs = Jobs({"demo": Run.open("runs/demo")}, root)
    for event in jobs.stream(jobs.generate_work("demo", Settings(seed=3, n=4), "3")):
        ...  # Preview (every few steps) ..., then one Result
"""

from __future__ import annotations

import math
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ..runs import Run, conditioned
from ..sampling import SOLVERS, SamplingSpec, seeded_generators

__all__ = ["WebError", "Settings", "Work", "Preview", "Result", "Jobs", "MAX_N", "MAX_NFE", "MAX_UPLOAD_BYTES",
           "ANY_CLASS", "run_names", "tasks_of"]

MAX_N = 64  # results per request: a queue slot must stay short for the next person
MAX_NFE = 1000
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # also Gradio's max_file_size; decoded pixels are limited by Pillow's bomb check
ANY_CLASS = "any (classes in turn)"
_PREVIEWS = 10  # live estimates per request at most (every steps // 10 steps) ...
_PREVIEW_INTERVAL = 0.1  # ... and at most one per 0.1 s: each costs the server a PNG and the page a fetch


class WebError(ValueError):
    """A setting or an upload the app refuses; one line naming the value and what is valid."""


@dataclass(frozen=True)
class Settings:
    """The sampling settings of one request (None: the run's [sample] default)."""
    solver: str | None = None
    nfe: int | None = None
    guidance: float | None = None
    seed: int = 0
    n: int = 1


@dataclass
class Work:
    """One request ready to run: `fn(callback) -> x (n, *shape)`, plus what its result files show."""
    run_name: str
    run: Run
    fn: Callable[[Callable[[dict], None] | None], Tensor]
    spec: SamplingSpec
    n: int
    task: str = "generate"
    first: Tensor | None = None  # the task's input, shown as the grid's first tile (as the CLI does)
    steps: int = 0  # solver steps (for the progress text)
    # a task whose files are not one per sample (reconstruct): (x, folder) -> (files, tiles, picture, metrics)
    writer: Callable[[Tensor, Path], tuple[list[Path], list[Path], Path, dict | None]] | None = None
    # a latent run: the callback's x0 estimate (latents) -> data, for the live preview
    decode: Callable[[Tensor], Tensor] | None = None


@dataclass(frozen=True)
class Preview:
    step: int
    sigma: float
    image: np.ndarray  # (H, W, 3) uint8: the current estimate of x0 (the modality's preview; latent runs: decoded)


@dataclass(frozen=True)
class Result:
    x: Tensor  # (n, *data_shape) in [-1, 1] (a latent run: decoded)
    files: list[Path]  # one per sample in the run's modality (PNG, WAV, GIF, NPZ) plus also_writes (MP4)
    tiles: list[Path]  # one picture per sample: the PNG, the GIF (video), a spectrogram or heat map PNG
    grid: Path
    seconds: float
    first_preview_seconds: float | None = None
    seed: int = 0
    metrics: dict | None = None  # reconstruct with a true field: metrics.json's numbers


def run_names(paths: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """{name shown in the app: folder} for the folders named on the command line: the folder's name,
    made unique with -2, -3 ... Only these folders can be opened; the app never takes a path."""
    out: dict[str, Path] = {}
    for p in paths:
        p = Path(p)
        base = p.resolve().name or "run"
        name, k = base, 2
        while name in out:
            name, k = f"{base}-{k}", k + 1
        out[name] = p
    return out


def _image_kind(run: Run) -> str:
    c = run.conditioner("image_cond")
    return getattr(c, "image", "") if c is not None else ""


def tasks_of(run: Run) -> list[str]:
    """The app's tabs this run supports: generate always; inpaint (images, audio, not a low-res run),
    img2img (images, audio, no image condition), upscale (1- or 3-channel pixel-space images, not a mask
    run), predict and interpolate (video, not a low-res run), reconstruct (unconditional field runs).
    A latent run's images are its decoded data_shape; like the CLI it inpaints (RePaint on latents) and
    does img2img, but never upscales (pixel-space measurements)."""
    kind = _image_kind(run)
    image = run.modality == "image" and run.data_shape[0] in (1, 3)
    out = ["generate"]
    if (image or run.modality == "audio") and kind != "lowres":
        out.append("inpaint")
    if (image or run.modality == "audio") and not kind:
        out.append("img2img")
    if image and kind != "mask" and not run.is_latent:
        out.append("upscale")
    if run.modality == "video" and kind != "lowres":
        out += ["predict", "interpolate"]
    if run.modality == "field" and (not run.conditioners or (kind == "points" and len(run.conditioners) == 1)):
        out.append("reconstruct")
    if run.modality == "field" and kind == "previous" and len(run.conditioners) == 1:
        out.append("forecast")
    return out


def _int(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or value is None:
        raise WebError(f"{name} {value!r} is not an integer; valid: {lo}..{hi}")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise WebError(f"{name} {value!r} is not an integer; valid: {lo}..{hi}") from None
    if not math.isfinite(f) or f != int(f) or not lo <= int(f) <= hi:
        raise WebError(f"{name} {value!r} is out of range; valid: an integer {lo}..{hi}")
    return int(f)


def _read_upload(path: str, what: str, read: Callable[[str], Any]) -> Any:
    """read(path) of an uploaded file after the size check; any failure is one WebError line naming the file."""
    _file_size_ok(path, what)
    try:
        return read(path)
    except Exception as e:
        raise WebError(_one_line(e, path, what)) from None


def _file_size_ok(path: str, what: str) -> str:
    if not path or not os.path.isfile(path):
        raise WebError(f"no {what} was uploaded; upload one first")
    size = os.path.getsize(path)
    if size > MAX_UPLOAD_BYTES:
        raise WebError(f"the {what} is {size} bytes; valid: at most {MAX_UPLOAD_BYTES} bytes")
    return path


class Jobs:
    """The opened runs (by name) and the work each tab does on them."""

    def __init__(self, runs: Mapping[str, Run], root: str | os.PathLike, *,
                 preview_interval: float = _PREVIEW_INTERVAL) -> None:
        if not runs:
            raise WebError("no run to serve; name a run folder")
        self.runs = dict(runs)
        self.root = Path(root)
        self.preview_interval = float(preview_interval)
        self._load_lock = threading.Lock()

    # -- lookups and checks ----------------------------------------------------------------------

    def run(self, name: Any) -> Run:
        if not isinstance(name, str) or name not in self.runs:
            raise WebError(f"run {name!r} is not served here; valid: {', '.join(self.runs)}")
        return self.runs[name]

    def denoiser(self, run: Run, weights: str = "ema"):
        with self._load_lock:  # one load per run; afterwards read-only, shared by the request threads
            if run.is_latent:
                try:
                    run.autoencoder  # opened (and checked) once, here: a missing or changed one is one line
                except Exception as e:  # RunError
                    raise WebError(" ".join(str(e).split())) from None
            return run.denoiser(weights)

    @staticmethod
    def _decoder(run: Run, image: Tensor | None = None, known: Tensor | None = None):
        """The live preview's decoder of a latent run's x0 estimate (None for a pixel-space run); with an
        inpainting input, the known pixels are pasted back as in the result."""
        if not run.is_latent:
            return None
        if image is None:
            return run.decode
        return lambda z: torch.where(known.bool(), image.to(z.dtype), run.decode(z))

    def spec(self, run: Run, s: Settings, *, solvers: Sequence[str] | None = None, default_solver: str | None = None,
             guided: bool | None = None) -> tuple[SamplingSpec, int]:
        """(spec, n) of a request, checked as `noisecraft sample` checks its flags."""
        n = _int("n", s.n, 1, MAX_N)
        valid = tuple(SOLVERS if solvers is None else solvers)
        solver = s.solver or default_solver or run.config.sample.solver
        if solver not in valid:
            raise WebError(f"solver {solver!r} is not a solver for this tab; valid: {', '.join(valid)}")
        nfe = None if s.nfe is None else _int("nfe", s.nfe, 1, MAX_NFE)
        seed = _int("seed", s.seed, 0, 2**63 - n)
        guided = any(c.guided for c in run.conditioners) if guided is None else guided
        guidance = None
        if guided and s.guidance is not None:
            try:
                guidance = float(s.guidance)
            except (TypeError, ValueError):
                raise WebError(f"guidance {s.guidance!r} is not a number; valid: 0 <= W < 100 (1 = no guidance)") from None
        try:
            spec = run.spec(solver=solver, nfe=nfe, guidance=guidance if guided else 1.0, seed=seed)
            spec.check_seed_range(n)
            for c in run.conditioners:  # a guidance-distilled student: the weight must lie in its range
                if c.spec_guidance:
                    c.prepare(spec.guidance, 1)
        except ValueError as e:
            raise WebError(str(e)) from None
        return spec, n

    def values(self, run: Run, class_: Any, prompt: Any, n: int) -> dict[str, Any]:
        """{conditioner key: value}: the class (a name of the run's classes, or any = classes in turn)
        and, for a text-conditioned run, the prompt for every sample."""
        out: dict[str, Any] = {}
        if class_ not in (None, "", ANY_CLASS):
            if run.conditioner("class_labels") is None:
                raise WebError(f"class {class_!r} was given but this run is not class-conditional")
            if str(class_) not in run.class_names:
                raise WebError(f"class {class_!r} is not a class of this run; valid: {', '.join(run.class_names)}")
            out["class_labels"] = str(class_)
        if run.conditioner("prompts") is not None:
            text = "" if prompt is None else str(prompt)
            if len(text) > 1000:
                raise WebError(f"the prompt is {len(text)} characters long; valid: at most 1000")
            out["prompts"] = [text] * n
        return out

    # -- work of each tab ------------------------------------------------------------------------

    def generate_work(self, name: str, s: Settings, class_: Any = None, prompt: Any = None) -> Work:
        run = self.run(name)
        spec, n = self.spec(run, s)
        values = self.values(run, class_, prompt, n)
        self.denoiser(run)

        def fn(callback):
            return run.generate(spec, n, callback=callback, **values)  # a latent run: decoded

        return Work(name, run, fn, spec, n, steps=spec.nfe, decode=self._decoder(run))

    def _conditioned(self, run: Run, spec: SamplingSpec, values: dict, n: int):
        conds = [c for c in run.conditioners if c.key != "image_cond"]  # the task builds image_cond itself
        return conditioned(self.denoiser(run), conds, spec, values, n)

    def read_image(self, run: Run, path: str, what: str = "image") -> Tensor:
        """(C, H, W) in [-1, 1]: the upload read as `noisecraft inpaint/img2img --image` reads it
        (decoded by Pillow with its bomb limit, model channels, native or display size only)."""
        if run.modality != "image" or run.data_shape[0] not in (1, 3):
            raise WebError(f"run is a model of {run.modality} data with shape {run.data_shape}; only 1- or 3-channel "
                           "image models take images")
        _file_size_ok(path, what)
        try:
            return run.get_modality().read(path, run.data_shape, scale=run.config.sample.scale)
        except Exception as e:  # DataError, ValueError: one line naming the file's problem
            raise WebError(_one_line(e, path, what)) from None

    def read_mask(self, run: Run, path: str) -> Tensor:
        """(1, H, W) known mask (1 = keep) from a mask PNG (white = regenerate), as `noisecraft inpaint --mask`."""
        try:
            m = run.get_modality().read_mask(path, tuple(run.data_shape[1:]), scale=run.config.sample.scale)
        except Exception as e:
            raise WebError(_one_line(e, path, "mask")) from None
        return ((m + 1) / 2 < 0.5).float()

    def read_audio(self, run: Run, path: str) -> Tensor:
        if run.modality != "audio":
            raise WebError(f"run is a model of {run.modality} data; only audio models take audio clips")
        _file_size_ok(path, "audio clip")
        try:
            return run.get_modality().read(path, run.data_shape)
        except Exception as e:
            raise WebError(_one_line(e, path, "audio clip")) from None

    def inpaint_work(self, name: str, s: Settings, image: Tensor, known: Tensor, class_: Any = None,
                     resample: Any = 5) -> Work:
        """RePaint (plain runs, ddpm by default) or one pass of a mask-conditioned run, as `noisecraft inpaint`;
        a latent run: RePaint on the latent grid, decoded, known pixels pasted back (latent.latent_inpaint)."""
        run = self.run(name)
        if "inpaint" not in tasks_of(run):
            raise WebError(f"run {name!r} cannot inpaint (a {run.modality} model{', low-res-conditioned' if _image_kind(run) else ''})")
        return self._inpaint(name, run, s, image, known, class_, resample, "inpaint")

    def _inpaint(self, name: str, run: Run, s: Settings, image: Tensor, known: Tensor, class_: Any, resample: Any,
                 task: str) -> Work:
        from ..tasks import INPAINT_SOLVERS, MASK_CONDS, inpaint

        repaint = _image_kind(run) not in MASK_CONDS  # a mask or frames run samples in one pass
        spec, n = self.spec(run, s, **(dict(solvers=INPAINT_SOLVERS, default_solver="ddpm") if repaint else {}))
        resample = _int("resample", resample, 1, 100) if repaint else None
        values = self.values(run, class_, None, n)

        task_fn = inpaint
        if run.is_latent:  # as `noisecraft inpaint` does with a latent run
            from ..latent import latent_inpaint

            task_fn = lambda d, *a, **kw: latent_inpaint(run.autoencoder, d, *a, **kw)  # noqa: E731

        def fn(callback):
            den, cond = self._conditioned(run, spec, values, n)
            return task_fn(den, image.expand(n, *image.shape).contiguous(), known,
                           method="repaint" if repaint else "model", solver=spec.solver, nfe=spec.nfe,
                           sigma_min=spec.sigma_min, sigma_max=spec.sigma_max, resample_steps=resample,
                           generator=seeded_generators(range(spec.seed, spec.seed + n)), callback=callback, **cond)

        return Work(name, run, fn, spec, n, task, first=image, steps=spec.nfe * (resample or 1),
                    decode=self._decoder(run, image, known))

    def keep_frames(self, run: Run, task: str, keep: Any) -> tuple[int, ...]:
        """The kept frames of predict (the first K, K in 1..T-1) or interpolate ('0,15'), checked."""
        from ..tasks import parse_keep_frames

        t = int(run.data_shape[1])
        if task == "predict":
            return tuple(range(_int("keep", keep, 1, t - 1)))
        try:
            return parse_keep_frames("" if keep is None else str(keep), t)
        except ValueError as e:
            raise WebError(str(e).replace("--keep", "keep")) from None

    def read_video(self, run: Run, path: str, keep: Sequence[int]) -> tuple[Tensor, Tensor]:
        """(clip, known mask) from an uploaded clip, read as `noisecraft predict/interpolate --video` reads it."""
        from ..tasks import read_kept_frames

        if run.modality != "video":
            raise WebError(f"run is a model of {run.modality} data; only video models take clips")
        _file_size_ok(path, "video clip")
        try:
            return read_kept_frames(run.get_modality(), path, run.data_shape, keep, scale=run.config.sample.scale)
        except Exception as e:
            raise WebError(_one_line(e, path, "video clip")) from None

    def frames_work(self, name: str, task: str, s: Settings, path: str, keep: Any, class_: Any = None,
                    resample: Any = 5) -> Work:
        """Video prediction (`task` "predict": keep the first K frames) or interpolation ("interpolate":
        keep the listed frames) by inpainting in time, as `noisecraft predict/interpolate`."""
        run = self.run(name)
        if task not in ("predict", "interpolate") or task not in tasks_of(run):
            raise WebError(f"run {name!r} cannot {task} (only video runs predict and interpolate)")
        clip, known = self.read_video(run, path, self.keep_frames(run, task, keep))
        return self._inpaint(name, run, s, clip, known, class_, resample, task)

    def reconstruct_work(self, name: str, s: Settings, obs_path: str, truth_path: str | None = None,
                         method: Any = None, physics: Any = None) -> Work:
        """Posterior samples of a field given uploaded point observations (and, optionally, the true
        field for the error map and metrics), as `noisecraft reconstruct` (same readers, same files).
        physics: the physics guidance weight ζ_p (darcy runs, method dps; None or 0: off)."""
        from ..fields import Posterior, read_observations, reconstruct, resolve_method
        from ..fields.plots import write_reconstruction

        run = self.run(name)
        if "reconstruct" not in tasks_of(run):
            raise WebError(f"run {name!r} cannot reconstruct (only unconditional or observation-conditioned field runs: "
                           "grf, darcy, navier-stokes)")
        try:
            method = resolve_method(method or None, _image_kind(run) == "points")
        except ValueError as e:
            raise WebError(str(e)) from None
        default_solver = "heun" if method == "tmpd" else run.config.sample.solver if method == "model" else "ddpm"
        spec, n = self.spec(run, s, default_solver=default_solver, guided=False)
        shape = tuple(run.shape)
        obs = _read_upload(obs_path, "observations file", lambda p: read_observations(p, shape))
        truth = _read_upload(truth_path, "true field", lambda p: run.get_modality().read(p, shape)) if truth_path else None
        den = self.denoiser(run)
        guide: dict = {}
        if physics not in (None, "", 0, 0.0):
            from ..data.fields import physics_options

            if method != "dps":
                raise WebError(f"physics guidance weight {physics!r} needs method dps, not {method!r} (0: off)")
            try:
                guide = physics_options(run.config.data.source, dict(run.config.data.options), physics)
            except ValueError as e:
                raise WebError(str(e)) from None
        label = method if not guide else f"{method}+physics"

        def fn(callback):
            return reconstruct(den, obs, shape, n=n, method=method, seed=spec.seed, solver=spec.solver, nfe=spec.nfe,
                               sigma_data=run.config.process.sigma_data, callback=callback, **guide).samples

        def writer(x: Tensor, out: Path):
            post = Posterior.of(x)  # the same numbers `reconstruct` returned: mean and std of these samples
            files, metrics = write_reconstruction(out, post.samples, post.mean, post.std, method=label,
                                                  observations=obs.count, truth=truth)
            tiles = [f for f in files if f.suffix == ".png"]
            return files, tiles, tiles[0], metrics

        return Work(name, run, fn, spec, n, "reconstruct", steps=spec.nfe, writer=writer)

    def forecast_work(self, name: str, s: Settings, state_path: str, truth_path: str | None = None,
                      steps: Any = 8) -> Work:
        """An ensemble rollout of a next-state field model from an uploaded state (and, optionally, the true
        trajectory for the error maps and metrics), as `noisecraft forecast` (same readers, same files)."""
        from ..data.fields import FORECAST_INTERVAL
        from ..fields.forecast import Forecast, forecast_scores, read_trajectory, rollout
        from ..fields.plots import write_forecast

        run = self.run(name)
        if "forecast" not in tasks_of(run):
            raise WebError(f"run {name!r} cannot forecast (only next-state field runs: [cond] image = 'previous', "
                           "e.g. navier-stokes-forecast)")
        steps = _int("steps", steps, 1, 64)
        spec, n = self.spec(run, s, guided=False)
        shape = tuple(run.shape)
        state = _read_upload(state_path, "state file", lambda p: run.get_modality().read(p, shape))
        truth = (_read_upload(truth_path, "true trajectory", lambda p: read_trajectory(p, shape, steps))
                 if truth_path else None)
        den = self.denoiser(run)
        interval = float(run.config.data.options.get("interval", FORECAST_INTERVAL))

        def fn(callback):
            return rollout(den, state, steps, n=n, spec=spec, callback=callback).samples

        def writer(x: Tensor, out: Path):
            fc = Forecast.of(x)  # the numbers `noisecraft forecast` computes from the same members
            rows = forecast_scores(fc, truth, state) if truth is not None else None
            files = write_forecast(out, fc.samples, fc.mean, fc.std, truth=truth, rows=rows, interval=interval)
            tiles = [f for f in files if f.suffix == ".png"]
            last = {k: float(v) for k, v in rows[-1].items() if k != "lead"} if rows else None
            return files, tiles, tiles[0], last

        return Work(name, run, fn, spec, n, "forecast", steps=spec.nfe, writer=writer)

    def img2img_work(self, name: str, s: Settings, image: Tensor, strength: Any, class_: Any = None) -> Work:
        """SDEdit from the noise level set by `strength`, as `noisecraft img2img` (a latent run: of the encoded
        image, decoded)."""
        from ..tasks import img2img

        run = self.run(name)
        if "img2img" not in tasks_of(run):
            raise WebError(f"run {name!r} cannot do img2img (a {run.modality} model with an image condition or "
                           "without image/audio files)")
        try:
            strength = float(strength)
        except (TypeError, ValueError):
            raise WebError(f"strength {strength!r} is not a number; valid: 0 < S <= 1") from None
        if not (math.isfinite(strength) and 0 < strength <= 1):
            raise WebError(f"strength {strength} is out of range; valid: 0 < S <= 1 (1 = start from pure noise)")
        spec, n = self.spec(run, s)
        values = self.values(run, class_, None, n)

        def fn(callback):
            den, cond = self._conditioned(run, spec, values, n)
            with torch.no_grad():  # encode/decode: the identity for a pixel-space run
                x = img2img(den, run.encode(image.expand(n, *image.shape).contiguous()), strength, solver=spec.solver,
                            nfe=spec.nfe, sigma_min=spec.sigma_min, sigma_max=spec.sigma_max,
                            generator=seeded_generators(range(spec.seed, spec.seed + n)), callback=callback, **cond)
                return run.decode(x)

        return Work(name, run, fn, spec, n, "img2img", first=image, steps=spec.nfe, decode=self._decoder(run))

    def upscale_work(self, name: str, s: Settings, path: str, method: Any = None, sigma_y: Any = 0.0,
                     class_: Any = None) -> Work:
        """Super-resolve a low-res upload to the model's size, as `noisecraft upscale`."""
        from ..io.readers import read_image
        from ..tasks import SR_METHODS, super_resolve, upscale_factor

        run = self.run(name)
        if run.is_latent:  # the CLI's refusal
            raise WebError(f"run {name!r} is a latent diffusion model; upscale works in pixel space: "
                           "use a pixel-space run")
        if "upscale" not in tasks_of(run):
            raise WebError(f"run {name!r} cannot upscale (only 1- or 3-channel image runs without a mask condition)")
        kind = _image_kind(run)
        method = method or ("model" if kind == "lowres" else "projection")
        if method not in SR_METHODS:
            raise WebError(f"method {method!r} is not a method; valid: {', '.join(SR_METHODS)}")
        if (method == "model") != (kind == "lowres"):
            raise WebError(f"method {method!r} does not fit this run: use 'model' for a low-res-conditioned run and "
                           "projection, pigdm or dps for a plain one")
        try:
            sigma_y = float(sigma_y or 0.0)
        except (TypeError, ValueError):
            raise WebError(f"sigma_y {sigma_y!r} is not a number; valid: a number >= 0") from None
        if not (math.isfinite(sigma_y) and sigma_y >= 0):
            raise WebError(f"sigma_y {sigma_y} is out of range; valid: a number >= 0")
        spec, n = self.spec(run, s, default_solver="ddpm", guided=False)
        values = self.values(run, class_, None, n)
        _file_size_ok(path, "low-res image")
        try:
            low = read_image(path, run.shape[0])
        except Exception as e:
            raise WebError(_one_line(e, path, "low-res image")) from None
        try:
            trained = run.conditioner("image_cond").lowres_factor if method == "model" else None
            factor = upscale_factor(tuple(low.shape[-2:]), run.shape[-1], trained)
        except ValueError as e:
            raise WebError(f"the low-res {e}") from None
        zero_shot = {} if method == "model" else {"sigma_y": sigma_y, "sigma_data": run.config.process.sigma_data}

        def fn(callback):
            den, cond = self._conditioned(run, spec, values, n)
            return super_resolve(den, low.expand(n, -1, -1, -1).contiguous(), factor, method=method, **zero_shot,
                                 solver=spec.solver, nfe=spec.nfe, sigma_min=spec.sigma_min, sigma_max=spec.sigma_max,
                                 generator=seeded_generators(range(spec.seed, spec.seed + n)), callback=callback,
                                 **cond).detach()

        first = low.repeat_interleave(factor, -2).repeat_interleave(factor, -1)
        return Work(name, run, fn, spec, n, "upscale", first=first, steps=spec.nfe)

    # -- running -------------------------------------------------------------------------------------

    def stream(self, work: Work, *, every: int | None = None,
               min_interval: float | None = None) -> Iterator[Preview | Result]:
        """Run `work` in its own thread; yield a Preview of the current x0 estimate every `every`
        steps (default: about ten per request, the first after step 0) but not within `min_interval`
        seconds (default: the app's preview_interval) of the previous one, then the Result. Closing the iterator early (the browser
        left) stops the sampler at its next step."""
        every = every or max(1, work.steps // _PREVIEWS)
        min_interval = self.preview_interval if min_interval is None else min_interval
        events: queue.Queue = queue.Queue()
        stop = threading.Event()
        modality = work.run.get_modality()
        nrow = max(1, math.ceil(math.sqrt(work.n)))
        t0 = time.perf_counter()

        def callback(info: dict) -> None:
            if stop.is_set():
                raise _Cancelled()
            i = int(info["i"])
            if i % every == 0:
                events.put(("preview", i, float(info["sigma_next"]), info["denoised"].detach().to("cpu").clone()))

        def target() -> None:
            try:
                x = work.fn(callback)
                events.put(("done", x))
            except _Cancelled:
                events.put(("cancelled",))
            except BaseException as e:  # noqa: BLE001 - handed to the request's thread as it is
                events.put(("error", e))

        thread = threading.Thread(target=target, name=f"noisecraft-web-{work.run_name}", daemon=True)
        thread.start()
        first_preview = None
        last = -math.inf
        try:
            while True:
                event = events.get()
                if event[0] == "preview":
                    while not events.empty():  # behind: skip to the newest estimate
                        nxt = events.get()
                        if nxt[0] != "preview":
                            events.put(nxt)  # only one producer: put back and handle on the next turn
                            break
                        event = nxt
                    _, i, sigma, d = event
                    if time.perf_counter() - last < min_interval:
                        continue
                    last = time.perf_counter()
                    if work.decode is not None:  # latents -> data: only the estimates shown are decoded
                        with torch.no_grad():
                            d = work.decode(d)
                    img = _to_uint8(modality.preview_image(d.clamp(-1, 1), nrow=nrow))
                    if first_preview is None:
                        first_preview = time.perf_counter() - t0
                    yield Preview(i, sigma, img)
                elif event[0] == "done":
                    x = event[1]
                    yield self.write(work, x, seconds=time.perf_counter() - t0, first_preview=first_preview)
                    return
                elif event[0] == "error":
                    raise event[1]
                else:
                    return
        finally:
            stop.set()

    def write(self, work: Work, x: Tensor, *, seconds: float = 0.0, first_preview: float | None = None) -> Result:
        """The result files in a new folder of their own, as `noisecraft sample` / the tasks write them:
        000000<ext> ... at the display scale, plus a preview tile per sample and grid.png."""
        run = work.run
        modality = run.get_modality()
        scale = run.config.sample.scale
        out = Path(tempfile.mkdtemp(prefix="result-", dir=self.root))
        if work.writer is not None:
            files, tiles, picture, metrics = work.writer(x, out)
            return Result(x, files, tiles, picture, seconds, first_preview, work.spec.seed, metrics)
        x = x.clamp(-1, 1)
        files: list[Path] = []
        for i in range(x.shape[0]):
            files.append(modality.write(x[i], out / f"{i:06d}{modality.file_ext}", scale=scale))
        for ext in getattr(modality, "also_writes", ()):  # video: an MP4 beside every GIF (needs ffmpeg)
            try:
                for i in range(x.shape[0]):
                    files.append(modality.write(x[i], out / f"{i:06d}{ext}", scale=scale))
            except Exception:  # noqa: BLE001 - FFmpegMissing etc.: the GIFs are enough to show
                pass
        if modality.file_ext in (".png", ".gif"):  # images, and video as looping GIFs
            tiles = list(files[: x.shape[0]])
        else:
            tiles = [modality.write_preview(x[i : i + 1], out / f"{i:06d}.preview.png", nrow=1, scale=scale)
                     for i in range(x.shape[0])]
        first = work.first
        grid_tiles = x if first is None else torch.cat([first.unsqueeze(0).clamp(-1, 1), x])
        nrow = max(1, math.ceil(math.sqrt(grid_tiles.shape[0])))
        grid = modality.write_preview(grid_tiles, out / "grid.png", nrow=nrow, scale=scale)
        return Result(x, files, tiles, grid, seconds, first_preview, work.spec.seed)


class _Cancelled(Exception):
    """Raised inside the sampler's callback when the request was abandoned."""


def _to_uint8(img: Tensor) -> np.ndarray:
    """(3, H, W) in [0, 1] -> (H, W, 3) uint8."""
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _one_line(e: BaseException, path: str, what: str) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    return f"the uploaded {what} was refused: {msg.replace(str(path), Path(path).name)}"[:400]

