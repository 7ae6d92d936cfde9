"""The access gates (ui/auth.py) in a real Streamlit script run: nothing behind them is rendered until
the visitor has signed in (OIDC, with an optional allow-list) and/or entered the shared password."""

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


OIDC = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
        "client_id": "detboard", "client_secret": "s",
        "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}


def _sign_in_buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button if b.label.startswith("Sign in")]


def test_finding1_oidc_configured_shows_only_a_sign_in_button(app):
    """Hostile walk, finding 1 (critical): with an [auth] section, a visitor who is not signed in
    saw every page. Now only the sign-in button renders."""
    app.secrets["auth"] = OIDC
    at = app.run()
    assert not at.exception
    assert not _inside(at)
    assert _sign_in_buttons(at) == ["Sign in"]


def test_finding1_named_providers_each_get_a_button(app):
    app.secrets["auth"] = {"redirect_uri": OIDC["redirect_uri"], "cookie_secret": OIDC["cookie_secret"],
                           "google": {k: OIDC[k] for k in ("client_id", "client_secret", "server_metadata_url")},
                           "okta": {k: OIDC[k] for k in ("client_id", "client_secret", "server_metadata_url")}}
    at = app.run()
    assert not _inside(at)
    assert sorted(_sign_in_buttons(at)) == ["Sign in with google", "Sign in with okta"]


def test_finding1_a_signed_in_user_gets_in(app):
    app.secrets["auth"] = OIDC
    app.user = {"is_logged_in": True, "email": "ana@example.org", "name": "Ana"}
    at = app.run()
    assert not at.exception and _inside(at)


@pytest.mark.parametrize("email, allowed", [("ana@example.org", True), ("ANA@Example.org", True),
                                            ("bob@example.org", True), ("eve@evil.example", False),
                                            ("eve@example.org.evil.example", False), ("", False)])
def test_finding1_allow_list_of_emails_and_domains(app, email, allowed):
    app.secrets["auth"] = OIDC
    app.secrets["allowed_emails"] = ["ana@example.org"]
    app.secrets["allowed_domains"] = ["example.org"]
    app.user = {"is_logged_in": True, "email": email}
    at = app.run()
    assert not at.exception
    assert _inside(at) is allowed
    if not allowed:
        assert any("allow-list" in e.value for e in at.error)
        assert [b.label for b in at.button] == ["Sign out"]


def test_finding1_unverified_email_is_refused_by_an_allow_list(app):
    app.secrets["auth"] = OIDC
    app.secrets["allowed_domains"] = ["example.org"]
    app.user = {"is_logged_in": True, "email": "ana@example.org", "email_verified": False}
    at = app.run()
    assert not _inside(at)
    assert any("not verified" in e.value for e in at.error)


def test_finding1_password_gate_stays_on_when_oidc_is_configured_too(app):
    """The shared password never switches itself off: OIDC sign-in first, then the password."""
    app.secrets["auth"] = OIDC
    app.secrets["password"] = "shared"
    app.user = {"is_logged_in": True, "email": "ana@example.org"}
    at = app.run()
    assert not _inside(at)
    assert at.text_input(key="_detboard_password").label == "Password"
    at = _enter(at, "shared")
    assert _inside(at)


def test_an_empty_password_is_no_password(app, monkeypatch):
    monkeypatch.setenv("DETBOARD_PASSWORD", "")
    assert _inside(app.run())
