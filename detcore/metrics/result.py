"""``evaluate_detections`` and ``EvaluationResult``: the one object the UI and the CLI read.

Matching runs once; everything after it (tables, curves, thresholds, confusion, errors,
bootstrap) reads the cached match records.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from detcore.errors import ConfigError, DataError
from detcore.metrics import coco
from detcore.metrics.bootstrap import bootstrap_class_ap
from detcore.metrics.confusion import confusion_matrix
from detcore.metrics.errors import classify_errors, worst_images
from detcore.metrics.inputs import FlatInputs, flatten_inputs
from detcore.metrics.overlaps import detection_overlaps
from detcore.metrics.report import result_to_json
from detcore.metrics.thresholds import ScoreSweep, best_f1_threshold, build_sweep, prf, recommend
from detcore.structures import Detections, Sample


def evaluate_detections(gt: list[Sample], dets: list[Detections], classes: list[str], *, iou_type: str = "bbox",
                        iou_thresholds=None, max_dets: tuple[int, ...] = coco.MAX_DETS) -> "EvaluationResult":
    """Match and accumulate COCO-style; ``iou_thresholds`` defaults to 0.50:0.95:0.05."""
    if iou_type not in ("bbox", "segm"):
        raise ConfigError("iou_type", f"must be 'bbox' or 'segm', got {iou_type!r}")
    thr = coco.default_iou_thresholds() if iou_thresholds is None else np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    if len(thr) == 0 or not ((thr > 0) & (thr <= 1)).all():
        raise ConfigError("iou_thresholds", "need one or more IoU thresholds in (0, 1]")
    if not classes:
        raise DataError("ground truth", "no classes")
    if len(set(classes)) != len(classes):
        raise DataError("ground truth", f"class names repeat: {list(classes)}")
    return evaluate_flat(flatten_inputs(gt, dets, len(classes), iou_type=iou_type), classes, iou_type=iou_type,
                         iou_thresholds=thr, max_dets=max_dets)


def evaluate_flat(flat: FlatInputs, classes: list[str], *, iou_type: str, iou_thresholds=None,
                  max_dets: tuple[int, ...] = coco.MAX_DETS) -> "EvaluationResult":
    """The engine behind ``evaluate_detections`` for inputs that are already flat arrays."""
    thr = coco.default_iou_thresholds() if iou_thresholds is None else np.asarray(iou_thresholds, dtype=np.float64).reshape(-1)
    areas = list(coco.AREA_RANGES.values())
    records = coco.match_all(flat.gt, flat.dt, num_classes=len(classes), iou_thresholds=thr, area_ranges=areas,
                             max_det=max_dets[-1], pair_iou_fn=flat.pair_iou)
    acc = coco.accumulate(flat.gt, flat.dt, records, num_classes=len(classes), num_thresholds=len(thr), max_dets=max_dets)
    return EvaluationResult(classes=list(classes), flat=flat, records=records, acc=acc, iou_thresholds=thr,
                            max_dets=tuple(max_dets), iou_type=iou_type)


def _none_if_undefined(v: float) -> float | None:
    return None if v is None or v < 0 or np.isnan(v) else float(v)


class EvaluationResult:
    """One evaluation: COCO numbers plus everything derived from the cached match records.

    Thresholds arguments take a scalar, a per-class array, or ``{class name: threshold}``
    (missing classes: 0.5). A detection is kept when its score >= its class threshold.
    Tables are pandas DataFrames; undefined values (no ground truth) are NaN there and null in
    ``to_json()``.
    """

    def __init__(self, *, classes, flat: FlatInputs, records: coco.MatchRecords, acc: coco.Accumulated,
                 iou_thresholds: np.ndarray, max_dets: tuple[int, ...], iou_type: str):
        self.classes = classes
        self.flat = flat
        self.records = records
        self.acc = acc
        self.iou_thresholds = iou_thresholds
        self.max_dets = max_dets
        self.iou_type = iou_type
        self.area_names = list(coco.AREA_RANGES)
        self._sweeps: dict = {}  # per IoU index: ScoreSweep; ('static', t): table columns

    # ---- COCO numbers -------------------------------------------------------------------
    def summary(self) -> dict[str, float | None]:
        """AP, AP50, AP75, APs/m/l, AR1/10/100, ARs/m/l; None where undefined (pycocotools' -1)."""
        raw = coco.summarize(self.acc, self.iou_thresholds, self.max_dets, self.area_names)
        return {k: _none_if_undefined(v) for k, v in raw.items()}

    def class_ap(self, k: int, *, iou: float | None = None, area: str = "all") -> float | None:
        """detectron2's per-class AP: mean of precision entries > -1 at maxDets[-1]; None if none."""
        p = self.acc.precision[:, :, k, self.area_names.index(area), -1]
        if iou is not None:
            p = p[self.iou_thresholds == iou]
        return _none_if_undefined(coco.mean_defined(p)) if p.size else None

    @cached_property
    def n_gt(self) -> np.ndarray:
        g = self.flat.gt
        return np.bincount(g.label[~g.crowd], minlength=len(self.classes))

    @cached_property
    def n_det(self) -> np.ndarray:
        return np.bincount(self.flat.dt.label, minlength=len(self.classes))

    def per_class(self, thresholds=None, *, iou: float = 0.5) -> pd.DataFrame:
        """One row per class: AP, AP50, AP75, APs/m/l, n_gt, n_det, and P/R/F1 at the score
        thresholds (scalar, per-class array or {class: t}; default 0.5) plus the F1-optimal
        threshold, both at ``iou``. Undefined values (no ground truth) are NaN."""
        thr = self._thresholds(thresholds)
        sweep = self.sweep(iou)
        tp, fp = sweep.counts_at(thr)
        p, r, f1 = prf(tp, fp, sweep.n_gt)
        static = self._static_columns(iou)
        return pd.DataFrame({**{k: static[k] for k in ("class", "AP", "AP50", "AP75", "APs", "APm", "APl", "n_gt", "n_det")},
                             "threshold": thr, "precision": p, "recall": r, "f1": f1,
                             "best_f1_threshold": static["best_f1_threshold"]})

    def _static_columns(self, iou: float) -> dict[str, np.ndarray]:
        """The threshold-independent part of the per-class table, built once per IoU."""
        key = ("static", self.iou_index(iou))
        if key not in self._sweeps:
            sweep = self.sweep(iou)
            cols = {"class": np.asarray(self.classes, dtype=object)}
            for name, kw in (("AP", {}), ("AP50", {"iou": 0.5}), ("AP75", {"iou": 0.75}), ("APs", {"area": "small"}),
                             ("APm", {"area": "medium"}), ("APl", {"area": "large"})):
                cols[name] = np.array([_nan(self.class_ap(k, **kw)) for k in range(len(self.classes))])
            cols["n_gt"], cols["n_det"] = self.n_gt.astype(int), self.n_det.astype(int)
            cols["best_f1_threshold"] = np.array([_nan(best_f1_threshold(sweep.curve_arrays(k))) if self.n_gt[k] > 0
                                                  else np.nan for k in range(len(self.classes))])
            self._sweeps[key] = cols
        return self._sweeps[key]

    def _thresholds(self, thresholds) -> np.ndarray:
        """Scalar / per-class array / {class: threshold} → one score threshold per class."""
        if thresholds is None:
            return np.full(len(self.classes), 0.5)
        if isinstance(thresholds, dict):
            unknown = set(thresholds) - set(self.classes)
            if unknown:
                raise ConfigError("thresholds", f"unknown classes {sorted(map(str, unknown))}")
            return np.array([0.5 if thresholds.get(c) is None else float(thresholds[c]) for c in self.classes])
        t = np.asarray(thresholds, dtype=np.float64)
        if t.ndim == 0:
            return np.full(len(self.classes), float(t))
        if t.shape != (len(self.classes),):
            raise ConfigError("thresholds", f"need one threshold per class ({len(self.classes)}), got {t.shape}")
        return t

    # ---- curves and thresholds -----------------------------------------------------------
    def iou_index(self, iou: float) -> int:
        hit = np.flatnonzero(np.isclose(self.iou_thresholds, iou, rtol=0, atol=1e-12))
        if not len(hit):
            raise ConfigError("iou", f"{iou} is not one of the evaluated IoU thresholds {self.iou_thresholds.tolist()}")
        return int(hit[0])

    @cached_property
    def score_order(self) -> np.ndarray:
        return coco.global_score_order(self.flat.dt, self.records)

    def sweep(self, iou: float = 0.5) -> ScoreSweep:
        t = self.iou_index(iou)
        if t not in self._sweeps:
            rec = self.records
            idx = rec.det_index
            self._sweeps[t] = build_sweep(self.flat.dt.label[idx], self.flat.dt.score[idx], rec.det_gt[t] >= 0,
                                          rec.det_ignored[t], self.score_order, self._n_gt_all_area(), len(self.classes))
        return self._sweeps[t]

    def _n_gt_all_area(self) -> np.ndarray:
        g = self.flat.gt
        return np.bincount(g.label[~self.records.gt_ignored[0]], minlength=len(self.classes))

    def class_index(self, cls: str | int) -> int:
        if isinstance(cls, (int, np.integer)):
            if not 0 <= cls < len(self.classes):
                raise ConfigError("class", f"class index {cls} outside 0..{len(self.classes) - 1}")
            return int(cls)
        if cls not in self.classes:
            raise ConfigError("class", f"unknown class {cls!r}")
        return self.classes.index(cls)

    def pr_curve(self, cls: str | int, iou: float | None = 0.5) -> pd.DataFrame:
        """COCO's interpolated precision at the 101 recall points (iou=None: mean over all IoU
        thresholds, i.e. the curve whose area is AP@[.5:.95]); columns recall, precision, score."""
        k = self.class_index(cls)
        p = self.acc.precision[:, :, k, 0, -1]
        s = self.acc.scores[:, :, k, 0, -1]
        if iou is not None:
            t = self.iou_index(iou)
            p, s = p[t : t + 1], s[t : t + 1]
        undefined = (p < 0).all()
        return pd.DataFrame({"recall": coco.recall_thresholds(),
                             "precision": np.nan if undefined else p.mean(axis=0),
                             "score": np.nan if undefined else s.mean(axis=0)})

    def threshold_curve(self, cls: str | int, iou: float = 0.5) -> pd.DataFrame:
        """P/R/F1 (and tp/fp/fn) against the score threshold, from the matches themselves."""
        return self.sweep(iou).curve(self.class_index(cls))

    def figure_curves(self, iou: float = 0.5) -> tuple[dict, dict]:
        """Per class, (recall, precision) and (threshold, F1) arrays: what ``viz.pr_curve_figure`` and
        ``viz.f1_threshold_figure`` draw (the Evaluate page and the HTML report)."""
        pr, f1 = {}, {}
        for name in self.classes:
            curve = self.pr_curve(name, iou)
            pr[name] = (curve["recall"].to_numpy(), curve["precision"].to_numpy())
            sweep = self.threshold_curve(name, iou)
            f1[name] = (sweep["threshold"].to_numpy(), sweep["f1"].to_numpy())
        return pr, f1

    def recommend_thresholds(self, mode: str = "f1", target: float | None = None, *, iou: float = 0.5) -> dict[str, float | None]:
        sweep = self.sweep(iou)
        return {c: (recommend(sweep.curve_arrays(k), mode, target) if self.n_gt[k] > 0 else None)
                for k, c in enumerate(self.classes)}

    # ---- deeper views (confusion, errors, bootstrap) ----------------------------------------
    @cached_property
    def overlaps(self):
        return detection_overlaps(self.flat, self.records.det_index)

    def confusion_matrix(self, thresholds=None, iou: float = 0.5) -> pd.DataFrame:
        return confusion_matrix(self, self._thresholds(thresholds), iou)

    def errors(self, thresholds=None, iou: float = 0.5) -> pd.DataFrame:
        return classify_errors(self, self._thresholds(thresholds), iou)

    def worst_images(self, thresholds=None, kind: str | None = None, *, iou: float = 0.5) -> pd.DataFrame:
        return worst_images(self.errors(thresholds, iou), kind)

    def bootstrap_ci(self, n_boot: int = 200, seed: int = 0, *, iou: float | None = None) -> pd.DataFrame:
        return bootstrap_class_ap(self, n_boot=n_boot, seed=seed, iou=iou)

    def to_json(self, thresholds=None) -> dict:
        return result_to_json(self, thresholds)


def _nan(v) -> float:
    return np.nan if v is None else float(v)

