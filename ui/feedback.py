"""Turn user-facing detcore errors into ``st.error`` lines — never a traceback in the UI."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import streamlit as st

from detcore.errors import DetcoreError


@contextmanager
def shown_errors(*, stop: bool = True) -> Iterator[None]:
    """Show a DetcoreError raised inside the block as ``st.error``; stop the page unless told not to."""
    try:
        yield
    except DetcoreError as e:
        st.error(str(e), icon=":material/error:")
        if stop:
            st.stop()
