"""`python -m detcore inspect DATA`, `convert DATA --to coco|voc|yolo --out DIR` and `demo-data OUT_DIR`."""

from __future__ import annotations

import argparse
import json
import sys

from detcore.errors import ConfigError

MAX_PROBLEMS_SHOWN = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    inspect = subparsers.add_parser("inspect", help="summarise a dataset and list its problems",
                                    description="Read a dataset folder, COCO .json or .zip and report images, "
                                                "objects per class and every data problem found.")
    inspect.add_argument("data", metavar="DATA", help="dataset folder (VOC, Penn-Fudan, YOLO, COCO), COCO .json, or .zip")
    inspect.add_argument("--format", default="auto", choices=["auto", "voc", "pennfudan", "coco", "yolo"])
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.add_argument("--skip-image-check", action="store_true",
                         help="do not open image headers (faster; misses unreadable images and size mismatches)")
    inspect.add_argument("--fit", metavar="MODEL_OR_PRESET",
                         help="geometry check: best possible recall of this model's anchors on the boxes, "
                              "before and after fitting anchors and input size (a preset means its model "
                              "with its geometry settings)")
    inspect.set_defaults(handler=inspect_command)

    convert = subparsers.add_parser(
        "convert", help="write a dataset as COCO, VOC or YOLO",
        description="Read DATA (VOC, Penn-Fudan, COCO, YOLO; folder, COCO .json or .zip) and write it as COCO "
                    "(images/ + annotations/instances.json; masks as polygons/RLE), Pascal VOC (images/ + "
                    "annotations/*.xml + classes.txt; boxes only) or YOLO (data.yaml + images/ + labels/; boxes "
                    "only). What was read is written: problems found while reading are printed and listed in "
                    "detboard-conversion.txt in the output, not fixed. The dataset's own split (VOC ImageSets, "
                    "YOLO train/val/test folders) is kept by VOC and YOLO.")
    convert.add_argument("data", metavar="DATA", help="dataset folder, COCO .json, or .zip")
    convert.add_argument("--to", required=True, choices=["coco", "voc", "yolo"], help="format to write")
    convert.add_argument("--out", required=True, metavar="DIR", help="output folder: new or empty")
    convert.add_argument("--format", default="auto", choices=["auto", "voc", "pennfudan", "coco", "yolo"],
                         help="format of DATA (default: detected)")
    convert.add_argument("--force", action="store_true",
                         help="replace DIR if it holds an earlier conversion (never a folder convert did not write)")
    convert.add_argument("--json", action="store_true", help="print the summary as JSON")
    convert.set_defaults(handler=convert_command)

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
        **({"given_split": given_split_counts(parsed)} if "given_split" in parsed.meta else {}),
    }


def given_split_counts(parsed) -> dict:
    """{"source": ..., "train": n, "val": n, ...}: the split the dataset gives (``--split-method imagesets``)."""
    given = parsed.meta["given_split"]
    present = {s.image_id for s in parsed.samples}
    return {"source": given["source"],
            **{part: sum(i in present for i in ids) for part, ids in given["parts"].items()}}


def inspect_command(args: argparse.Namespace) -> int:
    from detcore.data.detect import load_dataset

    parsed = load_dataset(args.data, args.format, verify_images=not args.skip_image_check)
    summary = inspect_summary(parsed)
    if args.fit:
        from detcore.fitcheck import geometry_check

        summary["fit"] = geometry_check(parsed, args.fit)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
        if args.fit:
            from detcore.fitcheck import format_check

            print(format_check(summary["fit"]))
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
    if "given_split" in summary:
        given = dict(summary["given_split"])
        source = given.pop("source")
        parts = ", ".join(f"{part} {n}" for part, n in given.items())
        lines.append(f"  split given by the dataset ({source}): {parts} — train with --split-method imagesets")
    lines.append(f"  problems: {len(summary['problems'])}")
    for kind, n in summary["problem_counts"].items():
        lines.append(f"    {kind:<22} {n}")
    for p in summary["problems"][:MAX_PROBLEMS_SHOWN]:
        lines.append(f"  - {p['kind']}: {p['file']}: {p['detail']}")
    if len(summary["problems"]) > MAX_PROBLEMS_SHOWN:
        lines.append(f"  ... {len(summary['problems']) - MAX_PROBLEMS_SHOWN} more (use --json for all)")
    return "\n".join(lines)


def convert_command(args: argparse.Namespace) -> int:
    from detcore.data.convert import convert_dataset
    from detcore.data.detect import load_dataset
    from detcore.data.stats import problem_counts

    parsed = load_dataset(args.data, args.format, verify_images=True)
    conv = convert_dataset(parsed, args.to, args.out, force=args.force, source=str(args.data))
    summary = {"source": str(args.data), "format": parsed.format, "to": args.to, "out": str(args.out),
               "images": conv.images, "objects": conv.objects, "classes": list(parsed.classes),
               "files": len(conv.entries) + 1, "notes": conv.notes, "problem_counts": problem_counts(parsed),
               "problems": [p.as_dict() for p in parsed.problems]}
    for p in parsed.problems[:MAX_PROBLEMS_SHOWN]:
        print(f"problem: {p.kind}: {p.file}: {p.detail}", file=sys.stderr)
    if len(parsed.problems) > MAX_PROBLEMS_SHOWN:
        print(f"... {len(parsed.problems) - MAX_PROBLEMS_SHOWN} more problems (all in "
              f"{args.out}/detboard-conversion.txt)", file=sys.stderr)
    for note in conv.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        counts = ", ".join(f"{k} {n}" for k, n in summary["problem_counts"].items()) or "none"
        print(f"wrote {conv.images} images, {conv.objects} objects ({parsed.format} -> {args.to}) to {args.out}\n"
              f"problems found while reading (written as read, not fixed): {counts}")
    return 0


def demo_data_command(args: argparse.Namespace) -> int:
    from detcore.data.demo import generate_demo_dataset
    if args.images < 1:
        raise ConfigError("--images", f"{args.images} must be at least 1")
    print(f"generating {args.images} demo images (seed {args.seed}) ...", file=sys.stderr)
    out = generate_demo_dataset(args.out_dir, n_images=args.images, seed=args.seed)
    print(out)
    return 0
