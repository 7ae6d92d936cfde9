"""Evaluate page: a run's metrics on a split, per-class table, PR and F1 curves, confusion matrix,
error browser, and score-threshold tuning that re-reads cached matches (never re-runs the model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from detcore import viz
from detcore.metrics.errors import ERROR_KINDS
from detcore.train.runs import Run, Thresholds, classifier_note
from ui.auth import has_access, still_allowed
from ui.evaluate_options import coco_downloads_ui, error_picture_ui, evaluation_choice_ui, metrics_json
from ui.export import export_ui
from ui.feedback import shown_errors
from ui.loaders import load_evaluation
from ui.report import evaluate_report_ui
from ui.shell import page_shell
from ui.training import current_run_or_offer_demo

SUMMARY_SHOWN = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
AP_COLUMNS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
GLOBAL_KEY = "eval_thr_global"
PER_CLASS_TOGGLE = "eval_use_per_class"


def _class_key(name: str) -> str:
    return f"eval_thr_{name}"


def _apply_recommendation(result, mode: str, target: float | None) -> None:
    # A callback, so it runs before the widgets it sets are drawn (and before the fragment's gate check).
    if not has_access():
        return
    chosen = result.recommend_thresholds(mode, target)
    fallback = st.session_state.get(GLOBAL_KEY, 0.5)
    for name, value in chosen.items():
        st.session_state[_class_key(name)] = float(value if value is not None else fallback)
    st.session_state[PER_CLASS_TOGGLE] = True
    missing = [n for n, v in chosen.items() if v is None]
    if missing:
        st.session_state["_eval_reco_note"] = f"No threshold reaches the goal for: {', '.join(missing)} (kept the global value)."


def thresholds_ui(result, saved: Thresholds) -> dict[str, float]:
    """Global slider, per-class overrides and one-click recommendations → threshold per class."""
    classes = result.classes
    if GLOBAL_KEY not in st.session_state:
        st.session_state[GLOBAL_KEY] = saved.global_value()
        st.session_state[PER_CLASS_TOGGLE] = bool(saved.per_class)
        for name, value in zip(classes, saved.for_classes(classes)):
            st.session_state[_class_key(name)] = value
    slider_col, f1_col, target_col, precision_col = st.columns([4, 3, 2, 3], vertical_alignment="bottom")
    threshold = slider_col.slider("Score threshold", 0.0, 1.0, step=0.01, key=GLOBAL_KEY)
    f1_col.button("F1-optimal per class", on_click=_apply_recommendation, args=(result, "f1", None),
                  icon=":material/target:")
    target = target_col.number_input("Target precision", 0.05, 1.0, 0.9, 0.05, key="eval_target_precision")
    precision_col.button("Reach this precision", on_click=_apply_recommendation,
                         args=(result, "precision", float(target)))
    if note := st.session_state.pop("_eval_reco_note", None):
        st.info(note)
    use_per_class = st.toggle("Per-class thresholds", key=PER_CLASS_TOGGLE)
    if not use_per_class:
        return {name: float(threshold) for name in classes}
    cols = st.columns(min(4, len(classes)))
    return {name: float(cols[i % len(cols)].number_input(name, 0.0, 1.0, step=0.01, key=_class_key(name)))
            for i, name in enumerate(classes)}


def summary_ui(result) -> None:
    summary = result.summary()
    cols = st.columns(len(SUMMARY_SHOWN))
    for col, key in zip(cols, SUMMARY_SHOWN):
        value = summary.get(key)
        col.metric(key, "—" if value is None else f"{value:.3f}")


def per_class_ui(result, thresholds: dict[str, float], ci: pd.DataFrame | None) -> pd.DataFrame:
    table = result.per_class(thresholds)
    if ci is not None and not ci.empty:
        table = table.merge(ci, on="class", how="left")
    bars = {c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.3f")
            for c in AP_COLUMNS}
    numbers = {c: st.column_config.NumberColumn(c, format="%.3f")
               for c in table.columns if c not in AP_COLUMNS and table[c].dtype.kind == "f"}
    st.dataframe(table, hide_index=True, column_config={**numbers, **bars})
    return table


def curves_ui(result, thresholds: dict[str, float], per_class: pd.DataFrame) -> None:
    ap50 = {name: (None if pd.isna(v) else float(v)) for name, v in zip(per_class["class"], per_class["AP50"])}
    pr, f1 = result.figure_curves()
    left, right = st.columns(2)
    left.plotly_chart(viz.pr_curve_figure(pr, ap=ap50), key="eval_pr")
    right.plotly_chart(viz.f1_threshold_figure(f1, chosen=thresholds), key="eval_f1")


def confusion_ui(result, thresholds: dict[str, float]) -> None:
    matrix = result.confusion_matrix(thresholds)
    normalize = st.toggle("Normalise rows", key="eval_confusion_normalize")
    st.plotly_chart(viz.confusion_matrix_figure(matrix.to_numpy(), list(matrix.columns), normalize=normalize),
                    key="eval_confusion")


def error_browser_ui(evaluated, thresholds: dict[str, float]) -> None:
    result = evaluated.result
    left, right = st.columns([1, 3])
    kind = left.selectbox("Error type", ["all errors", *ERROR_KINDS], key="eval_error_kind")
    worst = result.worst_images(thresholds, None if kind == "all errors" else kind)
    if worst.empty:
        right.success("No errors of this type at these thresholds.")
        return
    right.dataframe(worst.head(50), hide_index=True, height=220, key="eval_worst_table")
    image_id = left.selectbox("Image", worst["image_id"].head(50).tolist(), key="eval_error_image")
    sample = next(s for s in evaluated.samples if s.image_id == image_id)
    dets = next(d for d in evaluated.detections if d.image_id == image_id)
    per_class = np.array([thresholds[c] for c in result.classes], dtype=np.float32)
    kept = dets.above(per_class)
    errors = result.errors(thresholds)
    rows = errors[errors["image_id"] == image_id].drop(columns=["image_id"])
    picture, table = st.columns([3, 2])
    with picture, shown_errors(stop=False):
        error_picture_ui(evaluated, sample, kept, per_class)  # masks too, for mask models
    table.dataframe(rows, hide_index=True, key="eval_error_rows")


def downloads_ui(run_dir: Path, evaluated, thresholds: dict[str, float], per_class: pd.DataFrame,
                 global_threshold: float) -> None:
    c1, c2, c3, c4, c5 = st.columns(5)
    if c1.button("Save thresholds to the run", type="primary", icon=":material/save:"):
        with shown_errors(stop=False):
            path = Run(run_dir).save_thresholds(global_threshold=global_threshold, per_class=thresholds)
            st.toast(f"Saved {path.name} — the Predict page uses these thresholds.")
    c2.download_button("Per-class table (CSV)", per_class.to_csv(index=False), file_name=f"{run_dir.name}-per-class.csv",
                       mime="text/csv", on_click="ignore")
    c3.download_button("Metrics (JSON)", lambda: metrics_json(evaluated, thresholds,  # = evaluate --json
                                                              st.session_state.get("eval_target_precision", 0.9)),
                       file_name=f"{run_dir.name}-metrics.json", mime="application/json", on_click="ignore")
    coco_downloads_ui(evaluated, run_dir.name, c4, c5)


@st.fragment
def tuning_ui(run_dir: Path, evaluated) -> None:
    # A fragment: threshold changes rerun only this, reading the cached matches.
    still_allowed()
    result = evaluated.result
    summary_ui(result)
    st.subheader("Score thresholds")
    with shown_errors():
        saved = Run(run_dir).thresholds()
    thresholds = thresholds_ui(result, saved)
    st.subheader("Per class")
    per_class = per_class_ui(result, thresholds, evaluated.ci)
    curves_ui(result, thresholds, per_class)
    left, right = st.columns([2, 3])
    with left:
        confusion_ui(result, thresholds)
    with right:
        st.markdown("**Error browser** — worst images first")
        error_browser_ui(evaluated, thresholds)
    downloads_ui(run_dir, evaluated, thresholds, per_class, float(st.session_state[GLOBAL_KEY]))
    evaluate_report_ui(run_dir, evaluated, thresholds, split)  # the same numbers in one offline HTML file


page_shell("Evaluate")
run_dir = current_run_or_offer_demo("No trained run yet — train one to evaluate it.")
_note = classifier_note(Run(run_dir).log().classifier)
st.caption(f"Run `{run_dir.name}` · matches are computed once; thresholds only re-read them"
           + (f" · {_note}" if _note else ""))
split, iou_type = evaluation_choice_ui(run_dir)  # the parts the run has; bbox / segm for mask models
with shown_errors():
    evaluation = load_evaluation(run_dir, split, iou_type)
tuning_ui(run_dir, evaluation)
export_ui(run_dir)
