"""Masks in pictures: ground-truth RLE (compressed and uncompressed) and polygons become masks, and
`draw_mask_layers` fills predicted masks and outlines ground-truth ones in the class colour."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from detcore import viz
from detcore.metrics.masks import rle_to_json
from detcore.structures import Sample

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools

H, W = 40, 60


def _square(x0, y0, x1, y1) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def _uncompressed(mask: np.ndarray) -> dict:
    flat = mask.T.reshape(-1).astype(np.uint8)  # column-major runs, starting with zeros
    changes = np.flatnonzero(np.diff(np.r_[0, flat, 1 - flat[-1]])) if len(flat) else []
    counts = np.diff(np.r_[0, changes]).tolist()
    return {"size": [H, W], "counts": counts}


def test_rle_and_polygon_ground_truth_become_masks():
    a, b, c = _square(5, 5, 20, 15), _square(30, 10, 50, 30), _square(2, 25, 12, 38)
    compressed = rle_to_json(mask_utils.encode(np.asfortranarray(b.astype(np.uint8))))
    polygon = [[2, 25, 12, 25, 12, 38, 2, 38]]
    sample = Sample("x", "x.png", W, H, boxes=[[5, 5, 20, 15], [30, 10, 50, 30], [2, 25, 12, 38]], labels=[0, 1, 0],
                    segmentations=[_uncompressed(a), compressed, polygon])
    masks = viz.ground_truth_masks(sample, (W, H))
    assert masks.shape == (3, H, W)
    assert np.array_equal(masks[0], a) and np.array_equal(masks[1], b)
    assert abs(int(masks[2].sum()) - int(c.sum())) <= 25  # a polygon rasterised (edges may differ by a pixel)
    drawn = viz.draw_ground_truth(np.zeros((H, W, 3), np.uint8), sample, ["p", "q"])
    assert drawn[20, 40].any() and not drawn[2, 55].any()  # inside the RLE mask tinted, background untouched


def test_mask_layers_fill_predictions_and_outline_ground_truth():
    image = np.full((H, W, 3), 100, np.uint8)
    gt, det = _square(5, 5, 25, 25), _square(35, 5, 55, 25)
    out = viz.draw_mask_layers(image, ["p"], gt_masks=gt[None], gt_labels=[0], det_masks=det[None], det_labels=[0])
    colour = np.array(viz.class_colors(["p"])["p"])
    assert (out[5, 5] == colour).all() and (out[15, 15] == 100).all()  # outline drawn, inside left alone
    assert not (out[15, 45] == 100).all() and not (out[15, 45] == colour).all()  # prediction: tinted, not opaque
    assert (out[35, 30] == 100).all()
