"""Does the UI stay quick while the server trains? Key press on the Predict page's "Score threshold"
slider to the new "Boxes shown" count, in Debian's Chromium against ``streamlit run app.py``, with no
job (idle) and with a CPU training job started from the Train page (busy), in one run.

    nice -n 5 python benchmarks/bench_ui_under_training.py [--rounds 3] [--presses 8] [--app-dir DIR]

Two browser tabs: one on the Train page (it stays open, and polls while a job runs, as a user
watching the charts would), one on the Predict page with a photo's 300 detections cached. The arms
alternate in blocks — idle, busy, idle, busy ... — so load from anything else on the machine hits
both alike. A busy block starts the demo-cpu preset (500 epochs) from the Train page's form, waits
until the job reports steps, measures, then presses Stop and waits until the job has ended.
Prints the median of each arm and busy/idle (goal: at most 1.5), plus the load average.

``--app-dir`` points at another checkout of the app (an older commit, to measure the before).

``--causes`` measures why, in this one process (Streamlit's AppTest reruns the Predict page after a
slider change, as the server's script thread does), interleaved arms: no training; training in a
thread of this process with torch's default intra-op threads (how jobs ran before: they share the
GIL and every core); the same with one intra-op thread; training in a child process at nice +10 with
one thread (how jobs run now, detcore/train/supervise.py). Prints the median rerun per arm and its
ratio to no training.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browserbench import REPO, PredictPage, chromium, load_average, make_roots, ms, streamlit_server  # noqa: E402

GOAL = 1.5


class TrainTab:
    """A tab on the Train page that starts the demo-cpu preset and stops it again."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(300_000)
        self.url = url
        self.page.goto(f"{url}/train")
        self.page.get_by_role("heading", name="Train", level=1).wait_for()

    def _status(self) -> str:
        metric = self.page.locator('[data-testid="stMetric"]', has_text="Status").first
        try:
            return metric.locator('[data-testid="stMetricValue"]').inner_text(timeout=1_000)
        except Exception:  # noqa: BLE001 - not drawn yet
            return ""

    def _wait_status(self, wanted: set[str], timeout_s: float = 600) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self._status()
            if status in wanted:
                return status
            time.sleep(0.5)
        raise SystemExit(f"the Train page never showed {sorted(wanted)} (last: {self._status()!r})")

    def start(self) -> None:
        self.page.goto(f"{self.url}/train")
        self.page.get_by_role("heading", name="Train", level=1).wait_for()
        epochs = self.page.get_by_label("Epochs", exact=True)
        epochs.fill("500")
        epochs.press("Tab")
        self.page.get_by_role("button", name="Start training").click()
        self._wait_status({"running"})
        step = self.page.locator('[data-testid="stMetric"]', has_text="Step").first.locator(
            '[data-testid="stMetricValue"]')
        deadline = time.monotonic() + 600
        while step.inner_text().startswith("0 ") and time.monotonic() < deadline:  # training steps, not setup
            time.sleep(0.5)

    def stop(self) -> None:
        self.page.get_by_role("button", name="Stop").first.click()
        self._wait_status({"stopped", "completed", "failed", "interrupted"})


class TrainingArm:
    """Starts and stops one kind of background training on the demo set (demo-cpu preset)."""

    def __init__(self, kind: str, data: Path, runs: Path):
        self.kind, self.data, self.runs, self.n = kind, data, runs, 0

    def start(self) -> None:
        import os
        import threading

        import torch

        from detcore.train.config import config_from_preset
        from detcore.train.runs import JobSpec, Run

        self.n += 1
        run_dir = self.runs / f"{self.kind}-{self.n}"
        config = config_from_preset("demo-cpu", data=str(self.data), epochs=500, eval_every=0)
        self.stop_event, self.thread, self.process = threading.Event(), None, None
        if self.kind == "child process, nice +10, 1 thread":
            from detcore.train.supervise import TrainingProcess

            run_dir.mkdir(parents=True)
            Run(run_dir).save_job_spec(JobSpec(config))
            self.process = TrainingProcess.launch(run_dir, 1, Run(run_dir).job_log_path, cwd=os.getcwd())
        else:
            from detcore.train.trainer import train

            torch.set_num_threads(os.cpu_count() if self.kind.endswith("default threads") else 1)
            self.thread = threading.Thread(target=train, args=(config, run_dir), kwargs={"stop_event": self.stop_event},
                                           daemon=True)
            self.thread.start()
        deadline = time.monotonic() + 900
        while not Run(run_dir).events("step") and time.monotonic() < deadline:  # training, not starting
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(300)
        else:
            self.stop_event.set()
            self.thread.join(300)


def causes(args) -> None:
    import os

    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as tmp:
        roots = make_roots(Path(tmp))
        for name in ("data", "runs", "torch_home"):
            os.environ[f"DETBOARD_{name.upper()}" if name != "torch_home" else "TORCH_HOME"] = str(roots[name])
        original_init = PagesManager.__init__

        def init_in_navigation_mode(self, *a, **k):  # what the served app runs in (tests/app/conftest.py)
            original_init(self, *a, **k)
            PagesManager.uses_pages_directory = False

        PagesManager.__init__ = init_in_navigation_mode
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600).run()
        at.switch_page("pages/predict.py").run()
        image = roots["image"]
        at.file_uploader(key="predict_uploads").set_value((image.name, image.read_bytes(), "image/png")).run()
        values = iter([0.05, 0.9] * 10_000)

        def rerun() -> float:
            at.slider(key="predict_threshold").set_value(next(values))
            start = time.perf_counter()
            at.run()
            assert not at.exception, [e.value for e in at.exception]
            return time.perf_counter() - start

        for _ in range(3):
            rerun()
        arms = ["no training", "thread, default threads", "thread, 1 thread", "child process, nice +10, 1 thread"]
        trainers = {kind: TrainingArm(kind, roots["data"] / "demo", Path(tmp) / "arm-runs") for kind in arms[1:]}
        times: dict[str, list[float]] = {kind: [] for kind in arms}
        print(f"causes, in-process Predict page rerun after a slider change; start: {load_average()}", flush=True)
        for round_no in range(args.rounds):
            for kind in arms:
                if kind in trainers:
                    trainers[kind].start()
                block = [rerun() for _ in range(args.presses)]
                if kind in trainers:
                    trainers[kind].stop()
                times[kind] += block
                print(f"round {round_no + 1} {kind}: {ms(block)}  ({load_average()})", flush=True)
        idle = statistics.median(times["no training"])
        for kind in arms:
            median = statistics.median(times[kind])
            print(f"{kind:>36}: median {median * 1000:.0f} ms of {len(times[kind])}, x{median / idle:.2f}")
        print(f"end: {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="idle/busy block pairs")
    parser.add_argument("--presses", type=int, default=8, help="slider moves per block")
    parser.add_argument("--app-dir", type=Path, default=REPO, help="checkout whose app.py is served")
    parser.add_argument("--causes", action="store_true", help="in-process arms: thread vs threads vs child process")
    args = parser.parse_args()
    if args.causes:
        causes(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        roots = make_roots(Path(tmp))
        print(f"app: {args.app_dir}")
        print(f"start: {load_average()}")
        times: dict[str, list[float]] = {"idle": [], "busy": []}
        with streamlit_server(roots, app_dir=args.app_dir, log=Path(tmp) / "server.log") as (url, _), \
                chromium() as browser:
            train_tab = TrainTab(browser, url)
            predict = PredictPage(browser, url, roots["image"])
            for _ in range(2):  # warm-up: the first moves build the figure paths
                predict.move()
            for round_no in range(args.rounds):
                for arm in ("idle", "busy"):
                    if arm == "busy":
                        train_tab.start()
                    block = [predict.move() for _ in range(args.presses)]
                    times[arm] += block
                    print(f"round {round_no + 1} {arm}: {ms(block)} median of {len(block)}  ({load_average()})",
                          flush=True)
                    if arm == "busy":
                        train_tab.stop()
        idle, busy = statistics.median(times["idle"]), statistics.median(times["busy"])
        print(f"idle: median {idle * 1000:.0f} ms of {len(times['idle'])} moves")
        print(f"busy (a CPU training job started from the Train page): median {busy * 1000:.0f} ms "
              f"of {len(times['busy'])} moves")
        print(f"ratio busy/idle: {busy / idle:.2f}  (goal <= {GOAL}: {'MET' if busy / idle <= GOAL else 'NOT MET'})")
        print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
