"""Predict page: drop images, the chosen run's model runs once per image at a low score floor and the
result is cached; the score slider and per-class settings only filter, so they answer instantly."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from detcore import viz
from detcore.detection_schema import detections_document
from detcore.structures import Detections
from detcore.train.runs import Run, Thresholds
from ui.auth import still_allowed
from ui.feedback import shown_errors
from ui.live import live_inputs_ui, model_header_ui, model_time_caption
from ui.loaders import load_predictor
from ui.predictions import SCORE_FLOOR, PredictedImage, predicted_images
from ui.shell import page_shell
from ui.training import current_run_or_offer_demo

IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff"]


def thresholds_ui(classes: list[str], saved: Thresholds) -> tuple[np.ndarray, list[str]]:
    """Global slider, class toggles and per-class overrides → per-class thresholds, classes shown."""
    threshold = st.slider("Score threshold", SCORE_FLOOR, 1.0, min(1.0, max(saved.global_value(), SCORE_FLOOR)), 0.01,
                          key="predict_threshold")
    shown = st.multiselect("Classes shown", classes, default=classes, key="predict_classes")
    per_class = np.full(len(classes), threshold, dtype=np.float32)
    with st.expander("Per-class thresholds" + (" (saved with the run)" if saved.per_class else "")):
        use_own = st.toggle("Use per-class thresholds", value=bool(saved.per_class), key="predict_use_per_class")
        if use_own:
            cols = st.columns(min(4, max(1, len(classes))))
            for i, name in enumerate(classes):
                value = saved.per_class.get(name, threshold)
                per_class[i] = cols[i % len(cols)].number_input(
                    name, SCORE_FLOOR, 1.0, min(1.0, max(SCORE_FLOOR, value)), 0.01, key=f"predict_thr_{name}")
    hidden = [i for i, c in enumerate(classes) if c not in shown]
    per_class[hidden] = np.inf
    return per_class, shown


def _png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _detections_json(item: PredictedImage, kept: Detections, classes: list[str], thresholds: np.ndarray,
                     source: dict) -> str:
    """The same document as `predict --json` (docs/detections.md), for this image at these thresholds."""
    width, height = item.size
    return json.dumps(detections_document([(item.name, width, height, kept)], classes=classes,
                                          thresholds=thresholds, model=source), indent=2)


def image_result_ui(item: PredictedImage, kept: Detections, classes: list[str], index: int,
                    thresholds: np.ndarray, source: dict) -> None:
    uri = item.image_uri
    if kept.masks is not None and len(kept):  # Mask R-CNN: masks are painted into the picture
        uri = viz.png_data_uri(viz.draw_detections(item.display, item.for_display(kept), classes, show_scores=False))
    st.plotly_chart(viz.detections_overlay_figure(uri, item.size, kept, classes), key=f"predict_fig_{index}",
                    config={"displayModeBar": False})
    left, right = st.columns(2)
    left.download_button("Annotated image",  # drawn on the display copy: the full-size pixels are not kept
                         lambda: _png_bytes(viz.draw_detections(item.display, item.for_display(kept), classes)),
                         file_name=f"{Path(item.name).stem}-detections.png", mime="image/png",
                         on_click="ignore", key=f"predict_png_{index}")
    right.download_button("Detections JSON", lambda: _detections_json(item, kept, classes, thresholds, source),
                          file_name=f"{Path(item.name).stem}-detections.json", mime="application/json",
                          on_click="ignore", key=f"predict_json_{index}")


@st.fragment
def results_ui(items: list[PredictedImage], classes: list[str], saved: Thresholds, source: dict) -> None:
    # A fragment: moving the slider reruns only this function, on cached detections — never the model.
    still_allowed()
    per_class, _ = thresholds_ui(classes, saved)
    kept = [item.detections.above(per_class) for item in items]
    counts = np.bincount(np.concatenate([k.labels for k in kept]).astype(np.int64), minlength=len(classes))
    cols = st.columns(1 + min(len(classes), 5))
    cols[0].metric("Boxes shown", int(counts.sum()))
    for i, name in enumerate(classes[: len(cols) - 1]):
        cols[i + 1].metric(name, int(counts[i]))
    for index, (item, k) in enumerate(zip(items, kept)):
        st.subheader(item.name, divider="gray")
        model_time_caption(item.model_ms)
        image_result_ui(item, k, classes, index, per_class, source)


page_shell("Predict")
run_dir = current_run_or_offer_demo("No trained run yet. Train the demo model first (a few minutes on a CPU), then drop images here.")

st.caption(f"Run `{run_dir.name}`")
model_header_ui(run_dir)
drop_column, camera_column = st.columns([3, 2])
with drop_column:
    uploads = st.file_uploader("Drop images", type=IMAGE_TYPES, accept_multiple_files=True, key="predict_uploads")
uploads = [*(uploads or []), *live_inputs_ui(camera_column)]  # camera snapshot, server folder
st.caption("Images run through the model one at a time; one above 2048 x 2048 px is first resized to the model's "
           "input size, and each is kept and shown at most 2048 px on its long side. Only the images shown here "
           "now stay cached.")
if not uploads:
    st.info("Drop one or more images, take a camera snapshot, or open a folder on the server to run the model on them.")
    st.stop()
with shown_errors():
    predicted = predicted_images([(f.name, f.getvalue()) for f in uploads], run_dir)
    saved_thresholds = Run(run_dir).thresholds()
    run_predictor = load_predictor(run_dir)[0]
    run_classes = run_predictor.classes
    model_source = {"source": run_dir.name, "format": "run", "model": run_predictor.model_name,
                    "checkpoint": run_predictor.checkpoint_path.name if run_predictor.checkpoint_path else None}
if predicted:
    results_ui(predicted, run_classes, saved_thresholds, model_source)
