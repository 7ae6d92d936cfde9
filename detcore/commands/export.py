"""`python -m detcore export RUN --format onnx|torchscript [--out FILE] [--checkpoint best|last]`.

Writes one file that runs without detboard: the detector with its resize, normalisation and NMS,
plus metadata (class names, the run's per-class thresholds, the score floor, input and output
description, the checkpoint's metrics) — see docs/export.md. The default file is
``RUN/exports/<run>-<checkpoint>.onnx`` (or ``.torchscript.pt``). The path written goes to stdout.
``python -m detcore predict FILE IMAGE`` runs it with the embedded thresholds.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    from detcore.export import FORMATS

    p = subparsers.add_parser("export", help="export a run's model to ONNX or TorchScript",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN", help="training run directory")
    p.add_argument("--format", required=True, choices=FORMATS, help="onnx (onnxruntime, opset 17) or torchscript")
    p.add_argument("--out", metavar="FILE", help="where to write (default: RUN/exports/<run>-<checkpoint>.<ext>)")
    p.add_argument("--checkpoint", default="best", help="best | last | path to a .pt (default: best)")
    p.set_defaults(handler=run_export)


def run_export(args) -> int:
    from detcore.export import export_run

    print(f"exporting {args.run_dir} ({args.checkpoint}) to {args.format}…", file=sys.stderr)
    path = export_run(args.run_dir, args.format, out=args.out, checkpoint=args.checkpoint)
    print(path)
    return 0
