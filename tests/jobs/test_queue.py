"""The job queue: FIFO per device, positions every session sees, cancel, ``RUNS/queue.json`` written
atomically — and a server that dies while a job trains and two wait: the next server keeps following
(and can stop) the running training process and then starts the queued jobs in their order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from detcore.train import jobqueue
from detcore.train.config import TrainConfig
from detcore.train.jobs import JobRegistry
from detcore.train.runs import Run
from tests.reliability.tinydata import REPO, TINY, write_tiny_voc

JOIN_S = 400


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory):
    return write_tiny_voc(tmp_path_factory.mktemp("queue") / "tiny")


def _config(data, **overrides) -> dict:
    return {**TINY, "data": str(data), "epochs": 1, "max_iters_per_epoch": 1, **overrides}


def _saved(root) -> list[tuple[str, str]]:
    return [(os.path.basename(e.run_dir), e.state) for e in jobqueue.load(root)]


def test_fifo_per_device_positions_cancel_and_the_saved_list(tiny_voc, tmp_path):
    root = tmp_path / "runs"
    registry = JobRegistry(root)
    first = registry.start(TrainConfig(**_config(tiny_voc, epochs=30, max_iters_per_epoch=2)), run_dir=root / "a")
    second = registry.start(TrainConfig(**_config(tiny_voc)), run_dir=root / "b")
    third = registry.start(TrainConfig(**_config(tiny_voc)), run_dir=root / "c")
    assert first.snapshot()["status"] in ("starting", "running")
    assert [j.snapshot()["status"] for j in (second, third)] == ["queued", "queued"]
    assert [second.snapshot()["queue_position"], third.snapshot()["queue_position"]] == [1, 2]
    assert _saved(root) == [("a", "started"), ("b", "queued"), ("c", "queued")]
    assert json.loads((root / "queue.json").read_text())["version"] == 1

    second.stop()  # cancel
    assert second.snapshot()["status"] == "cancelled" and not (root / "b").exists()
    assert third.snapshot()["queue_position"] == 1 and _saved(root) == [("a", "started"), ("c", "queued")]

    deadline = time.monotonic() + JOIN_S
    while first.snapshot()["step"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    first.stop()
    assert first.join(JOIN_S) and first.snapshot()["status"] == "stopped"
    assert third.join(JOIN_S) and third.snapshot()["status"] == "completed", third.snapshot()["message"]
    started = Run(root / "c").events("status")[0]["time"]
    assert started >= Run(root / "a").events("status")[-1]["time"]  # it waited for the first to end
    assert _saved(root) == []


# A server process: starts a long job, queues two, and dies (os._exit: no cleanup, its threads gone)
# while the first trains. The training process lives on in its own session.
SERVER = """
import json, os, sys, time
from detcore.train.config import TrainConfig
from detcore.train.jobs import JobRegistry

root, configs = sys.argv[1], json.loads(sys.argv[2])
registry = JobRegistry(root)
jobs = [registry.start(TrainConfig(**c), run_dir=os.path.join(root, name)) for name, c in configs]
deadline = time.monotonic() + 400
while jobs[0].snapshot()["step"] < 1 and time.monotonic() < deadline:
    time.sleep(0.1)
print(json.dumps({"pid": jobs[0].process.pid, "statuses": [j.snapshot()["status"] for j in jobs]}), flush=True)
os._exit(0)
"""


@pytest.mark.slow  # three training processes, one after the other
def test_queued_jobs_survive_a_server_restart_and_start_in_order(tiny_voc, tmp_path):
    root = tmp_path / "runs"
    configs = [("long", _config(tiny_voc, epochs=40, max_iters_per_epoch=2)), ("next", _config(tiny_voc)),
               ("last", _config(tiny_voc))]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", SERVER, str(root), json.dumps(configs)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=JOIN_S + 60)
    assert done.returncode == 0, done.stderr
    dead_server = json.loads(done.stdout)
    assert dead_server["statuses"] == ["running", "queued", "queued"]
    assert _saved(root) == [("long", "started"), ("next", "queued"), ("last", "queued")]

    registry = JobRegistry(root)  # the restarted server
    running = registry.active("cpu")
    assert running is not None and running.run_dir == root / "long" and running.process.pid == dead_server["pid"]
    snap = running.snapshot()
    assert snap["adopted"] and snap["status"] == "running" and snap["step"] >= 1
    assert [(j.run_dir.name, j.snapshot()["queue_position"]) for j in registry.queued()] == [("next", 1), ("last", 2)]

    running.stop()  # a process the previous server started can still be stopped, with a checkpoint
    assert running.join(JOIN_S) and running.snapshot()["status"] == "stopped", running.snapshot()["message"]
    assert Run(root / "long").checkpoint("last").is_file() and Run(root / "long").status() == "stopped"
    nxt, last = [next(j for j in registry.jobs() if j.run_dir.name == name) for name in ("next", "last")]
    assert nxt.join(JOIN_S) and last.join(JOIN_S)
    assert [j.snapshot()["status"] for j in (nxt, last)] == ["completed", "completed"]
    began = {name: Run(root / name).events("status")[0]["time"] for name in ("next", "last")}
    assert began["next"] < began["last"]  # in the order they were queued
    assert _saved(root) == []
