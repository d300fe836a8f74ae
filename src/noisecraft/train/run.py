"""Run folders: what a training run writes, and how to turn one back into a denoiser and images.

    RUN_DIR/
        run.json            marker + what is needed to rebuild the model (net config, classes, shape)
        config.json         the resolved training config
        checkpoints/        see noisecraft.train.checkpoint
        phema/              post-hoc EMA snapshots (snap-*.safetensors) and reconstructions (phema-*.safetensors)
        samples/            sample grids written during training
        metrics.jsonl       one JSON line per log interval: step, samples, loss, lr, samples/s, grad norm
        eval.jsonl          one JSON line per evaluation ([eval] every > 0): step, samples, metrics
        best/               ema.safetensors + best.json: the EMA weights of the best evaluation (eval.keep_best)
        loss.png            the loss curve
        tb/                 TensorBoard event files

`load_denoiser(run_dir, weights="ema")` rebuilds the preconditioned network from a run;
`generate(denoiser, n, ...)` draws images with per-sample seeds (seed + i), optional class labels
and classifier-free guidance.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from safetensors.torch import save as st_save
from torch import Tensor, nn

from ..core import Precond, get_process
from ..io_safety import WeightFileError, check_tensors_match, read_safetensors
from ..runtime import num_threads  # noqa: F401  (re-exported: CLI and eval import it from here)
from .checkpoint import CheckpointError, atomic_write_bytes, latest_checkpoint, load_checkpoint
from .config import Config, config_from_dict

__all__ = [
    "RunError",
    "RunInfo",
    "RUN_FORMAT",
    "is_run",
    "read_run",
    "build_denoiser",
    "load_denoiser",
    "weight_choices",
    "resolve_class",
    "generate",
    "sample_to_images",
    "list_snapshots",
    "num_threads",
]

RUN_FORMAT = "noisecraft-run/1"
MIN_PHEMA_STD = 0.001  # smallest post-hoc EMA std accepted (file names keep 3 decimals)
_PHEMA_FILE = re.compile(r"^phema-(\d+\.\d+)\.safetensors$")
_SNAP_FILE = re.compile(r"^snap-(\d{12})-(\d+\.\d+)\.safetensors$")


class RunError(ValueError):
    """A user error about a run folder: not a run, no weights yet, unknown weights or class. One line."""


@dataclass
class RunInfo:
    """What run.json records: enough to rebuild the network and label its outputs."""

    path: Path
    config: Config
    net: dict  # net.config of noisecraft.nets (JSON)
    channels: int
    resolution: int
    class_names: list[str]
    text: dict | None = None  # the text conditioner's config (text-to-image runs), else None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def conditional(self) -> bool:
        return self.config.data.conditional and self.num_classes > 0

    @property
    def image_cond(self) -> str:
        """The image condition the model was trained with: "" (none), "mask" or "lowres" ([cond] image)."""
        return self.config.cond.image

    def require_no_image_cond(self, command: str) -> None:
        """RunError for commands that sample without a condition image (sample, eval) on a mask/low-res model."""
        if self.image_cond:
            use = "noisecraft inpaint RUN --image ... --mask ..." if self.image_cond == "mask" else "noisecraft upscale RUN --image ..."
            raise RunError(f"run {str(self.path)!r} is a {self.image_cond}-conditioned model ([cond] image = "
                           f"{self.image_cond!r}): it needs a condition image, so `{command}` cannot draw from it; use `{use}`")




def is_run(path: str | Path) -> bool:
    p = Path(path) / "run.json"
    if not p.is_file():
        return False
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        return isinstance(doc, dict) and doc.get("format") == RUN_FORMAT
    except (ValueError, OSError, RecursionError):
        return False


def read_run(run_dir: str | Path) -> RunInfo:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run folder {str(run_dir)!r} does not exist")
    if not is_run(run_dir):
        raise RunError(f"{str(run_dir)!r} is not a noisecraft run (no valid run.json); give a folder written by `noisecraft train`")
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        cfg = config_from_dict(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
        text = meta.get("text")
        if text is not None and not isinstance(text, dict):
            raise TypeError(f"'text' must be a table, got {type(text).__name__}")
        return RunInfo(run_dir, cfg, dict(meta["net"]), int(meta["channels"]), int(meta["resolution"]),
                       list(meta["class_names"]), text)
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as e:
        raise RunError(f"run {str(run_dir)!r} has an unreadable run.json/config.json: {e}".splitlines()[0]) from None


def build_denoiser(net: nn.Module, config: Config) -> Precond:
    """Wrap a network in the preconditioning the config names, tagged with the image condition
    it needs (`image_cond`: "", "mask" or "lowres", and `lowres_factor`; see tasks.image_cond_of)."""
    p, c = config.process, config.cond
    den = Precond(net, p.prediction, get_process(p.name, **p.options), p.sigma_data)
    den.image_cond, den.lowres_factor = c.image, (c.lowres_factor if c.image == "lowres" else 0)
    return den


def list_snapshots(run_dir: str | Path) -> list[tuple[int, float, Path]]:
    """Post-hoc EMA snapshots (samples seen, std, file), oldest first."""
    folder = Path(run_dir) / "phema"
    out = []
    if folder.is_dir():
        for p in folder.iterdir():
            m = _SNAP_FILE.match(p.name)
            if m:
                out.append((int(m.group(1)), float(m.group(2)), p))
    return sorted(out)


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors, metadata), validated by noisecraft.io_safety; any defect is a one-line RunError."""
    try:
        return read_safetensors(path)
    except WeightFileError as e:
        raise RunError(str(e)) from None


def _load_checked(net: nn.Module, params: Any, source: str | Path, *, strict: bool = True) -> None:
    """load_state_dict after checking names, shapes and dtypes (load_state_dict would cast dtypes)."""
    try:
        check_tensors_match(net.state_dict(), params, source=source, strict=strict)
    except WeightFileError as e:
        raise RunError(str(e)) from None
    net.load_state_dict(params, strict=strict)


def phema_path(run_dir: str | Path, std: float) -> Path:
    return Path(run_dir) / "phema" / f"phema-{std:.3f}.safetensors"


def reconstruct_phema(run_dir: str | Path, std: float, *, write: bool = True) -> tuple[dict[str, Tensor], Path | None]:
    """EMA weights of relative std `std` at the end of the run, from the post-hoc snapshots."""
    from .phema import MAX_STD, reconstruct

    if not MIN_PHEMA_STD <= std < MAX_STD:  # below ~1e-200 the EDM2 exponent overflows; 0.001 is still "no averaging"
        raise RunError(f"--std {std} is out of range; valid: 0 < std < {MAX_STD} with std >= {MIN_PHEMA_STD}")
    snaps = list_snapshots(run_dir)
    if not snaps:
        raise RunError(f"run {str(run_dir)!r} has no post-hoc EMA snapshots (ema.phema_every = 0, or no snapshot saved yet)")
    loaded = [(float(t), s, _read_safetensors(p)[0]) for t, s, p in snaps]
    for (_, _, w), (_, _, p) in zip(loaded[1:], snaps[1:]):  # every snapshot must hold the same tensors as the first
        try:
            check_tensors_match(loaded[0][2], w, source=p)
        except WeightFileError as e:
            raise RunError(f"{e} (compared with {snaps[0][2].name})") from None
    weights = reconstruct(loaded, std)
    out = None
    if write:
        out = phema_path(run_dir, std)
        meta = {"std": f"{std}", "samples_seen": f"{max(t for t, _, _ in snaps)}", "snapshots": f"{len(snaps)}"}
        atomic_write_bytes(out, st_save({k: v.contiguous() for k, v in weights.items()}, metadata=meta))
    return weights, out


def best_path(run_dir: str | Path) -> Path:
    """The EMA weights of the best evaluation during training (eval.keep_best)."""
    return Path(run_dir) / "best" / "ema.safetensors"


def weight_choices(run_dir: str | Path) -> list[str]:
    """Valid `weights=` values for this run."""
    choices = ["raw", "ema"]
    if best_path(run_dir).is_file():
        choices.append("best")
    if list_snapshots(run_dir):
        choices.append("phema-<std>")
    return choices


def _sub(state: dict, prefix: str) -> dict[str, Tensor]:
    node = state
    for part in prefix.split("/"):
        node = node[part]
    return node


def load_denoiser(run_dir: str | Path, weights: str = "ema", *, build_net: Callable[[dict], nn.Module] | None = None,
                  device: str | torch.device = "cpu") -> tuple[Precond, RunInfo]:
    """(denoiser in eval mode, run info) from the newest complete checkpoint of a run.

    weights: "raw" (the trained weights), "ema" (classic EMA), "best" (the EMA weights of the best
    evaluation during training, RUN_DIR/best/, written with eval.keep_best), or "phema-<std>"
    (post-hoc EMA reconstructed for relative std <std>; uses phema/phema-<std>.safetensors if
    `noisecraft ema` wrote it, otherwise reconstructs it from the snapshots in memory).
    device: "cpu", "cuda", "cuda:N" or "auto"; the weights are read on the CPU, then moved.
    """
    from ..runtime import resolve_device

    dev = resolve_device(device)
    info = read_run(run_dir)
    if build_net is None:
        from ..nets import build_net_from_config as build_net
    if info.text is not None:  # text-to-image: the net plus its text conditioner (train/text_cond.py)
        from .text_cond import text_net_builder

        build_net = text_net_builder(info.text, build_net, device=dev)
    if weights == "best":
        path = best_path(run_dir)
        if not path.is_file():
            raise RunError(f"weights 'best' is not available: run {str(run_dir)!r} has no best/ weights (train with "
                           f"eval.every > 0 and eval.keep_best set); valid: {', '.join(weight_choices(run_dir))}")
        params = _read_safetensors(path)[0]  # validated: header, offsets, NaN/Inf
        try:
            net = build_net(info.net)
            _load_checked(net, params, path)
        except RunError:
            raise
        except Exception as e:  # noqa: BLE001 - a torn or foreign file
            raise RunError(f"best weights {path} cannot be loaded: {e}".splitlines()[0]) from None
        net.eval().requires_grad_(False).to(dev)
        return build_denoiser(net, info.config).eval(), info
    ckpt = latest_checkpoint(Path(run_dir) / "checkpoints")
    if ckpt is None:
        raise RunError(f"run {str(run_dir)!r} has no complete checkpoint yet; train it first (or resume it with `noisecraft train --resume`)")
    try:
        _, state = load_checkpoint(ckpt)
    except CheckpointError as e:
        raise RunError(str(e)) from None
    net = build_net(info.net)
    where = ckpt / "state.safetensors"
    try:
        model_state, ema_state = state["model"], state["ema"]["module"]
    except (KeyError, TypeError):
        raise RunError(f"checkpoint {ckpt} is corrupt: it lacks the model or EMA weights") from None
    _load_checked(net, model_state, f"{where} [model]")  # raw weights (and buffers) first
    if weights == "ema":
        _load_checked(net, ema_state, f"{where} [ema]")
    elif weights.startswith("phema-"):
        try:
            std = float(weights[len("phema-"):])
        except ValueError:
            raise RunError(f"weights {weights!r} is not valid; valid: {', '.join(weight_choices(run_dir))}") from None
        path = phema_path(run_dir, std)
        params = _read_safetensors(path)[0] if path.is_file() else reconstruct_phema(run_dir, std, write=False)[0]
        missing = set(dict(net.named_parameters())) - set(params)
        if missing:
            raise RunError(f"post-hoc EMA weights for std {std} do not match the network (missing {sorted(missing)[0]!r})")
        _load_checked(net, params, path if path.is_file() else f"post-hoc EMA snapshots of {run_dir}", strict=False)
    elif weights != "raw":
        raise RunError(f"weights {weights!r} is not valid; valid: {', '.join(weight_choices(run_dir))}")
    net.eval().requires_grad_(False).to(dev)
    return build_denoiser(net, info.config).eval(), info


def resolve_class(info: RunInfo, value: str | int) -> int:
    """Class index from an index or a class name; RunError naming the valid classes otherwise."""
    if not info.conditional:
        raise RunError(f"--class {value} was given but the run {str(info.path)!r} trained an unconditional model (no classes)")
    names = info.class_names
    text = str(value)
    if text.lstrip("-").isdigit():
        idx = int(text)
        if 0 <= idx < len(names):
            return idx
    if text in names:
        return names.index(text)
    shown = ", ".join(names) if len(names) <= 20 else f"{', '.join(names[:20])}, ..."
    raise RunError(f"--class {value} is not a class of this model; valid: 0..{len(names) - 1} or a class name ({shown})")


def generate(
    denoiser: Callable[..., Tensor],
    n: int,
    shape: Sequence[int],
    *,
    seed: int = 0,
    class_labels: Tensor | Sequence[int] | int | None = None,
    num_classes: int = 0,
    guidance: float = 1.0,
    solver: str = "heun",
    nfe: int = 35,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    batch_size: int = 250,
    callback: Callable[[dict], None] | None = None,
    device: str | torch.device | None = None,
    prompts: str | Sequence[str] | None = None,
    text_conditioner: Any = None,
    image_cond: Tensor | None = None,
) -> Tensor:
    """n images (n, *shape) in σ-space units (data range), sample i drawn from seed + i.

    image_cond: (n, cond_channels, H, W) for a model trained with [cond] image (sample i reads row i;
    build it with noisecraft.tasks.mask_condition / lowres_condition).

    device: where the noise and labels go (None: the denoiser's parameters' device); the result
    comes back on the CPU. Noise is drawn on the CPU, so a seed gives the same start on any device.

    class_labels: one class for all, one per sample, or None (unconditional). With labels,
    guidance ≠ 1 applies classifier-free guidance against all-zero label rows.

    prompts: for a text-conditioned model, one prompt for all samples or one per sample; guidance
    ≠ 1 applies classifier-free guidance against the empty prompt's encoding (`encode_empty`).
    text_conditioner: the `TextConditioner` to encode them with (default: the one `load_denoiser`
    attached to a text run's denoiser).
    """
    from ..guidance.cfg import classifier_free_guidance
    from ..sampling import sample, seeded_generators

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    labels = None
    if class_labels is not None:
        if num_classes < 1:
            raise ValueError("class labels need num_classes >= 1")
        labels = torch.as_tensor(class_labels, dtype=torch.long).reshape(-1)
        if labels.numel() == 1:
            labels = labels.expand(n)
        if labels.numel() != n:
            raise ValueError(f"got {labels.numel()} class labels for {n} samples")
        if bool((labels < 0).any() or (labels >= num_classes).any()):
            raise ValueError(f"class labels must be in 0..{num_classes - 1}, got {labels.tolist()}")
    text, prompt_list = None, None
    if prompts is not None:
        text, prompt_list = _check_prompts(denoiser, prompts, n, labels, text_conditioner)
    if image_cond is not None and (not isinstance(image_cond, Tensor) or image_cond.ndim < 2 or image_cond.shape[0] != n):
        raise ValueError(f"image_cond must be a tensor (n, cond_channels, H, W) with n = {n} rows, "
                         f"got {getattr(image_cond, 'shape', type(image_cond).__name__)}")
    den = denoiser if labels is None else classifier_free_guidance(denoiser, guidance, num_classes=num_classes)
    if device is None:  # the denoiser's own device; noise is drawn on the CPU so a seed means the same on any device
        params = getattr(denoiser, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        device = first.device if first is not None else torch.device("cpu")
    out = []
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        gens = seeded_generators(range(seed + start, seed + stop))
        noise = torch.stack([torch.randn(tuple(shape), generator=g) for g in gens]).to(device)  # (b, *shape)
        cond: dict[str, Any] = {}
        if labels is not None:
            cond["class_labels"] = torch.nn.functional.one_hot(labels[start:stop], num_classes).float().to(device)
        if text is not None:
            den, cond = _prompt_conditioning(denoiser, text, prompt_list[start:stop], guidance, device)
        if image_cond is not None:
            cond["image_cond"] = image_cond[start:stop].to(device)
        with torch.no_grad():
            out.append(sample(den, noise, solver=solver, nfe=nfe, sigma_min=sigma_min, sigma_max=sigma_max,
                              generator=gens, callback=callback, **cond).cpu())
    return torch.cat(out)


def _check_prompts(denoiser, prompts, n: int, labels, text_conditioner) -> tuple[Any, list[str]]:
    from .text_cond import find_text_conditioner

    if labels is not None:
        raise ValueError("give class labels or prompts, not both: a text-conditioned model takes prompts only")
    text = text_conditioner if text_conditioner is not None else find_text_conditioner(denoiser)
    if text is None:
        raise ValueError("prompts need a text-conditioned model; this denoiser has no text conditioner "
                         "(train with [text] encoder = 'small' or 'hf', or pass text_conditioner=)")
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    bad = [p for p in prompt_list if not isinstance(p, str)]
    if bad:
        raise TypeError(f"prompts must be strings, got {type(bad[0]).__name__} {bad[0]!r}")
    if len(prompt_list) == 1:
        prompt_list = prompt_list * n
    if len(prompt_list) != n:
        raise ValueError(f"got {len(prompt_list)} prompts for {n} samples; give one prompt for all or one per sample")
    return text, prompt_list


def _prompt_conditioning(denoiser, text, prompts: list[str], guidance: float, device) -> tuple[Callable[..., Tensor], dict]:
    """(guided denoiser, cond) for one batch of prompts: CFG against the empty prompt's encoding."""
    from ..guidance.cfg import cfg

    with torch.no_grad():
        context, mask = text.encode(prompts)
        cond = {"context": context.to(device), "context_mask": mask.to(device)}
        if guidance == 1.0:
            return denoiser, cond
        null, null_mask = text.encode_empty(len(prompts))
    null, null_mask = null.to(device), null_mask.to(device)
    return cfg(denoiser, guidance, uncond=lambda c: {**c, "context": null, "context_mask": null_mask}), cond


def sample_to_images(x: Tensor) -> Tensor:
    """Clamp samples to the data range [-1, 1] for saving."""
    return x.clamp(-1.0, 1.0)
