"""One self-contained HTML report of a run (and optionally its comparison with others): what
``python -m detcore report`` writes and the Evaluate / Compare pages' "HTML report" buttons serve.

Self-contained: plotly.js is embedded once, pictures are data URIs, there are no links to load, so
the file opens offline and can be mailed. Sections (ids in brackets): dataset summary (dataset),
training curves (training), metrics (metrics), per-class table with bootstrap intervals
(per-class), PR and F1 curves (curves), confusion matrix (confusion), a sample of predictions at
the chosen thresholds (samples), and with other runs the comparison (comparison).

Every number shown comes from one JSON document embedded in the page
(``<script type="application/json" id="detboard-report-data">``; ``read_report_data`` parses it
back), built from the same ``EvaluationResult`` calls as the Evaluate page, so the report, the page
and ``evaluate --json`` agree. Torch-free.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.io as pio
from PIL import Image

from detcore import viz
from detcore.compare_figures import delta_figure, f1_overlay_figure, pr_overlay_figure, training_overlay_figures
from detcore.data.images import load_rgb
from detcore.errors import DataError, DetcoreError
from detcore.metrics.report import SUMMARY_ORDER
from detcore.structures import Detections, ParsedDataset, Sample
from detcore.train.runs import Run

DATA_ID = "detboard-report-data"
SAMPLE_IMAGES = 8
SAMPLE_LONG_SIDE = 480
SECTIONS = ("dataset", "training", "metrics", "per-class", "curves", "confusion", "samples", "comparison")


@dataclass
class RunReport:
    """What the report shows of one run: its evaluation on a split, at chosen thresholds."""

    run: Run
    result: Any  # detcore.metrics.EvaluationResult
    samples: list[Sample]
    detections: list[Detections]
    thresholds: dict[str, float]
    ci: pd.DataFrame | None = None  # per-class bootstrap intervals (EvaluationResult.bootstrap_ci)
    split: str = "test"
    parsed: ParsedDataset | None = None  # the whole dataset, for its summary
    ci_replicates: int = 200


def _clean(v):
    if v is None:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def per_class_table(report: RunReport) -> pd.DataFrame:
    """The Evaluate page's per-class table: ``per_class(thresholds)`` with the bootstrap interval columns."""
    table = report.result.per_class(report.thresholds)
    if report.ci is not None and not report.ci.empty:
        table = table.merge(report.ci, on="class", how="left")
    return table


def _records(table: pd.DataFrame) -> list[dict]:
    return [{k: _clean(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


def dataset_summary(report: RunReport) -> dict:
    classes = list(report.result.classes)

    def counts(samples) -> dict[str, int]:
        labels = np.concatenate([s.labels for s in samples]) if samples else np.zeros(0, np.int64)
        return {c: int(n) for c, n in zip(classes, np.bincount(labels, minlength=len(classes)))}

    out = {"split": report.split, "split_images": len(report.samples), "split_objects": counts(report.samples)}
    if report.parsed is not None:
        p = report.parsed
        out.update({"root": str(p.root), "format": p.format, "images": p.num_images, "objects": p.num_objects,
                    "class_counts": counts(p.samples), "problems": len(p.problems)})
    return out


def _training(run: Run) -> tuple[list[dict], dict]:
    events = run.events()
    epochs = [{"epoch": r["epoch"], "val_loss": r.get("val_loss"), "train_loss": r.get("train_loss"),
               **(r.get("metrics") or {})} for r in events if r["type"] == "epoch"]
    steps = [r for r in events if r["type"] == "step"]
    return events, {"epochs": epochs, "steps": len(steps),
                    "last_loss": steps[-1].get("loss") if steps else None}


def _sample_ids(report: RunReport, n: int) -> list[str]:
    """Half the images with the most errors at the thresholds, the rest spread evenly over the split."""
    worst = report.result.worst_images(report.thresholds)["image_id"].astype(str).tolist()[: n // 2]
    ids = [s.image_id for s in report.samples]
    rest = [i for i in ids if i not in worst]
    spread = [rest[int(k)] for k in np.linspace(0, len(rest) - 1, min(n - len(worst), len(rest)))] if rest else []
    return worst + [i for i in spread if i not in worst]


def _jpeg_uri(image: np.ndarray) -> str:
    h, w = image.shape[:2]
    scale = SAMPLE_LONG_SIDE / max(h, w)
    picture = Image.fromarray(image)
    if scale < 1:
        picture = picture.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _samples(report: RunReport, n: int) -> list[dict]:
    classes = list(report.result.classes)
    per_class = np.array([report.thresholds[c] for c in classes], dtype=np.float32)
    by_id = {s.image_id: (s, d) for s, d in zip(report.samples, report.detections)}
    errors = report.result.errors(report.thresholds)
    out = []
    for image_id in _sample_ids(report, n):
        sample, dets = by_id[image_id]
        kept = dets.above(per_class)
        try:
            picture = viz.draw_detections(viz.draw_ground_truth(load_rgb(sample.image_path), sample, classes),
                                          kept, classes)
        except DetcoreError as e:
            out.append({"image_id": image_id, "problem": str(e)})
            continue
        kinds = errors[errors["image_id"] == image_id]["kind"].astype(str).value_counts().to_dict()
        out.append({"image_id": image_id, "uri": _jpeg_uri(picture), "detections": int(len(kept)),
                    "objects": int(sample.num_objects), "counts": {k: int(v) for k, v in kinds.items()}})
    return out


def report_data(report: RunReport, comparison=None) -> dict:
    """The numbers of the report (what ``read_report_data`` returns)."""
    result, run = report.result, report.run
    config = run.config()
    _, training = _training(run)
    table = per_class_table(report)
    matrix = result.confusion_matrix(report.thresholds)
    try:
        speed = run.benchmark()
    except DetcoreError:
        speed = None  # a damaged benchmark.json: the report leaves speed out
    return {
        "format_version": 1,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "run": {"name": run.name, "path": str(run.path), "model": config.model, "epochs": run.epochs_done(),
                "status": str(run.status()), "checkpoint": run.checkpoint("best").name},
        "dataset": dataset_summary(report),
        "training": training,
        "thresholds": {c: float(t) for c, t in report.thresholds.items()},
        "summary": {k: result.summary().get(k) for k in SUMMARY_ORDER},
        "iou_type": result.iou_type,
        "per_class": _records(table),
        "confusion": {"labels": list(matrix.columns), "matrix": matrix.to_numpy().astype(int).tolist()},
        "speed": speed,
        "bootstrap": {"replicates": report.ci_replicates, "seed": 0, "level": 0.95},
        "comparison": None if comparison is None else comparison.to_json(),
    }


def _table_html(columns: list[str], rows: list[list], *, formats: dict[str, str] | None = None) -> str:
    formats = formats or {}

    def cell(col, v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return '<td class="na">–</td>'
        if isinstance(v, bool):
            return f"<td>{'yes' if v else ''}</td>"
        if isinstance(v, float):
            return f'<td class="num">{format(v, formats.get(col, ".3f"))}</td>'
        if isinstance(v, int):
            return f'<td class="num">{v:,}</td>'
        return f"<td>{html.escape(str(v))}</td>"

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell(c, v) for c, v in zip(columns, r)) + "</tr>" for r in rows)
    return f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class _Figures:
    """Plotly figures as divs plus the one script that draws them all (plotly.js itself is added once)."""

    def __init__(self):
        self.specs: list[tuple[str, str]] = []

    def add(self, fig) -> str:
        div = f"plot-{len(self.specs)}"
        self.specs.append((div, pio.to_json(fig, validate=False)))
        return f'<div class="plot" id="{div}"></div>'

    def script(self) -> str:
        calls = "".join(f"draw({json.dumps(div)}, {_script_safe(spec)});\n" for div, spec in self.specs)
        return ("<script>\nfunction draw(id, fig) {\n  Plotly.newPlot(id, fig.data, fig.layout || {}, "
                "{displaylogo: false, responsive: true});\n}\n" + calls + "</script>")


def _script_safe(text: str) -> str:
    """JSON placed inside <script> must not close the element."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _fmt(v, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:24px}
header{background:#0f172a;color:#f8fafc;padding:20px 24px}header h1{margin:0 0 6px;font-size:26px}
header p{margin:0;color:#cbd5e1}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px 20px;margin:18px 0}
h2{margin:0 0 12px;font-size:20px}
table{border-collapse:collapse;font-size:14px;margin:6px 0 12px}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 10px;text-align:left}th{background:#f3f4f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.na{color:#9ca3af;text-align:center}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #e5e7eb;border-radius:6px;padding:8px 14px;min-width:90px}
.card b{display:block;font-size:22px}.card span{color:#6b7280;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
figure{margin:0}figure img{width:100%;border:1px solid #e5e7eb}figcaption{font-size:13px;color:#4b5563}
.note{color:#6b7280;font-size:13px}.better{color:#15803d;font-weight:600}.worse{color:#b91c1c;font-weight:600}
"""


def _cards(items: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(f'<div class="card"><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>'
                                           for k, v in items) + "</div>"


def _dataset_section(data: dict) -> str:
    d = data["dataset"]
    items = []
    if "images" in d:
        items += [("format", str(d["format"]).upper()), ("images", f"{d['images']:,}"), ("objects", f"{d['objects']:,}"),
                  ("data problems", f"{d['problems']:,}")]
    items += [(f"{d['split']} images", f"{d['split_images']:,}")]
    classes = list(d["split_objects"])
    rows = [[c, d.get("class_counts", {}).get(c), d["split_objects"][c]] for c in classes]
    where = f'<p class="note">{html.escape(d["root"])}</p>' if "root" in d else ""
    return (f'<section id="dataset"><h2>Dataset</h2>{where}{_cards(items)}'
            + _table_html(["class", "objects (all images)", f"objects ({d['split']})"], rows) + "</section>")


def _training_section(run: Run, figures: _Figures, comparison) -> str:
    if comparison is not None:
        events = {n: r.events() for n, r in zip(comparison.names, comparison.runs)}
        loss, val = training_overlay_figures(events)
        body = f'<div class="grid">{figures.add(loss)}{figures.add(val)}</div>'
    else:
        events = run.events()
        body = f'<div class="grid">{figures.add(viz.loss_curves_figure(events))}{figures.add(viz.epoch_metrics_figure(events))}</div>'
    if not any(r["type"] in ("step", "epoch") for r in run.events()):
        body = '<p class="note">This run has no training records.</p>'
    return f'<section id="training"><h2>Training</h2>{body}</section>'


def _metrics_section(data: dict) -> str:
    s = data["summary"]
    items = [(k, _fmt(s.get(k))) for k in SUMMARY_ORDER]
    speed = data.get("speed")
    extra = ""
    if speed:
        extra = (f'<p class="note">Speed ({html.escape(str(speed.get("device")))}, batch 1, '
                 f'{html.escape(str(speed.get("input_size")))}): p50 {speed["p50_ms"]:.1f} ms, '
                 f'p95 {speed.get("p95_ms", float("nan")):.1f} ms per image, '
                 f'{speed.get("images_per_s", float("nan")):.2f} images/s; '
                 f'{speed.get("params", 0):,} parameters, {speed.get("checkpoint_mb", 0):.1f} MB checkpoint.</p>')
    thr = ", ".join(f"{html.escape(c)} {t:.2f}" for c, t in data["thresholds"].items())
    return (f'<section id="metrics"><h2>Metrics ({html.escape(data["iou_type"])}, '
            f'{data["dataset"]["split_images"]} {html.escape(data["dataset"]["split"])} images)</h2>{_cards(items)}'
            f'<p class="note">Score thresholds (precision, recall, F1, confusion, pictures): {thr}.</p>{extra}</section>')


PER_CLASS_SHOWN = ("class", "AP", "AP_ci_low", "AP_ci_high", "AP50", "AP75", "APs", "APm", "APl", "n_gt", "n_det",
                   "threshold", "precision", "recall", "f1", "best_f1_threshold")


def _per_class_section(data: dict) -> str:
    rows = data["per_class"]
    cols = [c for c in PER_CLASS_SHOWN if rows and c in rows[0]]
    return ('<section id="per-class"><h2>Per class</h2>'
            + _table_html(cols, [[r.get(c) for c in cols] for r in rows], formats={"threshold": ".2f"})
            + f'<p class="note">AP_ci_low / AP_ci_high: 95% bootstrap interval of AP over the images '
              f'({data["bootstrap"]["replicates"]} resamples, seed 0). Precision, recall and F1 at the thresholds above, '
              'IoU 0.5.</p></section>')


def _curves_section(report: RunReport, figures: _Figures, per_class: list[dict]) -> str:
    ap50 = {r["class"]: r.get("AP50") for r in per_class}
    pr, f1 = report.result.figure_curves()
    return ('<section id="curves"><h2>Precision–recall and F1</h2><div class="grid">'
            + figures.add(viz.pr_curve_figure(pr, ap=ap50)) + figures.add(viz.f1_threshold_figure(f1, chosen=report.thresholds))
            + "</div></section>")


def _confusion_section(data: dict, figures: _Figures) -> str:
    c = data["confusion"]
    fig = viz.confusion_matrix_figure(np.asarray(c["matrix"]), c["labels"])
    fig.update_layout(height=420)
    return f'<section id="confusion"><h2>Confusion matrix</h2>{figures.add(fig)}</section>'


def _samples_section(samples: list[dict]) -> str:
    cells = []
    for s in samples:
        if "problem" in s:
            cells.append(f'<figure><figcaption>{html.escape(s["image_id"])}: {html.escape(s["problem"])}</figcaption></figure>')
            continue
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s["counts"].items())) or "no detections, no objects"
        cells.append(f'<figure><img alt="{html.escape(s["image_id"])}" src="{s["uri"]}">'
                     f'<figcaption><b>{html.escape(s["image_id"])}</b> · {s["objects"]} objects, {s["detections"]} '
                     f'detections · {html.escape(counts)}</figcaption></figure>')
    return ('<section id="samples"><h2>Predictions at the thresholds</h2><p class="note">Dashed: ground truth; solid: '
            'predictions at or above the thresholds. The images with the most errors first, then a spread over the '
            f'split.</p><div class="gallery">{"".join(cells)}</div></section>')


def _comparison_section(comparison, figures: _Figures) -> str:
    doc = comparison.to_json()
    names = comparison.names
    runs_rows = []
    for r in doc["runs"]:
        speed = r.get("speed") or {}
        runs_rows.append([r["name"], r.get("model"), r.get("epochs"), r.get("params"), r.get("checkpoint_mb"),
                          r["summary"].get("AP"), r["summary"].get("AP50"), r["summary"].get("AR100"),
                          speed.get("p50_ms"), speed.get("p95_ms"), speed.get("images_per_s")])
    run_table = _table_html(["run", "model", "epochs", "parameters", "checkpoint MB", "AP", "AP50", "AR100",
                             "p50 ms", "p95 ms", "images/s"], runs_rows,
                            formats={"checkpoint MB": ".1f", "p50 ms": ".1f", "p95 ms": ".1f", "images/s": ".2f"})
    cols = ["class", "n_gt"] + [f"AP {n}" for n in names]
    rows = []
    for row in doc["per_class"]:
        line = [row["class"], row["n_gt"]] + [row["AP"][n] for n in names]
        for other in names[1:]:
            d = row["vs_baseline"][other]
            ci = d["AP_delta_ci"]
            verdict = "" if not d["significant"] else ("better" if d["AP_delta"] > 0 else "worse")
            line += [d["AP_delta"], None if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]", verdict]
        rows.append(line)
    for other in names[1:]:
        cols += [f"ΔAP {other}", "interval", "verdict"]
    split = doc["split"]
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in split["notes"])
    curves = []
    for k, cls in enumerate(comparison.classes):
        pr, f1, ap = {}, {}, {}
        for name, result, thr in zip(names, comparison.results, comparison.thresholds):
            c = result.pr_curve(cls)
            pr[name] = (c["recall"].to_numpy(), c["precision"].to_numpy())
            sweep = result.threshold_curve(cls)
            f1[name] = (sweep["threshold"].to_numpy(), sweep["f1"].to_numpy())
            ap[name] = result.class_ap(k, iou=0.5)
        chosen = {n: float(t[k]) for n, t in zip(names, comparison.thresholds)}
        curves.append(figures.add(pr_overlay_figure(pr, cls=cls, ap=ap)) + figures.add(f1_overlay_figure(f1, cls=cls, chosen=chosen)))
    deltas = "".join(figures.add(delta_figure(doc["per_class"], other=o, level=comparison.level)) for o in names[1:])
    return (f'<section id="comparison"><h2>Comparison with {", ".join(html.escape(n) for n in names[1:])}</h2>'
            f'<p class="note">All runs on the same {split["images"]} {html.escape(split["part"])} images '
            f'({html.escape(split["basis"])}); differences are each run minus {html.escape(names[0])}, with a '
            f'{doc["bootstrap"]["level"]:.0%} paired bootstrap interval ({doc["bootstrap"]["replicates"]} resamples of '
            'the images, the same resample for every run); "better"/"worse" when the interval excludes 0 and the '
            f'class has at least {doc["bootstrap"]["min_objects"]} objects.</p>'
            f'{notes}{run_table}{_table_html(cols, rows)}{deltas}<div class="grid">{"".join(curves)}</div></section>')


def build_report(report: RunReport, *, comparison=None, sample_images: int = SAMPLE_IMAGES) -> str:
    """The report as one HTML string (see the module docstring)."""
    if comparison is not None and Path(comparison.runs[0].path).resolve() != report.run.path.resolve():
        raise DataError(report.run.path, "the comparison's first run must be the reported run")
    data = report_data(report, comparison)
    figures = _Figures()
    samples = _samples(report, sample_images)
    data["samples"] = [{k: v for k, v in s.items() if k != "uri"} for s in samples]
    run = data["run"]
    parts = [
        _dataset_section(data), _training_section(report.run, figures, comparison), _metrics_section(data),
        _per_class_section(data), _curves_section(report, figures, data["per_class"]), _confusion_section(data, figures),
        _samples_section(samples),
    ]
    if comparison is not None:
        parts.append(_comparison_section(comparison, figures))
    plotly_js = _script_safe_js(_plotly_js())
    title = f"detboard report: {run['name']}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style><script>{plotly_js}</script></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(run['model'])} · {run['epochs']} epochs · "
        f"checkpoint {html.escape(run['checkpoint'])} · {html.escape(data['dataset']['split'])} split · "
        f"generated {html.escape(data['generated'])} by detboard</p></header><main>"
        + "".join(parts)
        + f'</main><script type="application/json" id="{DATA_ID}">{_script_safe(json.dumps(data, allow_nan=False))}</script>'
        + figures.script() + "</body></html>\n")


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _script_safe_js(js: str) -> str:
    if re.search(r"</script", js, re.IGNORECASE):
        raise RuntimeError("plotly.js contains a closing script tag; it cannot be inlined")
    return js


def read_report_data(text: str) -> dict:
    """The numbers embedded in a report written by ``build_report``."""
    m = re.search(rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', text, re.DOTALL)
    if m is None:
        raise DataError("report", "no detboard data in this file (is it a detboard report?)")
    return json.loads(m.group(1))


def run_report(run_dir: str | Path, data: str | Path | None = None, *, split: str = "test",
               thresholds: dict[str, float] | None = None, evaluated=None, ci: pd.DataFrame | None = None,
               n_boot: int = 200) -> RunReport:
    """A RunReport of a run on its split: from ``evaluated`` = (result, samples, detections) when the
    caller has them (the Evaluate page), else through ``detcore.evaluation`` (cached predictions).
    Thresholds default to the run's saved ones; intervals to ``result.bootstrap_ci(n_boot, seed=0)``."""
    from detcore.evaluation import load_run_dataset  # torch (import policy): the dataset's classes are checked

    run = Run(run_dir)
    parsed = load_run_dataset(run.path, data)
    if evaluated is None:
        from detcore.evaluation import run_predictions
        from detcore.metrics import evaluate_detections

        samples, dets = run_predictions(run.path, data, split=split)
        result = evaluate_detections(samples, dets, run.classes())
    else:
        result, samples, dets = evaluated
    classes = list(result.classes)
    if thresholds is None:
        thresholds = dict(zip(classes, run.thresholds().for_classes(classes)))
    if ci is None:
        ci = result.bootstrap_ci(n_boot=n_boot, seed=0)
    return RunReport(run, result, samples, dets, {c: float(thresholds[c]) for c in classes}, ci, split, parsed, n_boot)
