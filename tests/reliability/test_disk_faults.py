"""The disk fills up, or the runs folder turns read-only, while a checkpoint is being saved: the run
ends as ``failed`` with a message naming the file and the problem, the previous checkpoint is intact
and loadable, no temp file is left behind — and resuming once the disk is fixed finishes the run."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
import torch

from detcore import atomic
from detcore.errors import CheckpointError, DetcoreError
from detcore.train.events import Callback
from detcore.train.runs import Run
from detcore.train.trainer import train

EPOCHS = 3


def _fail_nth_checkpoint_write(monkeypatch, n: int, err: int) -> list[Path]:
    """From the ``n``-th ``.pt`` write on, the real atomic writer gets half the bytes out and then the
    OS error — what a full disk does. Returns the paths attempted."""
    real_write_with, attempts = atomic.write_with, []

    def write_with(path, writer):
        path = Path(path)
        if path.suffix != ".pt":
            return real_write_with(path, writer)
        attempts.append(path)
        if len(attempts) < n:
            return real_write_with(path, writer)

        def half_then_fail(f):
            f.write(b"\x00" * 4096)
            raise OSError(err, {errno.ENOSPC: "No space left on device", errno.EROFS: "Read-only file system"}[err])

        return real_write_with(path, half_then_fail)

    monkeypatch.setattr(atomic, "write_with", write_with)
    return attempts


class FolderBecomesAFile(Callback):
    """After the first epoch's checkpoint, the checkpoints folder is moved aside and a file put in its
    place (a mis-mounted volume, a user's mistake): the next save cannot create its temp file."""

    def on_epoch_end(self, t):
        ckpts = t.run_dir / "checkpoints"
        if t.state.epoch == 0 and ckpts.is_dir():
            ckpts.rename(t.run_dir / "checkpoints.aside")
            ckpts.write_text("not a folder")


def _assert_previous_checkpoint_intact(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt"], "temp file or partial checkpoint left behind"
    ckpt = torch.load(folder / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["classes"] == ["red", "blue"]


@pytest.mark.slow  # two trainings with three checkpoint saves each: 10-25 s on the shared 2-core machine
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
def test_failed_checkpoint_save_keeps_the_previous_one_and_resume_finishes(tmp_path, tiny_config, monkeypatch, err):
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch, pytest.raises(CheckpointError) as raised:
        attempts = _fail_nth_checkpoint_write(patch, 2, err)
        train(tiny_config(epochs=EPOCHS, max_iters_per_epoch=1), run_dir)
    assert os.strerror(err) in str(raised.value) and raised.value.file.endswith("last.pt")
    assert attempts == [run_dir / "checkpoints" / "last.pt"] * 2

    run = Run(run_dir)
    assert run.status() == "failed"
    message = run.message()
    assert ("No space left" if err == errno.ENOSPC else "Read-only") in message
    assert "last.pt" in message  # the user learns which file could not be written
    _assert_previous_checkpoint_intact(run_dir / "checkpoints")

    # the disk has been fixed (the patch is gone)
    assert train(None, run_dir, resume=True) == "completed"
    final = torch.load(run.checkpoint("last"), weights_only=True)
    assert final["epoch"] == EPOCHS and final["global_step"] == EPOCHS
    assert run.status() == "completed"


@pytest.mark.slow
def test_checkpoint_folder_replaced_by_a_file(tmp_path, tiny_config):
    run_dir = tmp_path / "run"
    with pytest.raises(CheckpointError) as raised:
        train(tiny_config(epochs=EPOCHS, max_iters_per_epoch=1), run_dir, callbacks=[FolderBecomesAFile()])
    assert "checkpoints" in str(raised.value)
    run = Run(run_dir)
    assert run.status() == "failed" and "checkpoints" in run.message()
    _assert_previous_checkpoint_intact(run_dir / "checkpoints.aside")

    (run_dir / "checkpoints").unlink()
    (run_dir / "checkpoints.aside").rename(run_dir / "checkpoints")
    assert train(None, run_dir, resume=True) == "completed"
    assert torch.load(run.checkpoint("last"), weights_only=True)["epoch"] == EPOCHS


def test_epochs_done_counts_each_epoch_once_after_a_replayed_epoch(tmp_path, tiny_config, monkeypatch):
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch, pytest.raises(CheckpointError):
        _fail_nth_checkpoint_write(patch, 2, errno.ENOSPC)
        train(tiny_config(epochs=EPOCHS, max_iters_per_epoch=1), run_dir)
    assert train(None, run_dir, resume=True) == "completed"
    assert Run(run_dir).epochs_done() == EPOCHS


def test_a_failed_checkpoint_save_is_a_user_facing_error(tmp_path, tiny_config, monkeypatch):
    _fail_nth_checkpoint_write(monkeypatch, 1, errno.ENOSPC)
    with pytest.raises(DetcoreError, match="last.pt"):
        train(tiny_config(epochs=1, max_iters_per_epoch=1), tmp_path / "run")


def test_nothing_is_left_half_written_when_the_first_save_fails(tmp_path, tiny_config, monkeypatch):
    run_dir = tmp_path / "run"
    _fail_nth_checkpoint_write(monkeypatch, 1, errno.ENOSPC)
    with pytest.raises(CheckpointError):
        train(tiny_config(epochs=1, max_iters_per_epoch=1), run_dir)
    assert list((run_dir / "checkpoints").iterdir()) == []  # no torn last.pt a resume would trip on
    assert Run(run_dir).status() == "failed"
    shutil.rmtree(run_dir)


def test_a_job_that_dies_with_the_disk_full_does_not_read_running(tmp_path, tiny_config, monkeypatch):
    from detcore.train.jobs import JobRegistry
    from tests.reliability.childfaults import inject_into_children

    registry = JobRegistry(tmp_path / "runs")
    with monkeypatch.context() as patch:
        # In the job's training process: the 'running' record gets in, nothing written after it does.
        inject_into_children(patch, tmp_path / "disk-full", """
            import errno

            from detcore import atomic
            import detcore.train.events as events_module

            def disk_full(*args, **kwargs):
                raise OSError(errno.ENOSPC, "No space left on device")

            real_append, appended = atomic.append_jsonl, []

            def append_until_full(path, record):
                appended.append(record)
                if len(appended) > 1:
                    disk_full()
                real_append(path, record)

            atomic.torch_save = disk_full
            atomic.append_jsonl = append_until_full
            events_module._append_lines = disk_full
        """)
        job = registry.start(tiny_config(epochs=2, max_iters_per_epoch=1))
        assert job.join(300)
    written = Run(job.run_dir).events()
    assert [r["status"] for r in written if r["type"] == "status"][0] == "running"
    assert not [r for r in written if r["type"] in ("step", "epoch")]  # the disk was full for those
    assert job.snapshot()["status"] == "failed" and "No space left" in job.snapshot()["message"]
    assert Run(job.run_dir).status() != "running"
