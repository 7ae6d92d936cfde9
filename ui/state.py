"""The current dataset and run, shared by every page through ``st.session_state``.

Plain (non-widget) keys hold the choice so it survives page switches; widgets that edit it write
back through callbacks. On first launch the dataset is the demo, generated into DATA/demo.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from detcore import paths
from detcore.data.demo import ensure_demo_dataset

DATASET_KEY = "dataset_path"
RUN_KEY = "run_dir"


@st.cache_resource(show_spinner="Generating the demo dataset (first launch only)…")
def _demo_dataset(data_root: str) -> str:
    # Keyed by the data root so a changed DETBOARD_DATA (tests, a second checkout) gets its own demo.

    return str(ensure_demo_dataset())


def demo_dataset_path() -> Path:
    return Path(_demo_dataset(str(paths.data_root())))


def current_dataset_path() -> Path:
    if not st.session_state.get(DATASET_KEY):
        st.session_state[DATASET_KEY] = str(demo_dataset_path())
    return Path(st.session_state[DATASET_KEY])


def set_current_dataset(path: str | Path) -> None:
    st.session_state[DATASET_KEY] = str(path)


def current_run_dir() -> Path | None:
    value = st.session_state.get(RUN_KEY)
    return Path(value) if value else None


def set_current_run(run_dir: str | Path | None) -> None:
    st.session_state[RUN_KEY] = str(run_dir) if run_dir else None
