import json
import random

import numpy as np
import pytest

from detcore.data.splits import Split, load_split, make_split, save_split
from detcore.data.voc import load_voc_folder
from detcore.errors import ConfigError, DataError
from tests.data.builders import voc_object, write_voc

# The Face Mask file names, sorted the way the tutorial's sorted(os.listdir('images')) sorts them.
FACEMASK_IDS = [f"maksssksksss{i}" for i in sorted(range(853), key=lambda i: f"maksssksksss{i}.png")]


def test_random_reproduces_the_tutorials_seed_1234_split():
    split = make_split(FACEMASK_IDS, "random", test_fraction=0.2, seed=1234)
    random.seed(1234)
    idx = random.sample(range(853), 170)  # the tutorial's code, verbatim
    assert split.test == [FACEMASK_IDS[i] for i in idx]
    assert len(split.train) == 683 and not set(split.train) & set(split.test)
    assert split.params["n_test"] == 170


def test_last_n_is_the_tutorials_last_170_sorted_files():
    split = make_split(FACEMASK_IDS, "last_n", n=170)
    assert split.test == FACEMASK_IDS[-170:] and split.train == FACEMASK_IDS[:-170]


def test_reader_order_matches_sorted_file_names(tmp_path):
    stems = ["maksssksksss10", "maksssksksss1", "maksssksksss2"]
    parsed = load_voc_folder(write_voc(tmp_path / "ds", {s: [voc_object("x", (1, 1, 5, 5))] for s in stems}))
    assert [s.image_id for s in parsed.samples] == ["maksssksksss1", "maksssksksss10", "maksssksksss2"]


def test_holdout_and_validation_part_are_seeded_and_disjoint():
    ids = [f"i{k}" for k in range(100)]
    a = make_split(ids, "holdout", n=10, seed=3, val_fraction=0.25)
    b = make_split(ids, "holdout", n=10, seed=3, val_fraction=0.25)
    assert a == b and len(a.test) == 10 and len(a.val) == 22 and len(a.train) == 68
    assert set(a.train) | set(a.val) | set(a.test) == set(ids)
    assert make_split(ids, "holdout", n=10, seed=3).test == a.test  # adding validation keeps the test set
    assert make_split(ids, "holdout", n=10, seed=4).test != a.test


def test_imagesets_lists(tmp_path):
    main = tmp_path / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "trainval.txt").write_text("a\nb\nc\nd\nghost\n")
    (main / "test.txt").write_text("d\n")
    (main / "val.txt").write_text("c\n")
    split = make_split(["a", "b", "c", "d"], "imagesets", root=tmp_path)
    assert (split.train, split.val, split.test) == (["a", "b"], ["c"], ["d"])
    assert split.params["missing_ids"] == 1
    with pytest.raises(DataError, match="test.txt"):
        make_split(["a"], "imagesets", root=tmp_path / "nowhere")


@pytest.mark.parametrize("kwargs,match", [({"method": "bogus"}, "unknown method"), ({"test_fraction": 1.5}, "outside"),
                                          ({"method": "holdout"}, "needs a test count"), ({"n": 10}, "leaves no"),
                                          ({"method": "imagesets"}, "root")])
def test_bad_split_settings_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        make_split(["a", "b", "c"], **kwargs)


def test_save_and_load_round_trip(tmp_path):
    split = make_split([f"i{k}" for k in range(10)], "random", seed=1, val_fraction=0.2)
    path = save_split(split, tmp_path / "run" / "split.json")
    assert load_split(path) == split
    assert json.loads(path.read_text())["method"] == "random"
    assert [p.name for p in path.parent.iterdir()] == ["split.json"]  # no temp file left behind


def test_load_split_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_split(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"train": 3}')
    with pytest.raises(DataError, match="needs 'train' and 'test'"):
        load_split(tmp_path / "bad.json")


def test_split_part_lookup():
    s = Split(train=["a"], test=["b"])
    assert s.part("test") == ["b"] and s.part("val") == []
    with pytest.raises(ConfigError):
        s.part("dev")


def test_ids_must_be_unique():
    with pytest.raises(ConfigError, match="unique"):
        make_split(list(np.array(["a", "a", "b"])), "last_n", n=1)
