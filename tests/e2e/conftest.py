"""Browser tests: the real app (`streamlit run app.py`) driven by Debian's Chromium through Playwright.

One server per test session, on a free port, with its own DETBOARD_DATA / DETBOARD_RUNS / TORCH_HOME
temp dirs so nothing touches ./data or ./runs. Screenshots go to ``test-artifacts/`` (gitignored).
Without /usr/bin/chromium the tests skip with the reason, unless CI is set — there a missing
browser is a broken machine and fails.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
# A page run that ends with none of these is broken for the user (Streamlit's exception box).
EXCEPTION_SELECTOR = '[data-testid="stException"]'


def pytest_collection_modifyitems(config, items):
    for item in items:  # under pytest-xdist (the README's -n 2) one worker runs them all: one server, one browser
        if "e2e" in item.keywords:
            item.add_marker(pytest.mark.xdist_group("browser"))
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) to run browser tests"
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI is set but {reason}")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit not healthy after {timeout_s}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def app_roots(tmp_path_factory) -> dict[str, Path]:
    """DATA / RUNS / TORCH_HOME for the server, with a small demo dataset already generated
    (the app would generate the full 400-image one on first launch; 48 keep the suite fast)."""
    base = tmp_path_factory.mktemp("e2e")
    roots = {"data": base / "data", "runs": base / "runs", "torch_home": base / "torch_home"}
    for p in roots.values():
        p.mkdir()
    from detcore.data.demo import generate_demo_dataset

    generate_demo_dataset(roots["data"] / "demo", n_images=48, seed=0)
    return roots


@contextlib.contextmanager
def streamlit_server(data: Path, runs: Path, torch_home: Path, log: Path, *extra_args: str):
    """``streamlit run app.py`` on a free loopback port with these roots; yields its URL once healthy."""
    port = _free_port()
    env = dict(os.environ, DETBOARD_DATA=str(data), DETBOARD_RUNS=str(runs), TORCH_HOME=str(torch_home),
               PYTHONUNBUFFERED="1")
    env.pop("DETBOARD_PASSWORD", None)  # a gate comes only from extra_args (--secrets.files)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", *extra_args],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def app_url(app_roots) -> str:
    with streamlit_server(app_roots["data"], app_roots["runs"], app_roots["torch_home"],
                          app_roots["data"].parent / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(30_000)
    yield p
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        p.screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


class AppDriver:
    """What every browser test does: open a page, wait for Streamlit to settle, check, screenshot."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url

    def settle(self, *, timeout_ms: int = 60_000) -> None:
        """Wait until the current script run is over (no running indicator, no spinner)."""
        self.page.wait_for_timeout(400)  # let a rerun triggered by the last interaction start
        self.page.wait_for_function(
            """() => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
                     && !document.querySelector('[data-testid="stSpinner"]')""",
            timeout=timeout_ms,
        )

    def open(self, url_path: str, title: str) -> None:
        self.page.goto(f"{self.base_url}/{url_path}")
        self.page.get_by_role("heading", name=title, level=1).wait_for(timeout=90_000)
        self.settle()
        self.wait_for_charts()

    def wait_for_charts(self, *, timeout_ms: int = 30_000) -> None:
        """Plotly draws after the script run ends; wait until every visible chart has its SVG."""
        self.page.wait_for_function(
            """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                     .filter(c => c.offsetParent !== null)
                     .every(c => c.querySelector('.main-svg'))
                 && ![...document.querySelectorAll('[data-testid="stSkeleton"]')]
                     .some(s => s.offsetParent !== null)""",
            timeout=timeout_ms,
        )
        self.page.wait_for_timeout(300)

    def assert_no_exception(self) -> None:
        boxes = self.page.locator(EXCEPTION_SELECTOR)
        assert boxes.count() == 0, boxes.first.inner_text()

    def metric_value(self, label: str) -> str:
        metric = self.page.locator('[data-testid="stMetric"]', has_text=label).first
        return metric.locator('[data-testid="stMetricValue"]').inner_text()

    def screenshot(self, name: str, *, height: int = 1400) -> Path:
        """The app scrolls inside its own container, so a full-page shot is one viewport: grow the
        viewport to show the page, shoot, and restore it."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        size = self.page.viewport_size
        self.page.set_viewport_size({"width": size["width"], "height": height})
        try:
            self.page.wait_for_timeout(500)
            self.wait_for_charts()
            self.page.screenshot(path=str(path))
        finally:
            self.page.set_viewport_size(size)
        return path


@pytest.fixture
def app(page, app_url) -> AppDriver:
    return AppDriver(page, app_url)


@pytest.fixture(scope="session")
def trained_run(app_roots) -> Path:
    """A tiny run through the real trainer in the server's RUNS root (the app lists it on the next
    page load). Few iterations on tiny images: predictions are poor; tests assert behaviour."""
    from detcore.train.config import config_from_preset
    from detcore.train.trainer import train

    run_dir = app_roots["runs"] / "tiny-e2e"
    if not run_dir.exists():
        config = config_from_preset("demo-cpu", data=str(app_roots["data"] / "demo"), epochs=1, batch_size=4,
                                    max_iters_per_epoch=2, eval_every=1, warmup_iters=0)
        assert train(config, run_dir) == "completed"
    return run_dir


SHARED_FACEMASK = REPO.parent / "shared" / "data" / "facemask-sample"


@pytest.fixture(scope="session")
def drop_images(tmp_path_factory) -> list[Path]:
    """Real Face Mask photos when ../shared is there, else demo-style PNGs made here."""
    found = sorted((SHARED_FACEMASK / "images").glob("*.png"))[:3] if SHARED_FACEMASK.is_dir() else []
    if found:
        return found
    from detcore.data.demo import render_demo_image

    folder = tmp_path_factory.mktemp("drop")
    out = []
    for i in range(3):
        image, _ = render_demo_image(i, seed=11)
        out.append(folder / f"drop{i}.png")
        image.save(out[-1])
    return out
