"""The Evaluate page's "Export the model" row: ONNX or TorchScript of the run's best checkpoint,
carrying the class names and the thresholds saved to the run (detcore.export, docs/export.md)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.auth import still_allowed
from ui.feedback import shown_errors

FORMATS = {"ONNX": "onnx", "TorchScript": "torchscript"}
STATE_KEY = "export_file"


@st.fragment
def export_ui(run_dir: Path) -> None:
    # A fragment: exporting (seconds to a minute) reruns only this row, not the evaluation.
    still_allowed()
    st.subheader("Export the model")
    st.caption("One file that runs without detboard (onnxruntime or plain torch), with the class names and "
               "the per-class thresholds **saved to the run** — save thresholds above first. See docs/export.md.")
    fmt_col, button_col, download_col = st.columns([2, 1, 3], vertical_alignment="bottom")
    label = fmt_col.segmented_control("Format", list(FORMATS), default="ONNX", key="export_format") or "ONNX"
    if button_col.button("Export", icon=":material/upload:", key="export_button"):
        from detcore.export import export_run

        with shown_errors(stop=False), st.spinner(f"Exporting to {label}…"):
            path = export_run(run_dir, FORMATS[label])
            st.session_state[STATE_KEY] = (str(run_dir), label, str(path))
    done = st.session_state.get(STATE_KEY)
    if done and done[0] == str(run_dir) and done[1] == label and Path(done[2]).is_file():
        path = Path(done[2])
        download_col.download_button(f"Download {path.name} ({path.stat().st_size / 2**20:.1f} MB)",
                                     lambda: path.read_bytes(), file_name=path.name,
                                     mime="application/octet-stream", on_click="ignore", key="export_download",
                                     icon=":material/download:")
