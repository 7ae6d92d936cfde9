"""TrainConfig validation and presets; run directories and status derivation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from detcore import atomic
from detcore.errors import CheckpointError, ConfigError, WeightsUnavailable
from detcore.train.config import TrainConfig, config_from_preset
from detcore.train.presets import PRESETS
from detcore.train.runs import Run, check_new_run_dir, list_runs, new_run_dir


@pytest.mark.parametrize("change, setting", [
    ({"lr": 0}, "lr"), ({"lr": -0.1}, "lr"), ({"epochs": 0}, "epochs"), ({"model": "yolov8"}, "model"),
    ({"optimizer": "lion"}, "optimizer"), ({"schedule": "poly"}, "schedule"), ({"device": "tpu"}, "device"),
    ({"test_fraction": 1.0}, "test_fraction"), ({"batch_size": 0}, "batch_size"), ({"min_size": 8}, "min_size"),
    ({"weights": "/nowhere/w.pth"}, "weights"), ({"augment": {"mixup": 1}}, "augment"),
])
def test_validate_names_the_bad_setting(change, setting):
    cfg = TrainConfig(**{"model": "ssdlite320_mobilenet_v3_large", "weights": "none", **change})
    with pytest.raises(ConfigError, match=setting):
        cfg.validate()


def test_validate_checks_weights_on_disk_before_any_data_is_read():
    cfg = TrainConfig(model="ssdlite320_mobilenet_v3_large", weights="coco")
    with pytest.raises(WeightsUnavailable, match="ssdlite320_mobilenet_v3_large_coco-a79551df.pth"):
        cfg.validate()


def test_batch_larger_than_dataset_is_refused():
    cfg = TrainConfig(weights="none", batch_size=8)
    cfg.validate(dataset_size=8)
    with pytest.raises(ConfigError, match="larger than the 7 training images"):
        cfg.validate(dataset_size=7)


def test_config_round_trips_through_json():
    cfg = TrainConfig(weights="none", grad_clip=5.0, augment={"hflip": 0.5, "rotate": 180})
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ConfigError, match="unknown setting"):
        TrainConfig.from_dict({**cfg.to_dict(), "learning_rate": 1})


def test_presets_are_valid_and_flags_override():
    for name in PRESETS:
        cfg = config_from_preset(name)
        assert cfg.preset == name
        if cfg.weights == "none":
            cfg.validate()
    demo = config_from_preset("demo-cpu", epochs=1, lr=None)
    assert demo.model == "ssdlite320_mobilenet_v3_large" and demo.weights == "none" and demo.device == "cpu"
    assert demo.epochs == 1 and demo.lr == PRESETS["demo-cpu"]["lr"]
    with pytest.raises(ConfigError, match="demo-gpu"):
        config_from_preset("demo-gpu")


def test_new_run_dir_never_reuses_a_folder(tmp_path):
    a = new_run_dir(tmp_path, "my run")
    b = new_run_dir(tmp_path, "my run")
    assert a.name == "my-run" and b.name == "my-run-2" and a.is_dir() and b.is_dir()
    atomic.write_json(a / "config.json", {"model": "m"})
    with pytest.raises(ConfigError, match="resume"):
        check_new_run_dir(a)


def _status(run_dir, status, pid, **extra):
    atomic.append_jsonl(run_dir / "events.jsonl", {"type": "status", "status": status, "message": "", "time": 0,
                                                   "pid": pid, **extra})


def test_status_running_with_dead_process_is_interrupted(tmp_path):
    import os
    import socket

    run_dir = new_run_dir(tmp_path, "r")
    atomic.write_json(run_dir / "config.json", {"model": "m", "epochs": 3})
    run = Run(run_dir)
    assert run.status() == "new"
    _status(run_dir, "running", os.getpid(), host=socket.gethostname())
    assert run.status() == "running"  # this very process is alive
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _status(run_dir, "running", dead.pid, host=socket.gethostname())
    assert run.status() == "interrupted" and "ended without a final status" in run.message()
    _status(run_dir, "completed", dead.pid)
    assert run.status() == "completed"
    assert [r.name for r in list_runs(tmp_path)] == ["r"]
    with pytest.raises(CheckpointError, match="no best.pt checkpoint"):
        run.checkpoint("best")
