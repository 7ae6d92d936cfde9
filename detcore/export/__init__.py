"""Ship a run's model: ONNX or TorchScript files that carry their classes and thresholds.

(Not to be confused with ``detcore.metrics.export``, which writes COCO JSON.)

``export_run(run_dir, "onnx" | "torchscript")`` writes one self-contained file: the detector with
its pre/post-processing (see ``graph.py``) and metadata — every value a JSON text, the same keys
in ONNX ``metadata_props`` and in TorchScript extra files (``METADATA_KEYS``):

- ``classes`` (list) — ``labels`` outputs index into it;
- ``thresholds`` (class → score) — from the run's thresholds.json (Evaluate page), else 0.5;
- ``score_floor`` — the exported graph drops scores below it; thresholds are never lower;
- ``input``, ``normalization``, ``resize``, ``outputs``, ``mask_threshold`` — how to feed it and
  read it (normalisation and resize happen inside the graph);
- ``model``, ``run``, ``checkpoint``, ``epoch``, ``metrics``, ``detboard_version``, ``format_version``;
- ``crop_classifier`` — the run's crop classifier (its settings) when the graph re-scores with it, else null.

``detcore.export.runtime.ExportedModel`` loads such a file back (``predict FILE``). docs/export.md
shows both formats run with plain onnxruntime / torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from detcore.errors import CheckpointError, ConfigError

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
FORMAT_VERSION = 1
DEFAULT_SCORE_FLOOR = 0.05  # the Predict page's floor: exported files keep what the app would show
MASK_THRESHOLD = 0.5
METADATA_KEYS = ("format_version", "detboard_version", "model", "run", "checkpoint", "epoch", "classes",
                 "thresholds", "thresholds_source", "score_floor", "input", "normalization", "resize",
                 "outputs", "mask_threshold", "metrics", "crop_classifier")


def default_export_path(run_dir: str | Path, fmt: str, checkpoint_path: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir / "exports" / f"{run_dir.name}-{checkpoint_path.stem}{SUFFIX[fmt]}"


def export_run(run_dir: str | Path, fmt: str, *, out: str | Path | None = None, checkpoint: str = "best") -> Path:
    """Export the run's ``checkpoint`` (best | last | a path) to ``fmt``; return the file written
    (atomically). Raises CheckpointError/ConfigError/DataError with one-line messages."""
    if fmt not in FORMATS:
        raise ConfigError("--format", f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "onnx":
        _require_onnx()
    from detcore import atomic
    from detcore.checkpoints import load_checkpoint
    from detcore.train.runs import Run
    from detcore.export import graph
    from detcore.inference import Predictor
    from detcore.models import get_spec

    run_dir = Path(run_dir)
    predictor = Predictor.from_run(run_dir, checkpoint=checkpoint, device="cpu")
    spec = get_spec(predictor.model_name)
    run = Run(run_dir)
    saved = run.thresholds()  # the one validated reader of the run's thresholds
    thresholds = saved.for_classes(predictor.classes)
    floor = min([DEFAULT_SCORE_FLOOR, *thresholds])
    ckpt = load_checkpoint(predictor.checkpoint_path)
    metadata = _metadata(run_dir, predictor, spec, ckpt, thresholds, floor,
                         thresholds_source=run.thresholds_path.name if saved.saved else "default")
    module = graph.exportable(predictor.model, score_floor=floor, with_masks=spec.has_masks,
                              rescorer=predictor.rescorer)
    example = graph.example_image(spec.fixed_size)
    path = Path(out) if out else default_export_path(run_dir, fmt, predictor.checkpoint_path)
    texts = {k: json.dumps(v) for k, v in metadata.items()}
    try:
        if fmt == "onnx":
            data = _with_onnx_metadata(graph.to_onnx_bytes(module, example, with_masks=spec.has_masks), texts)
        else:
            data = graph.to_torchscript_bytes(module, texts)
    except Exception as e:  # the tracer/scripter/checker refusing this model: one line, naming the checkpoint
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(predictor.checkpoint_path, f"{spec.name} could not be exported to {fmt}: {first}") from None
    try:
        return atomic.write_bytes(path, data)
    except OSError as e:
        raise ConfigError(path, f"cannot write the exported file ({e.strerror or e})") from None


def _metadata(run_dir: Path, predictor, spec, ckpt: dict, thresholds: list[float], floor: float, *,
              thresholds_source: str) -> dict[str, Any]:
    from detcore import __version__

    t = predictor.model.transform
    resize = ({"fixed_size": list(t.fixed_size)} if t.fixed_size is not None
              else {"min_size": int(t.min_size[-1]), "max_size": int(t.max_size)})
    outputs = {"boxes": "float32 (N, 4) x0, y0, x1, y1 in input-image pixels",
               "labels": "int64 (N,) index into classes",
               "scores": "float32 (N,) confidence, sorted high to low, all >= score_floor"}
    if spec.has_masks:
        outputs["masks"] = "float32 (N, 1, H, W) mask probability per pixel of the input image"
    metrics = {k: v for k, v in (ckpt.get("metrics") or {}).items() if isinstance(v, (int, float)) or v is None}
    return {
        "format_version": FORMAT_VERSION,
        "detboard_version": __version__,
        "model": spec.name,
        "run": run_dir.name,
        "checkpoint": predictor.checkpoint_path.name,
        "epoch": ckpt.get("epoch"),
        "classes": list(predictor.classes),
        "thresholds": {c: float(v) for c, v in zip(predictor.classes, thresholds)},
        "thresholds_source": thresholds_source,
        "score_floor": float(floor),
        "input": {"name": "image", "shape": [3, "height", "width"], "dtype": "float32", "channels": "RGB",
                  "range": [0.0, 1.0]},
        "normalization": {"mean": [float(v) for v in t.image_mean], "std": [float(v) for v in t.image_std],
                          "applied": "inside the model"},
        "resize": {**resize, "applied": "inside the model; outputs are in input-image pixels"},
        "outputs": outputs,
        "mask_threshold": MASK_THRESHOLD if spec.has_masks else None,
        "metrics": metrics,
        "crop_classifier": ({"spec": ckpt["classifier"]["spec"], "applied": "inside the model: each detected object's "
                             "class re-scored from a crop of it (score = object score x class probability)"}
                            if predictor.rescorer is not None else None),
    }


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ConfigError("onnx", "the onnx package is not installed; pip install -r requirements.txt") from None


def _with_onnx_metadata(model_bytes: bytes, texts: dict[str, str]) -> bytes:
    import onnx

    model = onnx.load_from_string(model_bytes)
    del model.metadata_props[:]
    for key, value in texts.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.doc_string = "detboard detector: metadata 'classes', 'thresholds' and the rest are JSON (docs/export.md)"
    onnx.checker.check_model(model)
    return model.SerializeToString()
