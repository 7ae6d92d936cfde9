"""Checkpoints are data, never code: a crafted pickle is refused (and proven not to have run), and a
checkpoint that belongs to another class list or model is refused with the mismatch named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from detcore.errors import CheckpointError
from detcore.inference import Predictor
from detcore.train.runs import Run
from detcore.train.trainer import train

from tests.reliability.tinydata import TINY, write_tiny_voc


class CodeOnLoad:
    """Unpickling this calls ``open(marker, "w")`` — the file appearing proves code ran from the checkpoint."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def run_template(tmp_path_factory) -> tuple[Path, Path]:
    from detcore.train.config import TrainConfig

    base = tmp_path_factory.mktemp("ckpt-run")
    data = write_tiny_voc(base / "tiny")
    config = TrainConfig(**{**TINY, "data": str(data), "epochs": 1, "max_iters_per_epoch": 1})
    assert train(config, base / "run") == "completed"
    return base / "run", data


@pytest.fixture
def run(run_template, tmp_path) -> Path:
    return Path(shutil.copytree(run_template[0], tmp_path / "run"))


def _plant(path: Path, marker: Path) -> None:
    # The payload sits where the weights go, as an attacker would ship it.
    torch.save({"model": CodeOnLoad(marker), "classes": ["red", "blue"]}, path)


def test_predictor_refuses_a_crafted_pickle_without_running_it(run, tmp_path):
    marker = tmp_path / "code-ran"
    _plant(run / "checkpoints" / "best.pt", marker)
    with pytest.raises(CheckpointError, match="weights-only") as err:
        Predictor.from_run(run, checkpoint="best", device="cpu")
    assert err.value.file.endswith("best.pt")
    assert not marker.exists()


def test_resume_never_runs_code_from_a_crafted_checkpoint(run, tmp_path):
    marker = tmp_path / "code-ran"
    _plant(run / "checkpoints" / "last.pt", marker)
    with pytest.raises(Exception):
        train(None, run, resume=True, extra_epochs=1)
    assert not marker.exists()
    assert Run(run).status() == "failed"  # recorded, so the app shows it instead of "running"
    assert Run(run).epochs_done() == 1  # nothing was trained on top


def test_resume_refuses_a_crafted_checkpoint_with_a_checkpoint_error(run, tmp_path):
    _plant(run / "checkpoints" / "last.pt", tmp_path / "code-ran")
    with pytest.raises(CheckpointError, match="last.pt"):
        train(None, run, resume=True, extra_epochs=1)


def test_predictor_names_a_class_list_mismatch(run):
    path = run / "checkpoints" / "best.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["classes"] = ["cat", "dog"]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"classes \['cat', 'dog'\].*\['red', 'blue'\]"):
        Predictor.from_run(run, checkpoint="best", device="cpu")


def test_predictor_names_a_model_mismatch(run):
    path = run / "checkpoints" / "best.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["config"]["model"] = "ssdlite320_mobilenet_v3_large"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="ssdlite320_mobilenet_v3_large.*fasterrcnn_mobilenet_v3_large_320_fpn"):
        Predictor.from_run(run, checkpoint="best", device="cpu")


def test_predictor_refuses_weights_that_do_not_fit_the_model(run):
    # Another model's weights under a matching label (a copied file): refused, naming what does not fit.
    from detcore.models import build_model

    path = run / "checkpoints" / "best.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"] = build_model("ssdlite320_mobilenet_v3_large", classes=["red", "blue"], weights="none").state_dict()
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="does not fit the run's model"):
        Predictor.from_run(run, checkpoint="best", device="cpu")


def test_resume_refuses_a_checkpoint_with_another_class_count(run):
    from detcore.models import build_model

    path = run / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"] = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", classes=["a", "b", "c"], weights="none",
                                min_size=64, max_size=96).state_dict()
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="last.pt.*cannot resume"):
        train(None, run, resume=True, extra_epochs=1)
    assert Run(run).epochs_done() == 1


def test_resume_names_a_class_list_mismatch(run):
    path = run / "checkpoints" / "last.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["classes"] = ["blue", "red"]
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="classes"):
        train(None, run, resume=True, extra_epochs=1)


def test_cli_predict_refuses_a_crafted_checkpoint_in_one_line(run, tmp_path):
    from tests.reliability.tinydata import run_cli

    marker = tmp_path / "code-ran"
    _plant(run / "checkpoints" / "best.pt", marker)
    image = next((run_template_image_dir(run)).glob("*.png"))
    done = run_cli("predict", str(run), str(image), "--device", "cpu", "--json")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and "best.pt" in done.stderr.splitlines()[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not marker.exists()


def test_a_crafted_checkpoint_error_is_one_line_without_unsafe_advice(run, tmp_path):
    _plant(run / "checkpoints" / "best.pt", tmp_path / "code-ran")
    with pytest.raises(CheckpointError) as err:
        Predictor.from_run(run, checkpoint="best", device="cpu")
    assert "\n" not in str(err.value) and "\x1b" not in str(err.value)
    assert "weights_only` set to `False`" not in str(err.value)


def run_template_image_dir(run: Path) -> Path:
    """The tiny dataset the run was trained on (its config names it)."""
    return Path(Run(run).config().data) / "images"
