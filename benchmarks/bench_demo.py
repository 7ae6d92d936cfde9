"""Demo-preset benchmark: train `demo-cpu` on a freshly generated demo set, evaluate on the test split.

Prints training wall time, test AP50/AP, per-class AP50 and the machine load, against the targets
of issue 4 (must: AP50 >= 0.70 within 6 minutes on the 2-core CI machine; goal: >= 0.85 within
3 minutes). Flags override preset values for tuning, e.g. ``--epochs 8 --lr 3e-3``.

    python benchmarks/bench_demo.py [--images N] [--epochs E] [--lr LR] [--batch-size B] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MUST_AP50, MUST_S = 0.70, 360
GOAL_AP50, GOAL_S = 0.85, 180


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=400, help="demo images to generate (default 400)")
    ap.add_argument("--seed", type=int, default=0, help="demo generator seed")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--warmup-iters", type=int)
    ap.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice); on a "
                    "machine other jobs load, 1 thread avoids OpenMP spin contention")
    ap.add_argument("--keep", help="keep the dataset and run under this folder instead of a temp folder")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from detcore.data.demo import generate_demo_dataset
    from detcore.evaluation import evaluate_run
    from detcore.train.config import config_from_preset
    from detcore.train.precise_bn import PreciseBatchNorm
    from detcore.train.trainer import train

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_demo_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {_load()}", flush=True)
    t0 = time.perf_counter()
    data = generate_demo_dataset(work / "demo", n_images=args.images, seed=args.seed)
    print(f"generated {args.images} demo images in {time.perf_counter() - t0:.1f} s", flush=True)

    config = config_from_preset("demo-cpu", data=str(data), epochs=args.epochs, lr=args.lr,
                                batch_size=args.batch_size, eval_every=args.eval_every,
                                warmup_iters=args.warmup_iters)
    run_dir = work / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    print(f"training {config.model} ({config.epochs} epochs, batch {config.batch_size}, {config.optimizer} "
          f"lr {config.lr:g}, {config.schedule})", flush=True)
    t0 = time.perf_counter()
    status = train(config, run_dir, callbacks=[PreciseBatchNorm()])  # as the app's JobRegistry does
    train_s = time.perf_counter() - t0
    load_after = _load()
    t0 = time.perf_counter()
    result = evaluate_run(run_dir, split="test")
    eval_s = time.perf_counter() - t0
    summary = result.summary()
    per_class = result.per_class()

    print(f"\nstatus {status}; training wall time {train_s:.0f} s ({train_s / 60:.1f} min); test evaluation {eval_s:.0f} s")
    print(f"test AP50 {summary['AP50']:.3f}   AP {summary['AP']:.3f}   AR100 {summary['AR100']:.3f}")
    cols = [c for c in ("class", "AP50", "AP", "n_gt") if c in per_class.columns]
    print(per_class[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"machine: {load_after} (at the end of training)")
    must = summary["AP50"] >= MUST_AP50 and train_s <= MUST_S
    goal = summary["AP50"] >= GOAL_AP50 and train_s <= GOAL_S
    print(f"must (AP50 >= {MUST_AP50} within {MUST_S // 60} min): {'met' if must else 'NOT met'}; "
          f"goal (AP50 >= {GOAL_AP50} within {GOAL_S // 60} min): {'met' if goal else 'not met'}")
    print(f"AP50 ratio to the must target: {summary['AP50'] / MUST_AP50:.2f}; time ratio: {train_s / MUST_S:.2f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if must else 1


if __name__ == "__main__":
    sys.exit(main())
