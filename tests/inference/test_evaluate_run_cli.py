"""`evaluate RUN_DIR` at full parity with the Evaluate page: --iou-type segm for mask runs (equal to
pycocotools on the exported COCO pair), --thresholds run|F|class=F, and the JSON's curves, confusion
matrix, bootstrap intervals and recommended thresholds. Segm AP is recorded during training too."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from detcore.cli import main
from detcore.train.runs import Run
from tests.maskrun import copy_run

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def mask_run(mask_run_template, tmp_path):
    """A copy, for tests that write into the run."""
    run, data = mask_run_template
    return copy_run(run, tmp_path / "mask-run"), data


def pycocotools_stats(gt_path, dt_path, iou_type):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(str(dt_path)), iou_type)
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return ev.stats


SUMMARY = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def test_training_a_mask_model_records_segm_ap_beside_box_ap(mask_run_template):
    from detcore import viz

    run, _ = mask_run_template
    metrics = Run(run).events("epoch")[-1]["metrics"]
    for key in ("AP", "AP50", "segm_AP", "segm_AP50", "segm_AR100"):
        assert key in metrics and (metrics[key] is None or 0.0 <= metrics[key] <= 1.0), (key, metrics)
    figure = viz.epoch_metrics_figure([{"type": "epoch", **r} for r in Run(run).events("epoch")])
    assert [t.name for t in figure.data] == ["AP", "AP50", "segm_AP", "segm_AP50"]


def test_segm_json_has_the_bbox_keys_and_equals_pycocotools_on_the_exported_pair(mask_run_template, tmp_path):
    run, data = mask_run_template
    code, out, err = cli("evaluate", str(run), "--data", str(data), "--iou-type", "segm", "--json",
                         "--export-coco", str(tmp_path / "coco"))
    assert code == 0, err
    segm = json.loads(out)
    code, out, err = cli("evaluate", str(run), "--data", str(data), "--json")
    bbox = json.loads(out)
    assert segm["iou_type"] == "segm" and bbox["iou_type"] == "bbox"
    assert set(segm) == set(bbox) and set(segm["per_class"][0]) == set(bbox["per_class"][0])
    assert segm["images"] == bbox["images"] == len(Run(run).split_ids("test"))
    # the exported pair carries RLE masks, and pycocotools on it gives our numbers, segm and bbox
    gt = json.loads((tmp_path / "coco" / "gt.json").read_text())
    dt = json.loads((tmp_path / "coco" / "detections.json").read_text())
    assert all(isinstance(a["segmentation"]["counts"], str) for a in gt["annotations"] + dt)
    for result, iou_type in ((segm, "segm"), (bbox, "bbox")):
        stats = pycocotools_stats(tmp_path / "coco" / "gt.json", tmp_path / "coco" / "detections.json", iou_type)
        ours = [-1 if result[k] is None else result[k] for k in SUMMARY]
        np.testing.assert_allclose(ours, stats, atol=1e-9, err_msg=iou_type)


def test_thresholds_run_number_and_per_class(mask_run):
    from detcore.evaluation import evaluate_run

    run, data = mask_run
    result = evaluate_run(run, data)
    code, out, _ = cli("evaluate", str(run), "--data", str(data), "--json", "--thresholds", "0.2", "--bootstrap", "0")
    rows = json.loads(out)["per_class"]
    expected = result.per_class(0.2)
    for row, (_, want) in zip(rows, expected.iterrows()):
        assert row["threshold"] == 0.2
        for key in ("precision", "recall", "f1"):
            assert key in row
            assert (row[key] is None and np.isnan(want[key])) or row[key] == pytest.approx(want[key])
    Run(run).save_thresholds(global_threshold=0.3, per_class={"person": 0.07})
    code, out, _ = cli("evaluate", str(run), "--data", str(data), "--json", "--thresholds", "run", "--bootstrap", "0")
    report = json.loads(out)
    assert report["thresholds"] == {"source": "run", "per_class": {"person": 0.07}}
    assert report["per_class"][0]["threshold"] == 0.07
    assert report["per_class"][0]["recall"] == pytest.approx(_or_nan(result.per_class(0.07).loc[0, "recall"]))
    code, out, _ = cli("evaluate", str(run), "--data", str(data), "--thresholds", "person=0.07")
    assert code == 0 and "threshol" in out.splitlines()[4] and "0.070" in out  # the text table shows them


def _or_nan(v):
    return None if np.isnan(v) else v


def test_json_holds_curves_confusion_intervals_and_recommendations(mask_run_template):
    run, data = mask_run_template
    code, out, _ = cli("evaluate", str(run), "--data", str(data), "--json", "--thresholds", "0.1",
                       "--target-precision", "0.5", "--bootstrap", "20")
    report = json.loads(out)
    assert list(report["curves"]) == ["person"]
    pr, sweep = report["curves"]["person"]["pr"], report["curves"]["person"]["threshold"]
    assert len(pr["recall"]) == len(pr["precision"]) == 101
    assert len(sweep["threshold"]) == len(sweep["f1"]) > 0 and sweep["threshold"] == sorted(sweep["threshold"], reverse=True)
    cm = report["confusion_matrix"]
    assert cm["labels"] == ["person", "background"] and np.array(cm["matrix"]).shape == (2, 2)
    n_gt = report["per_class"][0]["n_gt"]
    assert sum(cm["matrix"][0]) == n_gt  # every ground-truth object lands in its row once
    assert report["bootstrap"]["n_boot"] == 20 and "AP_ci_low" in report["per_class"][0]
    assert report["recommended_thresholds"]["target_precision"]["target"] == 0.5
    assert set(report["recommended_thresholds"]["f1"]) == {"person"}


def test_bad_requests_are_one_line_errors(mask_run_template, tmp_path):
    from tests.reliability.tinydata import TINY

    run, data = mask_run_template
    code, _, err = cli("evaluate", str(run), "--data", str(data), "--thresholds", "car=0.5")
    assert code == 2 and err == "error: --thresholds: unknown class 'car'; the classes are person\n"  # before any work
    code, _, err = cli("evaluate", str(run), "--data", str(data), "--thresholds", "1.5")
    assert code == 2 and "[0, 1]" in err
    code, _, err = cli("evaluate", "--gt", "a.json", "--dt", "b.json", "--thresholds", "run")
    assert code == 2 and "run directory" in err
    # segm needs a mask model: a box model's run says so instead of failing on missing masks
    box_run = copy_run(run, tmp_path / "box-run")
    config = json.loads((box_run / "config.json").read_text())
    (box_run / "config.json").write_text(json.dumps({**config, "model": TINY["model"]}))
    code, _, err = cli("evaluate", str(box_run), "--data", str(data), "--iou-type", "segm")
    assert code == 2 and err.count("\n") == 1 and "segm needs a mask model" in err
