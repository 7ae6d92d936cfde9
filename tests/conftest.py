"""Shared test setup: every test gets its own DATA and RUNS roots so nothing leaks into ./data or ./runs.

OpenMP threads sleep instead of spinning while they wait (set before torch is imported, and inherited
by every server and job the tests start). On a 2-core machine that other jobs load, spinning threads
fight the other processes: measured on tests/models + export equivalence + trainer tests with two
busy processes beside them, 255 s with torch's default, 163 s passive (112 vs 96 s on a quiet machine).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOARD_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DETBOARD_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


# The session-scoped tiny Mask R-CNN run the mask tests share (tests/maskrun.py).
from tests.maskrun import mask_run_template  # noqa: E402,F401
