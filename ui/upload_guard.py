"""Streamlit's upload endpoint behind detboard's gate (hostile walk, finding 4).

Streamlit stores whatever is PUT to ``/_stcore/upload_file/<session>/<file id>`` for any live session —
one that never passed the password or sign-in, with file ids the client makes up, with no count limit
(the walk: 4 x 50 MB from a locked tab, +200 MB of server memory). What the app can do about it, it
does here, by guarding the server's uploaded-file manager (the one object every upload goes through):

- **No uploads before the gate.** A file is stored only for a session whose last script run passed
  every configured gate (``ui.auth.require_access`` reports it) and, with a shared password, only while
  that password is still the one the session entered. Anything else is refused with 403, and a locked
  session's stored files are dropped at its next run.
- **Only ids the server issued.** The browser asks the server for upload URLs when a user drops a file
  on a widget; a PUT to an id the server did not hand to that session is refused with 403.
- **A per-session cap.** At most ``DETBOARD_SESSION_UPLOADS_MB`` (default 400 MiB) and
  ``SESSION_MAX_FILES`` files held per session (413 beyond), on top of ``server.maxUploadSize`` per file.

What it cannot do: Streamlit reads a request's body (up to ``server.maxUploadSize``) before the
manager sees it, and the endpoint answers anyone who can open a session. An exposed server needs a
reverse proxy with its own authentication in front of ``/_stcore/`` (docs/deploy.md).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_MAX_FILES = 200
SESSION_MB_ENV = "DETBOARD_SESSION_UPLOADS_MB"
DEFAULT_SESSION_MB = 400
_ISSUED_KEPT = 500  # upload ids remembered per session (a widget asks for one per dropped file)
_SESSIONS_KEPT = 5000  # hard bound on the registry; closed sessions are pruned well before it
_PRUNE_ABOVE = 200


@dataclass
class _Access:
    allowed: bool = False
    key: str = ""
    issued: list[str] = field(default_factory=list)


_lock = threading.Lock()
_sessions: dict[str, _Access] = {}


def session_cap_bytes() -> int:
    """The per-session cap from DETBOARD_SESSION_UPLOADS_MB; a value that is not a number refuses every
    upload (and says so in the 413's detail) rather than lifting the cap."""
    raw = os.environ.get(SESSION_MB_ENV, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_SESSION_MB
    except ValueError:
        return 0
    return int(mb * 2**20) if 0 <= mb < float("inf") else 0


def guard_uploads(allowed: bool, current_key: Callable[[], str]) -> None:
    """Called by ``ui.auth.require_access`` at every script run: records whether this session passed
    every gate (and under which password, ``current_key()``), installs the guard on the server's
    uploaded-file manager once, and drops the files of a session that is locked. A no-op outside a
    Streamlit server (AppTest, bare script runs)."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():
        return
    runtime = Runtime.instance()
    manager = runtime.uploaded_file_mgr
    install(manager, current_key)
    note_access(ctx.session_id, allowed, current_key() if allowed else "")
    if len(_sessions) > _PRUNE_ABOVE:
        with _lock:
            for session_id in [s for s in _sessions if not runtime.is_active_session(s)]:
                del _sessions[session_id]
    if not allowed:
        manager.remove_session_files(ctx.session_id)


def note_access(session_id: str, allowed: bool, key: str) -> None:
    with _lock:
        if session_id not in _sessions and len(_sessions) >= _SESSIONS_KEPT:
            _sessions.pop(next(iter(_sessions)))  # the oldest: its tab is long gone, or it re-registers
        access = _sessions.setdefault(session_id, _Access())
        access.allowed, access.key = allowed, key
        if not allowed:
            access.issued.clear()


def install(manager, current_key: Callable[[], str]) -> None:
    """Wrap ``manager.add_file`` and ``manager.get_upload_urls`` (once per manager)."""
    if getattr(manager, "_detboard_guarded", False):
        return
    add_file, get_upload_urls = manager.add_file, manager.get_upload_urls

    def guarded_upload_urls(session_id, file_names):
        infos = get_upload_urls(session_id, file_names)
        with _lock:
            access = _sessions.get(session_id)
            if access is not None and access.allowed:
                access.issued.extend(info.file_id for info in infos)
                del access.issued[:-_ISSUED_KEPT]
        return infos

    def guarded_add_file(session_id, file):
        refusal = _refusal(manager, session_id, file, current_key)
        if refusal is not None:
            from starlette.exceptions import HTTPException  # the upload route turns it into the status

            status, detail = refusal
            raise HTTPException(status_code=status, detail=detail)
        add_file(session_id, file)

    manager.get_upload_urls = guarded_upload_urls
    manager.add_file = guarded_add_file
    manager._detboard_guarded = True


def _refusal(manager, session_id: str, file, current_key: Callable[[], str]) -> tuple[int, str] | None:
    with _lock:
        access = _sessions.get(session_id)
        allowed = access is not None and access.allowed
        key, issued = (access.key, file.file_id in access.issued) if access is not None else ("", False)
    if not allowed or key != current_key():
        return 403, "uploads need a session past the sign-in / password gate"
    if not issued:
        return 403, "unknown upload id for this session"
    held = getattr(manager, "file_storage", {}).get(session_id, {})
    others = [f for file_id, f in held.items() if file_id != file.file_id]
    if len(others) >= SESSION_MAX_FILES:
        return 413, f"this session already holds {len(others)} uploaded files (limit {SESSION_MAX_FILES})"
    cap = session_cap_bytes()
    if sum(len(f.data) for f in others) + len(file.data) > cap:
        return 413, f"this session's uploads would exceed {cap // 2**20} MiB ({SESSION_MB_ENV})"
    return None
