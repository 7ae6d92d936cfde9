"""Figures that overlay several runs (the Compare page and the HTML report): PR and F1-vs-threshold
curves of one class, training loss and validation AP on one time axis. Plain plotly from numpy and
event records, like ``detcore.viz`` (whose single-run figures these complement); no Streamlit, no torch.

Each run keeps one colour in every figure (``run_colors``), distinct from the class palette, so "the
orange line" means the same run everywhere.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

RUN_PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
RUN_DASHES = ["solid", "dash", "dot", "dashdot"]


def run_colors(names: Sequence[str]) -> dict[str, str]:
    return {n: RUN_PALETTE[i % len(RUN_PALETTE)] for i, n in enumerate(names)}


def _layout(fig: go.Figure, *, title: str, x: str, y: str, height: int = 360) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white", height=height,
                      margin=dict(l=50, r=20, t=50, b=45), legend=dict(orientation="h", y=-0.25))
    return fig


def pr_overlay_figure(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, cls: str,
                      ap: Mapping[str, float | None] | None = None, iou: float = 0.5) -> go.Figure:
    """One class's precision–recall curve per run: ``curves[run] = (recall, precision)``."""
    fig = go.Figure()
    colors = run_colors(list(curves))
    for i, (name, (recall, precision)) in enumerate(curves.items()):
        label = name if not ap or ap.get(name) is None else f"{name} (AP{int(iou * 100)} {ap[name]:.3f})"
        fig.add_trace(go.Scatter(x=list(recall), y=list(precision), name=label, mode="lines",
                                 line=dict(color=colors[name], dash=RUN_DASHES[i % len(RUN_DASHES)], width=2),
                                 hovertemplate="recall %{x:.3f}<br>precision %{y:.3f}<extra>" + name + "</extra>"))
    fig.update_xaxes(range=[0, 1.01])
    fig.update_yaxes(range=[0, 1.01])
    return _layout(fig, title=f"{cls}: precision–recall (IoU {iou:g})", x="recall", y="precision")


def f1_overlay_figure(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, cls: str,
                      chosen: Mapping[str, float] | None = None) -> go.Figure:
    """One class's F1 against the score threshold per run, each run's own threshold marked."""
    fig = go.Figure()
    colors = run_colors(list(curves))
    for i, (name, (thresholds, f1)) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=list(thresholds), y=list(f1), name=name, mode="lines",
                                 line=dict(color=colors[name], dash=RUN_DASHES[i % len(RUN_DASHES)], width=2),
                                 hovertemplate="threshold %{x:.3f}<br>F1 %{y:.3f}<extra>" + name + "</extra>"))
        if chosen and name in chosen and len(thresholds):
            t = float(chosen[name])
            x = np.asarray(thresholds, float)
            order = np.argsort(x)
            y = float(np.interp(t, x[order], np.asarray(f1, float)[order]))
            fig.add_trace(go.Scatter(x=[t], y=[y], mode="markers", showlegend=False, name=f"{name} threshold",
                                     marker=dict(size=11, color=colors[name], symbol="x"),
                                     hovertemplate=f"{name}: its threshold {t:.2f}<br>F1 {y:.3f}<extra></extra>"))
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.01])
    return _layout(fig, title=f"{cls}: F1 vs score threshold (× = the run's threshold)", x="score threshold", y="F1")


def _elapsed_minutes(records: list[Mapping], start: float | None) -> list[float]:
    return [(r["time"] - start) / 60.0 for r in records]


def training_overlay_figures(events: Mapping[str, list[Mapping]], *, metric: str = "AP") -> tuple[go.Figure, go.Figure]:
    """(training loss, validation ``metric``) per run against minutes since the run's first record:
    loss smoothed (EWM, what one reads through per-batch noise), validation points per epoch."""
    loss, val = go.Figure(), go.Figure()
    colors = run_colors(list(events))
    for name, records in events.items():
        timed = [r for r in records if isinstance(r.get("time"), (int, float))]
        start = min((r["time"] for r in timed), default=None)
        steps = [r for r in timed if r.get("type") == "step" and r.get("loss") is not None]
        if steps:
            x = _elapsed_minutes(steps, start)
            y = pd.Series([r["loss"] for r in steps], dtype=float)
            loss.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"{name} (per step)", showlegend=False,
                                      line=dict(color=colors[name], width=1), opacity=0.25, hoverinfo="skip"))
            loss.add_trace(go.Scatter(x=x, y=y.ewm(alpha=0.1).mean(), mode="lines", name=name,
                                      line=dict(color=colors[name], width=2.5),
                                      hovertemplate="%{x:.1f} min<br>loss %{y:.3f}<extra>" + name + "</extra>"))
        epochs = [r for r in timed if r.get("type") == "epoch" and (r.get("metrics") or {}).get(metric) is not None]
        if epochs:
            val.add_trace(go.Scatter(x=_elapsed_minutes(epochs, start), y=[r["metrics"][metric] for r in epochs],
                                     mode="lines+markers", name=name, line=dict(color=colors[name], width=2.5),
                                     customdata=[r["epoch"] for r in epochs],
                                     hovertemplate="epoch %{customdata} · %{x:.1f} min<br>" + metric
                                                   + " %{y:.3f}<extra>" + name + "</extra>"))
    val.update_yaxes(range=[0, 1])
    return (_layout(loss, title="Training loss (smoothed)", x="minutes since the run started", y="loss"),
            _layout(val, title=f"Validation {metric}", x="minutes since the run started", y=metric))


def delta_figure(rows: list[dict], *, metric: str = "AP", other: str | None = None, level: float = 0.95) -> go.Figure:
    """Per-class difference (compared run − baseline) with its paired bootstrap interval as error bars;
    classes whose interval excludes 0 drawn solid. ``rows``: the comparison's ``per_class()``."""
    key = "AP" if metric == "AP" else metric
    sig_key = "significant" if metric == "AP" else f"{metric}_significant"
    names, deltas, lows, highs, flags = [], [], [], [], []
    for row in rows:
        d = row["vs_baseline"][other] if other else row
        if d.get(f"{key}_delta") is None:
            continue
        lo, hi = d[f"{key}_delta_ci"]
        names.append(row["class"])
        deltas.append(d[f"{key}_delta"])
        lows.append(d[f"{key}_delta"] - lo)
        highs.append(hi - d[f"{key}_delta"])
        flags.append(bool(d[sig_key]))
    colors = ["#2ca02c" if f and v > 0 else "#d62728" if f else "#9e9e9e" for f, v in zip(flags, deltas)]
    fig = go.Figure(go.Bar(x=names, y=deltas, marker_color=colors,
                           error_y=dict(type="data", symmetric=False, array=highs, arrayminus=lows, color="#333"),
                           hovertemplate="%{x}: Δ %{y:+.3f}<extra></extra>"))
    fig.add_hline(y=0, line_color="#555", line_width=1)
    label = {"AP": "AP", "AP50": "AP50", "f1": "F1"}.get(metric, metric)
    return _layout(fig, title=f"Δ{label} per class with its {level:.0%} paired interval (coloured: excludes 0)",
                   x="class", y=f"Δ{label}", height=320)
