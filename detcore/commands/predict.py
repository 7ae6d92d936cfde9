"""`python -m detcore predict RUN_DIR IMAGE... [--score-threshold T] [--json | --coco OUT.json]`.

Thresholds: ``--score-threshold T`` applies to every class; without it the run's
``thresholds.json`` (``{"global": t, "per_class": {class: t}}``, written by the Evaluate page) is
used per class, falling back to 0.5. Results go to stdout (a table, or JSON with ``--json``);
``--coco`` writes a COCO results file instead. A bad image is an error naming it (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from detcore.errors import ConfigError, DataError

DEFAULT_THRESHOLD = 0.5
THRESHOLDS_FILE = "thresholds.json"


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="run a trained model on images",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", help="training run directory")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--score-threshold", type=float, help="keep detections scoring at least T (all classes)")
    p.add_argument("--checkpoint", default="best", help="best | last | path to a .pt (default: best)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print detections as JSON")
    out.add_argument("--coco", metavar="OUT.json", help="write a COCO results file")
    p.set_defaults(handler=run_predict)


def class_thresholds(run_dir: Path, classes: list[str], override: float | None) -> list[float]:
    """One score threshold per class, from the flag, the run's thresholds.json, or the default."""
    if override is not None:
        if not 0.0 <= override <= 1.0:
            raise ConfigError("--score-threshold", f"must be in [0, 1] (got {override})")
        return [override] * len(classes)
    path = Path(run_dir) / THRESHOLDS_FILE
    if not path.is_file():
        return [DEFAULT_THRESHOLD] * len(classes)
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(path, f"unreadable thresholds file: {e}") from None
    if not isinstance(saved, dict):
        raise DataError(path, "expected a JSON object")
    per_class = saved.get("per_class", saved if "global" not in saved else {})
    fallback = saved.get("global", DEFAULT_THRESHOLD)
    values = [per_class.get(c, fallback) for c in classes]
    if not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in values):
        raise DataError(path, f"thresholds must be numbers in [0, 1], got {values}")
    return [float(v) for v in values]


def run_predict(args) -> int:
    from detcore.data.images import load_rgb
    from detcore.inference import Predictor

    paths = [Path(p) for p in args.images]
    images = [load_rgb(p) for p in paths]  # DataError names a bad file before the model loads
    predictor = Predictor.from_run(args.run_dir, checkpoint=args.checkpoint, device=args.device)
    thresholds = np.asarray(class_thresholds(Path(args.run_dir), predictor.classes, args.score_threshold), np.float32)
    print(f"predicting {len(images)} image(s) with {predictor.checkpoint_path}", file=sys.stderr)
    raw = predictor.predict(images, image_ids=[str(p) for p in paths], score_floor=float(thresholds.min()))
    dets = [d.above(thresholds) for d in raw]
    if args.coco:
        return _write_coco(Path(args.coco), paths, images, dets, predictor.classes)
    if args.json:
        print(json.dumps(_as_json(paths, images, dets, predictor.classes)))
    else:
        print(_as_table(dets, predictor.classes))
    return 0


def _as_json(paths, images, dets, classes) -> list[dict]:
    return [{"image": str(p), "width": int(img.shape[1]), "height": int(img.shape[0]),
             "detections": [{"class": classes[int(l)], "label": int(l), "score": round(float(s), 4),
                             "box": [round(float(v), 1) for v in b]}
                            for b, s, l in zip(d.boxes, d.scores, d.labels)]}
            for p, img, d in zip(paths, images, dets)]


def _as_table(dets, classes) -> str:
    rows = [f"{'image':<32} {'class':<24} {'score':>6}  box (x0, y0, x1, y1)"]
    for d in dets:
        if not len(d):
            rows.append(f"{_short(d.image_id):<32} {'(nothing above threshold)':<24}")
        order = np.argsort(-d.scores) if len(d) else []
        for k in order:
            box = ", ".join(f"{v:.0f}" for v in d.boxes[k])
            rows.append(f"{_short(d.image_id):<32} {classes[int(d.labels[k])]:<24} {d.scores[k]:>6.3f}  ({box})")
    total = sum(len(d) for d in dets)
    rows.append(f"{total} detection(s) in {len(dets)} image(s)")
    return "\n".join(rows)


def _short(path: str) -> str:
    return path if len(path) <= 32 else "…" + path[-31:]


def _write_coco(out: Path, paths, images, dets, classes) -> int:
    from detcore.atomic import write_json
    from detcore.metrics.export import coco_image_id_map, to_coco_detections

    ids = coco_image_id_map([d.image_id for d in dets])
    write_json(out, to_coco_detections(dets, classes, image_id_map=ids))
    # Which image got which id, so the results file can be joined back to the files.
    listing = [{"id": ids[str(p)], "file_name": str(p), "width": int(img.shape[1]), "height": int(img.shape[0])}
               for p, img in zip(paths, images)]
    write_json(out.with_name(out.stem + ".images.json"), listing)
    print(f"wrote {sum(len(d) for d in dets)} detection(s) to {out} (image ids in {out.stem}.images.json)",
          file=sys.stderr)
    return 0
