"""Two browser tabs (or two people) on the Train page of one server: one job per device, the second
Start is queued behind it, both see the same job and the queue, and when the first job is stopped
from the other tab the queued one starts and runs to the end."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.pagewait import run_until, status_metric
from tests.reliability.tinydata import REPO

pytestmark = pytest.mark.slow  # a real background job on the demo preset


def _train_page(at: AppTest) -> AppTest:
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _start_from_form(at: AppTest, **values) -> AppTest:
    for name, value in values.items():
        at.number_input(key=f"train_demo-cpu_{name}").set_value(value)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_second_tab_sees_the_job_queues_a_second_that_starts_when_the_first_is_stopped(app, stop_jobs_after):
    # max_iters=2: full batches only (the demo split's last batch holds one image, which SSDlite's
    # BatchNorm cannot train on — see test_worker_faults), and 100 epochs so it is still running.
    first = _start_from_form(_train_page(app), epochs=100, batch_size=2, max_iters=2, eval_every=0)
    run_until(first, lambda a: status_metric(a) == "running")
    running = next(s.value for s in first.subheader if s.value.startswith("Running: "))

    second = _train_page(AppTest.from_file(str(REPO / "app.py"), default_timeout=120))
    assert running in [s.value for s in second.subheader]  # the same job, not a copy
    assert status_metric(second) == "running"

    _start_from_form(second, epochs=1, batch_size=2, max_iters=2, eval_every=0)
    assert any("queued" in m.value and "#1" in m.value for m in second.markdown)
    first.run()
    assert any("queued" in m.value and "#1" in m.value for m in first.markdown)  # visible to the first tab

    next(b for b in second.button if b.label == "Stop").click().run()
    run_until(first, lambda a: running not in [s.value for s in a.subheader])  # the first job ended ...
    queued_name = run_until(second, lambda a: any(s.value.startswith("Running: ") and s.value != running
                                                  for s in a.subheader))  # ... and the queued one started
    run_until(queued_name, lambda a: not any(s.value.startswith("Running: ") for s in a.subheader))
    from ui.registry import job_registry

    statuses = [j.snapshot()["status"] for j in job_registry().jobs()]
    assert statuses[-2:] == ["stopped", "completed"], statuses
