"""In Chromium: the Predict page's "Detections JSON" download is the same document `predict --json`
prints for that image, and the Evaluate page's Export row downloads an ONNX file that runs."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.e2e.conftest import REPO

pytestmark = pytest.mark.e2e


def test_predict_page_json_download_equals_the_cli_document(app, trained_run, drop_images, tmp_path):
    image = drop_images[0]
    app.open("predict", "Predict")
    app.page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files([str(image)])
    app.page.locator('[data-testid="stMetric"]', has_text="Boxes shown").wait_for(timeout=120_000)
    app.settle()
    app.assert_no_exception()
    with app.page.expect_download() as info:
        app.page.get_by_role("button", name="Detections JSON").click()
    page_doc = json.loads(open(info.value.path(), encoding="utf-8").read())
    app.screenshot("predict-json-download")

    cli = subprocess.run([sys.executable, "-m", "detcore", "predict", str(trained_run), str(image), "--json",
                          "--score-threshold", "0.5", "--device", "cpu"],  # the page's default slider value
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    cli_doc = json.loads(cli.stdout)
    assert page_doc["schema"] == cli_doc["schema"] == "detboard.detections/1"
    assert page_doc["classes"] == cli_doc["classes"] and page_doc["thresholds"] == cli_doc["thresholds"]
    (page_image,), (cli_image,) = page_doc["images"], cli_doc["images"]
    assert page_image["image"] == image.name and cli_image["image"] == str(image)
    assert (page_image["width"], page_image["height"]) == (cli_image["width"], cli_image["height"])
    assert page_image["detections"] == cli_image["detections"]  # same model, same eager code: identical
    assert page_doc["model"]["checkpoint"] == cli_doc["model"]["checkpoint"]


def test_evaluate_page_exports_an_onnx_file_that_runs(app, trained_run, drop_images, tmp_path):
    from detcore.export.runtime import ExportedModel

    shutil.rmtree(trained_run / "exports", ignore_errors=True)
    app.open("evaluate", "Evaluate")
    app.assert_no_exception()
    app.page.get_by_role("heading", name="Export the model").wait_for(timeout=120_000)
    app.settle()
    export = app.page.get_by_role("button", name="Export", exact=True)
    export.scroll_into_view_if_needed()
    export.click(timeout=120_000)  # a loaded machine can keep the page busy for a while
    download = app.page.get_by_role("button", name="Download tiny-e2e-best.onnx")
    download.wait_for(timeout=180_000)
    app.settle()
    app.assert_no_exception()
    download.scroll_into_view_if_needed()
    app.page.screenshot(path=str(REPO / "test-artifacts" / "evaluate-export.png"))
    with app.page.expect_download() as info:
        download.click()
    saved = tmp_path / info.value.suggested_filename
    info.value.save_as(saved)
    assert saved.name == "tiny-e2e-best.onnx"
    exported = ExportedModel.load(saved)
    assert exported.classes == json.loads((trained_run / "classes.json").read_text())
    from detcore.data.images import load_rgb

    (dets,) = exported.predict([load_rgb(drop_images[0])])
    assert (dets.scores >= exported.score_floor).all()
