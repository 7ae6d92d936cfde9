"""docs/recipes.md runs: every command of the four seed recipes, on the shared Face Mask and Penn-Fudan
samples, with a few iterations (for the path, not accuracy), and each recipe's tutorial bug checked
against what detboard produced. Skipped where ../shared is not beside the repository."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from detcore.cli import main
from tests.data.builders import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "docs" / "recipes.md"
SHARED = SHARED_DATA
DATASETS = {"data/face-mask-detection": SHARED / "facemask-sample", "data/PennFudanPed": SHARED / "PennFudanPed-sample"}
# What the test changes, and nothing else: no downloads here, and smoke-sized training.
SMOKE = ["--weights", "none", "--epochs", "1", "--max-iters-per-epoch", "1", "--batch-size", "1",
         "--min-size", "96", "--max-size", "128", "--device", "cpu", "--eval-every", "1", "--num-workers", "0"]
SMALL_SPLITS = {"170": "4", "50": "3"}  # the samples have 20 and 12 images
BUGS = {1: "score-blind mAP", 2: "label 0 for a real class", 3: "+1-pixel", 4: "the per-image `break`"}
SUMMARY = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

pytestmark = [pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data samples not beside the repository"),
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


def recipes() -> dict[int, tuple[str, list[list[str]]]]:
    """{number: (section text, commands)} — each command an argv after ``python -m detcore``."""
    text = RECIPES.read_text(encoding="utf-8")
    out = {}
    for section in re.split(r"^## ", text, flags=re.M)[1:]:
        number = int(section.split(".", 1)[0])
        commands = []
        for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                if line.strip():
                    argv = shlex.split(line)
                    assert argv[:3] == ["python", "-m", "detcore"], line
                    commands.append(argv[3:])
        out[number] = (section, commands)
    return out


def test_the_doc_has_four_recipes_each_naming_its_tutorial_bug():
    found = recipes()
    assert sorted(found) == [1, 2, 3, 4]
    for number, (text, commands) in found.items():
        assert f"**The tutorial bug detboard avoids: {BUGS[number]}" in text, number
        assert any(c[0] == "train" for c in commands) and any(c[0] == "evaluate" for c in commands), number


def _smoke(argv: list[str], runs: Path) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        if arg in DATASETS:
            arg = str(DATASETS[arg])
        elif arg.startswith("runs/"):
            arg = str(runs / arg[len("runs/"):])
        elif i and argv[i - 1] == "--split-n":
            arg = SMALL_SPLITS.get(arg, arg)
        out.append(arg)
    return out + SMOKE if argv[0] == "train" else out


def run_recipe(number: int, runs: Path) -> dict[str, dict]:
    """Run the recipe's commands in order; return each evaluate command's JSON, keyed by its flags."""
    outputs = {}
    for argv in recipes()[number][1]:
        argv = _smoke(argv, runs)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        assert code == 0, (argv, err.getvalue()[-2000:])
        if argv[0] == "evaluate":
            outputs["segm" if "segm" in argv else "bbox"] = json.loads(out.getvalue())
    return outputs


def pycocotools_stats(folder: Path, iou_type: str) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(folder / "gt.json"))
        ev = COCOeval(gt, gt.loadRes(str(folder / "detections.json")), iou_type)
        ev.evaluate(), ev.accumulate(), ev.summarize()
    return ev.stats


def _same_as_pycocotools(report: dict, folder: Path, iou_type: str) -> None:
    ours = [-1 if report[k] is None else report[k] for k in SUMMARY]
    np.testing.assert_allclose(ours, pycocotools_stats(folder, iou_type), atol=1e-9)


@pytest.mark.slow
def test_recipe_1_facemask_retinanet(tmp_path):
    out = run_recipe(1, tmp_path)
    report = out["bbox"]
    assert report["classes"] == ["mask_weared_incorrect", "with_mask", "without_mask"]
    assert {r["threshold"] for r in report["per_class"]} == {0.5}
    # score-aware AP: the same numbers as pycocotools on the exported pair
    _same_as_pycocotools(report, tmp_path / "facemask-retinanet" / "coco", "bbox")
    config = json.loads((tmp_path / "facemask-retinanet" / "config.json").read_text())
    assert config["augment"]["rotate"] == 180 and config["split_seed"] == 1234


@pytest.mark.slow
def test_recipe_2_facemask_faster_rcnn_per_class(tmp_path):
    from detcore.checkpoints import load_checkpoint
    from detcore.train.runs import Run

    out = run_recipe(2, tmp_path)
    run = Run(tmp_path / "facemask-frcnn")
    classes = run.classes()
    assert "without_mask" in classes and [r["class"] for r in out["bbox"]["per_class"]] == classes
    # label 0 is background only: the box predictor has K + 1 outputs, every class has its own
    weights = load_checkpoint(run.checkpoint("best"))["model"]
    assert weights["roi_heads.box_predictor.cls_score.weight"].shape[0] == len(classes) + 1
    split = run.split()
    assert split.method == "last_n" and split.test == sorted(split.train + split.test)[-4:]
    assert out["bbox"]["recommended_thresholds"]["target_precision"]["target"] == 0.9


@pytest.mark.slow
def test_recipe_3_pennfudan_mask_rcnn_box_and_mask_ap(tmp_path):
    from pycocotools import mask as mask_utils

    from detcore.train.runs import Run

    out = run_recipe(3, tmp_path)
    run = Run(tmp_path / "pennfudan-maskrcnn")
    metrics = run.events("epoch")[-1]["metrics"]
    assert "AP" in metrics and "segm_AP" in metrics  # mask AP during training
    assert out["segm"]["iou_type"] == "segm" and out["bbox"]["iou_type"] == "bbox"
    coco = tmp_path / "pennfudan-maskrcnn" / "coco"
    _same_as_pycocotools(out["segm"], coco, "segm")
    # boxes are continuous: a pedestrian's box covers its mask's last column and row
    gt = json.loads((coco / "gt.json").read_text())
    for ann in gt["annotations"]:
        rle = {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode()}
        ys, xs = np.nonzero(mask_utils.decode(rle))
        assert ann["bbox"] == pytest.approx([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()])


@pytest.mark.slow
def test_recipe_4_mobilenet_v2_backbone(tmp_path):
    from detcore.data.detect import load_dataset
    from detcore.train.runs import Run

    out = run_recipe(4, tmp_path)
    run = Run(tmp_path / "pennfudan-mobilenetv2")
    assert run.config().model == "fasterrcnn_mobilenet_v2_custom"
    by_id = load_dataset(DATASETS["data/PennFudanPed"]).sample_by_id()
    objects = sum(by_id[i].num_objects for i in run.split_ids("test"))
    assert out["bbox"]["per_class"][0]["n_gt"] == objects  # every pedestrian of every image counted, no break
