"""The one process-wide JobRegistry (docs/architecture.md, "Background jobs").

Kept in its own tiny module that rarely changes: ``st.cache_resource`` keys on this function's
source, so editing it would orphan a running job. Every session, tab and rerun gets the same object,
which is what lets a reload or a second tab see the running job.
"""

import streamlit as st

from detcore.train.jobs import JobRegistry


@st.cache_resource(show_spinner=False)
def job_registry() -> JobRegistry:
    return JobRegistry()
