"""`noisecraft inpaint | img2img | upscale`: the inference tasks of `noisecraft.tasks` on image files.

    noisecraft inpaint RUN_DIR --image IMG --mask MASK [--method auto|repaint|model] [--n N] [--class C] [--guidance W] [--solver S] [--nfe K] [--resample U] [--seed S] --out DIR
    noisecraft img2img RUN_DIR --image IMG --strength 0.6 [--n N] [--class C] [--guidance W] [--solver S] [--nfe K] [--seed S] --out DIR
    noisecraft upscale RUN_DIR --image LOWRES [--method model|projection|pigdm|dps] [--sigma-y 0] [--n N] [--class C] [--solver S] [--nfe K] [--seed S] --out DIR

Images are decoded as the training data is (`noisecraft.data.images.read_image`), converted to the
model's channel count (RGB <-> gray) and mapped to [-1, 1]; they are never resized: the image (and
mask) of inpaint/img2img must have the model's resolution, and upscale's low-res image times an
integer factor >= 2 must. MASK is a PNG where white (>= 50% gray) marks the region to regenerate
and black the known pixels. Sample i uses seed + i; DIR gets 000000.png ... and grid.png, whose
first tile is the input image (upscale: the low-res input enlarged by pixel repetition).

A run trained with `[cond] image = "mask"` inpaints in one sampler pass (method "model"), one
trained with `[cond] image = "lowres"` upscales by its lowres_factor (method "model"); other runs
use RePaint and the zero-shot inverse-problem methods.
"""

from __future__ import annotations

import math
from pathlib import Path

import click
import torch

from .main import UserError, _user_errors, check_out_folder, check_sampling_options, class_labels

_COMMON = [
    click.argument("run_dir", type=click.Path()),
    click.option("--image", required=True, type=click.Path(), help="Input image file (PNG, JPEG, ...)."),
    click.option("--out", type=click.Path(file_okay=False), required=True, help="Folder for the PNGs and grid.png."),
    click.option("--n", "n", type=int, default=1, show_default=True, help="Number of results."),
    click.option("--class", "class_", help="Class index or name (conditional models). Default: classes in turn."),
    click.option("--nfe", type=int, help="Solver steps (default: the run's sample.nfe)."),
    click.option("--seed", type=int, default=0, show_default=True, help="Result i uses seed + i."),
    click.option("--weights", default="ema", show_default=True, help="raw | ema | best | phema-<std>, as for `sample`."),
]


def _common(fn):
    for deco in reversed(_COMMON):
        fn = deco(fn)
    return fn


def _model_channels(info) -> int:
    if info.channels not in (1, 3):
        raise UserError(f"the model has {info.channels} channels; only 1 (gray) or 3 (RGB) models take image files")
    return info.channels


def _load(path: str, info) -> torch.Tensor:
    """(C, H, W) in [-1, 1] with the model's channel count, any size."""
    from ..data.images import read_image

    return read_image(path, _model_channels(info))


def _check_size(x: torch.Tensor, info, what: str = "image") -> None:
    h, w = x.shape[-2:]
    r = info.resolution
    if (h, w) != (r, r):
        raise UserError(f"{what} is {w}x{h}, the model was trained at {r}x{r}; resize it to {r}x{r} first")


def _load_mask(path: str, image: torch.Tensor) -> torch.Tensor:
    """MASK PNG (white = regenerate, black = known) -> (1, H, W) float, 1 = known."""
    from ..data.images import read_image

    m = read_image(path, 1)
    if m.shape[-2:] != image.shape[-2:]:
        raise UserError(f"mask is {m.shape[-1]}x{m.shape[-2]} but the image is {image.shape[-1]}x{image.shape[-2]}; "
                        "they must be the same size")
    return ((m + 1) / 2 < 0.5).float()


def _inpaint_method(info, method: str, valid) -> str:
    """--method of inpaint resolved for the run: 'repaint' or 'model' (UserError when it cannot run)."""
    if method not in valid:
        raise UserError(f"--method {method!r} is not a method; valid: {', '.join(valid)}")
    kind = info.image_cond
    if kind == "lowres":
        raise UserError(f"run {info.path} was trained for super-resolution ([cond] image = 'lowres'); inpaint needs a "
                        "plain or a mask-conditioned run (use `noisecraft upscale` with this one)")
    if method == "auto":
        return "model" if kind == "mask" else "repaint"
    if method == "model" and kind != "mask":
        raise UserError(f"--method model needs a run trained with [cond] image = 'mask'; {info.path} has no image "
                        "condition: use --method repaint (or auto)")
    if method == "repaint" and kind == "mask":
        raise UserError(f"--method repaint needs a run without an image condition; {info.path} is mask-conditioned: "
                        "use --method model (or auto)")
    return method


def _upscale_method(info, method: str | None, valid) -> str:
    """--method of upscale resolved for the run (UserError when it cannot run)."""
    kind = info.image_cond
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


def _guided(den, info, labels, guidance):
    """(denoiser, conditioning) for labels (None = unconditional) with classifier-free guidance."""
    if labels is None:
        return den, {}
    from ..guidance.cfg import classifier_free_guidance

    return classifier_free_guidance(den, guidance, num_classes=info.num_classes), {"class_labels": labels}


def _onehot(info, labels, n: int):
    if labels is None:
        return None
    t = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    t = t.expand(n) if t.numel() == 1 else t
    return torch.nn.functional.one_hot(t, info.num_classes).float()


def _write(x: torch.Tensor, first: torch.Tensor, out: Path) -> None:
    """DIR/000000.png ... and grid.png with the input as its first tile."""
    from ..io import save_grid, save_image

    out.mkdir(parents=True, exist_ok=True)
    x = x.clamp(-1, 1)
    for i in range(x.shape[0]):
        save_image(x[i], out / f"{i:06d}.png")
    tiles = torch.cat([first.unsqueeze(0), x])
    save_grid(tiles, out / "grid.png", max(1, math.ceil(math.sqrt(tiles.shape[0]))))


def _setup(run_dir, image, n, class_, solver, nfe, guidance, seed, out, **kw):
    from ..train.run import read_run

    info = read_run(run_dir)
    solver, nfe, guidance, seed = check_sampling_options(info, n=n, solver=solver, nfe=nfe, guidance=guidance, seed=seed, **kw)
    labels = _onehot(info, class_labels(info, class_, n), n)
    outp = check_out_folder(out)
    img = _load(image, info)
    return info, solver, nfe, guidance, seed, labels, outp, img


@click.command()
@_common
@click.option("--mask", required=True, type=click.Path(), help="PNG of the image's size: white = regenerate, black = keep.")
@click.option("--method", default="auto", show_default=True,
              help="auto (model for a mask-conditioned run, else repaint) | repaint | model.")
@click.option("--guidance", type=float, help="Classifier-free guidance weight (default: the run's sample.guidance).")
@click.option("--solver", help="repaint: ddpm (default), euler_ancestral, ddim_eta, ddim or euler; model: any (default: the run's).")
@click.option("--resample", type=int, help="RePaint resampling count U (1 = none)  [default: 5; repaint only]")
def inpaint_cmd(run_dir, image, out, n, class_, nfe, seed, weights, mask, method, guidance, solver, resample) -> None:
    """Regenerate the white region of MASK in IMAGE (RePaint, or one pass of a mask-conditioned run);
    the black region is kept exactly.

    Writes DIR/000000.png ... and DIR/grid.png (first tile: the input image).
    """
    with _user_errors():
        from ..sampling import seeded_generators
        from ..tasks import INPAINT_METHODS, INPAINT_SOLVERS, inpaint
        from ..train.run import load_denoiser, num_threads, read_run

        method = _inpaint_method(read_run(run_dir), method, INPAINT_METHODS)
        repaint = method == "repaint"
        info, solver, nfe, guidance, seed, labels, outp, img = _setup(
            run_dir, image, n, class_, solver, nfe, guidance, seed, out,
            **(dict(solvers=INPAINT_SOLVERS, default_solver="ddpm") if repaint else {}))
        if resample is not None and not repaint:
            raise UserError(f"--resample {resample} applies to RePaint only; the mask-conditioned run {run_dir} inpaints "
                            "in one pass (drop --resample, or use --method repaint with a plain run)")
        resample = 5 if resample is None else resample
        if not 1 <= resample <= 100:
            raise UserError(f"--resample {resample} is out of range; valid: 1..100")
        _check_size(img, info)
        known = _load_mask(mask, img)
        sc = info.config.sample
        with num_threads(info.config.train.threads):
            den, _ = load_denoiser(run_dir, weights)
            den, cond = _guided(den, info, labels, guidance)
            x = inpaint(den, img.expand(n, -1, -1, -1).contiguous(), known, method=method, solver=solver, nfe=nfe,
                        sigma_min=sc.sigma_min, sigma_max=sc.sigma_max, resample_steps=resample if repaint else None,
                        generator=seeded_generators(range(seed, seed + n)), **cond)
        _write(x, img, outp)
    click.echo(f"wrote {n} inpainted images and grid.png to {out}")


@click.command()
@_common
@click.option("--strength", type=float, required=True, help="How much to change: 0 < S <= 1 (1 = from pure noise).")
@click.option("--guidance", type=float, help="Classifier-free guidance weight (default: the run's sample.guidance).")
@click.option("--solver", help="Solver name (default: the run's sample.solver).")
def img2img_cmd(run_dir, image, out, n, class_, nfe, seed, weights, strength, guidance, solver) -> None:
    """Re-generate IMAGE from a noise level set by --strength (SDEdit).

    Writes DIR/000000.png ... and DIR/grid.png (first tile: the input image).
    """
    with _user_errors():
        from ..sampling import seeded_generators
        from ..tasks import img2img
        from ..train.run import load_denoiser, num_threads

        if not (math.isfinite(strength) and 0 < strength <= 1):
            raise UserError(f"--strength {strength} is out of range; valid: 0 < S <= 1 (1 = start from pure noise)")
        info, solver, nfe, guidance, seed, labels, outp, img = _setup(
            run_dir, image, n, class_, solver, nfe, guidance, seed, out)
        _check_size(img, info)
        sc = info.config.sample
        with num_threads(info.config.train.threads):
            den, _ = load_denoiser(run_dir, weights)
            den, cond = _guided(den, info, labels, guidance)
            with torch.no_grad():
                x = img2img(den, img.expand(n, -1, -1, -1).contiguous(), strength, solver=solver, nfe=nfe,
                            sigma_min=sc.sigma_min, sigma_max=sc.sigma_max,
                            generator=seeded_generators(range(seed, seed + n)), **cond)
        _write(x, img, outp)
    click.echo(f"wrote {n} images and grid.png to {out}")


@click.command()
@_common
@click.option("--method", help="model (default for a low-res-conditioned run) | projection (default otherwise) | pigdm | dps.")
@click.option("--sigma-y", "sigma_y", type=float, default=0.0, show_default=True, help="Noise std of the low-res image (projection, pigdm).")
@click.option("--solver", help="Solver name (default: ddpm).")
def upscale_cmd(run_dir, image, out, n, class_, nfe, seed, weights, method, sigma_y, solver) -> None:
    """Super-resolve LOWRES to the model's resolution: with a low-res-conditioned run (method model),
    or zero-shot with any other run (block means of each projection result equal LOWRES).

    The factor is the model's resolution / LOWRES's size and must be an integer >= 2 (a
    low-res-conditioned run: its lowres_factor). Writes DIR/000000.png ... and DIR/grid.png
    (first tile: LOWRES enlarged by pixel repetition).
    """
    with _user_errors():
        from ..sampling import seeded_generators
        from ..tasks import SR_METHODS, super_resolve
        from ..train.run import load_denoiser, num_threads, read_run

        method = _upscale_method(read_run(run_dir), method, SR_METHODS)
        if method == "model" and sigma_y != 0:
            raise UserError(f"--sigma-y {sigma_y} applies to the zero-shot methods only; a low-res-conditioned run "
                            "takes the low-res image as it is")
        if not (math.isfinite(sigma_y) and sigma_y >= 0):
            raise UserError(f"--sigma-y {sigma_y} is out of range; valid: a number >= 0")
        info, solver, nfe, _, seed, labels, outp, low = _setup(
            run_dir, image, n, class_, solver, nfe, None, seed, out, default_solver="ddpm")
        h, w = low.shape[-2:]
        r = info.resolution
        if h != w or r % h or r // h < 2:
            raise UserError(f"image is {w}x{h}; the model was trained at {r}x{r}, so the low-res image must be square "
                            f"with a side that divides {r} at least twice (e.g. {r // 2}x{r // 2})")
        factor = r // h
        if method == "model" and factor != info.config.cond.lowres_factor:
            f = info.config.cond.lowres_factor
            raise UserError(f"image is {w}x{h}, but the low-res run {run_dir} upscales by its lowres_factor {f}: give a "
                            f"{r // f}x{r // f} image (or a zero-shot --method with a plain run)")
        sc = info.config.sample
        cond = {} if labels is None else {"class_labels": labels}
        with num_threads(info.config.train.threads):
            den, _ = load_denoiser(run_dir, weights)
            zero_shot = {} if method == "model" else {"sigma_y": sigma_y, "sigma_data": info.config.process.sigma_data}
            x = super_resolve(den, low.expand(n, -1, -1, -1).contiguous(), factor, method=method, **zero_shot, solver=solver, nfe=nfe,
                              sigma_min=sc.sigma_min, sigma_max=sc.sigma_max,
                              generator=seeded_generators(range(seed, seed + n)), **cond)
        _write(x.detach(), low.repeat_interleave(factor, -2).repeat_interleave(factor, -1), outp)
    click.echo(f"wrote {n} upscaled images ({w}x{h} -> {r}x{r}) and grid.png to {out}")
