"""Train page: a form built from TrainConfig (demo-cpu preset by default), the background job with a
live chart that polls only while the job runs, Stop, and past runs with resume."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from detcore import viz
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


def config_form_ui() -> TrainConfig | None:
    """The training form; returns the config when Start is pressed."""
    preset = st.selectbox("Preset", list(PRESETS), index=list(PRESETS).index(DEFAULT_PRESET), key="train_preset")
    base = config_from_preset(preset, data=str(state.current_dataset_path()))
    specs = {m.name: m for m in list_models()}
    with st.form(f"train_form_{preset}"):
        st.caption(f"Dataset: `{state.current_dataset_path()}` (change it on the Data page)")
        c1, c2, c3 = st.columns(3)
        model = c1.selectbox("Model", list(specs), index=list(specs).index(base.model),
                             format_func=lambda n: specs[n].title)
        weights = c2.selectbox("Weights", ["coco", "backbone", "none"], index=["coco", "backbone", "none"].index(base.weights)
                               if base.weights in ("coco", "backbone", "none") else 2)
        device = c3.selectbox("Device", ["auto", "cpu", "cuda"], index=["auto", "cpu", "cuda"].index(base.device))
        c1, c2, c3 = st.columns(3)
        epochs = c1.number_input("Epochs", 1, 500, base.epochs)
        batch_size = c2.number_input("Batch size", 1, 256, base.batch_size)
        lr = c3.number_input("Learning rate", 1e-6, 1.0, float(base.lr), format="%.5f")
        c1, c2, c3 = st.columns(3)
        optimizer = c1.selectbox("Optimizer", ["sgd", "adamw"], index=["sgd", "adamw"].index(base.optimizer))
        schedule = c2.selectbox("LR schedule", ["step", "cosine", "none"], index=["step", "cosine", "none"].index(base.schedule))
        test_fraction = c3.slider("Test fraction", 0.05, 0.5, float(base.test_fraction), 0.05)
        c1, c2, c3 = st.columns(3)
        split_seed = c1.number_input("Split seed", 0, 10_000, base.split_seed)
        eval_every = c2.number_input("Validate every N epochs", 0, 100, base.eval_every)
        max_iters = c3.number_input("Max iterations per epoch (0 = all)", 0, 100_000, base.max_iters_per_epoch or 0)
        if not st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:"):
            return None
    overrides = dict(model=model, weights=weights, device=device, epochs=int(epochs), batch_size=int(batch_size),
                     lr=float(lr), optimizer=optimizer, schedule=schedule, test_fraction=float(test_fraction),
                     split_seed=int(split_seed), eval_every=int(eval_every),
                     max_iters_per_epoch=int(max_iters) or None)
    return config_from_preset(preset, data=str(state.current_dataset_path()), **overrides)


def progress_ui(run: Run, snapshot: dict | None) -> str:
    """Status, metrics and charts for one run; returns its status."""
    events = run.events()
    status = snapshot["status"] if snapshot else run.status()
    steps = [e for e in events if e.get("type") == "step"]
    epochs = [e for e in events if e.get("type") == "epoch"]
    last = steps[-1] if steps else {}
    cols = st.columns(6)
    cols[0].metric("Status", status)
    cols[1].metric("Step", f"{last.get('global_step', 0)} / {last.get('total_steps', '—')}")
    cols[2].metric("Epoch", last.get("epoch", "—"))
    cols[3].metric("Loss", f"{last['loss']:.3f}" if "loss" in last else "—")
    cols[4].metric("Images/s", f"{last['images_per_s']:.1f}" if last.get("images_per_s") else "—")
    cols[5].metric("ETA", _fmt_eta(last.get("eta_s")) if status == "running" else "—")
    if last.get("total_steps"):
        st.progress(min(1.0, last.get("global_step", 0) / last["total_steps"]))
    failure = next((e for e in reversed(events) if e.get("type") == "status" and e.get("status") == "failed"), None)
    if status == "failed":
        st.error((snapshot or {}).get("message") or (failure or {}).get("message") or "training failed", icon=":material/error:")
    if steps:
        left, right = st.columns([3, 2])
        left.plotly_chart(viz.loss_curves_figure(events), key="train_loss_chart")
        with right:
            rate_chart_ui(steps)
    if epochs:
        st.plotly_chart(viz.epoch_metrics_figure(events), key="train_val_chart")
    return status


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
    runs = run_listing(str(job_registry_runs_root()))
    if not runs:
        st.caption("No runs yet.")
        return
    table = pd.DataFrame([{"run": r["name"], "status": r["status"], "best AP": r["best"]} for r in runs])
    st.dataframe(table, hide_index=True, column_config={
        "best AP": st.column_config.ProgressColumn("best AP", min_value=0.0, max_value=1.0, format="%.3f")})
    finished = [r for r in runs if r["status"] in FINISHED]
    if not finished:
        return
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    choice = c1.selectbox("Resume run", [r["path"] for r in finished], format_func=lambda p: Path(p).name)
    extra = c2.number_input("Extra epochs", 0, 500, 2)
    if c3.button("Resume", icon=":material/resume:"):
        with shown_errors():
            cfg = TrainConfig.from_dict(Run(Path(choice)).config())
        if start_job(cfg, run_dir=Path(choice), resume=True, extra_epochs=int(extra)) is not None:
            st.rerun()


def job_registry_runs_root() -> Path:
    from detcore import paths

    return paths.runs_root()


page_shell("Train")
active = job_registry().active()
if active is not None:
    st.subheader(f"Running: {Path(active.run_dir).name}")
    live_job_ui(active)
else:
    config = config_form_ui()
    if config is not None and start_job(config) is not None:
        st.rerun()
    current = state.current_run_dir()
    if current is not None and current.exists():
        st.subheader(f"Last run: {current.name}")
        progress_ui(Run(current), None)

st.subheader("Runs")
runs_table_ui()
