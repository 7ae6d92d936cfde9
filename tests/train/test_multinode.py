"""docs/deploy.md's multi-node recipe, run on one machine: two torchrun launches ("nodes") with
``--nnodes=2``, one process each, meeting through a c10d rendezvous on localhost, gloo, training one
run to completion. Rank 0 (on whichever node it lands) alone writes the run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from detcore.train.runs import Run
from tests.reliability.tinydata import REPO, TINY, write_tiny_voc

pytestmark = pytest.mark.slow  # two torchrun agents and two torch processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_with_c10d_rendezvous_on_localhost_train_one_run(tmp_path):
    data = write_tiny_voc(tmp_path / "tiny")
    out = tmp_path / "two-nodes"
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
            "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_free_port()}", "--rdzv-id=detboard-two-nodes",
            "-m", "detcore", "train", "--data", str(data), "--model", TINY["model"], "--weights", "none",
            "--device", "cpu", "--epochs", "1", "--batch-size", "1", "--min-size", "64", "--max-size", "96",
            "--eval-every", "0", "--max-iters-per-epoch", "2", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(node, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = []
    try:
        for proc in nodes:
            outputs.append(proc.communicate(timeout=600))
    finally:
        for proc in nodes:
            proc.kill()
    for proc, (stdout, stderr) in zip(nodes, outputs):
        assert proc.returncode == 0, stderr[-3000:]
    summaries = [json.loads(stdout) for stdout, _ in outputs if stdout.strip()]
    assert len(summaries) == 1 and summaries[0]["status"] == "completed"  # one summary: rank 0's node
    run = Run(out)
    assert run.status() == "completed"
    assert [s["status"] for s in run.events("status")] == ["running", "completed"]
    steps = run.events("step")
    assert [s["global_step"] for s in steps] == [1, 2] and steps[-1]["total_steps"] == 2
    assert run.checkpoint("last").is_file()
