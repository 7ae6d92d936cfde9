"""Fixtures for the reliability tests (helpers live in tinydata.py so test modules can import them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.reliability.tinydata import REPO, TINY, write_tiny_voc


@pytest.fixture
def tiny_voc(tmp_path) -> Path:
    from detcore import paths

    return write_tiny_voc(paths.data_root() / "tiny")


@pytest.fixture
def tiny_config(tiny_voc):
    """Factory: a validated-on-use TrainConfig on ``tiny_voc`` with the TINY settings plus overrides."""
    from detcore.train.config import TrainConfig

    def make(**overrides) -> TrainConfig:
        return TrainConfig(**{**TINY, "data": str(tiny_voc), "epochs": 1, **overrides})

    return make


@pytest.fixture
def app(monkeypatch):
    """The real app.py in AppTest, opening on a 6-image demo set in this test's DATA."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    from detcore import paths
    from detcore.data.demo import generate_demo_dataset

    generate_demo_dataset(paths.demo_dataset_dir(), n_images=6, seed=0)
    # As tests/app/conftest.py does: AppTest re-derives Streamlit's pages/-folder mode before every
    # run and in it a click made between runs is lost; pin the st.navigation mode the server runs in.
    original_init = PagesManager.__init__

    def init_in_navigation_mode(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init_in_navigation_mode)
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=120)


@pytest.fixture
def stop_jobs_after():
    yield
    from ui.registry import job_registry

    for job in job_registry().jobs():  # never leave a thread training into the next test
        job.stop()
        job.join(60)


@pytest.fixture(scope="session")
def run_template(tmp_path_factory) -> Path:
    """A tiny trained run the Predict-page tests copy into their RUNS (trained once per session)."""
    from detcore.train.config import TrainConfig
    from detcore.train.trainer import train

    base = tmp_path_factory.mktemp("predict-run")
    data = write_tiny_voc(base / "tiny")
    assert train(TrainConfig(**{**TINY, "data": str(data), "epochs": 1, "max_iters_per_epoch": 1}),
                 base / "run") == "completed"
    return base / "run"


@pytest.fixture
def predict_page(app, run_template):
    """The Predict page on a copy of the tiny run."""
    from detcore import paths

    shutil.copytree(run_template, paths.runs_root() / "tiny")
    at = app.run()
    at.switch_page("pages/predict.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at
