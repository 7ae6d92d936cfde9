"""Compare runs on the same images: the numbers behind the Compare page and ``python -m detcore compare``.

A comparison evaluates every run on one dataset and one set of image ids (a split is a set of image
ids, ``Run.split_ids``). When the runs' test splits differ it refuses (``SplitMismatch``, saying how
they differ) unless asked to use the images they have in common (``on="intersection"``) or one run's
split (``on=<run name>``; images another run trained on are named in the notes, since that run has
seen them). Then, per run: the COCO summary, per class AP / AP50 and P/R/F1 at the run's own saved
thresholds; against the first run (the baseline) the difference of each with a paired bootstrap
interval (``detcore.metrics.paired``: one resample of images serves every run); the images ordered
by how differently the runs err on them; model size and the stored speed measurement.

Torch-free: ``compare_evaluations`` works on predictions already made; ``compare_runs`` gets them
through ``detcore.evaluation`` (cached per run and split), importing it only when called.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from detcore.errors import DataError, DetcoreError
from detcore.metrics import EvaluationResult, evaluate_detections
from detcore.metrics.errors import ERROR_KINDS
from detcore.metrics.paired import METRICS, MIN_OBJECTS, PairedDelta, paired_bootstrap
from detcore.structures import Detections, Sample
from detcore.train.runs import Run

SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
DEFAULT_BOOT = 1000
SAME = "same"
INTERSECTION = "intersection"


class SplitMismatch(DataError):
    """The runs' splits hold different images; ``sizes`` / ``common`` say how (for the page's offer)."""

    def __init__(self, file, problem: str, *, sizes: dict[str, int], common: int):
        super().__init__(file, problem)
        self.sizes, self.common = sizes, common


def run_names(run_dirs) -> list[str]:
    """Display names: the folder names, made unique with the parent folder where two collide."""
    paths = [Path(d) for d in run_dirs]
    names = [p.name for p in paths]
    out = []
    for p, name in zip(paths, names):
        out.append(name if names.count(name) == 1 else f"{p.parent.name}/{name}")
    if len(set(out)) != len(out):
        raise DataError(str(paths[0]), "the same run is listed twice")
    return out


@dataclass(frozen=True)
class ComparisonImages:
    """Which images the runs are compared on and why."""

    ids: list[str]
    basis: str  # "same" (all splits equal) | "intersection" | the run whose split is used
    part: str
    notes: tuple[str, ...] = ()


def choose_images(runs: list[Run], names: list[str], part: str = "test", on: str = SAME) -> ComparisonImages:
    """The image ids to compare on. ``on``: "same" (refuse unless every run's ``part`` holds the same
    images), "intersection", or a run's name (that run's ``part``)."""
    splits = {name: run.split_ids(part) for name, run in zip(names, runs)}
    sets = {name: set(ids) for name, ids in splits.items()}
    first = names[0]
    common = [i for i in splits[first] if all(i in s for s in sets.values())]
    if on == SAME:
        if all(s == sets[first] for s in sets.values()):
            return ComparisonImages(list(splits[first]), SAME, part)
        sizes = {n: len(s) for n, s in sets.items()}
        described = ", ".join(f"{n}: {k}" for n, k in sizes.items())
        raise SplitMismatch(runs[1].path, f"the runs' {part!r} splits hold different images ({described}; "
                                          f"{len(common)} in common): compare on the images in common or on one "
                                          "run's split", sizes=sizes, common=len(common))
    if on == INTERSECTION:
        if not common:
            raise DataError(runs[1].path, f"the runs' {part!r} splits have no image in common")
        return ComparisonImages(common, INTERSECTION, part)
    if on not in splits:
        raise DataError("on", f"{on!r} is neither 'same', 'intersection' nor one of the runs ({', '.join(names)})")
    ids = list(splits[on])
    notes = []
    for name, run in zip(names, runs):
        if name == on:
            continue
        split = run.split()
        seen = [i for i in ids if i in set(split.train) | set(split.val)]
        if seen:
            notes.append(f"{len(seen)} of the {len(ids)} images were in {name}'s training or validation part "
                         f"(first: {seen[0]}): its numbers on them are optimistic")
    return ComparisonImages(ids, on, part, tuple(notes))


@dataclass
class RunPredictions:
    """One run's detections on the comparison images (samples in the comparison's order)."""

    name: str
    run: Run
    samples: list[Sample]
    detections: list[Detections]
    info: dict = field(default_factory=dict)  # model size etc. (``run_info``)


def _clean(v):
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) else v


def _delta_json(d: PairedDelta, metric: str) -> dict:
    prefix = "AP" if metric == "AP" else metric
    sig_key = "significant" if metric == "AP" else f"{metric}_significant"
    return {f"{prefix}_delta": d.delta, f"{prefix}_delta_ci": list(d.ci) if d.ci else None, sig_key: d.significant}


class Comparison:
    """Runs evaluated on the same images, with paired differences against ``names[0]``."""

    def __init__(self, *, names: list[str], runs: list[Run], predictions: list[RunPredictions],
                 results: list[EvaluationResult], thresholds: list[np.ndarray], images: ComparisonImages,
                 paired: list[dict[str, list[PairedDelta]]], data: str | None, n_boot: int, seed: int, level: float):
        self.names, self.runs, self.predictions, self.results = names, runs, predictions, results
        self.thresholds, self.images, self.paired, self.data = thresholds, images, paired, data
        self.n_boot, self.seed, self.level = n_boot, seed, level
        self.classes = list(results[0].classes)
        self.tables = [r.per_class(t) for r, t in zip(results, thresholds)]

    @property
    def baseline(self) -> str:
        return self.names[0]

    def summary(self) -> dict[str, dict[str, float | None]]:
        """COCO summary numbers per run: ``{"AP": {run: v}, ...}``."""
        out = {}
        sums = [r.summary() for r in self.results]
        for key in SUMMARY_KEYS:
            out[key] = {n: s.get(key) for n, s in zip(self.names, sums)}
        return out

    def per_class(self) -> list[dict]:
        """One row per class: values per run, and the paired differences (second run against the first
        at the top level, every run against the first under ``vs_baseline``)."""
        rows = []
        for k, cls in enumerate(self.classes):
            row: dict = {"class": cls, "n_gt": int(self.tables[0]["n_gt"].iloc[k])}
            for col, key in (("AP", "AP"), ("AP50", "AP50"), ("threshold", "threshold"), ("precision", "precision"),
                             ("recall", "recall"), ("f1", "f1")):
                row[key] = {n: _clean(t[col].iloc[k]) for n, t in zip(self.names, self.tables)}
            row["n_det"] = {n: int(t["n_det"].iloc[k]) for n, t in zip(self.names, self.tables)}
            vs = {}
            for b, name in enumerate(self.names[1:]):
                entry = {}
                for metric in METRICS:
                    entry.update(_delta_json(self.paired[b][metric][k], metric))
                vs[name] = entry
            row.update(vs[self.names[1]])
            row["vs_baseline"] = vs
            rows.append(row)
        return rows

    def per_class_table(self) -> pd.DataFrame:
        """The per-class rows as one wide table (what the page shows): a column per run and metric,
        then each compared run's differences, intervals and flags."""
        records = []
        for row in self.per_class():
            rec = {"class": row["class"], "n_gt": row["n_gt"]}
            for metric in ("AP", "AP50"):
                for name in self.names:
                    rec[f"{metric} {name}"] = row[metric][name]
            for name in self.names:
                rec[f"thr {name}"] = row["threshold"][name]
                rec[f"P {name}"] = row["precision"][name]
                rec[f"R {name}"] = row["recall"][name]
                rec[f"F1 {name}"] = row["f1"][name]
            for name, d in row["vs_baseline"].items():
                suffix = "" if len(self.names) == 2 else f" {name}"
                for metric, label in (("AP", "AP"), ("AP50", "AP50"), ("f1", "F1")):
                    sig = d["significant" if metric == "AP" else f"{metric}_significant"]
                    ci = d[f"{metric}_delta_ci"]
                    rec[f"Δ{label}{suffix}"] = d[f"{metric}_delta"]
                    rec[f"Δ{label} low{suffix}"] = ci[0] if ci else None
                    rec[f"Δ{label} high{suffix}"] = ci[1] if ci else None
                    rec[f"Δ{label} significant{suffix}"] = sig
            records.append(rec)
        return pd.DataFrame(records)

    def disagreement(self) -> pd.DataFrame:
        """Images ordered by how differently the runs err on them: per run the errors at its own
        thresholds (false positives of every kind + missed objects), ``difference`` = last run − first
        (two runs) and ``spread`` = max − min; sorted by spread, then by total errors."""
        counts = {}
        for name, result, thr in zip(self.names, self.results, self.thresholds):
            errors = result.errors(thr)
            bad = errors[errors["kind"].isin(ERROR_KINDS)]
            counts[name] = bad.groupby("image_id", observed=False).size().reindex(result.flat.image_ids, fill_value=0)
        table = pd.DataFrame({f"errors {n}": counts[n].to_numpy() for n in self.names},
                             index=pd.Index(self.results[0].flat.image_ids, name="image_id"))
        values = table.to_numpy()
        table["difference"] = values[:, -1] - values[:, 0]
        table["spread"] = values.max(axis=1) - values.min(axis=1)
        table["total"] = values.sum(axis=1)
        table = table.sort_values(["spread", "total"], ascending=[False, False], kind="stable")
        return table.drop(columns="total").reset_index()

    def to_json(self, *, top_images: int = 20) -> dict:
        """The ``compare --json`` document (docs/architecture.md, "Command line")."""
        runs = []
        for name, run, pred, thr in zip(self.names, self.runs, self.predictions, self.thresholds):
            runs.append({"name": name, "path": str(run.path), **pred.info,
                         "thresholds": {c: float(t) for c, t in zip(self.classes, thr)},
                         "summary": {k: v[name] for k, v in self.summary().items()}})
        disagree = self.disagreement().head(top_images)
        return {
            "runs": runs, "baseline": self.baseline, "classes": self.classes, "data": self.data,
            "split": {"part": self.images.part, "basis": self.images.basis, "images": len(self.images.ids),
                      "notes": list(self.images.notes)},
            "bootstrap": {"replicates": self.n_boot, "seed": self.seed, "level": self.level, "resampled": "images",
                          "paired": True, "min_objects": MIN_OBJECTS},
            "summary": self.summary(),
            "per_class": self.per_class(),
            "disagreement": [{"image_id": str(r["image_id"]),
                              "errors": {n: int(r[f"errors {n}"]) for n in self.names},
                              "difference": int(r["difference"]), "spread": int(r["spread"])}
                             for r in disagree.to_dict(orient="records")],
        }

    def detections_of(self, name: str, image_id: str) -> tuple[Sample, Detections]:
        pred = self.predictions[self.names.index(name)]
        k = [s.image_id for s in pred.samples].index(image_id)
        return pred.samples[k], pred.detections[k]


def compare_evaluations(predictions: list[RunPredictions], images: ComparisonImages, *, data: str | None = None,
                        thresholds: list | None = None, n_boot: int = DEFAULT_BOOT, seed: int = 0,
                        level: float = 0.95, iou_type: str = "bbox") -> Comparison:
    """The comparison of runs whose predictions are already made on ``images.ids`` (any order)."""
    if len(predictions) < 2:
        raise DataError("compare", "pick at least two runs to compare")
    classes = predictions[0].run.classes()
    ordered = []
    for p in predictions:
        if p.run.classes() != classes:
            raise DataError(p.run.path, f"its classes {p.run.classes()} differ from {predictions[0].name}'s "
                                        f"{classes}: runs are compared class by class")
        by_id = {s.image_id: (s, d) for s, d in zip(p.samples, p.detections)}
        missing = [i for i in images.ids if i not in by_id]
        if missing:
            raise DataError(p.run.path, f"has no predictions for {len(missing)} comparison image(s) (first: {missing[0]})")
        ordered.append(RunPredictions(p.name, p.run, [by_id[i][0] for i in images.ids],
                                      [by_id[i][1] for i in images.ids], p.info))
    results = [evaluate_detections(p.samples, p.detections, classes, iou_type=iou_type) for p in ordered]
    if thresholds is None:
        thresholds = [np.asarray(p.run.thresholds().for_classes(classes), np.float64) for p in ordered]
    thresholds = [np.asarray(t, np.float64) for t in thresholds]
    paired = paired_bootstrap(results, thresholds, n_boot=n_boot, seed=seed, level=level)
    return Comparison(names=[p.name for p in ordered], runs=[p.run for p in ordered], predictions=ordered,
                      results=results, thresholds=thresholds, images=images, paired=paired, data=data,
                      n_boot=n_boot, seed=seed, level=level)


def run_info(run: Run) -> dict:
    """What the comparison says about a run besides metrics, without loading the model: model name,
    checkpoint file and size, epochs done, and the stored speed measurement (``predict --benchmark``)."""
    config = run.config()
    info: dict = {"model": config.model, "epochs": run.epochs_done(), "checkpoint": None, "checkpoint_mb": None,
                  "speed": None}
    try:
        info["speed"] = run.benchmark()
    except DetcoreError as e:  # a damaged benchmark.json costs the speed column, not the comparison
        info["speed_problem"] = str(e)
    try:
        path = run.checkpoint("best")
        info["checkpoint"], info["checkpoint_mb"] = path.name, path.stat().st_size / 2**20
    except (DetcoreError, OSError) as e:  # a run without a checkpoint yet: say so in its row
        info["checkpoint_problem"] = str(e)
    return info


def default_predictions(run: Run, data: str | None, ids: list[str], part: str,
                        progress=None) -> tuple[list[Sample], list[Detections]]:
    """The run's detections on ``ids`` of ``data``: from its cached ``part`` predictions when the ids are
    in its own split, else predicted on those images (cached too)."""
    from detcore import evaluation  # torch: runs the model (import policy, docs/architecture.md)

    own = set(run.split_ids(part))
    if set(ids) <= own:
        return evaluation.run_predictions(run.path, data, split=part, progress=progress)
    return evaluation.image_predictions(run.path, data, ids, progress=progress)


def default_data(run: Run) -> str:
    data = run.config().data
    if not data:
        raise DataError(run.path, "the run's config names no dataset; give the data to compare on")
    return data


def compare_runs(run_dirs, data: str | Path | None = None, *, part: str = "test", on: str = SAME,
                 n_boot: int = DEFAULT_BOOT, seed: int = 0, level: float = 0.95, thresholds: list | None = None,
                 predict: Callable | None = None, sizes: Callable | None = None, progress=None) -> Comparison:
    """Compare runs (the first is the baseline) on ``data`` (default: the first run's dataset).

    ``predict(run, data, ids, part, progress=)`` gives a run's (samples, detections), by default the real
    model's (cached); ``sizes(run)``, when given, a dict of model facts (e.g. ``detcore.speed.model_size``)
    merged into the run's info. ``progress(run_index, done, total)`` follows the model runs."""
    runs = [Run(d) for d in run_dirs]
    if len(runs) < 2:
        raise DataError("compare", "pick at least two runs to compare")
    for run in runs:
        if not run.exists():
            raise DataError(run.path, "is not a run directory")
    names = run_names(run_dirs)
    data = str(data) if data is not None else default_data(runs[0])
    images = choose_images(runs, names, part, on)
    predict = predict or default_predictions
    preds = []
    for i, (name, run) in enumerate(zip(names, runs)):
        step = None if progress is None else (lambda done, total, i=i: progress(i, done, total))
        samples, dets = predict(run, data, images.ids, part, progress=step)
        info = run_info(run)
        if sizes is not None:
            info.update(sizes(run))
        preds.append(RunPredictions(name, run, samples, dets, info))
    return compare_evaluations(preds, images, data=data, thresholds=thresholds, n_boot=n_boot, seed=seed, level=level)
