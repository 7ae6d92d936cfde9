"""Faults inside a background job's training process (docs/architecture.md, "Background jobs"): a sample that goes bad
mid-epoch, a CUDA out-of-memory, a diverging loss. Each ends the JobRegistry's job as ``failed`` with a message a
user can act on, the same on disk as in memory, and the device is free for the next job at once."""

from __future__ import annotations

import time

import pytest

from detcore.train.jobs import JobRegistry
from detcore.train.runs import Run
from tests.reliability.childfaults import inject_into_children

JOIN_S = 300


def _wait_for_steps(job, n: int, timeout: float = JOIN_S) -> None:
    deadline = time.monotonic() + timeout
    while job.snapshot()["step"] < n:
        assert job.snapshot()["status"] not in ("failed", "completed"), job.snapshot()["message"]
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.02)


def _assert_failed(registry: JobRegistry, job, *, says: str) -> None:
    assert job.join(JOIN_S), "the job did not end"
    snap = job.snapshot()
    assert snap["status"] == "failed"
    assert says in snap["message"], snap["message"]
    run = Run(job.run_dir)
    assert run.status() == "failed" and says in run.message()  # the page reads the same after a restart
    assert registry.active("cpu") is None


def _assert_next_job_runs(registry: JobRegistry, tiny_config) -> None:
    nxt = registry.start(tiny_config(max_iters_per_epoch=1))
    assert nxt.join(JOIN_S) and nxt.snapshot()["status"] == "completed", nxt.snapshot()["message"]


@pytest.fixture
def registry(tmp_path) -> JobRegistry:
    return JobRegistry(tmp_path / "runs")


def test_a_sample_that_goes_bad_mid_epoch_fails_the_job_naming_the_file(registry, tiny_config, tiny_voc):
    job = registry.start(tiny_config(epochs=3, max_iters_per_epoch=6))
    originals = {image: image.read_bytes() for image in (tiny_voc / "images").glob("*.png")}
    _wait_for_steps(job, 1)
    for image in originals:  # a network share drops, a sync tool truncates
        image.write_bytes(image.read_bytes()[:60])
    _assert_failed(registry, job, says="images/img0")
    assert "truncated" in job.snapshot()["message"]
    for image, data in originals.items():  # the user puts the files back
        image.write_bytes(data)
    _assert_next_job_runs(registry, tiny_config)


def test_simulated_cuda_out_of_memory_fails_the_job_with_the_message(registry, tiny_config, monkeypatch, tmp_path):
    # The third image's tensors do not fit: what a too-large batch or image does on a GPU.
    with monkeypatch.context() as patch:
        inject_into_children(patch, tmp_path / "oom", """
            import detcore.data.images as images

            real_load, calls = images.load_rgb, []

            def load_rgb_then_oom(*args, **kwargs):
                calls.append(args)
                if len(calls) == 3:
                    import torch

                    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
                return real_load(*args, **kwargs)

            images.load_rgb = load_rgb_then_oom
        """)
        job = registry.start(tiny_config(epochs=2, max_iters_per_epoch=4))
        _assert_failed(registry, job, says="out of memory")
    assert "OutOfMemoryError" in job.snapshot()["message"]
    _assert_next_job_runs(registry, tiny_config)


def test_a_diverging_loss_fails_the_job_with_advice(registry, tiny_config):
    # The largest learning rate the config accepts (1.0), no warm-up, no clipping: the weights blow up.
    job = registry.start(tiny_config(epochs=2, max_iters_per_epoch=6, lr=1.0, momentum=0.9, warmup_iters=0,
                                     grad_clip=None))
    _assert_failed(registry, job, says="learning rate")
    assert "loss became" in job.snapshot()["message"]
    _assert_next_job_runs(registry, tiny_config)


def test_a_second_job_on_a_busy_device_waits_and_starts_when_stop_frees_it(registry, tiny_config):
    first = registry.start(tiny_config(epochs=3, max_iters_per_epoch=6))
    _wait_for_steps(first, 1)
    second = registry.start(tiny_config(max_iters_per_epoch=1))
    assert second.snapshot()["status"] == "queued" and registry.active("cpu") is first
    first.stop()
    assert first.join(JOIN_S) and first.snapshot()["status"] == "stopped"
    assert Run(first.run_dir).checkpoint("last").is_file()
    assert second.join(JOIN_S) and second.snapshot()["status"] == "completed"


def test_a_last_batch_of_one_image_does_not_fail_the_demo_model(tiny_config):
    from detcore import paths
    from detcore.train.trainer import train

    config = tiny_config(model="ssdlite320_mobilenet_v3_large", min_size=None, max_size=None, batch_size=5,
                         epochs=1)  # tiny_voc: 8 images, 6 for training -> batches of 5 and 1
    assert train(config, paths.runs_root() / "last-batch-of-one") == "completed"
