"""Runs to export, made once per session: the demo model (SSDlite through the real trainer, a few
steps on demo images) and untrained Faster R-CNN MobileNetV3 / RetinaNet / Mask R-CNN runs whose
checkpoints are written the way the trainer writes them. Untrained detectors are degenerate (every
box the same score) unless their BatchNorm statistics come from real images and their classifier
is spread, so the random-weight runs get both — the equivalence tests then compare hundreds of
distinct detections per image, not ties.

Images are the shared real samples when this machine has them (../shared/data beside the repo,
or /work/shared/data), else rendered demo pictures, so the tests run everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.builders import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]


def shared_data() -> Path | None:
    return SHARED_DATA if (SHARED_DATA / "facemask-sample" / "images").is_dir() else None


@pytest.fixture(scope="session")
def sample_image_paths(tmp_path_factory) -> list[Path]:
    """Four real photos of different sizes and aspect ratios (or rendered demo images)."""
    shared = shared_data()
    if shared is not None:
        faces = sorted((shared / "facemask-sample" / "images").glob("*.png"))[:3]
        people = sorted((shared / "PennFudanPed-sample" / "PNGImages").glob("*.png"))[:1]
        return faces + people
    from detcore.data.demo import render_demo_image

    folder = tmp_path_factory.mktemp("images")
    out = []
    for i, size in enumerate([(400, 300), (512, 366), (301, 400), (559, 536)]):
        image, _ = render_demo_image(i, seed=3)
        out.append(folder / f"demo{i}.png")
        image.resize(size).save(out[-1])
    return out


@pytest.fixture(scope="session")
def sample_images(sample_image_paths) -> list[np.ndarray]:
    from detcore.data.images import load_rgb

    return [load_rgb(p) for p in sample_image_paths]


@pytest.fixture(scope="session")
def pedestrian_image(tmp_path_factory) -> Path:
    shared = shared_data()
    if shared is not None:
        return sorted((shared / "PennFudanPed-sample" / "PNGImages").glob("*.png"))[0]
    from detcore.data.demo import render_demo_image

    path = tmp_path_factory.mktemp("ped") / "ped.png"
    render_demo_image(7, seed=3)[0].resize((420, 380)).save(path)
    return path


def _as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255


def write_random_run(root: Path, model: str, images: list[np.ndarray], *, classes=CLASSES, spread: float,
                     min_size: int = 128, max_size: int = 160) -> Path:
    """A run directory with an untrained ``model`` checkpoint (BatchNorm statistics from ``images``)."""
    from detcore.models import build_model
    from detcore.train.config import TrainConfig
    from detcore.train.precise_bn import recalibrate_batchnorm

    run = root / model
    (run / "checkpoints").mkdir(parents=True)
    config = TrainConfig(model=model, weights="none", min_size=min_size, max_size=max_size).to_dict()
    (run / "config.json").write_text(json.dumps(config))
    (run / "classes.json").write_text(json.dumps(list(classes)))
    torch.manual_seed(0)
    net = build_model(model, classes=list(classes), weights="none", min_size=min_size, max_size=max_size)
    with torch.no_grad():
        if hasattr(net, "roi_heads"):
            net.roi_heads.box_predictor.cls_score.weight.normal_(0.0, spread)
        else:  # RetinaNet: keep the prior bias low, spread the last layer a little
            net.head.classification_head.cls_logits.weight.normal_(0.0, spread)
            net.head.classification_head.cls_logits.bias.fill_(-2.0)
    recalibrate_batchnorm(net, [_as_tensor(i) for i in images])
    torch.save({"model": net.state_dict(), "classes": list(classes), "config": config, "epoch": 1,
                "metrics": {"AP": 0.0, "AP50": 0.0}}, run / "checkpoints" / "best.pt")
    return run


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The demo model: the demo-cpu preset (SSDlite 320, from scratch) through the real trainer,
    a few steps on 16 demo images, validated once (so PreciseBatchNorm ran and metrics exist)."""
    from detcore.data.demo import generate_demo_dataset
    from detcore.train.config import config_from_preset
    from detcore.train.trainer import train

    base = tmp_path_factory.mktemp("demo-run")
    data = generate_demo_dataset(base / "demo", n_images=16, seed=1)
    config = config_from_preset("demo-cpu", data=str(data), epochs=1, batch_size=4, max_iters_per_epoch=3,
                                eval_every=1, warmup_iters=0, device="cpu")
    run = base / "run"
    assert train(config, run) == "completed"
    return run


@pytest.fixture(scope="session")
def frcnn_run(tmp_path_factory, sample_images) -> Path:
    return write_random_run(tmp_path_factory.mktemp("frcnn"), "fasterrcnn_mobilenet_v3_large_320_fpn",
                            sample_images, spread=0.3)


@pytest.fixture(scope="session")
def retinanet_run(tmp_path_factory, sample_images) -> Path:
    return write_random_run(tmp_path_factory.mktemp("retina"), "retinanet_resnet50_fpn", sample_images, spread=0.03)


def match_detections(ref, got, **kwargs):
    """(unmatched reference indices, unmatched exported indices); see pair_detections."""
    _, missing, extra = pair_detections(ref, got, **kwargs)
    return missing, extra


def pair_detections(ref, got, *, iou_min: float = 0.99, score_tol: float = 1e-3, cap: int | None = None,
                    floor: float = 0.0):
    """Pair each reference detection with an exported one of the same class, a score within
    ``score_tol`` and box IoU >= ``iou_min`` (zero-area boxes: corners within 0.01 px). Returns the
    (reference, exported) index pairs and the unmatched indices of each side, leaving out only those a score difference within ``score_tol``
    can legitimately move across a cut: the score ``floor``, the lowest score kept when a side
    hit the ``cap`` (detections per image), and a tie swapped at a per-class top-k cut."""
    from torchvision.ops import box_iou

    n, m = len(ref), len(got)
    if n and m:
        iou = box_iou(torch.from_numpy(ref.boxes), torch.from_numpy(got.boxes)).numpy()
        close = np.abs(ref.boxes[:, None, :] - got.boxes[None, :, :]).max(-1) <= 0.01
        same_box = np.where(np.isnan(iou), close, iou >= iou_min) | close
        ok = same_box & (ref.labels[:, None] == got.labels[None, :]) & \
            (np.abs(ref.scores[:, None] - got.scores[None, :]) <= score_tol)
    else:
        ok = np.zeros((n, m), bool)
    used = np.zeros(m, bool)
    unmatched_ref, pairs = [], []
    for i in np.argsort(-ref.scores, kind="stable"):
        candidates = np.flatnonzero(ok[i] & ~used)
        if len(candidates):
            j = int(candidates[np.argmin(np.abs(ref.scores[i] - got.scores[candidates]))])
            used[j] = True
            pairs.append((int(i), j))
        else:
            unmatched_ref.append(int(i))
    unmatched_got = [int(j) for j in np.flatnonzero(~used)]
    cut = floor + score_tol
    for side in (ref, got):
        if cap is not None and len(side) >= cap:
            cut = max(cut, float(side.scores.min()) + score_tol)
    unmatched_ref = [i for i in unmatched_ref if ref.scores[i] > cut]
    unmatched_got = [j for j in unmatched_got if got.scores[j] > cut]
    # Models also cut inside (SSD keeps the top ``topk_candidates`` boxes per class before NMS): two
    # boxes of one class whose scores tie within ``score_tol`` can swap across that cut. Such a swap
    # shows as one unmatched box on each side, same class, scores within tol, each its class's
    # lowest-scoring detection (within tol: the cut lies below all the others).
    def lowest_of_class(side, k):
        return float(side.scores[k]) <= float(side.scores[side.labels == side.labels[k]].min()) + score_tol

    for i in list(unmatched_ref):
        twins = [j for j in unmatched_got
                 if got.labels[j] == ref.labels[i] and abs(float(got.scores[j]) - float(ref.scores[i])) <= score_tol
                 and lowest_of_class(got, j)]
        if twins and lowest_of_class(ref, i):
            unmatched_ref.remove(i)
            unmatched_got.remove(twins[0])
    return pairs, unmatched_ref, unmatched_got
