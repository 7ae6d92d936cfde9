import numpy as np
import pytest

from detcore.data.pennfudan import boxes_from_instance_mask, load_pennfudan
from detcore.errors import DataError
from tests.data.builders import SHARED_DATA, write_image, write_mask


def _penn(root, stem, mask, text_boxes=None):
    h, w = mask.shape
    write_image(root / "PNGImages" / f"{stem}.png", w, h)
    write_mask(root / "PedMasks" / f"{stem}_mask.png", mask)
    if text_boxes is not None:
        lines = [f'Bounding box for object {i + 1} "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : '
                 f"({x1}, {y1}) - ({x2}, {y2})" for i, (x1, y1, x2, y2) in enumerate(text_boxes)]
        (root / "Annotation").mkdir(exist_ok=True)
        (root / "Annotation" / f"{stem}.txt").write_text("\n".join(lines))


def _mask():
    m = np.zeros((20, 30), np.uint8)
    m[2:6, 3:8] = 1     # rows 2..5, cols 3..7
    m[10:19, 20:30] = 4  # ids need not be contiguous
    return m


def test_one_instance_per_mask_id_with_continuous_boxes(tmp_path):
    _penn(tmp_path, "FudanPed00001", _mask(), text_boxes=[(4, 3, 8, 6), (21, 11, 30, 19)])
    parsed = load_pennfudan(tmp_path)
    (s,) = parsed.samples
    assert parsed.classes == ["person"] and s.labels.tolist() == [0, 0]
    assert s.boxes.tolist() == [[3, 2, 8, 6], [20, 10, 30, 19]]  # x2 = last column + 1
    assert s.mask_ids == [1, 4] and s.mask_path.name == "FudanPed00001_mask.png"
    assert (s.width, s.height) == (30, 20)
    assert parsed.problems == []  # the 1-based inclusive text boxes agree with the mask


def test_text_annotation_disagreement_is_reported_and_the_mask_wins(tmp_path):
    _penn(tmp_path, "a", _mask(), text_boxes=[(4, 3, 18, 6)])
    parsed = load_pennfudan(tmp_path)
    assert parsed.samples[0].boxes.tolist()[0] == [3, 2, 8, 6]
    details = [p.detail for p in parsed.problems if p.kind == "annotation_disagrees"]
    assert len(details) == 2 and any("1 box(es) in the text but 2 instance(s)" in d for d in details)


def test_missing_mask_unreadable_mask_and_empty_mask(tmp_path):
    _penn(tmp_path, "good", _mask())
    write_image(tmp_path / "PNGImages" / "nomask.png")
    write_image(tmp_path / "PNGImages" / "broken.png")
    (tmp_path / "PedMasks" / "broken_mask.png").write_bytes(b"not a png")
    _penn(tmp_path, "empty", np.zeros((5, 5), np.uint8))
    parsed = load_pennfudan(tmp_path)
    assert [s.image_id for s in parsed.samples] == ["empty", "good"]
    kinds = {p.kind: p.file for p in parsed.problems}
    assert kinds["missing_annotation"].endswith("nomask.png")
    assert kinds["unreadable_annotation"].endswith("broken_mask.png")
    assert kinds["no_objects"].endswith("empty_mask.png")


def test_not_a_pennfudan_folder(tmp_path):
    with pytest.raises(DataError, match="PNGImages"):
        load_pennfudan(tmp_path)


def test_boxes_from_instance_mask_ignores_background():
    boxes, ids = boxes_from_instance_mask(np.array([[0, 2], [0, 0]]))
    assert ids == [2] and boxes.tolist() == [[1, 0, 2, 1]]


@pytest.mark.skipif(not (SHARED_DATA / "PennFudanPed-sample").is_dir(), reason="shared real sample absent")
def test_shared_pennfudan_sample_instance_counts():
    parsed = load_pennfudan(SHARED_DATA / "PennFudanPed-sample")
    counts = {s.image_id: s.num_objects for s in parsed.samples}
    assert counts == {"FudanPed00001": 2, "FudanPed00002": 1, "FudanPed00010": 1, "FudanPed00023": 1,
                      "FudanPed00040": 2, "FudanPed00055": 1, "PennPed00001": 5, "PennPed00019": 7,
                      "PennPed00027": 3, "PennPed00036": 2, "PennPed00050": 1, "PennPed00070": 2}
    s = parsed.sample_by_id()["FudanPed00001"]
    assert (s.width, s.height) == (559, 536)
    assert s.boxes.tolist() == [[159, 181, 302, 431], [419, 170, 535, 486]]  # text: (160,182)-(302,431) 1-based
    assert sorted(p.image_id for p in parsed.problems if p.kind == "annotation_disagrees") == ["PennPed00019",
                                                                                                 "PennPed00027"]
