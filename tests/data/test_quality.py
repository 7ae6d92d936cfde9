from collections import Counter

import numpy as np
import pytest

from detcore.data.detect import load_dataset
from detcore.data.images import load_rgb
from detcore.data.quality import canonical_class_names, class_key, verify_images
from detcore.data.voc import load_voc_folder
from tests.data.builders import png_header_only, voc_object, write_image, write_voc


def _dataset(tmp_path, n=2):
    return write_voc(tmp_path / "ds", {f"im{i}": [voc_object("cat", (1, 1, 30, 20))] for i in range(n)}, size=(40, 30))


def test_good_images_produce_no_problems(tmp_path):
    parsed = load_voc_folder(_dataset(tmp_path))
    assert verify_images(parsed) == [] and parsed.num_images == 2


@pytest.mark.parametrize("damage,kind", [
    (lambda p: p.write_bytes(b"this is a text file"), "not_an_image"),
    (lambda p: p.write_bytes(p.read_bytes()[:-30]), "truncated_image"),
    (lambda p: png_header_only(p, 100_000, 100_000), "decompression_bomb"),
    (lambda p: p.unlink(), "missing_image"),
])
def test_broken_image_is_reported_and_the_rest_still_loads(tmp_path, damage, kind):
    root = _dataset(tmp_path)
    write_image(root / "images" / "im0.png", 40, 30, mode="RGB")
    # a noisy image so that cutting its tail really truncates pixel data
    from PIL import Image
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8)).save(root / "images" / "im0.png")
    parsed = load_voc_folder(root)
    damage(root / "images" / "im0.png")
    problems = verify_images(parsed)
    assert [p.kind for p in problems] == [kind]
    assert problems[0].file.endswith("im0.png") and problems[0].detail
    assert [s.image_id for s in parsed.samples] == ["im1"]


def test_bomb_through_load_dataset_is_reported_not_raised(tmp_path):
    root = _dataset(tmp_path)
    png_header_only(root / "images" / "im1.png", 60_000, 60_000)
    parsed = load_dataset(root, verify_images=True)
    assert parsed.num_images == 1
    assert [p.kind for p in parsed.problems] == ["decompression_bomb"]


def test_size_disagreement_uses_the_real_size_and_reclips(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("cat", (5, 5, 35, 25)), voc_object("cat", (25, 1, 35, 5))]},
                     size=(40, 30), image_size=(20, 30))
    parsed = load_voc_folder(root)
    problems = verify_images(parsed)
    (s,) = parsed.samples
    assert (s.width, s.height) == (20, 30)
    assert s.boxes.tolist() == [[5, 5, 20, 25]]  # second box lies wholly right of the real image: dropped
    assert [p.kind for p in problems] == ["size_mismatch", "box_clipped", "degenerate_box"]
    assert "annotation says 40x30 but the image is 20x30" in problems[0].detail


def test_missing_size_is_filled_from_the_header(tmp_path):
    root = write_voc(tmp_path / "ds", {"a": [voc_object("cat", (5, 5, 55, 25))]}, size=None, image_size=(40, 30))
    parsed = load_voc_folder(root)
    problems = verify_images(parsed)
    assert (parsed.samples[0].width, parsed.samples[0].height) == (40, 30)
    assert parsed.samples[0].boxes.tolist() == [[5, 5, 40, 25]] and [p.kind for p in problems] == ["box_clipped"]


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "I;16", "LA"])
def test_unusual_image_modes_verify_and_load_as_rgb(tmp_path, mode):
    root = _dataset(tmp_path, n=1)
    write_image(root / "images" / "im0.png", 40, 30, mode=mode)
    parsed = load_voc_folder(root)
    assert verify_images(parsed) == []
    rgb = load_rgb(parsed.samples[0].image_path)
    assert rgb.shape == (30, 40, 3) and rgb.dtype == np.uint8


def test_class_keys_and_canonical_spelling():
    assert class_key(" With-Mask ") == class_key("with mask") == class_key("with_mask") == "with_mask"
    canon = canonical_class_names(Counter({"with_mask": 5, "With-Mask": 1, "dog": 2}))
    assert canon == {"with_mask": "with_mask", "With-Mask": "with_mask", "dog": "dog"}
    assert canonical_class_names(Counter({"DOG": 1}), known=["dog"]) == {"DOG": "dog"}


def test_truncated_jpeg_is_reported(tmp_path):
    from PIL import Image

    root = write_voc(tmp_path / "ds", {"a": [voc_object("cat", (1, 1, 9, 9))], "b": []}, ext=".jpg")
    noisy = np.random.default_rng(1).integers(0, 255, (30, 40, 3), np.uint8)
    Image.fromarray(noisy).save(root / "images" / "a.jpg", quality=95)
    data = (root / "images" / "a.jpg").read_bytes()
    (root / "images" / "a.jpg").write_bytes(data[: len(data) // 2])
    parsed = load_voc_folder(root)
    problems = verify_images(parsed)
    assert [(p.kind, p.image_id) for p in problems] == [("truncated_image", "a")]
    assert [s.image_id for s in parsed.samples] == ["b"]


def test_exif_rotated_photo_is_measured_as_displayed(tmp_path):
    from PIL import Image

    root = write_voc(tmp_path / "ds", {"a": [voc_object("cat", (1, 1, 9, 9))]}, size=(30, 40), ext=".jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90°: stored 40x30, shown 30x40
    Image.new("RGB", (40, 30)).save(root / "images" / "a.jpg", exif=exif)
    parsed = load_voc_folder(root)
    assert verify_images(parsed) == []
    assert load_rgb(parsed.samples[0].image_path).shape == (40, 30, 3)


def test_an_image_fixed_on_disk_is_checked_again(tmp_path):
    root = _dataset(tmp_path, n=1)
    image = root / "images" / "im0.png"
    image.write_bytes(b"junk")
    assert [p.kind for p in verify_images(load_voc_folder(root))] == ["not_an_image"]
    write_image(image, 40, 30)
    assert verify_images(load_voc_folder(root)) == []
