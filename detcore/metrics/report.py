"""Result → the ``evaluate --json`` contract (docs/architecture.md, "Command line") and a readable text table.

Values are in [0, 1]; undefined numbers (a class without ground truth, pycocotools' -1) are
null in JSON and "-" in the table, never 0.
"""

from __future__ import annotations

import math

SUMMARY_ORDER = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
TABLE_COLUMNS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "n_gt", "n_det", "precision", "recall", "f1", "best_f1_threshold")


def _clean(v):
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item"):
        return _clean(v.item())
    return v


def result_to_json(result, thresholds=None) -> dict:
    summary = result.summary()
    table = result.per_class(thresholds)
    per_class = [{k: _clean(v) for k, v in row.items()} for row in table.to_dict(orient="records")]
    out = {k: summary.get(k) for k in SUMMARY_ORDER}
    out.update({"iou_type": result.iou_type, "iou_thresholds": [float(t) for t in result.iou_thresholds],
                "max_dets": list(result.max_dets), "images": len(result.flat.image_ids),
                "classes": list(result.classes), "per_class": per_class})
    return out


def _fmt(v, width: int = 6) -> str:
    v = _clean(v)
    if v is None:
        return "-".rjust(width)
    if isinstance(v, int):
        return str(v).rjust(width)
    if isinstance(v, float):
        return f"{v:.3f}".rjust(width)
    return str(v).rjust(width)


def format_table(result, thresholds=None) -> str:
    """Summary line(s) and the per-class table as plain text (the CLI's default output)."""
    s = result.summary()
    lines = [f"{result.iou_type} evaluation over {len(result.flat.image_ids)} images, {len(result.classes)} classes",
             "  ".join(f"{k}={_fmt(s[k], 0).strip()}" for k in SUMMARY_ORDER[:6]),
             "  ".join(f"{k}={_fmt(s[k], 0).strip()}" for k in SUMMARY_ORDER[6:]), ""]
    table = result.per_class(thresholds)
    columns = TABLE_COLUMNS if thresholds is None else ("threshold", *TABLE_COLUMNS)
    name_w = max([5] + [len(str(c)) for c in table["class"]])
    header = "class".ljust(name_w) + "".join(f" {c[:8]:>8}" for c in columns)
    lines += [header, "-" * len(header)]
    for row in table.to_dict(orient="records"):
        lines.append(str(row["class"]).ljust(name_w) + "".join(f" {_fmt(row[c], 8)}" for c in columns))
    lines.append("(precision/recall/f1 at score >= 0.5 and IoU 0.5; '-' = undefined: no ground truth)"
                 if thresholds is None else "(precision/recall/f1 at the given score thresholds, IoU 0.5)")
    return "\n".join(lines)
