"""Data page: "Download as COCO / YOLO / VOC" builds the zip with detcore's converter (what a user
downloads reads back as the same dataset), refuses above the size limit, and YOLO zips can be dropped."""

import io
import zipfile
from pathlib import Path

import numpy as np

from tests.app.conftest import no_exceptions


def _metric(at, label):
    return next(m for m in at.metric if m.label == label).value


def _download_buttons(at):
    return at.get("download_button")


def test_prepare_and_download_yolo_reads_back_as_the_same_dataset(app, demo_dir, tmp_path):
    from detcore.data.detect import load_dataset

    at = app.run()
    no_exceptions(at)
    assert not _download_buttons(at)  # nothing is built before the user asks
    at.radio(key="data_download_format").set_value("YOLO").run()
    next(b for b in at.button if b.label == "Prepare the YOLO zip").click().run()
    no_exceptions(at)
    buttons = _download_buttons(at)
    assert len(buttons) == 1 and buttons[0].proto.label.startswith("Download demo-yolo.zip")
    data = at.session_state["_data_download"]["bytes"]  # the bytes the button serves
    (tmp_path / "demo-yolo.zip").write_bytes(data)
    back = load_dataset(tmp_path / "demo-yolo.zip", verify_images=True)
    demo = load_dataset(demo_dir, verify_images=True)
    assert back.format == "yolo" and back.classes == demo.classes and back.num_images == demo.num_images == 16
    for s, t in zip(sorted(demo.samples, key=lambda s: s.image_path.name),
                    sorted(back.samples, key=lambda s: s.image_path.name)):
        np.testing.assert_allclose(s.boxes, t.boxes, atol=1e-3)
    # Another format drops the prepared zip: the button would otherwise serve the wrong file.
    at.radio(key="data_download_format").set_value("COCO").run()
    assert not _download_buttons(at) and "_data_download" not in at.session_state


def test_above_the_limit_says_how_to_convert_instead(app, monkeypatch):
    monkeypatch.setenv("DETBOARD_DOWNLOAD_MAX_MB", "0.01")
    at = app.run()
    no_exceptions(at)
    warning = next(w.value for w in at.warning if "download limit" in w.value)
    assert "python -m detcore convert" in warning and "--to coco" in warning
    assert not [b for b in at.button if b.label.startswith("Prepare")]


def test_a_dropped_roboflow_zip_opens_as_yolo(app, tmp_path):
    from tests.data.builders import write_yolo_part, write_yolo_yaml

    root = tmp_path / "rf"
    write_yolo_yaml(root, ["head", "helmet"], train="../train/images", val="../valid/images")
    for part in ("train", "valid"):
        write_yolo_part(root / part / "images", root / part / "labels",
                        {f"{part}{i}": ["0 0.5 0.5 0.2 0.2", "1 0.9 0.5 0.4 0.2"] for i in range(3)}, size=(64, 48))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, Path("helmets") / p.relative_to(root))
    at = app.run()
    at.file_uploader(key="data_zip").set_value(("helmets.zip", buf.getvalue(), "application/zip")).run()
    no_exceptions(at)
    assert _metric(at, "Format") == "YOLO" and _metric(at, "Images") == "6"
    assert _metric(at, "Problems") == "6"  # every second box reaches past the right edge: clipped, reported
