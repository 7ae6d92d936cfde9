"""`python -m detcore predict`: thresholds from the flag or the run's thresholds.json, table, JSON,
COCO output, and a clear exit-2 error for a bad image."""

import json

import numpy as np
import pytest
from PIL import Image

from detcore.cli import main


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(1)
    out = []
    for k in range(2):
        path = tmp_path / f"img{k}.png"
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(path)
        out.append(path)
    return out


def _json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


FRCNN = dict(model="fasterrcnn_mobilenet_v3_large_320_fpn", min_size=128, max_size=160)


def test_json_output_respects_the_score_threshold(make_run, images, capsys):
    run = make_run(**FRCNN)
    low = _json(capsys, "predict", str(run), *map(str, images), "--json", "--score-threshold", "0.05")["images"]
    assert [r["image"] for r in low] == [str(p) for p in images]
    scores = [d["score"] for r in low for d in r["detections"]]
    assert scores and min(scores) >= 0.05
    distinct = np.unique(scores)
    mid = len(distinct) // 2
    cut = float((distinct[mid - 1] + distinct[mid]) / 2)  # between two scores: rounding cannot matter
    high = _json(capsys, "predict", str(run), *map(str, images), "--json", "--score-threshold", str(cut))["images"]
    assert sum(len(r["detections"]) for r in high) == sum(s >= cut for s in scores) > 0
    d = low[0]["detections"][0]
    assert d["label"] in ("with_mask", "without_mask", "mask_weared_incorrect") and len(d["box"]) == 4


def test_per_class_thresholds_come_from_the_run(make_run, images, capsys):
    run = make_run(**FRCNN)
    everything = _json(capsys, "predict", str(run), *map(str, images), "--json", "--score-threshold", "0.0")["images"]
    present = {d["label"] for r in everything for d in r["detections"]}
    keep = sorted(present)[0]
    (run / "thresholds.json").write_text(json.dumps(
        {"global": 0.5, "per_class": {c: (0.0 if c == keep else 1.0) for c in
                                      ("with_mask", "without_mask", "mask_weared_incorrect")}}))
    filtered = _json(capsys, "predict", str(run), *map(str, images), "--json")
    classes = {d["label"] for r in filtered["images"] for d in r["detections"]}
    assert classes == {keep}
    assert filtered["thresholds"] == {c: (0.0 if c == keep else 1.0) for c in filtered["classes"]}


def test_table_and_coco_outputs(make_run, images, capsys, tmp_path):
    run = make_run()
    assert main(["predict", str(run), *map(str, images), "--score-threshold", "0.05"]) == 0
    table = capsys.readouterr().out
    assert "img0.png" in table and "detection(s) in 2 image(s)" in table
    out = tmp_path / "dets.json"
    assert main(["predict", str(run), *map(str, images), "--score-threshold", "0.05", "--coco", str(out)]) == 0
    results = json.loads(out.read_text())
    listing = json.loads((tmp_path / "dets.images.json").read_text())
    assert results and {r["image_id"] for r in results} <= {i["id"] for i in listing}
    assert all(len(r["bbox"]) == 4 and 1 <= r["category_id"] <= 3 for r in results)


def test_bad_image_exits_2_naming_the_file(make_run, images, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["predict", str(make_run()), str(images[0]), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "notes.png" in err[-1]
