"""The detailed report (`evaluate --json` and the Evaluate page's Metrics download) is the result's own
numbers, and threshold specs parse the way `--thresholds` documents them."""

import json

import numpy as np
import pytest

from detcore.errors import ConfigError
from detcore.metrics import evaluate_detections
from detcore.metrics.detailed import detailed_json, parse_threshold_spec
from tests.metrics.cocogen import random_case

CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]


@pytest.mark.parametrize("spec, expected", [
    ("0.3", [0.3, 0.3, 0.3]),
    ("without_mask=0.7", [0.5, 0.7, 0.5]),
    ("0.2, with_mask=0.9", [0.9, 0.2, 0.2]),
    ("with_mask=0.9,0.2", [0.9, 0.2, 0.2]),
    ("run", [0.1, 0.2, 0.3]),
])
def test_threshold_specs(spec, expected):
    assert parse_threshold_spec(spec, CLASSES, [0.1, 0.2, 0.3]) == dict(zip(CLASSES, expected))


@pytest.mark.parametrize("spec, message", [
    ("", "give 'run'"), ("run", "needs a run directory"), ("cat=0.4", "unknown class 'cat'"),
    ("high", "not a number"), ("with_mask=2", "[0, 1]"), ("-0.1", "[0, 1]"),
])
def test_bad_threshold_specs_name_the_flag(spec, message):
    with pytest.raises(ConfigError) as err:
        parse_threshold_spec(spec, CLASSES, None)
    assert err.value.file == "--thresholds" and message in err.value.problem


@pytest.mark.parametrize("seed", range(3))
def test_report_is_the_results_own_numbers(seed):
    samples, dets, classes = random_case(np.random.default_rng(seed), n_images=6, n_classes=3)
    result = evaluate_detections(samples, dets, classes)
    thresholds = {c: t for c, t in zip(classes, (0.2, 0.5, 0.8))}
    report = json.loads(json.dumps(detailed_json(result, thresholds, target_precision=0.6, n_boot=30, seed=1),
                                   allow_nan=False))
    table = result.per_class(thresholds)
    ci = result.bootstrap_ci(n_boot=30, seed=1)
    for row, (_, want), (_, interval) in zip(report["per_class"], table.iterrows(), ci.iterrows()):
        for key in ("threshold", "precision", "recall", "f1", "AP", "AP_ci_low", "AP_ci_high"):
            value = want[key] if key in want else interval[key]
            assert row[key] == (None if np.isnan(value) else pytest.approx(value)), key
    assert report["thresholds"]["per_class"] == thresholds
    assert report["confusion_matrix"]["matrix"] == result.confusion_matrix(thresholds).to_numpy().tolist()
    assert report["recommended_thresholds"]["f1"] == result.recommend_thresholds("f1")
    assert report["recommended_thresholds"]["target_precision"]["per_class"] == \
        result.recommend_thresholds("precision", 0.6)
    for name in classes:
        sweep = result.threshold_curve(name)
        assert report["curves"][name]["threshold"]["threshold"] == pytest.approx(sweep["threshold"].tolist())
        pr = result.pr_curve(name)["precision"].to_numpy()
        got = np.array([np.nan if v is None else v for v in report["curves"][name]["pr"]["precision"]], float)
        np.testing.assert_allclose(got, pr)
