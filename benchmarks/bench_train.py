"""Images/s of detcore's trainer against the tutorial's bare loop, same model, data and device, one run.

The bare loop is the Face Mask tutorial's (seeds 001/003): SGD(lr 0.005, momentum 0.9, wd 5e-4),
``loss_dict = model(images, targets); losses = sum(...); zero_grad; backward; step``. Ours is
``detcore.train.trainer.train`` with its callbacks (step records, jsonl writer, checkpoints).
Both read the same DetectionDataset through a DataLoader. The two alternate ``--rounds`` times
so a change in machine load hits both; the median of each is compared.

    python benchmarks/bench_train.py                         # CPU, small model, tiny images
    python benchmarks/bench_train.py --model fasterrcnn_resnet50_fpn --device cuda --amp \
        --images 64 --size 400 --batch-size 4 --iters 40     # the tutorial's setting on a GPU

Prints both rates and ``overhead = bare / ours - 1`` (goal <= 3 %).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from detcore.data.dataset import DetectionDataset, build_transforms, collate_fn  # noqa: E402
from detcore.models import build_model  # noqa: E402
from detcore.structures import ParsedDataset, Sample  # noqa: E402
from detcore.train.config import TrainConfig  # noqa: E402
from detcore.train.trainer import train  # noqa: E402

CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]


def make_dataset(root: Path, n: int, size: int) -> ParsedDataset:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        w, h = size, int(size * 0.75)
        img = rng.integers(60, 120, (h, w, 3), dtype=np.uint8)
        boxes, labels = [], []
        for _ in range(3):
            bw, bh = int(rng.integers(w // 8, w // 3)), int(rng.integers(h // 8, h // 3))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            c = int(rng.integers(0, 3))
            img[y:y + bh, x:x + bw] = (200, 60 + 60 * c, 40)
            boxes.append([x, y, x + bw, y + bh])
            labels.append(c)
        path = root / f"{i:04d}.png"
        Image.fromarray(img).save(path)
        samples.append(Sample(f"{i:04d}", path, w, h, boxes=boxes, labels=labels))
    return ParsedDataset("voc", root, CLASSES, samples)


def bare_loop(parsed: ParsedDataset, args, device: torch.device) -> float:
    """The tutorial's loop; images/s over the iterations after ``--warmup``."""
    torch.manual_seed(0)
    model = build_model(args.model, classes=CLASSES, weights="none", min_size=args.min_size, max_size=args.max_size)
    model.to(device).train()
    ds = DetectionDataset(parsed.samples, CLASSES, build_transforms(True, {"hflip": 0.5}))
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, collate_fn=collate_fn,
                                         num_workers=args.workers, pin_memory=device.type == "cuda")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.005, momentum=0.9, weight_decay=0.0005)
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp)
    epoch_loss, t0, seen = 0.0, None, 0
    for i, (images, targets) in enumerate(loader):
        if i == args.iters:
            break
        if i == args.warmup:
            _sync(device)
            t0, seen = time.perf_counter(), 0
        images = [im.to(device) for im in images]
        targets = [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]
        with torch.autocast(device.type, enabled=args.amp):
            loss_dict = model(images, targets)
        losses = sum(loss for loss in loss_dict.values())
        optimizer.zero_grad()
        scaler.scale(losses).backward()
        scaler.step(optimizer)
        scaler.update()
        epoch_loss += losses
        seen += len(images)
    _sync(device)
    return seen / (time.perf_counter() - t0)


def our_trainer(parsed: ParsedDataset, args, device: torch.device, run_dir: Path) -> float:
    """detcore's trainer; images/s from its own step records over the same iteration window."""
    cfg = TrainConfig(model=args.model, weights="none", device=device.type, epochs=1, batch_size=args.batch_size,
                      lr=0.005, optimizer="sgd", schedule="none", amp=args.amp, min_size=args.min_size,
                      max_size=args.max_size, max_iters_per_epoch=args.iters, eval_every=0, num_workers=args.workers,
                      test_fraction=0.1, augment={"hflip": 0.5})
    times: list[float] = []

    class Clock:  # a step record's "time" is wall clock; perf_counter is finer
        def __getattr__(self, name):
            return lambda *a: None

        def on_step_end(self, t):
            _sync(device)
            times.append(time.perf_counter())

    train(cfg, run_dir, dataset=parsed, callbacks=[Clock()])
    window = times[args.warmup - 1:]
    return (len(window) - 1) * args.batch_size / (window[-1] - window[0])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="fasterrcnn_mobilenet_v3_large_320_fpn")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", action="store_true", help="mixed precision in both loops (CUDA only)")
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--size", type=int, default=128, help="image width in pixels")
    p.add_argument("--min-size", type=int, default=96)
    p.add_argument("--max-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    args.amp = args.amp and device.type == "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        parsed = make_dataset(root / "data", args.images, args.size)
        bare, ours = [], []
        for r in range(args.rounds):
            bare.append(bare_loop(parsed, args, device))
            ours.append(our_trainer(parsed, args, device, root / f"run{r}"))
            print(f"round {r + 1}: bare {bare[-1]:.2f} img/s, detcore {ours[-1]:.2f} img/s", file=sys.stderr)
    b, o = statistics.median(bare), statistics.median(ours)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()} threads"
    print(f"model {args.model} on {name}, batch {args.batch_size}, {args.iters - args.warmup} timed iterations, "
          f"amp={args.amp}")
    print(f"bare tutorial loop: {b:.2f} images/s")
    print(f"detcore trainer:    {o:.2f} images/s")
    print(f"overhead (bare / ours - 1): {100 * (b / o - 1):+.1f} %  (goal <= 3 %)")


if __name__ == "__main__":
    main()
