"""Train in a real browser: start a tiny job, watch the loss chart grow, stop it in one click."""

import pytest

pytestmark = pytest.mark.e2e

LOSS_POINTS = """() => {
  const plot = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
  return plot && plot.data && plot.data.length ? plot.data[0].x.length : 0;
}"""


def test_start_watch_and_stop_a_job(app):
    app.open("train", "Train")
    # Many epochs, so the job is still running when Stop is pressed: the demo preset's model trains an
    # epoch of the demo set in seconds, and a job that completes first would never read "stopped".
    for label, value in [("Epochs", "200"), ("Batch size", "2"), ("Validate every N epochs (0 = never)", "0")]:
        app.page.get_by_label(label, exact=True).fill(value)
    app.page.get_by_role("button", name="Start training").click()
    app.page.locator('[data-testid="stMetric"]', has_text="running").first.wait_for(timeout=120_000)

    app.page.wait_for_function(f"({LOSS_POINTS})() >= 2", timeout=180_000)
    first = app.page.evaluate(LOSS_POINTS)
    app.page.wait_for_function(f"({LOSS_POINTS})() > {first}", timeout=180_000)  # the chart grows live
    app.wait_for_charts()
    app.assert_no_exception()
    app.screenshot("train-running")

    app.page.get_by_role("button", name="Stop").click()
    app.page.locator('[data-testid="stMetric"]', has_text="stopped").first.wait_for(timeout=120_000)
    app.settle()
    app.assert_no_exception()
    app.screenshot("train-stopped")
