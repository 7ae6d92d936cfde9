"""detboard entry point: page config and navigation over pages/ — nothing else (docs/architecture.md).

Run with ``streamlit run app.py``. Each page draws the shared sidebar itself (``ui.shell``) and
reads the current dataset and run from ``st.session_state`` through ``ui.state``, so a choice made
on one page holds on the others.
"""

import streamlit as st

from ui.auth import require_access

st.set_page_config(page_title="detboard", page_icon=":material/center_focus_strong:", layout="wide")
require_access()  # OIDC sign-in and/or the shared password, when configured (docs/deploy.md)

navigation = st.navigation(
    [
        st.Page("pages/data.py", title="Data", icon=":material/dataset:", default=True),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
        st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    ]
)
navigation.run()
