"""Train page, issue 10 parts: the Split section (live, with a preview of images and objects per class
in each part before Start), and the form's Augmentation, Optimizer & schedule and More sections
(including a local weights file, uploaded or under DATA).

Widget keys follow one rule — ``train_<preset>_<TrainConfig field>`` (``augment.<key>`` for
augmentation) — so tests/test_cli_parity.py can render the page and compare what the form sets with
the CLI's flags. Keys that predate the rule, or that feed a field indirectly, are in ``KEY_FIELDS``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import streamlit as st

from detcore import atomic, paths
from detcore.errors import ConfigError, DetcoreError
from detcore.train.config import TrainConfig
from detcore.train.presets import PRESETS
from detcore.train.split_plan import IMAGES_ROW, plan_split, split_table
from ui.feedback import shown_errors
from ui.given_split import SPLIT_LABELS, given_split_note
from ui.loaders import load_parsed_dataset

# Widget key suffix → TrainConfig field, where the suffix is not the field's own name.
KEY_FIELDS = {"max_iters": "max_iters_per_epoch", "devices": "device", "weights_path": "weights", "weights_upload": "weights"}
FORMATS = ["auto", "voc", "pennfudan", "coco", "yolo"]
WEIGHTS_DIR = "weights"  # under the uploads folder


def field_of_key(key: str, preset: str) -> str | None:
    """The TrainConfig field a Train-page widget key sets (None for keys of other widgets)."""
    prefix = f"train_{preset}_"
    if not key.startswith(prefix):
        return None
    suffix = key[len(prefix):]
    return KEY_FIELDS.get(suffix, suffix)


# --- the Split section (outside the form, so the preview follows every change) ---------------------

def split_section_ui(base: TrainConfig, k: str, dataset: str) -> dict:
    """Split method, fractions, count and seed, with a preview table; returns the split settings."""
    with st.container(border=True):
        st.markdown("**Split** — saved with the run; Evaluate and `evaluate RUN` use the same images")
        if (note := given_split_note(dataset)) is not None:
            st.info(note, icon=":material/call_split:")
        methods = list(SPLIT_LABELS)
        c1, c2 = st.columns([2, 1])
        method = c1.selectbox("Split", methods, index=methods.index(base.split_method)
                              if base.split_method in methods else 0, format_func=SPLIT_LABELS.get,
                              key=k + "split_method")
        seed = c2.number_input("Split seed", 0, 10_000, base.split_seed, key=k + "split_seed",
                               disabled=method in ("last_n", "imagesets"),
                               help="Which images are drawn (random, hold-out, validation part)")
        c1, c2, c3 = st.columns(3)
        test_fraction = c1.slider("Test fraction", 0.05, 0.5, float(base.test_fraction), 0.05, key=k + "test_fraction",
                                  disabled=method != "random", help="random: this share of the images is the test part")
        split_n = c2.number_input("Test images N (last N / hold-out N)", 1, 1_000_000, base.split_n or 50,
                                  key=k + "split_n", disabled=method not in ("last_n", "holdout"),
                                  help="last N: the last N images in file order; hold-out N: N images at random")
        val_fraction = c3.slider("Validation fraction", 0.0, 0.5, float(base.val_fraction), 0.05, key=k + "val_fraction",
                                 disabled=method == "imagesets",
                                 help="Drawn from the non-test images; 0 validates on the test part, as the "
                                      "tutorials did")
        values = {"split_method": method, "split_seed": int(seed), "test_fraction": float(test_fraction),
                  "val_fraction": 0.0 if method == "imagesets" else float(val_fraction),
                  "split_n": int(split_n) if method in ("last_n", "holdout") else None}
        split_preview_ui(base, values, dataset)
    return values


def split_preview_ui(base: TrainConfig, values: dict, dataset: str) -> None:
    try:
        parsed = load_parsed_dataset(dataset)
        split = plan_split(dataclasses.replace(base, **values), parsed)
    except DetcoreError as e:
        st.error(f"This split cannot be made: {e}", icon=":material/error:")
        return
    table = split_table(parsed, split)
    parts = [c for c in table.columns if c != "class"]
    st.dataframe(table, hide_index=True, key="train_split_preview",
                 column_config={"class": st.column_config.TextColumn("images / objects per class")})
    empty = [f"{row['class']} ({part})" for _, row in table.iterrows() if row["class"] != IMAGES_ROW
             for part in parts if part in ("test", "val") and row[part] == 0]
    if empty:
        st.warning("No objects of " + ", ".join(empty) + ": that class gets no AP on that part.",
                   icon=":material/warning:")


# --- sections inside the form ------------------------------------------------------------------------

def form_sections_ui(base: TrainConfig, k: str) -> dict:
    """Augmentation, Optimizer & schedule, and More, inside the Train form; returns their values
    (``weights_path`` / ``weights_upload`` are resolved by :func:`resolve_local_weights` on Start)."""
    values: dict = {}
    aug = base.augment
    with st.expander("Augmentation", icon=":material/flip:"):
        st.caption("Training images only; boxes and masks move with the pixels (a rotated box encloses the "
                   "rotated object). Preview augmented samples on the Data page.")
        c1, c2, c3, c4 = st.columns(4)
        augment = {
            "hflip": c1.slider("Horizontal flip probability", 0.0, 1.0, float(aug.get("hflip") or 0), 0.05,
                               key=k + "augment.hflip"),
            "rotate": c2.slider("Rotation ± degrees", 0.0, 180.0, float(aug.get("rotate") or 0), 5.0,
                                key=k + "augment.rotate", help="The Face Mask tutorial rotated up to 180°"),
            "scale_jitter": c3.slider("Scale jitter ±", 0.0, 0.5, _scale_value(aug.get("scale_jitter")), 0.05,
                                      key=k + "augment.scale_jitter", help="Zoom the content by 1 ± this"),
            "color_jitter": c4.slider("Colour jitter", 0.0, 1.0, float(aug.get("color_jitter") or 0), 0.05,
                                      key=k + "augment.color_jitter", help="Brightness, contrast, saturation"),
        }
        if augment["scale_jitter"] == _scale_value(aug.get("scale_jitter")):
            augment["scale_jitter"] = aug.get("scale_jitter")  # untouched: keep the preset's exact zoom range
        c1, c2, _ = st.columns([1, 1, 2], vertical_alignment="bottom")
        crop = c1.number_input("Train on crops of N px (0 = whole images)", 0, 4096, int(aug.get("crop") or 0), 32,
                               key=k + "augment.crop",
                               help="Random square crops cut at the model's own scale (small objects stay as "
                                    "large as the model sees them); prediction uses whole images")
        balanced = c2.checkbox("Balanced crops", bool(aug.get("balanced_crops")), key=k + "augment.balanced_crops",
                               help="Rare classes more often: images holding them are drawn more often and crops "
                                    "are placed around their objects (1/sqrt of the frequency)")
        values["augment"] = {**augment, "scale_jitter": augment["scale_jitter"] or None, "crop": int(crop) or None,
                             "balanced_crops": bool(balanced)}
    with st.expander("Optimizer & schedule", icon=":material/tune:"):
        c1, c2, c3 = st.columns(3)
        values["momentum"] = c1.number_input("Momentum (SGD)", 0.0, 0.999, float(base.momentum), 0.01, key=k + "momentum")
        values["weight_decay"] = c2.number_input("Weight decay", 0.0, 1.0, float(base.weight_decay), format="%.5f",
                                                 key=k + "weight_decay")
        values["warmup_iters"] = int(c3.number_input("Warm-up iterations", 0, 100_000, base.warmup_iters,
                                                     key=k + "warmup_iters"))
        c1, c2, c3 = st.columns(3)
        values["step_size"] = int(c1.number_input("Step schedule: epochs per step", 1, 1000, base.step_size,
                                                  key=k + "step_size"))
        values["gamma"] = c2.number_input("Step schedule: gamma", 0.001, 1.0, float(base.gamma), 0.05, key=k + "gamma")
        clip = c3.number_input("Gradient clip (0 = off)", 0.0, 1e6, float(base.grad_clip or 0.0), key=k + "grad_clip")
        values["grad_clip"] = float(clip) or None
        c1, c2, c3 = st.columns(3)
        values["early_stopping_patience"] = int(c1.number_input(
            "Early stopping patience (0 = off)", 0, 1000, base.early_stopping_patience, key=k + "early_stopping_patience",
            help="Stop after this many validations without AP improvement"))
        values["amp"] = c2.checkbox("Mixed precision (CUDA)", base.amp, key=k + "amp")
        values["channels_last"] = c3.checkbox("Channels-last memory", base.channels_last, key=k + "channels_last")
        ema = c1.number_input("EMA decay (0 = off)", 0.0, 0.9999, float(base.ema_decay or 0.0),
                              0.001, format="%.4f", key=k + "ema_decay",
                              help="Validation, the best checkpoint and prediction use an exponential moving "
                                   "average of the weights (per step); training continues on the raw weights")
        values["ema_decay"] = float(ema) or None
        values["cpu_bf16"] = c2.checkbox(
            "bfloat16 on CPU", base.cpu_bf16, key=k + "cpu_bf16",
            help="Train in bfloat16 on a CPU with native bf16 (AVX512-BF16 / AMX): faster steps; validation "
                 "and prediction stay float32. Other CPUs train in float32 (the run's start message says so); "
                 "ignored on GPUs.")
    with st.expander("More", icon=":material/more_horiz:"):
        c1, c2, c3, c4 = st.columns(4)
        values["seed"] = int(c1.number_input("Seed", 0, 1_000_000, base.seed, key=k + "seed",
                                             help="Model initialisation, augmentation and batch order"))
        values["num_workers"] = int(c2.number_input("Data loader workers", 0, 64, base.num_workers,
                                                    key=k + "num_workers"))
        values["cache_images_mb"] = int(c2.number_input(
            "Image cache (MB, 0 = off)", 0, 10_000_000, base.cache_images_mb, 256, key=k + "cache_images_mb",
            help="Keep decoded training images in memory so later epochs skip decoding (each loader worker "
                 "holds its own copy)"))
        layers = ["default", 0, 1, 2, 3, 4, 5]
        tbl = c3.selectbox("Trainable backbone layers", layers, index=layers.index(base.trainable_backbone_layers)
                           if base.trainable_backbone_layers in layers else 0, key=k + "trainable_backbone_layers",
                           help="Pretrained weights only: how many backbone stages keep training")
        values["trainable_backbone_layers"] = None if tbl == "default" else int(tbl)
        values["data_format"] = c4.selectbox("Dataset format", FORMATS, index=FORMATS.index(base.data_format)
                                             if base.data_format in FORMATS else 0, key=k + "data_format")
        st.markdown("**Local weights file** (a torchvision state dict or a detboard checkpoint; layers whose "
                    "shapes match are loaded) — replaces the Weights choice above")
        c1, c2 = st.columns(2)
        values["weights_path"] = c1.text_input("Path under DATA", key=k + "weights_path",
                                               placeholder="e.g. weights/maskrcnn_coco.pth")
        values["weights_upload"] = c2.file_uploader("…or upload a .pth / .pt", type=["pth", "pt"],
                                                    key=k + "weights_upload")
    return values


def _scale_value(jitter) -> float:
    if isinstance(jitter, (list, tuple)) and len(jitter) == 2:
        return float(min(0.5, max(1 - jitter[0], jitter[1] - 1)))
    return float(min(0.5, jitter or 0.0))


def resolve_local_weights(values: dict) -> dict:
    """Replace ``weights_path`` / ``weights_upload`` by ``weights`` = the file to load (an upload is
    saved under the uploads folder; a typed path must lie under DATA). Raises DataError / ConfigError."""
    values = dict(values)
    typed, upload = (values.pop("weights_path", "") or "").strip(), values.pop("weights_upload", None)
    if upload is not None:
        payload = upload.getvalue()
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(upload.name).stem).strip("-.") or "weights"
        target = paths.uploads_root() / WEIGHTS_DIR / f"{stem}-{hashlib.sha1(payload).hexdigest()[:12]}.pth"
        if not target.is_file():
            atomic.write_bytes(target, payload)
        values["weights"] = str(target)
    elif typed:
        path = paths.confine_to_data_roots(typed)
        if not path.is_file():
            raise ConfigError(typed, "no such weights file under DATA")
        values["weights"] = str(path)
    return values


def form_config(preset: str, dataset: str, values: dict) -> TrainConfig:
    """The preset with the form's values on top. Unlike ``config_from_preset``, a None value is kept:
    in the form it means off / default (no gradient clipping, all iterations), not "the preset's"."""
    return TrainConfig.from_dict({**PRESETS[preset], **values, "data": dataset, "preset": preset})


def start_values(values: dict) -> dict | None:
    """The form's values with local weights resolved, or None after showing why they cannot be used."""
    with shown_errors(stop=False):
        return resolve_local_weights(values)
    return None
