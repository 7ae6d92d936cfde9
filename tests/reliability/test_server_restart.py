"""The process that was training dies without a word (the Streamlit server restarted, ``kill -9``):
a fresh app shows the run as ``interrupted`` — not "running" forever — and resumes it from the
Train page to the planned number of epochs."""

from __future__ import annotations

import pytest
import torch

from detcore.train.runs import Run

from tests.reliability.test_kill_and_resume import EPOCHS, ITERS, _kill_when, _start
from tests.app.pagewait import run_until, status_metric
from tests.reliability.tinydata import write_tiny_voc

pytestmark = pytest.mark.slow  # a real training process killed, then a resumed background job


def test_killed_run_shows_interrupted_and_resumes_from_the_train_page(app, tmp_path, stop_jobs_after):
    from detcore import paths

    data = write_tiny_voc(tmp_path / "tiny")
    run_dir = paths.runs_root() / "killed-with-the-server"
    proc = _start(data, run_dir)
    _kill_when(proc, lambda: (run_dir / "checkpoints" / "last.pt").is_file(), what="the first checkpoint")

    at = app.run()  # the restarted server: a new session, nothing in memory about that run
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert status_metric(at) == "interrupted"
    assert any("Interrupted" in i.value and "ended without a final status" in i.value for i in at.info)
    assert list(at.dataframe[-1].value["status"]) == ["interrupted"]
    assert at.selectbox(key="train_resume_run").value == str(run_dir)

    at.number_input(key="train_resume_extra").set_value(0)
    at.button(key="train_resume").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_until(at, lambda a: status_metric(a) == "completed")

    run = Run(run_dir)
    assert run.status() == "completed"
    last = torch.load(run.checkpoint("last"), weights_only=True)
    assert last["epoch"] == EPOCHS and last["global_step"] == EPOCHS * ITERS
