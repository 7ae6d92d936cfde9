"""The geometry check a user runs before training (``inspect DATA --fit MODEL_OR_PRESET`` and the
Data page): can the model's anchors match this dataset's boxes, and what would fitting change?

Torch-free (detcore.geometry is numpy), so the page answers quickly. The fit uses the training
part of the split a default run would make (random, seed 0, test fraction 0.2) — never the test
images — and both recalls are then measured on every box of the dataset.
"""

from __future__ import annotations

from detcore import geometry as g
from detcore.data.splits import make_split
from detcore.errors import ConfigError
from detcore.structures import ParsedDataset
from detcore.train.presets import PRESETS

FIT_SPLIT = {"method": "random", "seed": 0, "test_fraction": 0.2}


def target_settings(model_or_preset: str) -> dict:
    """(model, anchors, input_size, max_input_size, crop) for a registry model name or a preset name
    (a preset means its model with its geometry settings — one that sets none, like demo-cpu, is shown with
    anchors and input size fitted; a bare model gets anchors and input size "auto")."""
    if model_or_preset in PRESETS:
        p = PRESETS[model_or_preset]
        return {"model": p["model"], "anchors": p.get("anchors", "default"),
                "input_size": p.get("input_size", "default"), "max_input_size": p.get("max_input_size"),
                "crops": bool((p.get("augment") or {}).get("crop")), "preset": model_or_preset}
    if model_or_preset not in g.LAYOUTS:
        raise ConfigError("--fit", f"{model_or_preset!r} is neither a model ({', '.join(sorted(g.LAYOUTS))}) "
                                   f"nor a preset ({', '.join(PRESETS)})")
    return {"model": model_or_preset, "anchors": "auto", "input_size": "auto", "max_input_size": None, "crops": False,
            "preset": None}


def fit_split_samples(parsed: ParsedDataset) -> list:
    split = make_split([s.image_id for s in parsed.samples], FIT_SPLIT["method"], seed=FIT_SPLIT["seed"],
                       test_fraction=FIT_SPLIT["test_fraction"])
    train = set(split.train)
    return [s for s in parsed.samples if s.image_id in train]


def geometry_check(parsed: ParsedDataset, model_or_preset: str) -> dict:
    """The ``fit`` object of ``inspect --json``: ``{"model", "default": {...}, "fitted": {...}}`` with
    best possible recall overall, per class and per size bucket, and the geometry behind each."""
    settings = target_settings(model_or_preset)
    model = settings["model"]
    everything = g.boxes_from_samples(parsed.samples, parsed.classes)
    if not len(everything):
        raise ConfigError(str(parsed.root), "has no boxes, so there is nothing to fit")
    train_boxes = g.boxes_from_samples(fit_split_samples(parsed), parsed.classes)
    anchors, input_size = settings["anchors"], settings["input_size"]
    if anchors == "default" and input_size == "default":  # a preset that fits nothing: show what fitting would do
        anchors, input_size = "auto", "auto"
    fitted = g.fit_geometry(model, train_boxes, anchors=anchors, input_size=input_size,
                            max_input=settings["max_input_size"], crops=settings["crops"])
    out = g.compare(model, everything, fitted=fitted)
    out["preset"] = settings["preset"]
    out["fitted_on"] = {**FIT_SPLIT, "images": train_boxes.images, "boxes": len(train_boxes)}
    out["verdict"] = verdict(out)
    return out


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f} %"


def verdict(check: dict) -> str:
    """One sentence: "SSDlite 320 can match 19 % of your boxes; with fitted anchors and input 97 %"."""
    d, f = check["default"], check["fitted"]
    name = check["model"]
    changed = []
    if f["geometry"]["input"] != d["geometry"]["input"]:
        changed.append(f"input {g.input_size_of(f['geometry']['input'])} px")
    if f["geometry"]["anchors"] != d["geometry"]["anchors"]:
        changed.append("fitted anchors" if check["kind"] != "points" else "")
    what = " and ".join(c for c in changed if c) or "its default geometry (nothing to change)"
    d_in, f_in = g.input_size_of(d["geometry"]["input"]), g.input_size_of(f["geometry"]["input"])
    if f_in < d_in and (f["best_possible_recall"] or 0) < (d["best_possible_recall"] or 0):
        what += f" ({(d_in / f_in) ** 2:.1f}x fewer pixels to compute)"
    rule = "IoU ≥ 0.5" if check["kind"] != "points" else "a point assigned, box at least one finest-level cell"
    text = (f"{name} at its default input can match {_pct(d['best_possible_recall'])} of your boxes "
            f"({rule}); with {what}: {_pct(f['best_possible_recall'])}.")
    small = f["per_size"]["small"]
    if small["boxes"] >= 0.05 * f["boxes"] and (small["best_possible_recall"] or 0) < 0.8:
        text += f" Small boxes stay hard: {_pct(small['best_possible_recall'])} of {small['boxes']}."
    return text


def format_check(check: dict) -> str:
    """The text form of ``geometry_check`` (size buckets are in each geometry's own input pixels,
    so their box counts differ between the columns)."""
    d, f = check["default"], check["fitted"]

    def cell(row: dict) -> str:
        return f"{_pct(row['best_possible_recall'])} of {row['boxes']}"

    rows = [("all boxes", cell(d), cell(f))]
    rows += [(bucket, cell(d["per_size"][bucket]), cell(f["per_size"][bucket])) for bucket in ("small", "medium", "large")]
    rows += [(cls, cell(row), cell(f["per_class"][cls])) for cls, row in d["per_class"].items()]
    width = max([len(r[0]) for r in rows] + [len("best possible recall")])
    lines = [f"geometry check for {check['model']}" + (f" (preset {check['preset']})" if check.get("preset") else ""),
             "  " + check["verdict"],
             f"  {'best possible recall':<{width}}  {'default':>16}  {'fitted':>16}"]
    lines += [f"  {name:<{width}}  {a:>16}  {b:>16}" for name, a, b in rows]
    lines.append(f"  default: {g.describe(d['geometry'])}")
    lines.append(f"  fitted:  {g.describe(f['geometry'])}")
    return "\n".join(lines)


def plot_panels(parsed: ParsedDataset, check: dict, *, max_points: int = 3000) -> list[dict]:
    """For ``viz.anchor_fit_figure``: per geometry (default, fitted) the box widths/heights in that
    geometry's model-input pixels (a fixed random sample of at most ``max_points``), their class
    indices, which boxes some anchor matches, and the anchor shapes."""
    layout = g.layout_for(check["model"])
    boxes = g.boxes_from_samples(parsed.samples, parsed.classes).subset(max_points)
    panels = []
    for which in ("default", "fitted"):
        geometry = check[which]["geometry"]
        resized = g.resize(boxes, geometry["input"])
        matched = g.matched(layout, geometry, resized)
        b = resized.boxes
        panels.append({
            "title": f"{which}: {g.describe(geometry).split(',')[0]} — recall "
                     f"{_pct(check[which]['best_possible_recall'])}",
            "widths": (b[:, 2] - b[:, 0]).tolist(), "heights": (b[:, 3] - b[:, 1]).tolist(),
            "labels": boxes.labels.tolist(), "matched": matched.tolist(),
            "anchors": [(r["width"], r["height"], r["stride"]) for r in g.anchor_shapes(layout, geometry)],
        })
    return panels
