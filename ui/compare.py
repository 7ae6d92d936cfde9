"""The Compare page's parts (pages/compare.py draws them in order): pick runs, evaluate them on the same
images (cached), then the runs table with size and speed, per-class differences with paired
intervals, overlaid curves, training curves on one time axis, and the images where they disagree.

Every number comes from one ``detcore.compare.Comparison``, the object ``python -m detcore compare``
prints, so the page and the CLI agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from detcore import paths, viz
from detcore.compare import (INTERSECTION, SAME, SplitMismatch, choose_images, compare_runs, default_data,
                             run_names)
from detcore.compare_figures import delta_figure, f1_overlay_figure, pr_overlay_figure, training_overlay_figures
from detcore.data.images import load_rgb
from detcore.errors import DetcoreError
from detcore.metrics.paired import MIN_OBJECTS
from detcore.train.runs import Run, run_summaries
from ui import state
from ui.feedback import shown_errors

PAGE_BOOT = 1000
RUNS_KEY = "compare_runs"
ON_KEY = "compare_on"
PART_KEY = "compare_part"
MAX_SIDE_BY_SIDE = 4


def comparable_runs() -> dict[str, str]:
    """Run folder → label, for runs with a checkpoint (the newest first)."""
    out = {}
    for summary in run_summaries(paths.runs_root()):
        if summary.problem and summary.model is None:
            continue  # unreadable
        if Run(summary.path).checkpoint_stamp() == "none":
            continue
        best = "" if summary.best_ap is None else f" · val AP {summary.best_ap:.3f}"
        out[str(summary.path)] = f"{summary.name} · {summary.status}{best}"
    return out


def pick_runs_ui() -> tuple[list[str], str]:
    """The runs to compare (first = baseline) and the split part; stops the page with fewer than two."""
    options = comparable_runs()
    if len(options) < 2:
        st.info("Compare needs two runs with a checkpoint. Train another one on the **Train** page — for instance "
                "the same preset with more epochs — and come back.")
        st.stop()
    if RUNS_KEY not in st.session_state or not set(st.session_state[RUNS_KEY]) <= set(options):
        current = str(state.current_run_dir()) if state.current_run_dir() else None
        first = current if current in options else next(iter(options))
        second = next(p for p in options if p != first)
        st.session_state[RUNS_KEY] = [first, second]
    left, right = st.columns([4, 1])
    chosen = left.multiselect("Runs to compare — the first is the baseline; differences are each other run minus it",
                              list(options), format_func=options.get, key=RUNS_KEY)
    part = right.segmented_control("Split", ["test", "val"], default="test", key=PART_KEY) or "test"
    if len(chosen) < 2:
        st.info("Pick at least two runs.")
        st.stop()
    return chosen, part


def _stamps(run_dirs: list[str], part: str) -> tuple:
    """What changes a comparison: each run's checkpoint, saved thresholds and split part."""
    out = []
    for d in run_dirs:
        run = Run(d)
        thresholds = run.thresholds_path.stat().st_mtime_ns if run.thresholds_path.exists() else 0
        try:
            split = hash(tuple(run.split_ids(part)))
        except DetcoreError:
            split = None  # compare_runs names the problem
        out.append((run.checkpoint_stamp(), thresholds, split))
    return tuple(out)


@st.cache_resource(show_spinner="Evaluating the runs on the same images (each model runs once; then cached)…",
                   max_entries=4)
def _comparison(run_dirs: tuple[str, ...], part: str, on: str, stamps: tuple, n_boot: int):
    from detcore.speed import model_size  # loads each model once to count its parameters (torch)

    return compare_runs(list(run_dirs), None, part=part, on=on, n_boot=n_boot, sizes=model_size)


def _where_ui(mismatch: SplitMismatch, names: list[str], part: str) -> str:
    """The runs' splits differ: say so, and ask where to compare (stops the page until answered)."""
    choices = {INTERSECTION: f"the {mismatch.common} images in common"} if mismatch.common else {}
    choices.update({n: f"{n}'s {part} split ({mismatch.sizes[n]} images; images another run trained on are named)"
                    for n in names})
    if st.session_state.get(ON_KEY) not in choices:
        st.session_state.pop(ON_KEY, None)
    chosen = st.session_state.get(ON_KEY)
    message = (f"{mismatch.problem} — these runs were not evaluated on the same images, so their numbers are not "
               "comparable as they are.")
    if chosen is None:
        st.error(message, icon=":material/compare_arrows:")
    else:
        st.info(message, icon=":material/compare_arrows:")
    chosen = st.radio("Compare them on", list(choices), format_func=choices.get, index=None, key=ON_KEY)
    if chosen is None:
        st.stop()
    return chosen


def load_comparison_ui(run_dirs: list[str], part: str, *, n_boot: int = PAGE_BOOT):
    """The comparison, asking where to compare when the runs' splits differ; stops the page on an error."""
    names = run_names(run_dirs)
    with shown_errors():
        data = default_data(Run(run_dirs[0]))
    st.caption(f"Dataset `{data}` (the baseline's) · {part} split · paired bootstrap over {n_boot} resamples of the images")
    on = SAME
    try:
        choose_images([Run(d) for d in run_dirs], names, part, SAME)  # reads the splits only
    except SplitMismatch as e:
        on = _where_ui(e, names, part)
    except DetcoreError as e:
        st.error(str(e), icon=":material/error:")
        st.stop()
    with shown_errors():
        return _comparison(tuple(run_dirs), part, on, _stamps(run_dirs, part), n_boot)


def _fmt_params(n) -> str | None:
    return None if not n else f"{n / 1e6:.2f} M"


def runs_table(comparison) -> pd.DataFrame:
    """One row per run: model, size, summary metrics, the stored speed measurement."""
    summary = comparison.summary()
    rows = []
    for name, run, pred in zip(comparison.names, comparison.runs, comparison.predictions):
        try:
            speed = run.benchmark() or {}
        except DetcoreError:
            speed = {}
        rows.append({"run": name, "model": pred.info.get("model"), "epochs": pred.info.get("epochs"),
                     "parameters": _fmt_params(pred.info.get("params")), "checkpoint MB": pred.info.get("checkpoint_mb"),
                     "AP": summary["AP"][name], "AP50": summary["AP50"][name], "AR100": summary["AR100"][name],
                     "p50 ms": speed.get("p50_ms"), "p95 ms": speed.get("p95_ms"), "images/s": speed.get("images_per_s"),
                     "measured on": speed.get("device")})
    return pd.DataFrame(rows)


def _measure_speed(comparison) -> None:
    from detcore.speed import benchmark_run  # torch

    bar = st.progress(0.0, text="Timing the models…")
    for i, run in enumerate(comparison.runs):
        bar.progress(i / len(comparison.runs), text=f"Timing {comparison.names[i]} (batch 1, its test images)…")
        with shown_errors(stop=False):
            benchmark_run(run.path, data=comparison.data)
    bar.empty()


def overview_ui(comparison) -> None:
    st.subheader("Runs")
    if comparison.images.notes:
        for note in comparison.images.notes:
            st.warning(note, icon=":material/warning:")
    table = runs_table(comparison)
    numbers = {c: st.column_config.NumberColumn(c, format="%.3f") for c in ("AP", "AP50", "AR100")}
    numbers.update({c: st.column_config.NumberColumn(c, format="%.1f") for c in ("checkpoint MB", "p50 ms", "p95 ms")})
    numbers["images/s"] = st.column_config.NumberColumn("images/s", format="%.2f")
    st.dataframe(table, hide_index=True, column_config=numbers, key="compare_runs_table")
    left, right = st.columns([1, 3], vertical_alignment="center")
    if left.button("Measure speed", icon=":material/speed:", key="compare_measure",
                   help="Times each model on its test images, one at a time (what `predict RUN --benchmark` does); "
                        "the result is saved with the run."):
        _measure_speed(comparison)
        st.rerun()
    right.caption(f"{comparison.images.basis} · {len(comparison.images.ids)} {comparison.images.part} images · "
                  "speed: the last `predict RUN --benchmark` / Measure speed of each run (p50/p95 ms per image, batch 1)")


def _verdict(significant: bool, delta) -> str:
    if not significant or delta is None:
        return ""
    return "▲ better" if delta > 0 else "▼ worse"


def per_class_ui(comparison) -> pd.DataFrame:
    """The per-class table (the numbers of ``compare --json``), with a verdict column per compared run."""
    st.subheader("Per class")
    table = comparison.per_class_table()
    shown = table.copy()
    for other in comparison.names[1:]:
        suffix = "" if len(comparison.names) == 2 else f" {other}"
        shown.insert(shown.columns.get_loc(f"ΔAP{suffix}"), f"verdict{suffix}",
                     [_verdict(s, d) for s, d in zip(table[f"ΔAP significant{suffix}"], table[f"ΔAP{suffix}"])])
    formats = {c: st.column_config.NumberColumn(c, format="%+.3f" if c.startswith("Δ") else "%.3f")
               for c in shown.columns if shown[c].dtype.kind == "f"}
    st.dataframe(shown, hide_index=True, column_config=formats, key="compare_per_class")
    st.caption(f"AP@[.5:.95] and AP50 per run; P/R/F1 at each run's own saved thresholds (IoU 0.5). Δ = run − "
               f"{comparison.baseline}; low/high: {comparison.level:.0%} paired bootstrap interval (the same "
               f"{comparison.n_boot} resamples of the images for both runs); ▲/▼ when the AP interval excludes 0 "
               f"(classes with at least {MIN_OBJECTS} objects).")
    rows = comparison.per_class()
    cols = st.columns(min(3, len(comparison.names) - 1))
    for i, other in enumerate(comparison.names[1:]):
        cols[i % len(cols)].plotly_chart(delta_figure(rows, other=other, level=comparison.level),
                                         key=f"compare_delta_{i}")
    return table


def curves_ui(comparison) -> None:
    st.subheader("Curves")
    cls = st.selectbox("Class", comparison.classes, key="compare_class")
    k = comparison.classes.index(cls)
    pr, f1, ap = {}, {}, {}
    for name, result in zip(comparison.names, comparison.results):
        c = result.pr_curve(cls)
        pr[name] = (c["recall"].to_numpy(), c["precision"].to_numpy())
        sweep = result.threshold_curve(cls)
        f1[name] = (sweep["threshold"].to_numpy(), sweep["f1"].to_numpy())
        ap[name] = result.class_ap(k, iou=0.5)
    chosen = {n: float(t[k]) for n, t in zip(comparison.names, comparison.thresholds)}
    left, right = st.columns(2)
    left.plotly_chart(pr_overlay_figure(pr, cls=cls, ap=ap), key="compare_pr")
    right.plotly_chart(f1_overlay_figure(f1, cls=cls, chosen=chosen), key="compare_f1")


def training_ui(comparison) -> None:
    st.subheader("Training")
    events = {}
    for name, run in zip(comparison.names, comparison.runs):
        events[name] = run.events()
    loss, val = training_overlay_figures(events)
    left, right = st.columns(2)
    left.plotly_chart(loss, key="compare_loss")
    right.plotly_chart(val, key="compare_val")


def side_by_side_ui(comparison) -> None:
    st.subheader("Where they disagree")
    order = comparison.disagreement()
    left, right = st.columns([2, 3])
    left.dataframe(order.head(50), hide_index=True, height=260, key="compare_disagreement")
    left.caption("Errors per image at each run's thresholds (false positives of every kind + missed objects); "
                 "images where the runs differ most first.")
    image_id = right.selectbox("Image", order["image_id"].head(50).tolist(), key="compare_image")
    names = comparison.names[:MAX_SIDE_BY_SIDE]
    cols = right.columns(len(names))
    for col, name, thr in zip(cols, names, comparison.thresholds):
        sample, dets = comparison.detections_of(name, image_id)
        kept = dets.above(np.asarray(thr, np.float32))
        errors = int(order.loc[order["image_id"] == image_id, f"errors {name}"].iloc[0])
        with col, shown_errors(stop=False):
            st.markdown(f"**{name}** · {len(kept)} boxes · {errors} errors")
            figure = viz.image_figure(load_rgb(sample.image_path), kept, comparison.classes, ground_truth=sample)
            st.plotly_chart(figure, key=f"compare_image_{name}", config={"displayModeBar": False})
    right.caption("Dashed: ground truth · solid: each run's predictions at its own thresholds (hover for class and score)")
    if len(comparison.names) > MAX_SIDE_BY_SIDE:
        right.caption(f"The first {MAX_SIDE_BY_SIDE} runs are shown side by side.")
