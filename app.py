"""detboard entry point: page config, the shared sidebar, and navigation over pages/ (DESIGN.md §1).

Run with ``streamlit run app.py``. Every page reads the current dataset and run from
``st.session_state`` through ``ui.state`` so a choice made on one page holds on the others.
"""

import streamlit as st

from ui.sidebar import sidebar_ui

st.set_page_config(page_title="detboard", page_icon="🎯", layout="wide")

navigation = st.navigation(
    [
        st.Page("pages/data.py", title="Data", icon="🗂️", default=True),
        st.Page("pages/train.py", title="Train", icon="🏋️"),
        st.Page("pages/evaluate.py", title="Evaluate", icon="📊"),
        st.Page("pages/predict.py", title="Predict", icon="🔍"),
    ]
)
sidebar_ui()
navigation.run()
