"""Live inputs for the Predict page, for showing a model to people: a camera snapshot beside the drop
zone, a folder of images on the server (under the data root, a page at a time), the model's time
for each image, and the model's size in the page header.

The snapshot and the folder's images reach the page as the same objects an upload is (``name`` and
``getvalue()``), so the page runs, caches and draws them like dropped images. Folder paths are
confined to the data roots (``detcore.paths.confine_to_data_roots``): ``..``, other absolute paths
and symlinks leading out are refused, file by file too.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from detcore import paths
from detcore.errors import DataError, DetcoreError
from detcore.train.runs import Run

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
PAGE_SIZES = (4, 8, 16, 32)
MAX_LISTED = 10_000  # files listed from one folder; more are reported, not read
CAMERA_TOGGLE = "predict_camera_on"
FOLDER_KEY = "predict_folder"
FOLDER_PAGE = "predict_folder_page"


@dataclass(frozen=True)
class ImageFile:
    """An image that did not come through the uploader, shaped like an upload for the page."""

    name: str
    data: bytes

    def getvalue(self) -> bytes:
        return self.data


def camera_ui() -> list[ImageFile]:
    """A camera snapshot, behind a toggle so the browser asks for the camera only when wanted."""
    if not st.toggle("Camera", key=CAMERA_TOGGLE, help="Take a snapshot with this device's camera"):
        return []
    shot = st.camera_input("Snapshot", key="predict_camera")
    if shot is None:
        return []
    data = shot.getvalue()
    return [ImageFile(f"camera-{hashlib.sha1(data).hexdigest()[:8]}.jpg", data)]


def folder_images(folder: str) -> tuple[Path, list[Path], int]:
    """(the confined folder, its image files sorted by name — at most MAX_LISTED —, files left out
    because they lead outside the data roots). DataError for a folder outside them or missing."""
    root = paths.confine_to_data_roots(folder)
    if not root.is_dir():
        raise DataError(folder, "is not a folder under the data root")
    files, outside = [], 0
    for p in sorted(root.iterdir()):
        if len(files) >= MAX_LISTED:
            break
        if p.suffix.lower() not in IMAGE_SUFFIXES or not p.is_file():
            continue
        try:
            files.append(paths.confine_to_data_roots(p))  # a link inside that leads out is refused
        except DataError:
            outside += 1
    return root, files, outside


def folder_ui() -> list[ImageFile]:
    """A folder under the data root, one page of images at a time."""
    with st.expander("Images from a folder on the server", expanded=bool(st.session_state.get(FOLDER_KEY))):
        left, mid, right = st.columns([4, 1, 1], vertical_alignment="bottom")
        folder = left.text_input("Folder (under the data root)", key=FOLDER_KEY, placeholder="e.g. demo/images",
                                 help=f"A folder under {paths.data_root()}; its images are read a page at a time.")
        if not folder.strip():
            return []
        try:
            root, files, outside = folder_images(folder)
        except DetcoreError as e:
            st.error(str(e), icon=":material/error:")
            return []
        if outside:
            st.warning(f"{outside} file(s) in {root.name} lead outside the data root and are left out.",
                       icon=":material/warning:")
        if not files:
            st.info(f"No images in {root} ({', '.join(IMAGE_SUFFIXES)}).")
            return []
        size = mid.selectbox("Per page", PAGE_SIZES, index=1, key="predict_folder_page_size")
        pages = max(1, math.ceil(len(files) / size))
        page = int(right.number_input("Page", 1, pages, key=FOLDER_PAGE))
        chosen = files[(page - 1) * size: page * size]
        more = f" (the first {MAX_LISTED:,} listed)" if len(files) >= MAX_LISTED else ""
        st.caption(f"{root}: {len(files):,} images{more} · page {page} of {pages}: "
                   f"{chosen[0].name} … {chosen[-1].name}")
    out = []
    for p in chosen:
        try:
            out.append(ImageFile(p.name, p.read_bytes()))
        except OSError as e:
            st.error(f"{p}: unreadable ({e.strerror or e})", icon=":material/error:")
    return out


def live_inputs_ui(camera_column) -> list[ImageFile]:
    """The camera (drawn in ``camera_column``, beside the drop zone) and the folder (below it)."""
    with camera_column:
        shots = camera_ui()
    return [*shots, *folder_ui()]


def model_time_caption(ms: float | None) -> None:
    if ms is not None:
        st.caption(f"Model time {ms:.0f} ms (this image, on the server's {_device_word()})")


def _device_word() -> str:
    return st.session_state.get("_predict_device", "device")


@st.cache_data(show_spinner=False, max_entries=16)
def _size(run_dir: str, stamp: str) -> dict:
    from detcore.speed import model_size
    from ui.loaders import load_predictor

    predictor, _ = load_predictor(Path(run_dir))
    return {**model_size(Run(run_dir), predictor=predictor), "device": str(predictor.device)}


def model_header_text(size: dict, speed: dict | None) -> str:
    """One line for the page header: parameters, checkpoint size, device, the stored speed."""
    parts = [f"{size['params'] / 1e6:.2f} M parameters", f"checkpoint {size['checkpoint_mb']:.1f} MB",
             f"runs on {size['device']}"]
    if speed:
        parts.append(f"p50 {speed['p50_ms']:.0f} ms / image, {speed.get('images_per_s', 0):.2f} images/s "
                     f"(measured on {speed.get('device')})")
    else:
        parts.append("speed not measured yet (`python -m detcore predict RUN --benchmark`, or Compare → Measure speed)")
    return " · ".join(parts)


def model_header_ui(run_dir: Path) -> None:
    """Parameters, checkpoint size, device and the stored speed measurement of the run's model."""
    try:
        size = _size(str(run_dir), Run(run_dir).checkpoint_stamp())
        speed = Run(run_dir).benchmark()
    except DetcoreError as e:
        st.error(str(e), icon=":material/error:")
        return
    st.session_state["_predict_device"] = size["device"]
    st.caption(f"Model: {model_header_text(size, speed)}", help=f"{size['params']:,} parameters; {size['checkpoint']}")
