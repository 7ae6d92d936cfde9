"""``kill -9`` of a real ``python -m detcore train`` process at the moments that hurt: mid-epoch, while
``last.pt`` is being replaced, right after a checkpoint. Afterwards the run directory must read
cleanly (config.json, whole lines in events.jsonl, a weights-only-loadable last.pt), the run must show
as ``interrupted`` (not "running" forever), and ``train --resume RUN_DIR`` must finish the planned epochs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from detcore import atomic
from detcore.train.runs import Run

from tests.reliability.tinydata import REPO, TINY, cli_env, detcore_cmd, run_cli, write_tiny_voc

EPOCHS, ITERS = 2, 3
pytestmark = pytest.mark.slow  # a torch process start per training: 10-30 s per test on the shared 2 cores


def _train_args(data: Path, run_dir: Path) -> list[str]:
    return ["train", "--data", str(data), "--model", TINY["model"], "--weights", "none", "--device", "cpu",
            "--epochs", str(EPOCHS), "--batch-size", "1", "--lr", "0.001", "--min-size", "64", "--max-size", "96",
            "--eval-every", "0", "--max-iters-per-epoch", str(ITERS), "--out", str(run_dir)]


def _start(data: Path, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(detcore_cmd(*_train_args(data, run_dir)), cwd=REPO, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _kill_when(proc: subprocess.Popen, ready, *, what: str, timeout: float = 240.0) -> None:
    """Poll (5 ms) until ``ready()`` holds, then SIGKILL and reap the process."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"training ended (rc {proc.returncode}) before {what}:\n{proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    proc.stdout.close()
    proc.stderr.close()


def _assert_readable(run_dir: Path) -> list[dict]:
    run = Run(run_dir)
    assert run.config().epochs == EPOCHS and run.classes() == ["red", "blue"]
    raw = (run_dir / "events.jsonl").read_bytes()
    assert raw.endswith(b"\n"), "events.jsonl ends in a torn line"
    records = atomic.read_jsonl(run_dir / "events.jsonl")
    assert len(records) == raw.count(b"\n"), "a line of events.jsonl is not valid JSON"
    assert records[0]["type"] == "status" and records[0]["status"] == "running"
    assert run.status() == "interrupted", "a killed run must not show as running"
    assert "ended without a final status" in run.message()
    return records


def _assert_resume_finishes(run_dir: Path) -> None:
    done = run_cli("train", "--resume", str(run_dir), timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "completed"
    run = Run(run_dir)
    assert run.status() == "completed"
    last = torch.load(run.checkpoint("last"), weights_only=True)
    assert last["epoch"] == EPOCHS and last["global_step"] == EPOCHS * ITERS
    statuses = [r["status"] for r in run.events("status")]
    assert statuses[0] == "running" and statuses[-2:] == ["running", "completed"]


def _tmp_checkpoint(run_dir: Path) -> list[Path]:
    return list((run_dir / "checkpoints").glob(".last.pt.*.tmp")) if (run_dir / "checkpoints").is_dir() else []


@pytest.fixture
def data(tmp_path) -> Path:
    return write_tiny_voc(tmp_path / "data" / "tiny")


def test_kill_while_last_checkpoint_is_being_replaced(tmp_path, data):
    run_dir = tmp_path / "run"
    proc = _start(data, run_dir)
    # epoch 1's last.pt is in place and epoch 2's is being written beside it
    _kill_when(proc, lambda: (run_dir / "checkpoints" / "last.pt").is_file() and _tmp_checkpoint(run_dir),
               what="the second checkpoint write")
    _assert_readable(run_dir)
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 1 and last["classes"] == ["red", "blue"]  # the previous one, whole
    _assert_resume_finishes(run_dir)


def test_kill_right_after_a_checkpoint(tmp_path, data):
    run_dir = tmp_path / "run"
    proc = _start(data, run_dir)
    _kill_when(proc, lambda: (run_dir / "checkpoints" / "last.pt").is_file(), what="the first checkpoint")
    _assert_readable(run_dir)
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] >= 1
    _assert_resume_finishes(run_dir)


def _in_epoch_one(run_dir: Path) -> bool:
    records = atomic.read_jsonl(run_dir / "events.jsonl")
    return any(r["type"] == "step" for r in records) and not any(r["type"] == "epoch" for r in records)


def test_kill_during_the_first_epoch_then_resume_from_the_start(tmp_path, data):
    run_dir = tmp_path / "run"
    proc = _start(data, run_dir)
    # While the process lives its run reads as running (the pid check does not call a live run dead).
    _kill_when(proc, lambda: _in_epoch_one(run_dir) and Run(run_dir).status() == "running",
               what="a step of epoch 1 with the run showing as running")
    _assert_readable(run_dir)
    _assert_resume_finishes(run_dir)  # usually no checkpoint yet: the same config and split, from epoch 1
