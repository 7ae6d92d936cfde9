"""The hostile walk's findings (issue "Close the holes a hostile walk found"), one test (or more) per
finding, each named after it. Each failed before its fix. Finding 1 (OIDC) lives with the gate's tests
in test_password_gate.py and tests/app/test_app_shell.py."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def _png(path: Path, colour=(200, 40, 40), size=(48, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), colour, np.uint8)).save(path)
    return path


def _coco_with_escaping_names(secret_png: Path) -> dict:
    """One honest image plus file_names that point at the server's files (existing and not)."""
    names = ["images/ok.png", str(secret_png), str(secret_png.with_name("no-such-file.png")),
             "../../../../../../../../" + str(secret_png).lstrip("/"), "../../../../../../../../etc/no-such.png",
             "images/../../outside.png", "C:/Windows/win.ini"]
    return {"images": [{"id": i + 1, "file_name": n, "width": 48, "height": 40} for i, n in enumerate(names)],
            "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [4, 4, 20, 20],
                             "area": 400, "iscrowd": 0} for i in range(len(names))],
            "categories": [{"id": 1, "name": "thing"}]}


def test_finding2_coco_file_names_cannot_leave_the_dataset(tmp_path):
    from detcore.data.detect import load_dataset

    secret = _png(tmp_path / "server-private" / "secret.png")
    root = tmp_path / "data" / "coco"
    _png(root / "images" / "ok.png")
    _png(tmp_path / "data" / "outside.png")  # beside the dataset, reachable by images/../../
    (root / "annotations.json").write_text(json.dumps(_coco_with_escaping_names(secret)))

    parsed = load_dataset(root, verify_images=True)
    assert [s.image_path.name for s in parsed.samples] == ["ok.png"]
    unsafe = [p for p in parsed.problems if p.kind == "unsafe_path"]
    assert sorted(p.image_id for p in unsafe) == ["2", "3", "4", "5", "6", "7"]
    # The report does not tell an existing secret from a missing one: same kind, same sentence.
    by_id = {p.image_id: p.detail.replace(p.detail.split("'")[1], "NAME") for p in unsafe}
    assert by_id["2"].replace("id 2", "id N") == by_id["3"].replace("id 3", "id N")
    assert by_id["4"].replace("id 4", "id N") == by_id["5"].replace("id 5", "id N")
    assert {p.file for p in unsafe} == {str(root / "annotations.json")}
    for p in parsed.problems:
        assert "secret" not in p.file and p.kind not in ("missing_image", "not_an_image"), p


def test_finding2_coco_layout_with_annotations_folder_still_reads(tmp_path):
    """The control: a COCO export with annotations/ beside images/ (file_names relative to images/)."""
    from detcore.data.detect import load_dataset

    root = tmp_path / "data" / "coco2"
    _png(root / "images" / "a.png")
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_train.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 48, "height": 40}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 10, 10]}],
        "categories": [{"id": 3, "name": "x"}]}))
    parsed = load_dataset(root)
    assert [s.image_path for s in parsed.samples] == [root / "images" / "a.png"]
    parsed = load_dataset(root / "annotations" / "instances_train.json")  # the JSON named directly
    assert [s.image_path.name for s in parsed.samples] == ["a.png"]


def test_finding2_uploaded_coco_zip_shows_no_server_image_in_the_app(app, tmp_path):
    secret = _png(tmp_path / "server-private" / "secret.png", colour=(1, 2, 3))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("evil/annotations.json", json.dumps(_coco_with_escaping_names(secret)))
        png = io.BytesIO()
        Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(png, format="PNG")
        zf.writestr("evil/images/ok.png", png.getvalue())
    at = app.run()
    at.file_uploader(key="data_zip").set_value(("evil.zip", buf.getvalue(), "application/zip")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["dataset_path"].endswith("evil")
    images = next(m for m in at.metric if m.label == "Images")
    assert images.value == "1"
    problems = next(df for df in at.dataframe if "kind" in df.value.columns).value
    unsafe = problems[problems["kind"] == "unsafe_path"]
    assert len(unsafe) == 6
    assert not problems["kind"].isin(["missing_image", "not_an_image"]).any()
    assert not problems["file"].str.contains("secret").any()


def test_finding12_problem_filter_follows_the_dataset(app, tmp_path):
    """Finding 12 (UX): after switching datasets the Problems filter kept the old kinds ("0 of 5 shown")."""
    from detcore import paths

    from tests.reliability.tinydata import write_tiny_voc

    demo = paths.demo_dataset_dir()
    xml = next(x for x in sorted((demo / "annotations").glob("*.xml")) if "<xmax>" in x.read_text())
    text = xml.read_text()
    xml.write_text(text[:text.index("<xmax>") + 6] + "9999" + text[text.index("</xmax>"):])  # box_clipped
    other = write_tiny_voc(paths.data_root() / "other")
    (other / "images" / "img000.png").unlink()  # missing_image
    at = app.run()
    kinds = next(m for m in at.multiselect if m.label == "Problem kinds")
    assert "box_clipped" in kinds.value and "missing_image" not in kinds.value
    next(t for t in at.text_input if t.label == "…or a path under DATA").input("other").run()
    next(b for b in at.button if b.label == "Open folder").click().run()
    assert not at.exception
    kinds = next(m for m in at.multiselect if m.label == "Problem kinds")
    assert kinds.value == ["missing_image"]
    assert any(c.value == "1 of 1 problems shown" for c in at.caption)
