"""The Train page's job controls and job list, the same for every session of the server: Stop (and,
once asked, Kill now) for the running job, and the queue — every job waiting for its device, its
place in line, who queued it, and a Cancel button anyone who may start jobs can press."""

from __future__ import annotations

import time

import streamlit as st

from detcore.errors import DetcoreError
from detcore.train.runs import Status
from ui.audit import audit
from ui.registry import job_registry


def _by(snap: dict) -> str:
    who = snap["by"]
    return "" if not who else "from this machine" if who == "local" else f"by {who}"


def _devices(snap: dict) -> str:
    n = snap["processes"]
    return snap["device"] if n == 1 else f"{snap['device']} × {n}"


def job_controls_ui(job, snapshot: dict) -> None:
    """Stop for the running job: SIGTERM, so it writes a checkpoint and ends ``stopped``. After that a
    "Kill now" for a job that does not stop (its last epoch's checkpoint is kept)."""
    if not job.stoppable:
        st.caption(f"Trained by another process (pid {job.external_pid}), not by this server: stop it there.")
        return
    cols = st.columns([1, 1, 6], vertical_alignment="center")
    if not snapshot["stop_requested"]:
        if cols[0].button("Stop", icon=":material/stop:", key="train_stop"):
            _stop(job, force=False)
            st.toast("Stopping after the current iteration; a checkpoint is kept.")
        by = _by(snapshot)
        cols[2].caption(_devices(snapshot) + (f" · started {by}" if by else ""))
        return
    cols[0].button("Stop", icon=":material/stop:", key="train_stop", disabled=True)
    if cols[1].button("Kill now", icon=":material/dangerous:", key="train_kill",
                      help="End the training processes at once. The run keeps the checkpoint of its last "
                           "finished epoch and can be resumed from it."):
        _stop(job, force=True)
    cols[2].caption("Stopping: finishing the current iteration and writing a checkpoint…")


def _stop(job, *, force: bool) -> None:
    try:
        job.stop(force=force)
    except DetcoreError as e:
        st.error(str(e), icon=":material/error:")
        return
    audit("job_killed" if force else "job_stopped", run=job.run_dir.name, device=job.device)


def job_queue_ui() -> None:
    """Every running and queued job of the server, with each queued job's place in line."""
    registry = job_registry()
    queued = registry.queued()
    running = registry.running()
    if not queued and len(running) <= 1:
        return
    st.markdown("**Jobs on this server**")
    for job in [*running, *queued]:
        snap = job.snapshot()
        cols = st.columns([3, 2, 2, 2, 1], vertical_alignment="center")
        cols[0].markdown(f"`{snap['run']}`")
        if snap["status"] == Status.QUEUED:
            waited = time.time() - snap["queued"]
            cols[1].markdown(f"queued · **#{snap['queue_position']}** on {snap['device']}")
            cols[2].caption(f"waiting {int(waited // 60)} min {int(waited % 60)} s")
        else:
            cols[1].markdown(f"{snap['status']} on {_devices(snap)}")
            cols[2].caption(f"epoch {snap['epoch'] + 1 if snap['epoch'] is not None else '—'} / "
                            f"{snap['total_epochs'] or '—'}")
        cols[3].caption(f"queued {_by(snap)}" if snap["status"] == Status.QUEUED and snap["by"] else _by(snap))
        if snap["status"] == Status.QUEUED and cols[4].button("Cancel", key=f"cancel_job_{job.id}",
                                                              icon=":material/close:"):
            job.stop()
            audit("job_cancelled", run=job.run_dir.name, device=job.device)
            st.rerun(scope="app")
