"""Secure by default: the server binds 127.0.0.1 (.streamlit/config.toml). When it is started on an
address other machines can reach and neither a password nor an OIDC sign-in is configured, every page
shows a warning banner and the server log says so once (docs/deploy.md, "Bind address")."""

from __future__ import annotations

import ipaddress
import logging
import socket

import streamlit as st

from ui.auth import configured_password, oidc_configured

log = logging.getLogger(__name__)
_logged: set[str] = set()


def reachable_from_other_machines(address: str | None) -> bool:
    """False only for loopback addresses (and names that resolve to loopback alone); an empty address
    or 0.0.0.0 / :: means every interface."""
    address = (address or "").strip().strip("[]")
    if not address:
        return True
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:
        pass
    try:
        resolved = {info[4][0] for info in socket.getaddrinfo(address, None)}
    except OSError:
        return True  # cannot tell: warn
    return not resolved or any(not ipaddress.ip_address(a.split("%")[0]).is_loopback for a in resolved)


def open_door() -> str | None:
    """The bind address when the server is reachable by others with no sign-in configured, else None."""
    address = st.get_option("server.address")
    if not reachable_from_other_machines(address):
        return None
    if configured_password() is not None or oidc_configured():
        return None
    return address or "every interface"


def exposure_banner_ui() -> None:
    address = open_door()
    if address is None:
        return
    if address not in _logged:
        _logged.add(address)
        log.warning("detboard is listening on %s with no password and no OIDC sign-in: anyone who can reach "
                    "this machine can read the data folder and start training (docs/deploy.md)", address)
    st.warning(f"**Open to the network without sign-in.** This server listens on `{address}` and no password or "
               "OIDC sign-in is configured: anyone who can reach this machine can browse the data folder, start "
               "training and download models. Bind it to 127.0.0.1 or set a password (docs/deploy.md).",
               icon=":material/warning:")
