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
