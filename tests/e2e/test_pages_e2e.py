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


def test_data_page_geometry_check(app):
    """The geometry check tab: a model picked, the verdict, the metrics and the log-log plot drawn."""
    app.open("", "Data")
    app.page.get_by_role("tab", name="Geometry check").click()
    app.settle()
    select = app.page.locator('[data-testid="stSelectbox"]', has_text="Model or preset")
    select.click()
    app.page.get_by_role("option", name="fasterrcnn_mobilenet_v3_large_320_fpn").click()
    verdict = app.page.locator('[data-testid="stAlert"]',
                               has_text="fasterrcnn_mobilenet_v3_large_320_fpn at its default input can match")
    verdict.wait_for(timeout=90_000)  # the fit runs once per dataset and model, then it is cached
    app.settle()
    app.wait_for_charts()
    app.assert_no_exception()
    assert app.metric_value("Recall ceiling, fitted").endswith("%")
    assert app.page.locator('[data-testid="stPlotlyChart"]', has_text="Box sizes vs anchor sizes").count() >= 1
    app.screenshot("data-geometry")
