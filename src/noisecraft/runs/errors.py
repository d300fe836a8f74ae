"""The error type of run folders."""

from __future__ import annotations

__all__ = ["RunError"]


class RunError(ValueError):
    """A user error about a run folder: not a run, no weights yet, unknown weights or condition. One line."""
