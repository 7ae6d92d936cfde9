"""Out-of-range settings are refused before anything starts: a ConfigError naming the setting, no job
in the registry, no run folder on disk (so the runs list is not littered with dead runs)."""

from __future__ import annotations

import re

import pytest

from detcore.errors import ConfigError
from detcore.train.jobs import JobRegistry

from tests.reliability.tinydata import run_cli

BAD = [
    (dict(lr=0.0), "lr", "positive"),
    (dict(lr=-0.01), "lr", "positive"),
    (dict(epochs=0), "epochs", "at least 1"),
    (dict(model="yolo_v99"), "model", "yolo_v99"),
]


@pytest.mark.parametrize(("overrides", "setting", "says"), BAD, ids=[f"{s}={list(o.values())[0]}" for o, s, _ in BAD])
def test_validate_names_the_setting(tiny_config, overrides, setting, says):
    with pytest.raises(ConfigError, match=says) as err:
        tiny_config(**overrides).validate()
    assert err.value.file == setting


def test_batch_larger_than_the_training_split_is_named():
    from detcore.train.config import TrainConfig
    from tests.reliability.tinydata import TINY

    with pytest.raises(ConfigError, match="larger than the 6 training images") as err:
        TrainConfig(**{**TINY, "batch_size": 7}).validate(dataset_size=6)
    assert err.value.file == "batch_size"


@pytest.mark.parametrize(("overrides", "setting", "says"), BAD, ids=[f"{s}={list(o.values())[0]}" for o, s, _ in BAD])
def test_job_registry_refuses_before_a_job_or_run_folder_exists(tmp_path, tiny_config, overrides, setting, says):
    registry = JobRegistry(tmp_path / "runs")
    with pytest.raises(ConfigError, match=says):
        registry.start(tiny_config(**overrides))
    assert registry.jobs() == [] and registry.active() is None
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_job_registry_refuses_a_batch_larger_than_the_dataset(tmp_path, tiny_config):
    registry = JobRegistry(tmp_path / "runs")
    try:
        with pytest.raises(ConfigError, match="batch_size|larger than"):
            registry.start(tiny_config(batch_size=50))
    finally:
        for job in registry.jobs():
            job.join(120)
    assert registry.jobs() == []
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_cli_refuses_bad_settings_in_one_line_without_a_run(tmp_path, tiny_voc):
    out = tmp_path / "run"
    done = run_cli("train", "--data", str(tiny_voc), "--model", "fasterrcnn_mobilenet_v3_large_320_fpn",
                   "--weights", "none", "--device", "cpu", "--batch-size", "50", "--out", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(r"error: batch_size: 50 is larger than the \d training images", lines[0]), lines
    assert not (out / "config.json").exists() and not (out / "events.jsonl").exists()

    done = run_cli("train", "--data", str(tiny_voc), "--model", "nope", "--lr", "0", "--out", str(out))
    assert done.returncode == 2 and done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())
