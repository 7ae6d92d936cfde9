"""Jobs on two processes (torchrun, gloo on CPU) started by the job registry as the app starts them:
Stop leaves a checkpoint that a 2-process resume finishes from, a failure on rank 1 ends the job
``failed`` with rank 1's message — not rank 0's "the peer went away" — in the job and in the run, and
Kill now ends torchrun and both ranks (which torchrun starts in sessions of their own)."""

from __future__ import annotations

import time

import pytest
import torch

from detcore.train.config import TrainConfig
from detcore.train.jobs import JobRegistry
from detcore.train.runs import Run
from tests.reliability.childfaults import DEAF_TO_STOP, inject_into_children
from tests.reliability.tinydata import TINY, write_tiny_voc

pytestmark = pytest.mark.slow  # torchrun and two torch processes per job
JOIN_S = 400


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory):
    return write_tiny_voc(tmp_path_factory.mktemp("ddp-jobs") / "tiny")  # 6 training images: 3 per rank


def _config(data, **overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, "data": str(data), "epochs": 1, **overrides})


def _wait_for_steps(job, n: int) -> None:
    deadline = time.monotonic() + JOIN_S
    while job.snapshot()["step"] < n:
        assert job.snapshot()["status"] in ("starting", "running"), job.snapshot()["message"]
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.1)


def test_stop_on_a_two_process_job_keeps_a_checkpoint_that_a_two_process_resume_finishes(tiny_voc, tmp_path):
    registry = JobRegistry(tmp_path / "runs")
    job = registry.start(_config(tiny_voc, epochs=50, max_iters_per_epoch=2), processes=2)
    _wait_for_steps(job, 3)  # past the first epoch's checkpoint
    snap = job.snapshot()
    assert snap["processes"] == 2 and snap["status"] == "running" and snap["total_steps"] == 100
    job.stop()
    assert job.join(JOIN_S)
    run = Run(job.run_dir)
    assert job.snapshot()["status"] == "stopped" and run.status() == "stopped", job.snapshot()["message"]
    saved = torch.load(run.checkpoint("last"), weights_only=True)
    assert 1 <= saved["epoch"] < 50
    assert [r["status"] for r in run.events("status")] == ["running", "stopped"]  # rank 0 alone wrote them

    finish_after = saved["epoch"] + 1
    resumed = registry.start(None, run_dir=job.run_dir, resume=True, extra_epochs=finish_after - 50, processes=2)
    assert resumed.join(JOIN_S) and resumed.snapshot()["status"] == "completed", resumed.snapshot()["message"]
    assert torch.load(run.checkpoint("last"), weights_only=True)["epoch"] == finish_after
    assert run.status() == "completed" and run.job_spec().processes == 2


def test_a_failure_on_rank_1_fails_the_job_with_rank_1s_message(tiny_voc, tmp_path, monkeypatch):
    registry = JobRegistry(tmp_path / "runs")
    with monkeypatch.context() as patch:
        inject_into_children(patch, tmp_path / "rank1-disk", """
            import os

            if os.environ.get("RANK") == "1":  # only the second process's disk goes bad
                import detcore.data.images as images
                from detcore.errors import DataError

                def unreadable(source, *args, **kwargs):
                    raise DataError(str(source),
                                    "Input/output error (the disk of rank 1)")

                images.load_rgb = unreadable
        """)
        job = registry.start(_config(tiny_voc, epochs=2, max_iters_per_epoch=2), processes=2)
        assert job.join(JOIN_S)
    snap = job.snapshot()
    assert snap["status"] == "failed" and "the disk of rank 1" in snap["message"], snap["message"]
    run = Run(job.run_dir)
    assert run.status() == "failed" and "the disk of rank 1" in run.message()
    assert "the disk of rank 1" in run.job_log_path.read_text()  # the whole story is kept with the run


def test_kill_now_ends_torchrun_and_every_rank_of_a_job_deaf_to_stop(tiny_voc, tmp_path, monkeypatch):
    from detcore.train import supervise

    registry = JobRegistry(tmp_path / "runs")
    with monkeypatch.context() as patch:
        inject_into_children(patch, tmp_path / "deaf", DEAF_TO_STOP)
        job = registry.start(_config(tiny_voc, epochs=50, max_iters_per_epoch=2), processes=2)
        _wait_for_steps(job, 1)
    ranks = supervise.descendants(job.process.pid)
    assert len(ranks) >= 2  # torchrun's two workers (and nothing of ours is a thread)
    job.stop()
    assert not job.join(5) and job.snapshot()["status"] == "running"  # deaf to Stop
    job.stop(force=True)
    assert job.join(60)
    snap = job.snapshot()
    assert snap["status"] == "interrupted" and "killed on request" in snap["message"]
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in ranks) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in ranks if _alive(pid)], "a rank outlived Kill now"
    assert Run(job.run_dir).status() == "interrupted"


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = f"/proc/{pid}/stat"
    return not (os.path.exists(stat) and open(stat).read().rsplit(")", 1)[1].split()[0] == "Z")
