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


def test_second_start_is_queued_and_stop_keeps_a_checkpoint(train_page):
    from pathlib import Path

    at = train_page
    _set_form(at, epochs=100, batch_size=2, max_iters=2, eval_every=0)  # still running when Stop comes
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
    assert not at.exception, [e.value for e in at.exception]
    assert any("queued" in m.value and "#1" in m.value for m in at.markdown), [m.value for m in at.markdown]
    assert at.session_state["run_dir"] == str(run_dir)  # the page keeps showing the running job
    other_tab.run()
    assert any("#1" in m.value and "queued" in m.value for m in other_tab.markdown)  # every session sees the queue
    next(b for b in other_tab.button if b.label == "Cancel").click().run()
    at.run()
    assert not any(b.label == "Cancel" for b in at.button)

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


def test_real_photos_get_the_cpu_real_preset_and_its_fields_reach_the_run(app):
    """A dataset that is not the demo, on a CPU: cpu-real is preselected and says why; the anchors,
    input size and time limit fields go into the job's config."""
    import sys
    from pathlib import Path

    from detcore import paths

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
    from tinydata import write_tiny_voc

    data = write_tiny_voc(paths.data_root() / "photos", n=12)
    at = app.run()
    at.session_state["dataset_path"] = str(data)
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="train_preset").value == "cpu-real"
    assert any("cpu-real" in i.value and "not the demo set" in i.value for i in at.info)
    assert at.selectbox(key="train_cpu-real_anchors").value == "auto"
    assert at.selectbox(key="train_cpu-real_input_size").value == "auto"
    assert at.number_input(key="train_cpu-real_time_limit").value == 15.0
    at.selectbox(key="train_cpu-real_input_size").set_value("256")
    at.number_input(key="train_cpu-real_time_limit").set_value(0.0)  # 0 = no limit, although the preset has one
    for name, value in dict(epochs=1, batch_size=2, max_iters=1, eval_every=0).items():
        at.number_input(key=f"train_cpu-real_{name}").set_value(value)
    from ui.registry import job_registry

    try:
        next(b for b in at.button if b.label == "Start training").click().run()
        assert not at.exception, [e.value for e in at.exception]
        job = job_registry().active() or job_registry().jobs()[-1]
        assert job.config.preset == "cpu-real"
        assert job.config.input_size == 256 and job.config.anchors == "auto" and job.config.time_limit is None
    finally:
        for job in job_registry().jobs():
            job.stop()
            job.join(120)
