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
