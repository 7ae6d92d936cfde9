"""The hostile walk's findings that only a real server shows (issue "Close the holes a hostile walk found"):
4 (Streamlit's upload endpoint before the password) and 9 (an old tab's fragments after the password
changed — AppTest reruns the whole script, so only a browser can click inside a fragment alone).

One dedicated server with its own secrets file (``--secrets.files``): Streamlit re-reads it when it
changes, which is how an administrator changes the shared password.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ARTIFACTS, REPO, AppDriver, streamlit_server

pytestmark = pytest.mark.e2e

PASSWORD_FIELD = '[data-testid="stTextInputField"][type="password"]'


@pytest.fixture(scope="module")
def gated(tmp_path_factory, app_roots, trained_run) -> dict:
    """A server behind the shared password "first", with a copy of the tiny run."""
    base = tmp_path_factory.mktemp("gated")
    shutil.copytree(app_roots["data"] / "demo", base / "data" / "demo")
    run = Path(shutil.copytree(trained_run, base / "runs" / trained_run.name))
    secrets = base / "secrets.toml"
    secrets.write_text('password = "first"\n')
    log = base / "streamlit.log"
    with streamlit_server(base / "data", base / "runs", app_roots["torch_home"], log,
                          "--secrets.files", str(secrets)) as url:
        yield {"url": url, "secrets": secrets, "run": run, "log": log, "password": "first"}


@pytest.fixture
def tab(browser, gated, request):
    """A factory of browser tabs on the gated server (each its own context: its own cookies)."""
    contexts = []

    def make() -> AppDriver:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        return AppDriver(page, gated["url"])

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for i, context in enumerate(contexts):
        if failed:
            ARTIFACTS.mkdir(exist_ok=True)
            context.pages[0].screenshot(path=str(ARTIFACTS / f"FAILED-{request.node.name}-tab{i}.png"))
        context.close()


def _unlock(app: AppDriver, title: str, password: str) -> None:
    """Enter the password on a new tab, then go to ``title``'s page through the sidebar (a reload would
    be a new session, locked again; a deep link behind the gate lands on the first page)."""
    app.page.goto(app.base_url)
    app.page.locator(PASSWORD_FIELD).fill(password, timeout=90_000)
    app.page.get_by_role("button", name="Enter").click()
    app.page.get_by_role("heading", name="Data", level=1).wait_for(timeout=90_000)
    app.settle()
    if title != "Data":
        app.page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
        app.page.get_by_role("heading", name=title, level=1).wait_for(timeout=90_000)
        app.settle()


def _locked(app: AppDriver) -> bool:
    return app.page.locator(PASSWORD_FIELD).count() == 1


def _set_password(gated: dict, tab, new: str, old: str) -> None:
    """Rewrite the secrets file and wait until the server refuses the old password."""
    gated["secrets"].write_text(f'password = "{new}"\n')
    gated["password"] = new  # what later tests on this server must enter
    probe = tab()
    deadline = time.monotonic() + 30
    while True:
        probe.page.goto(probe.base_url)
        probe.page.locator(PASSWORD_FIELD).fill(old, timeout=90_000)
        probe.page.get_by_role("button", name="Enter").click()
        probe.settle()
        if probe.page.get_by_text("Wrong password.").count():
            return
        assert time.monotonic() < deadline, "the server did not pick up the new password"
        time.sleep(1)


def _session_ids(page) -> list[str]:
    """Collect the session id Streamlit sends each new session (first websocket message)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    ids: list[str] = []

    def on_frame(payload) -> None:
        if isinstance(payload, (bytes, bytearray)):
            msg = ForwardMsg()
            try:
                msg.ParseFromString(bytes(payload))
            except Exception:  # noqa: BLE001 - not every frame is a ForwardMsg we can read
                return
            if msg.HasField("new_session"):
                ids.append(msg.new_session.initialize.session_id)

    page.on("websocket", lambda ws: ws.on("framereceived", on_frame))
    return ids


_PUT = """async ([sid, fileId, size]) => {
  const cookie = document.cookie.split('; ').find(c => c.startsWith('_streamlit_xsrf='));
  const token = cookie ? decodeURIComponent(cookie.split('=').slice(1).join('=')) : '';
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(size)]), 'payload.bin');
  const r = await fetch(`/_stcore/upload_file/${sid}/${fileId}`,
                        {method: 'PUT', body: form, headers: {'X-Xsrftoken': token}, credentials: 'same-origin'});
  return r.status;
}"""


def test_finding4_a_tab_before_the_password_cannot_upload(tab, drop_images):
    """The walk: a tab that never entered the password PUT 4 x 50 MB to /_stcore/upload_file/<session>/<id>
    with ids it chose itself, and the server kept them (+200 MB). Now: 403, nothing stored; after the
    password a real drop on the Predict page still works, and a made-up id is still refused."""
    app = tab()
    sessions = _session_ids(app.page)
    app.page.goto(app.base_url)
    app.page.locator(PASSWORD_FIELD).wait_for(timeout=90_000)
    assert sessions, "no session id seen on the websocket"
    statuses = [app.page.evaluate(_PUT, [sessions[-1], f"chosen-{i}", 5 * 2**20]) for i in range(4)]
    assert statuses == [403] * 4

    _unlock(app, "Predict", "first")
    app.page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(drop_images[0]))
    app.page.locator('[data-testid="stMetric"]', has_text="Boxes shown").wait_for(timeout=120_000)
    app.settle()
    app.wait_for_charts()
    app.assert_no_exception()
    app.screenshot("hostile-walk-predict-after-password")
    assert app.page.evaluate(_PUT, [sessions[-1], "chosen-after", 1000]) == 403  # ids are the server's to give


def test_finding9_an_old_tabs_fragments_are_refused_after_the_password_changed(tab, gated, drop_images):
    """The walk: after the password changed, an old tab could still save thresholds to the run (a file
    written), move the Predict slider, ... — fragments rerun alone, without the gate. Now each fragment
    checks the gate first (ui.auth.still_allowed) and the tab shows the password form instead."""
    thresholds = gated["run"] / "thresholds.json"
    assert not thresholds.exists()

    evaluate = tab()
    _unlock(evaluate, "Evaluate", "first")
    save = evaluate.page.get_by_role("button", name="Save thresholds to the run")
    save.wait_for(timeout=240_000)  # the first visit runs the model over the test split
    evaluate.settle()

    predict = tab()
    _unlock(predict, "Predict", "first")
    predict.page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(drop_images[0]))
    predict.page.locator('[data-testid="stMetric"]', has_text="Boxes shown").wait_for(timeout=120_000)
    predict.settle()

    _set_password(gated, tab, "second", old="first")

    save.click()  # inside the tuning fragment of a tab unlocked with the old password
    deadline = time.monotonic() + 60
    while not (_locked(evaluate) or thresholds.exists()) and time.monotonic() < deadline:
        evaluate.page.wait_for_timeout(300)
    assert not thresholds.exists(), "an old tab wrote thresholds.json after the password changed"
    assert _locked(evaluate), "the old tab did not show the password form"
    evaluate.settle()
    assert evaluate.page.get_by_role("heading", name="Evaluate", level=1).count() == 0

    slider = predict.page.get_by_role("slider")
    slider.focus()
    slider.press("End")  # the results fragment of the old Predict tab
    expect(predict.page.locator(PASSWORD_FIELD)).to_have_count(1, timeout=60_000)
    assert predict.page.locator('[data-testid="stMetric"]', has_text="Boxes shown").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    predict.page.screenshot(path=str(ARTIFACTS / "hostile-walk-old-tab-locked.png"))

    again = tab()  # the new password opens it
    _unlock(again, "Evaluate", "second")
    again.assert_no_exception()


def test_finding14_media_urls_are_served_without_the_gate_as_deploy_md_says(tab, browser, gated):
    """Finding 14 (documented, not changed): Streamlit serves st.image pictures and download buttons from
    /media/<content hash> to anyone who has the URL — no session, no password. docs/deploy.md says so
    and puts /media/ behind the proxy's authentication; this test keeps that sentence true."""
    app = tab()
    _unlock(app, "Data", gated["password"])  # finding 9's test may have changed it
    app.page.get_by_role("tab", name="Image browser").click()
    image = app.page.locator('[data-testid="stImage"] img').first
    image.wait_for(timeout=60_000)
    src = image.get_attribute("src")
    assert src and "/media/" in src, src
    stranger = browser.new_context()  # no cookies, never saw the password form
    try:
        response = stranger.request.get(src if src.startswith("http") else app.base_url + src)
        assert response.status == 200 and response.headers["content-type"].startswith("image/")
    finally:
        stranger.close()
    assert "/media/" in (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
