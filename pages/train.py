"""Train page: a form built from TrainConfig (demo-cpu preset by default), the background job with a
live chart that polls only while the job runs, Stop, and past runs with resume."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from detcore import paths, viz
from detcore.errors import DetcoreError
from detcore.models import list_models
from detcore.train.config import TrainConfig, config_from_preset
from detcore.train.presets import PRESETS
from detcore.train.runs import Run
from ui import state
from ui.shell import page_shell
from ui.feedback import shown_errors
from ui.loaders import run_listing
from ui.registry import job_registry
from ui.training import start_job

POLL_SECONDS = 1.5
DEFAULT_PRESET = "demo-cpu"
FINISHED = ("completed", "stopped", "failed", "interrupted")


def _fmt_eta(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _choice(label: str, options: list[str], value: str, key: str, container=st, **kwargs) -> str:
    return container.selectbox(label, options, index=options.index(value) if value in options else 0, key=key, **kwargs)


def config_form_ui() -> TrainConfig | None:
    """The training form built from TrainConfig; returns the config when Start is pressed."""
    preset = st.selectbox("Preset", list(PRESETS), index=list(PRESETS).index(DEFAULT_PRESET), key="train_preset",
                          help="Starting values; every field below can still be changed.")
    dataset = str(state.current_dataset_path())
    base = config_from_preset(preset, data=dataset)
    specs = {m.name: m for m in list_models()}
    k = f"train_{preset}_"  # per-preset keys: picking another preset resets the form to its values
    with st.form(f"train_form_{preset}", border=True):
        st.caption(f"Dataset: `{dataset}` — change it on the Data page")
        c1, c2, c3 = st.columns(3)
        model = _choice("Model", list(specs), base.model, k + "model", c1, format_func=lambda n: specs[n].title)
        weights = _choice("Weights", ["coco", "backbone", "none"], base.weights, k + "weights", c2,
                          help="coco / backbone need the torchvision weight files on disk (no downloads here)")
        device = _choice("Device", ["auto", "cpu", "cuda"], base.device, k + "device", c3)
        c1, c2, c3 = st.columns(3)
        epochs = c1.number_input("Epochs", 1, 500, base.epochs, key=k + "epochs")
        batch_size = c2.number_input("Batch size", 1, 256, base.batch_size, key=k + "batch_size")
        lr = c3.number_input("Learning rate", 1e-6, 1.0, float(base.lr), format="%.5f", key=k + "lr")
        c1, c2, c3 = st.columns(3)
        optimizer = _choice("Optimizer", ["sgd", "adamw"], base.optimizer, k + "optimizer", c1)
        schedule = _choice("LR schedule", ["step", "cosine", "none"], base.schedule, k + "schedule", c2)
        test_fraction = c3.slider("Test fraction", 0.05, 0.5, float(base.test_fraction), 0.05, key=k + "test_fraction")
        c1, c2, c3 = st.columns(3)
        split_seed = c1.number_input("Split seed", 0, 10_000, base.split_seed, key=k + "split_seed")
        eval_every = c2.number_input("Validate every N epochs (0 = never)", 0, 100, base.eval_every, key=k + "eval_every")
        max_iters = c3.number_input("Max iterations per epoch (0 = all)", 0, 100_000, base.max_iters_per_epoch or 0,
                                    key=k + "max_iters")
        if not st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:"):
            return None
    overrides = dict(model=model, weights=weights, device=device, epochs=int(epochs), batch_size=int(batch_size),
                     lr=float(lr), optimizer=optimizer, schedule=schedule, test_fraction=float(test_fraction),
                     split_seed=int(split_seed), eval_every=int(eval_every), max_iters_per_epoch=int(max_iters) or None)
    with shown_errors():
        return config_from_preset(preset, data=dataset, **overrides)


def progress_ui(run: Run, snapshot: dict | None) -> str:
    """Status, metrics and charts for one run; returns its status."""
    events = run.events()
    status = snapshot["status"] if snapshot else run.status()
    steps = [e for e in events if e.get("type") == "step"]
    epochs = [e for e in events if e.get("type") == "epoch"]
    last = steps[-1] if steps else {}
    cols = st.columns([1.5, 1, 1, 1, 1, 1])  # "interrupted" must fit
    cols[0].metric("Status", status)
    cols[1].metric("Step", f"{last.get('global_step', 0)} / {last.get('total_steps', '—')}")
    total_epochs = (snapshot or {}).get("total_epochs") or _planned_epochs(run)
    cols[2].metric("Epoch", f"{last['epoch'] + 1} / {total_epochs or '—'}" if "epoch" in last else "—")
    cols[3].metric("Loss", f"{last['loss']:.3f}" if "loss" in last else "—")
    cols[4].metric("Images/s", f"{last['images_per_s']:.1f}" if last.get("images_per_s") else "—")
    cols[5].metric("ETA", _fmt_eta(last.get("eta_s")) if status == "running" else "—")
    if last.get("total_steps"):
        st.progress(min(1.0, last.get("global_step", 0) / last["total_steps"]))
    if status == "failed":
        st.error((snapshot or {}).get("message") or run.message() or "training failed", icon=":material/error:")
    elif status in ("stopped", "interrupted"):
        st.info(f"{status.capitalize()}: {(snapshot or {}).get('message') or run.message()} — resume it from the runs below.")
    if steps:
        left, right = st.columns([3, 2])
        left.plotly_chart(loss_figure(events, steps), key="train_loss_chart")
        with right:
            rate_chart_ui(steps)
    if epochs:
        st.plotly_chart(viz.epoch_metrics_figure(events), key="train_val_chart")
    return status


def loss_figure(events: list[dict], steps: list[dict]):
    """viz's loss curves (per step, each component, validation loss) plus a smoothed total, which
    is what one reads through the per-batch noise."""
    figure = viz.loss_curves_figure(events)
    rows = [e for e in steps if e.get("loss") is not None]
    if len(rows) >= 3:
        smoothed = pd.Series([e["loss"] for e in rows]).ewm(alpha=0.1).mean()
        figure.add_scatter(x=[e.get("global_step") for e in rows], y=smoothed, name="loss (smoothed)",
                           mode="lines", line=dict(width=3, color="#2563eb"))
    return figure


def _planned_epochs(run: Run) -> int | None:
    try:
        return run.config().get("epochs")
    except DetcoreError:
        return None  # the job is still writing its run files


def rate_chart_ui(steps: list[dict]) -> None:
    table = pd.DataFrame({"step": [e.get("global_step") for e in steps], "learning rate": [e.get("lr") for e in steps],
                          "images/s": [e.get("images_per_s") for e in steps]}).set_index("step")
    st.caption("Learning rate")
    st.line_chart(table[["learning rate"]], height=160)
    st.caption("Throughput (images/s)")
    st.line_chart(table[["images/s"]], height=160)


@st.fragment(run_every=POLL_SECONDS)
def live_job_ui(job) -> None:
    # Polls while the job runs; when it ends, one full rerun swaps this for the static view.
    snapshot = job.snapshot()
    if st.button("Stop", icon=":material/stop:", key="train_stop"):
        job.stop()
        st.toast("Stopping after the current iteration; a checkpoint is kept.")
    status = progress_ui(Run(job.run_dir), snapshot)
    if status in FINISHED:
        st.rerun(scope="app")


def runs_table_ui() -> None:
    runs = run_listing(str(paths.runs_root()))
    if not runs:
        st.caption("No runs yet.")
        return
    table = pd.DataFrame([{"run": r["name"], "status": r["status"], "best AP": r["best"]} for r in runs])
    st.dataframe(table, hide_index=True, key="train_runs_table", column_config={
        "best AP": st.column_config.ProgressColumn("best AP", min_value=0.0, max_value=1.0, format="%.3f")})
    finished = [r for r in runs if r["status"] in FINISHED]
    if not finished:
        return
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    choice = c1.selectbox("Resume run", [r["path"] for r in finished], format_func=lambda p: Path(p).name,
                          key="train_resume_run")
    extra = c2.number_input("Extra epochs", 0, 500, 2, key="train_resume_extra")
    if c3.button("Resume", icon=":material/resume:", key="train_resume"):
        if start_job(None, run_dir=Path(choice), resume=True, extra_epochs=int(extra)) is not None:
            st.rerun()


page_shell("Train")
active = job_registry().active()
if active is not None:
    st.subheader(f"Running: {active.run_dir.name}")
    live_job_ui(active)
with st.expander("New training run", expanded=active is None):
    config = config_form_ui()
    if config is not None and start_job(config) is not None:
        st.rerun()
current = state.current_run_dir()
if active is None and current is not None and (current / "config.json").exists():
    st.subheader(f"Run {current.name}")
    progress_ui(Run(current), None)

st.subheader("Runs")
runs_table_ui()
