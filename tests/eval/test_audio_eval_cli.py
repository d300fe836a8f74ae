"""`noisecraft eval RUN` on an audio run: a tiny notes run (256 samples at 8 kHz) is sampled and scored
end to end, every figure next to its real-vs-real floor; image-only options are one-line errors."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
from click.testing import CliRunner

from noisecraft.cli.main import cli
from noisecraft.eval.audio_run import AUDIO_METRICS

LENGTH = 256
EVERY_FIGURE = ("fd", "kid", "accuracy", "coverage", "timbre_accuracy", "pitch_accuracy", "near_copy_rate")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_user_error(result, *fragments: str):
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="module")
def notes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "notes"
    result = run("train", "tiny", "--out", out, "--steps", 2, "--set", "data.source=notes", "--set",
                 f"data.resolution={LENGTH}", "--set", "train.batch_size=8", "--set", "sample.per_class=1", "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_eval_of_an_audio_run_reports_every_figure_with_its_floor(notes_run, tmp_path):
    args = ["eval", notes_run, "--n", 70, "--nfe", 2, "--kid-subsets", 5, "--quiet"]
    first = run(*args, "--out", tmp_path / "a")
    assert first.exit_code == 0, first.output
    assert "pitch_accuracy" in first.output and "(floor " in first.output
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    assert rep["n"] == 70 and rep["dataset"] == "notes" and rep["rate"] == 8000 and rep["shape"] == [1, LENGTH]
    for key in EVERY_FIGURE:
        assert isinstance(rep["generated"][key], float), key
        assert isinstance(rep["noise_floor"][key], float), key
    # the real data are the run's: the classifier fitted on its 2048 training notes, the floor half the test split
    assert rep["reference"] == {"n_reference": 256, "n_floor": 256, "n_test": 512, "n_train": 2048}
    assert rep["features"]["train"]["num_clips"] == 2048 and rep["features"]["held_out_accuracy"] > 0.9
    assert rep["noise_floor"]["accuracy"] > 0.9 and rep["noise_floor"]["timbre_accuracy"] > 0.9
    assert rep["generated"]["accuracy"] < rep["noise_floor"]["accuracy"]  # two training steps learn no notes
    for part in ("generated", "noise_floor"):  # the per-timbre breakdown, for the clips requested in each timbre
        for key in ("timbre_accuracy_by_timbre", "pitch_accuracy_by_timbre"):
            by = rep[part][key]
            assert list(by) == ["sine", "pluck", "bell", "brass"] and all(0 <= v <= 1 for v in by.values()), by
    assert rep["noise_floor"]["pitch_accuracy_by_timbre"]["sine"] == 1.0  # YIN finds every real sine's note
    md = (tmp_path / "a" / "report.md").read_text()
    for label in ("| FD |", "| KID |", "| class accuracy |", "| timbre accuracy |", "| pitch accuracy (±50",
                  "| near copies of training clips |", "floor: real held-out (n=256)", "![samples](samples.png)",
                  "By requested timbre", "| bell | "):
        assert label in md, label
    assert (tmp_path / "a" / "samples.png").is_file()
    info = sf.info(str(tmp_path / "a" / "samples" / "000031.wav"))  # one clip per class
    assert (info.samplerate, info.frames) == (8000, LENGTH)
    # Same seed: same figures, and the fitted classifier now comes from its cache.
    second = run(*args, "--out", tmp_path / "b")
    assert second.exit_code == 0, second.output
    rep2 = json.loads((tmp_path / "b" / "report.json").read_text())
    assert rep2["features"]["from_cache"] and not rep["features"]["from_cache"]
    assert rep2["generated"] == rep["generated"] and rep2["noise_floor"] == rep["noise_floor"]


def test_audio_metrics_can_be_chosen(notes_run, tmp_path):
    result = run("eval", notes_run, "--nfe", 2, "--metrics", "pitch,copies", "--quiet", "--out", tmp_path / "r")
    assert result.exit_code == 0, result.output
    rep = json.loads((tmp_path / "r" / "report.json").read_text())
    assert rep["n"] == rep["noise_floor"]["n"] == 256  # default n: as many clips as the floor's half
    keep = set(AUDIO_METRICS["pitch"]) | set(AUDIO_METRICS["copies"])
    assert set(rep["generated"]) == keep | {"n"} and set(rep["noise_floor"]) == keep | {"n"}
    assert rep["metrics"] == ["pitch", "copies"]
    assert not any(line.startswith("FD") for line in rep["notes"])  # no word about a figure not asked for


@pytest.mark.parametrize("extra, fragments", [
    (["--metrics", "fd,pr"], ["metric 'pr' applies to image runs only",
                              "valid for audio runs: fd, kid, acc, timbre, pitch, copies"]),
    (["--metrics", "nll"], ["metric 'nll' applies to image runs only"]),
    (["--metrics", "fd,pitchy"], ["metric 'pitchy' is unknown", "valid for audio runs"]),
    (["--sweep-nfe", "2,4"], ["--sweep-nfe is not available for audio runs"]),
    (["--features", "{tmp}/nope"], ["audio feature extractor", "cannot be loaded"]),
    (["--n", 1], ["--n 1 is out of range"]),
])
def test_audio_eval_user_errors(notes_run, tmp_path, extra, fragments):
    extra = [str(e).replace("{tmp}", str(tmp_path)) for e in extra]
    assert_user_error(run("eval", notes_run, "--out", tmp_path / "r", *extra), *fragments)
    assert not (tmp_path / "r").exists()


def test_too_few_clips_for_fd_is_one_line(notes_run, tmp_path):
    assert_user_error(run("eval", notes_run, "--n", 10, "--nfe", 2, "--out", tmp_path / "r"),
                      "--n 10 is too small for FD with 64-d features", "leave fd out of --metrics")
