"""Issue 10 in a real browser: the Data page's augmentation preview draws random augmented samples with
their boxes, and the Evaluate page of a Mask R-CNN run switches to mask IoU (segm) and draws masks in the
error browser. Screenshots go to test-artifacts/ for a human to look at."""

from __future__ import annotations

import pytest

from tests.maskrun import copy_run

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


def test_augmentation_preview_shows_random_draws(app):
    app.open("", "Data")
    app.page.get_by_role("tab", name="Augmentation preview").click()
    app.settle()
    app.page.get_by_text("Draw augmented samples").click()
    app.settle(timeout_ms=240_000)  # the first draw loads PyTorch
    # eight pictures, each really loaded (an <img> with pixels), not just its caption
    app.page.wait_for_function(
        """() => { const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')]
                                  .filter(i => i.offsetParent !== null);  // the open tab only
                   return imgs.length === 8 && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
        timeout=240_000)
    app.assert_no_exception()
    app.screenshot("augment-preview")


@pytest.fixture(scope="module")
def mask_run_in_app(app_roots, mask_run_template):
    run, _ = mask_run_template
    target = app_roots["runs"] / "mask-tiny"
    if not target.exists():
        copy_run(run, target)
    return target


def _pick_run(app, name: str) -> None:
    app.page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    app.page.get_by_role("option", name=name).first.click()
    app.settle(timeout_ms=180_000)


def test_evaluate_a_mask_run_in_segm_mode(app, mask_run_in_app):
    app.open("evaluate", "Evaluate")
    _pick_run(app, "mask-tiny")
    app.page.locator('[data-testid="stMetric"]', has_text="AP50").first.wait_for(timeout=180_000)
    app.settle()
    split = app.page.locator('[data-testid="stButtonGroup"]').first
    labels = [t.strip() for t in split.locator("button").all_inner_texts()]
    assert [t for t in labels if t] == ["test", "val", "train"]  # (the help icon is a button without text)
    app.page.locator('[data-testid="stButtonGroup"]', has_text="masks (segm)").get_by_text("masks (segm)").click()
    app.settle(timeout_ms=180_000)
    app.wait_for_charts()
    app.assert_no_exception()
    app.page.get_by_text("Mask threshold").first.wait_for()
    app.page.get_by_text("outlined: ground-truth masks").first.wait_for(timeout=120_000)
    app.screenshot("evaluate-segm", height=2200)
