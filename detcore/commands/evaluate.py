"""`python -m detcore evaluate` — two forms, one output (DESIGN.md §3):

    evaluate --gt GT_COCO.json --dt DETECTIONS_COCO.json [--iou-type bbox|segm] [--json]
    evaluate RUN_DIR --data DATA [--split test] [--json]

Both print the same JSON contract (``EvaluationResult.to_json``) or a readable table.
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
    p.add_argument("--data", help="dataset the run's split refers to")
    p.add_argument("--split", default="test", help="which split of the run to evaluate (default: test)")
    p.add_argument("--gt", help="COCO ground-truth JSON")
    p.add_argument("--dt", help="COCO results JSON (list of {image_id, category_id, bbox, score[, segmentation]})")
    p.add_argument("--iou-type", choices=("bbox", "segm"), default="bbox")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_evaluate)


def _result_for(args):
    if args.gt or args.dt:
        if not (args.gt and args.dt):
            raise ConfigError("--gt/--dt", "give both --gt and --dt")
        if args.run_dir:
            raise ConfigError("run_dir", "give either RUN_DIR --data DATA or --gt/--dt, not both")
        from detcore.metrics.coco_files import evaluate_coco_files

        print(f"evaluating {args.dt} against {args.gt} ({args.iou_type})", file=sys.stderr)
        return evaluate_coco_files(args.gt, args.dt, iou_type=args.iou_type)
    if not args.run_dir:
        raise ConfigError("evaluate", "give RUN_DIR --data DATA, or --gt GT.json --dt DT.json")
    from detcore.evaluation import evaluate_run  # heavy (torch): only for this form

    print(f"evaluating run {args.run_dir} on split {args.split!r}", file=sys.stderr)
    return evaluate_run(args.run_dir, args.data, split=args.split)


def run_evaluate(args) -> int:
    result = _result_for(args)
    if args.json:
        print(json.dumps(result.to_json(), allow_nan=False))
    else:
        from detcore.metrics.report import format_table

        print(format_table(result))
    return 0
