"""Many people on the Predict page at once: N concurrent app sessions (N = 1, 4, 16) moving the
"Score threshold" slider over cached predictions, in one process — as one Streamlit server runs them.

    python benchmarks/bench_load.py                       # N = 1, 4, 16; 200 slider moves per N
    python benchmarks/bench_load.py --sessions 1 4 --moves 100 --images 3 --image-size 1280x960

What it does: makes a tiny run with the real trainer (SSDlite from scratch, a few iterations on a
small synthetic demo set) in a temp DATA/RUNS, then for each N opens N AppTest sessions of the real
app.py, switches each to the Predict page and drops the same images (the model runs once per image
per session; the predictor itself is shared through st.cache_resource). Then the N sessions move
their sliders concurrently, each in its own thread (Streamlit runs each session's script in its own
thread too), ``--moves`` moves in all. Prints per N: median and p95 re-render time of a slider move,
its ratio to N = 1 measured in the same run (the baseline), the rerun's own time without the wait
for other sessions ("rerun ms"), moves/s, and the process RSS growth over the moves and over opening
the sessions — bounded caches show as growth that does not scale with moves.

Caveat: AppTest reruns the whole page script for a widget change; the browser reruns only the
``results_ui`` fragment. So these times are an upper bound of what a browser session waits for
(minus network and browser drawing).
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rss_mb() -> float:
    """Resident set size of this process after a GC and, on glibc, handing freed heap back to the OS
    (otherwise memory the trainer freed shows up as a large negative "growth" later).
    Linux /proc; elsewhere falls back to the peak from resource."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_tiny_run(root: Path) -> Path:
    from detcore.data.demo import generate_demo_dataset
    from detcore.train.config import config_from_preset
    from detcore.train.trainer import train

    data = generate_demo_dataset(root / "data" / "demo", n_images=16, seed=1)
    config = config_from_preset("demo-cpu", data=str(data), epochs=1, batch_size=4, max_iters_per_epoch=3,
                                eval_every=1, warmup_iters=0)
    run_dir = root / "runs" / "bench-load"
    status = train(config, run_dir)
    if status != "completed":
        raise SystemExit(f"the tiny training run ended {status}")
    return run_dir


def demo_pngs(n: int, size: tuple[int, int]) -> list[tuple[str, bytes, str]]:
    from detcore.data.demo import render_demo_image

    files = []
    for i in range(n):
        image, _ = render_demo_image(i, seed=11)
        buf = io.BytesIO()
        image.resize(size).save(buf, format="PNG")
        files.append((f"photo{i}.png", buf.getvalue(), "image/png"))
    return files


def pin_navigation_mode() -> None:
    # As tests/app/conftest.py: AppTest re-derives Streamlit's pages/-folder mode before every run,
    # and in that mode a widget change made between runs is lost. The server runs in st.navigation mode.
    from streamlit.runtime.pages_manager import PagesManager

    original_init = PagesManager.__init__

    def init_in_navigation_mode(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init_in_navigation_mode


def open_predict_session(files):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300).run()
    at.switch_page("pages/predict.py").run()
    at.file_uploader(key="predict_uploads").set_value(files).run()
    if at.exception:
        raise SystemExit(f"the Predict page failed: {[e.value for e in at.exception]}")
    if not at.slider(key="predict_threshold"):
        raise SystemExit("the Predict page shows no 'Score threshold' slider for the uploads")
    return at


# AppTest installs a process-global mock Runtime for each run and removes it afterwards, so two runs
# may not overlap. The server is not much different for this page: its script is Python-bound
# (hashing uploads, building figures) and sessions take turns on the GIL. So each user thread waits
# its turn here, and the latency we time — from the slider move to the rerun's end — includes that
# wait, as a user's does; the time inside the lock is the rerun's own (service) time.
class FairTurns:
    """A FIFO lock: sessions get their turn in the order they asked (threading.Lock is not fair, and
    starving one session would make p95 measure the lock, not the page)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._next_ticket = self._serving = 0

    def __enter__(self):
        with self._cond:
            ticket, self._next_ticket = self._next_ticket, self._next_ticket + 1
            self._cond.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *exc):
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


_APPTEST_RUN = FairTurns()


def move_sliders(sessions, moves_each: int, seed: int) -> tuple[list[float], list[float]]:
    """Each session in its own thread moves its slider ``moves_each`` times.
    Returns (latencies, service times) in seconds, over all moves."""
    import random

    latencies: list[float] = []
    services: list[float] = []
    lock, errors = threading.Lock(), []

    def user(index: int, at) -> None:
        rng = random.Random(seed + index)
        mine, own = [], []
        try:
            for _ in range(moves_each):
                value = round(rng.uniform(0.05, 1.0), 2)
                start = time.perf_counter()
                with _APPTEST_RUN:
                    began = time.perf_counter()
                    at.slider(key="predict_threshold").set_value(value).run()
                end = time.perf_counter()
                mine.append(end - start)
                own.append(end - began)
                if at.exception:
                    raise RuntimeError([e.value for e in at.exception])
        except Exception as e:  # reported after the join, with the session number
            errors.append(f"session {index}: {e!r}")
        with lock:
            latencies.extend(mine)
            services.extend(own)

    threads = [threading.Thread(target=user, args=(i, at)) for i, at in enumerate(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("slider moves failed: " + "; ".join(errors[:3]))
    return latencies, services


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def bench(n_sessions: int, total_moves: int, files) -> dict:
    gc.collect()
    before_open = rss_mb()
    t0 = time.perf_counter()
    sessions = [open_predict_session(files) for _ in range(n_sessions)]
    open_s = time.perf_counter() - t0
    move_sliders(sessions, 2, seed=999)  # warm-up: first fragment runs, plotly figure caches
    gc.collect()
    before_moves = rss_mb()
    moves_each = max(1, -(-total_moves // n_sessions))
    t0 = time.perf_counter()
    times, services = move_sliders(sessions, moves_each, seed=n_sessions)
    wall = time.perf_counter() - t0
    gc.collect()
    after = rss_mb()
    return {"n": n_sessions, "moves": len(times), "median_ms": 1000 * statistics.median(times),
            "p95_ms": 1000 * p95(times), "service_ms": 1000 * statistics.median(services),
            "moves_per_s": len(times) / wall, "open_s": open_s,
            "rss_open_mb": before_moves - before_open, "rss_moves_mb": after - before_moves, "rss_mb": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--moves", type=int, default=200, help="slider moves per N, spread over the sessions")
    parser.add_argument("--images", type=int, default=2, help="images dropped in each session")
    parser.add_argument("--image-size", default="640x480", help="WxH of the dropped images")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.image_size.lower().split("x"))

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        root = Path(tmp)
        os.environ["DETBOARD_DATA"], os.environ["DETBOARD_RUNS"] = str(root / "data"), str(root / "runs")
        os.environ.setdefault("TORCH_HOME", str(root / "torch"))
        t0 = time.perf_counter()
        make_tiny_run(root)
        print(f"tiny run trained in {time.perf_counter() - t0:.1f} s; RSS {rss_mb():.0f} MB", flush=True)
        pin_navigation_mode()
        files = demo_pngs(args.images, size)
        results = []
        for n in args.sessions:
            r = bench(n, args.moves, files)
            results.append(r)
            print(f"N={n:<3d} opened in {r['open_s']:.1f} s, {r['moves']} moves", flush=True)

    base = results[0]
    print(f"\nPredict page, {args.images} image(s) of {size[0]}x{size[1]} per session, "
          f"slider moves spread over N concurrent sessions (baseline: N={base['n']})")
    print(f"{'N':>3} {'moves':>6} {'median ms':>10} {'p95 ms':>8} {'x median':>9} {'x p95':>7} {'rerun ms':>9} "
          f"{'moves/s':>8} {'RSS +open MB':>13} {'RSS +moves MB':>14} {'RSS MB':>7}")
    for r in results:
        print(f"{r['n']:>3} {r['moves']:>6} {r['median_ms']:>10.1f} {r['p95_ms']:>8.1f} "
              f"{r['median_ms'] / base['median_ms']:>9.2f} {r['p95_ms'] / base['p95_ms']:>7.2f} "
              f"{r['service_ms']:>9.1f} {r['moves_per_s']:>8.1f} {r['rss_open_mb']:>13.1f} {r['rss_moves_mb']:>14.1f} {r['rss_mb']:>7.0f}")


if __name__ == "__main__":
    main()
