"""Through the real app (AppTest on app.py): what a user types or drops on the Data page cannot reach
the server's files. Typed paths go through ``detcore.paths.confine_to_data_roots``; hostile zips are
refused by the safe extractor; the current dataset stays as it was and nothing lands outside DATA."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.reliability.tinydata import write_tiny_voc


def _open_typed(at: AppTest, typed: str) -> AppTest:
    next(t for t in at.text_input if t.label == "…or a path under DATA").input(typed).run()  # enables the button
    next(b for b in at.button if b.label == "Open folder").click()
    return at.run()


def _refused(at: AppTest, before: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert any("outside the allowed data folders" in e.value for e in at.error), [e.value for e in at.error]
    assert at.session_state["dataset_path"] == before


def test_dotdot_is_refused(app):
    at = app.run()
    before = at.session_state["dataset_path"]
    _refused(_open_typed(at, "../../../../etc"), before)
    _refused(_open_typed(at, "demo/../../.."), before)


def test_a_symlink_under_data_that_leads_out_is_refused(app, tmp_path):
    from detcore import paths

    secret = write_tiny_voc(tmp_path / "server-private" / "ds")  # a real dataset, but not the users' to see
    os.symlink(secret.parent, paths.data_root() / "shortcut")
    at = app.run()
    before = at.session_state["dataset_path"]
    _refused(_open_typed(at, "shortcut/ds"), before)


def test_a_folder_under_data_opens(app):
    # The control: confinement is not "refuse everything".
    from detcore import paths

    write_tiny_voc(paths.data_root() / "mine")
    at = _open_typed(app.run(), "mine")
    assert not at.exception and not at.error
    assert at.session_state["dataset_path"] == str(paths.data_root() / "mine")


def test_a_hostile_zip_dropped_on_the_page_writes_nothing_outside_uploads(app, tmp_path):
    from detcore import paths

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ds/annotations/a.xml", "<annotation/>")
        zf.writestr(zipfile.ZipInfo("../../../escaped.txt"), "pwned")
    at = app.run()
    before = at.session_state["dataset_path"]
    uploads = paths.uploads_root()

    def outside_uploads() -> set[Path]:
        return {p for p in paths.data_root().rglob("*") if p != uploads and uploads not in p.parents}

    data_files_before = outside_uploads()
    at.file_uploader(key="data_zip").set_value(("evil.zip", buf.getvalue(), "application/zip")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("outside the target folder" in e.value for e in at.error), [e.value for e in at.error]
    assert at.session_state["dataset_path"] == before
    assert not list(tmp_path.rglob("escaped.txt"))
    assert outside_uploads() == data_files_before
    assert not uploads.exists() or [p.name for p in uploads.iterdir()] == [], "the refused archive left files"
