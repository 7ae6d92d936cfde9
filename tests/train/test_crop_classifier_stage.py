"""The crop classifier stage (detcore/train/classifier.py) in real runs of the trainer: it trains after
the detector, records what it did, is stored only when it raises validation AP, and every way of
predicting with the run then re-scores the same way."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from detcore.checkpoints import load_checkpoint
from detcore.crop_classifier import CropClassifier, default_spec
from detcore.detection_schema import SCORE_DECIMALS
from detcore.errors import ConfigError
from detcore.inference import Predictor
from detcore.train.classifier import CropClassifierStage, classifier_entry, store_classifier
from detcore.train.config import TrainConfig
from detcore.train.runs import Run
from detcore.train.state import Callback
from detcore.train.trainer import _time_budget, train
from tests.train.conftest import make_parsed, tiny_config

REPO = Path(__file__).resolve().parents[2]


def _stage_config(**overrides) -> TrainConfig:
    return tiny_config(val_fraction=0.2, eval_every=1, classifier_minutes=0.1, **overrides)


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory):
    """A run whose detector trained two steps and whose classifier stage then ran (~6 s)."""
    root = tmp_path_factory.mktemp("staged")
    parsed = make_parsed(root / "data", n=10)
    run_dir = root / "run"
    assert train(_stage_config(), run_dir, dataset=parsed) == "completed"
    return Run(run_dir), parsed


def _classifier_records(run: Run) -> list[dict]:
    return [r for r in run.events() if r["type"] == "classifier"]


def test_the_stage_runs_after_the_detector_and_says_what_it_decided(staged_run):
    run, _ = staged_run
    records = _classifier_records(run)
    assert [r["phase"] for r in records if r["phase"] != "training"] == ["started", "crops", "finished"]
    crops, finished = records[1], records[-1]
    # each training image's one box, seen as drawn and three times jittered; validation and test not at all
    assert crops["crops"] == 4 * len(run.split().train) and sum(crops["per_class"]) == crops["crops"]
    assert set(finished["detector"]) == {"AP", "AP50"} and set(finished["rescored"]) == {"AP", "AP50"}
    assert finished["images"] == len(run.split().val) > 0  # checked on the validation split, never test
    best = load_checkpoint(run.checkpoint_path("best"))
    # stored exactly when it raised validation AP; the Predictor then re-scores with it
    assert finished["kept"] == (finished["rescored"]["AP"] > finished["detector"]["AP"])
    assert ("classifier" in best) == finished["kept"]
    assert (Predictor.from_run(run.path, device="cpu").rescorer is not None) == finished["kept"]
    assert run.status() == "completed" and "crop classifier" in run.message()
    assert run.log().classifier["phase"] == "finished"


def test_a_stored_classifier_rescores_every_prediction_path_alike(staged_run, tmp_path):
    run, parsed = staged_run
    spec = default_spec(2)
    torch.manual_seed(3)
    store_classifier(run, classifier_entry(spec, CropClassifier(spec), {"images": 0}))
    assert "classifier" in load_checkpoint(run.checkpoint_path("last"))
    image_path = parsed.samples[0].image_path
    from detcore.data.images import load_rgb

    image = load_rgb(image_path)
    plain = Predictor.from_run(run.path, device="cpu", rescore=False).predict([image], score_floor=0.0)[0]
    rescored = Predictor.from_run(run.path, device="cpu").predict([image], score_floor=0.0)[0]
    assert len(plain.scores) and len(rescored.scores)
    # each object appears once per class and its classes' scores add up to the detector's score for it
    groups: dict[tuple, list[float]] = {}
    for box, score in zip(rescored.boxes.tolist(), rescored.scores.tolist()):
        groups.setdefault(tuple(box), []).append(score)
    complete = {box: s for box, s in groups.items() if len(s) == 2}
    assert complete
    for box, scores in complete.items():
        best_plain = plain.scores[np.all(plain.boxes == np.float32(box), axis=1)].max()
        assert sum(scores) == pytest.approx(float(best_plain), rel=1e-5)
    # the Predict page's path (one image, bounded memory) gives the same detections
    from detcore.image_prediction import predict_image

    shown_in_app = predict_image(Predictor.from_run(run.path, device="cpu"), image_path, score_floor=0.0).detections
    assert np.array_equal(shown_in_app.boxes, rescored.boxes) and np.array_equal(shown_in_app.scores, rescored.scores)
    # the CLI, in a new process, predicts the same detections from the checkpoint
    out = subprocess.run([sys.executable, "-m", "detcore", "predict", str(run.path), str(image_path), "--json",
                          "--score-threshold", "0.0", "--device", "cpu"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)["images"][0]["detections"]
    expected = sorted(rescored.scores.tolist(), reverse=True)
    assert [d["score"] for d in shown] == pytest.approx(expected, abs=10 ** -SCORE_DECIMALS)
    store_classifier(run, None)  # as trained again: gone from both checkpoints
    assert "classifier" not in load_checkpoint(run.checkpoint_path("best"))


def test_stop_during_the_stage_ends_the_run_stopped_with_the_detector_complete(tmp_path):
    stop = threading.Event()

    class StopWhenStageStarts(Callback):
        def on_record(self, t, record):
            if record.get("type") == "classifier" and record.get("phase") == "started":
                stop.set()

    status = train(_stage_config(), tmp_path / "run", dataset=make_parsed(tmp_path / "data", n=10),
                   stop_event=stop, callbacks=[StopWhenStageStarts()])
    run = Run(tmp_path / "run")
    assert status == "stopped" and "crop classifier" in run.message()
    assert _classifier_records(run)[-1]["phase"] == "skipped"
    assert "classifier" not in load_checkpoint(run.checkpoint_path("best"))


def test_one_class_skips_the_stage_and_the_detector_keeps_the_whole_time_limit(tmp_path):
    parsed = make_parsed(tmp_path / "data", n=8)
    parsed.classes = ["red"]
    for s in parsed.samples:
        s.labels = np.zeros_like(s.labels)
    assert train(_stage_config(), tmp_path / "run", dataset=parsed) == "completed"
    records = _classifier_records(Run(tmp_path / "run"))
    assert [r["phase"] for r in records] == ["skipped"] and "one class" in records[0]["message"]

    config = TrainConfig(time_limit=15, classifier_minutes=3.5)
    trains, skips = CropClassifierStage(["a", "b"], parsed.samples), CropClassifierStage(["a"], parsed.samples)
    assert _time_budget(config, 0.0, [trains])[0].limit == 11.5 * 60
    assert _time_budget(config, 0.0, [skips])[0].limit == 15 * 60
    assert _time_budget(config, 0.0, [])[0].limit == 15 * 60
    # a short limit: the classifier gets at most a quarter of it
    short = TrainConfig(time_limit=2, classifier_minutes=3.5)
    assert short.classifier_budget() == 0.5 and _time_budget(short, 0.0, [trains])[0].limit == 1.5 * 60


@pytest.mark.parametrize("values, problem", [
    (dict(classifier_minutes=-1), "minutes >= 0"),
    (dict(model="maskrcnn_resnet50_fpn", classifier_minutes=1), "re-scores boxes only"),
])
def test_settings_the_stage_cannot_work_with_are_refused(values, problem):
    with pytest.raises(ConfigError, match=problem):
        TrainConfig(weights="none", **values).validate()
