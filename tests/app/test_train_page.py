"""Train page: the form from TrainConfig, a real background job progressing, refusal, stop, resume."""

import pytest
from tests.app.pagewait import run_until, status_metric


def _set_form(at, **values):
    for name, value in values.items():
        at.number_input(key=f"train_demo-cpu_{name}").set_value(value)


@pytest.fixture
def train_page(app):
    at = app.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    yield at
    from ui.registry import job_registry

    for job in job_registry().jobs():  # never leave a thread training into the next test
        job.stop()
        job.join(60)


def test_form_defaults_to_demo_cpu_preset(train_page):
    at = train_page
    assert [t.value for t in at.title] == ["Train"]
    assert at.selectbox(key="train_preset").value == "demo-cpu"
    assert at.selectbox(key="train_demo-cpu_model").value == "ssdlite320_mobilenet_v3_large"
    assert at.selectbox(key="train_demo-cpu_weights").value == "none"
    assert any(b.label == "Start training" for b in at.button)


def test_a_tiny_job_runs_in_the_background_and_completes(train_page):
    at = train_page
    _set_form(at, epochs=1, batch_size=2, max_iters=3, eval_every=0)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_dir = at.session_state["run_dir"]
    assert run_dir and status_metric(at) in ("starting", "running", "completed")
    run_until(at, lambda a: status_metric(a) == "completed")
    steps = next(m.value for m in at.metric if m.label == "Step")
    assert steps.startswith("3 /")
    runs = at.dataframe[-1].value
    assert list(runs["status"]) == ["completed"]
    assert at.selectbox(key="train_resume_run").value == run_dir


def test_second_start_is_refused_and_stop_keeps_a_checkpoint(train_page):
    from pathlib import Path

    at = train_page
    _set_form(at, epochs=1, batch_size=2, max_iters=500, eval_every=0)
    next(b for b in at.button if b.label == "Start training").click().run()
    run_dir = Path(at.session_state["run_dir"])
    run_until(at, lambda a: status_metric(a) == "running")
    # A reload (new session) shows the same running job.
    from streamlit.testing.v1 import AppTest

    other_tab = AppTest.from_file(at._script_path, default_timeout=120).run()
    other_tab.switch_page("pages/train.py").run()
    assert any(s.value == f"Running: {run_dir.name}" for s in other_tab.subheader)

    _set_form(at, epochs=1, batch_size=2, max_iters=3, eval_every=0)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert any("already training" in w.value for w in at.warning)

    next(b for b in at.button if b.label == "Stop").click().run()
    run_until(at, lambda a: status_metric(a) == "stopped")
    assert (run_dir / "checkpoints" / "last.pt").is_file()


def test_a_failing_job_shows_its_error_on_the_page(train_page):
    at = train_page
    _set_form(at, epochs=1, batch_size=2, max_iters=2, eval_every=0)
    at.selectbox(key="train_demo-cpu_weights").set_value("coco")  # not on disk, and no downloads here
    next(b for b in at.button if b.label == "Start training").click().run()
    if any("weights" in e.value.lower() for e in at.error):  # refused up front: also a clear message
        return
    run_until(at, lambda a: status_metric(a) == "failed")
    assert any("weights" in e.value.lower() or ".pth" in e.value for e in at.error), [e.value for e in at.error]
