"""``python -m detcore train`` as the app's job processes use it: ``--job RUN`` reads the run's job.json
(a bad one is one line naming it, exit 2), and SIGTERM — the app's Stop, or ``kill PID`` — stops
cooperatively: last.pt written, status ``stopped``, exit 0, resumable."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

from detcore.train.config import TrainConfig
from detcore.train.runs import JobSpec, Run
from tests.reliability.tinydata import REPO, TINY, cli_env, detcore_cmd, run_cli, write_tiny_voc


def test_a_missing_or_bad_job_file_is_one_line_naming_it(tmp_path):
    run_dir = tmp_path / "queued-run"
    run_dir.mkdir()
    missing = run_cli("train", "--job", str(run_dir))
    assert missing.returncode == 2 and missing.stderr.strip() == f"error: {run_dir / 'job.json'}: missing from the run directory"
    (run_dir / "job.json").write_text(json.dumps({"config": {"epochs": "many"}, "resume": False, "extra_epochs": 0,
                                                  "processes": 1}))
    bad = run_cli("train", "--job", str(run_dir))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.startswith(f"error: {run_dir / 'job.json'}: not a valid job config: epochs:")
    mixed = run_cli("train", "--job", str(run_dir), "--data", "elsewhere")
    assert mixed.returncode == 2 and mixed.stderr.strip() == "error: --job: takes its settings from the run's job file; drop --data"


@pytest.mark.slow  # a real training process
def test_sigterm_stops_with_a_checkpoint_and_the_job_resumes(tmp_path):
    data = write_tiny_voc(tmp_path / "tiny")
    run_dir = tmp_path / "runs" / "job"
    Run(run_dir).save_job_spec(JobSpec(TrainConfig(**{**TINY, "data": str(data), "epochs": 30, "max_iters_per_epoch": 2})))
    proc = subprocess.Popen(detcore_cmd("train", "--job", str(run_dir)), cwd=REPO, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not Run(run_dir).events("epoch") and time.monotonic() < deadline:  # a checkpoint exists
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert json.loads(stdout)["status"] == "stopped" and "stopped by request" in stderr
    run = Run(run_dir)
    assert run.status() == "stopped"
    epoch = torch.load(run.checkpoint("last"), weights_only=True)["epoch"]
    assert 1 <= epoch < 30
    Run(run_dir).save_job_spec(JobSpec(None, resume=True, extra_epochs=epoch + 1 - 30))
    done = run_cli("train", "--job", str(run_dir), timeout=300)
    assert done.returncode == 0, done.stderr
    assert run.status() == "completed" and torch.load(run.checkpoint("last"), weights_only=True)["epoch"] == epoch + 1
