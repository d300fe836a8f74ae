"""Audio and video runs in the web app: downloads byte-identical to the CLI's (WAV; GIF and MP4), a player
for audio, inpainting a time span, looping GIFs in the gallery and the first MP4 in a player for video."""

from __future__ import annotations

from pathlib import Path

import pytest

from web_helpers import cli_run, generate_in_own_app, served

from noisecraft.runs import Run
from noisecraft.web import tasks_of

pytest.importorskip("soundfile", reason="audio runs need the audio extra")
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

RATE, LENGTH = 11025, 256
TINY = ["--set", "data.source=notes", "--set", f"data.resolution={LENGTH}", "--set", f"data.sample_rate={RATE}",
        "--set", "train.batch_size=8", "--set", "sample.nfe=2", "--set", "sample.per_class=1"]


@pytest.fixture(scope="module")
def notes_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "notes"
    result = cli_run("train", "tiny", "--out", out, "--steps", 2, *TINY, "--quiet")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def audio_client(notes_run, tmp_path_factory):
    with served({"notes": notes_run}, tmp_path_factory.mktemp("webaudio"), preview_interval=0) as url:
        yield Client(url, verbose=False)


def test_audio_run_offers_generate_inpaint_img2img(notes_run):
    assert tasks_of(Run.open(notes_run)) == ["generate", "inpaint", "img2img"]


def test_audio_generate_and_span_inpaint_equal_the_cli(audio_client, notes_run, tmp_path):
    out = audio_client.predict("notes", "pluck:A4", "", "euler", 2, 1.0, 5, 2, api_name="/generate")
    files = [Path(p) for p in out[2]]
    assert [p.name for p in files] == ["000000.wav", "000001.wav", "grid.png"]
    assert out[3] and Path(out[3]).read_bytes() == files[0].read_bytes()  # the player plays the first result
    r = cli_run("sample", notes_run, "--class", "pluck:A4", "--solver", "euler", "--nfe", 2, "--guidance", 1.0,
                "--seed", 5, "--n", 2, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    for p in files[:2]:
        assert p.read_bytes() == (tmp_path / "cli" / p.name).read_bytes()

    clip = tmp_path / "cli" / "000000.wav"
    got = audio_client.predict("notes", "bell:C4", None, handle_file(str(clip)), "0.005:0.015", "ddpm", 2, 3, 1.0, 0,
                               2, api_name="/inpaint")
    r = cli_run("inpaint", notes_run, "--audio", clip, "--span", "0.005:0.015", "--class", "bell:C4", "--resample", 2,
                "--nfe", 3, "--seed", 0, "--n", 2, "--out", tmp_path / "inp")
    assert r.exit_code == 0, r.output
    for p in [Path(x) for x in got[2]][:2]:
        assert p.read_bytes() == (tmp_path / "inp" / p.name).read_bytes()

    with pytest.raises(Exception, match="ends after the clip"):
        audio_client.predict("notes", "bell:C4", None, handle_file(str(clip)), "0.01:5", "ddpm", 2, 3, 1.0, 0, 1,
                             api_name="/inpaint")


def test_video_run_gives_the_clis_gifs_and_shows_them(video_run, tmp_path):
    run_dir = video_run
    assert tasks_of(Run.open(run_dir)) == ["generate", "predict", "interpolate"]
    out = generate_in_own_app("clips", run_dir, tmp_path / "root", "any (classes in turn)", "", "euler", 2, 1.0, 3, 2)
    files = [Path(p) for p in out[2]]
    assert [p.name for p in files if p.suffix == ".gif"] == ["000000.gif", "000001.gif"]
    assert [Path(t["image"]).suffix for t in out[1]] == [".gif", ".gif"]
    r = cli_run("sample", run_dir, "--solver", "euler", "--nfe", 2, "--guidance", 1.0, "--seed", 3, "--n", 2,
                "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    for p in files:
        if p.name != "grid.png":
            assert p.read_bytes() == (tmp_path / "cli" / p.name).read_bytes(), p.name
    # the player plays the first result's MP4 (H.264 yuv420p), the very file the CLI writes
    pytest.importorskip("imageio_ffmpeg", reason="MP4 needs the video extra")
    assert out[5] and Path(out[5]).read_bytes() == (tmp_path / "cli" / "000000.mp4").read_bytes()


def test_field_run_gives_the_clis_npz_and_heat_maps(field_run, tmp_path):
    run_dir = field_run
    assert tasks_of(Run.open(run_dir)) == ["generate", "reconstruct"]
    out = generate_in_own_app("grf", run_dir, tmp_path / "root", "any (classes in turn)", "", "euler", 2, 1.0, 4, 2)
    files = [Path(p) for p in out[2]]
    assert [p.name for p in files] == ["000000.npz", "000001.npz", "grid.png"]
    assert [Path(t["image"]).name for t in out[1]] == ["000000.preview.png", "000001.preview.png"]
    r = cli_run("sample", run_dir, "--solver", "euler", "--nfe", 2, "--seed", 4, "--n", 2, "--out", tmp_path / "cli")
    assert r.exit_code == 0, r.output
    for p in files[:2]:
        assert p.read_bytes() == (tmp_path / "cli" / p.name).read_bytes(), p.name
