"""Compare page: two real (tiny) runs — the tiny run and its copy trained one epoch more — on the same
test images. The page's per-class numbers are `compare --json`'s; differing splits are refused with
an offer; "Measure speed" stores what `predict --benchmark` prints; the HTML report holds the same
numbers."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from tests.app.conftest import no_exceptions


def _compare_page(app, two_runs):
    at = app.run()
    at.switch_page("pages/compare.py").run()
    no_exceptions(at)
    at.multiselect(key="compare_runs").set_value([str(p) for p in two_runs]).run()
    no_exceptions(at)
    return at


def _same(shown, expected) -> bool:
    """A page value (NaN where undefined) equals a JSON value (null where undefined)."""
    if expected is None:
        return shown is None or shown != shown
    return shown == pytest.approx(expected, abs=1e-12)


def _cli_json(*args: str) -> dict:
    from detcore.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(args)) == 0
    return json.loads(out.getvalue())


TABLES = {"compare_runs_table": "parameters", "compare_per_class": "ΔAP", "compare_disagreement": "spread"}


def _frames(at, key: str):
    return [df.value for df in at.dataframe if TABLES[key] in df.value.columns]


def _frame(at, key: str):
    """The page's table ``key`` (AppTest does not expose st.dataframe keys: found by a column of its own)."""
    (frame,) = _frames(at, key)
    return frame


def test_the_page_shows_the_numbers_compare_json_prints(app, two_runs):
    at = _compare_page(app, two_runs)
    assert [t.value for t in at.title] == ["Compare"]
    base, other = (p.name for p in two_runs)
    table = _frame(at, "compare_per_class")
    doc = _cli_json("compare", *map(str, two_runs), "--json")
    assert doc["baseline"] == base and [r["name"] for r in doc["runs"]] == [base, other]
    assert list(table["class"]) == [r["class"] for r in doc["per_class"]]
    for (_, shown), row in zip(table.iterrows(), doc["per_class"]):
        for name in (base, other):
            assert _same(shown[f"AP {name}"], row["AP"][name]) and _same(shown[f"F1 {name}"], row["f1"][name])
        assert _same(shown["ΔAP"], row["AP_delta"])
        ci = row["AP_delta_ci"] or [None, None]
        assert _same(shown["ΔAP low"], ci[0]) and _same(shown["ΔAP high"], ci[1])
        assert bool(shown["ΔAP significant"]) == row["significant"]
        assert shown["verdict"] == ("" if not row["significant"] else "▲ better" if row["AP_delta"] > 0 else "▼ worse")
    runs = _frame(at, "compare_runs_table")
    assert list(runs["run"]) == [base, other]
    assert all(_same(runs["AP"][k], doc["summary"]["AP"][n]) for k, n in enumerate((base, other)))
    assert list(runs["parameters"]) == [f"{r['params'] / 1e6:.2f} M" for r in doc["runs"]]
    # overlaid PR + F1, loss + validation AP, a delta chart, and one picture per run side by side
    keys = {c.proto.id for c in at.get("plotly_chart")}
    assert len(keys) >= 7
    images = _frame(at, "compare_disagreement")
    assert set(images.columns) >= {"image_id", f"errors {base}", f"errors {other}", "difference"}
    assert images["spread"].tolist() == sorted(images["spread"], reverse=True)


def test_different_test_splits_are_refused_with_an_offer(app, two_runs):
    from detcore.data.splits import save_split
    from detcore.train.runs import Run

    longer = Run(two_runs[1])
    split = longer.split()
    moved = split.test[:1]
    split.test, split.train = split.test[1:], split.train + moved
    save_split(split, longer.path / "split.json")
    at = _compare_page(app, two_runs)
    assert any("different images" in e.value for e in at.error)
    assert not _frames(at, "compare_per_class")
    at.radio(key="compare_on").set_value("intersection").run()
    no_exceptions(at)
    assert not at.error
    assert len(_frame(at, "compare_disagreement")) == len(split.test)
    # compared on the baseline's split instead, the image the longer run trained on is named
    at.radio(key="compare_on").set_value(two_runs[0].name).run()
    no_exceptions(at)
    assert any(f"1 of the {len(split.test) + 1} images were in {longer.name}'s training" in w.value for w in at.warning)


def test_measure_speed_stores_what_predict_benchmark_prints(app, two_runs):
    from detcore.train.runs import Run

    at = _compare_page(app, two_runs)
    assert _frame(at, "compare_runs_table")["p50 ms"].isna().all()
    next(b for b in at.button if b.label == "Measure speed").click().run()
    no_exceptions(at)
    runs = _frame(at, "compare_runs_table")
    for run_dir, (_, row) in zip(two_runs, runs.iterrows()):
        stored = Run(run_dir).benchmark()
        assert stored["p50_ms"] > 0 and stored["p95_ms"] >= stored["p50_ms"] and stored["images_per_s"] > 0
        assert row["p50 ms"] == stored["p50_ms"] and row["images/s"] == stored["images_per_s"]


def test_the_report_download_holds_the_pages_numbers(app, two_runs):
    from detcore.html_report import read_report_data

    at = _compare_page(app, two_runs)
    table = _frame(at, "compare_per_class")
    next(b for b in at.button if b.label == "Build the HTML report").click().run()
    no_exceptions(at)
    served = at.session_state["_report_download"]["html"]
    assert any(b.proto.label.startswith("Download tiny-vs-tiny-longer-report.html") for b in at.get("download_button"))
    data = read_report_data(served)
    rows = data["comparison"]["per_class"]
    for (_, shown), row in zip(table.iterrows(), rows):
        ci = row["AP_delta_ci"] or [None, None]
        assert _same(shown["ΔAP"], row["AP_delta"])
        assert _same(shown["ΔAP low"], ci[0]) and _same(shown["ΔAP high"], ci[1])
    assert [r["class"] for r in data["per_class"]] == list(table["class"])
    assert data["run"]["name"] == two_runs[0].name
