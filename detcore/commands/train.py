"""`python -m detcore train`: progress on stderr, a final summary on stdout.

    train --data DATA --model NAME [--weights coco|backbone|none|PATH] [--epochs N] ...
    train --data DATA --preset demo-cpu --out RUN_DIR       (flags override the preset)
    train --data DATA --preset cpu-real --time-limit 15     (real photos on a CPU, in a 15-minute budget)
    train --data DATA                                        (no model or preset: one is chosen and said)
    train --resume RUN_DIR [--epochs N]                     (N = new total, more or fewer; default: finish the run)
    train --list-models | --list-presets
    train --job RUN_DIR                                     (the job the app wrote into RUN_DIR/job.json)
    train ... --mlflow URI [--mlflow-experiment NAME]       (also log to MLflow; see detcore/train/tracking.py)
With the ``tensorboard`` package installed every run also writes RUN/tensorboard/ (DETBOARD_TENSORBOARD=0: off).
Under ``torchrun --nproc_per_node=N`` the same command trains with DDP; only rank 0 prints.
SIGTERM stops cooperatively, as the app's Stop does: last.pt is written and the run ends ``stopped``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

from detcore.catalog import MODELS
from detcore.errors import ConfigError
from detcore.paths import runs_root
from detcore.train.config import TrainConfig, config_from_preset
from detcore.train.presets import PRESETS
from detcore.train.runs import Run, Status, classifier_line, new_run_dir
from detcore.train.state import Callback

# flag name → TrainConfig field, for flags that map one to one
_FIELDS = {"data": "data", "format": "data_format", "model": "model", "weights": "weights", "epochs": "epochs",
           "batch_size": "batch_size", "lr": "lr", "device": "device", "split_seed": "split_seed",
           "test_fraction": "test_fraction", "optimizer": "optimizer", "seed": "seed", "num_workers": "num_workers",
           "cache_images_mb": "cache_images_mb",
           "min_size": "min_size", "max_size": "max_size", "eval_every": "eval_every",
           "max_iters_per_epoch": "max_iters_per_epoch", "anchors": "anchors", "input_size": "input_size",
           "max_input_size": "max_input_size", "time_limit": "time_limit",
           "classifier_minutes": "classifier_minutes",
           "split_method": "split_method"}
# More settings with a flag each (issue 10: the CLI sets everything the Train form sets).
_OPTIM_FIELDS = {"momentum": "momentum", "weight_decay": "weight_decay", "schedule": "schedule",
                 "step_size": "step_size", "gamma": "gamma", "warmup_iters": "warmup_iters", "grad_clip": "grad_clip",
                 "ema_decay": "ema_decay",
                 "amp": "amp", "cpu_bf16": "cpu_bf16", "channels_last": "channels_last",
                 "early_stopping_patience": "early_stopping_patience",
                 "trainable_backbone_layers": "trainable_backbone_layers"}
_SPLIT_FIELDS = {"val_fraction": "val_fraction", "split_n": "split_n"}
_AUGMENT_FLAGS = {"hflip": "hflip", "rotate": "rotate", "scale_jitter": "scale_jitter", "color_jitter": "color_jitter",
                  "crop": "crop", "balanced_crops": "balanced_crops"}
# Flags that are not training settings: where the run goes, what to do instead of training, where else to
# log (--mlflow: the command line's; the app's runs log to TensorBoard), the app's own job hand-off (--job).
NOT_SETTINGS = ("help", "out", "resume", "list_models", "list_presets", "job", "mlflow", "mlflow_experiment")


def flag_fields() -> dict[str, str]:
    """Every settings flag's argparse dest → the TrainConfig field it sets (``augment.<key>`` for augmentation)."""
    return {**_FIELDS, **_OPTIM_FIELDS, **_SPLIT_FIELDS, "preset": "preset",
            **{flag: f"augment.{key}" for flag, key in _AUGMENT_FLAGS.items()}}


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a detector into a run directory",
                              description="Train (or resume) a detector; the run directory holds everything.")
    p.add_argument("--data", help="dataset folder or .zip (VOC, Penn-Fudan, COCO, YOLO)")
    p.add_argument("--format", choices=["auto", "voc", "pennfudan", "coco", "yolo"], help="dataset format (default auto)")
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
    p.add_argument("--split-method", choices=["random", "last_n", "holdout", "imagesets"],
                   help="random (default: --test-fraction at random), last_n (the last --split-n images), holdout "
                        "(--split-n images at random) or imagesets: the split the dataset gives (VOC "
                        "ImageSets/Main lists, YOLO train/val/test folders)")
    p.add_argument("--num-workers", type=int)
    p.add_argument("--cache-images-mb", type=int, metavar="MB",
                   help="keep decoded training images in memory up to MB megabytes (0 = decode every time)")
    p.add_argument("--min-size", type=int, help="detector input: shorter side resized to this")
    p.add_argument("--max-size", type=int, help="detector input: longer side capped at this")
    p.add_argument("--eval-every", type=int, help="epochs between validations (0 = never)")
    p.add_argument("--anchors", type=_anchors_arg, metavar="default|auto|JSON",
                   help="anchor sizes / aspect ratios: torchvision's (default), fitted to the training split's "
                        "boxes (auto), or a JSON object {\"sizes\": [[...], ...], \"aspect_ratios\": [[...], ...]} "
                        "(SSD: {\"scales\": [...], \"aspect_ratios\": [...]}); see inspect --fit")
    p.add_argument("--input-size", type=_input_size_arg, metavar="default|auto|N",
                   help="detector input: torchvision's (default), fitted to the boxes (auto), or N pixels "
                        "(SSD: N x N; others: shorter side N, longer side at most 5/3 N)")
    p.add_argument("--max-input-size", type=int, metavar="N", help="cap for --input-size auto")
    p.add_argument("--time-limit", type=float, metavar="MINUTES",
                   help="wall-clock budget: the LR schedule is laid over the steps that fit, training stops in "
                        "time to validate and keep the best checkpoint (epochs then do not cap the run)")
    p.add_argument("--classifier-minutes", type=float, metavar="MINUTES",
                   help="after the detector, train a crop classifier for this long that re-scores each detected "
                        "object's class from a crop of it; kept only if it raises validation AP (0 = off; "
                        "under --time-limit the minutes are part of the limit, at most a quarter of it)")
    p.add_argument("--max-iters-per-epoch", type=int, help="cap iterations per epoch (smoke runs)")
    _add_more_setting_flags(p)
    p.add_argument("--out", help="run directory (default: a new folder under $DETBOARD_RUNS)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last.pt (a time-limited run: "
                                                        "--time-limit M sets a new total budget, --epochs N trains "
                                                        "to epoch N without one)")
    p.add_argument("--mlflow", metavar="URI", help="also log params, metrics and the exported ONNX model to this MLflow "
                                               "tracking URI (http://server:5000, or a local store; needs "
                                               "requirements-tracking.txt)")
    p.add_argument("--mlflow-experiment", default="detboard", metavar="NAME", help="MLflow experiment (default: detboard)")
    p.add_argument("--list-models", action="store_true", help="print the model registry and exit")
    p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    p.add_argument("--job", metavar="RUN_DIR", help="train the job the app queued in RUN_DIR (its job.json: settings, "
                                                    "resume, processes); how the app starts every training process")
    p.set_defaults(handler=run_train)


def _add_more_setting_flags(p: argparse.ArgumentParser) -> None:
    opt = p.add_argument_group("optimizer and schedule")
    opt.add_argument("--momentum", type=float, help="SGD momentum")
    opt.add_argument("--weight-decay", type=float)
    opt.add_argument("--schedule", choices=["step", "cosine", "none"], help="learning-rate schedule after warm-up")
    opt.add_argument("--step-size", type=int, help="step schedule: epochs between decays")
    opt.add_argument("--gamma", type=float, help="step schedule: factor per decay")
    opt.add_argument("--warmup-iters", type=int, help="iterations of linear warm-up")
    opt.add_argument("--grad-clip", type=float, help="clip the gradient norm at this value")
    opt.add_argument("--ema-decay", type=float, metavar="D",
                     help="average the weights over steps (e.g. 0.998): validation, best.pt and prediction use "
                          "the average")
    opt.add_argument("--amp", action=argparse.BooleanOptionalAction, help="mixed precision (CUDA only)")
    opt.add_argument("--cpu-bf16", action=argparse.BooleanOptionalAction,
                     help="bfloat16 autocast when training on a CPU with native bf16 (AVX512-BF16 / AMX); "
                          "elsewhere training stays float32 and the run's start message says so")
    opt.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="channels-last memory format")
    opt.add_argument("--early-stopping-patience", type=int, help="stop after N validations without AP gain (0 = off)")
    opt.add_argument("--trainable-backbone-layers", type=int, help="pretrained backbone layers left trainable (0-5)")
    aug = p.add_argument_group("augmentation (training images only; boxes and masks move with the pixels)")
    aug.add_argument("--hflip", type=float, metavar="P", help="horizontal flip probability (0 = off)")
    aug.add_argument("--rotate", type=float, metavar="DEG", help="random rotation up to ± DEG degrees (0 = off)")
    aug.add_argument("--scale-jitter", type=float, metavar="F", help="random zoom in [1 - F, 1 + F] (0 = off)")
    aug.add_argument("--color-jitter", type=float, metavar="F",
                     help="brightness / contrast / saturation jitter strength (0 = off)")
    aug.add_argument("--crop", type=int, metavar="N", help="train on random N x N crops cut at the model's own scale "
                                                        "(0 = whole images; detcore/data/crops.py)")
    aug.add_argument("--balanced-crops", action=argparse.BooleanOptionalAction,
                     help="rare classes more often: images holding them are drawn more often and crops are "
                          "placed around their objects (1/sqrt of the frequency)")
    split = p.add_argument_group("split (saved with the run; evaluation uses the same images)")
    split.add_argument("--val-fraction", type=float, help="validation part drawn from the non-test images (0 = "
                                                          "validate on the test part)")
    split.add_argument("--split-n", type=int, metavar="N", help="test images for last_n (the last N in file order) "
                                                                "and holdout (N at random); random: overrides "
                                                                "--test-fraction")


def _anchors_arg(text: str):
    if text in ("default", "auto"):
        return text
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be default, auto or a JSON object") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be default, auto or a JSON object")
    return value


def _input_size_arg(text: str):
    if text in ("default", "auto"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be default, auto or a number of pixels") from None


def run_train(args: argparse.Namespace) -> int:
    if args.list_models:
        for info in MODELS:
            print(f"{info.name:40s} {info.title}  (weights: {', '.join(info.weights)})")
        return 0
    if args.list_presets:
        print(json.dumps(PRESETS, indent=2))
        return 0
    stop = _stop_on_sigterm()  # first: a Stop during the seconds torch takes to import is honoured too
    if args.job:
        config, run_dir, resume, extra = _job(args)  # a bad job file is refused before torch loads
    from detcore.train.trainer import train  # torch: only when training

    if not args.job:
        config, run_dir, extra = _config_and_run_dir(args)
        resume = bool(args.resume)
    progress = ProgressPrinter()
    callbacks = [progress]
    if getattr(args, "mlflow", None) and int(os.environ.get("RANK", "0")) == 0:
        from detcore.train.tracking import MLflowLogger

        callbacks.append(MLflowLogger(args.mlflow, experiment=args.mlflow_experiment).connect())  # fails fast
    status = train(config, run_dir, callbacks=callbacks, resume=resume, extra_epochs=extra, stop_event=stop)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0 if status in (Status.COMPLETED, Status.STOPPED) else 1
    progress.finish()
    run = Run(run_dir)
    print(json.dumps({"run": str(run_dir), "status": status, "message": run.message(),
                      "epochs_done": progress.epochs_done, "best_AP": run.best_metric(),
                      "best_AP50": run.best_metric("AP50")}, indent=2))
    return 0 if status in (Status.COMPLETED, Status.STOPPED) else 1


def _stop_on_sigterm() -> threading.Event:
    """SIGTERM (the app's Stop, ``kill PID``, torchrun passing on a stop) sets the event the trainer
    checks every iteration: it writes last.pt and ends the run ``stopped`` instead of dying mid-write."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():  # Python allows handlers only there
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    return stop


def _job(args):
    given = [f"--{flag.replace('_', '-')}" for flag in ("data", "model", "preset", "resume", "out")
             if getattr(args, flag)]
    if given:
        raise ConfigError("--job", f"takes its settings from the run's job file; drop {', '.join(given)}")
    spec = Run(args.job).job_spec()
    return spec.config, args.job, spec.resume, spec.extra_epochs


def _config_and_run_dir(args):

    fields = {flag: f for flag, f in flag_fields().items() if not f.startswith("augment.") and f != "preset"}
    overrides = {field: getattr(args, flag) for flag, field in fields.items() if getattr(args, flag) is not None}
    augment = {key: getattr(args, flag) for flag, key in _AUGMENT_FLAGS.items() if getattr(args, flag) is not None}
    if augment.get("crop") == 0:
        augment["crop"] = None  # --crop 0: whole images, even where the preset crops

    def on_preset(preset: str | None) -> dict:
        """The overrides, with augment flags on top of the preset's augmentation (or the defaults)."""
        if not augment:
            return overrides
        return {**overrides, "augment": {**PRESETS.get(preset or "", {}).get("augment", {}), **augment}}

    if args.resume:
        run = Run(args.resume)
        saved = run.resume_plan().config  # every resume check lives in Run.resume_plan
        extra = 0
        if args.epochs:  # --epochs is the new total (more or fewer); on a time-limited run it lifts the budget
            lifted = saved.time_limit and args.time_limit is None
            extra = args.epochs - (run.epochs_done() if lifted else saved.epochs)
        plan = run.resume_plan(extra, data=overrides.get("data"), data_format=overrides.get("data_format"),
                               time_limit=args.time_limit)
        return plan.config, args.resume, extra
    if args.preset:
        config = config_from_preset(args.preset, **on_preset(args.preset))
    elif args.model:
        config = TrainConfig.from_dict(on_preset(None))
    else:  # neither: the recipe that fits this data and machine, said on stderr
        from detcore.train.presets import suggest_preset

        if not args.data:
            raise ConfigError("--data", "name the dataset to train on")
        preset, why = suggest_preset(args.data, cuda=_cuda_available(overrides.get("device")))
        print(f"preset {preset}: {why} (name --preset or --model to choose yourself)", file=sys.stderr)
        config = config_from_preset(preset, **on_preset(preset))  # --scale-jitter alone keeps its crops
    if not config.data:
        raise ConfigError("--data", "name the dataset to train on")
    config.validate()
    if args.out:
        run_dir = args.out
    elif int(os.environ.get("RANK", "0")) == 0 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        run_dir = str(new_run_dir(runs_root(), f"{config.model}-{time.strftime('%Y%m%d-%H%M%S')}"))
    else:
        raise ConfigError("--out", "name the run directory when training with torchrun (all ranks must agree)")
    return config, run_dir, 0


def _cuda_available(device: str | None) -> bool:
    if device == "cpu":
        return False
    import torch  # only when no model or preset is named: the suggestion depends on a GPU

    return torch.cuda.is_available()


class ProgressPrinter(Callback):
    """A progress bar on stderr (a redrawn line on a TTY, a plain line every few seconds otherwise)."""

    def __init__(self, *, every_s: float = 5.0):
        self.tty = sys.stderr.isatty()
        self.every_s, self.last, self.epochs_done = every_s, 0.0, 0

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
            val = " ".join(f"{k} {m[k]:.4f}" for k in ("AP", "AP50", "segm_AP", "segm_AP50") if m.get(k) is not None)
            loss = f"val_loss {r['val_loss']:.4f} " if r.get("val_loss") is not None else ""
            print(("\n" if self.tty else "") + f"epoch {r['epoch'] + 1} done: {loss}{val}".rstrip(),
                  file=sys.stderr, flush=True)
        elif r["type"] == "classifier":
            print(("\n" if self.tty else "") + classifier_line(r), file=sys.stderr, flush=True)
        elif r["type"] == "status":
            print(("\n" if self.tty else "") + f"status: {r['status']} {r.get('message', '')}".rstrip(),
                  file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.tty:
            print(file=sys.stderr)


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
