"""Images/s of one model three ways on this CPU: PyTorch eager (detboard's Predictor), ONNX Runtime
and TorchScript (files written by ``python -m detcore export``), same images, one run, interleaved.

Models: the demo model (SSDlite 320 from the demo-cpu preset, a few real training steps so its
BatchNorm statistics and scores are realistic) and a Faster R-CNN MobileNetV3 (default: the 320 px
variant, untrained weights — speed does not depend on what the weights learned, only on how many
boxes reach NMS, which is capped the same way in all three). Each arm runs every image one at a time
(as ``predict`` does), after a warm-up pass; the arms take turns in every repeat so machine load
hits them alike. Printed: median images/s per arm and the ratio to eager.

    python3 benchmarks/bench_export.py [--repeats 5] [--threads 1] [--frcnn fasterrcnn_mobilenet_v3_large_fpn]

Measured (shared 2-core machine, load ~17, --threads 1, 6 images, 5 repeats): demo SSDlite eager
4.06 images/s, ONNX Runtime 14.50 (x3.57), TorchScript 5.72 (x1.41); Faster R-CNN MobileNetV3 320
eager 1.83, ONNX Runtime 3.28 (x1.79), TorchScript 2.02 (x1.11).

Both runtimes get the same number of intra-op threads. Keep it at or below the idle cores: on the
shared 2-core machine at load ~12, ``--threads 2`` made eager SSDlite 10-50x slower than one thread
(OpenMP threads spinning against other processes), which measures the machine, not the model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def demo_run(base: Path) -> Path:
    from detcore.data.demo import generate_demo_dataset
    from detcore.train.config import config_from_preset
    from detcore.train.trainer import train

    data = generate_demo_dataset(base / "demo", n_images=16, seed=0)
    config = config_from_preset("demo-cpu", data=str(data), epochs=1, batch_size=4, max_iters_per_epoch=3,
                                eval_every=0, warmup_iters=0, device="cpu")
    run = base / "demo-run"
    assert train(config, run) == "completed"
    return run


def untrained_run(base: Path, model: str, classes: list[str]) -> Path:
    import json

    import torch

    from detcore.models import build_model
    from detcore.train.config import TrainConfig

    run = base / model
    (run / "checkpoints").mkdir(parents=True)
    config = TrainConfig(model=model, weights="none").to_dict()
    (run / "config.json").write_text(json.dumps(config))
    (run / "classes.json").write_text(json.dumps(classes))
    torch.manual_seed(0)
    net = build_model(model, classes=classes, weights="none")
    torch.save({"model": net.state_dict(), "classes": classes, "config": config, "epoch": 0}, run / "checkpoints" / "best.pt")
    return run


def images(n: int) -> list:
    import numpy as np

    from detcore.data.demo import render_demo_image

    return [np.array(render_demo_image(i, seed=9)[0].convert("RGB").resize((640, 480))) for i in range(n)]


def bench(run: Path, base: Path, pictures: list, repeats: int, threads: int) -> dict[str, float]:
    from detcore.export import export_run
    from detcore.export.runtime import ExportedModel
    from detcore.inference import Predictor

    eager = Predictor.from_run(run, device="cpu")
    onnx = ExportedModel.load(export_run(run, "onnx", out=base / f"{run.name}.onnx"), threads=threads)
    script = ExportedModel.load(export_run(run, "torchscript", out=base / f"{run.name}.torchscript.pt"))
    floor = onnx.score_floor
    arms = {
        "PyTorch eager": lambda im: eager.predict([im], score_floor=floor, batch_size=1),
        "ONNX Runtime": lambda im: onnx.predict([im]),
        "TorchScript": lambda im: script.predict([im]),
    }
    for run_arm in arms.values():  # warm-up: allocators, ORT graph optimisation, TorchScript profiling runs
        for im in pictures[:2]:
            run_arm(im)
    rates: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for r in range(repeats):
        for name in names[r % 3:] + names[:r % 3]:  # rotate who goes first
            start = time.perf_counter()
            for im in pictures:
                arms[name](im)
            rates[name].append(len(pictures) / (time.perf_counter() - start))
    return {name: statistics.median(v) for name, v in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and onnxruntime intra-op threads (more than the idle cores makes torch's "
                             "OpenMP pool spin against other processes: 10x slower on the shared CI machine)")
    parser.add_argument("--frcnn", default="fasterrcnn_mobilenet_v3_large_320_fpn")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    base = Path(tempfile.mkdtemp(prefix="bench-export-"))
    os.environ.setdefault("TORCH_HOME", str(base / "torch_home"))
    pictures = images(args.images)
    runs = {"demo model (SSDlite 320)": demo_run(base),
            f"Faster R-CNN ({args.frcnn})": untrained_run(base, args.frcnn, ["with_mask", "without_mask",
                                                                             "mask_weared_incorrect"])}
    print(f"{args.images} images 640x480, one at a time; {args.repeats} interleaved repeats; {args.threads} threads; "
          f"load {os.getloadavg()[0]:.1f} at start", flush=True)
    for title, run in runs.items():
        result = bench(run, base, pictures, args.repeats, args.threads)
        eager = result["PyTorch eager"]
        print(f"\n{title}")
        for name, rate in result.items():
            print(f"  {name:<14} {rate:7.2f} images/s   x{rate / eager:.2f} vs eager")
    print(f"\nload {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
