"""Every page opens in a real browser with no exception box; screenshots for a human to look at."""

import pytest

pytestmark = pytest.mark.e2e


def test_data_page_opens_on_demo_dataset(app):
    app.open("", "Data")
    app.assert_no_exception()
    assert app.metric_value("Format") == "VOC"
    assert int(app.metric_value("Images")) == 48
    app.screenshot("data")
    app.page.get_by_role("tab", name="Image browser").click()
    app.settle()
    app.page.locator('[data-testid="stImage"]').first.wait_for()
    app.assert_no_exception()
    app.screenshot("data-browser")


@pytest.mark.parametrize("url_path,title", [("train", "Train"), ("evaluate", "Evaluate"), ("predict", "Predict")])
def test_page_opens_with_a_run_and_no_exception(app, trained_run, url_path, title):
    app.open(url_path, title)
    if url_path == "evaluate":  # the first visit runs the model over the test split
        app.page.locator('[data-testid="stMetric"]', has_text="AP50").first.wait_for(timeout=180_000)
        app.settle()
        app.wait_for_charts()
    app.assert_no_exception()
    assert app.page.locator("h1").count() == 1
    app.screenshot(url_path)
