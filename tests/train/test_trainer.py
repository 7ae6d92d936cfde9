"""The training loop end to end on tiny real images: run directory, events, checkpoints, resume,
stop, NaN guard, failures. Each run is 1–4 iterations of the smallest Faster R-CNN at 64 px."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from detcore import atomic
from detcore.errors import ConfigError, DataError
from detcore.train.events import Callback, JsonlWriter
from detcore.train.runs import Run
from detcore.train.trainer import train


class Recorder(Callback):
    def __init__(self):
        self.records, self.events = [], []

    def on_record(self, t, record):
        self.records.append(record)

    def on_step_end(self, t):
        self.events.append("step_end")

    def on_epoch_end(self, t):
        self.events.append("epoch_end")


def test_run_directory_events_and_checkpoints(tmp_path, tiny_parsed, make_config):
    rec = Recorder()
    run_dir = tmp_path / "run"
    status = train(make_config(epochs=1, eval_every=1), run_dir, dataset=tiny_parsed, callbacks=[rec])

    assert status == "completed"
    for name in ("config.json", "classes.json", "split.json", "events.jsonl", "checkpoints/last.pt",
                 "checkpoints/best.pt"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "eval").is_dir()
    run = Run(run_dir)
    assert run.classes() == ["red", "blue"]
    split = run.split()
    assert len(split.test) == 2 and len(split.train) == 4 and not set(split.train) & set(split.test)
    assert run.status() == "completed"
    # a callback sees exactly what the file holds, in order
    assert rec.records == run.events()
    steps = run.events("step")
    assert len(steps) == 2 and rec.events == ["step_end", "step_end", "epoch_end"]
    for key in ("epoch", "iter", "global_step", "total_steps", "losses", "loss", "lr", "images_per_s", "eta_s", "time"):
        assert key in steps[0]
    assert set(steps[0]["losses"]) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert steps[-1]["global_step"] == steps[-1]["total_steps"] == 2
    (epoch,) = run.events("epoch")
    assert epoch["val_loss"] > 0 and set(epoch["metrics"]) >= {"AP", "AP50", "AP75"}
    assert 0 <= epoch["metrics"]["AP50"] <= 1
    # checkpoints load weights-only and carry what a Predictor needs
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["classes"] == ["red", "blue"]
    assert ckpt["config"]["model"] == "fasterrcnn_mobilenet_v3_large_320_fpn"
    assert ckpt["model"]["roi_heads.box_predictor.cls_score.weight"].shape[0] == 3  # K + 1
    assert json.loads((run_dir / "config.json").read_text())["lr"] == 0.001


def test_resume_equals_uninterrupted_training(tmp_path, tiny_parsed, make_config):
    cfg = dict(epochs=2, max_iters_per_epoch=1, batch_size=2, augment={"hflip": 0.5, "color_jitter": 0.2})
    assert train(make_config(**cfg), tmp_path / "straight", dataset=tiny_parsed) == "completed"
    assert train(make_config(**{**cfg, "epochs": 1}), tmp_path / "resumed", dataset=tiny_parsed) == "completed"
    assert Run(tmp_path / "resumed").epochs_done() == 1
    assert train(None, tmp_path / "resumed", dataset=tiny_parsed, resume=True, extra_epochs=1) == "completed"

    straight, resumed = Run(tmp_path / "straight"), Run(tmp_path / "resumed")
    assert resumed.epochs_done() == straight.epochs_done() == 2
    assert resumed.config().epochs == 2
    assert [s["status"] for s in resumed.events("status")] == ["running", "completed", "running", "completed"]
    a = torch.load(straight.checkpoint("last"), weights_only=True)
    b = torch.load(resumed.checkpoint("last"), weights_only=True)
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"] == 2
    for key, value in a["model"].items():  # same seed, same data order, same LR: same weights
        assert torch.allclose(value.float(), b["model"][key].float(), atol=1e-6), key
    assert [s["loss"] for s in straight.events("step")] == pytest.approx([s["loss"] for s in resumed.events("step")])


def test_stop_event_ends_run_with_checkpoint(tmp_path, tiny_parsed, make_config):
    stop = threading.Event()

    class StopAfterFirstStep(Callback):
        def on_step_end(self, t):
            stop.set()

    status = train(make_config(epochs=2, max_iters_per_epoch=2), tmp_path / "run", dataset=tiny_parsed,
                   stop_event=stop, callbacks=[StopAfterFirstStep()])
    run = Run(tmp_path / "run")
    assert status == "stopped" and run.status() == "stopped"
    assert len(run.events("step")) == 1  # checked before the very next iteration
    assert run.checkpoint("last").is_file() and run.checkpoint("best").is_file()
    stopped = torch.load(run.checkpoint("last"), weights_only=True)
    assert stopped["epoch"] == 0  # the interrupted epoch is not counted: resume redoes it
    assert train(None, tmp_path / "run", dataset=tiny_parsed, resume=True) == "completed"
    assert run.status() == "completed" and run.epochs_done() == 2
    assert [s["global_step"] for s in run.events("step")] == [1, 1, 2, 3, 4]


def test_nan_loss_fails_with_clear_message(tmp_path, tiny_parsed, make_config):
    class Diverge(Callback):  # what a far too high learning rate does to the weights
        def on_step_end(self, t):
            with torch.no_grad():
                t.unwrapped_model.roi_heads.box_predictor.cls_score.weight.fill_(float("nan"))

    status = train(make_config(epochs=2), tmp_path / "run", dataset=tiny_parsed, callbacks=[Diverge()])
    run = Run(tmp_path / "run")
    assert status == "failed" and run.status() == "failed"
    assert "nan" in run.message().lower() and "learning rate" in run.message()
    assert len(run.events("step")) == 1


def test_failure_inside_training_is_recorded_and_raised(tmp_path, tiny_parsed, make_config):
    for sample in tiny_parsed.samples:
        sample.image_path.unlink()
    with pytest.raises(DataError, match="img00"):
        train(make_config(epochs=1, max_iters_per_epoch=4, batch_size=4), tmp_path / "run", dataset=tiny_parsed)
    run = Run(tmp_path / "run")
    assert run.status() == "failed" and "image file not found" in run.message()


def test_bad_config_leaves_no_run_behind(tmp_path, tiny_parsed, make_config):
    with pytest.raises(ConfigError, match="batch_size"):
        train(make_config(batch_size=5), tmp_path / "run", dataset=tiny_parsed)  # 4 training images
    assert not (tmp_path / "run" / "events.jsonl").exists()


def test_refuses_to_overwrite_an_existing_run(tmp_path, tiny_parsed, make_config):
    assert train(make_config(max_iters_per_epoch=1), tmp_path / "run", dataset=tiny_parsed) == "completed"
    before = (tmp_path / "run" / "events.jsonl").read_bytes()
    with pytest.raises(ConfigError, match="resume"):
        train(make_config(), tmp_path / "run", dataset=tiny_parsed)
    assert (tmp_path / "run" / "events.jsonl").read_bytes() == before


def test_best_checkpoint_follows_validation_ap(tmp_path, tiny_parsed, make_config):
    status = train(make_config(epochs=2, max_iters_per_epoch=1, eval_every=1), tmp_path / "run", dataset=tiny_parsed)
    run = Run(tmp_path / "run")
    assert status == "completed"
    aps = [e["metrics"]["AP"] for e in run.events("epoch")]
    best = torch.load(run.checkpoint("best"), weights_only=True)
    assert best["metrics"]["AP"] == max(aps)
    assert best["epoch"] == 1 + aps.index(max(aps))
    assert "optimizer" not in best  # for prediction only; resume uses last.pt
    assert "optimizer" in torch.load(run.checkpoint("last"), weights_only=True)


def test_early_stopping_ends_a_run_that_stopped_improving(tmp_path, tiny_parsed, make_config):
    # lr so small that validation AP barely moves (BatchNorm statistics still do)
    status = train(make_config(epochs=5, max_iters_per_epoch=1, eval_every=1, early_stopping_patience=1, lr=1e-9),
                   tmp_path / "run", dataset=tiny_parsed)
    run = Run(tmp_path / "run")
    assert status == "completed" and run.status() == "completed"
    assert 2 <= run.epochs_done() < 5
    assert "early stopping" in run.message()


def test_event_log_shows_each_epochs_first_step_at_once(tmp_path):
    """Steps are batched for a second, but the first one after a status or epoch record is written at
    once: a live chart (or a reader deciding 'this epoch is under way') sees it without waiting."""
    path = tmp_path / "events.jsonl"
    writer = JsonlWriter(path, flush_s=3600)
    writer.on_record(None, {"type": "status", "status": "running"})
    writer.on_record(None, {"type": "step", "step": 1})
    writer.on_record(None, {"type": "step", "step": 2})
    assert [r.get("step") for r in atomic.read_jsonl(path)] == [None, 1]
    writer.on_record(None, {"type": "epoch", "epoch": 1})
    writer.on_record(None, {"type": "step", "step": 3})
    assert [r["type"] for r in atomic.read_jsonl(path)] == ["status", "step", "step", "epoch", "step"]
