"""The Predict page's per-session results: one image at a time through
``detcore.image_prediction.predict_image``, cached by content, within a memory budget (hostile walk,
findings 6 and 12).

``predicted_images(sources, run_dir)`` takes ``(name, bytes or path)`` pairs in the order to show them —
uploads today; a camera frame or a server folder feed the same function — and returns one
:class:`PredictedImage` per source that fits the session's budget. Identical content is predicted
once and shown under each of its names. Only the results of the sources passed now stay cached.

The budget: ``DETBOARD_PREDICT_SESSION_MB`` (default 256 MiB) bounds what one session's results hold
(display copies, their PNG data URIs, detections); images beyond it are not shown, and a warning
names them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from detcore import viz
from detcore.errors import DetcoreError
from detcore.structures import Detections
from ui.loaders import load_predictor

if TYPE_CHECKING:
    from detcore.image_prediction import ImagePrediction

SCORE_FLOOR = 0.05  # the model keeps everything above this once; the slider filters from there
CACHE_KEY = "predict_cache"
BUDGET_ENV = "DETBOARD_PREDICT_SESSION_MB"
DEFAULT_BUDGET_MB = 256


@dataclass(frozen=True)
class PredictedImage:
    """What the page shows of one image: its name, the bounded result of
    ``detcore.image_prediction.predict_image`` (``size`` is the image's (width, height), the
    detections' pixels; ``display`` a copy of at most 2048 px) and the display copy as a PNG data URI,
    encoded once so slider moves only resend boxes."""

    name: str
    result: "ImagePrediction"
    image_uri: str

    @property
    def size(self) -> tuple[int, int]:
        return self.result.size

    @property
    def display(self) -> np.ndarray:
        return self.result.display

    @property
    def detections(self) -> Detections:
        return self.result.detections

    @property
    def model_ms(self) -> float | None:
        return self.result.model_ms

    @property
    def nbytes(self) -> int:
        return self.result.nbytes + len(self.image_uri)

    def for_display(self, detections: Detections) -> Detections:
        return self.result.for_display(detections)


def budget_bytes() -> int:
    """The per-session budget from DETBOARD_PREDICT_SESSION_MB; a bad value is a DetcoreError naming it."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_BUDGET_MB * 2**20
    try:
        mb = float(raw)
    except ValueError:
        mb = float("nan")
    if not 0 < mb < float("inf"):
        raise DetcoreError(BUDGET_ENV, f"{raw!r} is not a positive number of MiB")
    return int(mb * 2**20)


def _content_key(payload: bytes | str | Path) -> str:
    if isinstance(payload, bytes):
        return hashlib.sha1(payload).hexdigest()
    try:
        st_ = Path(payload).stat()
    except OSError:
        return f"{payload}|unreadable"  # predict_image then says what is wrong with it
    return f"{Path(payload).resolve()}|{st_.st_size}|{st_.st_mtime_ns}"


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n % 2**20 else f"{n // 2**20:,} MiB"


def predicted_images(sources: list[tuple[str, bytes | str | Path]], run_dir: Path) -> list[PredictedImage]:
    """Detections for each source (see the module docstring). A bad image is an ``st.error`` naming it;
    sources beyond the session's budget are named in one ``st.warning``."""
    from detcore.image_prediction import predict_image  # torch: loaded with the model, not with the page

    budget = budget_bytes()
    predictor, checkpoint_stamp = load_predictor(run_dir)
    cache: dict = st.session_state.setdefault(CACHE_KEY, {})
    keyed = [(name, payload, (_content_key(payload), str(run_dir), checkpoint_stamp)) for name, payload in sources]
    wanted = {key for _, _, key in keyed}
    for stale in [key for key in cache if key not in wanted]:  # only what is shown now stays cached
        del cache[stale]
    held = sum(item.nbytes for item in cache.values())
    shown, over = [], []
    to_run = len({key for _, _, key in keyed if key not in cache})
    bar = st.progress(0.0, text=f"Running the model on {to_run} image(s)…") if to_run > 1 else None
    ran = 0
    for name, payload, key in keyed:
        item = cache.get(key)
        if item is None:
            if over or held >= budget:
                over.append(name)
                continue
            try:
                with st.spinner(f"Running the model on {name}…"):
                    result = predict_image(predictor, payload, name=name, score_floor=SCORE_FLOOR)
            except DetcoreError as e:
                st.error(str(e), icon=":material/error:")
                continue
            finally:
                ran += 1
                if bar is not None:
                    bar.progress(min(1.0, ran / to_run), text=f"Running the model: {ran} of {to_run} image(s)")
            item = PredictedImage(name, result, viz.png_data_uri(result.display))
            if held + item.nbytes > budget:
                over.append(name)
                continue
            cache[key] = item
            held += item.nbytes
        shown.append(item if item.name == name else dataclasses.replace(item, name=name))  # arrays shared
    if bar is not None:
        bar.empty()
    if over:
        st.warning(f"Not shown: {', '.join(over)} — this session's results may hold {_mib(budget)} "
                   f"({BUDGET_ENV}) and the images above take {_mib(held)}. Drop fewer images at once.",
                   icon=":material/memory:")
    return shown
