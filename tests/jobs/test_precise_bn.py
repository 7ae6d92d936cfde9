"""Precise BatchNorm: after recalibration, eval mode computes what train mode computes on the same
batch — the property that makes a short from-scratch run's checkpoint usable."""

import torch

from detcore.models import build_model
from detcore.train.precise_bn import recalibrate_batchnorm, trainable_batchnorms


def _head_outputs(model, images):
    with torch.no_grad():
        tensors, _ = model.transform(images)
        return model.head(list(model.backbone(tensors.tensors).values()))["cls_logits"]


def test_recalibrated_eval_mode_matches_train_mode_on_the_calibration_batch():
    torch.manual_seed(0)
    model = build_model("ssdlite320_mobilenet_v3_large", classes=["a", "b"], weights="none")
    images = [torch.rand(3, 64, 80) * 0.5 + 0.25 for _ in range(4)]
    model.train()
    batch_stats = _head_outputs(model, images)
    model.eval()
    stale = _head_outputs(model, images)
    assert len(trainable_batchnorms(model)) > 50
    assert recalibrate_batchnorm(model, images, batch=4) == len(trainable_batchnorms(model))
    assert not model.training  # mode restored
    calibrated = _head_outputs(model, images)
    stale_err = (stale - batch_stats).abs().mean()
    calibrated_err = (calibrated - batch_stats).abs().mean()
    assert calibrated_err < 0.05 * stale_err
    assert all(m.momentum == 0.03 for m in trainable_batchnorms(model))  # SSDlite's own momentum is back


def test_frozen_batchnorm_models_are_left_alone():
    model = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", classes=["a"], weights="none")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.track_running_stats = False  # as if frozen: nothing to recalibrate
    assert recalibrate_batchnorm(model, [torch.rand(3, 64, 64)]) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_leftover_single_image_is_folded_into_the_previous_batch():
    torch.manual_seed(0)
    model = build_model("ssdlite320_mobilenet_v3_large", classes=["a"], weights="none")
    images = [torch.rand(3, 48, 48) for _ in range(3)]  # batches of 2 would leave one alone
    assert recalibrate_batchnorm(model, images, batch=2) > 0
    assert recalibrate_batchnorm(model, images[:1]) == 0  # one image: nothing sensible to measure
