"""Reading weight files that may come from anyone: no code runs, and every defect is one typed error.

Every place in noisecraft that reads weights goes through this module:

* `read_safetensors(path)` / `load_safetensors_bytes(data, name=...)`: validate the header ourselves,
  then let safetensors decode it, then refuse NaN/Inf. The checks, in order, for a file of S bytes
  (format: https://github.com/huggingface/safetensors#format):
    - S >= 8, and the file is not a pickle or a zip archive (`torch.save`) under another name;
    - the 8-byte little-endian header length N satisfies 2 <= N <= S - 8 and N <= 100 MB;
    - the header is UTF-8 JSON, an object, no key twice; `__metadata__` (optional) maps str -> str;
    - every tensor entry has exactly dtype / shape / data_offsets, a known dtype, a shape of
      integers >= 0 and offsets [begin, end] with 0 <= begin <= end and end - begin = prod(shape)·itemsize;
    - sorted by offset, the tensors tile the data section exactly: no overlap, no gap, nothing
      past its end (a truncated file), nothing after the last tensor.
* `read_weights(path)`: a state dict from a safetensors file or, for other files, from
  `torch.load(weights_only=True)` (torch >= 2.6), whose restricted unpickler refuses any pickle that
  would import or call code. Used only where a format we do not control (.pth) is accepted.
* `check_tensors_match(expected, got, what=...)`: names, shapes and dtypes of loaded tensors
  against a live model before `load_state_dict` (which would silently cast dtypes).
* `read_npz_array(path, key, shape=...)`: one float array of an NPZ data file (not weights, but the
  same rule: nothing is unpickled). The member's .npy header (dtype, shape) is checked before its
  data is read, and the data is read with `allow_pickle=False`; defects raise `DataError`.
* `read_npz_numbers(path, max_elements=...)`: every array of a small NPZ file of plain numbers
  (ints, floats; e.g. the observation files of `noisecraft reconstruct`), each header checked
  (numeric dtype, size) before its data is read, never unpickled.
* `check_safetensors_file(path)`: the header checks only, against the file's size, without reading
  the tensor data (for big third-party folders handed to another loader, e.g. transformers).

Every error is a `WeightFileError` (a ValueError, so the CLI prints it as one line and exits 2),
names the file and what is wrong, and fits on one line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping

import numpy as np
import torch
from torch import Tensor

from .io.readers import DataError

__all__ = [
    "WeightFileError",
    "PickleFileError",
    "SafetensorsHeaderError",
    "SafetensorsOffsetError",
    "TruncatedFileError",
    "NonFiniteWeightsError",
    "WeightMismatchError",
    "MAX_HEADER_BYTES",
    "SAFETENSORS_DTYPES",
    "SafetensorsHeader",
    "parse_safetensors_header",
    "check_safetensors_file",
    "load_safetensors_bytes",
    "read_safetensors",
    "read_weights",
    "check_finite",
    "check_tensors_match",
    "read_npz_array",
    "read_npz_numbers",
]

MAX_HEADER_BYTES = 100_000_000  # the limit safetensors itself enforces

# safetensors dtype name -> bytes per element (the dtypes torch can hold).
SAFETENSORS_DTYPES: Mapping[str, int] = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E4M3FNUZ": 1, "F8_E5M2": 1, "F8_E5M2FNUZ": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8, "C64": 8,
}
_NUMPY_DTYPES = {"BOOL", "U8", "I8", "U16", "I16", "F16", "U32", "I32", "F32", "U64", "I64", "F64", "C64"}
_MIN_SAFE_TORCH = (2, 6)  # torch.load(weights_only=True) had a code-execution bypass before 2.6 (CVE-2025-32434)


class WeightFileError(ValueError):
    """A weight file that is refused. One line: the file and what is wrong with it."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"weight file {self.path!r} is refused: {problem}")


class PickleFileError(WeightFileError):
    """A pickle / torch.save archive where only safetensors is accepted, or a pickle that would run code."""


class SafetensorsHeaderError(WeightFileError):
    """Header length field out of range, header not JSON, or a malformed entry (unknown dtype, bad shape)."""


class SafetensorsOffsetError(WeightFileError):
    """data_offsets that overlap, leave gaps, disagree with shape × dtype, or leave bytes undescribed."""


class TruncatedFileError(SafetensorsOffsetError):
    """The file ends before the data its header describes (cut off, or offsets past the end)."""


class NonFiniteWeightsError(WeightFileError):
    """A floating-point tensor holds NaN or Inf."""


class WeightMismatchError(WeightFileError):
    """A tensor is missing, unexpected, or has another shape or dtype than the model's."""


@dataclass(frozen=True)
class SafetensorsHeader:
    """A validated header: tensor name -> (dtype, shape, (begin, end)), metadata, where data starts."""

    tensors: dict[str, tuple[str, tuple[int, ...], tuple[int, int]]]
    metadata: dict[str, str]
    data_start: int  # = 8 + header length
    data_bytes: int  # size of the data section


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:300]


def _unpickler_reason(e: BaseException) -> str:
    """The informative line of torch's multi-line weights_only refusal (e.g. 'Unsupported global: GLOBAL io.open')."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    after = text.split("WeightsUnpickler error:", 1)
    lines = [line.strip() for line in after[-1].splitlines() if line.strip()]
    reason = lines[0] if lines else type(e).__name__
    return reason.split(" was not an allowed global")[0][:200]


def _looks_like_pickle(head: bytes) -> str | None:
    """'pickle' / 'zip archive (torch.save)' if the first bytes say so, else None."""
    if head[:4] == b"PK\x03\x04":
        return "a zip archive (the torch.save format, which holds a pickle)"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO opcode, protocols 2..5
        return f"a Python pickle (protocol {head[1]})"
    return None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k!r} appears twice")
        out[k] = v
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_safetensors_header(head: bytes, file_size: int, path: str | os.PathLike = "<bytes>",
                             *, dtypes: set[str] | None = None) -> SafetensorsHeader:
    """Validate the header of a safetensors file of `file_size` bytes whose first bytes are `head`.

    `head` must hold at least 8 + header-length bytes (or the whole file if shorter).
    """
    if file_size < 8:
        raise TruncatedFileError(path, f"it is {file_size} bytes, too short for a safetensors file (8-byte header length first)")
    kind = _looks_like_pickle(head[:8])
    if kind is not None:
        raise PickleFileError(path, f"it is {kind}, not safetensors; pickles can run code when loaded, so only "
                                    "safetensors weights are accepted here")
    (n,) = struct.unpack("<Q", head[:8])
    if n > file_size - 8:
        raise SafetensorsHeaderError(path, f"its header length field says {n} bytes but only {file_size - 8} follow "
                                           "(oversized header length, or a truncated file)")
    if n > MAX_HEADER_BYTES:
        raise SafetensorsHeaderError(path, f"its header is {n} bytes, more than the {MAX_HEADER_BYTES} allowed")
    if n < 2:
        raise SafetensorsHeaderError(path, f"its header length field is {n}; a JSON header needs at least 2 bytes")
    raw = head[8:8 + n]
    if len(raw) < n:
        raise TruncatedFileError(path, f"the header needs {n} bytes but only {len(raw)} could be read")
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SafetensorsHeaderError(path, f"its header is not valid JSON ({_one_line(e)})") from None
    if not isinstance(doc, dict):
        raise SafetensorsHeaderError(path, f"its header is a JSON {type(doc).__name__}, not an object")
    meta = doc.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise SafetensorsHeaderError(path, "its __metadata__ is not an object of string values")
    valid = SAFETENSORS_DTYPES.keys() if dtypes is None else dtypes
    data_bytes = file_size - 8 - n
    tensors: dict[str, tuple[str, tuple[int, ...], tuple[int, int]]] = {}
    for name, entry in doc.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsHeaderError(path, f"tensor {name!r} must be an object with exactly dtype, shape and "
                                               f"data_offsets, got {str(entry)[:80]}")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in valid:
            raise SafetensorsHeaderError(path, f"tensor {name!r} has unknown dtype {dtype!r}; valid: {', '.join(sorted(valid))}")
        if not isinstance(shape, list) or len(shape) > 64 or not all(_is_int(d) and d >= 0 for d in shape):
            raise SafetensorsHeaderError(path, f"tensor {name!r} has shape {str(shape)[:80]}; valid: a list of at most "
                                               "64 integers >= 0")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise SafetensorsOffsetError(path, f"tensor {name!r} has data_offsets {str(offsets)[:80]}; valid: "
                                               "[begin, end] with 0 <= begin <= end")
        need = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
        if offsets[1] - offsets[0] != need:
            raise SafetensorsOffsetError(path, f"tensor {name!r} has data_offsets {offsets} ({offsets[1] - offsets[0]} "
                                               f"bytes) but shape {shape} of {dtype} needs {need} bytes")
        tensors[name] = (dtype, tuple(shape), (offsets[0], offsets[1]))
    # Sorted by offset, the tensors must tile [0, data_bytes) exactly (what safetensors requires too).
    end, prev = 0, None
    for name, (_, _, (b, e)) in sorted(tensors.items(), key=lambda kv: (kv[1][2], kv[0])):
        if b < end:
            raise SafetensorsOffsetError(path, f"tensor {name!r} at data_offsets [{b}, {e}] overlaps tensor {prev!r} "
                                               f"(which ends at {end})")
        if b > end:
            raise SafetensorsOffsetError(path, f"there is a gap of {b - end} bytes before tensor {name!r} at data_offsets "
                                               f"[{b}, {e}]")
        if e > data_bytes:
            raise TruncatedFileError(path, f"tensor {name!r} at data_offsets [{b}, {e}] runs past the end of the "
                                           f"{data_bytes}-byte data section (the file is truncated or the offsets are "
                                           "out of range)")
        end, prev = e, name
    if end != data_bytes:
        raise SafetensorsOffsetError(path, f"{data_bytes - end} bytes after the last tensor are not described by the header")
    return SafetensorsHeader(tensors, dict(meta), 8 + n, data_bytes)


def check_safetensors_file(path: str | os.PathLike) -> SafetensorsHeader:
    """The header checks of `read_safetensors` against the file's size, without reading its tensor data."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            first = f.read(8)
            n = struct.unpack("<Q", first)[0] if len(first) == 8 else 0
            rest = f.read(n) if 0 < n <= min(size - 8, MAX_HEADER_BYTES) else b""
    except OSError as e:
        raise WeightFileError(p, f"it cannot be read ({_one_line(e)})") from None
    return parse_safetensors_header(first + rest, size, p)


def check_finite(tensors: Mapping[str, Tensor], path: str | os.PathLike) -> None:
    """NonFiniteWeightsError naming the first floating-point tensor holding NaN or Inf."""
    for k, t in tensors.items():
        if isinstance(t, Tensor) and (t.is_floating_point() or t.is_complex()):
            v = t if t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) or t.is_complex() else t.float()
            if not bool(torch.isfinite(v).all()):
                bad = int((~torch.isfinite(v)).sum())
                raise NonFiniteWeightsError(path, f"tensor {k!r} has {bad} non-finite value(s) (NaN or Inf)")


def load_safetensors_bytes(data: bytes, *, name: str | os.PathLike = "<bytes>", framework: Literal["pt", "np"] = "pt",
                           finite: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors, metadata) of a safetensors file held in memory, validated first (see the module doc)."""
    header = parse_safetensors_header(data, len(data), name, dtypes=None if framework == "pt" else _NUMPY_DTYPES)
    try:
        if framework == "pt":
            from safetensors.torch import load
        else:
            from safetensors.numpy import load
        tensors = load(bytes(data))
    except Exception as e:  # noqa: BLE001 - anything safetensors still refuses is a header defect
        raise SafetensorsHeaderError(name, f"safetensors cannot decode it ({_one_line(e)})") from None
    if finite:
        check_finite({k: torch.from_numpy(v) if framework == "np" and v.dtype.kind in "fc" else v
                      for k, v in tensors.items()}, name)
    return tensors, header.metadata


def read_safetensors(path: str | os.PathLike, *, framework: Literal["pt", "np"] = "pt",
                     finite: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """(tensors, metadata) of a safetensors file: read once, header validated, NaN/Inf refused."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise WeightFileError(p, f"it cannot be read ({_one_line(e)})") from None
    return load_safetensors_bytes(data, name=p, framework=framework, finite=finite)


def read_weights(path: str | os.PathLike, *, finite: bool = True) -> dict[str, Tensor]:
    """A state dict from safetensors, or (any other file) from torch.load(weights_only=True).

    The restricted unpickler of weights_only=True refuses every pickle that would import or call
    code; we turn its refusal into a one-line PickleFileError. Nothing else is ever unpickled.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            head = f.read(8)
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise WeightFileError(p, f"it cannot be read ({_one_line(e)})") from None
    if _looks_like_pickle(head) is None:
        plausible = len(head) == 8 and struct.unpack("<Q", head)[0] <= size - 8
        if p.suffix != ".safetensors" and not plausible:
            raise WeightFileError(p, f"it is neither a safetensors file nor a torch.save archive (it starts with {head!r})")
        return read_safetensors(p, finite=finite)[0]
    if p.suffix == ".safetensors":
        return read_safetensors(p, finite=finite)[0]  # refused as a pickle, with the typed error
    if tuple(int(x) for x in torch.__version__.split(".")[:2] if x.isdigit()) < _MIN_SAFE_TORCH:
        raise PickleFileError(p, f"it is a pickle and torch {torch.__version__} < 2.6 cannot unpickle weights safely; "
                                 "convert it to safetensors")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it was not written with
            warnings.simplefilter("ignore")
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise PickleFileError(p, f"it is a pickle that torch.load(weights_only=True) refuses: it holds more than plain "
                                 f"tensors and could run code ({_unpickler_reason(e)})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise WeightFileError(p, "it does not hold a state dict of named tensors")
    if finite:
        check_finite(state, p)
    return state


def check_tensors_match(expected: Mapping[str, Tensor], got: Mapping[str, Any], *, source: str | os.PathLike,
                        strict: bool = True) -> None:
    """WeightMismatchError unless every tensor of `got` has the name, shape and dtype the model expects.

    strict: also every expected name must be present and no other name may appear.
    """
    if not isinstance(got, Mapping):
        raise WeightMismatchError(source, f"expected a mapping of tensors, got {type(got).__name__}")
    for k, v in got.items():
        if k not in expected:
            if strict:
                raise WeightMismatchError(source, f"it has tensor {k!r}, which the model does not have")
            continue
        want = expected[k]
        if not isinstance(v, Tensor):
            raise WeightMismatchError(source, f"{k!r} is a {type(v).__name__}, not a tensor")
        if tuple(v.shape) != tuple(want.shape):
            raise WeightMismatchError(source, f"tensor {k!r} has shape {list(v.shape)} but the model expects {list(want.shape)}")
        if v.dtype != want.dtype:
            raise WeightMismatchError(source, f"tensor {k!r} is {str(v.dtype).removeprefix('torch.')} but the model "
                                              f"expects {str(want.dtype).removeprefix('torch.')}")
    if strict:
        missing = [k for k in expected if k not in got]
        if missing:
            raise WeightMismatchError(source, f"it lacks tensor {missing[0]!r} of the model ({len(missing)} missing)")


_NPZ_FLOATS = (np.float16, np.float32, np.float64)


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy format version {version}")
    return tuple(int(v) for v in shape), np.dtype(dtype)


def _open_npz(path: str | os.PathLike) -> zipfile.ZipFile:
    """The NPZ file as a zip archive, or a one-line DataError (missing file, not a zip)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"NPZ file {str(path)!r} {'is not a file' if path.exists() else 'does not exist'}")
    return zipfile.ZipFile(path)


@contextlib.contextmanager
def _npz_errors(path: Path) -> Iterator[None]:
    """Every defect met while reading the NPZ file (truncated member, bad .npy header) becomes one
    `DataError` line naming the file; our own DataErrors and MemoryError pass through."""
    try:
        yield
    except (DataError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - not a zip, truncated, bad header: all mean "unreadable file"
        raise DataError(f"cannot read NPZ file {str(path)!r}: {type(e).__name__}: {_one_line(e)}") from e


def read_npz_array(path: str | os.PathLike, key: str, *, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """The float array `key` of the NPZ file `path` (float16/32/64, never an object array), checked
    against `shape` from its header before any data is read. Every defect is a one-line `DataError`."""
    path = Path(path)
    member = key + ".npy"
    with _npz_errors(path):
        with _open_npz(path) as zf:
            names = zf.namelist()
            if member not in names:
                keys = sorted(n[:-4] if n.endswith(".npy") else n for n in names)
                raise DataError(f"NPZ file {str(path)!r} has no array {key!r} (keys: {', '.join(keys) or 'none'}); "
                                f"save the data as numpy.savez(path, {key}=array)")
            with zf.open(member) as f:
                got, dtype = _npy_header(f)
            if dtype.hasobject or dtype.type not in _NPZ_FLOATS:
                raise DataError(f"NPZ file {str(path)!r}: array {key!r} has dtype {dtype}; valid: float16, float32, float64 "
                                "(object/pickled arrays are never loaded)")
            if shape is not None and got != tuple(shape):
                raise DataError(f"NPZ file {str(path)!r}: array {key!r} has shape {got}; expected {tuple(shape)}")
            with zf.open(member) as f:
                return np.lib.format.read_array(f, allow_pickle=False)


def read_npz_numbers(path: str | os.PathLike, *, max_elements: int = 1 << 24) -> dict[str, np.ndarray]:
    """Every array of the NPZ file `path`, by key, each a numeric (integer or float) array of at most
    `max_elements` values, checked from its .npy header before its data is read; never unpickles.
    Every defect is a one-line `DataError` naming the file."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    with _npz_errors(path):
        with _open_npz(path) as zf:
            for member in zf.namelist():
                key = member[:-4] if member.endswith(".npy") else member
                with zf.open(member) as f:
                    shape, dtype = _npy_header(f)
                if dtype.hasobject or dtype.kind not in "iuf":
                    raise DataError(f"NPZ file {str(path)!r}: array {key!r} has dtype {dtype}; valid: integers or floats "
                                    "(object/pickled arrays are never loaded)")
                if int(np.prod(shape, dtype=np.int64)) > max_elements:
                    raise DataError(f"NPZ file {str(path)!r}: array {key!r} has shape {shape}, more than {max_elements} values")
                with zf.open(member) as f:
                    out[key] = np.lib.format.read_array(f, allow_pickle=False)
    return out
