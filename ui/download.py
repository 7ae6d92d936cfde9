"""Data page: "Download as COCO / YOLO / VOC" — a zip of the current dataset built by
``detcore.data.convert`` (the code behind ``python -m detcore convert``).

Bounded: the zip is built in memory (Streamlit serves downloads from memory), so a dataset whose
zip would exceed ``DETBOARD_DOWNLOAD_MAX_MB`` (default 100) is refused with the CLI command that
converts it on the server instead. The zip is built only when asked ("Prepare"), kept for this
session until the format or the dataset changes, and dropped then.
"""

from __future__ import annotations

import os

import streamlit as st

from detcore.data.convert import common_notes, dataset_folder, zip_bytes
from detcore.errors import DetcoreError
from detcore.structures import ParsedDataset

DEFAULT_MAX_MB = 100
FORMATS = {"COCO": "coco", "YOLO": "yolo", "VOC": "voc"}
_STATE = "_data_download"


def download_limit_bytes() -> int:
    raw = os.environ.get("DETBOARD_DOWNLOAD_MAX_MB", "")
    try:
        mb = float(raw) if raw else DEFAULT_MAX_MB
    except ValueError:
        mb = DEFAULT_MAX_MB
    return int(max(mb, 0) * 2**20)


def _image_bytes(parsed: ParsedDataset) -> int:
    total = 0
    for s in parsed.samples:
        try:
            total += s.image_path.stat().st_size
        except OSError:
            pass
    return total


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MB"


def download_ui(parsed: ParsedDataset) -> None:
    label = st.radio("Format", list(FORMATS), horizontal=True, key="data_download_format",
                     help="COCO keeps masks (polygons / RLE); YOLO and VOC hold boxes only.")
    to = FORMATS[label]
    for note in common_notes(parsed, to):
        st.caption(f"Note: {note}")
    limit, images = download_limit_bytes(), _image_bytes(parsed)
    command = f"python -m detcore convert {dataset_folder(parsed)} --to {to} --out DIR"
    if images > limit:
        st.warning(f"This dataset's images alone take {_mb(images)}, above the {_mb(limit)} download limit "
                   f"(DETBOARD_DOWNLOAD_MAX_MB). Convert it on the server instead: `{command}`",
                   icon=":material/warning:")
        return
    key = (str(parsed.root), parsed.num_images, parsed.num_objects, to)
    prepared = st.session_state.get(_STATE)
    if prepared is not None and prepared["key"] != key:
        st.session_state.pop(_STATE, None)  # another format or dataset: free the old zip
        prepared = None
    if prepared is None:
        slot = st.empty()  # the prepare step, replaced by the download button once the zip exists
        with slot.container():
            st.caption(f"{parsed.num_images:,} images, about {_mb(images)}; the problems found while reading travel "
                       "with it in detboard-conversion.txt (written as read, not fixed).")
            clicked = st.button(f"Prepare the {label} zip", key="data_download_prepare", icon=":material/folder_zip:")
        if not clicked:
            return
        try:
            with st.spinner(f"Writing {label}…"):
                data, conv = zip_bytes(parsed, to, max_bytes=limit)
        except DetcoreError as e:
            st.error(str(e), icon=":material/error:")
            return
        slot.empty()
        folder = f"{dataset_folder(parsed).name}-{to}"
        prepared = st.session_state[_STATE] = {"key": key, "bytes": data, "file_name": f"{folder}.zip",
                                               "images": conv.images, "objects": conv.objects}
    st.download_button(f"Download {prepared['file_name']} ({_mb(len(prepared['bytes']))})", prepared["bytes"],
                       file_name=prepared["file_name"], mime="application/zip", type="primary",
                       icon=":material/download:", key="data_download_button", on_click="ignore")
    st.caption(f"{prepared['images']:,} images, {prepared['objects']:,} objects as {label}; the problems found while "
               "reading are listed in its detboard-conversion.txt.")
