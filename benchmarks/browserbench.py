"""What the real-browser benchmarks share: a tiny trained run and demo data in temp roots, a real
``streamlit run app.py`` server on a free port, Debian's Chromium through Playwright, and the one
measurement they all make — key press on the Predict page's "Score threshold" slider to the
"Boxes shown" metric showing the new count.

Not a test helper: the scripts that import it print ratios against baselines measured in the same run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def make_roots(base: Path, *, demo_images: int = 48) -> dict[str, Path]:
    """DATA with a demo set (what the Train page trains on by default), RUNS with a tiny trained run
    (what the Predict page predicts with), a TORCH_HOME, and a 640x480 photo to drop."""
    sys.path.insert(0, str(REPO))
    from detcore.data.demo import generate_demo_dataset, render_demo_image
    from detcore.train.config import config_from_preset
    from detcore.train.trainer import train

    roots = {"data": base / "data", "runs": base / "runs", "torch_home": base / "torch_home"}
    for path in roots.values():
        path.mkdir(parents=True, exist_ok=True)
    data = generate_demo_dataset(roots["data"] / "demo", n_images=demo_images, seed=0)
    # An almost untrained SSDlite keeps its 300 best boxes per image above the score floor: the slider
    # then filters 300 cached detections, as in benchmarks/bench_slider.py.
    config = config_from_preset("demo-cpu", data=str(data), epochs=1, batch_size=4, max_iters_per_epoch=2,
                                eval_every=0, warmup_iters=0)
    if train(config, roots["runs"] / "bench") != "completed":
        raise SystemExit("the tiny training run did not complete")
    roots["image"] = base / "photo.png"
    render_demo_image(3, seed=5)[0].resize((640, 480)).save(roots["image"])
    return roots


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(roots: dict[str, Path], *, app_dir: Path = REPO, log: Path | None = None):
    """``streamlit run app.py`` from ``app_dir`` on a free loopback port; yields (url, process)."""
    port = free_port()
    env = dict(os.environ, DETBOARD_DATA=str(roots["data"]), DETBOARD_RUNS=str(roots["runs"]),
               TORCH_HOME=str(roots["torch_home"]), PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    out = open(log, "wb") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"],
                            cwd=app_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"streamlit exited with {proc.returncode}")
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("streamlit did not become healthy in 180 s") from None
                time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log is not None:
            out.close()


def rss_mb(pid: int) -> float:
    """Resident memory of one process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def chromium():
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} not found: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


IDLE = """() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')"""


class PredictPage:
    """One browser tab on the Predict page with the photo dropped and its detections cached. Moves
    alternate between the slider's two ends (End, then Home, ...), whose box counts differ."""

    def __init__(self, browser, url: str, image: Path):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(300_000)
        self.page.goto(f"{url}/predict")
        self.page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(image))
        self.metric = self.page.locator('[data-testid="stMetric"]', has_text="Boxes shown").locator(
            '[data-testid="stMetricValue"]')
        self.metric.wait_for(timeout=300_000)
        self.thumb = self.page.get_by_role("slider")
        self.thumb.focus()
        from playwright.sync_api import expect

        counts = []
        for key in ("End", "Home"):  # both ends, so that every timed move changes the count
            before = self.metric.inner_text()
            self.thumb.press(key)
            try:
                expect(self.metric).not_to_have_text(before, timeout=60_000)
            except AssertionError:
                pass  # this end shows what the page showed already
            self.page.wait_for_function(IDLE, timeout=300_000)
            counts.append(self.metric.inner_text())
        if counts[0] == counts[1]:
            raise SystemExit(f"the slider's ends show the same box count ({counts[0]}): nothing to time")
        self.presses = 0

    def move(self) -> float:
        """Press End or Home (alternating, from Home); seconds until 'Boxes shown' changes."""
        from playwright.sync_api import expect

        key = "End" if self.presses % 2 == 0 else "Home"
        self.presses += 1
        before = self.metric.inner_text()
        start = time.perf_counter()
        self.thumb.press(key)
        expect(self.metric).not_to_have_text(before, timeout=120_000)
        return time.perf_counter() - start

    def close(self) -> None:
        self.context.close()


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
