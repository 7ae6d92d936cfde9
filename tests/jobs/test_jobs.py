"""Background jobs (child processes of the registry): progress snapshots, cooperative stop with a
checkpoint, one job per device and a queue behind it, failures reported as `failed` without hurting
the process, adoption of another process's run."""

import json
import os
import socket
import time

import pytest

from detcore.errors import ConfigError
from detcore.train.config import TrainConfig
from detcore.train.jobs import JobRefused, JobRegistry
from detcore.train.runs import Run


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    from detcore.data.demo import generate_demo_dataset

    return generate_demo_dataset(tmp_path_factory.mktemp("jobs") / "demo", n_images=8, seed=11)


def _config(data, **kw):
    values = dict(data=str(data), model="ssdlite320_mobilenet_v3_large", weights="none", epochs=1, batch_size=2,
                  max_iters_per_epoch=1, eval_every=0, device="cpu", optimizer="adamw", lr=1e-3,
                  test_fraction=0.25, augment={"hflip": 0.0})
    values.update(kw)
    return TrainConfig(**values)


def _wait(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_progress_then_stop_writes_a_checkpoint_and_queues_a_second_job(tiny_demo, tmp_path):
    registry = JobRegistry(tmp_path / "runs")
    job = registry.start(_config(tiny_demo, epochs=200))
    assert _wait(lambda: job.snapshot()["step"] >= 2), job.snapshot()
    snap = job.snapshot()
    assert snap["status"] == "running" and snap["total_steps"] == 200 and snap["loss"] is not None
    assert snap["recent_steps"] and snap["recent_steps"][-1]["global_step"] == snap["step"]
    snap["recent_steps"].clear()  # a snapshot is a copy
    assert job.snapshot()["recent_steps"]
    assert registry.active() is job and registry.active("cpu") is job
    assert job.process.pid != os.getpid()  # trained by a child process, not by this one
    # ... below this process's priority, with a core left to it (docs/architecture.md, "Background jobs")
    assert os.getpriority(os.PRIO_PROCESS, job.process.pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)
    environ = dict(item.split("=", 1) for item in
                   open(f"/proc/{job.process.pid}/environ").read().split("\0") if "=" in item)
    assert environ["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) - 1))
    assert os.getpgid(job.process.pid) == job.process.pid != os.getpgid(0)  # its own process group

    second = registry.start(_config(tiny_demo))
    assert second.snapshot()["status"] == "queued" and second.snapshot()["queue_position"] == 1
    assert registry.queued("cpu") == [second] and registry.active() is job
    second.stop()  # cancel: it never started, and leaves no folder behind
    assert second.snapshot()["status"] == "cancelled" and not second.run_dir.exists()

    job.stop()
    assert job.join(60)
    final = job.snapshot()
    assert final["status"] == "stopped" and final["step"] < 200
    assert (job.run_dir / "checkpoints" / "last.pt").is_file()
    assert Run(job.run_dir).status() == "stopped"
    assert registry.active() is None


def test_a_failing_job_reports_failed_and_the_next_job_runs(tiny_demo, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_demo, broken)
    for png in (broken / "images").glob("*.png"):  # every image corrupt: the first batch fails
        png.write_bytes(png.read_bytes()[:60])
    registry = JobRegistry(tmp_path / "runs")
    bad = registry.start(_config(broken))
    assert bad.join(60)
    snap = bad.snapshot()
    assert snap["status"] == "failed"
    assert ".png" in snap["message"]  # names the file that broke it
    assert Run(bad.run_dir).status() == "failed"

    good = registry.start(_config(tiny_demo))
    assert good.join(120)
    assert good.snapshot()["status"] == "completed"
    assert [j.snapshot()["status"] for j in registry.jobs()] == ["failed", "completed"]


def test_bad_settings_are_refused_before_any_thread_or_run_folder(tiny_demo, tmp_path):
    registry = JobRegistry(tmp_path / "runs")
    with pytest.raises(ConfigError, match="lr"):
        registry.start(_config(tiny_demo, lr=-1.0))
    assert registry.jobs() == [] and not (tmp_path / "runs").exists()


def test_a_run_trained_by_another_live_process_is_adopted_and_books_the_device(tiny_demo, tmp_path):
    run = tmp_path / "runs" / "from-cli"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(_config(tiny_demo).to_dict()))
    (run / "classes.json").write_text("[]")
    pid = os.getppid()  # alive for the whole test, and not this process's own job
    lines = [{"type": "status", "status": "running", "message": "started", "time": 0, "pid": pid,
              "host": socket.gethostname()},
             {"type": "step", "epoch": 0, "iter": 0, "global_step": 3, "total_steps": 10, "loss": 1.5,
              "losses": {}, "lr": 0.001, "images_per_s": 4.0, "eta_s": 20.0, "time": 1}]
    (run / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    registry = JobRegistry(tmp_path / "runs")
    adopted = registry.active()
    assert adopted is not None and adopted.run_dir == run
    snap = adopted.snapshot()
    assert snap["adopted"] and snap["status"] == "running" and snap["step"] == 3
    waiting = registry.start(_config(tiny_demo))  # the device is booked: it waits for that run
    assert waiting.snapshot()["status"] == "queued" and waiting.snapshot()["queue_position"] == 1
    waiting.stop()
    with pytest.raises(JobRefused, match=f"pid {pid}"):
        adopted.stop()
