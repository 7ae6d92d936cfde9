"""How big and how fast a run's model is: parameter count and checkpoint size, per-image model time,
and the benchmark behind ``python -m detcore predict RUN --benchmark`` (also the Compare page's
"Measure speed" button; the result is stored with the run, ``Run.save_benchmark``).

The benchmark runs the run's own model, one image at a time (batch 1, what an interactive user
waits for), at the run's input size: the model's transform resizes every image to its configured
size, and the images are the run's test images when its dataset can be read (else demo pictures at
that size). After warm-up passes it times each image (``time.perf_counter`` around the whole
prediction: to tensor, model, back to numpy — on CUDA the copy back waits for the GPU) and reports
p50 / p95 milliseconds per image and images per second over the timed passes.

Torch-free at import (the Predictor is imported by the functions that load a model).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from detcore.errors import ConfigError, DetcoreError
from detcore.structures import Detections
from detcore.train.runs import Run

BENCH_SCORE_FLOOR = 0.05  # the Predict page's floor: the boxes a user would see, post-processed
DEFAULT_IMAGES = 16
DEFAULT_WARMUP = 3
DEFAULT_REPEATS = 2


def parameter_count(model) -> int:
    """Trainable and frozen parameters of a torch module (buffers such as BatchNorm statistics excluded)."""
    return int(sum(p.numel() for p in model.parameters()))


def model_size(run: Run | str | Path, *, predictor=None) -> dict:
    """``{"params", "checkpoint", "checkpoint_mb"}`` of the run's best checkpoint (loads the model
    unless a Predictor is given)."""
    run = run if isinstance(run, Run) else Run(run)
    if predictor is None:
        from detcore.inference import Predictor  # torch

        predictor = Predictor.from_run(run.path, checkpoint="best", device="cpu")
    path = Path(predictor.checkpoint_path) if predictor.checkpoint_path else run.checkpoint("best")
    return {"params": parameter_count(predictor.model), "checkpoint": path.name,
            "checkpoint_mb": path.stat().st_size / 2**20}


def predict_timed(predictor, images: Sequence[np.ndarray], image_ids: Sequence[str], *, score_floor: float,
                  progress: Callable[[int, int], None] | None = None) -> list[tuple[Detections, float]]:
    """Each image on its own through the predictor: (detections, milliseconds) per image, in order."""
    out = []
    for k, (image, image_id) in enumerate(zip(images, image_ids)):
        start = time.perf_counter()
        dets = predictor.predict([image], image_ids=[image_id], score_floor=score_floor, batch_size=1)[0]
        out.append((dets, (time.perf_counter() - start) * 1000.0))
        if progress is not None:
            progress(k + 1, len(images))
    return out


def input_size(model) -> dict:
    """The size the model's transform resizes images to: SSD a fixed square, the others a shorter
    side (``min_size``) capped by ``max_size`` on the longer one."""
    transform = getattr(model, "transform", None)
    fixed = getattr(transform, "fixed_size", None)
    if fixed:
        return {"fixed": [int(fixed[0]), int(fixed[1])], "text": f"{int(fixed[1])}x{int(fixed[0])} (fixed)"}
    min_size = getattr(transform, "min_size", None)
    max_size = getattr(transform, "max_size", None)
    if min_size is None:
        return {"text": "unknown"}
    short = int(min_size[0] if isinstance(min_size, (tuple, list)) else min_size)
    return {"min_size": short, "max_size": int(max_size) if max_size else None,
            "text": f"shorter side {short}, longer at most {int(max_size) if max_size else '-'}"}


def device_name(device) -> str:
    """"cpu (N threads, <cpu>)" or the GPU's name."""
    if str(device).startswith("cuda"):
        import torch  # only when a GPU is in use

        return f"cuda ({torch.cuda.get_device_name(device)})"
    import torch

    return f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"


def benchmark_images(run: Run, data: str | Path | None, n: int, size_hint: dict) -> tuple[list[np.ndarray], str]:
    """Up to ``n`` of the run's test images (its dataset readable), else ``n`` demo pictures drawn at
    the model's input size; with a sentence saying which."""
    from detcore.data.images import load_rgb

    try:
        from detcore.evaluation import load_run_dataset, split_samples  # torch (already loaded by the caller)

        parsed = load_run_dataset(run.path, data)
        samples = split_samples(run.path, parsed, "test")[:n]
        return [load_rgb(s.image_path) for s in samples], f"{len(samples)} test images of {parsed.root}"
    except DetcoreError as e:
        from detcore.data.demo import render_demo_image

        side = size_hint.get("min_size") or (size_hint.get("fixed") or [320])[0]
        images = []
        for k in range(n):
            picture, _ = render_demo_image(k, seed=5)
            w, h = picture.size
            scale = side / min(w, h)
            images.append(np.asarray(picture.resize((max(1, round(w * scale)), max(1, round(h * scale))))))
        return images, f"{n} demo pictures (the run's test images are not readable: {e.problem})"


def benchmark_predictor(predictor, images: Sequence[np.ndarray], *, warmup: int = DEFAULT_WARMUP,
                        repeats: int = DEFAULT_REPEATS, score_floor: float = BENCH_SCORE_FLOOR) -> dict:
    """Time ``repeats`` passes over ``images`` after ``warmup`` untimed predictions."""
    if not images:
        raise ConfigError("benchmark", "no images to time")
    if repeats < 1 or warmup < 0:
        raise ConfigError("benchmark", "need repeats >= 1 and warmup >= 0")
    ids = [f"bench-{k}" for k in range(len(images))]
    for k in range(warmup):
        predictor.predict([images[k % len(images)]], image_ids=["warmup"], score_floor=score_floor, batch_size=1)
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(repeats):
        times += [ms for _, ms in predict_timed(predictor, images, ids, score_floor=score_floor)]
    wall = time.perf_counter() - start
    ms = np.asarray(times)
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "images_per_s": float(len(ms) / wall), "timed": int(len(ms)),
            "warmup": int(warmup), "batch_size": 1}


def benchmark_run(run_dir: str | Path, *, data: str | Path | None = None, images: Sequence[np.ndarray] | None = None,
                  n_images: int = DEFAULT_IMAGES, warmup: int = DEFAULT_WARMUP, repeats: int = DEFAULT_REPEATS,
                  checkpoint: str = "best", device: str = "auto", save: bool = True) -> dict:
    """Measure the run's model (see the module docstring); the record is saved with the run unless
    ``save`` is False. ``images``: time these instead of the run's test images."""
    from detcore.inference import Predictor  # torch

    run = Run(run_dir)
    predictor = Predictor.from_run(run.path, checkpoint=checkpoint, device=device)
    size = input_size(predictor.model)
    if images is None:
        images, source = benchmark_images(run, data, n_images, size)
    else:
        source = f"{len(images)} given images"
    record = benchmark_predictor(predictor, list(images), warmup=warmup, repeats=repeats)
    record.update({"device": device_name(predictor.device), "input_size": size["text"], "images": source,
                   "model": predictor.model_name, **model_size(run, predictor=predictor),
                   "threads_env": os.environ.get("OMP_NUM_THREADS"), "time": time.time()})
    if save:
        run.save_benchmark(record)
    return record


def format_benchmark(record: dict) -> str:
    """The benchmark as the lines ``predict --benchmark`` prints."""
    return "\n".join([
        f"model      {record.get('model')} ({record.get('params', 0):,} parameters, "
        f"{record.get('checkpoint')} {record.get('checkpoint_mb', 0):.1f} MB)",
        f"device     {record.get('device')}",
        f"input      {record.get('input_size')}; {record.get('images')}, batch size 1",
        f"ms/image   p50 {record['p50_ms']:.1f}   p95 {record['p95_ms']:.1f}   mean {record['mean_ms']:.1f}"
        f"   ({record['timed']} timed after {record['warmup']} warm-up)",
        f"images/s   {record['images_per_s']:.2f}",
    ])


def benchmark_command(args) -> int:
    """``predict RUN [IMAGE...] --benchmark [--json]``: measure, save with the run, print."""
    import json
    import sys

    from detcore.data.images import load_rgb

    if args.coco:
        raise ConfigError("--coco", "--benchmark prints timings; it writes no detections")
    images = [load_rgb(Path(p)) for p in args.images] or None
    print(f"timing {args.run_dir} (batch 1, {DEFAULT_WARMUP} warm-up, {DEFAULT_REPEATS} passes)…", file=sys.stderr)
    record = benchmark_run(args.run_dir, images=images, checkpoint=args.checkpoint, device=args.device)
    print(json.dumps(record) if args.json else format_benchmark(record))
    return 0
