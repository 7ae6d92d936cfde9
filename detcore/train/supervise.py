"""The app's training processes: ``python -m detcore train --job RUN`` for one process,
``torchrun --standalone --nproc_per_node=N -m detcore train --job RUN`` for more (gloo on CPU, NCCL on
GPUs). Started by a job's thread in ``detcore/train/jobs.py``; torch-free.

Why a child process and not a thread of the server: measured with benchmarks/bench_ui_under_training.py,
a training thread in the server's process shares its GIL and, through torch's intra-op pool, every
core, so each slider move on the Predict page waited for training. A child process has its own
interpreter, runs at a lower priority (``JOB_NICE``) and gets ``threads_per_process`` torch threads so
that one core is left to the server. It also outlives a page rerun and a server restart.

Each child is the leader of its own process group (``start_new_session``): Stop sends SIGTERM to the
group — the single process, or torchrun's agent, which passes it on to every rank; the train command
turns SIGTERM into a cooperative stop (last.pt written, status ``stopped``). A second Stop kills the
group and every process below it (torchrun starts its ranks in sessions of their own).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

JOB_NICE = 10  # added to the server's niceness: the server's threads win the cores
STOP_GRACE_S = 600  # torchrun waits this long for its ranks to stop cooperatively before it kills them
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding detcore/, for the child's PYTHONPATH
_DIST_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                   "MASTER_PORT", "TORCHELASTIC_RUN_ID")


def threads_per_process(processes: int, cores: int | None = None) -> int:
    """Torch threads for each of ``processes`` training processes: the cores but one, shared out, at least 1."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, (cores - 1) // max(1, processes))


def command(run_dir: str | Path, processes: int) -> list[str]:
    train = ["-m", "detcore", "train", "--job", str(run_dir)]
    if processes <= 1:
        return [sys.executable, *train]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            f"--shutdown_timeout={STOP_GRACE_S}", *train]


def environment(processes: int, base: dict | None = None) -> dict:
    env = dict(os.environ if base is None else base)
    for name in _DIST_VARIABLES:  # the child sets up its own world; never join one the server inherited
        env.pop(name, None)
    threads = str(threads_per_process(processes))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    return env


@dataclass
class TrainingProcess:
    """A training process group: ours (``popen`` set, so we reap it) or one a previous server started
    (after a restart: only ``pid``/``pgid`` are known, and liveness is read from the system)."""

    pid: int
    pgid: int
    popen: subprocess.Popen | None = None

    @classmethod
    def launch(cls, run_dir: str | Path, processes: int, log_path: Path, *, cwd: str | Path | None = None
               ) -> "TrainingProcess":
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(command(run_dir, processes), env=environment(processes), cwd=cwd,
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        try:  # before torchrun forks its ranks (they inherit it); never lowers what the server has
            niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + JOB_NICE)
            os.setpriority(os.PRIO_PROCESS, popen.pid, niceness)
        except OSError:
            pass  # already gone: poll() reports how it ended
        return cls(popen.pid, popen.pid, popen)

    def returncode(self) -> int | None:
        """None while the group's leader runs; its exit code after (None forever for an adopted group:
        use ``alive``)."""
        return self.popen.poll() if self.popen is not None else None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return is_training_group(self.pid, self.pgid)

    def terminate(self) -> None:
        """SIGTERM to the group: the cooperative stop."""
        _signal_group(self.pgid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the group and to every process below its leader (torchrun's ranks)."""
        for pid in descendants(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _signal_group(self.pgid, signal.SIGKILL)

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def is_training_group(pid: int, pgid: int | None) -> bool:
    """Is ``pid`` alive (not a zombie) and still the leader of group ``pgid`` — i.e. not a recycled pid?"""
    return pid == pgid and _pgid_of(pid) == pgid and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (not Linux), or gone: _pgid_of said what it knows
    return text[text.rfind(")") + 2:].startswith("Z")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'
        fields = text[text.rfind(")") + 2:].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, []))
    return found


def log_tail(path: Path, *, start: int = 0, max_bytes: int = 16_384) -> str:
    """The end of a process's log, from byte ``start`` on (a resumed run appends to the same log)."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(max(start, end - max_bytes))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


_RANK_PREFIX = r"(?:\[[^\]]*\]:?\s*)?"  # torchrun's "[rank1]:" / "[default1]:" line prefixes
_ERROR_LINE = re.compile(rf"^{_RANK_PREFIX}error: (?P<message>.+)$")
_EXCEPTION_LINE = re.compile(rf"^{_RANK_PREFIX}(?P<message>(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit)"
                             r"(?::\s.*)?)$")
_LAUNCHER_ERRORS = ("ChildFailedError", "SignalException")  # torchrun's summary, not the cause


def cli_error(tail: str) -> str | None:
    """The last ``error: <file>: <problem>`` line the train command printed (from whichever rank), or None."""
    for line in reversed(tail.splitlines()):
        match = _ERROR_LINE.match(line.strip())
        if match:
            return match["message"]
    return None


def failure_message(tail: str, returncode: int | None) -> str:
    """The cause of a failed training process from its output: the CLI's ``error: <file>: <problem>``
    line (from whichever rank printed it), else the last exception a rank raised, else how it ended."""
    cause = cli_error(tail)
    if cause:
        return cause
    for line in reversed([line.strip() for line in tail.splitlines()]):
        match = _EXCEPTION_LINE.match(line)
        if match and not any(name in match["message"] for name in _LAUNCHER_ERRORS):
            return match["message"]
    return f"the training process {describe_exit(returncode)}"


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "ended (its exit status is unknown: it was started by an earlier server)"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"
