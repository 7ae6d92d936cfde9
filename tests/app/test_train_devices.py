"""The Train form's Devices field: two CPU processes (torchrun, gloo) from the page, with the live
charts growing and the run completing; the start is in the audit log with the session that asked."""

import json

import pytest

from detcore import paths
from detcore.train.runs import Run
from tests.app.pagewait import run_until, status_metric

pytestmark = pytest.mark.slow  # torchrun and two torch processes


def _step(at) -> str:
    return next(m.value for m in at.metric if m.label == "Step")


def test_a_two_process_gloo_job_from_the_train_page_runs_to_completion_with_live_charts(app):
    at = app.run()
    at.switch_page("pages/train.py").run()
    devices = at.selectbox(key="train_demo-cpu_devices")
    assert devices.value == "CPU · 1 process" and "CPU · 2 processes (gloo)" in devices.options
    devices.set_value("CPU · 2 processes (gloo)")
    for name, value in dict(epochs=2, batch_size=2, max_iters=2, eval_every=0).items():
        at.number_input(key=f"train_demo-cpu_{name}").set_value(value)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_dir = at.session_state["run_dir"]

    run_until(at, lambda a: status_metric(a) in ("running", "completed") and not _step(a).startswith("0 "))
    if status_metric(at) == "running":  # the charts are drawn while it trains
        assert at.get("plotly_chart"), "no live loss chart while the job runs"
    run_until(at, lambda a: status_metric(a) == "completed")
    assert _step(at) == "4 / 4"
    assert at.get("plotly_chart")
    run = Run(run_dir)
    assert run.job_spec().processes == 2 and run.status() == "completed"
    assert [r["status"] for r in run.events("status")] == ["running", "completed"]

    audit = [json.loads(line) for line in (paths.runs_root() / "audit.jsonl").read_text().splitlines()]
    started = [r for r in audit if r["event"] == "job_started"]
    assert len(started) == 1 and started[0]["processes"] == 2 and started[0]["run"] == Run(run_dir).name
    assert started[0]["session"] and started[0]["client"] == "local"


def test_a_job_that_does_not_stop_is_ended_by_kill_now_and_stays_resumable(app, monkeypatch, tmp_path):
    from tests.reliability.childfaults import DEAF_TO_STOP, inject_into_children

    inject_into_children(monkeypatch, tmp_path / "deaf", DEAF_TO_STOP)
    at = app.run()
    at.switch_page("pages/train.py").run()
    for name, value in dict(epochs=100, batch_size=2, max_iters=2, eval_every=0).items():
        at.number_input(key=f"train_demo-cpu_{name}").set_value(value)
    next(b for b in at.button if b.label == "Start training").click().run()
    run_dir = at.session_state["run_dir"]
    run_until(at, lambda a: status_metric(a) == "running" and not _step(a).startswith("0 "))
    at.button(key="train_stop").click().run()
    at.run()  # the next poll draws the stopping state
    assert at.button(key="train_stop").disabled and at.button(key="train_kill").label == "Kill now"
    run_until(at, lambda a: status_metric(a) == "running")  # Stop did not end it ...
    at.button(key="train_kill").click().run()
    run_until(at, lambda a: status_metric(a) == "interrupted")  # ... Kill now did
    run = Run(run_dir)
    assert run.status() == "interrupted" and "killed on request" in run.message()
    assert run.resume_plan().checkpoint is not None or run.epochs_done() == 0
    audit = [json.loads(line)["event"] for line in (paths.runs_root() / "audit.jsonl").read_text().splitlines()]
    assert audit == ["job_started", "job_stopped", "job_killed"]
