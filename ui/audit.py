"""The audit log, ``RUNS/audit.jsonl``: who did what on this server, one JSON object per line, each
appended whole and fsynced (``detcore.atomic.append_jsonl``).

```
{"time": unix time, "session": Streamlit session id, "client": IP address or "local", "user": e-mail
 (OIDC) or null, "event": "sign_in_ok" | "sign_in_failed" | "sign_in_refused" | "job_started" |
 "job_queued" | "job_stopped" | "job_killed" | "job_cancelled" | "dataset_imported", ...details}
```

Details never hold a password. A log that cannot be written (disk full, read-only runs root) is
reported in the server log; the action itself goes ahead.
"""

from __future__ import annotations

import logging
import time

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from detcore import atomic, paths

AUDIT_FILE = "audit.jsonl"
log = logging.getLogger(__name__)


def audit_path():
    return paths.runs_root() / AUDIT_FILE


def client_address() -> str:
    """The client's IP address as the server sees it; "local" for this machine (and for everyone
    behind a reverse proxy on this machine, which then needs its own rate limits)."""
    try:
        address = st.context.ip_address
    except Exception:  # noqa: BLE001 - no client context (a bare script run)
        return "local"
    return address if isinstance(address, str) and address else "local"


def _session_id() -> str | None:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def _user_email() -> str | None:
    try:
        user = st.user.to_dict()
    except Exception:  # noqa: BLE001 - no user context
        return None
    email = user.get("email") if user.get("is_logged_in") is True else None
    return email if isinstance(email, str) else None


def audit(event: str, **details) -> None:
    record = {"time": time.time(), "session": _session_id(), "client": client_address(), "user": _user_email(),
              "event": event, **details}
    try:
        atomic.append_jsonl(audit_path(), record)
    except (OSError, TypeError, ValueError) as e:
        log.warning("audit log %s not written (%s): %s", audit_path(), e, record)


def who() -> str:
    """A short label of the current session for job lists: the user's e-mail, else the client address."""
    return _user_email() or client_address()
