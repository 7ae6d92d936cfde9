"""Hostile walk findings 5, 10 and 14 through the real app: a damaged or hand-edited run folder is an
error naming the file on the page that reads it (or a row saying 'unreadable'), never an exception
that takes every page down for every user; run folders linked in from outside RUNS are not listed."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.app.conftest import no_exceptions

PAGES = ["pages/data.py", "pages/train.py", "pages/evaluate.py", "pages/predict.py"]


def _sidebar_runs(at) -> dict[str, str]:
    picker = at.sidebar.selectbox(key="_sidebar_run_picker")
    return {p.split("/")[-1]: label for p, label in zip(picker.options, picker.options)}


@pytest.mark.parametrize("line", ['[]', '{"type": "status"}', '{"type": "epoch", "metrics": {"AP": 0.5}}',
                                  '{"type": "epoch", "epoch": 0, "metrics": {"AP": "high"}}', "garbage{"])
def test_finding5_a_malformed_event_line_does_not_take_pages_down(app, trained_run, line):
    other = shutil.copytree(trained_run, trained_run.with_name("other"))
    with open(trained_run / "events.jsonl", "a") as f:
        f.write(line + "\n")
    at = app.run()
    for page in PAGES:
        at.switch_page(page).run()
        no_exceptions(at)
    at.switch_page("pages/train.py").run()
    table = next(df for df in at.dataframe if "status" in df.value.columns).value
    rows = dict(zip(table["run"], table["status"]))
    assert rows == {"tiny": "completed", other.name: "completed"}
    notes = dict(zip(table["run"], table["note"]))
    assert "1 malformed line" in notes["tiny"] and not notes[other.name]


def test_finding5_an_unreadable_run_is_listed_as_such_and_the_others_keep_working(app, trained_run):
    broken = shutil.copytree(trained_run, trained_run.with_name("broken"))
    (broken / "config.json").write_text("[]")
    at = app.run()
    at.switch_page("pages/train.py").run()
    no_exceptions(at)
    table = next(df for df in at.dataframe if "status" in df.value.columns).value
    rows = dict(zip(table["run"], table["status"]))
    assert rows["broken"] == "unreadable" and rows["tiny"] == "completed"
    assert "config.json" in dict(zip(table["run"], table["note"]))["broken"]


@pytest.mark.parametrize("content, shown", [
    ("not json", "unreadable"), ('{"global": 5}', "must be a number in [0, 1]"),
    ('{"global": "abc"}', "must be a number in [0, 1]"), ('{"per_class": {"with_mask": -1}}', "with_mask"),
])
def test_finding10_bad_thresholds_file_is_an_error_naming_it(app, trained_run, make_png, content, shown):
    (trained_run / "thresholds.json").write_text(content)
    at = app.run()
    at.switch_page("pages/evaluate.py").run()
    no_exceptions(at)
    assert any("thresholds.json" in e.value and shown in e.value for e in at.error), [e.value for e in at.error]
    at.switch_page("pages/predict.py").run()
    at.file_uploader(key="predict_uploads").set_value([("a.png", make_png(0), "image/png")]).run()
    no_exceptions(at)
    assert any("thresholds.json" in e.value for e in at.error), [e.value for e in at.error]


@pytest.mark.parametrize("content", ["[]", '{"epochs": "ten"}', '{"model": "yolo-nas"}'])
def test_finding10_bad_config_file_is_an_error_naming_it(app, trained_run, make_png, content):
    (trained_run / "config.json").write_text(content)
    at = app.run()
    at.switch_page("pages/train.py").run()
    no_exceptions(at)
    for page in ("pages/evaluate.py", "pages/predict.py"):
        at.switch_page(page).run()
        if page == "pages/predict.py":
            at.file_uploader(key="predict_uploads").set_value([("a.png", make_png(0), "image/png")]).run()
        no_exceptions(at)
        assert any("config.json" in e.value for e in at.error), (page, [e.value for e in at.error])


def test_finding14_a_run_folder_linked_from_outside_runs_is_not_listed(app, trained_run, tmp_path):
    outside = shutil.copytree(trained_run, tmp_path / "elsewhere" / "secret-run")
    os.symlink(outside, trained_run.parent / "linked")
    at = app.run()
    at.switch_page("pages/train.py").run()
    no_exceptions(at)
    table = next(df for df in at.dataframe if "status" in df.value.columns).value
    assert list(table["run"]) == ["tiny"]
    assert all("linked" not in o for o in at.sidebar.selectbox(key="_sidebar_run_picker").options)
