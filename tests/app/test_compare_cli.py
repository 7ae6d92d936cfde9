"""`compare`, `report` and `predict --benchmark` on real (tiny) runs, through the CLI entry point."""

from __future__ import annotations

import json
import re

import pytest

from detcore.cli import main

NUMBERS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "n_gt", "n_det", "precision", "recall", "f1",
           "best_f1_threshold")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _json(capsys, *args: str):
    code, out, err = _run(capsys, *args)
    assert code == 0, err
    return json.loads(out)


def test_compare_json_contract(capsys, two_runs):
    a, b = (str(p) for p in two_runs)
    doc = _json(capsys, "compare", a, b, "--json", "--replicates", "200")
    assert [r["name"] for r in doc["runs"]] == ["tiny", "tiny-longer"]
    for r in doc["runs"]:
        assert r["params"] > 0 and r["checkpoint_mb"] > 0 and r["speed"] is None and r["model"]
    assert doc["bootstrap"]["replicates"] == 200 and doc["split"]["basis"] == "same"
    for row in doc["per_class"]:
        assert set(row["AP"]) == {"tiny", "tiny-longer"}
        if row["AP_delta"] is not None:
            assert row["AP_delta"] == pytest.approx(row["AP"]["tiny-longer"] - row["AP"]["tiny"], abs=1e-12)
            lo, hi = row["AP_delta_ci"]
            assert lo <= hi and row["significant"] == (row["n_gt"] >= 10 and (lo > 0 or hi < 0))
    code, out, _ = _run(capsys, "compare", a, b, "--replicates", "50")
    assert code == 0 and "tiny-longer vs tiny" in out and "interval" in out


def test_compare_errors_are_one_line(capsys, two_runs, tmp_path):
    code, _, err = _run(capsys, "compare", str(two_runs[0]))
    assert code == 2 and err.strip() == "error: RUN: name at least two runs to compare"
    code, _, err = _run(capsys, "compare", str(two_runs[0]), str(tmp_path))
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and errors == [f"error: {tmp_path}: is not a run directory"]
    assert "Traceback" not in err
    code, _, err = _run(capsys, "compare", *map(str, two_runs), "--on", "elsewhere")
    assert code == 2 and "'elsewhere' is neither" in err


def test_report_is_self_contained_and_holds_evaluate_json_numbers(capsys, trained_run, tmp_path):
    from plotly.offline import get_plotlyjs

    from detcore.html_report import SECTIONS, read_report_data

    out = tmp_path / "report.html"
    code, _, err = _run(capsys, "report", str(trained_run), "--out", str(out))
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert text.count(get_plotlyjs()[:300]) == 1  # plotly.js embedded once
    ours = text.replace(get_plotlyjs(), "")  # (plotly.js holds its own links, e.g. its logo's)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", ours)  # nothing to fetch
    assert re.search(r'<img alt="[^"]+" src="data:image/jpeg;base64,', ours)
    for section in SECTIONS[:-1]:
        assert f'id="{section}"' in text
    assert 'id="comparison"' not in text
    data = read_report_data(text)
    evaluated = _json(capsys, "evaluate", str(trained_run), "--json")
    assert data["summary"] == {k: evaluated[k] for k in data["summary"]}
    assert len(data["per_class"]) == len(evaluated["per_class"])
    for mine, theirs in zip(data["per_class"], evaluated["per_class"]):
        assert {k: mine[k] for k in NUMBERS} == {k: theirs[k] for k in NUMBERS}
        assert mine["AP_ci_low"] is None or mine["AP_ci_low"] <= mine["AP_ci_high"]
    assert data["samples"] and all("image_id" in s for s in data["samples"])


def test_report_with_a_comparison_holds_compare_json_numbers(capsys, two_runs, tmp_path):
    from detcore.html_report import read_report_data

    out = tmp_path / "both.html"
    a, b = (str(p) for p in two_runs)
    code, _, err = _run(capsys, "report", a, "--compare", b, "--out", str(out), "--replicates", "100")
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert 'id="comparison"' in text
    data = read_report_data(text)
    doc = _json(capsys, "compare", a, b, "--json", "--replicates", "100")
    assert data["comparison"]["per_class"] == doc["per_class"]
    assert data["comparison"]["summary"] == doc["summary"]


def test_predict_benchmark_prints_and_stores_the_speed(capsys, trained_run):
    from detcore.train.runs import Run

    record = _json(capsys, "predict", str(trained_run), "--benchmark", "--json")
    assert 0 < record["p50_ms"] <= record["p95_ms"]
    assert record["images_per_s"] > 0 and record["timed"] >= 2 and record["params"] > 0
    assert record["input_size"] == "320x320 (fixed)"  # SSDlite's own size
    assert "test images of" in record["images"]
    assert Run(trained_run).benchmark() == record
    code, out, _ = _run(capsys, "predict", str(trained_run), "--benchmark")
    assert code == 0 and re.search(r"ms/image\s+p50 [\d.]+\s+p95 [\d.]+", out) and "images/s" in out


def test_predict_without_images_says_so(capsys, trained_run):
    code, _, err = _run(capsys, "predict", str(trained_run))
    assert code == 2 and err.strip() == "error: IMAGE: name at least one image or folder (or use --benchmark)"
