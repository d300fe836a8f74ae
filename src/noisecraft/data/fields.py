"""The built-in scientific fields `grf`, `darcy` and `navier-stokes` (modality "field", (C, H, W)).

Each is generated from a seed by a solver in `noisecraft.fields` and stored in the network's units,
physical = offset + scale·x per channel (`FieldDataset.channels_info`, `to_physical`), chosen so each
channel has a standard deviation near 0.5 (the default σ_data):

* `grf` (1, N, N): a Matérn Gaussian random field on the unit torus (`fields.grf.MaternGRF`:
  ν = 1.5, ℓ = 0.1, std 0.5, mean 0), already in physical units (offset 0, scale 1).
* `grf-lengths` (1, N, N), labeled: the `grf` field with one of three length scales ℓ ∈ GRF_LENGTHS
  (0.05, 0.1, 0.2; ν, std as `grf`), field i of a split of class i mod 3 (class names "l=0.05", ...),
  for class(parameter)-conditional models. `classify_lengths` is its exact label oracle (the Bayes
  classifier of `fields.grf.classify_fields`).
* `grf-scales` (1, N, N), with a continuous parameter: the `grf` field with its own length scale ℓ drawn
  log-uniformly from GRF_SCALE_RANGE (0.05..0.2; ν, std as `grf`) per field, deterministic from (seed, i)
  (`grf_scale_lengths`); `param_values` (N, 1) holds each field's ℓ (`param_names` ["length"],
  `param_ranges`, `param_log`), for continuous-parameter models (`[cond] params = true`). `fit_lengths`
  gives back the ℓ a field says it was drawn with.
* `darcy` (2, N, N): channel 0 the permeability a, channel 1 the pressure u of -∇·(a∇u) = 1 on the
  unit square with u = 0 on the boundary (`fields.darcy`). option `coefficient`:
  "piecewise" (a ∈ {3, 12}: x = (a - 7.5)/4.5 ∈ {-1, 1}; u = 0.006 + 0.012·x) or "lognormal"
  (a = exp(ψ): channel 0 holds ψ/2, i.e. log a = 2·x; u = 0.04 + 0.08·x).
* `navier-stokes` (1, N, N): the vorticity ω of 2-D Kolmogorov flow after spin-up
  (`fields.navier_stokes`, ν = 0.01, drag 0.1, forcing -4cos(4y) on [0, 2π)², Δt = 0.02, 15 time
  units from a random smooth state): ω = 7·x.
* `navier-stokes-forecast` (1, N, N): the same flow as pairs for next-state prediction (issue 14 item 5).
  Trajectory i starts at `navier-stokes` field i of the split and is advanced by the solver for
  `steps` (default 8) further states `interval` (default 0.5) time units apart; example j·steps + k is
  the state k + 1 of trajectory j and `ForecastDataset.previous` holds the state k before it (the
  condition of a `[cond] image = "previous"` model); `trajectories` keeps them whole (n, steps + 1, 1, N, N).

Field i of a split depends only on (the split's seed, i), so a split of any size starts with the same
fields. Splits: train (seed 0) and test (seed 1), sizes in `FIELD_SPLIT_SIZES`; "all" = train then test.

Generated splits are cached as `<cache>/datasets/<name>/<split>-<key>.safetensors` (cache:
$NOISECRAFT_CACHE, else ~/.cache/noisecraft), keyed by a SHA-256 of the format, the generator version,
the solver parameters, the grid size, the seed and the number of fields, so a changed generator never
reads a stale file; `use_cache=False` neither reads nor writes it. An unreadable or mismatched file is
regenerated with a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import json
import warnings
from typing import Callable

import numpy as np
import torch
from safetensors.numpy import save as st_save
from torch import Tensor

from ..fields.darcy import COEFFICIENTS, darcy_coefficient, solve_darcy
from ..fields.grf import MaternGRF, field_noise
from ..fields.navier_stokes import NSConfig, SpectralGrid, kolmogorov_snapshots
from ..fields.navier_stokes import step as ns_step
from ..fields.physics import darcy_physics
from ..io.files import atomic_write_bytes
from ..io_safety import read_safetensors
from ..runtime import cache_root
from .dataset import SignalDataset, check_resolution
from .synthetic import SPLIT_SEEDS, SYNTHETIC_SPLITS

__all__ = ["FIELDS_VERSION", "FIELD_SPLIT_SIZES", "FIELD_NATIVE_SIZE", "GRF_PARAMS", "NS_CONFIG", "FORECAST_STEPS",
           "FORECAST_INTERVAL", "FieldDataset", "ForecastDataset", "channels_info", "to_physical", "field_physics",
           "physics_options", "generate_fields", "GRF_LENGTHS", "GRF_LENGTH_NAMES", "classify_lengths", "fit_lengths", "load_grf_lengths",
           "GRF_SCALE_RANGE", "grf_scale_lengths", "load_grf_scales",
           "navier_stokes_trajectories", "load_grf", "load_darcy", "load_navier_stokes", "load_navier_stokes_forecast"]

FIELDS_VERSION = 1  # bump when a generator changes what a field holds
CACHE_FORMAT = "noisecraft-fields/1"
FIELD_NATIVE_SIZE = 64
FIELD_SPLIT_SIZES: dict[str, dict[str, int]] = {
    "grf": {"train": 4000, "test": 256},
    "grf-lengths": {"train": 4200, "test": 384},  # 1400 / 128 per class
    "grf-scales": {"train": 4200, "test": 384},
    "darcy": {"train": 1000, "test": 128},
    "navier-stokes": {"train": 1000, "test": 128},
    "navier-stokes-forecast": {"train": 1000, "test": 128},  # trajectories (each gives `steps` pairs)
}
GRF_PARAMS = {"nu": 1.5, "length": 0.1, "std": 0.5}
GRF_LENGTHS = (0.05, 0.1, 0.2)  # the grf-lengths classes' ℓ (class c = field index mod 3)
GRF_LENGTH_NAMES = tuple(f"l={v:g}" for v in GRF_LENGTHS)
GRF_SCALE_RANGE = (0.05, 0.2)  # grf-scales: ℓ log-uniform in this range, one draw per field
NS_CONFIG = NSConfig()
NS_SCALE = 7.0
FORECAST_STEPS = 8  # states after the start of each navier-stokes-forecast trajectory
FORECAST_INTERVAL = 0.5  # time units between them: 25 solver steps; persistence's relative L2 error is 0.48 at one interval
_DARCY_CHANNELS = {
    "piecewise": [("a", 7.5, 4.5, "linear"), ("u", 0.006, 0.012, "linear")],
    "lognormal": [("a", 0.0, 2.0, "log"), ("u", 0.04, 0.08, "linear")],
}


def channels_info(name: str, coefficient: str = "piecewise") -> list[dict]:
    """Per channel {"name", "offset", "scale", "map"}: physical = offset + scale·x ("linear") or
    exp(offset + scale·x) ("log")."""
    if name in ("grf", "grf-lengths", "grf-scales"):
        rows = [("x", 0.0, 1.0, "linear")]
    elif name == "darcy":
        rows = _DARCY_CHANNELS[coefficient]
    elif name in ("navier-stokes", "navier-stokes-forecast"):
        rows = [("vorticity", 0.0, NS_SCALE, "linear")]
    else:
        raise ValueError(f"{name!r} is not a built-in field; valid: darcy, grf, grf-lengths, navier-stokes, "
                         "navier-stokes-forecast")
    return [{"name": n, "offset": o, "scale": s, "map": m} for n, o, s, m in rows]


def to_physical(x: Tensor, info: list[dict]) -> Tensor:
    """Normalized fields (..., C, H, W) -> physical units, channel c by `info[c]` (`channels_info`)."""
    out = []
    for c, row in enumerate(info):
        v = row["offset"] + row["scale"] * x[..., c, :, :]
        out.append(torch.exp(v) if row["map"] == "log" else v)
    return torch.stack(out, -3)


def field_physics(name: str, options: dict | None = None) -> Callable[[Tensor], Tensor]:
    """The PDE residual x (B, C, H, W) -> (B, p) of built-in field `name` in normalized units, for physics
    guidance (`fields.physics.physics_dps`); options: the dataset's (`coefficient` for darcy). Only `darcy`
    has one (its FV residual, Jacobi-scaled: `fields.physics.darcy_physics`); ValueError for the others."""
    if name != "darcy":
        raise ValueError(f"physics guidance needs a field with a residual; {name!r} has none built in; valid: darcy")
    coefficient = (options or {}).get("coefficient", "piecewise")
    if coefficient not in COEFFICIENTS:
        raise ValueError(f"coefficient {coefficient!r} is not a Darcy coefficient; valid: {', '.join(COEFFICIENTS)}")
    info = channels_info("darcy", coefficient)
    return darcy_physics(lambda x: to_physical(x, info), u_scale=info[1]["scale"])


def physics_options(name: str, options: dict | None, physics: float, physics_sigma: float = math.inf) -> dict:
    """The physics-guidance keywords of `fields.reconstruct` (physics, physics_step, physics_sigma_max) for
    built-in field `name` with weight ζ_p = physics acting at σ <= physics_sigma; a ValueError naming the value
    when one is out of range or the field has no residual (`field_physics`)."""
    ok = not isinstance(physics, bool) and isinstance(physics, (int, float)) and math.isfinite(physics)
    if not (ok and 0 < physics <= 1e4):
        raise ValueError(f"physics {physics!r} is out of range; valid: 0 < physics <= 10000")
    if isinstance(physics_sigma, bool) or not isinstance(physics_sigma, (int, float)) or not physics_sigma > 0:
        raise ValueError(f"physics_sigma {physics_sigma!r} is out of range; valid: a number > 0 (inf: every σ)")
    return dict(physics=field_physics(name, options), physics_step=float(physics), physics_sigma_max=float(physics_sigma))


class FieldDataset(SignalDataset):
    """Fields (N, C, H, W) float32 in normalized units, modality "field", unlabeled (except `grf-lengths`), plus
    `channels_info` (see `channels_info`) and `params` (the generator's parameters). A dataset whose fields
    each have their own physical parameters (`grf-scales`) also holds them: `param_values` (N, P) float64,
    `param_names`, `param_ranges` [(lo, hi)] and `param_log` (log-scaled ones); otherwise these are None."""

    _ranks = (2,)

    def __init__(self, data: Tensor, *, name: str, info: list[dict], params: dict, labels: Tensor | None = None,
                 class_names: list[str] | None = None, param_values: Tensor | None = None,
                 param_names: list[str] | None = None, param_ranges: list[tuple[float, float]] | None = None,
                 param_log: list[bool] | None = None) -> None:
        super().__init__(data, labels, class_names=class_names, name=name, modality="field")
        self.channels_info, self.params = info, params
        if param_values is not None and (param_values.ndim != 2 or param_values.shape[0] != data.shape[0]
                                         or not param_names or len(param_names) != param_values.shape[1]):
            raise ValueError(f"param_values of shape {tuple(param_values.shape)} do not fit {data.shape[0]} fields "
                             f"and the parameters {param_names}")
        self.param_values, self.param_names = param_values, param_names
        self.param_ranges, self.param_log = param_ranges, param_log

    @property
    def channel_names(self) -> list[str]:
        return [c["name"] for c in self.channels_info]

    def to_physical(self, x: Tensor) -> Tensor:
        """Normalized fields (..., C, H, W) -> physical units (module notes)."""
        return to_physical(x, self.channels_info)



class ForecastDataset(FieldDataset):
    """`navier-stokes-forecast` pairs (module notes): `data` the next states (n·steps, C, H, W), `previous`
    the states one `interval` before them (same shape), `trajectories` (n, steps + 1, C, H, W)."""

    def __init__(self, trajectories: Tensor, *, name: str, info: list[dict], params: dict) -> None:
        n, k1 = trajectories.shape[:2]
        rest = tuple(trajectories.shape[2:])
        super().__init__(trajectories[:, 1:].reshape(n * (k1 - 1), *rest).contiguous(), name=name, info=info,
                         params=params)
        self.previous = trajectories[:, :-1].reshape(n * (k1 - 1), *rest).contiguous()
        self.trajectories = trajectories
        self.steps, self.interval = k1 - 1, float(params["interval"])

# --- generators: (size, seed, index) -> (n, C, N, N) float32 in normalized units ---------------------

def _grf(size: int, seed: int, index: np.ndarray, _opts: dict) -> np.ndarray:
    grf = MaternGRF(size, **GRF_PARAMS)
    return grf.from_noise(field_noise(seed, index, (size, size))).numpy().astype(np.float32)


def grf_length_class(index: np.ndarray) -> np.ndarray:
    """The grf-lengths class of field `index` of a split: index mod 3."""
    return np.asarray(index) % len(GRF_LENGTHS)


def _grf_lengths(size: int, seed: int, index: np.ndarray, _opts: dict) -> np.ndarray:
    out = np.empty((len(index), 1, size, size), np.float32)
    classes = grf_length_class(index)
    for c, length in enumerate(GRF_LENGTHS):
        rows = np.nonzero(classes == c)[0]
        grf = MaternGRF(size, nu=GRF_PARAMS["nu"], length=length, std=GRF_PARAMS["std"])
        out[rows] = grf.from_noise(field_noise(seed, np.asarray(index)[rows], (size, size))).numpy()
    return out


def grf_scale_lengths(seed: int, index: np.ndarray) -> np.ndarray:
    """The length scale ℓ of grf-scales field `index` of the stream `seed`: log-uniform in GRF_SCALE_RANGE,
    from its own stream (seed, i, 1), apart from the field's noise (seed, i)."""
    lo, hi = (math.log(v) for v in GRF_SCALE_RANGE)
    u = np.array([np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(i), 1]))).random()
                  for i in np.asarray(index).reshape(-1)], dtype=np.float64)
    return np.exp(lo + u * (hi - lo))


def _grf_scales(size: int, seed: int, index: np.ndarray, _opts: dict) -> np.ndarray:
    index = np.asarray(index)
    noise = field_noise(seed, index, (size, size))
    out = np.empty((len(index), 1, size, size), np.float32)
    for row, length in enumerate(grf_scale_lengths(seed, index)):
        grf = MaternGRF(size, nu=GRF_PARAMS["nu"], length=float(length), std=GRF_PARAMS["std"])
        out[row] = grf.from_noise(noise[row:row + 1]).numpy()[0]
    return out


def classify_lengths(x: Tensor) -> Tensor:
    """The grf-lengths class (B,) of fields x (B, 1, N, N): the most likely of the three GRFs (exact)."""
    from ..fields.grf import classify_fields

    size = int(x.shape[-1])
    return classify_fields(x, [MaternGRF(size, nu=GRF_PARAMS["nu"], length=v, std=GRF_PARAMS["std"]) for v in GRF_LENGTHS])


def fit_lengths(x: Tensor, grid: np.ndarray | None = None) -> Tensor:
    """The maximum-likelihood length scale ℓ (B,) of fields x (B, 1, N, N) with grf-lengths' (and grf-scales')
    ν and std (`fields.grf.fit_length_scale`; grid: the ℓ values tried, default 61 from 0.02 to 0.5)."""
    from ..fields.grf import fit_length_scale

    return fit_length_scale(x, nu=GRF_PARAMS["nu"], std=GRF_PARAMS["std"], grid=grid)


def _darcy(size: int, seed: int, index: np.ndarray, opts: dict) -> np.ndarray:
    kind = opts["coefficient"]
    a = darcy_coefficient(kind, size, seed, index)
    u = np.stack([solve_darcy(ai) for ai in a]) if len(a) else np.zeros((0, size, size))
    (_, oa, sa, map_a), (_, ou, su, _) = _DARCY_CHANNELS[kind]
    ca = (np.log(a) - oa) / sa if map_a == "log" else (a - oa) / sa
    return np.stack([ca, (u - ou) / su], 1).astype(np.float32)


def _navier_stokes(size: int, seed: int, index: np.ndarray, _opts: dict) -> np.ndarray:
    w = kolmogorov_snapshots(size, seed, index, NS_CONFIG)
    if not bool(torch.isfinite(w).all()):
        raise RuntimeError(f"the Navier-Stokes solver diverged at grid size {size} (time step {NS_CONFIG.dt} too large)")
    return (w / NS_SCALE)[:, None].numpy().astype(np.float32)


_GENERATORS: dict[str, Callable[[int, int, np.ndarray, dict], np.ndarray]] = {
    "grf": _grf, "grf-lengths": _grf_lengths, "grf-scales": _grf_scales, "darcy": _darcy, "navier-stokes": _navier_stokes}


def _params(name: str, opts: dict) -> dict:
    if name == "grf":
        return dict(GRF_PARAMS)
    if name == "grf-lengths":
        return {"nu": GRF_PARAMS["nu"], "std": GRF_PARAMS["std"], "lengths": list(GRF_LENGTHS)}
    if name == "grf-scales":
        return {"nu": GRF_PARAMS["nu"], "std": GRF_PARAMS["std"], "length_range": list(GRF_SCALE_RANGE)}
    if name == "darcy":
        return {"coefficient": opts["coefficient"], "f": 1.0}
    return dataclasses.asdict(NS_CONFIG)


def _key(name: str, size: int, seed: int, n: int, params: dict) -> str:
    spec = {"format": CACHE_FORMAT, "version": FIELDS_VERSION, "name": name, "size": size, "seed": seed, "n": n,
            "params": params}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _cached(name: str, path, key: str, make: Callable[[], np.ndarray], n: int, use_cache: bool) -> np.ndarray:
    """`make()` (n, ...) float32, read from / written to the safetensors file `path` (checked against `key`)."""
    if use_cache and path.is_file():
        try:
            arrays, meta = read_safetensors(path, framework="np")
            x = arrays.get("x")
            if meta.get("key") != key or x is None or x.dtype != np.float32 or x.shape[0] != n:
                raise ValueError("its key or shape does not match")
            return x
        except (OSError, ValueError) as e:  # WeightFileError is a ValueError
            warnings.warn(f"{name} cache {str(path)!r} is unreadable ({e}); regenerating", RuntimeWarning, stacklevel=3)
    x = make()
    if use_cache:
        try:
            atomic_write_bytes(path, st_save({"x": np.ascontiguousarray(x)}, metadata={"format": CACHE_FORMAT, "key": key}))
        except OSError as e:
            warnings.warn(f"could not write the {name} cache {str(path)!r} ({e}); continuing without it", RuntimeWarning,
                          stacklevel=3)
    return x


def generate_fields(name: str, n: int, seed: int, size: int = FIELD_NATIVE_SIZE, *, use_cache: bool = True,
                    **opts) -> np.ndarray:
    """Fields 0..n-1 of the stream `seed` of built-in `name` (n, C, size, size) float32, from the cache when there."""
    params = _params(name, opts)
    key = _key(name, size, seed, n, params)
    path = cache_root() / "datasets" / name / f"s{seed}-n{n}-r{size}-{key[:32]}.safetensors"
    return _cached(name, path, key, lambda: _GENERATORS[name](size, seed, np.arange(n), opts), n, use_cache)


def _check_forecast_options(steps: int, interval: float) -> int:
    """The solver steps per interval, or a ValueError naming the bad option and what is valid."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 256:
        raise ValueError(f"navier-stokes-forecast option steps = {steps!r} is not valid; valid: an integer 1..256 "
                         f"(states after each trajectory's start; default {FORECAST_STEPS})")
    dt = NS_CONFIG.dt
    ok = isinstance(interval, (int, float)) and not isinstance(interval, bool) and 0 < interval <= 100
    k = round(interval / dt) if ok else 0
    if not ok or k < 1 or abs(k * dt - interval) > 1e-9 * max(1.0, interval):
        raise ValueError(f"navier-stokes-forecast option interval = {interval!r} is not valid; valid: a multiple of "
                         f"the solver's time step {dt} in (0, 100] (default {FORECAST_INTERVAL})")
    return k


def navier_stokes_trajectories(n: int, seed: int, size: int = FIELD_NATIVE_SIZE, *, steps: int = FORECAST_STEPS,
                               interval: float = FORECAST_INTERVAL, use_cache: bool = True) -> np.ndarray:
    """Trajectories 0..n-1 (n, steps + 1, size, size) float32 in normalized units: state 0 is `navier-stokes`
    field i of the stream `seed` (as stored), state k + 1 the solver's state `interval` time units after
    state k (float64 integration from the stored float32 start). Cached like `generate_fields`."""
    per = _check_forecast_options(steps, interval)
    name = "navier-stokes-forecast"
    params = {**_params("navier-stokes", {}), "steps": steps, "interval": float(interval)}
    key = _key(name, size, seed, n, params)
    path = cache_root() / "datasets" / name / f"s{seed}-n{n}-r{size}-k{steps}-{key[:32]}.safetensors"

    def make() -> np.ndarray:
        start = generate_fields("navier-stokes", n, seed, size, use_cache=use_cache)[:, 0]  # (n, N, N)
        g = SpectralGrid(size)
        f_hat = g.rfft(NS_CONFIG.forcing(size))
        out = np.empty((n, steps + 1, size, size), np.float32)
        out[:, 0] = start
        for lo in range(0, n, 100):  # in chunks: the solver's float64 work arrays stay small
            w_hat = g.rfft(torch.from_numpy(start[lo:lo + 100]).double() * NS_SCALE)
            for k in range(steps):
                for _ in range(per):
                    w_hat = ns_step(w_hat, g, NS_CONFIG, f_hat)
                w = g.irfft(w_hat)
                if not bool(torch.isfinite(w).all()):
                    raise RuntimeError(f"the Navier-Stokes solver diverged at grid size {size}")
                out[lo:lo + 100, k + 1] = (w / NS_SCALE).numpy()
        return out

    return _cached(name, path, key, make, n, use_cache)


def _load(name: str, *, resolution, split, channels, labels, hflip, use_cache, min_size: int, **opts) -> FieldDataset:
    check_resolution(resolution)
    size = resolution or FIELD_NATIVE_SIZE
    ns = name.startswith("navier-stokes")
    if size < min_size or (ns and size % 2):
        even = " and even" if ns else ""
        raise ValueError(f"resolution {size} is too small for {name!r}; valid: >= {min_size}{even} (default {FIELD_NATIVE_SIZE})")
    info = channels_info(name, opts.get("coefficient", "piecewise"))
    if channels not in (None, len(info)):
        raise ValueError(f"channels must be {len(info)} or None for {name!r} ({', '.join(c['name'] for c in info)}), got {channels!r}")
    if labels not in (True, False):
        raise ValueError(f"labels must be True or False, got {labels!r}")
    if hflip:
        raise ValueError(f"hflip=True is not valid for {name!r}: the generator's data is not mirror-symmetric in "
                         "every channel and the loader never augments; pass hflip=False")
    if split not in SYNTHETIC_SPLITS:
        raise ValueError(f"split must be one of {', '.join(SYNTHETIC_SPLITS)} for {name!r}; got {split!r}")
    parts = ("train", "test") if split == "all" else (split,)
    if name == "navier-stokes-forecast":
        x = np.concatenate([navier_stokes_trajectories(FIELD_SPLIT_SIZES[name][p], SPLIT_SEEDS[p], size,
                                                       use_cache=use_cache, **opts) for p in parts])
        params = {**_params("navier-stokes", {}), **opts}
        return ForecastDataset(torch.from_numpy(x)[:, :, None], name=name, info=info, params=params)
    x = np.concatenate([generate_fields(name, FIELD_SPLIT_SIZES[name][p], SPLIT_SEEDS[p], size, use_cache=use_cache,
                                        **opts) for p in parts])
    extra = {}  # labels (grf-lengths) or per-field parameters (grf-scales)
    if name == "grf-lengths" and labels:
        y = np.concatenate([grf_length_class(np.arange(FIELD_SPLIT_SIZES[name][p])) for p in parts])
        extra = dict(labels=torch.from_numpy(y), class_names=list(GRF_LENGTH_NAMES))
    if name == "grf-scales":
        ell = np.concatenate([grf_scale_lengths(SPLIT_SEEDS[p], np.arange(FIELD_SPLIT_SIZES[name][p])) for p in parts])
        extra = dict(param_values=torch.from_numpy(ell)[:, None], param_names=["length"],
                       param_ranges=[GRF_SCALE_RANGE], param_log=[True])
    return FieldDataset(torch.from_numpy(x), name=name, info=info, params=_params(name, opts), **extra)


def load_grf(*, resolution: int | None = None, split: str = "train", channels: int | None = None, labels: bool = True,
             hflip: bool = False, use_cache: bool = True) -> FieldDataset:
    """`grf`: Matérn Gaussian random fields (N, 1, R, R) (module notes). labels: accepted, the data has no classes."""
    return _load("grf", resolution=resolution, split=split, channels=channels, labels=labels, hflip=hflip,
                 use_cache=use_cache, min_size=4)


def load_grf_lengths(*, resolution: int | None = None, split: str = "train", channels: int | None = None,
                     labels: bool = True, hflip: bool = False, use_cache: bool = True) -> FieldDataset:
    """`grf-lengths`: Matérn GRFs (N, 1, R, R) of three length scales, labeled by class (module notes).
    labels=False: the same fields unlabeled."""
    return _load("grf-lengths", resolution=resolution, split=split, channels=channels, labels=labels, hflip=hflip,
                 use_cache=use_cache, min_size=4)


def load_grf_scales(*, resolution: int | None = None, split: str = "train", channels: int | None = None,
                    labels: bool = True, hflip: bool = False, use_cache: bool = True) -> FieldDataset:
    """`grf-scales`: Matérn GRFs (N, 1, R, R), each with its own length scale ℓ, held in `param_values` (N, 1)
    (module notes). labels: accepted, the data has no classes (its parameter is continuous)."""
    return _load("grf-scales", resolution=resolution, split=split, channels=channels, labels=labels, hflip=hflip,
                 use_cache=use_cache, min_size=4)


def load_darcy(*, resolution: int | None = None, split: str = "train", channels: int | None = None,
               labels: bool = True, hflip: bool = False, use_cache: bool = True,
               coefficient: str = "piecewise") -> FieldDataset:
    """`darcy`: (a, u) pairs (N, 2, R, R) of Darcy flow (module notes). coefficient: piecewise | lognormal."""
    if coefficient not in COEFFICIENTS:
        raise ValueError(f"coefficient {coefficient!r} is not valid for 'darcy'; valid: {', '.join(COEFFICIENTS)}")
    return _load("darcy", resolution=resolution, split=split, channels=channels, labels=labels, hflip=hflip,
                 use_cache=use_cache, min_size=4, coefficient=coefficient)


def load_navier_stokes(*, resolution: int | None = None, split: str = "train", channels: int | None = None,
                       labels: bool = True, hflip: bool = False, use_cache: bool = True) -> FieldDataset:
    """`navier-stokes`: Kolmogorov-flow vorticity snapshots (N, 1, R, R) (module notes). R even, >= 16."""
    return _load("navier-stokes", resolution=resolution, split=split, channels=channels, labels=labels, hflip=hflip,
                 use_cache=use_cache, min_size=16)


def load_navier_stokes_forecast(*, resolution: int | None = None, split: str = "train", channels: int | None = None,
                                labels: bool = True, hflip: bool = False, use_cache: bool = True,
                                steps: int = FORECAST_STEPS, interval: float = FORECAST_INTERVAL) -> ForecastDataset:
    """`navier-stokes-forecast`: pairs of Kolmogorov-flow states `interval` apart (module notes), R even, >= 16.
    Options (`data.options`): steps (states after each start, 1..256) and interval (a multiple of 0.02)."""
    _check_forecast_options(steps, interval)
    return _load("navier-stokes-forecast", resolution=resolution, split=split, channels=channels, labels=labels,
                 hflip=hflip, use_cache=use_cache, min_size=16, steps=steps, interval=float(interval))
