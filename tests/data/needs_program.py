"""Tests that need an external program (e.g. espeak-ng): skipped, naming the package, where it is
missing - except under CI (CI=true), whose .ci/run installs it, so there a missing program fails."""

from __future__ import annotations

import os
import shutil

import pytest


def require_program(program: str, package: str) -> str:
    """The program's path; pytest.skip (or pytest.fail with CI=true) naming the package when absent."""
    path = shutil.which(program)
    if path:
        return path
    message = f"needs the {program} program: apt-get install {package}"
    if os.environ.get("CI", "").strip().lower() in ("true", "1"):
        pytest.fail(f"{message} (CI=true: .ci/run installs it, so it must be there)", pytrace=False)
    pytest.skip(message)
