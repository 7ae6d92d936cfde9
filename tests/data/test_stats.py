import numpy as np

from detcore.data import stats
from detcore.data.voc import load_voc_folder
from detcore.structures import ParsedDataset
from tests.data.builders import voc_object, write_voc


def _parsed(tmp_path):
    root = write_voc(tmp_path / "ds", {
        "a": [voc_object("cat", (0, 0, 10, 5)), voc_object("cat", (0, 0, 4, 4)), voc_object("dog", (10, 10, 40, 30))],
        "b": [voc_object("dog", (1, 1, 3, 9), difficult=1)],
        "c": [],
    }, size=(40, 30))
    (root / "classes.txt").write_text("cat\ndog\nbird\n")
    return load_voc_folder(root)


def test_class_counts_include_empty_classes(tmp_path):
    df = stats.class_counts(_parsed(tmp_path))
    assert df["class"].tolist() == ["cat", "dog", "bird"]
    assert df["objects"].tolist() == [2, 2, 0] and df["images"].tolist() == [1, 2, 0]
    assert np.isclose(df["share"].sum(), 1.0)


def test_objects_per_image(tmp_path):
    df = stats.objects_per_image(_parsed(tmp_path))
    assert df.set_index("image_id")["objects"].to_dict() == {"a": 3, "b": 1, "c": 0}
    assert df.set_index("image_id").loc["a", ["cat", "dog", "bird"]].tolist() == [2, 1, 0]


def test_box_table_geometry(tmp_path):
    df = stats.box_table(_parsed(tmp_path))
    assert len(df) == 4
    first = df.iloc[0]
    assert (first["width"], first["height"], first["area"], first["aspect"]) == (10, 5, 50, 2)
    assert np.isclose(first["relative_area"], 50 / 1200)
    assert df["difficult"].tolist() == [False, False, False, True]


def test_image_and_problem_tables(tmp_path):
    parsed = _parsed(tmp_path)
    images = stats.image_table(parsed)
    assert images[["width", "height"]].iloc[0].tolist() == [40, 30]
    problems = stats.problems_table(parsed)
    assert problems["kind"].tolist() == ["no_objects"] and problems["image_id"].tolist() == ["c"]
    assert stats.problem_counts(parsed) == {"no_objects": 1}


def test_empty_dataset_gives_empty_frames_with_columns(tmp_path):
    empty = ParsedDataset(format="voc", root=tmp_path, classes=["cat"], samples=[])
    assert stats.box_table(empty).empty and "aspect" in stats.box_table(empty).columns
    assert stats.class_counts(empty)["objects"].tolist() == [0]
    assert list(stats.problems_table(empty).columns) == ["kind", "file", "detail", "image_id"]
