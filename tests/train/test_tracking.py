"""Experiment logs: a real training run read back with TensorBoard's own event reader shows the
losses of events.jsonl, the validation metrics and per-class PR curves; `train --mlflow URI` puts
params, the same metrics and the exported ONNX model into a local MLflow store."""

import json

import numpy as np
import pytest

from detcore import atomic
from detcore.train.trainer import train
from tests.reliability.tinydata import TINY, write_tiny_voc
from tests.train.conftest import tiny_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory):
    """2 epochs x 3 steps of the tiny Faster R-CNN, validated every epoch, TensorBoard on (default)."""
    from tests.train.conftest import make_parsed

    base = tmp_path_factory.mktemp("tb")
    parsed = make_parsed(base / "data", n=8)
    run = base / "run"
    assert train(tiny_config(epochs=2, max_iters_per_epoch=3, eval_every=1, test_fraction=0.25), run,
                 dataset=parsed) == "completed"
    return run


def test_tensorboard_shows_the_losses_of_events_jsonl(logged_run):
    acc = _scalars(logged_run / "tensorboard")
    steps = [r for r in atomic.read_jsonl(logged_run / "events.jsonl") if r["type"] == "step"]
    assert len(steps) == 6
    logged = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert logged.keys() == {r["global_step"] for r in steps}
    for r in steps:
        assert logged[r["global_step"]] == pytest.approx(r["loss"], rel=1e-6)  # float32 in the event file
        for name, value in r["losses"].items():
            (event,) = [e for e in acc.Scalars(f"train/{name}") if e.step == r["global_step"]]
            assert event.value == pytest.approx(value, rel=1e-6)
    lr = {e.step: e.value for e in acc.Scalars("train/lr")}
    assert [lr[r["global_step"]] for r in steps] == pytest.approx([r["lr"] for r in steps], rel=1e-6)


def test_tensorboard_has_validation_metrics_and_pr_curves_per_class(logged_run):
    acc = _scalars(logged_run / "tensorboard")
    epochs = [r for r in atomic.read_jsonl(logged_run / "events.jsonl") if r["type"] == "epoch"]
    assert len(epochs) == 2
    ap50 = [e.value for e in acc.Scalars("val/AP50")]
    assert ap50 == pytest.approx([r["metrics"]["AP50"] for r in epochs], abs=1e-6)
    assert [e.value for e in acc.Scalars("val/loss")] == pytest.approx([r["val_loss"] for r in epochs], rel=1e-6)
    tags = acc.Tags()["tensors"]
    for name in json.loads((logged_run / "classes.json").read_text()):
        assert f"pr_curve/{name}" in tags
        events = acc.Tensors(f"pr_curve/{name}")
        assert len(events) == 2
        from tensorboard.util.tensor_util import make_ndarray

        data = make_ndarray(events[-1].tensor_proto)  # rows: TP, FP, TN, FN, precision, recall
        assert data.shape == (6, 101)
        tp, fp, fn = data[0], data[1], data[3]
        assert (np.diff(tp) <= 0).all() and (np.diff(fp) <= 0).all()  # fewer detections as the threshold rises
        assert np.allclose(tp + fn, tp[0] + fn[0])  # TP + FN = the class's ground-truth count at every threshold


def test_tensorboard_can_be_switched_off(tmp_path, monkeypatch):
    from tests.train.conftest import make_parsed

    monkeypatch.setenv("DETBOARD_TENSORBOARD", "0")
    run = tmp_path / "run"
    assert train(tiny_config(max_iters_per_epoch=1), run, dataset=make_parsed(tmp_path / "d", n=4)) == "completed"
    assert not (run / "tensorboard").exists()


def test_pr_counts_at_thresholds_follow_the_matches():
    import pandas as pd

    from detcore.train.tracking import pr_counts

    # three detections scoring 0.9 (TP), 0.6 (FP), 0.3 (TP) of a class with 4 ground-truth objects
    curve = pd.DataFrame({"threshold": [0.9, 0.6, 0.3], "tp": [1, 1, 2], "fp": [0, 1, 1], "fn": [3, 3, 2]})
    c = pr_counts(curve, np.array([0.0, 0.3, 0.5, 0.9, 0.95]))
    assert c["tp"].tolist() == [2, 2, 1, 1, 0] and c["fp"].tolist() == [1, 1, 1, 0, 0]
    assert c["fn"].tolist() == [2, 2, 3, 3, 4]
    assert c["precision"].tolist() == pytest.approx([2 / 3, 2 / 3, 0.5, 1.0, 1.0])
    assert c["recall"].tolist() == pytest.approx([0.5, 0.5, 0.25, 0.25, 0.0])
    # a class the model never detected: an empty curve (a validation of an early, untrained model)
    empty = pr_counts(curve.iloc[:0], np.array([0.0, 0.5]), 4)
    assert empty["tp"].tolist() == [0, 0] and empty["fn"].tolist() == [4, 4] and empty["recall"].tolist() == [0, 0]


@pytest.mark.slow
def test_train_with_mlflow_logs_params_metrics_and_the_onnx_model(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from detcore.cli import main
    from detcore.export.runtime import ExportedModel

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 wants a database unless told
    data = write_tiny_voc(tmp_path / "data", n=8)
    run = tmp_path / "run"
    uri = (tmp_path / "mlruns").as_uri()
    args = ["train", "--data", str(data), "--out", str(run), "--mlflow", uri, "--epochs", "1",
            "--max-iters-per-epoch", "3", "--eval-every", "1"]
    for key in ("model", "weights", "device", "batch_size", "lr", "min_size", "max_size", "test_fraction",
                "num_workers"):
        args += [f"--{key.replace('_', '-')}", str(TINY[key])]
    assert main(args) == 0

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("detboard")
    (mlrun,) = client.search_runs([experiment.experiment_id])
    assert mlrun.info.run_name == "run" and mlrun.info.status == "FINISHED"
    assert mlrun.data.params["model"] == TINY["model"] and mlrun.data.params["classes"] == "red,blue"
    steps = [r for r in atomic.read_jsonl(run / "events.jsonl") if r["type"] == "step"]
    history = client.get_metric_history(mlrun.info.run_id, "train.loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == \
        [(r["global_step"], pytest.approx(r["loss"])) for r in steps]
    epoch = [r for r in atomic.read_jsonl(run / "events.jsonl") if r["type"] == "epoch"][-1]
    assert mlrun.data.metrics["val.AP50"] == pytest.approx(epoch["metrics"]["AP50"])
    (model_dir,) = client.list_artifacts(mlrun.info.run_id)
    (artifact,) = client.list_artifacts(mlrun.info.run_id, model_dir.path)
    assert artifact.path == "model/run-best.onnx"
    local = client.download_artifacts(mlrun.info.run_id, artifact.path, str(tmp_path / "dl"))
    assert ExportedModel.load(local).classes == ["red", "blue"]


def test_an_unusable_mlflow_uri_is_one_line_before_training(tmp_path, monkeypatch, capsys):
    from detcore.cli import main

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # MLflow 3 refuses a plain folder store
    data = write_tiny_voc(tmp_path / "data", n=4)
    run = tmp_path / "run"
    code = main(["train", "--data", str(data), "--out", str(run), "--mlflow", str(tmp_path / "mlruns"),
                 "--model", TINY["model"], "--weights", "none", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --mlflow: cannot use MLflow tracking URI")
    assert not run.exists()  # nothing was trained
