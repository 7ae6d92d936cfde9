"""`python -m detcore predict MODEL IMAGE|FOLDER... [--score-threshold T] [--json | --coco OUT.json]`.

MODEL is a training run directory or a file written by ``export`` (``.onnx`` runs with
onnxruntime, TorchScript with torch); both give the same detections. A FOLDER stands for the images
directly inside it (sorted by name). Every image is run on its own, so its detections never depend
on which other images were given.

Thresholds: ``--score-threshold T`` applies to every class; without it a run's saved thresholds
(picked and saved on the Evaluate page) are used per class, falling back to 0.5, and an exported
file uses the thresholds embedded in it. Results go to stdout:
a table, or with ``--json`` the detection document of docs/detections.md (image name and size,
xyxy boxes in pixels, class names, scores, RLE masks, the thresholds applied); ``--coco`` writes a
COCO results file instead. A bad image is an error naming it (exit 2).
``predict RUN [IMAGE...] --benchmark`` times the run's model instead (p50/p95 ms per image, images/s at
batch 1, on the IMAGEs or the run's test images; ``detcore/speed.py``) and saves it with the run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from detcore.errors import ConfigError, DataError
from detcore.train.runs import Run

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="run a trained or exported model on images",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="MODEL", help="training run directory, or an exported .onnx / TorchScript file")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--score-threshold", type=float, help="keep detections scoring at least T (all classes)")
    p.add_argument("--checkpoint", help="for a run: best | last | path to a .pt (default: best)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="for a run (exported files run on the CPU)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the detections as JSON (docs/detections.md)")
    out.add_argument("--coco", metavar="OUT.json", help="write a COCO results file")
    p.add_argument("--benchmark", action="store_true",
                   help="time the model instead (p50/p95 ms per image, images/s at batch 1; detcore/speed.py) on the "
                        "IMAGEs, else on the run's test images; --json prints the record; saved with the run")
    p.set_defaults(handler=run_predict)


def class_thresholds(run_dir: Path, classes: list[str], override: float | None) -> list[float]:
    """One score threshold per class: the flag for every class, else the run's saved thresholds."""
    if override is not None:
        if not (math.isfinite(override) and 0.0 <= override <= 1.0):
            raise ConfigError("--score-threshold", f"must be in [0, 1] (got {override})")
        return [override] * len(classes)
    return Run(run_dir).thresholds().for_classes(classes)


def image_paths(arguments: list[str]) -> list[Path]:
    """The image files named, a folder standing for the images directly inside it (sorted)."""
    paths: list[Path] = []
    for arg in arguments:
        path = Path(arg)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                raise DataError(path, f"no images in this folder (looked for {', '.join(IMAGE_SUFFIXES)})")
            paths += inside
        else:
            paths.append(path)  # load_rgb names a missing or unreadable file
    return paths


def run_predict(args) -> int:
    from detcore.data.images import load_rgb
    from detcore.export.runtime import ExportedModel, exported_kind

    if args.benchmark:
        if exported_kind(args.run_dir) is not None:
            raise ConfigError("--benchmark", f"{args.run_dir} is an exported file; --benchmark times a training run "
                                             "(benchmarks/bench_export.py times exported files)")
        from detcore.speed import benchmark_command

        args.images = [str(p) for p in image_paths(args.images)]
        args.checkpoint = args.checkpoint or "best"
        return benchmark_command(args)
    if not args.images:
        raise ConfigError("IMAGE", "name at least one image or folder (or use --benchmark)")
    paths = image_paths(args.images)
    images = [load_rgb(p) for p in paths]  # DataError names a bad file before the model loads
    ids = [str(p) for p in paths]
    kind = exported_kind(args.run_dir)
    if kind is not None:
        if args.checkpoint:
            raise ConfigError("--checkpoint", f"{args.run_dir} is an exported file; --checkpoint applies to runs only")
        model = ExportedModel.load(args.run_dir)
        classes = model.classes
        thresholds = np.asarray(model.class_thresholds(args.score_threshold), np.float32)
        source = {"source": str(args.run_dir), "format": kind, "model": model.model_name,
                  "checkpoint": model.metadata.get("checkpoint")}
        print(f"predicting {len(images)} image(s) with {args.run_dir} ({kind})", file=sys.stderr)
        raw = model.predict(images, image_ids=ids, score_floor=float(thresholds.min()))
    else:
        from detcore.inference import Predictor

        predictor = Predictor.from_run(args.run_dir, checkpoint=args.checkpoint or "best", device=args.device)
        classes = predictor.classes
        thresholds = np.asarray(class_thresholds(Path(args.run_dir), classes, args.score_threshold), np.float32)
        source = {"source": str(args.run_dir), "format": "run", "model": predictor.model_name,
                  "checkpoint": predictor.checkpoint_path.name}
        print(f"predicting {len(images)} image(s) with {predictor.checkpoint_path}", file=sys.stderr)
        raw = predictor.predict(images, image_ids=ids, score_floor=float(thresholds.min()))
    dets = [d.above(thresholds) for d in raw]
    if args.coco:
        return _write_coco(Path(args.coco), paths, images, dets, classes)
    if args.json:
        from detcore.detection_schema import detections_document

        rows = [(str(p), img.shape[1], img.shape[0], d) for p, img, d in zip(paths, images, dets)]
        print(json.dumps(detections_document(rows, classes=classes, thresholds=thresholds, model=source)))
    else:
        print(_as_table(dets, classes))
    return 0


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
    with_masks = any(d.masks is not None for d in dets)  # Mask R-CNN: segmentations as RLE too
    write_json(out, to_coco_detections(dets, classes, image_id_map=ids, with_masks=with_masks))
    # Which image got which id, so the results file can be joined back to the files.
    listing = [{"id": ids[str(p)], "file_name": str(p), "width": int(img.shape[1]), "height": int(img.shape[0])}
               for p, img in zip(paths, images)]
    write_json(out.with_name(out.stem + ".images.json"), listing)
    print(f"wrote {sum(len(d) for d in dets)} detection(s) to {out} (image ids in {out.stem}.images.json)",
          file=sys.stderr)
    return 0
