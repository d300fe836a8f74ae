"""Fundamental-frequency estimation (YIN) and the pitch accuracy of generated notes.

YIN (de Cheveigné & Kawahara 2002, "YIN, a fundamental frequency estimator for speech and music",
JASA 111) per frame of W samples, lags τ = 0 … τ_max:

1.–2. difference function  d(τ) = Σ_{j<W} (x_j − x_{j+τ})² = e(0) + e(τ) − 2 r(τ)            (eq. 7)
      with e(τ) = Σ_{j<W} x_{j+τ}² (cumulative sums) and r(τ) = Σ_{j<W} x_j x_{j+τ} (one FFT);
3.    cumulative-mean-normalized  d'(τ) = d(τ) · τ / Σ_{k=1..τ} d(k),  d'(0) = 1             (eq. 8)
4.    absolute threshold: the first dip of d' whose bottom is under the threshold (0.1, the
      paper's value); a frame without one is unvoiced (d' reads as the aperiodic/total power ratio);
5.    parabolic interpolation: the dip's depth from a parabola through d', its position from a
      parabola through the raw d (the paper's choice: d' normalization biases the abscissa).

A period of a high note spans few samples (A5 at 8 kHz: 9.1), and a tone with harmonics up to
Nyquist has a dip of d narrower than one lag: sampled off its centre it looks shallow (YIN then
skips to twice the period) and the parabola is off by up to a tenth of a sample (~10 cents). So the
clips are first oversampled ×4 (polyphase, `scipy.signal.resample_poly`): YIN on the band-limited
signal at quarter-sample lags. This keeps every test tone within 2 cents.

Step 6 (best local estimate) is not used: a note's f0 is the median over its voiced frames, which
is robust to the odd octave error in a frame. Frames much quieter than the clip's loudest frame
(the silent tail of a decayed pluck) are skipped. Everything is vectorized over clips and frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.fft import irfft, next_fast_len, rfft
from scipy.signal import resample_poly

from ..data.note_names import hz_to_cents_error, note_to_midi, parse_note_class

__all__ = ["PitchEstimate", "PitchAccuracy", "PITCH_METHODS", "estimate_f0", "estimate_f0_shs", "yin_frames",
           "pitch_accuracy", "as_midis"]

# Frames below this level (relative to the clip's loudest frame) are not asked for a pitch, nor are
# frames below an absolute floor (digital silence).
_GATE_DB = -40.0
_SILENCE_RMS = 1e-5


@dataclass(frozen=True)
class PitchEstimate:
    """Per clip: f0 in Hz (NaN where unvoiced), the voiced flag, and the fraction of voiced frames."""

    f0: np.ndarray  # (N,) float64
    voiced: np.ndarray  # (N,) bool
    voiced_fraction: np.ndarray  # (N,) float64, of the frames above the loudness gate


def _as_clips(waves) -> np.ndarray:
    """(N, L) float64 from (L,), (N, L) or (N, C, L) (channels averaged to mono), array or tensor."""
    if hasattr(waves, "detach"):
        waves = waves.detach().cpu().double().numpy()
    x = np.asarray(waves, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    elif x.ndim == 3:
        x = x.mean(axis=1)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"waves must be (L,), (N, L) or (N, C, L), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("waves contain NaN or Inf")
    return x


def yin_frames(frames: np.ndarray, window: int, tau_min: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """YIN steps 1-5 on frames (..., window + τ_max): (period in samples (...,), voiced (...,)).

    The period is fractional (step 5) and NaN where no dip of d' is below the threshold.
    """
    lead, size = frames.shape[:-1], frames.shape[-1]
    tau_max = size - window
    if not 1 <= tau_min < tau_max:
        raise ValueError(f"need 1 <= tau_min < tau_max, got tau_min={tau_min}, tau_max={tau_max}")
    x = frames.reshape(-1, size)
    n = next_fast_len(size + window, real=True)  # no circular wrap for lags 0 … τ_max
    r = irfft(np.conj(rfft(x[:, :window], n)) * rfft(x, n), n)[:, : tau_max + 1]  # r(τ) (F, τ_max+1)
    cs = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x * x, axis=1)], axis=1)
    e = cs[:, window : window + tau_max + 1] - cs[:, : tau_max + 1]  # e(τ), e(0) = energy of the frame
    d = np.maximum(e[:, :1] + e - 2.0 * r, 0.0)  # (F, τ_max+1), ≥ 0 up to round-off
    cum = np.cumsum(d[:, 1:], axis=1)
    dn = np.ones_like(d)
    np.divide(d[:, 1:] * np.arange(1, tau_max + 1), cum, out=dn[:, 1:], where=cum > 0)  # d'(τ)
    # Step 4: the first dip of d' in [τ_min, τ_max) whose bottom is under the threshold. The bottom's
    # depth is read from a parabola through the dip (step 5 of the paper: a dip sampled off its centre
    # looks shallower than it is, which would skip the true period for a multiple of it).
    lo, mid, hi = dn[:, :-2], dn[:, 1:-1], dn[:, 2:]
    curv = lo - 2.0 * mid + hi
    depth = mid - np.where(curv > 0, (lo - hi) ** 2 / (8.0 * np.where(curv > 0, curv, 1.0)), 0.0)
    lags = np.arange(1, tau_max)
    dip = (mid <= lo) & (mid < hi) & (depth < threshold) & (lags >= tau_min)[None, :]  # (F, τ_max-1)
    voiced = dip.any(axis=1)
    tau = 1 + dip.argmax(axis=1)  # lag of the first deep dip's lowest sample
    # Step 5: the bottom of the dip from a parabola through d(τ-1), d(τ), d(τ+1).
    rows = np.arange(x.shape[0])
    lo, mid, hi = d[rows, tau - 1], d[rows, tau], d[rows, tau + 1]
    curv = lo - 2.0 * mid + hi
    shift = np.where(curv > 0, 0.5 * (lo - hi) / np.where(curv > 0, curv, 1.0), 0.0)
    period = tau + np.clip(shift, -1.0, 1.0)
    period = np.where(voiced, period, np.nan)
    return period.reshape(lead), voiced.reshape(lead)


def estimate_f0(
    waves,
    rate: int,
    *,
    fmin: float = 50.0,
    fmax: float = 2000.0,
    threshold: float = 0.1,
    window_s: float = 0.025,
    hop_s: float | None = None,
    min_voiced: float = 0.5,
    oversample: int = 4,
    chunk: int = 32,
) -> PitchEstimate:
    """YIN f0 of each clip: the median over its voiced frames (Hz) and a voiced flag.

    waves: (L,), (N, L) or (N, C, L) at `rate` Hz. fmin/fmax bound the search (periods 1/fmax …
    1/fmin). threshold: the YIN absolute threshold on d' (the tolerated aperiodic power ratio).
    window_s: the integration window W (at least the longest period). hop_s: frame step (default
    W/2). oversample: the signal is resampled ×oversample first (see the module notes). A clip is
    voiced when at least `min_voiced` of its frames above the loudness gate (-40 dB of its loudest
    frame) are voiced; silence and noise are unvoiced.
    """
    x = _as_clips(waves)
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1:
        raise ValueError(f"rate must be a positive integer (Hz), got {rate!r}")
    if not 0 < fmin < fmax:
        raise ValueError(f"need 0 < fmin < fmax, got fmin={fmin}, fmax={fmax}")
    if isinstance(oversample, bool) or not isinstance(oversample, int) or oversample < 1:
        raise ValueError(f"oversample must be an integer >= 1, got {oversample!r}")
    fs = rate * oversample  # lags below are in samples at the oversampled rate
    tau_min = max(2, int(np.floor(fs / fmax)))
    tau_max = int(np.ceil(fs / fmin))
    window = max(tau_max, int(round(window_s * fs)))
    hop = max(1, int(round((hop_s * fs) if hop_s is not None else window / 2)))
    size = window + tau_max + 1  # one spare lag so a dip at τ_max still has a right neighbour
    if x.shape[1] * oversample < size:
        raise ValueError(f"clips of {x.shape[1]} samples are too short for fmin={fmin} Hz and window_s={window_s} "
                         f"at {rate} Hz: need at least {-(-size // oversample)} samples (raise fmin or lower window_s)")
    f0 = np.full(x.shape[0], np.nan)
    frac = np.zeros(x.shape[0])
    for s in range(0, x.shape[0], chunk):
        xs = resample_poly(x[s : s + chunk], oversample, 1, axis=1) if oversample > 1 else x[s : s + chunk]
        frames = np.lib.stride_tricks.sliding_window_view(xs, size, axis=1)[:, ::hop]  # (n, F, size)
        rms = np.sqrt((frames[..., :window] ** 2).mean(-1))  # (n, F)
        loud = (rms > _SILENCE_RMS) & (rms >= rms.max(1, keepdims=True) * 10 ** (_GATE_DB / 20))
        period, voiced = yin_frames(frames, window, tau_min, threshold)
        voiced &= loud
        frac[s : s + chunk] = voiced.sum(1) / np.maximum(loud.sum(1), 1)
        hz = np.where(voiced, fs / np.where(voiced, period, 1.0), np.nan)  # (n, F)
        any_voiced = voiced.any(1)
        f0[s : s + chunk][any_voiced] = np.nanmedian(hz[any_voiced], axis=1)
    is_voiced = (frac >= min_voiced) & np.isfinite(f0)
    return PitchEstimate(np.where(is_voiced, f0, np.nan), is_voiced, frac)


def as_midis(targets: Sequence) -> np.ndarray:
    """MIDI numbers (N,) float64 from class names ("pluck:A4"), note names ("A4") or numbers."""
    out = []
    for t in targets:
        if isinstance(t, str):
            out.append(parse_note_class(t)[1] if ":" in t else note_to_midi(t))
        elif isinstance(t, (bool, np.bool_)):
            raise ValueError(f"pitch target {t!r} is not a class name, note name or MIDI number")
        else:
            out.append(float(t))
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class PitchAccuracy:
    """Per clip: whether it is right (voiced and within tol_cents of its note), the error in cents
    (NaN where unvoiced), the estimated f0 and the voiced flag; `accuracy` is the fraction right."""

    right: np.ndarray  # (N,) bool
    cents: np.ndarray  # (N,)
    f0: np.ndarray  # (N,)
    voiced: np.ndarray  # (N,)
    tol_cents: float

    @property
    def accuracy(self) -> float:
        return float(self.right.mean())

    @property
    def voiced_rate(self) -> float:
        return float(self.voiced.mean())

    @property
    def median_abs_cents(self) -> float:
        """Median |error| over voiced clips (NaN when none is voiced)."""
        c = np.abs(self.cents[self.voiced])
        return float(np.median(c)) if c.size else float("nan")


PITCH_METHODS = ("shs", "yin")


def pitch_accuracy(waves, rate: int, targets: Sequence, tol_cents: float = 50.0, method: str = "shs",
                   **estimator) -> PitchAccuracy:
    """Pitch accuracy of clips (N, [C,] L) against their notes: class names, note names or MIDI numbers.

    A clip is right when it is voiced and its f0 lies within ±tol_cents (default 50: the nearest
    semitone) of the note's equal-tempered frequency; octave errors (±1200) are wrong. method: "shs"
    (`estimate_f0_shs`, subharmonic summation: harmonic, decaying and FM-bell notes) or "yin"
    (`estimate_f0`: the period of steady tones); `estimator` keyword arguments go to it.
    """
    if method not in PITCH_METHODS:
        raise ValueError(f"pitch method {method!r} is unknown; valid: {', '.join(PITCH_METHODS)}")
    midis = as_midis(targets)
    est = (estimate_f0_shs if method == "shs" else estimate_f0)(waves, rate, **estimator)
    if midis.shape != est.f0.shape:
        raise ValueError(f"got {midis.shape[0]} pitch targets for {est.f0.shape[0]} clips")
    if not tol_cents > 0:
        raise ValueError(f"tol_cents must be > 0, got {tol_cents}")
    cents = np.asarray(hz_to_cents_error(est.f0, midis), dtype=np.float64).reshape(-1)
    right = est.voiced & (np.abs(np.nan_to_num(cents, nan=np.inf)) <= tol_cents)
    return PitchAccuracy(right, cents, est.f0, est.voiced, float(tol_cents))


# -- Spectral estimator: subharmonic summation (for decaying and inharmonic notes) --------------------
#
# YIN measures a period, so it fails where a note has none to measure: a high Karplus-Strong pluck
# is gone after ~0.1 s (few frames pass the loudness gate and the threshold), and an FM bell's
# partials f0·|1 ± 1.4k| share only the period 5/f0 (YIN reads another octave). Subharmonic
# summation (Hermes 1988, "Measurement of pitch by subharmonic summation", JASA 83) scores each
# candidate f by the spectrum summed over its harmonics, weighted h^(k-1) (h = 0.84, the paper's
# value): H(f) = Σ_k h^(k-1) A(k f). Per frame (80 ms, Hann, zero-padded ×8) we read A on a
# 5-cent log-frequency grid with a small tolerance (inharmonicity, grid rounding), ask that the
# candidate itself carries a spectral peak (so no subharmonic of the note wins on its harmonics
# alone), and refine the winner to the nearest spectral peak by a parabola through the log
# magnitude (Smith & Serra 1987, "PARSHL"). As for YIN, a clip's f0 is the median over its voiced
# frames: short frames do not resolve the slow amplitude wobble of a generated note into sidebands
# (one spectrum of the whole clip does, and then picks a sideband 50-100 cents off).

_SHS_STEP_CENTS = 5.0


def _log_grid(mag: np.ndarray, freqs: np.ndarray, f_lo: float, f_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """The magnitude (R, bins) on a log grid of _SHS_STEP_CENTS from f_lo to f_hi: the largest bin
    within ±half a step of each grid point, or the interpolated value where no bin falls inside."""
    grid = f_lo * 2.0 ** (np.arange(int(1200 * np.log2(f_hi / f_lo) / _SHS_STEP_CENTS) + 1) * _SHS_STEP_CENTS / 1200)
    half = 2.0 ** (_SHS_STEP_CENTS / 2400)
    lo = np.minimum(np.searchsorted(freqs, grid / half), freqs.size - 1)
    hi = np.maximum(np.minimum(np.searchsorted(freqs, grid * half), freqs.size - 1), lo + 1)
    step = np.diff(freqs[:2])[0]
    pos = grid / step  # fractional bin of each grid point (freqs are uniform from 0)
    i0 = np.minimum(np.floor(pos).astype(int), freqs.size - 2)
    interp = mag[:, i0] * (1 - (pos - i0)) + mag[:, i0 + 1] * (pos - i0)
    cmax = np.maximum.reduceat(mag, np.stack([lo, hi], 1).ravel(), axis=1)[:, ::2]  # max over [lo, hi)
    return grid, np.maximum(cmax, interp)


def estimate_f0_shs(
    waves,
    rate: int,
    *,
    fmin: float = 50.0,
    fmax: float = 2000.0,
    harmonics: int = 8,
    weight: float = 0.84,
    frame_s: float = 0.08,
    tolerance_cents: float = 20.0,
    min_peak_db: float = -20.0,
    min_prominence_db: float = 25.0,
    min_voiced: float = 0.5,
    zero_pad: int = 8,
    chunk: int = 32,
) -> PitchEstimate:
    """Subharmonic-summation f0 of each clip (see the notes above): the median over its voiced frames.

    waves: (L,), (N, L) or (N, C, L) at `rate` Hz. fmin/fmax bound the candidates. harmonics and
    weight: H(f) = Σ_{k=1..harmonics} weight^(k-1) A(k f), A the frame's magnitude relative to its
    largest peak. frame_s: frame length (at least 4 periods of fmin; hop = half a frame).
    tolerance_cents: how far a harmonic may sit from k·f. A candidate must itself hold a peak within
    min_peak_db of the frame's largest; a frame is voiced when its winner's peak stands
    min_prominence_db over the frame spectrum's median (white noise: ~12 dB; a note: 40 dB or more).
    Frames 40 dB under the clip's loudest (or digitally silent) are skipped; a clip is voiced when its
    voiced frames hold at least `min_voiced` of the others' energy (voiced_fraction: that share).
    """
    x = _as_clips(waves)
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1:
        raise ValueError(f"rate must be a positive integer (Hz), got {rate!r}")
    if not 0 < fmin < fmax < rate / 2:
        raise ValueError(f"need 0 < fmin < fmax < rate/2 = {rate / 2}, got fmin={fmin}, fmax={fmax}")
    if isinstance(harmonics, bool) or not isinstance(harmonics, int) or harmonics < 1:
        raise ValueError(f"harmonics must be an integer >= 1, got {harmonics!r}")
    window = max(int(np.ceil(4 * rate / fmin)), int(round(frame_s * rate)))
    if x.shape[1] < window:
        raise ValueError(f"clips of {x.shape[1]} samples are too short for fmin={fmin} Hz and frame_s={frame_s} at "
                         f"{rate} Hz: need at least {window} samples (raise fmin or lower frame_s)")
    hop = max(1, window // 2)
    n_fft = next_fast_len(zero_pad * window, real=True)
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    tol = max(0, int(round(tolerance_cents / _SHS_STEP_CENTS)))
    shifts = [int(round(1200 * np.log2(k) / _SHS_STEP_CENTS)) for k in range(1, harmonics + 1)]
    reach = 2 ** ((tolerance_cents + _SHS_STEP_CENTS) / 1200)
    f0 = np.full(x.shape[0], np.nan)
    frac = np.zeros(x.shape[0])
    for s in range(0, x.shape[0], chunk):
        frames = np.lib.stride_tricks.sliding_window_view(x[s : s + chunk], window, axis=1)[:, ::hop]  # (n, F, W)
        n, nf = frames.shape[:2]
        rms = np.sqrt((frames**2).mean(-1))
        loud = (rms > _SILENCE_RMS) & (rms >= rms.max(1, keepdims=True) * 10 ** (_GATE_DB / 20))
        fr = frames.reshape(n * nf, window)
        spec = np.abs(rfft((fr - fr.mean(1, keepdims=True)) * np.hanning(window), n_fft, axis=1))  # (R, bins)
        peak = spec.max(1, keepdims=True)
        grid, g = _log_grid(spec / np.where(peak > 0, peak, 1.0), freqs, fmin, rate / 2)
        if tol:  # a harmonic may sit up to ±tolerance from k·f: take the largest value within it
            from scipy.ndimage import maximum_filter1d

            g = maximum_filter1d(g, 2 * tol + 1, axis=1, mode="nearest")
        cand = np.nonzero(grid <= fmax)[0]
        score = np.zeros((g.shape[0], cand.size))
        for k, sh in enumerate(shifts):
            ok = cand + sh < grid.size
            score[:, ok] += weight**k * g[:, cand[ok] + sh]
        score[g[:, cand] < 10 ** (min_peak_db / 20)] = -np.inf  # the candidate must carry a peak itself
        fc = grid[cand[np.argmax(score, axis=1)]]  # (R,)
        # refine: the largest bin within ±(tolerance + a step) of the winner, then a parabola through its dB
        db = 20 * np.log10(np.maximum(spec, 1e-300))
        lo = np.searchsorted(freqs, fc / reach)
        hi = np.searchsorted(freqs, fc * reach)
        width = int((hi - lo).max()) + 1
        idx = np.minimum(lo[:, None] + np.arange(width), freqs.size - 2)
        inside = idx <= hi[:, None]
        rows = np.arange(spec.shape[0])
        j = idx[rows, np.argmax(np.where(inside, spec[rows[:, None], idx], -1.0), axis=1)]
        j = np.maximum(j, 1)
        left, mid, right = db[rows, j - 1], db[rows, j], db[rows, j + 1]
        curv = left - 2 * mid + right
        shift = np.where(curv < 0, 0.5 * (left - right) / np.where(curv < 0, curv, -1.0), 0.0)
        hz = (j + np.clip(shift, -1, 1)) * rate / n_fft
        prominence = mid - np.median(db, axis=1)
        voiced = (loud.ravel() & (prominence >= min_prominence_db) & np.isfinite(score).any(1)).reshape(n, nf)
        hz = np.where(voiced, hz.reshape(n, nf), np.nan)
        energy = rms**2 * loud  # a decaying pluck: a few loud voiced frames, many faint noisy ones
        frac[s : s + n] = (energy * voiced).sum(1) / np.maximum(energy.sum(1), 1e-300)
        any_voiced = voiced.any(1)
        f0[s : s + n][any_voiced] = np.exp(np.nanmedian(np.log(hz[any_voiced]), axis=1))
    is_voiced = (frac >= min_voiced) & np.isfinite(f0)
    return PitchEstimate(np.where(is_voiced, f0, np.nan), is_voiced, frac)
