"""Starting training jobs from any page through the one JobRegistry (DESIGN.md §4)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from detcore.errors import DetcoreError
from ui import state


def start_job(config, *, run_dir: Path | None = None, resume: bool = False, extra_epochs: int = 0):
    """Start a job; a refusal (one already running) or a bad setting is shown, not raised.

    Returns the Job, or None when it did not start. The new run becomes the current run.
    """
    from detcore.train.jobs import JobRefused
    from ui.registry import job_registry

    try:
        job = job_registry().start(config, run_dir=run_dir, resume=resume, extra_epochs=extra_epochs)
    except JobRefused as e:
        st.warning(str(e), icon=":material/hourglass_top:")
        return None
    except DetcoreError as e:
        st.error(str(e), icon=":material/error:")
        return None
    state.set_current_run(job.run_dir)
    return job


def start_demo_training_ui() -> None:
    """One click: train the demo-cpu preset on the demo dataset, then watch it on the Train page."""
    if st.button("Train the demo model", type="primary", icon=":material/model_training:"):
        from detcore.train.config import config_from_preset

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
