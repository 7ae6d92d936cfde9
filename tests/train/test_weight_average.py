"""Weight averaging (``ema_decay``) and the decoded-image cache (``cache_images_mb``) in real tiny runs:
what is saved is the running average of the trained weights, a resumed run continues both exactly,
and cached images are served without touching the files again."""

from __future__ import annotations

import math

import pytest
import torch

from detcore.data.dataset import DetectionDataset
from detcore.errors import DataError
from detcore.inference import Predictor
from detcore.models import build_model
from detcore.train.ema import RAMP_STEPS
from detcore.train.events import Callback
from detcore.train.runs import Run
from detcore.train.trainer import train

PARAM = "roi_heads.box_predictor.cls_score.weight"


class RawWeights(Callback):
    """The trained (raw) value of one parameter after every optimizer step."""

    def __init__(self):
        self.values = []

    def on_step_end(self, t):
        self.values.append(t.unwrapped_model.state_dict()[PARAM].detach().clone())


def test_checkpoints_hold_the_running_average_of_the_trained_weights(tmp_path, tiny_parsed, make_config):
    decay, raw = 0.9, RawWeights()
    config = make_config(epochs=2, max_iters_per_epoch=2, ema_decay=decay, lr=0.01)
    assert train(config, tmp_path / "run", dataset=tiny_parsed, callbacks=[raw]) == "completed"
    run = Run(tmp_path / "run")
    last = torch.load(run.checkpoint("last"), weights_only=True)
    # the average as documented: a(n) = d_n * a(n-1) + (1 - d_n) * w(n), d_n = decay * (1 - exp(-n / RAMP_STEPS)),
    # starting from the initial weights (seeded: the same config builds the same model)
    torch.manual_seed(config.seed)
    initial = build_model(config.model, classes=run.classes(), weights="none", geometry=config.geometry,
                          min_size=config.min_size, max_size=config.max_size).state_dict()[PARAM]
    expected = initial.clone()
    for n, w in enumerate(raw.values, start=1):
        d = decay * (1 - math.exp(-n / RAMP_STEPS))
        expected = d * expected + (1 - d) * w
    assert len(raw.values) == 4 and last["ema"] == {"updates": 4}
    assert torch.allclose(last["model"][PARAM], expected, atol=1e-6)
    assert torch.allclose(last["train_model"][PARAM], raw.values[-1])
    assert not torch.allclose(last["model"][PARAM], last["train_model"][PARAM])  # the average is not the last step
    best = torch.load(run.checkpoint("best"), weights_only=True)
    assert "train_model" not in best and torch.allclose(best["model"][PARAM], expected, atol=1e-6)
    # prediction loads the average
    predictor = Predictor.from_run(run.path, checkpoint="last", device="cpu")
    assert torch.allclose(predictor.model.state_dict()[PARAM], expected, atol=1e-6)


def test_resume_with_weight_average_equals_uninterrupted_training(tmp_path, tiny_parsed, make_config):
    cfg = dict(epochs=2, max_iters_per_epoch=2, ema_decay=0.9, lr=0.01)
    assert train(make_config(**cfg), tmp_path / "straight", dataset=tiny_parsed) == "completed"
    assert train(make_config(**{**cfg, "epochs": 1}), tmp_path / "resumed", dataset=tiny_parsed) == "completed"
    assert train(None, tmp_path / "resumed", dataset=tiny_parsed, resume=True, extra_epochs=1) == "completed"
    a = torch.load(Run(tmp_path / "straight").checkpoint("last"), weights_only=True)
    b = torch.load(Run(tmp_path / "resumed").checkpoint("last"), weights_only=True)
    assert a["ema"] == b["ema"] == {"updates": 4}
    for part in ("model", "train_model"):
        for key, value in a[part].items():
            assert torch.allclose(value.float(), b[part][key].float(), atol=1e-6), (part, key)


def test_cached_images_are_served_without_reading_the_files_again(tmp_path, tiny_parsed):
    samples, classes = tiny_parsed.samples, tiny_parsed.classes
    cached = DetectionDataset(samples, classes, cache_bytes=2**20)
    first = [cached[i] for i in range(len(samples))]
    plain = DetectionDataset(samples, classes)
    for s in samples:
        s.image_path.unlink()
    for i, (image, target) in enumerate(first):
        again, again_target = cached[i]
        assert torch.equal(again, image) and torch.equal(again_target["boxes"], target["boxes"])
    again[0].fill_(0)  # what a caller does to an item does not reach the cache
    assert torch.equal(cached[len(samples) - 1][0], first[-1][0])
    with pytest.raises(DataError, match="not found"):
        plain[0]


def test_the_image_cache_stops_at_its_budget(tiny_parsed):
    samples, classes = tiny_parsed.samples, tiny_parsed.classes
    one_image = samples[0].width * samples[0].height * 3
    cached = DetectionDataset(samples, classes, cache_bytes=int(one_image * 2.5))
    for i in range(len(samples)):
        cached[i]
    assert len(cached._cache) == 2 and cached._cached_bytes == 2 * one_image
    plain = DetectionDataset(samples, classes)
    for i in range(len(samples)):  # the images past the budget are read from their files, unchanged
        assert torch.equal(cached[i][0], plain[i][0])


def test_large_photos_are_cached_at_the_crop_scale_and_give_the_same_crops(tmp_path):
    from detcore.data.crops import CropAtModelScale
    from tests.train.conftest import make_parsed

    parsed = make_parsed(tmp_path / "big", n=3, size=(1200, 900))
    crops = CropAtModelScale({"min_size": 128, "max_size": 256}, 96, scale_jitter=[0.5, 1.5], hflip=0.5)
    plain = DetectionDataset(parsed.samples, parsed.classes, crops, with_masks=True)
    cached = DetectionDataset(parsed.samples, parsed.classes, crops, with_masks=True, cache_bytes=2**24)
    for i in range(3):
        cached[i]  # fills the cache
        pixels, height, width = cached._pixels(i)
        assert (height, width) == (900, 1200) and pixels.shape == (192, 256, 3)  # 128 / 900 x 1.5 zoom
    for i in range(3):
        for draw in range(4):
            torch.manual_seed(100 * i + draw)
            a_image, a = plain[i]
            torch.manual_seed(100 * i + draw)
            b_image, b = cached[i]
            assert a_image.shape == b_image.shape and torch.equal(a["labels"], b["labels"])
            assert torch.allclose(a["boxes"], b["boxes"], atol=1.5)
            assert (a_image - b_image).abs().mean() < 0.03
            assert (a["masks"] != b["masks"]).float().mean() < 0.05
