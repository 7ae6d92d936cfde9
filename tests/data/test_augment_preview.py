"""Augmentation as the model sees it: the preview runs the trainer's own transforms; rotated boxes still
enclose their (rotated) masks, a flip mirrors the boxes, and bad augmentation settings are refused."""

from __future__ import annotations

import numpy as np
import pytest

from detcore.data.pennfudan import load_pennfudan
from detcore.data.preview import augmented_draws, augmented_previews
from detcore.errors import ConfigError
from detcore.train.config import TrainConfig
from tests.maskrun import write_tiny_pennfudan


@pytest.fixture(scope="module")
def pedestrians(tmp_path_factory):
    return load_pennfudan(write_tiny_pennfudan(tmp_path_factory.mktemp("ped") / "p", n=2, size=(96, 72)))


def _tight_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def test_rotated_boxes_enclose_their_rotated_masks(pedestrians):
    sample = pedestrians.samples[1]  # two pedestrians
    draws = augmented_draws(sample, pedestrians.classes, {"hflip": 0.0, "rotate": 60.0}, n=6, seed=3)
    rotated = 0
    for draw in draws:
        assert draw.masks is not None and len(draw.masks) == len(draw.boxes) >= 1
        for box, mask in zip(draw.boxes, draw.masks):
            tight = _tight_box(mask)
            assert box[0] <= tight[0] + 1 and box[1] <= tight[1] + 1, (box, tight)
            assert box[2] >= tight[2] - 1 and box[3] >= tight[3] - 1, (box, tight)
        rotated += not np.allclose(draw.boxes, sample.boxes[: len(draw.boxes)], atol=0.5)
    assert rotated >= 4  # the boxes really moved in (nearly) every draw


def test_flip_mirrors_boxes_and_masks(pedestrians):
    sample = pedestrians.samples[0]
    (draw,) = augmented_draws(sample, pedestrians.classes, {"hflip": 1.0}, n=1)
    width = draw.image.shape[1]
    expected = sample.boxes.copy()
    expected[:, [0, 2]] = width - sample.boxes[:, [2, 0]]
    np.testing.assert_allclose(draw.boxes, expected, atol=1e-4)
    np.testing.assert_allclose(_tight_box(draw.masks[0]), expected[0], atol=1e-4)


def test_previews_are_n_pictures_of_the_image_and_seeded(pedestrians):
    sample = pedestrians.samples[0]
    augment = {"hflip": 0.5, "rotate": 30.0, "scale_jitter": 0.2, "color_jitter": 0.4}
    a = augmented_previews(sample, pedestrians.classes, augment, n=4, seed=7)
    b = augmented_previews(sample, pedestrians.classes, augment, n=4, seed=7)
    assert len(a) == 4 and all(p.shape == (72, 96, 3) and p.dtype == np.uint8 for p in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # same seed, same draws
    assert not all(np.array_equal(a[0], p) for p in a[1:])  # different draws differ


@pytest.mark.parametrize("augment, setting", [
    ({"rotate": 200}, "augment.rotate"), ({"hflip": 1.5}, "augment.hflip"), ({"scale_jitter": 1.0}, "augment.scale_jitter"),
    ({"scale_jitter": [1.2, 0.8]}, "augment.scale_jitter"), ({"color_jitter": -0.1}, "augment.color_jitter"),
    ({"blur": 1}, "augment"),
])
def test_bad_augmentation_is_refused_naming_the_setting(augment, setting):
    with pytest.raises(ConfigError) as err:
        TrainConfig(model="fasterrcnn_mobilenet_v3_large_320_fpn", weights="none", augment=augment).validate()
    assert err.value.file == setting
