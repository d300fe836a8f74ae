"""The tabs of field and video runs through the HTTP API (gradio_client), and switching between served runs:
Reconstruct gives `noisecraft reconstruct`'s posterior.npz, heat maps and metrics.json byte for byte,
Predict / Interpolate give `noisecraft predict / interpolate`'s GIFs (and its first MP4 in the player),
bad uploads are refused with the CLI's one-line message, and each run shows exactly the tabs of the
tasks it supports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from web_helpers import cli_run, served

from noisecraft.runs import Run

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

TABS = ("inpaint", "img2img", "upscale", "predict", "interpolate", "reconstruct", "forecast")


@pytest.fixture(scope="module")
def multi(tiny_run, field_run, video_run, tmp_path_factory):
    """One app serving an image run ("tiny", first), a field run ("grf") and a video run ("clips")."""
    runs = {"tiny": tiny_run, "grf": field_run, "clips": video_run}
    with served(runs, tmp_path_factory.mktemp("webmulti"), preview_interval=0) as url:
        yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def uploads(field_run, tmp_path_factory):
    """OBS.npz of 5 points of a true 8x8 GRF test field, that field, bad observation files, a real
    4-frame test clip as a GIF at display scale 2 and a file that is no clip."""
    from noisecraft.data import load_dataset
    from noisecraft.data import load_moving_digits

    d = tmp_path_factory.mktemp("webtaskinputs")
    truth = load_dataset("grf", split="test", resolution=8).data[0]
    np.savez(d / "truth.npz", field=truth.numpy())
    idx = np.array([[0, 0], [1, 5], [3, 4], [6, 2], [7, 7]])
    np.savez(d / "obs.npz", idx=idx, values=truth[0, idx[:, 0], idx[:, 1]].numpy(), noise_std=np.float64(0.05))
    np.savez(d / "far.npz", idx=np.array([[0, 9]]), values=np.zeros(1))
    np.savez(d / "nan.npz", idx=np.array([[0, 1]]), values=np.array([np.nan]))
    np.savez(d / "bad_truth.npz", field=np.zeros((1, 4, 4), np.float32))
    (d / "junk.npz").write_bytes(b"not a zip archive")
    clips = load_moving_digits(split="test", resolution=16, frames=4, num_clips=2)
    clips.get_modality().write(clips.data[0], d / "clip.gif", scale=2)
    (d / "junk.gif").write_bytes(b"GIF89a but nothing after it")
    return d


def _names(out) -> list[str]:
    return [Path(p).name for p in out[2]]


def _same_as_cli(out, cli_dir: Path) -> None:
    for p in map(Path, out[2]):
        assert p.read_bytes() == (cli_dir / p.name).read_bytes(), p.name


def test_reconstruct_equals_cli_reconstruct_bytes(multi, field_run, uploads, tmp_path):
    job = multi.submit("grf", handle_file(str(uploads / "obs.npz")), handle_file(str(uploads / "truth.npz")),
                       None, None, 0, 4, 3, 3, api_name="/reconstruct")  # method: the default (dps), as the CLI
    out = job.result()
    assert _names(out) == ["posterior.npz", "mean.png", "std.png", "truth.png", "error.png", "metrics.json"]
    assert [(Path(t["image"]).name, t["caption"]) for t in out[1]] == [
        ("mean.png", "mean"), ("std.png", "std"), ("truth.png", "truth"), ("error.png", "error")]
    r = cli_run("reconstruct", field_run, "--observations", uploads / "obs.npz", "--truth", uploads / "truth.npz",
                "--n", 3, "--nfe", 4, "--seed", 3, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    _same_as_cli(out, tmp_path / "cli")
    metrics = json.loads(Path(out[2][-1]).read_text())
    assert f"relative_l2 {metrics['relative_l2']:.4g}" in out[4] and "coverage_90" in out[4], out[4]
    assert out[4].startswith("reconstruct: 3 posterior sample(s), seeds 3..5")
    assert any(o[4].startswith("reconstruct: step ") for o in job.outputs()[:-1])  # the live view streamed

    # without the truth: posterior.npz and the two heat maps, the same as the CLI's (tmpd: heun by default)
    out = multi.predict("grf", handle_file(str(uploads / "obs.npz")), None, "tmpd", None, 0, 3, 0, 2,
                        api_name="/reconstruct")
    assert _names(out) == ["posterior.npz", "mean.png", "std.png"]
    r = cli_run("reconstruct", field_run, "--observations", uploads / "obs.npz", "--method", "tmpd", "--n", 2,
                "--nfe", 3, "--seed", 0, "--out", tmp_path / "tmpd")
    assert r.exit_code == 0, r.output
    _same_as_cli(out, tmp_path / "tmpd")


def _error(call) -> str:
    with pytest.raises(Exception) as info:
        call()
    return " ".join(str(info.value).split())


@pytest.mark.parametrize("obs, truth, fragment", [
    ("far.npz", None, "observations file 'far.npz': idx[0] = [0, 9] is outside the 8x8 field"),
    ("nan.npz", None, "values[0] is not finite"),
    ("junk.npz", None, "is not a readable NPZ"),
    ("obs.npz", "bad_truth.npz", "expected (1, 8, 8)"),
    (None, None, "no observations file was uploaded"),
])
def test_bad_observation_files_get_the_clis_message(multi, field_run, uploads, tmp_path, obs, truth, fragment):
    def file(name):
        return None if name is None else handle_file(str(uploads / name))

    message = _error(lambda: multi.predict("grf", file(obs), file(truth), "pigdm", None, 0, 2, 0, 1,
                                           api_name="/reconstruct"))
    assert fragment in message, message
    if obs is not None:  # the CLI names the same defect
        args = ["--truth", uploads / truth] if truth else []
        r = cli_run("reconstruct", field_run, "--observations", uploads / obs, *args, "--out", tmp_path / "r")
        assert r.exit_code == 2 and fragment.replace("'far.npz'", repr(str(uploads / "far.npz"))) in r.output, r.output


def test_physics_guidance_is_refused_where_it_cannot_apply(multi, uploads):
    obs = handle_file(str(uploads / "obs.npz"))
    message = _error(lambda: multi.predict("grf", obs, None, None, None, 2.0, 2, 0, 1, api_name="/reconstruct"))
    assert "'grf' has none built in; valid: darcy" in message, message  # the grf run has no PDE residual
    message = _error(lambda: multi.predict("grf", obs, None, "pigdm", None, 2.0, 2, 0, 1, api_name="/reconstruct"))
    assert "needs method dps" in message, message


@pytest.mark.parametrize("task, keep, flag", [("predict", 2, "2"), ("interpolate", "0,3", "0,3")])
def test_predict_and_interpolate_equal_the_cli(multi, video_run, uploads, tmp_path, task, keep, flag):
    out = multi.predict("clips", "any (classes in turn)", handle_file(str(uploads / "clip.gif")), keep, "ddpm", 2, 2,
                        1.0, 4, 2, api_name=f"/{task}")
    gifs = [p for p in _names(out) if p.endswith(".gif")]
    assert gifs == ["000000.gif", "000001.gif"] and _names(out)[-1] == "grid.png"
    assert out[4].startswith(f"{task}: 2 result(s), seeds 4..5"), out[4]
    r = cli_run(task, video_run, "--video", uploads / "clip.gif", "--keep", flag, "--resample", 2, "--nfe", 2,
                "--guidance", 1.0, "--seed", 4, "--n", 2, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    _same_as_cli(out, tmp_path / "cli")
    if importlib.util.find_spec("imageio_ffmpeg"):  # with the video extra: the player gets the CLI's first MP4
        assert Path(out[5]).read_bytes() == (tmp_path / "cli" / "000000.mp4").read_bytes()
    m = Run.open(video_run).get_modality()
    shape = Run.open(video_run).shape
    given, got = m.read(uploads / "clip.gif", shape, scale=2), m.read(out[2][0], shape, scale=2)
    kept = [0, 1] if task == "predict" else [0, 3]
    assert np.array_equal(got[:, kept].numpy(), given[:, kept].numpy())  # kept frames come back exactly


@pytest.mark.parametrize("task, clip, keep, fragment", [
    ("predict", "clip.gif", 4, "keep 4 is out of range; valid: an integer 1..3"),
    ("predict", "clip.gif", 0, "0 is less than minimum value 1"),
    ("interpolate", "clip.gif", "0,9", "frame 9 is out of range for clips of 4 frames; valid: 0..3"),
    ("interpolate", "clip.gif", "0,1,2,3", "nothing to generate"),
    ("interpolate", "clip.gif", "first,last", "keep 'first,last' is not a comma-separated list"),
    ("predict", "junk.gif", 1, "the uploaded video clip was refused"),
    ("predict", None, 1, "no video clip was uploaded"),
])
def test_bad_clips_and_keeps_are_refused_with_a_message(multi, uploads, task, clip, keep, fragment):
    upload = None if clip is None else handle_file(str(uploads / clip))
    message = _error(lambda: multi.predict("clips", "any (classes in turn)", upload, keep, "ddpm", 1, 2, 1.0, 0, 1,
                                           api_name=f"/{task}"))
    assert fragment in message, message


def test_switching_runs_shows_the_right_tabs_and_uses_the_new_run(multi, field_run, tmp_path):
    """/select_run is what the page calls when the run dropdown changes; its last output is the line naming
    the run's tasks (Gradio's API leaves the tabs' own updates out: the next test checks those)."""
    assert multi.predict("grf", api_name="/select_run")[-1] == "field run; tasks: Generate, Reconstruct"
    assert multi.predict("clips", api_name="/select_run")[-1] == "video run; tasks: Generate, Predict, Interpolate"
    assert multi.predict("tiny", api_name="/select_run")[-1] == "image run; tasks: Generate, Inpaint, Img2img, Upscale"
    update = multi.predict("grf", api_name="/select_run")
    assert update[0]["visible"] is False and update[3]["value"] == Run.open(field_run).config.sample.nfe
    # generating after the switch draws from the field run: the CLI's NPZ fields, not digits
    out = multi.predict("grf", "any (classes in turn)", "", "euler", 2, 1.0, 6, 2, api_name="/generate")
    assert _names(out) == ["000000.npz", "000001.npz", "grid.png"]
    r = cli_run("sample", field_run, "--solver", "euler", "--nfe", 2, "--seed", 6, "--n", 2, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    for p in map(Path, out[2][:2]):
        assert p.read_bytes() == (tmp_path / "cli" / p.name).read_bytes()


def test_select_run_shows_exactly_the_tabs_of_the_runs_tasks(tiny_run, field_run, video_run, tmp_path):
    """The tab updates of the dropdown's change event, read from the app itself and matched to the tabs
    they are wired to."""
    import gradio as gr

    from noisecraft.web.app import build_app

    runs = {"tiny": Run.open(tiny_run), "grf": Run.open(field_run), "clips": Run.open(video_run)}
    app = build_app(runs, root=tmp_path)
    dep = next(f for f in app.fns.values() if f.api_name == "select_run")
    want = {"tiny": {"inpaint", "img2img", "upscale"}, "grf": {"reconstruct"}, "clips": {"predict", "interpolate"}}
    for name, tabs in want.items():
        out = dep.fn(name)
        shown = {b.id for b, u in zip(dep.outputs, out) if isinstance(b, gr.Tab) and u["visible"]}
        hidden = {b.id for b, u in zip(dep.outputs, out) if isinstance(b, gr.Tab) and not u["visible"]}
        assert shown == tabs and hidden == set(TABS) - tabs, (name, shown, hidden)
        # no path into the run folder: Gradio refuses to serve one outside the working and temp folders
        assert not [v for v in out if isinstance(v, str) and str(runs[name].path) in v]
        loss = next(v for b, v in zip(dep.outputs, out) if getattr(b, "label", None) == "Loss curve (loss.png)")
        assert isinstance(loss, np.ndarray) and loss.ndim == 3, type(loss)


@pytest.mark.parametrize("name, api, args, fragment", [
    ("tiny", "/reconstruct", (None, None, "pigdm", None, 0, 2, 0, 1), "run 'tiny' cannot reconstruct"),
    ("grf", "/predict", ("any (classes in turn)", None, 1, "ddpm", 1, 2, 1.0, 0, 1), "run 'grf' cannot predict"),
    ("tiny", "/interpolate", ("any (classes in turn)", None, "0,1", "ddpm", 1, 2, 1.0, 0, 1),
     "run 'tiny' cannot interpolate"),
])
def test_a_task_the_run_does_not_support_is_refused(multi, name, api, args, fragment):
    message = _error(lambda: multi.predict(name, *args, api_name=api))
    assert fragment in message, message
