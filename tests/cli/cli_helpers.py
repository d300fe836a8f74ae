"""Helpers shared by the CLI tests (a plain module: conftest files of different folders clash)."""

from __future__ import annotations

from click.testing import CliRunner

from noisecraft.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_user_error(result, *fragments: str):
    """Exit code 2 and exactly one line `error: ...` containing every fragment, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in lines[0], (f, lines[0])


# A 2-step tiny run on 4-frame 16x16 moving digits, for the video CLI tests.
VIDEO_SHAPE = (1, 4, 16, 16)
VIDEO_TINY = ["--set", "data.source=moving-digits", "--set", "data.resolution=16", "--set", "data.options.frames=4",
              "--set", "data.options.num_clips=32", "--set", "train.batch_size=4", "--set", "sample.nfe=2",
              "--set", "sample.per_class=1"]


def train_tiny_video(out):
    result = run("train", "tiny", "--out", out, "--steps", 2, *VIDEO_TINY, "--quiet")
    assert result.exit_code == 0, result.output
    return out
