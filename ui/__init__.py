"""Streamlit-side helpers shared by the pages: session state, the sidebar, cached loaders, the job
registry. Widgets and caching only — every computation is a detcore call (docs/architecture.md)."""
