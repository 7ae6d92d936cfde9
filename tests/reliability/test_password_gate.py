"""The optional password gate (ui/auth.py) in a real Streamlit script run: nothing behind it is
rendered until the right password is entered; no gate when none is configured or OIDC is."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

GATED_APP = Path(__file__).with_name("gated_app.py")


@pytest.fixture
def app(monkeypatch) -> AppTest:
    monkeypatch.delenv("DETBOARD_PASSWORD", raising=False)
    return AppTest.from_file(str(GATED_APP), default_timeout=30)


def _inside(at: AppTest) -> bool:
    return [t.value for t in at.title] == ["Inside"] and any("secret content" in m.value for m in at.markdown)


def _enter(at: AppTest, password: str) -> AppTest:
    at.text_input(key="_detboard_password").input(password)
    at.form_submit_button[0].click()
    return at.run()


def test_no_password_configured_means_no_gate(app):
    at = app.run()
    assert not at.exception
    assert _inside(at) and not at.text_input


@pytest.mark.parametrize("where", ["secrets", "env"])
def test_gate_hides_everything_until_the_right_password(app, monkeypatch, where):
    if where == "secrets":
        app.secrets["password"] = "correct horse"
    else:
        monkeypatch.setenv("DETBOARD_PASSWORD", "correct horse")
    at = app.run()
    assert not at.exception
    assert not _inside(at)
    assert at.text_input(key="_detboard_password").label == "Password"

    at = _enter(at, "Correct horse")  # close is not enough
    assert not _inside(at)
    assert [e.value for e in at.error] == ["Wrong password."]

    at = _enter(at, "correct horse")
    assert not at.exception
    assert _inside(at) and not at.text_input and not at.error
    assert "_detboard_password" not in at.session_state  # the typed password is not kept
    assert "correct horse" not in repr(at.session_state)

    assert _inside(at.run())  # later reruns of the session stay unlocked


def test_changing_the_password_locks_open_sessions_again(app):
    app.secrets["password"] = "first"
    at = _enter(app.run(), "first")
    assert _inside(at)
    at.secrets["password"] = "second"
    assert not _inside(at.run())


def test_oidc_configured_leaves_the_gate_to_st_login(app):
    app.secrets["password"] = "shared"
    app.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                           "client_id": "detboard", "client_secret": "s",
                           "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}
    at = app.run()
    assert not at.exception and _inside(at)


def test_an_empty_password_is_no_password(app, monkeypatch):
    monkeypatch.setenv("DETBOARD_PASSWORD", "")
    assert _inside(app.run())
