"""Audio evaluation figures: YIN pitch error, the audio feature classifier's fit time and accuracy,
and a report on synthetic notes — on seeds the tests do not use.

    PYTHONPATH=src python benchmarks/audio_eval.py [--out benchmarks/results] [--n-train 2000]

* YIN: 200 clips per (rate, kind) at random fractional MIDI notes 57-81 (A3-A5, not only on the
  semitone grid), random phase and amplitude; |error| in cents (median, worst) and the voiced rate;
  white noise (should be unvoiced); seconds per 1,000 clips of 4,096 samples.
* Features: the toy note set of tests/eval/audio_synth.py (4 timbres × 4 notes, 4,096 samples),
  fitted on n-train clips with the defaults, one torch thread; held-out accuracy on 400 clips; then
  `audio_report` for fresh real clips, one timbre for every request, and white noise.

Writes audio_eval.md / audio_eval.json to --out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "eval"))

from _common import machine_info, machine_markdown, write_outputs  # noqa: E402
from audio_synth import TONE_KINDS, tone, toy_notes  # noqa: E402

from noisecraft.eval.audio import AudioClips, audio_report, build_audio_reference  # noqa: E402
from noisecraft.eval.audio_features import fit_audio_features  # noqa: E402
from noisecraft.data.note_names import hz_to_cents_error, midi_to_hz  # noqa: E402
from noisecraft.eval.pitch import estimate_f0  # noqa: E402

L = 4096
KINDS = TONE_KINDS


def _tone(kind: str, f0: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    x = tone(kind, f0, rate, L, rng.uniform(0, 2 * np.pi), rng)
    return rng.uniform(0.2, 0.9) * x / np.abs(x).max()


def yin_figures(seed: int = 100) -> list[dict]:
    rows = []
    for rate in (8000, 16000):
        for kind in KINDS:
            rng = np.random.default_rng(seed)
            midi = rng.uniform(57.0, 81.0, 200)
            x = np.stack([_tone(kind, float(midi_to_hz(m)), rate, rng) for m in midi])
            t0 = time.perf_counter()
            est = estimate_f0(x, rate)
            sec = time.perf_counter() - t0
            err = np.abs(hz_to_cents_error(est.f0, midi))
            rows.append({"rate": rate, "kind": kind, "median_abs_cents": float(np.nanmedian(err)),
                         "max_abs_cents": float(np.nanmax(err)), "voiced": float(est.voiced.mean()),
                         "seconds_per_1000": sec * 5})
        noise = np.random.default_rng(seed).standard_normal((200, L))
        est = estimate_f0(noise, rate)
        rows.append({"rate": rate, "kind": "white noise", "voiced": float(est.voiced.mean())})
    return rows


def feature_figures(rate: int, n_train: int) -> dict:
    train = AudioClips(*toy_notes(n_train, rate, seed=10), rate)
    test = AudioClips(*toy_notes(400, rate, seed=11), rate)
    t0 = time.perf_counter()
    ext = fit_audio_features(train.data, train.labels, rate, class_names=train.class_names,
                             holdout=(test.data, test.labels), use_cache=False)
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = build_audio_reference(test, train, ext)
    ref_seconds = time.perf_counter() - t0
    labels = torch.arange(200) % 16
    cases = {"fresh real clips": toy_notes(200, rate, seed=12, labels=labels)[0],
             "every request as a square wave": toy_notes(200, rate, seed=13, labels=labels, timbre="square")[0],
             "white noise": torch.randn(200, 1, L, generator=torch.Generator().manual_seed(14)) * 0.3}
    reports = {}
    for name, waves in cases.items():
        r = audio_report(waves, labels, ref)
        reports[name] = {**r["generated"], "seconds": r["seconds"]}
    return {"rate": rate, "n_train": n_train, "fit_seconds": fit_seconds, "reference_seconds": ref_seconds,
            "held_out_accuracy": ext.info["held_out_accuracy"], "train_accuracy": ext.info["train_accuracy"],
            "floor": ref.noise_floor, "reports": reports}


def markdown(yin: list[dict], feats: list[dict], info: dict) -> str:
    lines = ["# Audio evaluation", "", machine_markdown(info), "", "## YIN f0 (200 clips per row, MIDI 57-81)", "",
             "| rate | signal | median abs. error (cents) | worst (cents) | voiced | s per 1,000 clips |",
             "|---|---|---|---|---|---|"]
    for r in yin:
        if "median_abs_cents" in r:
            lines.append(f"| {r['rate']} | {r['kind']} | {r['median_abs_cents']:.3f} | {r['max_abs_cents']:.2f} | "
                         f"{r['voiced']:.3f} | {r['seconds_per_1000']:.2f} |")
        else:
            lines.append(f"| {r['rate']} | {r['kind']} | — | — | {r['voiced']:.3f} | |")
    keys = ("fd", "kid", "accuracy", "timbre_accuracy", "pitch_accuracy", "near_copy_rate")
    for f in feats:
        lines += ["", f"## Features and report at {f['rate']} Hz", "",
                  f"Fit on {f['n_train']} clips: {f['fit_seconds']:.1f} s (one thread), train accuracy "
                  f"{f['train_accuracy']:.3f}, held-out accuracy {f['held_out_accuracy']:.3f} (400 clips); "
                  f"reference with floors {f['reference_seconds']:.1f} s.", "",
                  "| clips | " + " | ".join(keys) + " | s |", "|---" * (len(keys) + 2) + "|"]
        rows = [("floor: real held-out", f["floor"])] + list(f["reports"].items())
        for name, r in rows:
            cells = [f"{r[k]:.4g}" if r.get(k) is not None else "—" for k in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {r.get('seconds', float('nan')):.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--n-train", type=int, default=2000)
    args = p.parse_args()
    torch.set_num_threads(1)
    info = machine_info()
    yin = yin_figures()
    feats = [feature_figures(rate, args.n_train) for rate in (8000, 16000)]
    md, js = write_outputs(args.out, "audio_eval", markdown(yin, feats, info),
                           {"machine": info, "yin": yin, "features": feats})
    print(md.read_text())
    print(f"wrote {md} and {js}")


if __name__ == "__main__":
    main()
