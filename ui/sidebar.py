"""The sidebar every page shares: which dataset and which run the pages are working on."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from detcore import paths
from detcore.train.runs import RunSummary, Status, run_summaries
from ui import state
from ui.auth import signed_in_ui

_PICKER_KEY = "_sidebar_run_picker"


def _on_run_picked() -> None:
    state.set_current_run(st.session_state[_PICKER_KEY])


def _label(summary: RunSummary) -> str:
    return f"{summary.name} · {summary.status}"


def run_picker_ui() -> Path | None:
    """Select box over the runs on disk; defaults to the newest and follows ``state.RUN_KEY``."""
    labels = {str(r.path): _label(r) for r in run_summaries(paths.runs_root())}
    current = state.current_run_dir()
    if current is not None and str(current) not in labels and current.exists():
        # A job just started: its folder exists before its config.json does.
        labels = {str(current): f"{current.name} · {Status.STARTING}", **labels}
    if not labels:
        st.caption("No runs yet — train one on the **Train** page.")
        state.set_current_run(None)
        return None
    if current is None or str(current) not in labels:
        state.set_current_run(next(iter(labels)))
    # Syncing the widget before it is drawn lets any page change the run with state.set_current_run.
    st.session_state[_PICKER_KEY] = str(state.current_run_dir())
    st.selectbox("Run", options=list(labels), format_func=labels.get, key=_PICKER_KEY, on_change=_on_run_picked)
    return state.current_run_dir()


def sidebar_ui() -> None:
    with st.sidebar:
        st.markdown("### detboard")
        dataset = state.current_dataset_path()
        st.markdown(f"**Dataset:** `{dataset.name}`")
        st.caption(str(dataset))
        run_picker_ui()
        signed_in_ui()
