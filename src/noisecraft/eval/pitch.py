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
# YIN measures a period, so it fails where a note has none to measure: a Karplus-Strong pluck decays
# within a few frames (most frames fall under the loudness gate or the threshold), and an FM bell's
# partials fc·|1 ± 1.4k| share only the period 5/fc (YIN reads a sub- or super-octave). Subharmonic
# summation (Hermes 1988, "Measurement of pitch by subharmonic summation", JASA 83) scores each
# candidate f by the compressed spectrum summed over its harmonics, weighted h^(k-1) (h = 0.84, the
# paper's value): H(f) = Σ_k h^(k-1) A(k f). We read A on a log-frequency grid with a small
# tolerance (inharmonicity, grid rounding), ask that the candidate itself carries a spectral peak
# (so no subharmonic of the true note can win on its harmonics alone), and refine the winner to the
# nearest spectral peak by a parabola through the log magnitude (Smith & Serra 1987, "PARSHL").
# The spectrum is the Hann-windowed clip after its first `skip_s` seconds (a bell's strike is
# bright and inharmonic; its carrier, the note, dominates what follows), zero-padded ×8.

_SHS_STEP_CENTS = 5.0


def _log_grid(mag: np.ndarray, freqs: np.ndarray, f_lo: float, f_hi: float) -> tuple[np.ndarray, np.ndarray]:
    """The magnitude (N, bins) on a log grid of _SHS_STEP_CENTS from f_lo to f_hi: the largest bin
    within ±half a step of each grid point (the interpolated value where no bin falls inside)."""
    grid = f_lo * 2.0 ** (np.arange(int(1200 * np.log2(f_hi / f_lo) / _SHS_STEP_CENTS) + 1) * _SHS_STEP_CENTS / 1200)
    half = 2.0 ** (_SHS_STEP_CENTS / 2400)
    lo = np.searchsorted(freqs, grid / half)
    hi = np.maximum(np.searchsorted(freqs, grid * half), lo + 1)
    interp = np.stack([np.interp(grid, freqs, m) for m in mag])
    cmax = np.maximum.reduceat(mag, np.minimum(np.stack([lo, hi], 1).ravel(), mag.shape[1] - 1), axis=1)[:, ::2]
    out = np.where((hi > lo + 0) & (lo < mag.shape[1]), np.maximum(cmax, interp), interp)
    return grid, out


def estimate_f0_shs(
    waves,
    rate: int,
    *,
    fmin: float = 50.0,
    fmax: float = 2000.0,
    harmonics: int = 8,
    weight: float = 0.84,
    skip_s: float = 0.0,
    tolerance_cents: float = 20.0,
    min_peak_db: float = -20.0,
    min_prominence_db: float = 25.0,
    zero_pad: int = 8,
) -> PitchEstimate:
    """Subharmonic-summation f0 of each clip (see the notes above) and a voiced flag.

    waves: (L,), (N, L) or (N, C, L) at `rate` Hz. fmin/fmax bound the candidates. harmonics and
    weight: H(f) = Σ_{k=1..harmonics} weight^(k-1) A(k f), A the magnitude relative to the clip's
    largest peak. skip_s: seconds left out at the start (the strike). tolerance_cents: how far a
    harmonic may sit from k·f. A candidate must itself hold a peak within min_peak_db of the largest;
    a clip is voiced when its winner's peak stands min_prominence_db over the spectrum's median
    (white noise: ~12 dB; a note: 40 dB or more). voiced_fraction is 1.0 or 0.0 (one spectrum a clip).
    """
    x = _as_clips(waves)
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate < 1:
        raise ValueError(f"rate must be a positive integer (Hz), got {rate!r}")
    if not 0 < fmin < fmax < rate / 2:
        raise ValueError(f"need 0 < fmin < fmax < rate/2 = {rate / 2}, got fmin={fmin}, fmax={fmax}")
    if isinstance(harmonics, bool) or not isinstance(harmonics, int) or harmonics < 1:
        raise ValueError(f"harmonics must be an integer >= 1, got {harmonics!r}")
    start = int(round(skip_s * rate))
    period_max = int(np.ceil(rate / fmin))
    if start < 0 or x.shape[1] - start < 4 * period_max:
        raise ValueError(f"clips of {x.shape[1]} samples are too short for fmin={fmin} Hz after skip_s={skip_s} s at "
                         f"{rate} Hz: need at least {start + 4 * period_max} samples (raise fmin or lower skip_s)")
    n_fft = next_fast_len(zero_pad * x.shape[1], real=True)
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    spec = np.zeros((x.shape[0], freqs.size))
    block = 4 * period_max
    for i, clip in enumerate(x):
        # The segment: from skip_s to the last block still within -40 dB of the loudest one (a high
        # pluck is gone after ~0.1 s; a window over the silent rest would hold noise, not the note).
        n_blocks = (clip.size - start) // block
        rms = np.sqrt((clip[start : start + n_blocks * block].reshape(n_blocks, block) ** 2).mean(1))
        loud = np.nonzero(rms >= rms.max() * 10 ** (_GATE_DB / 20))[0]
        seg = clip[start : start + (loud[-1] + 1 if loud.size else n_blocks) * block]
        spec[i] = np.abs(rfft((seg - seg.mean()) * np.hanning(seg.size), n_fft))
    peak = spec.max(1, keepdims=True)
    silent = peak[:, 0] <= _SILENCE_RMS * x.shape[1]
    a = spec / np.where(peak > 0, peak, 1.0)
    grid, g = _log_grid(a, freqs, fmin, rate / 2)
    tol = max(0, int(round(tolerance_cents / _SHS_STEP_CENTS)))
    if tol:  # a harmonic may sit up to ±tolerance from k·f: take the largest value within it
        from scipy.ndimage import maximum_filter1d

        g = maximum_filter1d(g, 2 * tol + 1, axis=1, mode="nearest")
    cand = np.nonzero(grid <= fmax)[0]
    score = np.zeros((x.shape[0], cand.size))
    for k in range(1, harmonics + 1):
        idx = cand + int(round(1200 * np.log2(k) / _SHS_STEP_CENTS))
        ok = idx < grid.size
        score[:, ok] += weight ** (k - 1) * g[:, idx[ok]]
    score[g[:, cand] < 10 ** (min_peak_db / 20)] = -np.inf  # the candidate must carry a peak itself
    best = cand[np.argmax(score, axis=1)]
    f0 = np.full(x.shape[0], np.nan)
    voiced = np.zeros(x.shape[0], bool)
    db = 20 * np.log10(np.maximum(spec, 1e-300))
    for i in range(x.shape[0]):
        if silent[i] or not np.isfinite(score[i]).any():
            continue
        # refine: the largest bin within ±tolerance of the winner, then a parabola through its log magnitude
        fc = grid[best[i]]
        lo, hi = np.searchsorted(freqs, [fc * 2 ** (-(tolerance_cents + 5) / 1200), fc * 2 ** ((tolerance_cents + 5) / 1200)])
        j = lo + int(np.argmax(spec[i, lo:hi + 1]))
        if 0 < j < spec.shape[1] - 1:
            l, m, r = db[i, j - 1], db[i, j], db[i, j + 1]
            c = l - 2 * m + r
            j = j + (0.5 * (l - r) / c if c < 0 else 0.0)
        f = j * rate / n_fft
        prominence = db[i, int(round(j))] - np.median(db[i, freqs < rate / 2])
        if prominence >= min_prominence_db:
            f0[i], voiced[i] = f, True
    return PitchEstimate(f0, voiced, voiced.astype(np.float64))
