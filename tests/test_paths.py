"""Dataset paths typed in the app stay inside the data roots (shared deployments)."""

import os

import pytest

from detcore import paths
from detcore.errors import DataError


def test_relative_path_resolves_under_data(tmp_path):
    (tmp_path / "data" / "masks").mkdir(parents=True)
    assert paths.confine_to_data_roots("masks") == (tmp_path / "data" / "masks").resolve()


@pytest.mark.parametrize("bad", ["../secret", "masks/../../etc", "/etc", "/etc/passwd", ""])
def test_escapes_are_refused_with_the_path_named(tmp_path, bad):
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError) as e:
        paths.confine_to_data_roots(bad)
    assert "outside the allowed data folders" in str(e.value) or "empty" in str(e.value)


def test_symlink_leading_out_is_refused(tmp_path):
    (tmp_path / "data").mkdir()
    os.symlink("/etc", tmp_path / "data" / "link")
    with pytest.raises(DataError, match="outside"):
        paths.confine_to_data_roots("link")


def test_absolute_path_inside_a_root_is_accepted(tmp_path):
    up = tmp_path / "data" / "uploads" / "x"
    up.mkdir(parents=True)
    assert paths.confine_to_data_roots(str(up)) == up.resolve()
