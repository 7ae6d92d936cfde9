"""`python -m detcore compare` and `python -m detcore report` (docs/architecture.md, "Command line").

    compare RUN_A RUN_B [RUN ...] [--data DATA] [--split test] [--on same|intersection|RUN_NAME] [--json]
    report RUN [--compare RUN ...] [--data DATA] [--split test] --out REPORT.html

``compare`` evaluates every run on the same images of one dataset (default: the first run's) and
prints, per class, each run's AP / AP50 / P / R / F1 at its own saved thresholds and, for every
other run against the first, the difference with a paired bootstrap interval (the same resample of
images for every run) and whether it excludes 0 (detcore/compare.py). Runs whose test splits differ
are refused unless ``--on intersection`` (the images they share) or ``--on RUN_NAME`` (that run's
split) is given. ``report`` writes one self-contained HTML file (no network needed to open it) with
the run's dataset summary, training curves, metrics, per-class table with intervals, PR/F1 curves,
confusion matrix and sample predictions at the run's saved thresholds, plus the comparison with the
``--compare`` runs (detcore/html_report.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

DEFAULT_REPLICATES = 1000


def _common(p) -> None:
    p.add_argument("--data", help="the dataset to evaluate on (default: the first run's)")
    p.add_argument("--split", default="test", help="which part of the runs' splits (default: test)")
    p.add_argument("--on", default="same", metavar="same|intersection|RUN_NAME",
                   help="when the runs' splits differ: the images they share, or one run's split (default: refuse)")
    p.add_argument("--replicates", type=int, default=DEFAULT_REPLICATES, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="compare runs per class with paired bootstrap intervals",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories; the first is the baseline")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(handler=run_compare)

    r = subparsers.add_parser("report", help="write a self-contained HTML report of a run (and a comparison)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("run", metavar="RUN", help="the run to report on")
    r.add_argument("--compare", nargs="+", default=[], metavar="RUN", help="other runs to compare it with")
    _common(r)
    r.add_argument("--out", required=True, metavar="REPORT.html", help="the HTML file to write")
    r.set_defaults(handler=run_report_command)


def _check(args) -> None:
    from detcore.errors import ConfigError

    if args.replicates < 10:
        raise ConfigError("--replicates", f"need at least 10 resamples (got {args.replicates})")


def _comparison(runs: list[str], args):
    from detcore.compare import compare_runs
    from detcore.speed import model_size

    def progress(i, done, total):
        print(f"\rrunning {runs[i]}: {done}/{total} images", end="" if done < total else "\n", file=sys.stderr)

    print(f"comparing {', '.join(runs)} on their {args.split!r} images", file=sys.stderr)
    return compare_runs(runs, args.data, part=args.split, on=args.on, n_boot=args.replicates, seed=args.seed,
                        sizes=model_size, progress=progress)


def run_compare(args) -> int:
    _check(args)
    if len(args.runs) < 2:
        from detcore.errors import ConfigError

        raise ConfigError("RUN", "name at least two runs to compare")
    comparison = _comparison(args.runs, args)
    doc = comparison.to_json()
    print(json.dumps(doc, allow_nan=False) if args.json else format_comparison(doc))
    return 0


def _f(v, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def format_comparison(doc: dict) -> str:
    names = [r["name"] for r in doc["runs"]]
    split, boot = doc["split"], doc["bootstrap"]
    lines = [f"{split['images']} {split['part']} images ({split['basis']}); differences: each run minus {doc['baseline']}, "
             f"{boot['level']:.0%} paired bootstrap intervals over {boot['replicates']} resamples of the images"]
    lines += [f"note: {n}" for n in split["notes"]]
    width = max(12, *(len(n) for n in names))
    lines.append("")
    lines.append(f"{'run':<{width}} {'AP':>6} {'AP50':>6} {'AR100':>6} {'params':>11} {'MB':>6} {'p50 ms':>7} {'img/s':>6}")
    for r in doc["runs"]:
        speed = r.get("speed") or {}
        params = r.get("params")
        lines.append(f"{r['name']:<{width}} {_f(r['summary'].get('AP')):>6} {_f(r['summary'].get('AP50')):>6} "
                     f"{_f(r['summary'].get('AR100')):>6} {(f'{params:,}' if params else '-'):>11} "
                     f"{_f(r.get('checkpoint_mb'), '.1f'):>6} {_f(speed.get('p50_ms'), '.1f'):>7} "
                     f"{_f(speed.get('images_per_s'), '.2f'):>6}")
    cw = max(5, *(len(r["class"]) for r in doc["per_class"]))
    for other in names[1:]:
        lines += ["", f"{other} vs {doc['baseline']}",
                  f"{'class':<{cw}} {'n_gt':>5} {'AP A':>6} {'AP B':>6} {'ΔAP':>7} {'interval':>18}  "
                  f"{'ΔAP50':>7} {'interval':>18}  {'ΔF1':>7}  verdict"]
        for row in doc["per_class"]:
            d = row["vs_baseline"][other]
            ci = d["AP_delta_ci"]
            ci50 = d["AP50_delta_ci"]
            verdict = "-" if not d["significant"] else ("better" if d["AP_delta"] > 0 else "worse")
            lines.append(
                f"{row['class']:<{cw}} {row['n_gt']:>5} {_f(row['AP'][doc['baseline']]):>6} {_f(row['AP'][other]):>6} "
                f"{_f(d['AP_delta'], '+.3f'):>7} {('-' if ci is None else f'[{ci[0]:+.3f}, {ci[1]:+.3f}]'):>18}  "
                f"{_f(d['AP50_delta'], '+.3f'):>7} {('-' if ci50 is None else f'[{ci50[0]:+.3f}, {ci50[1]:+.3f}]'):>18}  "
                f"{_f(d['f1_delta'], '+.3f'):>7}  {verdict}")
    lines.append("")
    lines.append(f"verdict: better/worse when the AP interval excludes 0 (classes with at least "
                 f"{boot['min_objects']} objects); F1 at each run's own saved thresholds")
    return "\n".join(lines)


def run_report_command(args) -> int:
    from pathlib import Path

    from detcore import atomic
    from detcore.html_report import build_report, run_report

    _check(args)
    comparison = _comparison([args.run, *args.compare], args) if args.compare else None
    if comparison is not None:
        main = comparison.predictions[0]
        evaluated = (comparison.results[0], main.samples, main.detections)
        thresholds = dict(zip(comparison.classes, comparison.thresholds[0]))
        report = run_report(args.run, comparison.data, split=args.split, evaluated=evaluated, thresholds=thresholds)
    else:
        print(f"evaluating run {args.run} on split {args.split!r}", file=sys.stderr)
        report = run_report(args.run, args.data, split=args.split)
    out = Path(args.out)
    atomic.write_text(out, build_report(report, comparison=comparison))
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB; opens offline)", file=sys.stderr)
    return 0
