"""Many people on the Predict page at once, in real browsers: N Chromium pages (N = 1, 4, 8, 16) against
one ``streamlit run app.py``, each with a photo's detections cached, all moving the "Score threshold"
slider at the same time. Prints per N: p50 and p95 of key press to the new "Boxes shown" count, p50
against N = 1 measured in the same run, and the server's resident memory after the pages opened and
after the moves; plus the load average (the machine may be shared).

    nice -n 5 python benchmarks/bench_browser_load.py [--pages 1 4 8 16] [--moves 10]

Each N gets a fresh server (so its memory is that of N sessions) and one headless Chromium with a
browser context per page (its own cookies and session, as N people have). benchmarks/bench_load.py
measures the same in-process with AppTest; this one includes the websocket, the browser's drawing and
the server's own event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browserbench import CHROMIUM, CHROMIUM_ARGS, IDLE, load_average, make_roots, percentile, rss_mb, streamlit_server  # noqa: E402


async def open_predict(browser, url: str, image: Path):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(600_000)
    await page.goto(f"{url}/predict")
    await page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(image))
    metric = page.locator('[data-testid="stMetric"]', has_text="Boxes shown").locator('[data-testid="stMetricValue"]')
    await metric.wait_for(timeout=600_000)
    thumb = page.get_by_role("slider")
    await thumb.focus()
    from playwright.async_api import expect

    counts = []
    for key in ("End", "Home"):  # both ends, so that every timed move changes the count
        before = await metric.inner_text()
        await thumb.press(key)
        try:
            await expect(metric).not_to_have_text(before, timeout=60_000)
        except AssertionError:
            pass  # this end shows what the page showed already
        await page.wait_for_function(IDLE, timeout=600_000)
        counts.append(await metric.inner_text())
    if counts[0] == counts[1]:
        raise SystemExit(f"the slider's ends show the same box count ({counts[0]}): nothing to time")
    return context, thumb, metric


async def move(thumb, metric, moves: int) -> list[float]:
    from playwright.async_api import expect

    times = []
    for i in range(moves):
        before = await metric.inner_text()
        start = time.perf_counter()
        await thumb.press("End" if i % 2 == 0 else "Home")  # the slider rests at Home
        await expect(metric).not_to_have_text(before, timeout=300_000)
        times.append(time.perf_counter() - start)
    return times


async def one_n(roots: dict, n: int, moves: int) -> dict:
    from playwright.async_api import async_playwright

    with streamlit_server(roots) as (url, server):
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                pages = []
                for _ in range(n):  # one after the other: each runs the model once on its photo
                    pages.append(await open_predict(browser, url, roots["image"]))
                for _, thumb, metric in pages:  # warm-up: there and back
                    await move(thumb, metric, 2)
                rss_open = rss_mb(server.pid)
                start = time.perf_counter()
                results = await asyncio.gather(*(move(thumb, metric, moves) for _, thumb, metric in pages))
                wall = time.perf_counter() - start
                rss_after = rss_mb(server.pid)
                for context, _, _ in pages:
                    await context.close()
            finally:
                await browser.close()
    times = [t for page_times in results for t in page_times]
    return {"n": n, "p50": statistics.median(times), "p95": percentile(times, 0.95), "moves": len(times),
            "moves_per_s": len(times) / wall, "rss_open": rss_open, "rss_after": rss_after, "load": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--moves", type=int, default=10, help="slider moves per page")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        roots = make_roots(Path(tmp))
        print(f"start: {load_average()}", flush=True)
        rows = []
        for n in args.pages:
            rows.append(asyncio.run(one_n(roots, n, args.moves)))
            r = rows[-1]
            print(f"N={n:>2}: p50 {r['p50'] * 1000:.0f} ms, p95 {r['p95'] * 1000:.0f} ms over {r['moves']} moves "
                  f"({r['moves_per_s']:.1f} moves/s); server RSS {r['rss_open']:.0f} MB with the pages open, "
                  f"{r['rss_after']:.0f} MB after the moves  ({r['load']})", flush=True)
        base = next((r for r in rows if r["n"] == 1), rows[0])
        print("\n  N   p50 ms   p95 ms   p50 / p50(N=1)   server RSS MB")
        for r in rows:
            print(f"{r['n']:>3} {r['p50'] * 1000:>8.0f} {r['p95'] * 1000:>8.0f} {r['p50'] / base['p50']:>16.2f} "
                  f"{r['rss_after']:>15.0f}")
        print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
