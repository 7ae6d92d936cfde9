"""The Evaluate page's "HTML report": built on request at the thresholds the page shows, its embedded
numbers are the page's per-class table; moving a threshold drops the stale report."""

from __future__ import annotations

import pytest

from tests.app.conftest import no_exceptions


def _per_class(at):
    return next(df.value for df in at.dataframe if "AP50" in df.value.columns)


def _build(at):
    next(b for b in at.button if b.label == "Build the HTML report").click().run()
    no_exceptions(at)
    return at.session_state["_report_download"]["html"]


def test_the_report_holds_the_pages_numbers_at_its_thresholds(app, trained_run):
    from detcore.html_report import read_report_data

    at = app.run()
    at.switch_page("pages/evaluate.py").run()
    no_exceptions(at)
    assert not [b for b in at.get("download_button") if "report" in b.proto.label]  # nothing built unasked
    at.slider(key="eval_thr_global").set_value(0.3).run()
    table = _per_class(at)
    data = read_report_data(_build(at))
    assert any(b.proto.label.startswith("Download tiny-test-report.html") for b in at.get("download_button"))
    assert data["thresholds"] == {c: 0.3 for c in table["class"]}
    assert [r["class"] for r in data["per_class"]] == list(table["class"])
    for row, (_, shown) in zip(data["per_class"], table.iterrows()):
        for column in table.columns:
            if column == "class":
                continue
            assert row[column] == pytest.approx(shown[column], abs=1e-12, nan_ok=True) or (
                row[column] is None and shown[column] != shown[column]), column
    # another threshold: the built report no longer matches the page, so it is dropped
    at.slider(key="eval_thr_global").set_value(0.6).run()
    assert "_report_download" not in at.session_state
    assert not [b for b in at.get("download_button") if "report" in b.proto.label]
