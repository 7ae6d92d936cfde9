"""Compare and the HTML report in a real browser: two runs side by side with no exception box, and a
report file that opens offline with every section drawn and no console errors."""

from __future__ import annotations

import shutil

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def longer_run(app_roots, trained_run):
    """The browser tests' tiny run trained one epoch more (a resumed copy) in the server's RUNS."""
    from detcore.train.trainer import train

    run_dir = app_roots["runs"] / "tiny-e2e-longer"
    if not run_dir.exists():
        shutil.copytree(trained_run, run_dir)
        assert train(None, run_dir, resume=True, extra_epochs=1) == "completed"
    yield run_dir
    shutil.rmtree(run_dir)  # the newest run is every page's default: later tests expect the shared tiny run


def _pick_runs(app, names: list[str]) -> None:
    box = app.page.locator('[data-testid="stMultiSelect"]').first
    clear = box.locator('[aria-label="Clear all"], [title="Clear all"]')
    if clear.count():
        clear.first.click()
        app.settle()
    for name in names:
        box.locator("input").click()
        app.page.keyboard.type(name)
        app.page.get_by_role("option", name=f"{name} ·").first.click()
        app.settle()
    app.page.keyboard.press("Escape")


def test_compare_two_runs_in_chromium(app, trained_run, longer_run):
    app.open("compare", "Compare")
    _pick_runs(app, [trained_run.name, longer_run.name])
    app.page.locator('[data-testid="stDataFrame"]').nth(1).wait_for(timeout=240_000)  # runs + per class
    app.settle(timeout_ms=240_000)
    app.wait_for_charts(timeout_ms=60_000)
    app.assert_no_exception()
    for heading in ("Runs", "Per class", "Curves", "Training", "Where they disagree"):
        assert app.page.get_by_role("heading", name=heading).count() == 1
    assert app.page.locator('[data-testid="stPlotlyChart"]').count() >= 7
    app.screenshot("compare", height=2600)


def test_report_opens_offline_with_every_section(browser, trained_run, tmp_path):
    from detcore.html_report import SECTIONS, build_report, run_report

    out = tmp_path / "report.html"
    out.write_text(build_report(run_report(trained_run)), encoding="utf-8")
    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems, fetched = [], []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: fetched.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    try:
        page.goto(out.as_uri())
        page.wait_for_function(
            """() => [...document.querySelectorAll('.plot')].length > 0
                     && [...document.querySelectorAll('.plot')].every(p => p.querySelector('.main-svg'))""",
            timeout=60_000)
        for section in SECTIONS[:-1]:
            assert page.locator(f"section#{section}").is_visible(), section
        assert page.locator("#samples img").count() >= 1
        assert page.evaluate("() => [...document.querySelectorAll('#samples img')].every(i => i.naturalWidth > 0)")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    finally:
        context.close()
    assert problems == [] and fetched == []
