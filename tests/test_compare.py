"""detcore/compare.py on run folders whose predictions are given (no model): which images runs are
compared on, the `compare --json` contract, each run's own thresholds, the disagreement order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detcore.compare import INTERSECTION, SplitMismatch, compare_runs
from detcore.data.splits import Split
from detcore.errors import DataError
from detcore.structures import Detections, Sample
from detcore.train.config import TrainConfig
from detcore.train.runs import Run

CLASSES = ["cat", "dog", "bird"]
IDS = [f"im{i:03d}" for i in range(40)]


def _sample(image_id: str) -> Sample:
    rng = np.random.default_rng(int(image_id[2:]))
    n = int(rng.integers(1, 5))
    xy = rng.uniform(0, 300, size=(n, 2))
    return Sample(image_id, f"{image_id}.jpg", 400, 400, boxes=np.hstack([xy, xy + rng.uniform(30, 90, (n, 2))]),
                  labels=rng.integers(0, 3, size=n))


def _detections(sample: Sample, *, shift_dogs: bool) -> Detections:
    rng = np.random.default_rng(1000 + int(sample.image_id[2:]))
    boxes = sample.boxes + rng.normal(0, 2, sample.boxes.shape)
    if shift_dogs:
        dog = sample.labels == 1
        boxes[dog, 0::2] += (boxes[dog, 2] - boxes[dog, 0])[:, None] * 1.5
    fp = rng.uniform(0, 300, (1, 2))
    return Detections(sample.image_id, np.vstack([boxes, np.hstack([fp, fp + 40])]),
                      np.r_[rng.uniform(0.5, 1, len(boxes)), 0.3], np.r_[sample.labels, 2])


def _predict(run, data, ids, part, progress=None):
    samples = [_sample(i) for i in ids]
    return samples, [_detections(s, shift_dogs=run.name == "shifted") for s in samples]


def _run(root, name, *, test, train=None, classes=CLASSES) -> str:
    run = Run(root / name)
    train = train if train is not None else [i for i in IDS if i not in test]
    run.write_files(config=TrainConfig(data="unused", model="ssdlite320_mobilenet_v3_large", weights="none").to_dict(),
                    classes=classes, split=Split(train=train, test=list(test)))
    return str(run.path)


@pytest.fixture
def runs(tmp_path):
    return _run(tmp_path, "good", test=IDS[:30]), _run(tmp_path, "shifted", test=IDS[:30])


def test_json_contract_and_the_shifted_class(runs):
    comparison = compare_runs(runs, "data", predict=_predict, n_boot=300)
    doc = json.loads(json.dumps(comparison.to_json(), allow_nan=False))
    assert [r["name"] for r in doc["runs"]] == ["good", "shifted"] and doc["baseline"] == "good"
    assert doc["split"] == {"part": "test", "basis": "same", "images": 30, "notes": []}
    rows = {r["class"]: r for r in doc["per_class"]}
    assert list(rows) == CLASSES
    for r in rows.values():
        assert set(r["AP"]) == {"good", "shifted"}
        assert r["AP_delta"] == pytest.approx(r["AP"]["shifted"] - r["AP"]["good"], abs=1e-12)  # B minus A
        lo, hi = r["AP_delta_ci"]
        assert lo <= hi and isinstance(r["significant"], bool)
        assert r["significant"] == (lo > 0 or hi < 0) and r["n_gt"] >= 10
        assert r["vs_baseline"]["shifted"]["AP_delta"] == r["AP_delta"]
    assert rows["dog"]["significant"] and rows["dog"]["AP_delta"] < -0.5
    assert not rows["cat"]["significant"] and rows["cat"]["AP_delta"] == 0
    assert doc["summary"]["AP"]["shifted"] < doc["summary"]["AP"]["good"]


def test_the_table_the_page_shows_holds_the_json_numbers(runs):
    comparison = compare_runs(runs, "data", predict=_predict, n_boot=100)
    table = comparison.per_class_table()
    for row, (_, shown) in zip(comparison.to_json()["per_class"], table.iterrows()):
        assert shown["class"] == row["class"]
        assert shown["AP good"] == row["AP"]["good"] and shown["AP shifted"] == row["AP"]["shifted"]
        assert shown["ΔAP"] == row["AP_delta"]
        assert [shown["ΔAP low"], shown["ΔAP high"]] == row["AP_delta_ci"]
        assert shown["ΔAP significant"] == row["significant"]


def test_images_where_the_runs_err_differently_come_first(runs):
    comparison = compare_runs(runs, "data", predict=_predict, n_boot=50)
    order = comparison.disagreement()
    dogs = {i: int((_sample(i).labels == 1).sum()) for i in IDS[:30]}
    # each shifted dog box is one false positive and one missed dog more for "shifted"
    assert order["difference"].tolist() == sorted(order["difference"].tolist(), key=abs, reverse=True)
    assert order["difference"].tolist()[0] == 2 * max(dogs.values())
    assert dict(zip(order["image_id"], order["difference"])) == {i: 2 * n for i, n in dogs.items()}


def test_each_run_is_counted_at_its_own_saved_thresholds(runs):
    Run(runs[1]).save_thresholds(global_threshold=0.9, per_class={"bird": 0.2})
    comparison = compare_runs(runs, "data", predict=_predict, n_boot=20)
    rows = {r["class"]: r for r in comparison.to_json()["per_class"]}
    assert rows["cat"]["threshold"] == {"good": 0.5, "shifted": 0.9}
    assert rows["bird"]["threshold"] == {"good": 0.5, "shifted": 0.2}
    assert comparison.to_json()["runs"][1]["thresholds"] == {"cat": 0.9, "dog": 0.9, "bird": 0.2}


def test_different_test_splits_are_refused_unless_told_where_to_compare(tmp_path):
    a = _run(tmp_path, "good", test=IDS[:30])
    b = _run(tmp_path, "shifted", test=IDS[10:35])
    with pytest.raises(SplitMismatch, match=r"good: 30, shifted: 25; 20 in common") as refused:
        compare_runs([a, b], "data", predict=_predict, n_boot=10)
    assert refused.value.sizes == {"good": 30, "shifted": 25} and refused.value.common == 20

    common = compare_runs([a, b], "data", predict=_predict, n_boot=10, on=INTERSECTION).to_json()
    assert common["split"]["images"] == 20 and common["split"]["basis"] == "intersection"

    on_a = compare_runs([a, b], "data", predict=_predict, n_boot=10, on="good").to_json()
    assert on_a["split"]["images"] == 30 and on_a["split"]["basis"] == "good"
    # images 0-9 are in the training part of "shifted": its numbers on them are optimistic, and said so
    assert len(on_a["split"]["notes"]) == 1 and "10 of the 30 images were in shifted's training" in on_a["split"]["notes"][0]


def test_runs_without_common_classes_or_images_are_refused(tmp_path):
    a = _run(tmp_path, "good", test=IDS[:10])
    other = _run(tmp_path, "other", test=IDS[:10], classes=["cat", "dog", "horse"])
    with pytest.raises(DataError, match="classes"):
        compare_runs([a, other], "data", predict=_predict, n_boot=10)
    apart = _run(tmp_path, "apart", test=IDS[20:30])
    with pytest.raises(DataError, match="no image in common"):
        compare_runs([a, apart], "data", predict=_predict, n_boot=10, on=INTERSECTION)
    with pytest.raises(DataError, match="at least two"):
        compare_runs([a], "data", predict=_predict)
