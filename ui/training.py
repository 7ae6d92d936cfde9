"""Starting training jobs from any page through the one JobRegistry (docs/architecture.md, "Background jobs")."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from detcore.errors import DetcoreError
from detcore.train.config import config_from_preset
from detcore.train.jobs import JobRefused
from detcore.train.presets import cuda_available, suggest_preset
from detcore.train.runs import Run, Status
from ui import state
from ui.audit import audit, who
from ui.registry import job_registry


def start_job(config, *, run_dir: Path | None = None, resume: bool = False, extra_epochs: int = 0,
              processes: int | None = None):
    """Start a job — or queue it behind the job that holds its device; a refusal or a bad setting is
    shown, not raised. Returns the Job (maybe queued), or None. A started run becomes the current run.
    ``processes`` defaults to what the run's last job used when resuming, else 1.
    """
    if processes is None:
        processes = _previous_processes(run_dir) if resume and run_dir is not None else 1
    try:
        job = job_registry().start(config, run_dir=run_dir, resume=resume, extra_epochs=extra_epochs,
                                   processes=processes, by=who())
    except JobRefused as e:
        st.warning(str(e), icon=":material/hourglass_top:")
        return None
    except DetcoreError as e:
        st.error(str(e), icon=":material/error:")
        return None
    details = dict(run=job.run_dir.name, device=job.device, processes=job.processes, resume=resume)
    if job.status == Status.QUEUED:
        audit("job_queued", **details)
        st.toast(f"{job.run_dir.name} is queued ({job.device} is busy): number "
                 f"{job.snapshot()['queue_position']} in line.", icon=":material/hourglass_top:")
    else:
        audit("job_started", **details)
        state.set_current_run(job.run_dir)
    return job


def _previous_processes(run_dir: Path) -> int:
    try:
        return Run(run_dir).job_spec().processes
    except DetcoreError:
        return 1  # trained from the command line, or before jobs had a job file


@st.cache_resource(show_spinner=False)
def _cuda() -> bool:
    return cuda_available()  # imports torch: once per server, not on every rerun


def suggested_preset(dataset: str | Path) -> tuple[str, str]:
    """(preset, why) for ``dataset`` on this server's hardware (detcore.train.presets.suggest_preset)."""
    return suggest_preset(dataset, cuda=_cuda())


def start_demo_training_ui() -> None:
    """One click: train the demo-cpu preset on the demo dataset, then watch it on the Train page."""
    if st.button("Train the demo model", type="primary", icon=":material/model_training:"):
        config = config_from_preset("demo-cpu", data=str(state.demo_dataset_path()))
        if start_job(config) is not None:
            st.switch_page("pages/train.py")


def current_run_or_offer_demo(message: str) -> Path:
    """The current run; with none, say ``message``, offer the one-click demo training and stop the page."""
    run_dir = state.current_run_dir()
    if run_dir is None:
        st.info(message)
        start_demo_training_ui()
        st.stop()
    return run_dir
