"""Training and evaluation read a YOLO export and keep its own split (`--split-method imagesets`)."""

import json

from detcore.cli import main
from detcore.train.runs import Run
from tests.data.builders import write_yolo_part, write_yolo_yaml

FAST = ["--model", "fasterrcnn_mobilenet_v3_large_320_fpn", "--weights", "none", "--device", "cpu",
        "--min-size", "64", "--max-size", "96", "--max-iters-per-epoch", "1", "--eval-every", "0",
        "--batch-size", "1", "--epochs", "1"]


def test_train_on_a_roboflow_export_keeps_its_split_and_evaluates(tmp_path, capsys):
    root = tmp_path / "rf"
    write_yolo_yaml(root, ["red", "blue"], train="../train/images", val="../valid/images", test="../test/images")
    box = ["0 0.5 0.5 0.4 0.4", "1 0.3 0.3 0.2 0.2"]
    for part, stems in {"train": ["a", "b", "c"], "valid": ["a"], "test": ["a", "d"]}.items():
        write_yolo_part(root / part / "images", root / part / "labels", {s: box for s in stems}, size=(80, 64))
    run = tmp_path / "run"
    assert main(["train", "--data", str(root), "--format", "yolo", "--split-method", "imagesets", *FAST,
                 "--out", str(run)]) == 0
    split = Run(run).split()
    assert (split.train, split.val, split.test) == (["train/a", "train/b", "train/c"], ["valid/a"],
                                                    ["test/a", "test/d"])
    assert split.method == "imagesets"
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 2 and "AP50" in result
