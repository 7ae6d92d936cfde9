"""Evaluate page's Export row: the saved thresholds go into the exported file, which the download
offers and which runs outside the app; the Predict page's JSON download is the documented document."""

import json

import pytest

pytestmark = pytest.mark.slow


def _evaluate_page(app):
    at = app.run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _download_labels(at):
    return [el.proto.label for el in at.get("download_button")]


@pytest.mark.parametrize("label, suffix", [("ONNX", ".onnx"), ("TorchScript", ".torchscript.pt")])
def test_export_button_writes_a_file_with_the_saved_thresholds(app, trained_run, label, suffix):
    from detcore.export.runtime import ExportedModel

    classes = json.loads((trained_run / "classes.json").read_text())
    saved = {c: round(0.2 + 0.1 * i, 2) for i, c in enumerate(classes)}
    (trained_run / "thresholds.json").write_text(json.dumps({"global": 0.5, "per_class": saved}))
    at = _evaluate_page(app)
    assert not any(x.startswith("Download tiny-best") for x in _download_labels(at))
    at.segmented_control(key="export_format").set_value(label).run()
    at.button(key="export_button").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    path = trained_run / "exports" / f"tiny-best{suffix}"
    assert path.is_file()
    assert any(x.startswith(f"Download {path.name}") for x in _download_labels(at))
    exported = ExportedModel.load(path)
    assert exported.classes == classes and exported.thresholds == [saved[c] for c in classes]
    assert exported.metadata["run"] == "tiny" and "AP50" in exported.metadata["metrics"]


def test_export_failure_is_one_error_line_not_a_traceback(app, trained_run):
    at = _evaluate_page(app)
    (trained_run / "exports" / "tiny-best.onnx").mkdir(parents=True)  # the target cannot be written
    at.button(key="export_button").click().run()
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert "tiny-best.onnx" in error and "cannot write the exported file" in error and "\n" not in error
    assert any(m.label == "AP50" for m in at.metric)  # the rest of the page is still there
