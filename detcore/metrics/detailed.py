"""Everything the Evaluate page shows, as one JSON object: ``evaluate --json`` and the page's
"Metrics (JSON)" download both write ``detailed_json``, so the two agree number for number.

On top of the summary contract (``report.result_to_json``: AP..., ``per_class`` with precision /
recall / F1 at the thresholds) it adds the thresholds applied, per-class bootstrap intervals of AP,
PR curves (COCO's 101 recall points, IoU 0.5), P/R/F1 against the score threshold, the confusion
matrix at the thresholds, and the recommended thresholds (F1-optimal and the lowest one reaching a
target precision). Undefined numbers are null.

Threshold specs (``--thresholds``): ``run`` (the run's saved thresholds), ``F`` (one for every class),
``class=F,...`` (named classes; the others 0.5, or a bare ``F`` in the same list).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from detcore.errors import ConfigError
from detcore.metrics.report import result_to_json

DEFAULT_THRESHOLD = 0.5
DEFAULT_TARGET_PRECISION = 0.9
N_BOOT, BOOT_SEED = 200, 0  # the Evaluate page's bootstrap: same replicates, same intervals


def parse_threshold_spec(spec: str, classes: list[str], run_thresholds: list[float] | None = None) -> dict[str, float]:
    """``run`` | ``F`` | ``class=F,...`` (with an optional bare ``F`` for the rest) → {class: threshold}.
    ``run_thresholds`` are the run's saved thresholds in class order (needed for ``run``)."""
    spec = (spec or "").strip()
    if spec == "run":
        if run_thresholds is None:
            raise ConfigError("--thresholds", "'run' needs a run directory (its saved thresholds)")
        return {c: float(t) for c, t in zip(classes, run_thresholds)}
    if not spec:
        raise ConfigError("--thresholds", "give 'run', a number or class=number,...")
    default, named = DEFAULT_THRESHOLD, {}
    for token in filter(None, (t.strip() for t in spec.split(","))):
        name, eq, value = token.rpartition("=")
        if eq and name.strip() not in classes:
            raise ConfigError("--thresholds", f"unknown class {name.strip()!r}; the classes are {', '.join(classes)}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError("--thresholds", f"{token!r} is not a number, class=number or 'run'") from None
        if not 0 <= number <= 1:
            raise ConfigError("--thresholds", f"{token!r}: a threshold is a score in [0, 1]")
        if eq:
            named[name.strip()] = number
        else:
            default = number
    return {c: float(named.get(c, default)) for c in classes}


def _num(v):
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


def _floats(values) -> list:
    return [_num(v) for v in np.asarray(values, dtype=np.float64).tolist()]


def detailed_json(result, thresholds: dict[str, float] | None = None, *, threshold_source: str = "default",
                  target_precision: float = DEFAULT_TARGET_PRECISION, ci: pd.DataFrame | None = None,
                  n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict:
    """The summary contract plus thresholds, CIs, curves, confusion matrix and recommendations.
    ``ci``: an already computed ``result.bootstrap_ci(n_boot, seed)`` table (the page has one)."""
    classes = list(result.classes)
    if thresholds is None:
        thresholds = {c: DEFAULT_THRESHOLD for c in classes}
    out = result_to_json(result, thresholds)
    if ci is None and n_boot > 0:
        ci = result.bootstrap_ci(n_boot=n_boot, seed=seed)
    if ci is not None and not ci.empty:
        by_class = ci.set_index("class")
        for row in out["per_class"]:
            row["AP_ci_low"] = _num(by_class.loc[row["class"], "AP_ci_low"])
            row["AP_ci_high"] = _num(by_class.loc[row["class"], "AP_ci_high"])
        out["bootstrap"] = {"n_boot": int(n_boot), "seed": int(seed), "level": 0.95, "resamples": "images"}
    out["thresholds"] = {"source": threshold_source, "per_class": {c: float(thresholds[c]) for c in classes}}
    curves = {}
    for name in classes:
        pr = result.pr_curve(name)
        sweep = result.threshold_curve(name)
        curves[name] = {"pr": {"iou": 0.5, "recall": _floats(pr["recall"]), "precision": _floats(pr["precision"])},
                        "threshold": {"iou": 0.5, "threshold": _floats(sweep["threshold"]),
                                      "precision": _floats(sweep["precision"]), "recall": _floats(sweep["recall"]),
                                      "f1": _floats(sweep["f1"])}}
    out["curves"] = curves
    matrix = result.confusion_matrix(thresholds)
    out["confusion_matrix"] = {"iou": 0.5, "rows": "ground truth", "columns": "predicted",
                               "labels": [str(c) for c in matrix.columns],
                               "matrix": matrix.to_numpy().astype(int).tolist()}
    out["recommended_thresholds"] = {
        "f1": {c: _num(v) for c, v in result.recommend_thresholds("f1").items()},
        "target_precision": {"target": float(target_precision),
                             "per_class": {c: _num(v) for c, v in
                                           result.recommend_thresholds("precision", float(target_precision)).items()}},
    }
    return out
