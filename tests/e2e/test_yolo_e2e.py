"""A Roboflow YOLO export under DATA, in Chromium: the Data page reads it with its problems, the
Train page offers its own split."""

import pytest

pytestmark = pytest.mark.e2e


def test_yolo_folder_on_data_and_train_pages(app, app_roots):
    from tests.data.builders import write_yolo_part, write_yolo_yaml

    root = app_roots["data"] / "helmets"
    if not root.exists():
        from detcore.data.demo import render_demo_image

        write_yolo_yaml(root, ["head", "helmet"], train="../train/images", val="../valid/images")
        for part, n in (("train", 6), ("valid", 2)):
            write_yolo_part(root / part / "images", root / part / "labels",
                            {f"{part}{i}": ["0 0.3 0.4 0.2 0.3", "1 0.7 0.5 0.25 0.35"] for i in range(n)},
                            size=(160, 120))
            for i in range(n):  # real pictures instead of blank ones, so the browser shows something
                render_demo_image(i, seed=5)[0].resize((160, 120)).save(root / part / "images" / f"{part}{i}.png")
        (root / "train" / "labels" / "train0.txt").write_text("0 0.3 0.4 0.2 0.3\n3 0.5 0.5 0.1 0.1\n")
    app.open("", "Data")
    app.page.get_by_text("Change dataset").click()
    typed = app.page.get_by_placeholder("e.g. facemask/train")
    typed.fill("helmets")
    typed.press("Enter")
    app.settle()
    app.page.get_by_role("button", name="Open folder").click()
    app.settle()
    # The page reruns after "Open folder"; under load settle() can return while the previous dataset's
    # metrics are still shown (CI once read "VOC" here), so wait for the new dataset's format.
    from playwright.sync_api import expect

    format_value = app.page.locator('[data-testid="stMetric"]', has_text="Format").first
    expect(format_value.locator('[data-testid="stMetricValue"]')).to_have_text("YOLO", timeout=60_000)
    app.wait_for_charts()
    app.assert_no_exception()
    assert app.metric_value("Format") == "YOLO" and app.metric_value("Images") == "8"
    assert app.metric_value("Problems") == "1"  # class index 3 of 2 names
    app.page.get_by_role("tab", name="Problems (1)").click()
    app.settle()
    app.screenshot("data-yolo", height=1100)
    app.page.get_by_role("link", name="Train").click()
    app.page.get_by_role("heading", name="Train", level=1).wait_for()
    app.settle()
    app.page.get_by_text("This dataset gives its own split").wait_for()
    app.assert_no_exception()
    app.screenshot("train-given-split", height=1100)
