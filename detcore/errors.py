"""Errors that reach a user: each names the file (or setting) and the problem.

The CLI prints them as one line ``error: <file>: <problem>`` and exits 2; the app shows the
same text in ``st.error``. Anything else escaping is a bug, not a user error.
"""

from __future__ import annotations


class DetcoreError(Exception):
    """A user-facing error about one file or setting."""

    def __init__(self, file: str | object, problem: str):
        self.file = str(file)
        self.problem = problem
        super().__init__(f"{self.file}: {problem}")

    def one_line(self) -> str:
        return f"error: {self.file}: {self.problem}"


class DataError(DetcoreError):
    """A dataset, image or annotation file cannot be used."""


class ConfigError(DetcoreError):
    """A training/evaluation setting is out of range or unknown (file = the setting's name)."""


class WeightsUnavailable(DetcoreError):
    """Pretrained weights are not on disk and cannot be downloaded (file = expected path)."""


class CheckpointError(DetcoreError):
    """A checkpoint is unreadable, unsafe, or does not match the model/classes."""
