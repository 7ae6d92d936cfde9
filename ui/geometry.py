"""The Data page's geometry check: can a model's anchors match this dataset's boxes (before and
after fitting)? Wraps detcore.fitcheck (numpy only) with a cache keyed by the dataset's stamp."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from detcore.fitcheck import geometry_check as _geometry_check
from detcore.fitcheck import plot_panels
from detcore.geometry import LAYOUTS
from detcore.structures import ParsedDataset
from detcore.train.presets import PRESETS
from ui.loaders import folder_stamp


@st.cache_data(show_spinner="Fitting anchors and input size to the boxes…", max_entries=16)
def _check(root: str, stamp: float, target: str, _parsed: ParsedDataset) -> tuple[dict, list[dict]]:
    check = _geometry_check(_parsed, target)
    return check, plot_panels(_parsed, check)


def geometry_check(parsed: ParsedDataset, target: str) -> tuple[dict, list[dict]]:
    """(check, plot panels) for model or preset ``target``; raises ConfigError for a box-less dataset."""
    return _check(str(parsed.root), folder_stamp(parsed.root), target, parsed)


def target_options() -> list[str]:
    """Presets first (each means its model with its geometry settings), then every registry model."""
    return [*PRESETS, *sorted(LAYOUTS)]


def target_label(name: str) -> str:
    return f"{name} (preset: {PRESETS[name]['model']})" if name in PRESETS else name


def input_text(spec: dict) -> str:
    """A geometry's input size as the page shows it."""
    if "fixed_size" in spec:
        return f"{spec['fixed_size']}×{spec['fixed_size']}"
    return f"{spec['min_size']} px"


def recall_table(check: dict):
    """Default vs fitted best possible recall per size bucket and per class, one row each."""
    rows = []
    for group, key in (("size", "per_size"), ("class", "per_class")):
        for name, d in check["default"][key].items():
            f = check["fitted"][key][name]
            rows.append({"group": group, "boxes": name, "default recall": d["best_possible_recall"],
                         "default count": d["boxes"], "fitted recall": f["best_possible_recall"],
                         "fitted count": f["boxes"]})
    return pd.DataFrame(rows)
