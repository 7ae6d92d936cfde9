"""Fixtures for the reliability tests (helpers live in tinydata.py so test modules can import them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.tinydata import TINY, write_tiny_voc


@pytest.fixture
def tiny_voc(tmp_path) -> Path:
    from detcore import paths

    return write_tiny_voc(paths.data_root() / "tiny")


@pytest.fixture
def tiny_config(tiny_voc):
    """Factory: a validated-on-use TrainConfig on ``tiny_voc`` with the TINY settings plus overrides."""
    from detcore.train.config import TrainConfig

    def make(**overrides) -> TrainConfig:
        return TrainConfig(**{**TINY, "data": str(tiny_voc), "epochs": 1, **overrides})

    return make
