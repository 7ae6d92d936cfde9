"""Every training setting has a `train` flag (issue 10): optimizer/schedule, augmentation and split flags
reach TrainConfig; augmentation flags adjust the preset's augmentation instead of replacing it; a split
is previewed per class and part before training, and the run's split is exactly the preview."""

from __future__ import annotations

import argparse
import json

import pytest

from detcore.cli import build_parser, main
from detcore.commands.train import _config_and_run_dir
from detcore.data.detect import load_dataset
from detcore.train.runs import Run
from detcore.train.split_plan import plan_split, split_table
from tests.reliability.tinydata import TINY, run_cli, write_tiny_voc


def _config(*argv):
    args = build_parser().parse_args(["train", *argv])
    config, _, _ = _config_and_run_dir(args)
    return config


def test_flags_reach_the_config(tmp_path):
    data = write_tiny_voc(tmp_path / "voc")
    config = _config("--data", str(data), "--preset", "demo-cpu", "--schedule", "step", "--step-size", "2",
                     "--gamma", "0.5", "--warmup-iters", "7", "--weight-decay", "0.01", "--momentum", "0.8",
                     "--grad-clip", "5", "--no-amp", "--early-stopping-patience", "3", "--rotate", "15",
                     "--color-jitter", "0.3", "--scale-jitter", "0.2", "--val-fraction", "0.25",
                     "--split-method", "last_n", "--split-n", "2", "--out", str(tmp_path / "run"))
    assert (config.schedule, config.step_size, config.gamma, config.warmup_iters) == ("step", 2, 0.5, 7)
    assert (config.weight_decay, config.momentum, config.grad_clip, config.amp) == (0.01, 0.8, 5.0, False)
    assert config.early_stopping_patience == 3
    assert (config.val_fraction, config.split_method, config.split_n) == (0.25, "last_n", 2)
    # the preset's flip (0.5) stays; the flags add rotation, scale and colour jitter
    assert config.augment == {"hflip": 0.5, "rotate": 15.0, "scale_jitter": 0.2, "color_jitter": 0.3, "crop": None,
                              "balanced_crops": False}
    assert _config("--data", str(data), "--preset", "demo-cpu", "--hflip", "0").augment["hflip"] == 0.0


@pytest.mark.parametrize("flags, message", [
    (["--rotate", "500"], "error: augment.rotate: must be degrees in [0, 180]"),
    (["--split-method", "holdout"], "error: split_n: the holdout split needs a test image count (--split-n N)"),
    (["--val-fraction", "0.9"], "error: val_fraction:"),
    (["--gamma", "0"], "error: gamma:"),
])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, flags, message):
    data = write_tiny_voc(tmp_path / "voc")
    code = main(["train", "--data", str(data), "--preset", "demo-cpu", *flags, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "run").exists()


def test_split_table_counts_images_and_objects_per_class_and_part(tmp_path):
    parsed = load_dataset(write_tiny_voc(tmp_path / "voc", n=8))  # one object per image, red / blue alternating
    args = build_parser().parse_args(["train", "--data", str(parsed.root), "--model", TINY["model"], "--weights", "none",
                                      "--split-method", "last_n", "--split-n", "2", "--val-fraction", "0.5"])
    config, _, _ = _config_and_run_dir(argparse.Namespace(**{**vars(args), "out": str(tmp_path / "r")}))
    split = plan_split(config, parsed)
    assert split.test == ["img006", "img007"] and len(split.val) == 3 and len(split.train) == 3
    table = split_table(parsed, split).set_index("class")
    assert list(table.columns) == ["train", "val", "test"]
    assert table.loc["(images)"].tolist() == [3, 3, 2]
    assert table.loc["red", "test"] == 1 and table.loc["blue", "test"] == 1  # img006 red, img007 blue
    assert (table.loc[["red", "blue"]].sum() == table.loc["(images)"]).all()


def test_a_run_uses_exactly_the_previewed_split(tmp_path):
    data = write_tiny_voc(tmp_path / "voc", n=8)
    flags = ["--model", TINY["model"], "--weights", "none", "--device", "cpu", "--batch-size", "1", "--min-size", "64",
             "--max-size", "96", "--eval-every", "0", "--epochs", "1", "--max-iters-per-epoch", "1",
             "--split-method", "holdout", "--split-n", "3", "--split-seed", "5", "--val-fraction", "0.4",
             "--hflip", "1", "--rotate", "20"]
    done = run_cli("train", "--data", str(data), *flags, "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    run = Run(tmp_path / "run")
    preview = plan_split(run.config(), load_dataset(data))
    saved = run.split()
    assert (saved.train, saved.val, saved.test) == (preview.train, preview.val, preview.test)
    assert saved.method == "holdout" and len(saved.test) == 3 and len(saved.val) == 2
    assert json.loads((tmp_path / "run" / "config.json").read_text())["augment"]["rotate"] == 20.0
