"""Predict page: drop images, the chosen run's model runs once per image at a low score floor and the
result is cached; the score slider and per-class settings only filter, so they answer instantly."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from detcore import viz
from detcore.data.images import load_rgb
from detcore.errors import DetcoreError
from detcore.structures import Detections
from ui.shell import page_shell
from ui.feedback import shown_errors
from ui.loaders import load_predictor, load_run_thresholds
from ui.training import current_run_or_offer_demo

SCORE_FLOOR = 0.05  # the model keeps everything above this once; the slider filters from there
CACHE_KEY = "predict_cache"
DISPLAY_LONG_SIDE = 2048  # what a browser figure needs at most
IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff"]


@dataclass
class PredictedImage:
    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    detections: Detections
    image_uri: str  # PNG data URI, encoded once so slider moves only resend boxes


def _cache() -> dict:
    return st.session_state.setdefault(CACHE_KEY, {})


def predict_uploads(files, run_dir: Path) -> list[PredictedImage]:
    """Detections for each upload, running the model only for images not seen with this checkpoint."""
    predictor, checkpoint_stamp = load_predictor(run_dir)
    cache = _cache()
    keyed = []
    for f in files:
        payload = f.getvalue()
        keyed.append((f.name, payload, (hashlib.sha1(payload).hexdigest(), str(run_dir), checkpoint_stamp)))
    missing = [(name, payload, key) for name, payload, key in keyed if key not in cache]
    if missing:
        images, ok = [], []
        for name, payload, key in missing:
            try:
                images.append(load_rgb(payload, name=name))
                ok.append((name, key))
            except DetcoreError as e:
                st.error(str(e), icon=":material/error:")
        if images:
            with st.spinner(f"Running the model on {len(images)} image(s)…"):
                dets = predictor.predict(images, image_ids=[n for n, _ in ok], score_floor=SCORE_FLOOR)
            for (name, key), image, d in zip(ok, images, dets):
                cache[key] = PredictedImage(name, image, d, display_uri(image))
    current = {key for _, _, key in keyed}
    for stale in [key for key in cache if key not in current]:  # only what is dropped now stays cached
        del cache[stale]
    return [cache[key] for _, _, key in keyed if key in cache]


def display_uri(image: np.ndarray) -> str:
    """PNG data URI for the browser, at most DISPLAY_LONG_SIDE px: the figure stretches it back over
    the full-resolution box coordinates, so a 4000 px photo costs a browser-sized PNG per move."""
    height, width = image.shape[:2]
    scale = DISPLAY_LONG_SIDE / max(height, width)
    if scale < 1:
        small = Image.fromarray(image).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                              Image.BILINEAR)
        image = np.asarray(small)
    return viz.png_data_uri(image)


def thresholds_ui(classes: list[str], saved: dict) -> tuple[np.ndarray, list[str]]:
    """Global slider, class toggles and per-class overrides → per-class thresholds, classes shown."""
    default_global = float(saved.get("global", 0.5))
    threshold = st.slider("Score threshold", SCORE_FLOOR, 1.0, min(1.0, max(default_global, SCORE_FLOOR)), 0.01,
                          key="predict_threshold")
    shown = st.multiselect("Classes shown", classes, default=classes, key="predict_classes")
    per_class = np.full(len(classes), threshold, dtype=np.float32)
    saved_per_class = saved.get("per_class") or {}
    with st.expander("Per-class thresholds" + (" (from the run's thresholds.json)" if saved_per_class else "")):
        use_own = st.toggle("Use per-class thresholds", value=bool(saved_per_class), key="predict_use_per_class")
        if use_own:
            cols = st.columns(min(4, max(1, len(classes))))
            for i, name in enumerate(classes):
                per_class[i] = cols[i % len(cols)].number_input(
                    name, SCORE_FLOOR, 1.0, min(1.0, max(SCORE_FLOOR, float(saved_per_class.get(name, threshold)))), 0.01,
                    key=f"predict_thr_{name}")
    hidden = [i for i, c in enumerate(classes) if c not in shown]
    per_class[hidden] = np.inf
    return per_class, shown


def _png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _detections_json(item: PredictedImage, kept: Detections, classes: list[str]) -> str:
    rows = [{"class": classes[int(l)], "score": round(float(s), 4), "box_xyxy": [round(float(v), 1) for v in b]}
            for b, s, l in zip(kept.boxes, kept.scores, kept.labels)]
    return json.dumps({"image": item.name, "detections": rows}, indent=2)


def image_result_ui(item: PredictedImage, kept: Detections, classes: list[str], index: int) -> None:
    uri = item.image_uri
    if kept.masks is not None and len(kept):  # Mask R-CNN: masks are painted into the picture
        uri = display_uri(viz.draw_detections(item.image, kept, classes, show_scores=False))
    height, width = item.image.shape[:2]
    st.plotly_chart(viz.detections_overlay_figure(uri, (width, height), kept, classes), key=f"predict_fig_{index}",
                    config={"displayModeBar": False})
    left, right = st.columns(2)
    left.download_button("Annotated image", lambda: _png_bytes(viz.draw_detections(item.image, kept, classes)),
                         file_name=f"{Path(item.name).stem}-detections.png", mime="image/png",
                         on_click="ignore", key=f"predict_png_{index}")
    right.download_button("Detections JSON", lambda: _detections_json(item, kept, classes),
                          file_name=f"{Path(item.name).stem}-detections.json", mime="application/json",
                          on_click="ignore", key=f"predict_json_{index}")


@st.fragment
def results_ui(items: list[PredictedImage], classes: list[str], saved: dict) -> None:
    # A fragment: moving the slider reruns only this function, on cached detections — never the model.
    per_class, _ = thresholds_ui(classes, saved)
    kept = [item.detections.above(per_class) for item in items]
    counts = np.bincount(np.concatenate([k.labels for k in kept]).astype(np.int64), minlength=len(classes))
    cols = st.columns(1 + min(len(classes), 5))
    cols[0].metric("Boxes shown", int(counts.sum()))
    for i, name in enumerate(classes[: len(cols) - 1]):
        cols[i + 1].metric(name, int(counts[i]))
    for index, (item, k) in enumerate(zip(items, kept)):
        st.subheader(item.name, divider="gray")
        image_result_ui(item, k, classes, index)


page_shell("Predict")
run_dir = current_run_or_offer_demo("No trained run yet. Train the demo model first (a few minutes on a CPU), then drop images here.")

st.caption(f"Run `{run_dir.name}`")
uploads = st.file_uploader("Drop images", type=IMAGE_TYPES, accept_multiple_files=True, key="predict_uploads")
st.caption(f"The model sees every image at full resolution; images are shown at most {DISPLAY_LONG_SIDE} px "
           "on their long side. Only the images dropped here now stay cached.")
if not uploads:
    st.info("Drop one or more images to run the model on them.")
    st.stop()
with shown_errors():
    predicted = predict_uploads(uploads, run_dir)
    saved_thresholds = load_run_thresholds(run_dir)
    run_classes = load_predictor(run_dir)[0].classes
if predicted:
    results_ui(predicted, run_classes, saved_thresholds)
