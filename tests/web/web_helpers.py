"""Helpers the web tests import by name (a module name of its own: `conftest` is ambiguous when
several test folders are collected together)."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from noisecraft.cli.main import cli


def cli_run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
