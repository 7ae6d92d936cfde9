"""Data page: "Augmentation preview" — N random draws of the training augmentation on one image, with
its boxes (and masks), so a user sees what the model is fed before training. The sliders are the Train
form's Augmentation settings (same meaning as ``train --hflip --rotate --scale-jitter --color-jitter``)."""

from __future__ import annotations

import streamlit as st

from detcore.structures import ParsedDataset
from detcore.train.presets import PRESETS
from ui.feedback import shown_errors
from ui.loaders import load_augmented_previews

MAX_IMAGES_LISTED = 1000
SEED_KEY = "data_aug_seed"


def augment_preview_ui(parsed: ParsedDataset) -> None:
    samples = parsed.samples[:MAX_IMAGES_LISTED]
    if not samples:
        st.info("This dataset has no images.")
        return
    if not st.toggle("Draw augmented samples", key="data_aug_on",
                     help="Runs the training transforms (loads PyTorch the first time, a few seconds)"):
        st.caption("See what the model is fed: random flips, rotations, zooms and colour changes of one image, "
                   "with its boxes and masks transformed the way training transforms them.")
        return
    start = PRESETS["demo-cpu"]["augment"]
    left, right = st.columns([2, 3])
    first_with_objects = next((i for i, s in enumerate(samples) if s.num_objects), 0)
    image_id = left.selectbox("Image", [s.image_id for s in samples], index=first_with_objects, key="data_aug_image",
                              help=f"The first {MAX_IMAGES_LISTED} images of the dataset" if len(parsed.samples)
                              > MAX_IMAGES_LISTED else None)
    n = right.select_slider("Draws", [4, 8, 12], value=8, key="data_aug_n")
    c1, c2, c3, c4 = st.columns(4)
    augment = {
        "hflip": c1.slider("Horizontal flip probability", 0.0, 1.0, float(start["hflip"]), 0.05, key="data_aug_hflip"),
        "rotate": c2.slider("Rotation ± degrees", 0.0, 180.0, 30.0, 5.0, key="data_aug_rotate"),
        "scale_jitter": c3.slider("Scale jitter ±", 0.0, 0.5, 0.2, 0.05, key="data_aug_scale_jitter"),
        "color_jitter": c4.slider("Colour jitter", 0.0, 1.0, 0.3, 0.05, key="data_aug_color_jitter"),
    }
    if st.button("New draws", icon=":material/casino:", key="data_aug_redraw"):
        st.session_state[SEED_KEY] = st.session_state.get(SEED_KEY, 0) + 1000
    sample = next(s for s in samples if s.image_id == image_id)
    with shown_errors(stop=False):
        pictures = load_augmented_previews(parsed, sample, {**augment, "scale_jitter": augment["scale_jitter"] or None},
                                           n=int(n), seed=st.session_state.get(SEED_KEY, 0))
        cols = st.columns(4)
        for i, picture in enumerate(pictures):
            cols[i % 4].image(picture, caption=f"draw {i + 1}")
        st.caption("Each picture is one random draw of the training transforms (flip, rotation, zoom, colour) with the "
                   "boxes and masks the model is trained on. Set the same values in the Train form's Augmentation "
                   "section, or with train --hflip P --rotate DEG --scale-jitter F --color-jitter F.")
