"""A fitted feature classifier on disk: `extractor.json` (format, kind, net config, class names,
fingerprint, fit info) next to `weights.safetensors`. The audio and motion classifiers are cached
and saved this way; loading checks the format and kind, the cache key, the tensors against the
net's, and the weights against the recorded fingerprint, and turns any defect into one EvalError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from safetensors.torch import save as st_save
from torch import nn

from ..io.files import atomic_write_bytes, atomic_write_text
from ..io_safety import check_tensors_match, read_safetensors
from .features import EvalError, FeatureExtractor

__all__ = ["save_classifier_folder", "load_classifier_folder"]

# Run-time entries of `FeatureExtractor.info` that are not part of what was fitted.
_TRANSIENT_INFO = ("kind", "feature_dim", "from_cache")


def save_classifier_folder(folder: Path, extractor: FeatureExtractor, *, fmt: str, kind: str, config: dict,
                           drop_info: tuple[str, ...] = ()) -> Path:
    """Write `extractor` (whose `module` is the classifier net) to `folder`, atomically file by file."""
    net = extractor.module
    folder.mkdir(parents=True, exist_ok=True)
    info = {k: v for k, v in extractor.info.items() if k not in _TRANSIENT_INFO + drop_info}
    meta = {"format": fmt, "kind": kind, "config": config, "class_names": extractor.class_names,
            "fingerprint": extractor.fingerprint, **info}
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(folder / "weights.safetensors", st_save(state, metadata={"format": fmt}))
    atomic_write_text(folder / "extractor.json", json.dumps(meta, indent=2) + "\n")
    return folder


def load_classifier_folder(
    folder: Path,
    *,
    fmt: str,
    kind: str,
    what: str,
    build_net: Callable[[dict], nn.Module],
    make_extractor: Callable[[nn.Module, list[str], dict[str, Any]], FeatureExtractor],
    key: str | None = None,
) -> FeatureExtractor:
    """The extractor saved in `folder`; `what` names it in the one-line EvalError ("audio feature extractor")."""
    try:
        meta = json.loads((folder / "extractor.json").read_text(encoding="utf-8"))
        if meta.get("format") != fmt or meta.get("kind") != kind:
            raise ValueError(f"format {meta.get('format')!r} / kind {meta.get('kind')!r} is not {fmt!r} / {kind!r}")
        if key is not None and meta.get("key") != key:
            raise ValueError("its cache key does not match")
        net = build_net(meta["config"])
        weights = folder / "weights.safetensors"
        state = read_safetensors(weights)[0]  # validated header, offsets, finiteness
        check_tensors_match(net.state_dict(), state, source=weights)
        net.load_state_dict(state)
        info = {k: v for k, v in meta.items() if k not in ("format", "kind", "config", "class_names", "fingerprint")}
        ext = make_extractor(net, list(meta["class_names"]), info)
        if ext.fingerprint != meta.get("fingerprint"):
            raise ValueError("its weights do not match the recorded fingerprint")
    except Exception as e:  # noqa: BLE001 - any defect of the folder is one user error
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise EvalError(f"{what} {str(folder)!r} cannot be loaded ({msg})") from None
    return ext
