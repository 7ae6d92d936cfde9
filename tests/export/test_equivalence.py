"""Exported files give the PyTorch model's detections: the demo model (SSDlite), a Faster R-CNN
MobileNetV3 and a RetinaNet, as ONNX (onnxruntime, CPU) and TorchScript, on real photos of several
sizes and aspect ratios. Every detection must be matched: same class, score within 1e-3, box IoU
>= 0.99. The reference is the untouched eager model through the Predictor, one image at a time."""

import numpy as np
import pytest

from detcore.cli import main
from detcore.export.runtime import ExportedModel
from detcore.inference import Predictor
from tests.export.conftest import match_detections, pair_detections

FORMATS = ["onnx", "torchscript"]
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


def _export(run, fmt, out, capsys):
    assert main(["export", str(run), "--format", fmt, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    return ExportedModel.load(out)


def _assert_equivalent(run, exported, images):
    predictor = Predictor.from_run(run, device="cpu")
    cap = getattr(getattr(predictor.model, "roi_heads", predictor.model), "detections_per_img")
    total = 0
    for k, image in enumerate(images):
        (ref,) = predictor.predict([image], score_floor=exported.score_floor, batch_size=1)
        (got,) = exported.predict([image])
        missing, extra = match_detections(ref, got, cap=cap, floor=exported.score_floor)
        assert not missing and not extra, (
            f"image {k} {image.shape}: {len(missing)} of {len(ref)} PyTorch detections unmatched, "
            f"{len(extra)} of {len(got)} exported ones extra")
        total += len(ref)
        h, w = image.shape[:2]
        if len(got):  # boxes in input-image pixels, labels are class indices
            assert got.boxes[:, [0, 2]].max() <= w + 1e-3 and got.boxes[:, [1, 3]].max() <= h + 1e-3
            assert 0 <= got.labels.min() and got.labels.max() < len(exported.classes)
    assert total >= 20 * len(images)  # many distinct detections were compared, not a handful


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_demo_model_export_equals_pytorch(demo_run, sample_images, fmt, tmp_path, capsys):
    exported = _export(demo_run, fmt, tmp_path / f"demo{SUFFIX[fmt]}", capsys)
    assert exported.model_name == "ssdlite320_mobilenet_v3_large"
    _assert_equivalent(demo_run, exported, sample_images)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_faster_rcnn_export_equals_pytorch(frcnn_run, sample_images, fmt, tmp_path, capsys):
    exported = _export(frcnn_run, fmt, tmp_path / f"frcnn{SUFFIX[fmt]}", capsys)
    _assert_equivalent(frcnn_run, exported, sample_images)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx"])  # TorchScript runs the same torch code as eager (measured: identical)
def test_retinanet_export_equals_pytorch(retinanet_run, sample_images, fmt, tmp_path, capsys):
    exported = _export(retinanet_run, fmt, tmp_path / f"retina{SUFFIX[fmt]}", capsys)
    _assert_equivalent(retinanet_run, exported, sample_images)


def test_exported_resize_gives_eager_sizes_for_any_input():
    """The reason for ExactResizeTransform: torchvision's traced resize computes the scale in float32
    and floors e.g. 400 * 0.39999998 to 159 where eager PyTorch gives 160. Through onnxruntime our
    graph must give eager's size for every input size, including exact-multiple edge cases."""
    import io
    import warnings

    import onnxruntime as ort
    import torch
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    from detcore.export.graph import ExactResizeTransform

    class Resize(torch.nn.Module):
        def __init__(self, min_size, max_size):
            super().__init__()
            self.t = ExactResizeTransform.like(GeneralizedRCNNTransform(min_size, max_size, [0.0] * 3, [1.0] * 3)).eval()

        def forward(self, image):
            return torch._shape_as_tensor(self.t.resize(image)[0])

    rng = np.random.default_rng(0)
    sizes = [(400, 1000), (156, 400), (536, 559), (49, 49), (800, 1333)] + \
        [tuple(int(v) for v in s) for s in rng.integers(8, 2500, (150, 2))]
    for min_size, max_size in [(128, 160), (800, 1333), (320, 640)]:
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Resize(min_size, max_size), (torch.rand(3, 60, 80),), buf, dynamo=False, opset_version=17,
                              input_names=["image"], dynamic_axes={"image": {1: "h", 2: "w"}})
        session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
        for h, w in sizes:
            scale = min(min_size / min(h, w), max_size / max(h, w))  # torchvision's eager formula
            want = (int(h * scale), int(w * scale))
            if min(want) < 1:
                continue
            got = tuple(session.run(None, {"image": np.zeros((3, h, w), np.float32)})[0][1:])
            assert got == want, (min_size, max_size, h, w)


@pytest.mark.slow
def test_mask_rcnn_exports_masks_that_equal_pytorch(tmp_path, pedestrian_image, capsys):
    """Mask R-CNN: ONNX outputs masks too; matched detections' masks (thresholded at 0.5) agree
    with PyTorch's, and `predict FILE --json` carries them as RLE of the image's size."""
    import json

    from pycocotools import mask as mask_utils

    from detcore.data.images import load_rgb
    from tests.export.conftest import write_random_run

    image = load_rgb(pedestrian_image)
    run = write_random_run(tmp_path, "maskrcnn_resnet50_fpn", [image, image[::-1].copy()], classes=["person"],
                           spread=0.02, min_size=128, max_size=160)
    exported = _export(run, "onnx", tmp_path / "mask.onnx", capsys)
    predictor = Predictor.from_run(run, device="cpu")
    (ref,) = predictor.predict([image], score_floor=exported.score_floor, batch_size=1)
    (got,) = exported.predict([image])
    pairs, missing, extra = pair_detections(ref, got, cap=100, floor=exported.score_floor)
    # An untrained ResNet-50 at 128 px piles up boxes overlapping at NMS's IoU 0.5 cut; a 1e-4
    # difference flips the odd one (measured: 1 of 100). The box models above must match exactly.
    assert len(missing) <= 3 and len(extra) <= 3 and len(ref) >= 20
    assert got.masks.shape == (len(got), *image.shape[:2])
    mask_iou = []
    for i, j in pairs:
        union = (ref.masks[i] | got.masks[j]).sum()
        mask_iou.append((ref.masks[i] & got.masks[j]).sum() / union if union else 1.0)
    assert np.median(mask_iou) >= 0.99 and np.percentile(mask_iou, 5) >= 0.95  # measured: 0.9998, 0.999

    assert main(["predict", str(tmp_path / "mask.onnx"), str(pedestrian_image), "--json",
                 "--score-threshold", "0.5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["images"][0]["detections"]
    assert rows and all(r["label"] == "person" for r in rows)
    decoded = mask_utils.decode(dict(rows[0]["mask"], counts=rows[0]["mask"]["counts"].encode()))
    assert decoded.shape == image.shape[:2] and decoded.any()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_run_with_a_crop_classifier_exports_it_inside_the_graph(frcnn_run, sample_images, fmt, tmp_path, capsys):
    # The re-scored detections (detcore/crop_classifier.py), not the detector's own, must come out of the file.
    import shutil

    import torch

    from detcore.crop_classifier import CropClassifier, default_spec
    from detcore.train.classifier import classifier_entry, store_classifier
    from detcore.train.runs import Run

    run = tmp_path / "run"
    shutil.copytree(frcnn_run, run)
    spec = default_spec(3)
    torch.manual_seed(4)
    store_classifier(Run(run), classifier_entry(spec, CropClassifier(spec), {"images": 0}))
    exported = _export(run, fmt, tmp_path / f"rescored{SUFFIX[fmt]}", capsys)
    assert exported.metadata["crop_classifier"]["spec"] == spec
    _assert_equivalent(run, exported, sample_images)
    # and they differ from the detector's own: each object is offered for every class
    plain = Predictor.from_run(run, device="cpu", rescore=False).predict(sample_images[:1], score_floor=0.05)[0]
    (got,) = exported.predict(sample_images[:1])
    assert len(got) and not (len(got) == len(plain) and np.allclose(np.sort(got.scores), np.sort(plain.scores)))
