"""A minimal app behind ui.auth.require_password(), as app.py will call it (for the gate's AppTests)."""

import streamlit as st

from ui.auth import require_password

require_password()
st.title("Inside")
st.write("secret content")
