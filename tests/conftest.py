"""Shared test setup: every test gets its own DATA and RUNS roots so nothing leaks into ./data or ./runs."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("DETBOARD_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DETBOARD_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
