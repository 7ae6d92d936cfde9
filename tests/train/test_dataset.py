"""DetectionDataset: the torch boundary (label = class + 1, boxes and masks moved with the pixels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detcore.data.dataset import DetectionDataset, build_transforms, collate_fn
from detcore.errors import DataError
from detcore.structures import Sample


def _image(path: Path, w: int = 80, h: int = 60) -> Path:
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)
    return path


def test_labels_shift_by_one_and_boxes_survive_untouched(tmp_path):
    s = Sample("a", _image(tmp_path / "a.png"), 80, 60, boxes=[[5, 6, 30, 40], [40, 10, 70, 50]], labels=[0, 2])
    image, target = DetectionDataset([s], ["x", "y", "z"])[0]
    assert image.dtype == torch.float32 and image.shape == (3, 60, 80)
    assert 0.49 < float(image.mean()) < 0.51
    assert target["labels"].tolist() == [1, 3]  # never 0: that is background
    assert torch.equal(target["boxes"], torch.tensor([[5.0, 6, 30, 40], [40, 10, 70, 50]]))
    assert target["area"].tolist() == [25 * 34, 30 * 40]
    assert target["iscrowd"].tolist() == [0, 0] and target["image_id"] == 0


def test_flip_moves_boxes_with_pixels_and_sanitize_drops_lost_boxes(tmp_path):
    img = np.zeros((60, 80, 3), np.uint8)
    img[6:40, 5:30] = 255
    Image.fromarray(img).save(tmp_path / "b.png")
    s = Sample("b", tmp_path / "b.png", 80, 60, boxes=[[5, 6, 30, 40]], labels=[1])
    ds = DetectionDataset([s], ["x", "y"], build_transforms(True, {"hflip": 1.0}))
    image, target = ds[0]
    assert target["boxes"].tolist() == [[50.0, 6.0, 75.0, 40.0]]  # x -> W - x
    assert float(image[:, 20, 60].mean()) == 1.0 and float(image[:, 20, 10].mean()) == 0.0

    rotated = DetectionDataset([s], ["x", "y"], build_transforms(True, {"rotate": 180, "scale_jitter": [0.9, 1.1],
                                                                       "color_jitter": 0.3}))
    for _ in range(3):
        _, t = rotated[0]
        assert len(t["boxes"]) == len(t["labels"]) == len(t["iscrowd"])
        if len(t["boxes"]):
            b = t["boxes"]
            assert bool((b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all())


def test_pennfudan_instance_masks(tmp_path):
    ids = np.zeros((60, 80), np.uint8)
    ids[5:25, 5:20] = 1
    ids[30:55, 40:70] = 2
    Image.fromarray(ids, mode="L").save(tmp_path / "m.png")
    s = Sample("p", _image(tmp_path / "p.png"), 80, 60, boxes=[[5, 5, 20, 25], [40, 30, 70, 55]], labels=[0, 0],
               mask_path=tmp_path / "m.png", mask_ids=[1, 2])
    _, t = DetectionDataset([s], ["person"], with_masks=True)[0]
    assert t["masks"].shape == (2, 60, 80) and t["masks"].dtype == torch.uint8
    assert t["masks"].flatten(1).sum(1).tolist() == [20 * 15, 25 * 30]
    assert t["area"].tolist() == [300.0, 750.0]


def test_coco_polygon_and_rle_segmentations(tmp_path):
    from pycocotools import mask as coco_mask

    square = np.zeros((60, 80), np.uint8, order="F")
    square[10:30, 40:60] = 1
    rle = coco_mask.encode(square)
    rle["counts"] = rle["counts"].decode()
    polygon = [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]]
    s = Sample("c", _image(tmp_path / "c.png"), 80, 60, boxes=[[10, 10, 30, 30], [40, 10, 60, 30]], labels=[0, 1],
               segmentations=[polygon, rle])
    _, t = DetectionDataset([s], ["a", "b"], with_masks=True)[0]
    areas = t["masks"].flatten(1).sum(1).tolist()
    assert 380 <= areas[0] <= 441 and areas[1] == 400


def test_label_outside_classes_is_a_clear_error(tmp_path):
    s = Sample("d", _image(tmp_path / "d.png"), 80, 60, boxes=[[1, 1, 9, 9]], labels=[3],
               annotation_path=tmp_path / "d.xml")
    with pytest.raises(DataError, match="d.xml.*outside the 2 classes"):
        DetectionDataset([s], ["a", "b"])


def test_empty_image_and_collate(tmp_path):
    s = Sample("e", _image(tmp_path / "e.png", 40, 30), 40, 30)
    ds = DetectionDataset([s, s], ["a"], build_transforms(True, {"hflip": 0.5}))
    images, targets = collate_fn([ds[0], ds[1]])
    assert len(images) == 2 and targets[0]["boxes"].shape == (0, 4) and targets[1]["image_id"] == 1


def test_shared_pennfudan_sample_loads_with_masks():
    root = Path("/work/shared/data/PennFudanPed-sample")
    if not root.is_dir():
        pytest.skip("shared Penn-Fudan sample not present")
    from detcore.data.pennfudan import load_pennfudan

    parsed = load_pennfudan(root)
    image, t = DetectionDataset(parsed.samples[:1], parsed.classes, with_masks=True)[0]
    assert t["masks"].shape[0] == len(t["boxes"]) == parsed.samples[0].num_objects
    assert t["masks"].shape[1:] == image.shape[1:]
    assert set(t["labels"].tolist()) == {1}
