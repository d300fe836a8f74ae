"""A deterministic word-level tokenizer for small, closed-vocabulary captions (e.g. `shapes`).

Text is lowercased and split into runs of letters/digits and single punctuation marks:

    "Left: a RED circle!" -> ["left", ":", "a", "red", "circle", "!"]

Every encoded prompt is [bos] + words + [eos], padded with [pad] to a fixed `max_length`, so a
batch of conditional and empty prompts always has one shape. Words outside the vocabulary become
[unk]. Prompts longer than max_length - 2 words are cut (keeping bos and eos) with a warning.

The vocabulary is built from a corpus: special tokens first (ids 0-3), then words by descending
count, ties broken alphabetically, so the same corpus always gives the same ids.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["WordTokenizer", "SPECIAL_TOKENS", "split_words"]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)  # ids 0, 1, 2, 3
_FORMAT = "noisecraft-word-tokenizer"
_TOKEN = re.compile(r"\w+|[^\w\s]")


def split_words(text: str) -> list[str]:
    """Lowercase `text` and split it into words (runs of letters/digits/_) and punctuation marks."""
    return _TOKEN.findall(text.lower())


class WordTokenizer:
    """Word-level tokenizer: `encode(prompts, max_length) -> (ids (B, L) long, mask (B, L) bool)`."""

    def __init__(self, vocab: Sequence[str]) -> None:
        vocab = list(vocab)
        if tuple(vocab[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"a vocabulary must start with the special tokens {list(SPECIAL_TOKENS)}, got {vocab[:4]}")
        if len(set(vocab)) != len(vocab):
            dupes = sorted(w for w, k in Counter(vocab).items() if k > 1)
            raise ValueError(f"the vocabulary has duplicate tokens: {dupes[:10]}")
        bad = [w for w in vocab[len(SPECIAL_TOKENS):] if split_words(w) != [w]]
        if bad:
            raise ValueError(f"vocabulary entries must be single lowercase words or punctuation marks, got {bad[:10]}")
        self.vocab = vocab
        self.index = {w: i for i, w in enumerate(vocab)}

    pad_id, unk_id, bos_id, eos_id = range(4)

    @classmethod
    def from_corpus(cls, texts: Iterable[str], *, min_count: int = 1, max_size: int | None = None) -> "WordTokenizer":
        """Vocabulary of every word seen at least `min_count` times (at most `max_size` tokens in all)."""
        counts = Counter(w for t in texts for w in split_words(t))
        words = sorted((w for w, k in counts.items() if k >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            if max_size < len(SPECIAL_TOKENS) + 1:
                raise ValueError(f"max_size must leave room for the {len(SPECIAL_TOKENS)} special tokens and a word, got {max_size}")
            words = words[: max_size - len(SPECIAL_TOKENS)]
        return cls([*SPECIAL_TOKENS, *words])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[int]:
        """Word ids of `text`, without bos/eos or padding."""
        return [self.index.get(w, self.unk_id) for w in split_words(text)]

    def encode(self, prompts: Sequence[str], max_length: int) -> tuple[Tensor, Tensor]:
        """Token ids (B, max_length) long and mask (B, max_length) bool (True = real token).

        Each row is [bos] w1 .. wn [eos] [pad]...; a prompt with more than max_length - 2 words is
        truncated to its first max_length - 2 words, with a warning naming it.
        """
        if isinstance(prompts, str):
            raise TypeError("encode takes a list of prompts, got a single string; wrap it in a list")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
            raise ValueError(f"max_length must be an integer >= 2 (room for bos and eos), got {max_length!r}")
        ids = torch.full((len(prompts), max_length), self.pad_id, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"prompt {row} must be a string, got {type(prompt).__name__}")
            words = self.tokenize(prompt)
            if len(words) > max_length - 2:
                warnings.warn(
                    f"prompt {prompt!r} has {len(words)} tokens, more than max_length={max_length} allows "
                    f"({max_length - 2} plus bos/eos); it was truncated to its first {max_length - 2} tokens",
                    stacklevel=2,
                )
                words = words[: max_length - 2]
            seq = [self.bos_id, *words, self.eos_id]
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return ids, ids != self.pad_id

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """Words of one id sequence joined by spaces; special tokens other than unk are dropped."""
        seq = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        return " ".join(self.vocab[i] for i in seq if i not in (self.pad_id, self.bos_id, self.eos_id))

    # --- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": 1, "lowercase": True, "vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, data: dict) -> "WordTokenizer":
        if data.get("format") != _FORMAT:
            raise ValueError(f"not a noisecraft word tokenizer (format {data.get('format')!r}, expected {_FORMAT!r})")
        if data.get("version") != 1:
            raise ValueError(f"unsupported tokenizer version {data.get('version')!r}; this noisecraft reads version 1")
        return cls(data["vocab"])

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "WordTokenizer":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer file at {str(path)!r}")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordTokenizer) and self.vocab == other.vocab

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size})"
