"""The Gradio app: pick a served run, draw samples and watch them denoise, run its tasks, see its training.

    app = build_app({"demo": Run.open("runs/demo")})
    launch(app, host="127.0.0.1", port=7860)          # what `noisecraft serve runs/demo` does

Safe by default (docs/webapp.md): it binds to 127.0.0.1 unless told otherwise, never makes a share
link, sends no analytics (GRADIO_ANALYTICS_ENABLED=False before Gradio is imported, system fonts
instead of web fonts), opens only the runs it was given (a dropdown of names, never a path), reads
uploads with the same checks as the CLI (size-limited), and runs requests through a queue with a
concurrency limit, each from its own seed and settings. Gradio is imported only here and only when
an app is built (the `web` extra).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from ..runs import Run
from ..sampling import SOLVERS
from .jobs import ANY_CLASS, MAX_N, MAX_UPLOAD_BYTES, Jobs, Preview, Result, Settings, WebError, _to_uint8, tasks_of

__all__ = ["build_app", "launch", "import_gradio", "GradioMissing"]

TASK_TABS = ("inpaint", "img2img", "upscale", "predict", "interpolate", "reconstruct", "forecast")
# Gradio's image "share" button posts to the Hugging Face Hub; a local app offers download and fullscreen only.
_LOCAL_BUTTONS = ["download", "fullscreen"]
# tiny samples (16x16 digits) stay crisp when the browser enlarges them
CSS = """
#live img, #gallery img { image-rendering: pixelated; }
#live img { width: 100%; height: 100%; object-fit: contain; }
"""


class GradioMissing(RuntimeError):
    """Gradio is not installed (the `web` extra)."""


def import_gradio():
    """Gradio, imported with its analytics off (the variable is read at import and at Blocks())."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio as gr
    except ImportError as e:
        raise GradioMissing(f"the web app needs gradio ({e}); install it with: pip install 'noisecraft[web]'") from None
    return gr


# ------------------------------------------------------------------------------------------------
# what the run-dependent widgets show


def _report_markdown(run: Run) -> str:
    """The run's training progress (metrics.jsonl) and its newest evaluation (eval.jsonl), as Markdown."""
    shape = (f"sample shape {tuple(run.data_shape)}, latent diffusion on latents {tuple(run.shape)}"
             if run.is_latent else f"sample shape {tuple(run.shape)}")
    parts = [f"**{run.path.name}**: {run.modality} model, {shape}, "
             f"conditions: {', '.join(c.kind for c in run.conditioners) or 'none'}"]
    last = _last_json_line(run.path / "metrics.jsonl")
    if last:
        parts.append("Training, last logged: " + ", ".join(
            f"{k} {last[k]:.4g}" if isinstance(last[k], float) else f"{k} {last[k]}"
            for k in ("step", "samples", "loss") if k in last))
    ev = _last_json_line(run.path / "eval.jsonl")
    if ev:
        rows = [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                for k, v in ev.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
        parts += ["Newest evaluation (eval.jsonl):", "\n".join(["| metric | value |", "|---|---|", *rows])]
    else:
        parts.append("No evaluation recorded in the run (see `noisecraft eval`).")
    return "\n\n".join(parts)


def _last_json_line(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:  # the last line only: metrics files grow long
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 65536))
            tail = f.read().decode("utf-8", "replace").strip().splitlines()
        doc = json.loads(tail[-1]) if tail else None
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _loss_image(run: Run) -> np.ndarray | None:
    """loss.png as pixels, or None. Never its path: Gradio serves only files under the working and temp
    folders (and refuses an update with any other path), and the run folder stays unexposed."""
    p = run.path / "loss.png"
    try:
        return _picture(p) if p.is_file() else None
    except OSError:
        return None


# ------------------------------------------------------------------------------------------------
# the app


def build_app(runs: Mapping[str, Run], *, root: str | os.PathLike | None = None, concurrency: int = 2,
              preview_interval: float = 0.1):
    """The Blocks app serving `runs` ({name: Run}); results go to folders under `root` (a new
    temporary folder by default). `concurrency`: requests computed at once (the rest wait in the
    queue); `preview_interval`: the least time in seconds between two live previews of a request."""
    gr = import_gradio()
    from ..fields import RECONSTRUCT_METHODS

    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise WebError(f"concurrency {concurrency!r} is out of range; valid: an integer >= 1")
    root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="noisecraft-web-"))
    root.mkdir(parents=True, exist_ok=True)
    jobs = Jobs(runs, root, preview_interval=preview_interval)
    names = list(jobs.runs)
    for run in jobs.runs.values():  # load weights and warm up up front: the first click should not wait
        jobs.denoiser(run)
        _warm_up(jobs, run)
    first = jobs.runs[names[0]]

    def class_choices(run: Run) -> list[str]:
        return [ANY_CLASS, *run.class_names]

    def guided(run: Run) -> bool:
        return any(c.guided for c in run.conditioners)

    # delete_cache: Gradio keeps copies of results; drop those older than an hour, hourly
    with gr.Blocks(title="noisecraft", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        app.noisecraft_root = root  # where result folders go (launch() allows Gradio to serve them)
        gr.Markdown("# noisecraft\nPick a run, press **Generate** and watch noise become data. "
                    "The other tabs do the run's tasks with the same model: edit an image or clip, continue "
                    "or interpolate a video, reconstruct a field from observations, forecast a flow.")
        last_result = gr.State(None)  # this browser session's newest result files (never shared)
        with gr.Row():
            with gr.Column(scale=1):
                run_dd = gr.Dropdown(names, value=names[0], label="Run", interactive=True)
                tasks_md = gr.Markdown(_tasks_text(first), elem_id="run-tasks")
                class_dd = gr.Dropdown(class_choices(first), value=ANY_CLASS, label="Class",
                                       visible=bool(first.class_names), interactive=True)
                prompt_tb = gr.Textbox(label="Prompt", visible=first.conditioner("prompts") is not None)
                with gr.Row():
                    solver_dd = gr.Dropdown(list(SOLVERS), value=first.config.sample.solver, label="Solver")
                    nfe_sl = gr.Slider(1, 200, value=first.config.sample.nfe, step=1, label="NFE (network calls)")
                with gr.Row():
                    guidance_nb = gr.Number(value=first.config.sample.guidance, label="Guidance (1 = none)",
                                            visible=guided(first), minimum=0, maximum=99.9)
                    seed_nb = gr.Number(value=0, precision=0, minimum=0, label="Seed (sample i uses seed + i)")
                    n_sl = gr.Slider(1, MAX_N, value=4, step=1, label="How many")
                # the task tabs start hidden and the page load shows the first run's (on_run): Gradio 6 hides
                # a tab on an update only when it was created hidden
                with gr.Tabs() as tabs:
                    with gr.Tab("Generate", id="generate"):
                        gen_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
                    with gr.Tab("Inpaint", id="inpaint", visible=False) as tab_inpaint:
                        gr.Markdown("Paint over the part to regenerate (white brush); the rest is kept exactly.")
                        editor = gr.ImageEditor(type="numpy", label="Image and mask", image_mode="RGBA",
                                                brush=gr.Brush(default_size=6, colors=["#ffffff"], color_mode="fixed"),
                                                sources=["upload"], layers=False, height=320,
                                                visible=first.modality == "image", elem_id="inpaint-editor")
                        inp_audio = gr.Audio(type="filepath", label="Clip", sources=["upload"],
                                             visible=first.modality == "audio")
                        inp_span = gr.Textbox(label="Span to regenerate, START:END in seconds", value="0.2:0.3",
                                              visible=first.modality == "audio")
                        with gr.Row():
                            inp_use = gr.Button("Use my newest result", size="sm")
                            inp_solver = gr.Dropdown(["ddpm", "euler_ancestral", "ddim_eta", "ddim", "euler"],
                                                     value="ddpm", label="Solver (RePaint)")
                            inp_resample = gr.Slider(1, 20, value=5, step=1, label="Resampling U")
                        inp_btn = gr.Button("Inpaint", variant="primary", elem_id="inpaint-btn")
                    with gr.Tab("Img2img", id="img2img", visible=False) as tab_i2i:
                        i2i_image = gr.Image(type="filepath", image_mode=None, label="Input image", sources=["upload"],
                                             visible=first.modality == "image", height=200)
                        i2i_audio = gr.Audio(type="filepath", label="Input clip", sources=["upload"],
                                             visible=first.modality == "audio")
                        i2i_use = gr.Button("Use my newest result", size="sm")
                        strength_sl = gr.Slider(0.05, 1.0, value=0.6, step=0.05, label="Strength (1 = from pure noise)")
                        i2i_btn = gr.Button("Img2img", variant="primary", elem_id="img2img-btn")
                    with gr.Tab("Upscale", id="upscale", visible=False) as tab_up:
                        up_image = gr.Image(type="filepath", image_mode=None, label="Low-res image (square, the "
                                            "model's size divided by 2, 4, ...)", sources=["upload"], height=200)
                        with gr.Row():
                            up_method = gr.Dropdown(["projection", "pigdm", "dps", "model"], value=None,
                                                    label="Method (empty: the run's default)")
                            up_sigma = gr.Number(value=0.0, minimum=0, label="Noise std of the low-res image")
                            up_solver = gr.Dropdown(list(SOLVERS), value="ddpm", label="Solver")
                        up_btn = gr.Button("Upscale", variant="primary", elem_id="upscale-btn")
                    video_tabs = {}
                    for task, label in (("predict", "Predict"), ("interpolate", "Interpolate")):
                        with gr.Tab(label, id=task, visible=False) as tab:
                            gr.Markdown("Upload a clip (GIF, MP4, ...; the run's frame size or a multiple of it). "
                                        + ("The first K frames are kept exactly and the rest generated."
                                           if task == "predict" else "The listed frames (e.g. 0,3) are kept exactly "
                                           "and the frames between and around them generated."))
                            clip = gr.File(label="Input clip", file_count="single", type="filepath",
                                           elem_id=f"{task}-clip")
                            with gr.Row():
                                keep = (gr.Number(value=1, precision=0, minimum=1, label="Keep the first K frames")
                                        if task == "predict" else
                                        gr.Textbox(value=_default_interpolate_keep(first), label="Frames to keep (0-based)"))
                                solver = gr.Dropdown(["ddpm", "euler_ancestral", "ddim_eta", "ddim", "euler"],
                                                     value="ddpm", label="Solver (RePaint)")
                                resample = gr.Slider(1, 20, value=5, step=1, label="Resampling U")
                            btn = gr.Button(label, variant="primary", elem_id=f"{task}-btn")
                        video_tabs[task] = (tab, clip, keep, solver, resample, btn)
                    with gr.Tab("Reconstruct", id="reconstruct", visible=False) as tab_rec:
                        gr.Markdown("Upload point observations of a field - **OBS.npz** with `idx` (M, 2) row, column; "
                                    "`values` (M,) or (M, C); optional `noise_std` and `channels` (observed channels), in the dataset's normalized units "
                                    "(docs/fields.md) - and, to score the result, the true field (NPZ, key `field`). "
                                    "*How many* sets the posterior samples (their mean and std are shown).")
                        with gr.Row():
                            rec_obs = gr.File(label="Observations (OBS.npz)", type="filepath", elem_id="reconstruct-obs")
                            rec_truth = gr.File(label="True field (optional)", type="filepath",
                                                elem_id="reconstruct-truth")
                        with gr.Row():
                            rec_method = gr.Dropdown(list(RECONSTRUCT_METHODS), value=None,
                                                     label="Method (empty: dps; model for observation-conditioned models)")
                            rec_solver = gr.Dropdown(list(SOLVERS), value=None,
                                                     label="Solver (empty: ddpm; heun for tmpd)")
                            rec_physics = gr.Number(value=0, label="Physics guidance ζ_p (darcy, dps; 0: off)",
                                                    elem_id="reconstruct-physics")
                        rec_btn = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct-btn")
                    with gr.Tab("Forecast", id="forecast", visible=False) as tab_fc:
                        gr.Markdown("Upload the current state of the field (NPZ, key `field`, in the dataset's "
                                    "normalized units) and, to score the forecast, the true trajectory (NPZ, key "
                                    "`trajectory`, as `noisecraft data export navier-stokes-forecast` writes). *How "
                                    "many* sets the ensemble members; each is rolled forward *Steps* states.")
                        with gr.Row():
                            fc_state = gr.File(label="State (NPZ)", type="filepath", elem_id="forecast-state")
                            fc_truth = gr.File(label="True trajectory (optional)", type="filepath",
                                               elem_id="forecast-truth")
                        fc_steps = gr.Slider(1, 64, value=8, step=1, label="Steps")
                        fc_btn = gr.Button("Forecast", variant="primary", elem_id="forecast-btn")
                    with gr.Tab("Training", id="training"):
                        loss_img = gr.Image(value=_loss_image(first), label="Loss curve (loss.png)", interactive=False,
                                            buttons=_LOCAL_BUTTONS)
                        report_md = gr.Markdown(_report_markdown(first))
            with gr.Column(scale=1):
                live = gr.Image(label="Denoising: the current estimate of the result", interactive=False,
                                elem_id="live", height=256, format="png", buttons=_LOCAL_BUTTONS)
                status = gr.Markdown("", elem_id="status")
                gallery = gr.Gallery(label="Results", columns=4, height="auto", elem_id="gallery", format="png",
                                     buttons=_LOCAL_BUTTONS)
                audio_out = gr.Audio(label="First result", visible=first.modality == "audio", interactive=False)
                # video runs: the first result's MP4 (H.264 yuv420p, browser-playable: Gradio serves it unconverted)
                video_out = gr.Video(label="First result (MP4)", visible=first.modality == "video", interactive=False,
                                     autoplay=True, loop=True, elem_id="video-player", height=256)
                files = gr.File(label="Download (same files as the CLI writes)", file_count="multiple",
                                interactive=False, elem_id="files")

        outputs = [live, gallery, files, audio_out, status, last_result, video_out]

        def settings(solver, nfe, guidance, seed, n) -> Settings:
            return Settings(solver=solver, nfe=nfe, guidance=guidance, seed=seed, n=n)

        def stream(make_work) -> Iterator[tuple]:
            try:
                work = make_work()
                for ev in jobs.stream(work):
                    if isinstance(ev, Preview):
                        text = f"{work.task}: step {ev.step + 1} of {work.steps}, σ = {ev.sigma:.3g}"
                        yield ev.image, gr.skip(), gr.skip(), gr.skip(), text, gr.skip(), gr.skip()
                    else:
                        yield _final(ev, work)
            except (WebError, ValueError) as e:  # settings and uploads: one line in the page
                raise gr.Error(" ".join(str(e).split())[:400]) from None

        def _final(res: Result, work) -> tuple:
            run = work.run
            wav = str(res.files[0]) if run.modality == "audio" else None
            grid = _picture(res.grid)
            timing = f"done in {res.seconds:.2f} s" + (
                f" (first preview after {res.first_preview_seconds:.2f} s)" if res.first_preview_seconds else "")
            if work.task in ("reconstruct", "forecast"):  # one posterior or ensemble: heat maps, NPZ and metrics
                shown = ", ".join(f"{k} {v:.4g}" for k, v in (res.metrics or {}).items() if isinstance(v, float))
                what = ("posterior sample(s)" if work.task == "reconstruct" else
                        f"member(s) of a forecast{' (last lead)' if shown else ''}")
                text = (f"{work.task}: {work.n} {what}, seeds {res.seed}..{res.seed + work.n - 1}; "
                        f"{timing}" + (f"; {shown}" if shown else ""))
                tiles = [(str(p), p.stem) for p in res.tiles]  # captioned: mean, std, truth, error
                return (grid, tiles, [str(p) for p in res.files], gr.skip(), text, gr.skip(), gr.skip())
            text = f"{work.task}: {len(res.tiles)} result(s), seeds {res.seed}..{res.seed + len(res.tiles) - 1}; {timing}"
            downloads = [str(p) for p in res.files] + [str(res.grid)]
            player = (next((str(p) for p in res.files if p.suffix == ".mp4"), None) if run.modality == "video"
                      else gr.skip())  # the first clip's MP4 in the player (video runs only)
            return (grid, [str(p) for p in res.tiles], downloads, wav if wav else gr.skip(), text,
                    [str(p) for p in res.files], player)

        def on_generate(name, class_, prompt, solver, nfe, guidance, seed, n):
            yield from stream(lambda: jobs.generate_work(name, settings(solver, nfe, guidance, seed, n), class_, prompt))

        def on_inpaint(name, class_, editor_value, clip, span, solver, resample, nfe, guidance, seed, n):
            def make():
                run = jobs.run(name)
                if run.modality == "audio":
                    image = jobs.read_audio(run, clip)
                    try:
                        known = run.get_modality().span_mask(str(span), run.data_shape[-1])
                    except ValueError as e:
                        raise WebError(str(e)) from None
                else:
                    image, known = _editor_inputs(jobs, run, editor_value)
                return jobs.inpaint_work(name, settings(solver, nfe, guidance, seed, n), image, known, class_, resample)
            yield from stream(make)

        def on_img2img(name, class_, image_path, clip, strength, solver, nfe, guidance, seed, n):
            def make():
                run = jobs.run(name)
                img = jobs.read_audio(run, clip) if run.modality == "audio" else jobs.read_image(run, image_path)
                return jobs.img2img_work(name, settings(solver, nfe, guidance, seed, n), img, strength, class_)
            yield from stream(make)

        def on_upscale(name, class_, path, method, sigma_y, solver, nfe, seed, n):
            yield from stream(lambda: jobs.upscale_work(name, settings(solver, nfe, None, seed, n), path, method,
                                                        sigma_y, class_))

        def frames_handler(task):
            def on_frames(name, class_, path, keep, solver, resample, nfe, guidance, seed, n):
                yield from stream(lambda: jobs.frames_work(name, task, settings(solver, nfe, guidance, seed, n), path,
                                                           keep, class_, resample))
            return on_frames

        def on_reconstruct(name, obs, truth, method, solver, physics, nfe, seed, n):
            yield from stream(lambda: jobs.reconstruct_work(name, settings(solver, nfe, None, seed, n), obs, truth,
                                                            method, physics))

        def on_forecast(name, state, truth, steps, solver, nfe, seed, n):
            yield from stream(lambda: jobs.forecast_work(name, settings(solver, nfe, None, seed, n), state, truth, steps))

        common = [solver_dd, nfe_sl, guidance_nb, seed_nb, n_sl]
        gen_btn.click(on_generate, [run_dd, class_dd, prompt_tb, *common], outputs, api_name="generate")
        inp_btn.click(on_inpaint, [run_dd, class_dd, editor, inp_audio, inp_span, inp_solver, inp_resample, nfe_sl,
                                   guidance_nb, seed_nb, n_sl], outputs, api_name="inpaint")
        i2i_btn.click(on_img2img, [run_dd, class_dd, i2i_image, i2i_audio, strength_sl, *common], outputs,
                      api_name="img2img")
        up_btn.click(on_upscale, [run_dd, class_dd, up_image, up_method, up_sigma, up_solver, nfe_sl, seed_nb, n_sl],
                     outputs, api_name="upscale")
        for task, (_, clip, keep, solver, resample, btn) in video_tabs.items():
            btn.click(frames_handler(task), [run_dd, class_dd, clip, keep, solver, resample, nfe_sl, guidance_nb, seed_nb,
                                             n_sl], outputs, api_name=task)
        rec_btn.click(on_reconstruct, [run_dd, rec_obs, rec_truth, rec_method, rec_solver, rec_physics, nfe_sl, seed_nb,
                                       n_sl],
                      outputs, api_name="reconstruct")
        fc_btn.click(on_forecast, [run_dd, fc_state, fc_truth, fc_steps, solver_dd, nfe_sl, seed_nb, n_sl], outputs,
                     api_name="forecast")

        def use_newest_editor(last):
            if not last:
                raise gr.Error("no result yet in this browser session: generate one first")
            return {"background": last[0], "layers": [], "composite": last[0]}

        def use_newest_image(last):
            if not last:
                raise gr.Error("no result yet in this browser session: generate one first")
            return (gr.skip(), last[0]) if last[0].endswith(".wav") else (last[0], gr.skip())

        inp_use.click(use_newest_editor, [last_result], [editor], api_name=False)
        i2i_use.click(use_newest_image, [last_result], [i2i_image, i2i_audio], api_name=False)

        def on_run(name):
            """The widgets of the newly picked run: its classes, prompt, [sample] defaults, the tabs of the
            tasks it supports (the others hidden; a hidden tab's button is never reachable), its training."""
            try:
                run = jobs.run(name)
            except WebError as e:
                raise gr.Error(str(e)) from None
            tasks = tasks_of(run)
            image, audio = run.modality == "image", run.modality == "audio"
            return (gr.update(choices=class_choices(run), value=ANY_CLASS, visible=bool(run.class_names)),
                    gr.update(visible=run.conditioner("prompts") is not None),
                    gr.update(value=run.config.sample.solver), gr.update(value=run.config.sample.nfe),
                    gr.update(value=run.config.sample.guidance, visible=guided(run)),
                    *(gr.update(visible=t in tasks) for t in TASK_TABS), gr.update(selected="generate"),
                    gr.update(visible=image), gr.update(visible=audio), gr.update(visible=audio),
                    gr.update(visible=image), gr.update(visible=audio), gr.update(visible=audio),
                    gr.update(visible=run.modality == "video", value=None),  # no other run's clip in the player
                    gr.update(value=1), gr.update(value=_default_interpolate_keep(run)),
                    _loss_image(run), _report_markdown(run), _tasks_text(run))

        run_outputs = [class_dd, prompt_tb, solver_dd, nfe_sl, guidance_nb, tab_inpaint, tab_i2i, tab_up,
                       video_tabs["predict"][0], video_tabs["interpolate"][0], tab_rec, tab_fc, tabs, editor, inp_audio,
                       inp_span, i2i_image, i2i_audio, audio_out, video_out, video_tabs["predict"][2],
                       video_tabs["interpolate"][2], loss_img, report_md, tasks_md]
        # api_name: scripts and tests can ask what a run shows; it only reads the served runs
        switched = run_dd.change(on_run, [run_dd], run_outputs, api_name="select_run")

        def on_load(name):
            """The live view starts with noise (a latent run: noise of its decoded shape); this also opens the
            page's event stream."""
            run = jobs.runs.get(name, first)
            noise = torch.randn((min(4, MAX_N), *run.data_shape), generator=torch.Generator().manual_seed(0))
            return _to_uint8(run.get_modality().preview_image(noise.clamp(-1, 1), nrow=2)), "press Generate"

        switched.then(on_load, [run_dd], [live, status], api_name=False)  # the new run's noise in the live view
        app.load(on_load, [run_dd], [live, status], api_name=False)
        app.load(on_run, [run_dd], run_outputs, api_name=False)
    app.queue(default_concurrency_limit=concurrency, max_size=64)
    return app


def _warm_up(jobs: Jobs, run: Run) -> None:
    """One throw-away 1-step sample and preview: the first request then runs at full speed."""
    try:
        for _ in jobs.stream(jobs.generate_work(next(k for k, v in jobs.runs.items() if v is run),
                                                Settings(nfe=1, solver="euler"))):
            pass
    except Exception:  # noqa: BLE001 - a run that cannot sample says so on the first real request
        pass


def _tasks_text(run: Run) -> str:
    """The line under the run picker naming the tabs this run has (the others are hidden)."""
    return f"{run.modality} run; tasks: " + ", ".join(t.capitalize() for t in tasks_of(run))


def _default_interpolate_keep(run: Run) -> str:
    """'0,T-1' for a video run of T frames: keep the ends, generate the middle."""
    return f"0,{int(run.data_shape[1]) - 1}" if run.modality == "video" else "0,1"


def _picture(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _editor_inputs(jobs: Jobs, run: Run, value: Any):
    """(image (C, H, W), known mask (1, H, W)) from the editor: its background is the image and the
    painted pixels (any alpha) the region to regenerate. Both go through the CLI's readers (size,
    channels, the mask threshold) by way of PNG files in a folder of this request."""
    from PIL import Image

    if not isinstance(value, dict) or value.get("background") is None:
        raise WebError("no image to inpaint: upload one or press 'Use my newest result' first")
    bg = np.asarray(value["background"])
    layers = [np.asarray(x) for x in (value.get("layers") or []) if x is not None]
    if bg.ndim != 3 or bg.dtype != np.uint8:
        raise WebError(f"the image has shape {bg.shape} and type {bg.dtype}; valid: an 8-bit picture")
    painted = np.zeros(bg.shape[:2], dtype=bool)
    for layer in layers:
        if layer.shape[:2] != bg.shape[:2]:
            raise WebError(f"a mask layer is {layer.shape[1]}x{layer.shape[0]} but the image is "
                           f"{bg.shape[1]}x{bg.shape[0]}")
        painted |= layer[..., -1] > 0 if layer.ndim == 3 and layer.shape[-1] == 4 else layer.reshape(*layer.shape[:2], -1).max(-1) > 0
    if not painted.any():
        raise WebError("nothing is painted: paint over the part of the image to regenerate first")
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=jobs.root))
    rgb = bg[..., :3] if bg.shape[-1] >= 3 else bg[..., :1].repeat(3, -1)
    Image.fromarray(np.ascontiguousarray(rgb)).save(folder / "image.png")
    Image.fromarray((painted * 255).astype(np.uint8), mode="L").save(folder / "mask.png")
    return jobs.read_image(run, str(folder / "image.png")), jobs.read_mask(run, str(folder / "mask.png"))


def launch(app, *, host: str = "127.0.0.1", port: int | None = 7860, block: bool = True, quiet: bool = False):
    """Start the server (never a share link; uploads up to MAX_UPLOAD_BYTES; system fonts only)."""
    gr = import_gradio()
    font = ["ui-sans-serif", "system-ui", "sans-serif"]
    theme = gr.themes.Default(font=font, font_mono=["ui-monospace", "monospace"])
    return app.launch(server_name=host, server_port=port, share=False, max_file_size=MAX_UPLOAD_BYTES,
                      show_error=True, ssr_mode=False, enable_monitoring=False, quiet=quiet,
                      prevent_thread_lock=not block, allowed_paths=[str(app.noisecraft_root)], theme=theme, css=CSS,
                      footer_links=[], mcp_server=False, pwa=False)

