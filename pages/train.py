"""Train page: a form built from TrainConfig (starting from the preset suggested for the dataset and
machine: demo-cpu for the demo set, cpu-real for real photos on a CPU), the background job with a live
chart that polls only while the job runs, what the run fitted, Stop, and past runs with resume."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from detcore import paths, viz
from detcore.catalog import MODELS
from detcore.errors import DetcoreError
from detcore.geometry import describe
from detcore.train.config import TrainConfig, config_from_preset
from detcore.train.presets import PRESETS
from detcore.train.runs import Run, Status, classifier_line, run_summaries
from ui import state
from ui.auth import still_allowed
from ui.devices import devices_ui
from ui.feedback import shown_errors
from ui.jobs import job_controls_ui, job_queue_ui
from ui.registry import job_registry
from ui.shell import page_shell
from ui.train_options import form_config, form_sections_ui, split_section_ui, start_values
from ui.training import start_job, suggested_preset

POLL_SECONDS = 1.5
INPUT_SIZES = (256, 320, 384, 416, 448, 512, 576, 640, 704, 800, 1024)
DEFAULT_PRESET = "demo-cpu"


def _fmt_eta(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _choice(label: str, options: list[str], value: str, key: str, container=st, **kwargs) -> str:
    return container.selectbox(label, options, index=options.index(value) if value in options else 0, key=key, **kwargs)


def config_form_ui() -> tuple[TrainConfig, int] | None:
    """The training form built from TrainConfig; returns (config, processes) when Start is pressed."""
    dataset = str(state.current_dataset_path())
    suggested, why = suggested_preset(dataset)
    if st.session_state.get("_train_preset_for") != dataset:  # another dataset: start from its recipe
        st.session_state["train_preset"] = suggested if suggested in PRESETS else DEFAULT_PRESET
        st.session_state["_train_preset_for"] = dataset
    preset = st.selectbox("Preset", list(PRESETS), key="train_preset",
                          help="Starting values; every field below can still be changed.")
    if preset == suggested:
        st.info(f"Preset **{preset}** was chosen for this dataset: {why}.", icon=":material/tune:")
    base = config_from_preset(preset, data=dataset)
    specs = {m.name: m for m in MODELS}
    k = f"train_{preset}_"  # per-preset keys: picking another preset resets the form to its values
    split = split_section_ui(base, k, dataset)  # outside the form: its preview follows every change
    with st.form(f"train_form_{preset}", border=True):
        st.caption(f"Dataset: `{dataset}` — change it on the Data page")
        c1, c2, c3 = st.columns(3)
        model = _choice("Model", list(specs), base.model, k + "model", c1, format_func=lambda n: specs[n].title)
        weights = _choice("Weights", ["coco", "backbone", "none"], base.weights, k + "weights", c2,
                          help="coco / backbone need the torchvision weight files on disk (no downloads here)")
        device, processes = devices_ui(base.device, k + "devices", c3)
        c1, c2, c3 = st.columns(3)
        epochs = c1.number_input("Epochs", 1, 500, base.epochs, key=k + "epochs")
        batch_size = c2.number_input("Batch size", 1, 256, base.batch_size, key=k + "batch_size")
        lr = c3.number_input("Learning rate", 1e-6, 1.0, float(base.lr), format="%.5f", key=k + "lr")
        c1, c2, c3 = st.columns(3)
        optimizer = _choice("Optimizer", ["sgd", "adamw"], base.optimizer, k + "optimizer", c1)
        schedule = _choice("LR schedule", ["step", "cosine", "none"], base.schedule, k + "schedule", c2)
        eval_every = c3.number_input("Validate every N epochs (0 = never)", 0, 100, base.eval_every, key=k + "eval_every")
        c1, c2, c3 = st.columns(3)
        max_iters = c1.number_input("Max iterations per epoch (0 = all)", 0, 100_000, base.max_iters_per_epoch or 0,
                                    key=k + "max_iters")
        anchor_options = ["default", "auto"] + (["explicit (from the preset)"] if isinstance(base.anchors, dict) else [])
        anchors = _choice("Anchors", anchor_options, base.anchors if isinstance(base.anchors, str) else anchor_options[-1],
                          k + "anchors", c2, help="auto: anchor sizes and aspect ratios fitted to the training "
                                                  "split's boxes (see the Data page's geometry check)")
        sizes = ["default", "auto", *map(str, INPUT_SIZES)]
        input_size = _choice("Input size", sizes, str(base.input_size), k + "input_size", c3,
                             help="The detector's input: torchvision's default, fitted to the boxes (auto), or "
                                  "N px (SSD: N×N; others: shorter side N)")
        c1, c2, c3 = st.columns(3)
        time_limit = c1.number_input("Time limit, minutes (0 = none)", 0.0, 10_000.0, float(base.time_limit or 0),
                                     step=1.0, key=k + "time_limit",
                                     help="Train for this long: the LR schedule is laid over the steps that fit, "
                                          "training stops in time to validate and keep the best checkpoint; "
                                          "epochs then only shape the schedule")
        classifier_minutes = c2.number_input(
            "Crop classifier, minutes (0 = off)", 0.0, 10_000.0, float(base.classifier_minutes), step=0.5,
            key=k + "classifier_minutes",
            help="After the detector, train a small classifier on crops of the training boxes that re-scores "
                 "each detected object's class (detection score x class probability). It is kept only if it "
                 "raises validation AP; one-class data skips it. Under a time limit these minutes are part of it (at most a quarter).")
        extras = form_sections_ui(base, k)  # augmentation, optimizer & schedule extras, local weights
        if not st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:"):
            return None
    overrides = dict(model=model, weights=weights, device=device, epochs=int(epochs), batch_size=int(batch_size),
                     lr=float(lr), optimizer=optimizer, schedule=schedule,
                     eval_every=int(eval_every), max_iters_per_epoch=int(max_iters) or None,
                     anchors=base.anchors if anchors.startswith("explicit") else anchors,
                     input_size=input_size if input_size in ("default", "auto") else int(input_size),
                     time_limit=float(time_limit) or None,  # 0 on the form means none, even where the preset has one
                     classifier_minutes=float(classifier_minutes))
    if model != base.model and isinstance(base.anchors, dict):
        overrides["anchors"] = "auto"  # the preset's explicit anchors belong to its own model
    extras = start_values(extras)  # a local weights file: saved / checked here
    if extras is None:
        return None
    with shown_errors():
        return form_config(preset, dataset, {**overrides, **split, **extras}), processes


def progress_ui(run: Run, snapshot: dict | None) -> Status:
    """Status, metrics and charts for one run; returns its status. Reads only the events appended
    since the last poll (Run.log)."""
    log = run.log()
    status = Status(snapshot["status"]) if snapshot else run.status()
    steps, epochs, last = log.steps, log.epochs, log.last_step or {}
    cols = st.columns([1.5, 1, 1, 1, 1, 1])  # "interrupted" must fit
    cols[0].metric("Status", status)
    cols[1].metric("Step", f"{last.get('global_step', 0)} / {last.get('total_steps', '—')}")
    total_epochs = (snapshot or {}).get("total_epochs") or _planned_epochs(run)
    cols[2].metric("Epoch", f"{last['epoch'] + 1} / {total_epochs or '—'}" if "epoch" in last else "—")
    cols[3].metric("Loss", f"{last['loss']:.3f}" if last.get("loss") is not None else "—")
    cols[4].metric("Images/s", f"{last['images_per_s']:.1f}" if last.get("images_per_s") else "—")
    cols[5].metric("ETA", _fmt_eta(last.get("eta_s")) if status == Status.RUNNING else "—")
    if last.get("total_steps"):
        st.progress(min(1.0, last.get("global_step", 0) / last["total_steps"]))
    if status == Status.FAILED:
        st.error((snapshot or {}).get("message") or run.message() or "training failed", icon=":material/error:")
    elif status in (Status.STOPPED, Status.INTERRUPTED):
        st.info(f"{status.capitalize()}: {(snapshot or {}).get('message') or run.message()} — resume it from the runs below.")
    elif status == Status.COMPLETED and run.message():
        st.caption(f"Completed: {run.message()}")
    setup_caption_ui(run)
    if log.classifier is not None:
        classifier_ui(log.classifier, running=status == Status.RUNNING)
    if log.skipped:
        st.caption(f"{log.skipped} malformed line(s) of {run.events_path.name} were skipped.")
    if steps:
        left, right = st.columns([3, 2])
        left.plotly_chart(loss_figure([*steps, *epochs], steps), key="train_loss_chart")
        with right:
            rate_chart_ui(steps)
    if epochs:
        st.plotly_chart(viz.epoch_metrics_figure(epochs), key="train_val_chart")
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
        config = run.config()
    except DetcoreError:
        return None  # the job is still writing its run files
    return None if config.time_limit else config.epochs  # a time limit sets the length


def setup_caption_ui(run: Run) -> None:
    """What the run fitted (geometry, recall ceiling, pretrained heads) and its time budget."""
    try:
        config = run.config()
    except DetcoreError:
        return
    notes = []
    geometry = config.geometry
    fit = (geometry or {}).get("fit") or {}
    if geometry:
        text = f"Geometry: {describe(geometry)}"
        if fit.get("best_possible_recall") is not None:
            text += (f" — fitted on {fit['boxes']} training boxes: recall ceiling "
                     f"{100 * fit['best_possible_recall']:.0f} % (default {100 * fit['default_best_possible_recall']:.0f} %)")
        notes.append(text)
    heads = fit.get("heads") or {}
    if heads.get("reinitialised"):
        notes.append("Re-initialised: " + "; ".join(heads["reinitialised"]))
    if heads.get("kept"):
        notes.append("Kept pretrained: " + "; ".join(heads["kept"]))
    if config.time_limit:
        notes.append(f"Time limit: {config.time_limit:g} min")
    if notes:
        st.caption(" · ".join(notes))


def classifier_ui(record: dict, *, running: bool) -> None:
    """The crop classifier stage: what it is doing, or whether it was kept and what it did on validation."""
    if record.get("phase") == "finished":
        before, after = record.get("detector") or {}, record.get("rescored") or {}
        if before.get("AP50") is not None and after.get("AP50") is not None:
            verdict = "kept — predictions are re-scored by it" if record.get("kept") else \
                "not kept — it did not raise validation AP, so predictions keep the detector's scores"
            st.caption(f"Crop classifier {verdict}. Validation ({record.get('images', '?')} images): AP50 "
                       f"{before['AP50']:.3f} → {after['AP50']:.3f}, AP {before.get('AP') or 0:.3f} → "
                       f"{after.get('AP') or 0:.3f}.")
            return
    if running or record.get("phase") in ("finished", "skipped"):
        st.caption(classifier_line(record))


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
    still_allowed()
    snapshot = job.snapshot()
    job_controls_ui(job, snapshot)
    job_queue_ui()
    status = progress_ui(Run(job.run_dir), snapshot)
    if status.finished:
        st.rerun(scope="app")


def runs_table_ui() -> None:
    runs = run_summaries(paths.runs_root())
    if not runs:
        st.caption("No runs yet.")
        return
    table = pd.DataFrame([{"run": r.name, "status": r.status, "model": r.model, "best AP": r.best_ap,
                           "note": r.problem} for r in runs])
    st.dataframe(table, hide_index=True, key="train_runs_table", column_config={
        "best AP": st.column_config.ProgressColumn("best AP", min_value=0.0, max_value=1.0, format="%.3f")})
    finished = [r for r in runs if r.status.finished]
    if not finished:
        return
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    choice = c1.selectbox("Resume run", [str(r.path) for r in finished], format_func=lambda p: Path(p).name,
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
    picked = config_form_ui()
    if picked is not None and start_job(picked[0], processes=picked[1]) is not None:
        st.rerun()
current = state.current_run_dir()
if active is None and current is not None and Run(current).exists():
    st.subheader(f"Run {current.name}")
    with shown_errors(stop=False):
        progress_ui(Run(current), None)

st.subheader("Runs")
runs_table_ui()
