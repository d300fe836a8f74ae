"""`noisecraft inpaint | img2img | upscale | predict | interpolate`: the inference tasks of `noisecraft.tasks`
on image, audio and video files.

    noisecraft inpaint RUN_DIR --image IMG --mask MASK [--method auto|repaint|model] [--n N] [--class C] [--guidance W] [--solver S] [--nfe K] [--resample U] [--seed S] --out DIR
    noisecraft inpaint AUDIO_RUN --audio WAV --span START:END [--n N] [--class C] [--guidance W] [--solver S] [--nfe K] [--resample U] [--seed S] --out DIR
    noisecraft img2img RUN_DIR --image IMG | --audio WAV --strength 0.6 [--n N] [--class C] [--guidance W] [--solver S] [--nfe K] [--seed S] --out DIR
    noisecraft predict VIDEO_RUN --video IN.gif --keep K [--n N] [--class C] [--solver S] [--nfe K] [--resample U] [--seed S] --out DIR
    noisecraft interpolate VIDEO_RUN --video IN.gif --keep 0,15 [--n N] [--class C] [--solver S] [--nfe K] [--resample U] [--seed S] --out DIR
    noisecraft upscale RUN_DIR --image LOWRES [--method model|projection|pigdm|dps] [--sigma-y 0] [--n N] [--class C] [--solver S] [--nfe K] [--seed S] --out DIR

Images are decoded as the training data is, converted to the model's channel count (RGB <-> gray)
and mapped to [-1, 1]. The image (and mask) of inpaint/img2img may be given at the model's
resolution or at the display scale every command writes (`sample.scale`, 4 for the presets: a
16x16 model reads 16x16 or 64x64 files), so what `noisecraft sample` wrote can be inpainted as it
is; other sizes are refused, never resized. Upscale's low-res image times an integer factor >= 2
must give the model's resolution. MASK is a PNG where white (>= 50% gray) marks the region to regenerate
and black the known pixels. Sample i uses seed + i; DIR gets 000000.png ... and grid.png at the display scale,
whose first tile is the input image (upscale: the low-res input enlarged by pixel repetition).

A run trained with `[cond] image = "mask"` inpaints (and a video run trained with `image = "frames"`
predicts and interpolates) in one sampler pass (method "model"), one
trained with `[cond] image = "lowres"` upscales by its lowres_factor (method "model"); other runs
use RePaint and the zero-shot inverse-problem methods.

Audio runs inpaint a time span: WAV (or FLAC/OGG) is read as the training clips are (mixed to the
model's channels, resampled to the run's rate, cut or padded to its length) and the samples from
round(START·rate) to round(END·rate) - 1 are regenerated (RePaint); the others are kept exactly,
so in the written 16-bit WAVs they equal the input's samples when it is a 16-bit file at the run's
rate. DIR gets 000000.wav ... and grid.png (spectrograms; first tile: the input).

Video runs predict and interpolate by inpainting in time (`noisecraft.tasks.frames`): the input clip
(GIF, MP4, a frame folder) is read at the run's frame rate and frame size like `sample` writes it;
whole frames are known (predict: the first K; interpolate: the listed ones) and the others are
generated (RePaint, or one pass of a run trained with `[cond] image = "frames"` or "mask"). Kept frames are returned exactly, so in
the written GIFs they equal the input's frames when it is a GIF on the 8-bit grid (as `sample` and
`data export` write). DIR gets 000000.gif and .mp4 ... and grid.png (first strip: the input).
"""

from __future__ import annotations

import math

import click
import torch

from .common import UserError, check_out_folder, condition_values, sampling_spec, user_errors, write_samples

_COMMON = [
    click.argument("run_dir", type=click.Path()),
    click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for the result files and grid.png."),
    click.option("--n", "n", type=int, default=1, show_default=True, help="Number of results."),
    click.option("--class", "class_", help="Class index or name (conditional models). Default: classes in turn."),
    click.option("--nfe", type=int, help="Solver steps (default: the run's sample.nfe)."),
    click.option("--seed", type=int, default=0, show_default=True, help="Result i uses seed + i."),
    click.option("--weights", default="ema", show_default=True, help="raw | ema | best | phema-<std>, as for `sample`."),
]


_IMAGE = click.option("--image", required=True, type=click.Path(), help="Input image file (PNG, JPEG, ...).")


def _common(fn):
    for deco in reversed(_COMMON):
        fn = deco(fn)
    return fn


def _model_channels(run) -> int:
    if run.data_shape[0] not in (1, 3) or run.modality != "image":
        raise UserError(f"run {run.path} is a model of {run.modality} data with shape {run.data_shape}; only 1- or 3-channel "
                        "image models take image files")
    return run.data_shape[0]


def _load(path: str, run) -> torch.Tensor:
    """(C, H, W) in [-1, 1] with the model's channel count, at the native or the display scale."""
    _model_channels(run)
    return run.get_modality().read(path, run.data_shape, scale=run.config.sample.scale)


def _load_mask(path: str, run) -> torch.Tensor:
    """MASK PNG (white = regenerate, black = known), native or display scale -> (1, H, W) float, 1 = known."""
    m = run.get_modality().read_mask(path, tuple(run.data_shape[1:]), scale=run.config.sample.scale)
    return ((m + 1) / 2 < 0.5).float()


def _inpaint_inputs(run, image, mask, audio, span) -> tuple[torch.Tensor, torch.Tensor]:
    """(input (C, *spatial), known mask (1, *spatial)) from --image/--mask (image runs) or
    --audio/--span (audio runs); UserError for flags that do not fit the run."""
    if run.modality == "audio":
        if image is not None or mask is not None:
            raise UserError(f"run {run.path} is an audio model: give --audio WAV --span START:END instead of --image/--mask")
        if audio is None or span is None:
            raise UserError(f"missing {'--audio WAV' if audio is None else '--span START:END'}: the audio model "
                            f"{run.path} regenerates a time span (in seconds) of a clip, e.g. --audio in.wav --span 0.2:0.4")
        m = run.get_modality()
        known = m.span_mask(span, run.shape[-1])  # checked before the file is read
        return m.read(audio, run.shape), known
    if audio is not None or span is not None:
        raise UserError(f"--audio/--span need an audio model; run {run.path} is a model of {run.modality} data: "
                        "give --image IMG --mask MASK")
    if image is None or mask is None:
        raise UserError(f"missing {'--image IMG' if image is None else '--mask MASK'}: inpaint takes --image IMG --mask MASK "
                        "(white = regenerate, black = keep)")
    return _load(image, run), _load_mask(mask, run)


def _signal_input(run, image, audio) -> torch.Tensor:
    """The input (C, *spatial) from --image (image runs) or --audio (audio runs); UserError otherwise."""
    if run.modality == "audio":
        if image is not None or audio is None:
            raise UserError(f"run {run.path} is an audio model: give --audio WAV" + (" instead of --image" if image else ""))
        return run.get_modality().read(audio, run.shape)
    if audio is not None or image is None:
        raise UserError(f"run {run.path} is a model of {run.modality} data: give --image IMG"
                        + (" (--audio needs an audio model)" if audio else ""))
    return _load(image, run)


def _image_kind(run) -> str:
    c = run.conditioner("image_cond")
    return c.image if c is not None else ""


def _inpaint_method(info, method: str, valid) -> str:
    """--method of inpaint / predict / interpolate resolved for the run: 'repaint' or 'model' (UserError when it
    cannot run). A "mask" or "frames" run (MASK_CONDS: the condition [x0·keep, keep]) samples in one pass."""
    from ..tasks import MASK_CONDS

    if method not in valid:
        raise UserError(f"--method {method!r} is not a method; valid: {', '.join(valid)}")
    kind = _image_kind(info)
    if kind == "lowres":
        raise UserError(f"run {info.path} was trained for super-resolution ([cond] image = 'lowres'); inpaint needs a "
                        "plain or a mask-conditioned run (use `noisecraft upscale` with this one)")
    if method == "auto":
        return "model" if kind in MASK_CONDS else "repaint"
    if method == "model" and kind not in MASK_CONDS:
        raise UserError(f"--method model needs a run trained with [cond] image = 'mask' (or 'frames' for video); "
                        f"{info.path} has no image condition: use --method repaint (or auto)")
    if method == "repaint" and kind in MASK_CONDS:
        raise UserError(f"--method repaint needs a run without an image condition; {info.path} is {kind}-conditioned "
                        f"([cond] image = {kind!r}): use --method model (or auto)")
    return method


def _upscale_method(info, method: str | None, valid) -> str:
    """--method of upscale resolved for the run (UserError when it cannot run)."""
    kind = _image_kind(info)
    if method is None:
        method = "model" if kind == "lowres" else "projection"
    if method not in valid:
        raise UserError(f"--method {method!r} is not a method; valid: {', '.join(valid)}")
    if kind == "mask":
        raise UserError(f"run {info.path} was trained for inpainting ([cond] image = 'mask'); upscale needs a plain or a "
                        "low-res-conditioned run (use `noisecraft inpaint` with this one)")
    if method == "model" and kind != "lowres":
        raise UserError(f"--method model needs a run trained with [cond] image = 'lowres'; {info.path} has no image "
                        "condition: use --method projection, pigdm or dps")
    if method != "model" and kind == "lowres":
        raise UserError(f"--method {method} is zero-shot and needs a run without an image condition; {info.path} is "
                        "low-res-conditioned: use --method model (the default)")
    return method


def _setup(run_dir, n, class_, solver, nfe, guidance, seed, out, **kw):
    """(run, spec, values, out folder) shared by the commands."""
    from ..runs import Run

    run = Run.open(run_dir)
    values = condition_values(run, class_, (), n)
    spec = sampling_spec(run, n=n, solver=solver, nfe=nfe, guidance=guidance, seed=seed, **kw)
    return run, spec, values, check_out_folder(out)


def _conditioned(run, spec, values, n, weights):
    """(guided denoiser, conditioning) of the run's conditions other than the image the task builds."""
    from ..runs import conditioned

    conds = [c for c in run.conditioners if c.key != "image_cond"]  # the task provides image_cond itself
    return conditioned(run.denoiser(weights), conds, spec, values, n)


def _generators(spec, n):
    from ..sampling import seeded_generators

    return seeded_generators(range(spec.seed, spec.seed + n))


def _grid_row(n: int) -> int:
    return max(1, math.ceil(math.sqrt(n + 1)))


@click.command()
@_common
@click.option("--image", type=click.Path(), help="Input image file (PNG, JPEG, ...) of an image model.")
@click.option("--mask", type=click.Path(), help="PNG of the image's size: white = regenerate, black = keep.")
@click.option("--audio", type=click.Path(), help="Input clip (WAV, FLAC, OGG) of an audio model.")
@click.option("--span", help="Audio: the time span to regenerate, START:END in seconds (e.g. 0.2:0.4).")
@click.option("--method", default="auto", show_default=True,
              help="auto (model for a mask-conditioned run, else repaint) | repaint | model.")
@click.option("--guidance", type=float, help="Classifier-free guidance weight (default: the run's sample.guidance); a guidance-distilled student (distill --guidance-range) takes W as an input, one call per step, within its range.")
@click.option("--solver", help="repaint: ddpm (default), euler_ancestral, ddim_eta, ddim or euler; model: any (default: the run's).")
@click.option("--resample", type=int, help="RePaint resampling count U (1 = none)  [default: 5; repaint only]")
def inpaint_cmd(run_dir, out, n, class_, nfe, seed, weights, image, mask, audio, span, method, guidance, solver,
                resample) -> None:
    """Regenerate the white region of MASK in IMAGE (RePaint, or one pass of a mask-conditioned run),
    or the time span START:END of an audio clip (RePaint); the rest is kept exactly.

    Writes DIR/000000.png ... (audio: .wav at the run's rate) and DIR/grid.png (first tile: the input).
    """
    with user_errors():
        run = _inpaint_run(run_dir, out, n, class_, nfe, seed, weights, method, guidance, solver, resample,
                           lambda r: _inpaint_inputs(r, image, mask, audio, span))
    click.echo(f"wrote {n} inpainted {'clips' if run.modality == 'audio' else 'images'} and grid.png to {out}")


def _inpaint_run(run_dir, out, n, class_, nfe, seed, weights, method, guidance, solver, resample, inputs,
                 shown=None):
    """The body of inpaint, predict and interpolate: `inputs(run)` gives (input (C, *spatial), known mask
    (1, *spatial)); the results and grid.png (first tile: `shown(input)` or the input) go to OUT. Returns the run."""
    from ..runs import Run
    from ..runtime import num_threads
    from ..tasks import INPAINT_METHODS, INPAINT_SOLVERS, inpaint

    method = _inpaint_method(Run.open(run_dir), method, INPAINT_METHODS)
    repaint = method == "repaint"
    run, spec, values, outp = _setup(run_dir, n, class_, solver, nfe, guidance, seed, out,
                                     **(dict(solvers=INPAINT_SOLVERS, default_solver="ddpm") if repaint else {}))
    if resample is not None and not repaint:
        raise UserError(f"--resample {resample} applies to RePaint only; the {_image_kind(run)}-conditioned run {run_dir} "
                        "samples in one pass (drop --resample, or use --method repaint with a plain run)")
    resample = 5 if resample is None else resample
    if not 1 <= resample <= 100:
        raise UserError(f"--resample {resample} is out of range; valid: 1..100")
    img, known = inputs(run)
    with num_threads(run.config.train.threads):
        den, cond = _conditioned(run, spec, values, n, weights)
        task = inpaint
        if run.is_latent:  # RePaint on the latent grid, known pixels pasted back (latent.inpaint)
            from ..latent import latent_inpaint

            task = lambda d, *a, **kw: latent_inpaint(run.autoencoder, d, *a, **kw)  # noqa: E731
        x = task(den, img.expand(n, *img.shape).contiguous(), known, method=method, solver=spec.solver,
                 nfe=spec.nfe, sigma_min=spec.sigma_min, sigma_max=spec.sigma_max,
                 resample_steps=resample if repaint else None, generator=_generators(spec, n), **cond)
    write_samples(run, x, outp, nrow=_grid_row(n), first=img if shown is None else shown(img, known))
    return run


@click.command()
@_common
@click.option("--image", type=click.Path(), help="Input image file (PNG, JPEG, ...) of an image model.")
@click.option("--audio", type=click.Path(), help="Input clip (WAV, FLAC, OGG) of an audio model.")
@click.option("--strength", type=float, required=True, help="How much to change: 0 < S <= 1 (1 = from pure noise).")
@click.option("--guidance", type=float, help="Classifier-free guidance weight (default: the run's sample.guidance); a guidance-distilled student (distill --guidance-range) takes W as an input, one call per step, within its range.")
@click.option("--solver", help="Solver name (default: the run's sample.solver).")
def img2img_cmd(run_dir, out, n, class_, nfe, seed, weights, image, audio, strength, guidance, solver) -> None:
    """Re-generate IMAGE (or, for an audio model, the clip --audio) from a noise level set by --strength (SDEdit).

    Writes DIR/000000.png ... (audio: .wav) and DIR/grid.png (first tile: the input).
    """
    with user_errors():
        from ..runtime import num_threads
        from ..tasks import img2img

        if not (math.isfinite(strength) and 0 < strength <= 1):
            raise UserError(f"--strength {strength} is out of range; valid: 0 < S <= 1 (1 = start from pure noise)")
        run, spec, values, outp = _setup(run_dir, n, class_, solver, nfe, guidance, seed, out)
        img = _signal_input(run, image, audio)
        with num_threads(run.config.train.threads):
            den, cond = _conditioned(run, spec, values, n, weights)
            with torch.no_grad():  # a latent run: SDEdit of the encoded image, decoded (encode/decode: identity otherwise)
                x = img2img(den, run.encode(img.expand(n, *img.shape).contiguous()), strength, solver=spec.solver,
                            nfe=spec.nfe, sigma_min=spec.sigma_min, sigma_max=spec.sigma_max,
                            generator=_generators(spec, n), **cond)
                x = run.decode(x)
        write_samples(run, x, outp, nrow=_grid_row(n), first=img)
    click.echo(f"wrote {n} {'clips' if run.modality == 'audio' else 'images'} and grid.png to {out}")


@click.command()
@_common
@_IMAGE
@click.option("--method", help="model (default for a low-res-conditioned run) | projection (default otherwise) | pigdm | dps.")
@click.option("--sigma-y", "sigma_y", type=float, default=0.0, show_default=True, help="Noise std of the low-res image (projection, pigdm).")
@click.option("--solver", help="Solver name (default: ddpm).")
def upscale_cmd(run_dir, out, n, class_, nfe, seed, weights, image, method, sigma_y, solver) -> None:
    """Super-resolve LOWRES to the model's resolution: with a low-res-conditioned run (method model),
    or zero-shot with any other run (block means of each projection result equal LOWRES).

    The factor is the model's resolution / LOWRES's size and must be an integer >= 2 (a
    low-res-conditioned run: its lowres_factor). Writes DIR/000000.png ... and DIR/grid.png
    (first tile: LOWRES enlarged by pixel repetition).
    """
    with user_errors():
        from ..data.images import read_image
        from ..runs import Run
        from ..runtime import num_threads
        from ..tasks import SR_METHODS, super_resolve, upscale_factor

        run = Run.open(run_dir)
        if run.is_latent:
            raise UserError(f"run {run.path} is a latent diffusion model; upscale works in pixel space: use a pixel-space run")
        method = _upscale_method(run, method, SR_METHODS)
        if method == "model" and sigma_y != 0:
            raise UserError(f"--sigma-y {sigma_y} applies to the zero-shot methods only; a low-res-conditioned run "
                            "takes the low-res image as it is")
        if not (math.isfinite(sigma_y) and sigma_y >= 0):
            raise UserError(f"--sigma-y {sigma_y} is out of range; valid: a number >= 0")
        values = condition_values(run, class_, (), n)
        spec = sampling_spec(run, n=n, solver=solver, nfe=nfe, guidance=None, seed=seed, default_solver="ddpm")
        spec = spec.replace(guidance=1.0)  # the measurement steers; class labels condition without guidance
        outp = check_out_folder(out)
        low = read_image(image, _model_channels(run))  # any size: the factor is read off it
        h, w = low.shape[-2:]
        r = run.shape[-1]
        try:
            trained = run.conditioner("image_cond").lowres_factor if method == "model" else None
            factor = upscale_factor((h, w), r, trained)
        except ValueError as e:
            raise UserError(str(e)) from None
        with num_threads(run.config.train.threads):
            den, cond = _conditioned(run, spec, values, n, weights)
            zero_shot = {} if method == "model" else {"sigma_y": sigma_y, "sigma_data": run.config.process.sigma_data}
            x = super_resolve(den, low.expand(n, -1, -1, -1).contiguous(), factor, method=method, **zero_shot,
                              solver=spec.solver, nfe=spec.nfe, sigma_min=spec.sigma_min, sigma_max=spec.sigma_max,
                              generator=_generators(spec, n), **cond)
        first = low.repeat_interleave(factor, -2).repeat_interleave(factor, -1)
        write_samples(run, x.detach(), outp, nrow=_grid_row(n), first=first)
    click.echo(f"wrote {n} upscaled images ({w}x{h} -> {r}x{r}) and grid.png to {out}")


# ------------------------------------------------------------------------------------------------
# predict / interpolate: inpainting in time (whole frames known)


def _video_run_frames(run, command: str) -> int:
    """T of a video run, or a UserError saying the run is not one."""
    if run.modality != "video":
        other = "`noisecraft inpaint` with --audio" if run.modality == "audio" else "`noisecraft inpaint`"
        raise UserError(f"{command} needs a video run; {run.path} is a model of {run.modality} data with shape "
                        f"{run.shape} (use {other} for that)")
    return int(run.shape[1])


def _video_inputs(run, video: str, keep: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(clip (C, T, H, W), known mask (1, T, H, W)): `tasks.read_kept_frames` of the run's modality."""
    from ..tasks import read_kept_frames

    return read_kept_frames(run.get_modality(), video, run.shape, keep, scale=run.config.sample.scale)


_VIDEO_TASK = [
    click.option("--video", required=True, type=click.Path(), help="Input clip: GIF, MP4 (or another video file) or "
                 "a folder of frame images, read at the run's frame rate and frame size (or an integer multiple)."),
    click.option("--method", default="auto", show_default=True,
                 help="auto (model for a mask-conditioned run, else repaint) | repaint | model."),
    click.option("--guidance", type=float, help="Classifier-free guidance weight (default: the run's sample.guidance); a guidance-distilled student (distill --guidance-range) takes W as an input, one call per step, within its range."),
    click.option("--solver", help="repaint: ddpm (default), euler_ancestral, ddim_eta, ddim or euler; model: any."),
    click.option("--resample", type=int, help="RePaint resampling count U (1 = none)  [default: 5; repaint only]"),
]


def _video_task(fn):
    for deco in reversed(_VIDEO_TASK):
        fn = deco(fn)
    return _common(fn)


@click.command()
@_video_task
@click.option("--keep", "keep", type=int, required=True, help="K: the first K frames of the input are kept (1..T-1).")
def predict_cmd(run_dir, out, n, class_, nfe, seed, weights, video, method, guidance, solver, resample, keep) -> None:
    """Keep the first K frames of the input clip and generate the rest of a video run's T frames
    (inpainting in time); the kept frames are kept exactly. The input needs only K frames.

    Writes DIR/000000.gif (and .mp4) ... and DIR/grid.png (first strip: the input, generated frames gray).
    """
    with user_errors():
        from ..runs import Run

        t = _video_run_frames(Run.open(run_dir), "predict")
        if not 1 <= keep < t:
            raise UserError(f"--keep {keep} is out of range for a run of {t}-frame clips; valid: 1..{t - 1} "
                            "(keep the first K frames, generate the rest)")
        _inpaint_run(run_dir, out, n, class_, nfe, seed, weights, method, guidance, solver, resample,
                     lambda r: _video_inputs(r, video, tuple(range(keep))))
    click.echo(f"wrote {n} clips predicted from {keep} of {t} frames and grid.png to {out}")


@click.command()
@_video_task
@click.option("--keep", "keep", required=True, help="The input frames to keep, comma-separated (e.g. 0,15); the "
              "others are generated.")
def interpolate_cmd(run_dir, out, n, class_, nfe, seed, weights, video, method, guidance, solver, resample,
                    keep) -> None:
    """Keep the listed frames of the input clip and generate the frames between and around them
    (inpainting in time); the kept frames are kept exactly. The input needs frames up to the last kept one.

    Writes DIR/000000.gif (and .mp4) ... and DIR/grid.png (first strip: the input, generated frames gray).
    """
    with user_errors():
        from ..runs import Run
        from ..tasks import parse_keep_frames

        t = _video_run_frames(Run.open(run_dir), "interpolate")
        frames = parse_keep_frames(keep, t)
        _inpaint_run(run_dir, out, n, class_, nfe, seed, weights, method, guidance, solver, resample,
                     lambda r: _video_inputs(r, video, frames))
    click.echo(f"wrote {n} clips interpolated from frames {','.join(map(str, frames))} of {t} and grid.png to {out}")
