"""`python -m detcore train` (DESIGN.md §3): progress on stderr, a final summary on stdout.

    train --data DATA --model NAME [--weights coco|backbone|none|PATH] [--epochs N] ...
    train --data DATA --preset demo-cpu --out RUN_DIR       (flags override the preset)
    train --resume RUN_DIR [--epochs N]                     (N = new total, more or fewer; default: finish the run)
    train --list-models | --list-presets
Under ``torchrun --nproc_per_node=N`` the same command trains with DDP; only rank 0 prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

# flag name → TrainConfig field, for flags that map one to one
_FIELDS = {"data": "data", "format": "data_format", "model": "model", "weights": "weights", "epochs": "epochs",
           "batch_size": "batch_size", "lr": "lr", "device": "device", "split_seed": "split_seed",
           "test_fraction": "test_fraction", "optimizer": "optimizer", "seed": "seed", "num_workers": "num_workers",
           "min_size": "min_size", "max_size": "max_size", "eval_every": "eval_every",
           "max_iters_per_epoch": "max_iters_per_epoch"}


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a detector into a run directory",
                              description="Train (or resume) a detector; the run directory holds everything.")
    p.add_argument("--data", help="dataset folder or .zip (VOC, Penn-Fudan, COCO)")
    p.add_argument("--format", choices=["auto", "voc", "pennfudan", "coco"], help="dataset format (default auto)")
    p.add_argument("--model", help="registry name (see --list-models)")
    p.add_argument("--weights", help="coco | backbone | none | path to a .pth")
    p.add_argument("--preset", help="start from a named preset (see --list-presets)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=["sgd", "adamw"])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--seed", type=int)
    p.add_argument("--split-seed", type=int)
    p.add_argument("--test-fraction", type=float)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--min-size", type=int, help="detector input: shorter side resized to this")
    p.add_argument("--max-size", type=int, help="detector input: longer side capped at this")
    p.add_argument("--eval-every", type=int, help="epochs between validations (0 = never)")
    p.add_argument("--max-iters-per-epoch", type=int, help="cap iterations per epoch (smoke runs)")
    p.add_argument("--out", help="run directory (default: a new folder under $DETBOARD_RUNS)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last.pt")
    p.add_argument("--list-models", action="store_true", help="print the model registry and exit")
    p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    if args.list_models:
        from detcore.models import list_models

        for spec in list_models():
            print(f"{spec.name:40s} {spec.title}  (weights: {', '.join(spec.as_dict()['weights'])})")
        return 0
    if args.list_presets:
        from detcore.train.presets import PRESETS

        print(json.dumps(PRESETS, indent=2))
        return 0
    from detcore.train.runs import Run
    from detcore.train.trainer import train

    config, run_dir, extra = _config_and_run_dir(args)
    progress = ProgressPrinter()
    status = train(config, run_dir, callbacks=[progress], resume=bool(args.resume), extra_epochs=extra)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0 if status == "completed" else 1
    progress.finish()
    run = Run(run_dir)
    print(json.dumps({"run": str(run_dir), "status": status, "message": run.message(),
                      "epochs_done": progress.epochs_done, "best_AP": run.best_metric(),
                      "best_AP50": run.best_metric("AP50")}, indent=2))
    return 0 if status in ("completed", "stopped") else 1


def _config_and_run_dir(args):
    from detcore.errors import ConfigError
    from detcore.train.config import TrainConfig, config_from_preset
    from detcore.train.runs import Run, new_run_dir

    overrides = {field: getattr(args, flag) for flag, field in _FIELDS.items() if getattr(args, flag) is not None}
    if args.resume:
        run = Run(args.resume)
        if not run.exists():
            raise ConfigError(args.resume, "is not a run directory (no config.json), so there is nothing to resume")
        saved = TrainConfig.from_dict(run.config())
        extra = args.epochs - saved.epochs if args.epochs else 0  # --epochs is the new total
        config = TrainConfig.from_dict({**saved.to_dict(), **{k: v for k, v in overrides.items()
                                                               if k in ("data", "data_format")}})
        return config, args.resume, extra
    if args.preset:
        config = config_from_preset(args.preset, **overrides)
    else:
        if not args.model:
            raise ConfigError("--model", "name a model (see --list-models) or a --preset")
        config = TrainConfig.from_dict(overrides)
    if not config.data:
        raise ConfigError("--data", "name the dataset to train on")
    config.validate()
    if args.out:
        run_dir = args.out
    elif int(os.environ.get("RANK", "0")) == 0 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        from detcore.paths import runs_root

        run_dir = str(new_run_dir(runs_root(), f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"))
    else:
        raise ConfigError("--out", "name the run directory when training with torchrun (all ranks must agree)")
    return config, run_dir, 0


class ProgressPrinter:
    """A progress bar on stderr (a redrawn line on a TTY, a plain line every few seconds otherwise).

    A trainer callback by duck typing (events.Callback's methods), so this module needs no torch import.
    """

    def __init__(self, *, every_s: float = 5.0):
        self.tty = sys.stderr.isatty()
        self.every_s, self.last, self.epochs_done = every_s, 0.0, 0

    def on_train_start(self, t): ...
    def on_epoch_start(self, t): ...
    def on_step_end(self, t): ...
    def on_train_end(self, t): ...
    def on_epoch_end(self, t): ...

    def on_record(self, t, r: dict) -> None:
        if r["type"] == "step":
            now = time.monotonic()
            if not self.tty and now - self.last < self.every_s and r["global_step"] != r["total_steps"]:
                return
            self.last = now
            frac = r["global_step"] / max(r["total_steps"], 1)
            bar = "#" * int(frac * 24)
            line = (f"epoch {r['epoch'] + 1} [{bar:<24}] {r['global_step']}/{r['total_steps']} "
                    f"loss {r['loss']:.4f} lr {r['lr']:.2e} {r['images_per_s']:.1f} img/s ETA {_hms(r['eta_s'])}")
            print("\r" + line if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)
        elif r["type"] == "epoch":
            self.epochs_done = r["epoch"] + 1
            m = r.get("metrics") or {}
            val = " ".join(f"{k} {m[k]:.4f}" for k in ("AP", "AP50") if m.get(k) is not None)
            loss = f"val_loss {r['val_loss']:.4f} " if r.get("val_loss") is not None else ""
            print(("\n" if self.tty else "") + f"epoch {r['epoch'] + 1} done: {loss}{val}".rstrip(),
                  file=sys.stderr, flush=True)
        elif r["type"] == "status":
            print(("\n" if self.tty else "") + f"status: {r['status']} {r.get('message', '')}".rstrip(),
                  file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
