"""The "HTML report" download on the Evaluate and Compare pages: the same self-contained file
``python -m detcore report`` writes (detcore/html_report.py), built when asked and served from memory.

One report per session is kept (about 5 MB: plotly.js is inside it), until what it shows changes —
another run, split or thresholds — and dropped then, like the Data page's zip downloads.
"""

from __future__ import annotations

from typing import Callable

import streamlit as st

from detcore.errors import DetcoreError

_STATE = "_report_download"


def _download_ui(key: str, fingerprint: tuple, file_name: str, build: Callable[[], str]) -> None:
    prepared = st.session_state.get(_STATE)
    if prepared is not None and prepared["fingerprint"] != fingerprint:
        st.session_state.pop(_STATE, None)  # what the report showed changed: free it
        prepared = None
    if prepared is None:
        if not st.button("Build the HTML report", key=f"{key}_build", icon=":material/description:",
                         help="One self-contained file (opens offline, can be mailed): dataset, training curves, "
                              "metrics, per-class table with intervals, curves, confusion matrix, sample predictions."):
            return
        try:
            with st.spinner("Writing the report…"):
                text = build()
        except DetcoreError as e:
            st.error(str(e), icon=":material/error:")
            return
        prepared = st.session_state[_STATE] = {"fingerprint": fingerprint, "html": text, "file_name": file_name}
    st.download_button(f"Download {prepared['file_name']} ({len(prepared['html']) / 2**20:.1f} MB)",
                       prepared["html"], file_name=prepared["file_name"], mime="text/html", type="primary",
                       icon=":material/download:", key=f"{key}_download", on_click="ignore")


def evaluate_report_ui(run_dir, evaluated, thresholds: dict[str, float], split: str) -> None:
    """On the Evaluate page: the run at the thresholds the page shows now."""
    from detcore.train.runs import Run

    def build() -> str:
        from detcore.html_report import build_report, run_report

        report = run_report(run_dir, split=split, thresholds=thresholds, ci=evaluated.ci,
                            evaluated=(evaluated.result, evaluated.samples, evaluated.detections))
        return build_report(report)

    fingerprint = ("evaluate", str(run_dir), Run(run_dir).checkpoint_stamp(), split,
                   tuple(sorted((c, round(float(t), 4)) for c, t in thresholds.items())))
    _download_ui("evaluate_report", fingerprint, f"{run_dir.name}-{split}-report.html", build)


def compare_report_ui(comparison) -> None:
    """On the Compare page: the baseline run's report with the comparison section."""

    def build() -> str:
        from detcore.html_report import build_report, run_report

        base = comparison.predictions[0]
        report = run_report(base.run.path, comparison.data, split=comparison.images.part,
                            thresholds=dict(zip(comparison.classes, comparison.thresholds[0])),
                            evaluated=(comparison.results[0], base.samples, base.detections))
        return build_report(report, comparison=comparison)

    fingerprint = ("compare", tuple(str(r.path) for r in comparison.runs), tuple(comparison.images.ids),
                   tuple(tuple(t) for t in comparison.thresholds), comparison.n_boot)
    _download_ui("compare_report", fingerprint, f"{'-vs-'.join(comparison.names)}-report.html", build)
