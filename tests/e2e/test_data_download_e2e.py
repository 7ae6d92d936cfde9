"""Data page in Chromium: "Download as COCO / YOLO / VOC" delivers a zip that reads back as the dataset."""

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("fmt", ["COCO", "YOLO"])
def test_download_as_coco_and_yolo(app, app_roots, tmp_path, fmt):
    from detcore.data.detect import load_dataset

    app.open("", "Data")
    app.page.get_by_text("Download as COCO / YOLO / VOC").click()
    app.page.get_by_text(fmt, exact=True).click()
    app.settle()
    app.page.get_by_role("button", name=f"Prepare the {fmt} zip").click()
    app.settle()
    button = app.page.get_by_role("button", name=f"Download demo-{fmt.lower()}.zip")
    button.wait_for()
    app.assert_no_exception()
    app.screenshot(f"data-download-{fmt.lower()}", height=900)
    with app.page.expect_download() as info:
        button.click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.name == f"demo-{fmt.lower()}.zip"
    parsed = load_dataset(path, verify_images=True)
    demo = load_dataset(app_roots["data"] / "demo", verify_images=True)
    assert parsed.format == fmt.lower() and parsed.num_images == 48 and parsed.classes == demo.classes
    assert parsed.num_objects == demo.num_objects
