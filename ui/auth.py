"""Who may use the app: OIDC sign-in (``st.login``) and/or a shared password (docs/deploy.md).

``require_access()`` is called at the top of app.py and of every page (``ui.shell``). Each gate that
is configured applies, in this order, and neither ever switches the other off:

1. **OIDC** — an ``[auth]`` section in ``.streamlit/secrets.toml``. Until ``st.user.is_logged_in``,
   the page shows a sign-in button and nothing else. An optional allow-list restricts who may enter:
   ``allowed_emails = ["ana@example.org"]`` and/or ``allowed_domains = ["example.org"]`` (top level of
   secrets.toml); a signed-in user outside it sees a refusal and a sign-out button.
2. **Shared password** — ``password = "..."`` in secrets.toml or ``DETBOARD_PASSWORD``. Every new
   browser session sees a password form and nothing else until the right password is entered.

A fragment reruns alone, without app.py, so each fragment calls :func:`still_allowed` first: if the
session lost its access since the page was drawn (the password changed, the user signed out) it
reruns the whole app, which then shows the gate instead of running the fragment's action.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import streamlit as st

from ui.attempts import LIMITER, lockout_message
from ui.audit import audit, client_address
from ui.upload_guard import guard_uploads

PASSWORD_ENV = "DETBOARD_PASSWORD"
_UNLOCKED_KEY = "_detboard_unlocked"


def _secrets() -> dict:
    try:
        return dict(st.secrets)
    except FileNotFoundError:  # no secrets.toml anywhere: nothing configured there
        return {}


def _oidc_providers(auth) -> list[str | None]:
    """Providers ``st.login`` can use: ``[None]`` for a single ``[auth]`` provider, else the names of
    ``[auth.<name>]`` tables that hold a ``client_id``."""
    if not hasattr(auth, "get"):
        return []
    if auth.get("client_id"):
        return [None]
    return [name for name, v in auth.items() if hasattr(v, "get") and v.get("client_id")]


def oidc_configured() -> bool:
    """True when secrets.toml has an ``[auth]`` section with at least one OIDC provider."""
    return bool(_oidc_providers(_secrets().get("auth")))


def configured_password() -> str | None:
    """The shared password (secrets.toml first, then the environment); None when unset or empty."""
    value = _secrets().get("password") or os.environ.get(PASSWORD_ENV)
    return str(value) if value else None


def _fingerprint(password: str) -> str:
    # What the session remembers instead of the password: changing the password logs everyone out.
    return hashlib.sha256(b"detboard-gate\x00" + password.encode("utf-8")).hexdigest()


def _user() -> dict:
    try:
        return dict(st.user.to_dict())
    except Exception:  # noqa: BLE001 - no user context (bare script run): nobody is signed in
        return {}


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def email_allowed(email: str | None, secrets: dict | None = None) -> bool:
    """Whether a signed-in e-mail passes the allow-list (no list configured: every signed-in user)."""
    secrets = _secrets() if secrets is None else secrets
    emails = {e.strip().lower() for e in _as_list(secrets.get("allowed_emails"))}
    domains = {d.strip().lower().lstrip("@") for d in _as_list(secrets.get("allowed_domains"))}
    if not emails and not domains:
        return True
    email = (email or "").strip().lower()
    if not email or email.count("@") != 1:
        return False
    return email in emails or email.rsplit("@", 1)[1] in domains


def _oidc_ok(secrets: dict) -> bool:
    user = _user()
    if user.get("is_logged_in") is not True:
        return False
    if user.get("email_verified") is False:  # an unverified address proves nothing about who it is
        return False
    return email_allowed(user.get("email"), secrets)


def _password_ok(secrets: dict) -> bool:
    expected = configured_password()
    if expected is None:
        return True
    return hmac.compare_digest(st.session_state.get(_UNLOCKED_KEY, ""), _fingerprint(expected))


def has_access() -> bool:
    """Every configured gate is passed by this session (True when none is configured)."""
    secrets = _secrets()
    if _oidc_providers(secrets.get("auth")) and not _oidc_ok(secrets):
        return False
    return _password_ok(secrets)


def still_allowed() -> None:
    """For fragments: rerun the whole app (which draws the gate) when access was lost meanwhile."""
    if not has_access():
        st.rerun(scope="app")


def _oidc_gate(secrets: dict) -> None:
    user = _user()
    st.title("detboard")
    if user.get("is_logged_in") is True:
        who = user.get("email") or "this account"
        reason = ("its e-mail address is not verified" if user.get("email_verified") is False
                  else "it is not on this server's allow-list")
        _audit_once("sign_in_failed", method="oidc", reason=reason)
        st.error(f"Signed in as {who}, but {reason}. Ask the administrator for access.", icon=":material/block:")
        st.button("Sign out", on_click=st.logout, key="_detboard_logout")
        st.stop()
    st.info("Sign in to use detboard.", icon=":material/lock:")
    for provider in _oidc_providers(secrets.get("auth")):
        label = "Sign in" if provider is None else f"Sign in with {provider}"
        st.button(label, type="primary", on_click=st.login, args=(provider,) if provider else (),
                  key=f"_detboard_login_{provider or 'default'}")
    st.stop()


def _password_gate(expected: str) -> None:
    st.title("detboard")
    with st.form("detboard_password_gate"):
        typed = st.text_input("Password", type="password", key="_detboard_password")
        submitted = st.form_submit_button("Enter", type="primary")
    if submitted:
        client = client_address()
        if (wait := LIMITER.wait_s(client)) > 0:  # per address, growing delay (ui/attempts.py)
            audit("sign_in_refused", method="password", wait_s=round(wait, 1))
            st.error(lockout_message(wait), icon=":material/lock_clock:")
            st.stop()
        if hmac.compare_digest(typed.encode("utf-8"), expected.encode("utf-8")):
            LIMITER.succeeded(client)
            audit("sign_in_ok", method="password")
            st.session_state[_UNLOCKED_KEY] = _fingerprint(expected)
            del st.session_state["_detboard_password"]  # do not keep the password in the session
            st.rerun()
        wait = LIMITER.failed(client)
        audit("sign_in_failed", method="password")
        st.error("Wrong password." + (f" {lockout_message(wait)}" if wait else ""), icon=":material/lock:")
    st.stop()


def _access_key() -> str:
    """What an unlocked session's access depends on besides its sign-in: the current password."""
    expected = configured_password()
    return _fingerprint(expected) if expected is not None else ""


def _audit_once(event: str, **details) -> None:
    """One audit line per session and event (pages rerun on every click)."""
    key = f"_detboard_audited_{event}"
    if not st.session_state.get(key):
        st.session_state[key] = True
        audit(event, **details)


def require_access() -> None:
    """Return at once when every configured gate is passed; else draw the first unpassed gate and
    ``st.stop()`` the script, so nothing below the call runs or is sent to the browser."""
    guard_uploads(has_access(), _access_key)  # ui/upload_guard.py: no stored uploads before the gate
    secrets = _secrets()
    if _oidc_providers(secrets.get("auth")):
        if not _oidc_ok(secrets):
            _oidc_gate(secrets)
        _audit_once("sign_in_ok", method="oidc")
    expected = configured_password()
    if expected is not None and not _password_ok(secrets):
        _password_gate(expected)


def signed_in_ui() -> None:
    """In the sidebar: who is signed in (OIDC) and a sign-out button."""
    if not oidc_configured():
        return
    user = _user()
    if user.get("is_logged_in") is True:
        st.caption(f"Signed in as {user.get('email') or user.get('name') or 'unknown'}")
        st.button("Sign out", on_click=st.logout, key="_detboard_sidebar_logout")

