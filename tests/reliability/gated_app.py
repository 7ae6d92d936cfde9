"""A minimal app behind ui.auth.require_access(), as app.py will call it (for the gate's AppTests)."""

import streamlit as st

from ui.auth import require_access

require_access()
st.title("Inside")
st.write("secret content")
