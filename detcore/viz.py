"""Pictures and charts shared by the pages and the CLI: boxes/masks drawn on images (PIL → RGB
numpy) and plotly figure builders. Inputs are plain numpy/pandas/dicts — never torch — and nothing
here imports Streamlit, so the same figure can be shown in the app or written to HTML by a script.
"""

from __future__ import annotations

import base64
import io
from typing import Iterable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from detcore.data.images import open_file  # masks: only the image formats detcore accepts
from detcore.structures import Detections, Sample

# Colour-blind-friendly categorical palette (Okabe–Ito first, then Tableau): class i always gets
# the same colour in every picture and chart of a dataset.
PALETTE = [
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
    (204, 121, 167), (148, 103, 189), (140, 86, 75), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]
MASK_ALPHA = 0.45


def class_colors(classes: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Class name → RGB, stable by class index (cycles past the palette with a hue shift)."""
    out = {}
    for i, name in enumerate(classes):
        r, g, b = PALETTE[i % len(PALETTE)]
        shift = (i // len(PALETTE)) * 47
        out[name] = ((r + shift) % 256, (g + 2 * shift) % 256, (b + 3 * shift) % 256)
    return out


def rgb_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _class_name(classes: Sequence[str], label: int) -> str:
    return classes[label] if 0 <= label < len(classes) else f"class {label}"


def _overlay_masks(img: Image.Image, masks: np.ndarray, colours: list[tuple[int, int, int]]) -> Image.Image:
    """Blend each mask in turn; a mask at another resolution (a big image's masks stay at the size the
    model saw, detcore/image_prediction.py) is stretched over the whole picture, nearest pixel."""
    base = np.asarray(img, dtype=np.float32).copy()
    h, w = base.shape[:2]
    for mask, colour in zip(masks, colours):
        m = np.asarray(mask, dtype=bool)
        if m.ndim != 2 or not m.size:
            continue
        if m.shape != (h, w):
            rows = (np.arange(h) * m.shape[0] // h)[:, None]
            cols = (np.arange(w) * m.shape[1] // w)[None, :]
            m = m[rows, cols]
        base[m] = base[m] * (1 - MASK_ALPHA) + np.asarray(colour, np.float32) * MASK_ALPHA
    return Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")


def _draw_boxes(img: Image.Image, boxes: np.ndarray, captions: list[str], colours: list[tuple[int, int, int]],
                *, dashed: Sequence[bool] | None = None) -> Image.Image:
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    width = max(1, round(min(img.size) / 200))
    for k, (box, caption, colour) in enumerate(zip(boxes, captions, colours)):
        x0, y0, x1, y1 = (float(v) for v in box)
        if dashed is not None and dashed[k]:
            _dashed_rectangle(draw, (x0, y0, x1, y1), colour, width)
        else:
            draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        if caption:
            tx0, ty0, tx1, ty1 = draw.textbbox((0, 0), caption, font=font)
            th, tw = ty1 - ty0 + 2, tx1 - tx0 + 4
            ty = y0 - th if y0 - th >= 0 else y0  # above the box unless it would leave the image
            draw.rectangle((x0, ty, x0 + tw, ty + th), fill=colour)
            text_colour = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
            draw.text((x0 + 2, ty + 1 - ty0), caption, fill=text_colour, font=font)
    return img


def _dashed_rectangle(draw: ImageDraw.ImageDraw, box, colour, width: int, dash: float = 4.0) -> None:
    x0, y0, x1, y1 = box
    for (ax, ay, bx, by) in ((x0, y0, x1, y0), (x1, y0, x1, y1), (x1, y1, x0, y1), (x0, y1, x0, y0)):
        length = max(abs(bx - ax), abs(by - ay))
        steps = max(1, int(length // (2 * dash)))
        for s in range(steps):
            t0, t1 = (2 * s) / (2 * steps), (2 * s + 1) / (2 * steps)
            draw.line((ax + (bx - ax) * t0, ay + (by - ay) * t0, ax + (bx - ax) * t1, ay + (by - ay) * t1),
                      fill=colour, width=width)


def draw_detections(image: np.ndarray, dets: Detections, classes: Sequence[str], *,
                    show_scores: bool = True) -> np.ndarray:
    """Return a copy of ``image`` (H, W, 3 uint8) with boxes, captions and semi-transparent masks."""
    img = Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB")
    palette = class_colors(classes)
    colours = [palette.get(_class_name(classes, int(l)), PALETTE[-1]) for l in dets.labels]
    if dets.masks is not None and len(dets.masks):
        img = _overlay_masks(img, dets.masks, colours)
    captions = [
        f"{_class_name(classes, int(l))} {s:.2f}" if show_scores else _class_name(classes, int(l))
        for l, s in zip(dets.labels, dets.scores)
    ]
    return np.asarray(_draw_boxes(img, dets.boxes, captions, colours))


def draw_ground_truth(image: np.ndarray, sample: Sample, classes: Sequence[str]) -> np.ndarray:
    """Ground truth on ``image``: boxes with class names (difficult objects dashed), instance masks
    from Penn-Fudan mask files and COCO polygons when the sample has them."""
    img = Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB")
    palette = class_colors(classes)
    colours = [palette.get(_class_name(classes, int(l)), PALETTE[-1]) for l in sample.labels]
    canvas = _ground_truth_canvas(sample, img.size)
    if canvas is not None:
        img = _blend_canvas(img, canvas, colours)
    captions = [_class_name(classes, int(l)) for l in sample.labels]
    return np.asarray(_draw_boxes(img, sample.boxes, captions, colours, dashed=list(sample.difficult)))


def _ground_truth_canvas(sample: Sample, size: tuple[int, int]) -> np.ndarray | None:
    """One (h, w) int32 canvas: 0 where no object is, k + 1 where object k's mask is (a later object over
    an earlier one). Objects are drawn one at a time into it, so memory is one image whatever the number
    of objects (one full-size mask per object asked for 71.5 GiB at 10^6 objects; hostile walk, finding 8)."""
    w, h = size
    if sample.mask_path is not None and sample.mask_ids:
        try:
            ids = np.asarray(open_file(sample.mask_path))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            return None  # the reader already reported an unreadable mask; boxes still show
        if ids.shape != (h, w):
            return None
        wanted = np.asarray(sample.mask_ids, dtype=np.int64)
        order = np.argsort(wanted, kind="stable")
        sorted_ids = wanted[order]
        pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        hit = sorted_ids[pos] == ids
        return np.where(hit, order[pos] + 1, 0).astype(np.int32)
    if sample.segmentations:
        layer = Image.new("I", (w, h), 0)
        draw = ImageDraw.Draw(layer)
        drawn = False
        for k, seg in enumerate(sample.segmentations):
            if isinstance(seg, list):  # COCO polygons
                for poly in seg:
                    if isinstance(poly, list) and len(poly) >= 6:
                        draw.polygon([float(v) for v in poly], fill=k + 1)
                        drawn = True
            elif isinstance(seg, dict) and "counts" in seg:  # COCO RLE, compressed or not
                decoded = _decode_rle(seg)
                if decoded is not None and decoded.shape == (h, w):
                    layer.paste(k + 1, mask=Image.fromarray(decoded.astype(np.uint8) * 255, "L"))
                    drawn = True
        return np.asarray(layer, dtype=np.int32) if drawn else None
    return None


def _blend_canvas(img: Image.Image, canvas: np.ndarray, colours: list[tuple[int, int, int]]) -> Image.Image:
    """Blend each object's colour into the pixels the canvas gives it (MASK_ALPHA, as for predictions)."""
    base = np.asarray(img, dtype=np.float32).copy()
    inside = canvas > 0
    table = np.asarray([(0, 0, 0), *colours], np.float32)
    base[inside] = base[inside] * (1 - MASK_ALPHA) + table[canvas[inside]] * MASK_ALPHA
    return Image.fromarray(base.clip(0, 255).astype(np.uint8), "RGB")


def ground_truth_masks(sample: Sample, size: tuple[int, int]) -> np.ndarray | None:
    """(N, H, W) bool instance masks of a ground-truth sample at image ``size`` (width, height), from a
    Penn-Fudan mask PNG, COCO polygons or COCO RLE; None when it has none (or they do not fit). Built from
    the one-canvas drawing, so where objects overlap the later one holds the pixel; for one image at a time
    (the error browser), not for a whole dataset."""
    canvas = _ground_truth_canvas(sample, size)
    if canvas is None:
        return None
    return np.stack([canvas == k + 1 for k in range(len(sample.labels))])


def _decode_rle(seg: dict) -> np.ndarray | None:
    from pycocotools import mask as mask_utils  # imported when an RLE is drawn

    try:
        h, w = (int(v) for v in seg["size"])
        counts = seg["counts"]
        rle = mask_utils.frPyObjects(seg, h, w) if isinstance(counts, list) else \
            {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        return mask_utils.decode(rle).astype(bool).reshape(h, w)
    except (KeyError, TypeError, ValueError):
        return None  # the reader reports malformed annotations; the box still shows


def mask_outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The pixels of ``mask`` within ``width`` pixels of its edge (an outline to draw)."""
    m = np.asarray(mask, dtype=bool)
    inner = m.copy()
    for _ in range(max(1, width)):
        shrunk = inner.copy()
        shrunk[1:, :] &= inner[:-1, :]
        shrunk[:-1, :] &= inner[1:, :]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    return m & ~inner


def draw_mask_layers(image: np.ndarray, classes: Sequence[str], *, gt_masks: np.ndarray | None = None,
                     gt_labels: Sequence[int] = (), det_masks: np.ndarray | None = None,
                     det_labels: Sequence[int] = ()) -> np.ndarray:
    """``image`` with predicted masks filled (semi-transparent) and ground-truth masks outlined, each in
    its class colour — so a prediction and the object it should cover can be told apart."""
    img = Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB")
    palette = class_colors(classes)
    colour = lambda l: palette.get(_class_name(classes, int(l)), PALETTE[-1])  # noqa: E731
    if det_masks is not None and len(det_masks):
        img = _overlay_masks(img, det_masks, [colour(l) for l in det_labels])
    out = np.asarray(img).copy()
    if gt_masks is not None:
        edge = max(1, round(min(out.shape[:2]) / 200))
        for mask, label in zip(gt_masks, gt_labels):
            if mask.shape == out.shape[:2]:
                out[mask_outline(mask, edge)] = colour(label)
    return out


# ---------------------------------------------------------------- plotly figure builders

def _layout(fig: go.Figure, *, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white",
                      margin=dict(l=50, r=20, t=50, b=45), legend=dict(orientation="h", y=-0.2))
    return fig


def loss_curves_figure(events: Iterable[Mapping]) -> go.Figure:
    """Training loss (total and per component) by global step, and validation loss by epoch,
    from ``events.jsonl`` records (``{"type": "step"|"epoch", ...}``)."""
    steps = [e for e in events if e.get("type") in ("step", "epoch")]
    step_rows = [e for e in steps if e["type"] == "step" and e.get("loss") is not None]
    fig = go.Figure()
    if step_rows:
        x = [e.get("global_step", i) for i, e in enumerate(step_rows)]
        fig.add_trace(go.Scatter(x=x, y=[e["loss"] for e in step_rows], name="loss", mode="lines",
                                 line=dict(width=2, color="#222222")))
        components = sorted({k for e in step_rows for k in (e.get("losses") or {})})
        for k in components:
            fig.add_trace(go.Scatter(x=x, y=[(e.get("losses") or {}).get(k) for e in step_rows], name=k,
                                     mode="lines", line=dict(width=1), opacity=0.7))
    epoch_rows = [e for e in steps if e["type"] == "epoch" and e.get("val_loss") is not None]
    if epoch_rows:
        fig.add_trace(go.Scatter(x=[_last_step_of_epoch(step_rows, e["epoch"]) for e in epoch_rows],
                                 y=[e["val_loss"] for e in epoch_rows], name="validation loss",
                                 mode="lines+markers", line=dict(dash="dash", color="#d62728")))
    return _layout(fig, title="Loss", x="step", y="loss")


def _last_step_of_epoch(step_rows: list[Mapping], epoch: int) -> int:
    """Where an epoch's validation point sits on the step axis: the last step logged in it."""
    done = [e.get("global_step", 0) for e in step_rows if e.get("epoch", 0) <= epoch]
    return max(done) if done else epoch


def epoch_metrics_figure(events: Iterable[Mapping], keys: Sequence[str] | None = None) -> go.Figure:
    """Validation metrics by epoch: AP and AP50 (boxes) and, for mask models, segm_AP and segm_AP50."""
    rows = [e for e in events if e.get("type") == "epoch" and e.get("metrics")]
    if keys is None:
        keys = ["AP", "AP50"] + [k for k in ("segm_AP", "segm_AP50") if any(k in e["metrics"] for e in rows)]
    fig = go.Figure()
    for k in keys:
        fig.add_trace(go.Scatter(x=[e["epoch"] for e in rows], y=[e["metrics"].get(k) for e in rows],
                                 name=k, mode="lines+markers"))
    fig.update_yaxes(range=[0, 1])
    return _layout(fig, title="Validation metrics", x="epoch", y="value")


def class_balance_figure(counts: Mapping[str, int], classes: Sequence[str] | None = None) -> go.Figure:
    """Objects per class as bars, with each bar's share of all objects on hover."""
    names = list(classes) if classes is not None else list(counts)
    values = [int(counts.get(n, 0)) for n in names]
    total = max(1, sum(values))
    palette = class_colors(names)
    fig = go.Figure(go.Bar(
        x=names, y=values, marker_color=[rgb_hex(palette[n]) for n in names],
        text=[f"{v / total:.0%}" for v in values], textposition="outside",
        hovertemplate="%{x}: %{y} objects (%{text})<extra></extra>"))
    return _layout(fig, title="Objects per class", x="class", y="objects")


def box_size_figure(*, widths: Sequence[float], heights: Sequence[float], labels: Sequence[int] | None = None,
                    classes: Sequence[str] | None = None, nbins: int = 30) -> go.Figure:
    """Histogram of box sqrt(area) in pixels — the size a detector's anchors must cover — per class."""
    size = np.sqrt(np.asarray(widths, np.float64) * np.asarray(heights, np.float64))
    fig = go.Figure()
    if labels is None or classes is None:
        fig.add_trace(go.Histogram(x=size, nbinsx=nbins, name="all"))
    else:
        labels = np.asarray(labels)
        palette = class_colors(classes)
        for i, name in enumerate(classes):
            fig.add_trace(go.Histogram(x=size[labels == i], nbinsx=nbins, name=name, opacity=0.75,
                                       marker_color=rgb_hex(palette[name])))
        fig.update_layout(barmode="overlay")
    for edge, name in ((32, "small/medium"), (96, "medium/large")):  # COCO's area ranges
        fig.add_vline(x=edge, line_dash="dot", line_color="#888", annotation_text=name)
    return _layout(fig, title="Box sizes", x="sqrt(box area) [px]", y="boxes")


def pr_curve_figure(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                    ap: Mapping[str, float | None] | None = None, iou: float = 0.5) -> go.Figure:
    """Precision–recall per class: ``curves[name] = (recall, precision)``; legend shows AP if given."""
    fig = go.Figure()
    palette = class_colors(list(curves))
    for name, (recall, precision) in curves.items():
        label = name if not ap or ap.get(name) is None else f"{name} (AP {ap[name]:.3f})"
        fig.add_trace(go.Scatter(x=list(recall), y=list(precision), name=label, mode="lines",
                                 line=dict(color=rgb_hex(palette[name])),
                                 hovertemplate="recall %{x:.3f}<br>precision %{y:.3f}<extra>" + name + "</extra>"))
    fig.update_xaxes(range=[0, 1.01])
    fig.update_yaxes(range=[0, 1.01])
    return _layout(fig, title=f"Precision–recall (IoU {iou:g})", x="recall", y="precision")


def f1_threshold_figure(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                        chosen: Mapping[str, float] | None = None) -> go.Figure:
    """F1 against score threshold per class: ``curves[name] = (thresholds, f1)``; ``chosen`` marks
    the threshold in use for each class."""
    fig = go.Figure()
    palette = class_colors(list(curves))
    for name, (thresholds, f1) in curves.items():
        colour = rgb_hex(palette[name])
        fig.add_trace(go.Scatter(x=list(thresholds), y=list(f1), name=name, mode="lines", line=dict(color=colour),
                                 hovertemplate="threshold %{x:.3f}<br>F1 %{y:.3f}<extra>" + name + "</extra>"))
        if chosen and name in chosen and len(thresholds):
            t = float(chosen[name])
            order = np.argsort(np.asarray(thresholds, float))
            y = float(np.interp(t, np.asarray(thresholds, float)[order], np.asarray(f1, float)[order]))
            fig.add_trace(go.Scatter(x=[t], y=[y], mode="markers", marker=dict(size=10, color=colour, symbol="x"),
                                     name=f"{name} threshold {t:.2f}", showlegend=False))
    fig.update_xaxes(range=[0, 1])
    fig.update_yaxes(range=[0, 1.01])
    return _layout(fig, title="F1 vs score threshold", x="score threshold", y="F1")


def confusion_matrix_figure(matrix: np.ndarray, labels: Sequence[str], *, normalize: bool = False) -> go.Figure:
    """Rows = ground truth, columns = prediction (``labels`` usually ends with "background")."""
    m = np.asarray(matrix, dtype=np.float64)
    shown = m / np.maximum(m.sum(axis=1, keepdims=True), 1) if normalize else m
    text = [[f"{v:.2f}" if normalize else f"{int(v)}" for v in row] for row in shown]
    fig = go.Figure(go.Heatmap(
        z=shown, x=list(labels), y=list(labels), colorscale="Blues", text=text, texttemplate="%{text}",
        customdata=m, hovertemplate="true %{y}<br>predicted %{x}<br>count %{customdata:.0f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title="Confusion matrix", x="predicted", y="ground truth")


def image_figure(image: np.ndarray, dets: Detections | None, classes: Sequence[str], *,
                 ground_truth: Sample | None = None) -> go.Figure:
    """The image with hoverable boxes: hovering a box shows its class and score. Ground truth,
    if given, is drawn dashed with its own legend entries."""
    img = np.asarray(image, dtype=np.uint8)
    fig = go.Figure(go.Image(z=img, hoverinfo="skip"))
    palette = class_colors(classes)
    if ground_truth is not None:
        for box, label in zip(ground_truth.boxes, ground_truth.labels):
            name = _class_name(classes, int(label))
            _add_box_trace(fig, box, colour=palette.get(name, PALETTE[-1]), hover=f"ground truth: {name}",
                           dash="dash", group=f"gt {name}")
    if dets is not None:
        for box, label, score in zip(dets.boxes, dets.labels, dets.scores):
            name = _class_name(classes, int(label))
            _add_box_trace(fig, box, colour=palette.get(name, PALETTE[-1]), hover=f"{name}<br>score {score:.3f}",
                           dash="solid", group=name)
    h, w = img.shape[:2]
    fig.update_xaxes(visible=False, range=[0, w])
    fig.update_yaxes(visible=False, range=[h, 0], scaleanchor="x")
    fig.update_layout(margin=dict(l=0, r=0, t=0, b=0), showlegend=False, template="plotly_white")
    return fig


def _add_box_trace(fig: go.Figure, box, *, colour, hover: str, dash: str, group: str) -> None:
    x0, y0, x1, y1 = (float(v) for v in box)
    r, g, b = colour
    # A filled, almost transparent polygon makes the whole box area hoverable, not just its edge.
    fig.add_trace(go.Scatter(
        x=[x0, x1, x1, x0, x0], y=[y0, y0, y1, y1, y0], mode="lines", fill="toself",
        fillcolor=f"rgba({r},{g},{b},0.08)", line=dict(color=f"rgb({r},{g},{b})", width=2, dash=dash),
        hoveron="fills", text=hover, hoverinfo="text", name=group, legendgroup=group))


def png_data_uri(image: np.ndarray) -> str:
    """An RGB image as a PNG data URI: a few hundred KB for the browser instead of the ~1.3 MB
    JSON pixel list ``go.Image(z=...)`` sends. Encode once per image and reuse it."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB").save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def detections_overlay_figure(image_uri: str, size: tuple[int, int], dets: Detections,
                              classes: Sequence[str]) -> go.Figure:
    """Like :func:`image_figure`, built for re-rendering on every slider move: two traces per
    class (all outlines in one None-separated line trace; one hover marker per box centre showing
    class and score), so 300 boxes cost a few milliseconds instead of one trace per box.
    ``image_uri`` comes from :func:`png_data_uri`; ``size`` is (width, height)."""
    w, h = size
    fig = go.Figure()
    fig.add_layout_image(source=image_uri, xref="x", yref="y", x=0, y=0, sizex=w, sizey=h,
                         sizing="stretch", layer="below")
    palette = class_colors(classes)
    for k in np.unique(dets.labels):
        pick = dets.labels == k
        boxes, scores = dets.boxes[pick].astype(float), dets.scores[pick]
        name = _class_name(classes, int(k))
        r, g, b = palette.get(name, PALETTE[-1])
        x0, y0, x1, y1 = boxes.T
        gap = np.full(len(boxes), np.nan)
        xs = np.stack([x0, x1, x1, x0, x0, gap], axis=1).ravel()
        ys = np.stack([y0, y0, y1, y1, y0, gap], axis=1).ravel()
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=f"rgb({r},{g},{b})", width=2),
                                 hoverinfo="skip", name=name, legendgroup=name))
        fig.add_trace(go.Scatter(x=(x0 + x1) / 2, y=(y0 + y1) / 2, mode="markers", name=name, legendgroup=name,
                                 marker=dict(size=14, color=f"rgba({r},{g},{b},0.25)"), customdata=scores,
                                 hovertemplate=f"{name}<br>score %{{customdata:.3f}}<extra></extra>"))
    fig.update_xaxes(visible=False, range=[0, w])
    fig.update_yaxes(visible=False, range=[h, 0], scaleanchor="x")
    # No named template: resolving "plotly_white" alone costs ~30 ms, half this figure's budget.
    fig.update_layout(margin=dict(l=0, r=0, t=0, b=0), showlegend=False, plot_bgcolor="white",
                      paper_bgcolor="white", hovermode="closest", hoverdistance=40,
                      height=min(720, max(240, int(h * 800 / max(w, 1)))))
    return fig


def anchor_fit_figure(panels: Sequence[Mapping], classes: Sequence[str]) -> go.Figure:
    """Ground-truth box sizes against a model's anchor sizes, log-log, one panel per geometry
    (``detcore.fitcheck.plot_panels``): boxes no anchor matches at IoU 0.5 are drawn hollow; anchors
    are black crosses sized by their level's stride. FCOS has points, not boxes: its crosses mark
    the level sizes."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p["title"] for p in panels],
                        shared_xaxes=True, shared_yaxes=True, horizontal_spacing=0.06)
    palette = class_colors(classes)
    for col, panel in enumerate(panels, start=1):
        w, h = np.asarray(panel["widths"]), np.asarray(panel["heights"])
        labels, matched = np.asarray(panel["labels"]), np.asarray(panel["matched"], bool)
        for i, name in enumerate(classes):
            for hit in (True, False):
                m = (labels == i) & (matched == hit)
                if not m.any():
                    continue
                colour = rgb_hex(palette[name])
                fig.add_trace(go.Scattergl(
                    x=w[m], y=h[m], mode="markers", name=f"{name} ({'matched' if hit else 'no anchor'})",
                    legendgroup=f"{name}{hit}", showlegend=col == 1,
                    marker=dict(size=5, color=colour if hit else "rgba(0,0,0,0)",
                                line=dict(color=colour, width=1), opacity=0.6 if hit else 0.9),
                    hovertemplate=f"{name}: %{{x:.0f}} x %{{y:.0f}} px<extra></extra>"), row=1, col=col)
        anchors = np.asarray(panel["anchors"], np.float64).reshape(-1, 3)
        if len(anchors):
            fig.add_trace(go.Scatter(
                x=anchors[:, 0], y=anchors[:, 1], mode="markers", name="anchors", legendgroup="anchors",
                showlegend=col == 1, marker=dict(symbol="x-thin", size=12, line=dict(width=2, color="#111")),
                customdata=anchors[:, 2],
                hovertemplate="anchor %{x:.0f} x %{y:.0f} px, stride %{customdata:.0f}<extra></extra>"),
                row=1, col=col)
        fig.update_xaxes(type="log", title_text="box width [model-input px]", row=1, col=col)
    fig.update_yaxes(type="log")  # every panel: shared axes must share the type too
    fig.update_yaxes(title_text="box height [model-input px]", row=1, col=1)
    fig.update_layout(template="plotly_white", height=430, margin=dict(l=50, r=20, t=60, b=45),
                      legend=dict(orientation="h", y=-0.25), title="Box sizes vs anchor sizes (log-log)")
    return fig
