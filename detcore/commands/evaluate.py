"""`python -m detcore evaluate` — two forms, one output:

    evaluate RUN_DIR --data DATA [--split test] [--iou-type bbox|segm] [--thresholds run|F|class=F,...]
                     [--target-precision P] [--export-coco DIR] [--json]
    evaluate --gt GT_COCO.json --dt DETECTIONS_COCO.json [--iou-type bbox|segm] [--thresholds F|class=F,...] [--json]

Both print per-class AP and precision / recall / F1 at the score thresholds as a table, or with
--json one object: the COCO summary (AP, AP50, ..., per_class) plus the thresholds applied,
bootstrap intervals of per-class AP, PR and F1-vs-threshold curves, the confusion matrix and the
recommended thresholds (F1-optimal, and the lowest reaching --target-precision) — the numbers the
app's Evaluate page shows for the same run, split and thresholds.
"""

from __future__ import annotations

import argparse
import json
import sys

from detcore.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="COCO AP/AR per class for COCO files or a training run",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", nargs="?", help="a training run directory (with --data)")
    p.add_argument("--data", help="dataset the run's split refers to (default: the run's own)")
    p.add_argument("--split", default="test", choices=("test", "val", "train"),
                   help="which part of the run's split to evaluate (default: test)")
    p.add_argument("--checkpoint", default="best", help="best (default), last or a .pt file of the run")
    p.add_argument("--gt", help="COCO ground-truth JSON")
    p.add_argument("--dt", help="COCO results JSON (list of {image_id, category_id, bbox, score[, segmentation]})")
    p.add_argument("--iou-type", choices=("bbox", "segm"), default="bbox",
                   help="match boxes (default) or masks (segm: a Mask R-CNN run on data with masks)")
    p.add_argument("--thresholds", metavar="SPEC",
                   help="score thresholds for precision/recall/F1 and the confusion matrix: 'run' (the run's "
                        "saved thresholds), F (every class) or class=F,... (default 0.5)")
    p.add_argument("--target-precision", type=float, default=0.9, metavar="P",
                   help="recommend per class the lowest threshold reaching this precision (default 0.9)")
    p.add_argument("--bootstrap", type=int, default=200, metavar="N",
                   help="bootstrap replicates for the AP intervals in --json (default 200, as the app; 0 = none)")
    p.add_argument("--export-coco", metavar="DIR",
                   help="also write the split's ground truth and the predictions as COCO JSON (gt.json, "
                        "detections.json; masks as RLE for mask models) into DIR")
    p.add_argument("--no-classifier", action="store_true",
                   help="score the detector alone, without the run's crop classifier (see train --classifier-minutes)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_evaluate)


def _result_for(args):
    if args.gt or args.dt:
        if not (args.gt and args.dt):
            raise ConfigError("--gt/--dt", "give both --gt and --dt")
        if args.run_dir:
            raise ConfigError("run_dir", "give either RUN_DIR --data DATA or --gt/--dt, not both")
        if args.export_coco:
            raise ConfigError("--export-coco", "exports a run's predictions; with --gt/--dt the files exist already")
        from detcore.metrics.coco_files import evaluate_coco_files

        print(f"evaluating {args.dt} against {args.gt} ({args.iou_type})", file=sys.stderr)
        return evaluate_coco_files(args.gt, args.dt, iou_type=args.iou_type), None
    if not args.run_dir:
        raise ConfigError("evaluate", "give RUN_DIR --data DATA, or --gt GT.json --dt DT.json")
    from detcore.evaluation import check_iou_type, evaluate_run, export_coco  # heavy (torch): only for this form
    from detcore.train.runs import Run

    check_iou_type(args.run_dir, args.iou_type)
    print(f"evaluating run {args.run_dir} on split {args.split!r} ({args.iou_type})", file=sys.stderr)
    rescore = not args.no_classifier
    result = evaluate_run(args.run_dir, args.data, split=args.split, checkpoint=args.checkpoint,
                          iou_type=args.iou_type, rescore=rescore)
    if args.export_coco:
        gt, dt = export_coco(args.run_dir, args.export_coco, args.data, split=args.split, checkpoint=args.checkpoint,
                             rescore=rescore)
        print(f"wrote {gt} and {dt}", file=sys.stderr)
    return result, Run(args.run_dir)


def run_evaluate(args) -> int:
    from detcore.metrics.detailed import detailed_json, parse_threshold_spec

    if not 0 < args.target_precision <= 1:
        raise ConfigError("--target-precision", f"must be in (0, 1] (got {args.target_precision})")
    if args.bootstrap < 0:
        raise ConfigError("--bootstrap", f"must be >= 0 (got {args.bootstrap})")
    if (args.thresholds or "").strip() == "run" and (args.gt or args.dt or not args.run_dir):
        raise ConfigError("--thresholds", "'run' needs a run directory (its saved thresholds)")
    thresholds, source = None, "default"
    if args.thresholds and args.run_dir and not (args.gt or args.dt):  # a bad spec fails before the model runs
        from detcore.train.runs import Run

        run = Run(args.run_dir)
        thresholds = parse_threshold_spec(args.thresholds, run.classes(), run.thresholds().for_classes(run.classes()))
    result, run = _result_for(args)
    if args.thresholds:
        if thresholds is None:
            thresholds = parse_threshold_spec(args.thresholds, result.classes, None)
        source = "run" if args.thresholds.strip() == "run" else "given"
    if args.json:
        print(json.dumps(detailed_json(result, thresholds, threshold_source=source,
                                       target_precision=args.target_precision, n_boot=args.bootstrap),
                         allow_nan=False))
    else:
        from detcore.metrics.report import format_table

        print(format_table(result, thresholds))
    return 0
