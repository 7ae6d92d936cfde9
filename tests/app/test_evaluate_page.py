"""Evaluate page: metrics of a real (tiny) run, threshold tuning from cached matches, saving thresholds."""

import json

import pytest


@pytest.fixture
def evaluate_page(app, trained_run):
    at = app.run()
    at.switch_page("pages/evaluate.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _per_class(at):
    return next(df.value for df in at.dataframe if "AP50" in df.value.columns)


def test_summary_table_and_charts(evaluate_page, trained_run):
    at = evaluate_page
    assert [t.value for t in at.title] == ["Evaluate"]
    assert {m.label for m in at.metric} >= {"AP", "AP50", "AP75", "AR100"}
    table = _per_class(at)
    classes = json.loads((trained_run / "classes.json").read_text())
    assert list(table["class"]) == classes
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl", "n_gt", "n_det", "precision", "recall", "f1",
            "AP_ci_low", "AP_ci_high"} <= set(table.columns)
    assert len(at.get("plotly_chart")) >= 3  # PR, F1-vs-threshold, confusion (+ error image)


def test_threshold_slider_updates_the_table(evaluate_page):
    at = evaluate_page
    at.slider(key="eval_thr_global").set_value(0.3).run()
    assert set(_per_class(at)["threshold"]) == {0.3}
    n_low = _per_class(at)["n_det"].sum()
    at.slider(key="eval_thr_global").set_value(0.9).run()
    assert set(_per_class(at)["threshold"]) == {0.9}
    assert _per_class(at)["n_det"].sum() == n_low  # n_det counts all detections; P/R/F1 use the threshold


def test_f1_optimal_sets_per_class_thresholds_and_saving_writes_the_run(evaluate_page, trained_run, make_png):
    at = evaluate_page
    next(b for b in at.button if b.label == "F1-optimal per class").click().run()
    assert not at.exception
    assert at.toggle(key="eval_use_per_class").value is True
    table = _per_class(at)
    for _, row in table.iterrows():
        if row["best_f1_threshold"] is not None and row["best_f1_threshold"] == row["best_f1_threshold"]:
            assert row["threshold"] == pytest.approx(row["best_f1_threshold"])
    next(b for b in at.button if b.label == "Save thresholds to the run").click().run()
    saved = json.loads((trained_run / "thresholds.json").read_text())
    assert set(saved["per_class"]) == set(table["class"])
    assert saved["per_class"] == pytest.approx(dict(zip(table["class"], table["threshold"])), abs=1e-4)

    # The Predict page picks them up as its per-class defaults.
    at.switch_page("pages/predict.py").run()
    at.file_uploader(key="predict_uploads").set_value(("a.png", make_png(0), "image/png")).run()
    assert at.toggle(key="predict_use_per_class").value is True
    first = table["class"].iloc[0]
    assert at.number_input(key=f"predict_thr_{first}").value == pytest.approx(saved["per_class"][first])
