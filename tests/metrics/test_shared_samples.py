"""The real data samples (when present): our engine equals pycocotools on them, bbox and segm."""

import numpy as np
import pytest

from detcore.metrics import evaluate_detections
from detcore.metrics.masks import sample_rles
from detcore.metrics.voc import evaluate_voc
from detcore.structures import Detections
from tests.data.builders import SHARED_DATA
from tests.metrics.cocogen import pycocotools_eval

SHARED = SHARED_DATA
pytestmark = [pytest.mark.skipif(not SHARED.exists(), reason="shared data samples not on this machine"),
              # pycocotools' mask decoding warns under numpy 2 (its issue; our code paths do not)
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


def jittered(samples, rng, *, masks=False):
    out = []
    for s in samples:
        n = s.num_objects
        boxes = s.boxes + rng.normal(0, 3, (n, 4)).astype(np.float32)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        m = None
        if masks:
            from pycocotools import mask as mask_utils

            m = np.stack([np.roll(mask_utils.decode([r])[..., 0].astype(bool), int(rng.integers(-6, 7)), axis=1)
                          for r in sample_rles(s)]) if n else np.zeros((0, s.height, s.width), bool)
        out.append(Detections(s.image_id, boxes, rng.choice([0.3, 0.6, 0.9], n), s.labels, masks=m))
    return out


def test_facemask_sample_bbox_equals_pycocotools_and_perfect_boxes_score_one():
    from detcore.data.voc import load_voc_folder

    parsed = load_voc_folder(SHARED / "facemask-sample")
    dets = jittered(parsed.samples, np.random.default_rng(0))
    ours = evaluate_detections(parsed.samples, dets, parsed.classes).summary()
    ev = pycocotools_eval(parsed.samples, dets, parsed.classes)
    np.testing.assert_allclose([-1 if v is None else v for v in ours.values()], ev.stats, atol=1e-9)
    perfect = [Detections(s.image_id, s.boxes, np.ones(s.num_objects), s.labels) for s in parsed.samples]
    assert evaluate_voc(parsed.samples, perfect, parsed.classes)["mAP"] == pytest.approx(1.0)
    assert evaluate_detections(parsed.samples, perfect, parsed.classes).summary()["AP"] == pytest.approx(1.0)


def test_pennfudan_sample_mask_ap_equals_pycocotools():
    from detcore.data.pennfudan import load_pennfudan

    parsed = load_pennfudan(SHARED / "PennFudanPed-sample")
    dets = jittered(parsed.samples, np.random.default_rng(1), masks=True)
    ours = evaluate_detections(parsed.samples, dets, parsed.classes, iou_type="segm").summary()
    ev = pycocotools_eval(parsed.samples, dets, parsed.classes, iou_type="segm")
    np.testing.assert_allclose([-1 if v is None else v for v in ours.values()], ev.stats, atol=1e-9)
