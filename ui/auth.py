"""An optional shared-password gate for a deployment that has no single sign-on (docs/deploy.md).

``require_password()`` is called at the top of app.py. It does nothing unless a password is
configured — ``password = "..."`` in ``.streamlit/secrets.toml`` or the ``DETBOARD_PASSWORD``
environment variable — and OIDC (``st.login``, an ``[auth]`` section in secrets.toml) is not.
Then every new browser session sees a password form and nothing else until the right password
is entered. One shared password is a fence against passers-by, not per-user access control; that
is what OIDC or a reverse proxy is for.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import streamlit as st

PASSWORD_ENV = "DETBOARD_PASSWORD"
_UNLOCKED_KEY = "_detboard_unlocked"


def _secrets() -> dict:
    try:
        return dict(st.secrets)
    except FileNotFoundError:  # no secrets.toml anywhere: nothing configured there
        return {}


def oidc_configured() -> bool:
    """True when secrets.toml has an ``[auth]`` section that ``st.login`` can use (a provider with a
    ``client_id``, either directly or in a named ``[auth.<provider>]`` table)."""
    auth = _secrets().get("auth")
    if not hasattr(auth, "get"):
        return False
    if auth.get("client_id"):
        return True
    return any(hasattr(v, "get") and v.get("client_id") for v in auth.values())


def configured_password() -> str | None:
    """The shared password (secrets.toml first, then the environment); None when unset or empty."""
    value = _secrets().get("password") or os.environ.get(PASSWORD_ENV)
    return str(value) if value else None


def _fingerprint(password: str) -> str:
    # What the session remembers instead of the password: changing the password logs everyone out.
    return hashlib.sha256(b"detboard-gate\x00" + password.encode("utf-8")).hexdigest()


def require_password() -> None:
    """Return at once when no gate is configured or this session is unlocked; else draw the password
    form and ``st.stop()`` the script, so nothing below the call runs or is sent to the browser."""
    if oidc_configured():
        return
    expected = configured_password()
    if expected is None:
        return
    fingerprint = _fingerprint(expected)
    if hmac.compare_digest(st.session_state.get(_UNLOCKED_KEY, ""), fingerprint):
        return
    st.title("detboard")
    with st.form("detboard_password_gate"):
        typed = st.text_input("Password", type="password", key="_detboard_password")
        submitted = st.form_submit_button("Enter", type="primary")
    if submitted:
        if hmac.compare_digest(typed.encode("utf-8"), expected.encode("utf-8")):
            st.session_state[_UNLOCKED_KEY] = fingerprint
            del st.session_state["_detboard_password"]  # do not keep the password in the session
            st.rerun()
        st.error("Wrong password.", icon=":material/lock:")
    st.stop()
