"""detcore — the engine behind detboard: data, models, training, metrics, inference.

No Streamlit import anywhere in this package; pages/ call into it.
"""

__version__ = "0.1.0"
