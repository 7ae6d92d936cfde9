"""AppTest fixtures: the real app.py (navigation, sidebar, pages) run in-process on a small demo set.

tests/conftest.py already points DETBOARD_DATA / DETBOARD_RUNS at per-test temp dirs; here we
generate a small demo dataset there first, so the app's first-launch path finds it ready instead of
generating the full 400-image one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def demo_dir() -> Path:
    from detcore import paths
    from detcore.data.demo import generate_demo_dataset

    return generate_demo_dataset(paths.demo_dataset_dir(), n_images=16, seed=0)


@pytest.fixture
def app(demo_dir, monkeypatch) -> AppTest:
    # The served app leaves Streamlit's old pages/-folder mode on its first run (ui.shell); AppTest
    # re-derives that mode before every run from the folder's existence, and in it a click made
    # between runs is lost. Pin the mode the server actually runs in: st.navigation over pages/.
    from streamlit.runtime.pages_manager import PagesManager

    original_init = PagesManager.__init__

    def init_in_navigation_mode(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init_in_navigation_mode)
    return AppTest.from_file(str(APP), default_timeout=120)


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.fixture(scope="session")
def trained_run_template(tmp_path_factory) -> Path:
    """One tiny run through the real trainer (SSDlite from scratch, a few iterations on 16 tiny demo
    images), made once per session; tests copy it. Predictions are poor — tests assert behaviour."""
    from detcore.data.demo import generate_demo_dataset
    from detcore.train.config import config_from_preset
    from detcore.train.trainer import train

    base = tmp_path_factory.mktemp("tiny-run")
    data = generate_demo_dataset(base / "data" / "demo", n_images=16, seed=1)
    config = config_from_preset("demo-cpu", data=str(data), epochs=1, batch_size=4, max_iters_per_epoch=2,
                                eval_every=1, warmup_iters=0)
    run_dir = base / "runs" / "tiny"
    assert train(config, run_dir) == "completed"
    return run_dir


@pytest.fixture
def trained_run(trained_run_template) -> Path:
    """A copy of the tiny run under this test's RUNS root, so the app lists it."""
    import shutil

    from detcore import paths

    return Path(shutil.copytree(trained_run_template, paths.runs_root() / "tiny"))


@pytest.fixture
def make_png():
    """Factory for small real PNGs a user could drop (demo-style pictures, not blank images)."""
    import io

    from detcore.data.demo import render_demo_image

    def make(index: int = 0, size: tuple[int, int] = (160, 120)) -> bytes:
        image, _ = render_demo_image(index, seed=7)
        buf = io.BytesIO()
        image.resize(size).save(buf, format="PNG")
        return buf.getvalue()

    return make


@pytest.fixture(scope="session")
def longer_run_template(trained_run_template, tmp_path_factory) -> Path:
    """The tiny run trained one epoch more (a resumed copy): a second model on the same split, for
    comparisons. Made once per session."""
    import shutil

    from detcore.train.trainer import train

    run_dir = Path(shutil.copytree(trained_run_template, tmp_path_factory.mktemp("tiny-longer") / "tiny-longer"))
    assert train(None, run_dir, resume=True, extra_epochs=1) == "completed"
    return run_dir


@pytest.fixture
def two_runs(trained_run, longer_run_template) -> tuple[Path, Path]:
    """The tiny run and its longer-trained copy, both under this test's RUNS root."""
    import shutil

    from detcore import paths

    return trained_run, Path(shutil.copytree(longer_run_template, paths.runs_root() / "tiny-longer"))
