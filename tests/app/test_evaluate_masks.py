"""Evaluate page for issue 10: the split parts a run really has, the bbox / segm toggle of a mask run
(the same table, curves, confusion and error browser, with masks drawn at a mask-threshold slider),
and parity with the CLI: `evaluate RUN --json --thresholds run` shows the page's per-class P/R/F1."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from tests.app.conftest import no_exceptions
from tests.maskrun import copy_run

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools


def _per_class(at) -> pd.DataFrame:
    return next(df.value for df in at.dataframe if "AP50" in df.value.columns)


def _cli_json(*argv) -> dict:
    from detcore.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["evaluate", *argv, "--json"]) == 0
    return json.loads(out.getvalue())


def _open_evaluate(app, run_dir):
    at = app.run()
    at.session_state["run_dir"] = str(run_dir)
    at.switch_page("pages/evaluate.py").run()
    no_exceptions(at)
    return at


def _same_prf(table: pd.DataFrame, report: dict) -> None:
    for row, (_, want) in zip(report["per_class"], table.iterrows()):
        assert row["class"] == want["class"]
        for key in ("threshold", "precision", "recall", "f1", "AP", "AP_ci_low", "AP_ci_high"):
            assert (row[key] is None and pd.isna(want[key])) or row[key] == pytest.approx(float(want[key])), key


@pytest.fixture
def mask_run(mask_run_template):
    from detcore import paths

    run, data = mask_run_template
    return copy_run(run, paths.runs_root() / "mask-tiny"), data


def test_mask_run_toggles_between_boxes_and_masks(app, mask_run):
    run_dir, data = mask_run
    at = _open_evaluate(app, run_dir)
    split = at.get("button_group")[0]  # the Split control lists the run's parts, test first
    assert [o for o in split.proto.options] and [o.content for o in split.proto.options] == ["test", "val", "train"]
    toggle = next(g for g in at.get("button_group") if g.proto.label == "IoU type")
    assert [o.content for o in toggle.proto.options] == ["boxes (bbox)", "masks (segm)"]
    bbox_table = _per_class(at)
    assert at.slider(key="eval_mask_threshold").value == 0.5  # the error browser's mask threshold
    toggle.set_value("segm").run()
    no_exceptions(at)
    segm_table = _per_class(at)
    assert list(segm_table.columns) == list(bbox_table.columns) and list(segm_table["class"]) == ["person"]
    report = _cli_json(str(run_dir), "--data", str(data), "--iou-type", "segm", "--thresholds", "run")
    assert report["iou_type"] == "segm"
    _same_prf(segm_table, report)
    assert len(at.get("plotly_chart")) >= 3  # PR, F1, confusion (+ the error picture)
    at.slider(key="eval_mask_threshold").set_value(0.8).run()
    no_exceptions(at)


def test_page_per_class_prf_equals_evaluate_json_with_the_runs_thresholds(app, trained_run):
    from detcore.train.runs import Run

    classes = Run(trained_run).classes()
    Run(trained_run).save_thresholds(global_threshold=0.3, per_class={classes[0]: 0.12, classes[1]: 0.6})
    at = _open_evaluate(app, trained_run)
    split = at.get("button_group")[0]
    assert [o.content for o in split.proto.options] == ["test", "train"]  # no validation part: not offered
    assert not [g for g in at.get("button_group") if g.proto.label == "IoU type"]  # boxes only
    table = _per_class(at)
    assert table["threshold"].tolist() == pytest.approx(Run(trained_run).thresholds().for_classes(classes))
    report = _cli_json(str(trained_run), "--thresholds", "run")
    _same_prf(table, report)
    # the page's Metrics (JSON) download is that same report
    from ui.evaluate_options import metrics_json
    from ui.loaders import load_evaluation

    page_report = json.loads(metrics_json(load_evaluation(trained_run, "test"), dict(zip(classes, table["threshold"])),
                                          0.9))
    for key in ("per_class", "curves", "confusion_matrix", "recommended_thresholds", "AP", "AP50"):
        assert page_report[key] == report[key], key
    assert np.isclose(page_report["AP"] or 0, report["AP"] or 0)
