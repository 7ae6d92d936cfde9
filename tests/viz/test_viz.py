"""Drawing and figure builders: what a user sees must match the detections given."""

import json

import numpy as np
import pytest
import plotly.graph_objects as go
from PIL import Image

from detcore import viz
from detcore.structures import Detections, Sample

CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]


def _grey(h=60, w=80):
    return np.full((h, w, 3), 128, np.uint8)


def test_class_colors_are_distinct_and_stable():
    a = viz.class_colors(CLASSES)
    assert list(a) == CLASSES and len(set(a.values())) == 3
    assert viz.class_colors(CLASSES) == a
    many = viz.class_colors([f"c{i}" for i in range(30)])
    assert len(set(many.values())) == 30


def test_draw_detections_paints_box_edges_in_the_class_colour_and_keeps_input():
    img = _grey()
    dets = Detections("x", [[10, 20, 50, 55]], [0.9], [1])
    out = viz.draw_detections(img, dets, CLASSES, show_scores=False)
    colour = viz.class_colors(CLASSES)["without_mask"]
    assert out.shape == img.shape and out.dtype == np.uint8
    assert tuple(out[40, 10]) == colour and tuple(out[55, 30]) == colour  # left and bottom edges
    assert tuple(out[40, 30]) == (128, 128, 128)  # interior untouched (no mask)
    assert (img == 128).all()  # input not modified


def test_masks_are_blended_not_painted_over():
    img = _grey()
    mask = np.zeros((1, 60, 80), bool)
    mask[0, 30:40, 30:40] = True
    dets = Detections("x", [[25, 25, 45, 45]], [0.8], [0], masks=mask)
    out = viz.draw_detections(img, dets, CLASSES)
    colour = np.array(viz.class_colors(CLASSES)["with_mask"])
    inside = out[35, 35].astype(float)
    expected = 128 * (1 - viz.MASK_ALPHA) + colour * viz.MASK_ALPHA
    assert np.allclose(inside, expected, atol=1)
    assert tuple(out[5, 5]) == (128, 128, 128)


def test_scores_change_the_caption():
    dets = Detections("x", [[10, 30, 70, 55]], [0.37], [0])
    with_scores = viz.draw_detections(_grey(), dets, CLASSES, show_scores=True)
    without = viz.draw_detections(_grey(), dets, CLASSES, show_scores=False)
    assert not np.array_equal(with_scores, without)


def test_ground_truth_draws_penn_fudan_masks(tmp_path):
    ids = np.zeros((60, 80), np.uint8)
    ids[10:30, 10:30] = 1
    Image.fromarray(ids).save(tmp_path / "m.png")
    s = Sample("a", tmp_path / "a.png", 80, 60, boxes=[[10, 10, 30, 30]], labels=[0],
               mask_path=tmp_path / "m.png", mask_ids=[1])
    out = viz.draw_ground_truth(_grey(), s, ["person"])
    assert not np.array_equal(out[20, 20], [128, 128, 128])
    assert tuple(out[45, 60]) == (128, 128, 128)


def test_image_figure_has_one_hoverable_trace_per_box_with_class_and_score():
    dets = Detections("x", [[1, 2, 30, 40], [40, 5, 70, 50]], [0.91, 0.42], [0, 2])
    fig = viz.image_figure(_grey(), dets, CLASSES)
    boxes = [t for t in fig.data if isinstance(t, go.Scatter)]
    assert len(boxes) == 2
    assert "with_mask" in boxes[0].text and "0.910" in boxes[0].text
    assert "mask_weared_incorrect" in boxes[1].text and "0.420" in boxes[1].text
    assert list(boxes[1].x) == [40, 70, 70, 40, 40]
    json.loads(fig.to_json())  # serialisable for the browser


def test_loss_curves_use_step_and_epoch_records():
    events = [{"type": "step", "epoch": 0, "iter": i, "global_step": i + 1, "total_steps": 4, "loss": 2.0 - i * 0.1,
               "losses": {"bbox_regression": 1.0, "classification": 1.0 - i * 0.1}} for i in range(4)]
    events.append({"type": "epoch", "epoch": 0, "val_loss": 1.5, "metrics": {"AP": 0.1, "AP50": 0.3}})
    events.append({"type": "status", "status": "completed"})
    fig = viz.loss_curves_figure(events)
    names = [t.name for t in fig.data]
    assert names == ["loss", "bbox_regression", "classification", "validation loss"]
    assert list(fig.data[0].y) == [2.0, 1.9, 1.8, 1.7]
    assert list(fig.data[-1].x) == [4]
    metrics = viz.epoch_metrics_figure(events)
    assert [list(t.y) for t in metrics.data] == [[0.1], [0.3]]


def test_chart_builders_carry_the_numbers_given():
    bal = viz.class_balance_figure({"with_mask": 79, "without_mask": 18, "mask_weared_incorrect": 3}, CLASSES)
    assert list(bal.data[0].y) == [79, 18, 3] and list(bal.data[0].text) == ["79%", "18%", "3%"]
    sizes = viz.box_size_figure(widths=[10, 40, 100], heights=[10, 40, 100], labels=[0, 1, 1], classes=CLASSES)
    assert list(sizes.data[1].x) == [40.0, 100.0]
    pr = viz.pr_curve_figure({"with_mask": ([0, 0.5, 1], [1, 0.8, 0.5])}, ap={"with_mask": 0.75})
    assert "AP 0.750" in pr.data[0].name
    f1 = viz.f1_threshold_figure({"with_mask": ([0.9, 0.5, 0.1], [0.2, 0.8, 0.4])}, chosen={"with_mask": 0.5})
    assert f1.data[1].y[0] == 0.8
    cm = viz.confusion_matrix_figure(np.array([[5, 1], [2, 0]]), ["with_mask", "background"], normalize=True)
    assert np.allclose(cm.data[0].z[0], [5 / 6, 1 / 6]) and cm.data[0].customdata[1][0] == 2


def test_png_data_uri_round_trips_the_pixels():
    import base64
    import io

    img = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    uri = viz.png_data_uri(img)
    assert uri.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert np.array_equal(decoded, img)


def test_overlay_figure_places_the_image_under_hoverable_boxes():
    dets = Detections("x", [[1, 2, 30, 40], [40, 5, 70, 50]], [0.66, 0.3], [1, 1])
    fig = viz.detections_overlay_figure("data:image/png;base64,AAAA", (80, 60), dets, CLASSES)
    (bg,) = fig.layout.images
    assert (bg.sizex, bg.sizey, bg.layer) == (80, 60, "below")
    assert list(fig.layout.yaxis.range) == [60, 0]  # image rows grow downwards
    outline, hover = fig.data  # one class: all its outlines in one trace, one hover marker per box
    assert list(outline.x[:5]) == [1, 30, 30, 1, 1]
    assert list(hover.customdata) == pytest.approx([0.66, 0.3])
    assert "without_mask" in hover.hovertemplate
