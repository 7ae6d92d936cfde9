"""`python -m detcore inspect DATA` and `python -m detcore demo-data OUT_DIR` (DESIGN.md §3)."""

from __future__ import annotations

import argparse
import json
import sys

MAX_PROBLEMS_SHOWN = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    inspect = subparsers.add_parser("inspect", help="summarise a dataset and list its problems",
                                    description="Read a dataset folder, COCO .json or .zip and report images, "
                                                "objects per class and every data problem found.")
    inspect.add_argument("data", metavar="DATA", help="dataset folder, COCO .json, or .zip")
    inspect.add_argument("--format", default="auto", choices=["auto", "voc", "pennfudan", "coco"])
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.add_argument("--skip-image-check", action="store_true",
                         help="do not open image headers (faster; misses unreadable images and size mismatches)")
    inspect.set_defaults(handler=inspect_command)

    demo = subparsers.add_parser("demo-data", help="generate the synthetic Face-Mask-style demo dataset",
                                 description="Write the deterministic demo dataset (VOC layout) into OUT_DIR.")
    demo.add_argument("out_dir", metavar="OUT_DIR")
    demo.add_argument("--images", type=int, default=400, help="number of images (default 400)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(handler=demo_data_command)


def inspect_summary(parsed) -> dict:
    """The ``inspect --json`` object: format, images, objects, classes {name: count}, problems, ..."""
    from detcore.data.stats import class_counts, problem_counts

    counts = class_counts(parsed)
    return {
        "format": parsed.format,
        "root": str(parsed.root),
        "images": parsed.num_images,
        "objects": parsed.num_objects,
        "negatives": sum(1 for s in parsed.samples if s.num_objects == 0),
        "classes": {str(c): int(n) for c, n in zip(counts["class"], counts["objects"])},
        "problem_counts": problem_counts(parsed),
        "problems": [{"kind": p.kind, "file": p.file, "detail": p.detail, "image_id": p.image_id}
                     for p in parsed.problems],
        **({"layout": parsed.meta["layout"]} if "layout" in parsed.meta else {}),
    }


def inspect_command(args: argparse.Namespace) -> int:
    from detcore.data.detect import load_dataset

    parsed = load_dataset(args.data, args.format, verify_images=not args.skip_image_check)
    summary = inspect_summary(parsed)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    layout = f" ({summary['layout']} layout)" if "layout" in summary else ""
    lines = [f"{summary['format']}{layout} dataset at {summary['root']}",
             f"  images:  {summary['images']} ({summary['negatives']} without objects)",
             f"  objects: {summary['objects']}", "  classes:"]
    width = max((len(c) for c in summary["classes"]), default=0)
    total = max(summary["objects"], 1)
    for name, n in summary["classes"].items():
        lines.append(f"    {name:<{width}}  {n:>7}  {100 * n / total:5.1f}%")
    lines.append(f"  problems: {len(summary['problems'])}")
    for kind, n in summary["problem_counts"].items():
        lines.append(f"    {kind:<22} {n}")
    for p in summary["problems"][:MAX_PROBLEMS_SHOWN]:
        lines.append(f"  - {p['kind']}: {p['file']}: {p['detail']}")
    if len(summary["problems"]) > MAX_PROBLEMS_SHOWN:
        lines.append(f"  ... {len(summary['problems']) - MAX_PROBLEMS_SHOWN} more (use --json for all)")
    return "\n".join(lines)


def demo_data_command(args: argparse.Namespace) -> int:
    from detcore.data.demo import generate_demo_dataset
    from detcore.errors import ConfigError

    if args.images < 1:
        raise ConfigError("--images", f"{args.images} must be at least 1")
    print(f"generating {args.images} demo images (seed {args.seed}) ...", file=sys.stderr)
    out = generate_demo_dataset(args.out_dir, n_images=args.images, seed=args.seed)
    print(out)
    return 0
