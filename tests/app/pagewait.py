"""Waiting on a page in AppTest: rerun until the metric a user watches says what we wait for."""

from __future__ import annotations

import time


def status_metric(at) -> str:
    return next(m.value for m in at.metric if m.label == "Status")


def run_until(at, done, timeout_s: float = 300):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        if done(at):
            return at
        time.sleep(1.0)
    raise AssertionError(f"timed out; metrics {[(m.label, m.value) for m in at.metric]}")
