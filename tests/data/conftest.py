import pytest

from detcore.data import voc


@pytest.fixture(autouse=True)
def _isolated_index(tmp_path, monkeypatch):
    """Each test gets its own on-disk VOC index and an empty in-process one."""
    monkeypatch.setenv("DETBOARD_CACHE", str(tmp_path / "cache"))
    voc._MEMORY_INDEX.clear()
    yield
    voc._MEMORY_INDEX.clear()
