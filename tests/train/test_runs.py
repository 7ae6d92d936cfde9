"""Run, the one owner of the run folder: incremental events reading, validated files, checkpoint choice,
thresholds, resume checks (no training here: the files are written the way the trainer writes them)."""

from __future__ import annotations

import json
import os

import pytest

from detcore import atomic
from detcore.errors import CheckpointError, ConfigError, DataError
from detcore.train.config import TrainConfig
from detcore.train.runs import (MAX_STEPS_KEPT, EventReader, Run, RunLog, Status, parse_thresholds, run_summaries,
                                valid_record)


def _step(n: int, **extra) -> dict:
    return {"type": "step", "epoch": 0, "iter": n, "global_step": n + 1, "total_steps": 100, "loss": 1.0 / (n + 1),
            "losses": {"a": 0.5}, "lr": 0.01, "images_per_s": 3.0, "eta_s": 10.0, "time": 1.0, **extra}


def _make_run(path, **config) -> Run:
    run = Run(path)
    from detcore.data.splits import Split

    run.write_files(config=TrainConfig(weights="none", **config).to_dict(), classes=["a", "b"],
                    split=Split(train=["1", "2"], test=["3"]))
    return run


def test_reader_returns_only_what_was_appended_since_the_last_read(tmp_path):
    path = tmp_path / "events.jsonl"
    for n in range(3):
        atomic.append_jsonl(path, _step(n))
    reader = EventReader(path)
    assert [r["global_step"] for r in reader.read_new()] == [1, 2, 3]
    assert reader.read_new() == []
    atomic.append_jsonl(path, _step(3))
    atomic.append_jsonl(path, _step(4))
    assert [r["global_step"] for r in reader.read_new()] == [4, 5]


def test_a_torn_trailing_line_is_returned_once_it_is_complete(tmp_path):
    path = tmp_path / "events.jsonl"
    atomic.append_jsonl(path, _step(0))
    line = json.dumps(_step(1)) + "\n"
    with open(path, "a") as f:
        f.write(line[:25])  # a writer mid-append
    reader = EventReader(path)
    assert [r["global_step"] for r in reader.read_new()] == [1]
    assert reader.read_new() == [] and reader.skipped == 0
    with open(path, "a") as f:
        f.write(line[25:])
    assert [r["global_step"] for r in reader.read_new()] == [2]


def test_a_replaced_file_is_read_afresh(tmp_path):
    path = tmp_path / "events.jsonl"
    for n in range(5):
        atomic.append_jsonl(path, _step(n))
    reader = EventReader(path)
    assert len(reader.read_new()) == 5
    atomic.write_text(path, "".join(json.dumps(_step(n, loss=9.0)) + "\n" for n in range(7)))
    again = reader.read_new()
    assert reader.restarted and len(again) == 7 and {r["loss"] for r in again} == {9.0}


@pytest.mark.parametrize("line", [
    "[]", "{}", '{"type": "status"}', '{"type": "status", "status": "exploded"}', '{"type": "epoch"}',
    '{"type": "epoch", "epoch": "one"}', '{"type": "epoch", "epoch": 0, "metrics": {"AP": "high"}}',
    '{"type": "step", "global_step": true}', '{"type": "step", "global_step": 3, "loss": "nan"}',
    "not json at all", '{"type": "status", "status": "running", "pid": "12"}',
])
def test_malformed_records_are_skipped_and_counted(tmp_path, line):
    path = tmp_path / "events.jsonl"
    atomic.append_jsonl(path, _step(0))
    with open(path, "a") as f:
        f.write(line + "\n")
    atomic.append_jsonl(path, {"type": "epoch", "epoch": 0, "metrics": {"AP": 0.5}, "val_loss": None})
    log = RunLog(path).refresh()
    assert log.skipped == 1 and log.last_step["global_step"] == 1 and log.best_metric() == 0.5


def test_unknown_record_types_are_ignored_not_counted():
    assert valid_record({"type": "hello", "anything": [1]})


def test_run_log_thins_steps_but_keeps_the_last(tmp_path):
    path = tmp_path / "events.jsonl"
    n = MAX_STEPS_KEPT * 2 + 3
    atomic.write_text(path, "".join(json.dumps(_step(i)) + "\n" for i in range(n)))
    log = RunLog(path).refresh()
    assert len(log.steps) <= MAX_STEPS_KEPT and log.last_step["global_step"] == n
    gaps = {b["global_step"] - a["global_step"] for a, b in zip(log.steps, log.steps[1:])}
    assert gaps == {log.step_stride}  # evenly thinned


def test_status_is_derived_and_unreadable_runs_are_listed_with_the_reason(tmp_path):
    good = _make_run(tmp_path / "good")
    assert good.status() == Status.NEW
    atomic.append_jsonl(good.events_path, {"type": "status", "status": "completed", "message": "done", "time": 1.0,
                                           "pid": os.getpid()})
    bad = _make_run(tmp_path / "bad")
    atomic.write_json(bad.path / "config.json", [])
    rows = {r.name: r for r in run_summaries(tmp_path)}
    assert rows["good"].status == Status.COMPLETED and rows["good"].status.finished
    assert rows["bad"].status == Status.UNREADABLE and "config.json" in rows["bad"].problem
    with pytest.raises(DataError, match="config.json"):
        bad.config()


@pytest.mark.parametrize("content, problem", [
    ("[]", "expected a JSON object"), ('{"model": 3}', "model"), ('{"epochs": "ten"}', "epochs"),
    ('{"learning_rate": 1}', "unknown setting"), ("{not json", "unreadable"),
])
def test_hand_edited_config_is_an_error_naming_the_file(tmp_path, content, problem):
    run = _make_run(tmp_path / "r")
    (run.path / "config.json").write_text(content)
    with pytest.raises(DataError, match=problem) as e:
        run.config()
    assert e.value.file.endswith("config.json")


@pytest.mark.parametrize("content", ['["a", "a"]', "[]", '{"a": 1}', "[1, 2]"])
def test_hand_edited_classes_is_an_error_naming_the_file(tmp_path, content):
    run = _make_run(tmp_path / "r")
    (run.path / "classes.json").write_text(content)
    with pytest.raises(DataError, match="classes.json"):
        run.classes()


def test_checkpoint_choice_best_falls_back_to_last(tmp_path):
    run = _make_run(tmp_path / "r")
    with pytest.raises(CheckpointError, match="no best.pt checkpoint"):
        run.checkpoint()
    assert run.checkpoint_stamp() == "none"
    atomic.write_bytes(run.checkpoint_path("last"), b"x")
    assert run.checkpoint().name == "last.pt" and run.checkpoint_stamp().startswith("last.pt@")
    atomic.write_bytes(run.checkpoint_path("best"), b"y")
    assert run.checkpoint().name == "best.pt" and run.checkpoint("last").name == "last.pt"
    with pytest.raises(CheckpointError, match="not found"):
        run.checkpoint(str(tmp_path / "nope.pt"))


def test_thresholds_have_one_validation_rule(tmp_path):
    run = _make_run(tmp_path / "r")
    assert not run.thresholds().saved and run.thresholds().for_classes(["a", "b"]) == [0.5, 0.5]
    run.save_thresholds(global_threshold=0.3, per_class={"b": 0.7})
    saved = run.thresholds()
    assert saved.for_classes(["a", "b"]) == [0.3, 0.7] and saved.global_value() == 0.3
    for bad in ({"global": 5}, {"global": "abc"}, {"per_class": {"a": -0.1}}, {"per_class": [0.2]}, [],
                {"a": 0.5}, {"global": float("nan")}):
        with pytest.raises(DataError, match="thresholds.json"):
            parse_thresholds(bad, run.thresholds_path)
    with pytest.raises(DataError):
        run.save_thresholds(global_threshold=2.0, per_class={})
    assert run.thresholds() == saved  # a refused save changes nothing


def test_resume_plan_holds_the_resume_checks(tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        Run(tmp_path / "empty").resume_plan()
    run = _make_run(tmp_path / "r", epochs=3, data="somewhere")
    plan = run.resume_plan(2)
    assert plan.config.epochs == 5 and plan.checkpoint is None and "from the start" in plan.message
    assert run.resume_plan(-2).config.epochs == 1  # the CLI's --epochs may lower the total
    with pytest.raises(ConfigError, match="at least 1"):
        run.resume_plan(-3)
    atomic.write_bytes(run.checkpoint_path("last"), b"x")
    moved = run.resume_plan(0, data="elsewhere")
    assert moved.checkpoint == run.checkpoint_path("last") and moved.config.data == "elsewhere"


def test_a_run_being_created_is_never_listed_as_unreadable(tmp_path, monkeypatch):
    """config.json marks a folder as a run, so it is written after classes.json and split.json: a
    listing in between (the app polls while a job starts) must not call the new run unreadable."""
    seen = []
    real_write_json = atomic.write_json

    def spy(path, obj):
        seen.extend(r.status for r in run_summaries(tmp_path))
        return real_write_json(path, obj)

    monkeypatch.setattr(atomic, "write_json", spy)
    _make_run(tmp_path / "r")
    assert Status.UNREADABLE not in seen
