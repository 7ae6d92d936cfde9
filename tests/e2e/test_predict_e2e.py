"""Predict in a real browser: drop images, move the 'Score threshold' slider, see 'Boxes shown' change."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e


def _boxes_shown(app) -> int:
    return int(app.metric_value("Boxes shown"))


def test_drop_images_and_move_the_slider(app, trained_run, drop_images):
    app.open("predict", "Predict")
    app.assert_no_exception()
    app.page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(p) for p in drop_images])
    app.page.locator('[data-testid="stMetric"]', has_text="Boxes shown").wait_for(timeout=120_000)
    app.settle()
    app.wait_for_charts()
    app.assert_no_exception()

    thumb = app.page.get_by_role("slider")
    thumb.focus()
    thumb.press("Home")  # the 0.05 score floor: every cached detection
    expect(thumb).to_have_attribute("aria-valuetext", "0.05")
    app.settle()
    low = _boxes_shown(app)
    app.screenshot("predict")
    thumb.press("End")  # 1.0: nothing scores that high
    app.page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stMetric"]')]
                 .some(m => m.innerText.includes('Boxes shown') && m.innerText.trim().endsWith('\\n0'))""")
    assert low > _boxes_shown(app) == 0
    app.assert_no_exception()
