"""Two people on the Train page in real browsers: the Devices field, a second Start queued behind the
running job, the queue seen from both, cancelled from the other browser, and Stop."""

import pytest

pytestmark = pytest.mark.e2e


def _start(app, epochs: str, max_iters: str) -> None:
    page = app.page
    if not page.get_by_role("button", name="Start training").is_visible():  # folded while a job runs
        page.get_by_text("New training run").click()
    for label, value in [("Epochs", epochs), ("Batch size", "2"), ("Max iterations per epoch (0 = all)", max_iters),
                         ("Validate every N epochs (0 = never)", "0")]:
        field = page.get_by_label(label, exact=True)
        field.fill(value)
    field.press("Tab")  # commit the last field and let its rerun end before pressing Start
    app.settle()
    page.get_by_role("button", name="Start training").click()


def test_devices_field_queue_seen_by_two_browsers_cancel_and_stop(app, browser, app_url):
    from tests.e2e.conftest import AppDriver

    app.open("train", "Train")
    devices = app.page.get_by_role("combobox", name="Devices")
    assert devices.input_value() == "CPU · 1 process"  # the default on a machine without GPUs
    _start(app, "100", "2")
    app.page.locator('[data-testid="stMetric"]', has_text="running").first.wait_for(timeout=180_000)

    other_context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        other = AppDriver(other_context.new_page(), app_url)
        other.page.set_default_timeout(30_000)
        other.open("train", "Train")
        _start(other, "1", "2")
        try:
            other.page.get_by_text("queued · #1 on cpu").wait_for(timeout=60_000)
        except Exception:
            other.screenshot("FAILED-train-queue-other-browser")  # the browser that pressed Start
            raise
        queued = app.page.get_by_text("queued · #1 on cpu")  # the first browser sees it too
        queued.wait_for(timeout=60_000)
        app.assert_no_exception()
        app.screenshot("train-queue")

        other.page.get_by_role("button", name="Cancel").click()
        queued.wait_for(state="detached", timeout=60_000)
    except BaseException:
        # The 100-epoch job would still run on the shared server and fold the Train form of the next
        # browser tests: stop it before reporting this failure.
        app.page.get_by_role("button", name="Stop").click()
        app.page.locator('[data-testid="stMetric"]', has_text="stopped").first.wait_for(timeout=180_000)
        raise
    finally:
        other_context.close()

    app.page.get_by_role("button", name="Stop").click()
    app.page.locator('[data-testid="stMetric"]', has_text="stopped").first.wait_for(timeout=180_000)
    app.settle()
    app.assert_no_exception()
