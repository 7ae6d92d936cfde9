"""What every page draws first: the shared sidebar and its one ``st.title``.

Why pages call this instead of app.py drawing the sidebar: Streamlit treats an app that has a
``pages/`` folder as an old-style (v1) multipage app until ``st.navigation`` has run once in the
process. A first visit straight to ``/predict`` on a fresh server then runs pages/predict.py alone,
without app.py, and keeps doing so for every session. We leave that mode once and rerun, so app.py's
navigation takes over; drawing the sidebar here keeps each page whole either way.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from ui.auth import require_access
from ui.exposure import exposure_banner_ui
from ui.sidebar import sidebar_ui


def _leave_pages_folder_mode() -> None:
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        # AppTest re-derives the flag before every run, so there a rerun would swallow each
        # click; the page draws itself whole without it.
        if not st.get_option("global.appTest"):
            st.rerun()


def page_shell(title: str) -> None:
    _leave_pages_folder_mode()
    require_access()  # app.py gates too; this covers a page that ran without app.py (see above)
    exposure_banner_ui()  # bound beyond loopback with no sign-in: say so on every page
    sidebar_ui()
    st.title(title)
