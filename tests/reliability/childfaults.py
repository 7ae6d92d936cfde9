"""Faults inside the training processes the job registry starts (detcore/train/supervise.py): the
test's code goes into a ``sitecustomize`` module on PYTHONPATH, which every Python process the test
starts runs first — so the child trains with the fault, as the in-process monkeypatch did when jobs
were threads. Guard rank-specific faults with ``os.environ.get("RANK")``."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path


def inject_into_children(monkeypatch, folder: Path, code: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(textwrap.dedent(code), encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))


# A training process deaf to Stop (as one stuck in a long validation would be): SIGTERM is ignored.
DEAF_TO_STOP = """
    import signal
    import threading

    import detcore.commands.train as train_command

    def deaf():
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return threading.Event()

    train_command._stop_on_sigterm = deaf
"""
