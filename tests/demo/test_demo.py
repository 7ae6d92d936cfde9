"""The built-in demo dataset: layout, determinism, class mix, atomic and race-safe generation."""

import hashlib
import multiprocessing as mp
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detcore import paths
from detcore.data import demo
from detcore.errors import DataError


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            h.update(f.relative_to(folder).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def _objects(folder: Path) -> list[tuple[str, str, list[int], tuple[int, int]]]:
    out = []
    for xml in sorted((folder / "annotations").glob("*.xml")):
        root = ET.parse(xml).getroot()
        size = (int(root.findtext("size/width")), int(root.findtext("size/height")))
        for obj in root.iter("object"):
            box = [int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
            out.append((root.findtext("filename"), obj.findtext("name"), box, size))
    return out


def test_layout_matches_face_mask_voc_and_boxes_fit_images(tmp_path):
    out = demo.generate_demo_dataset(tmp_path / "d", n_images=12, seed=3)
    images = sorted(p.name for p in (out / "images").glob("*.png"))
    xmls = sorted(p.stem for p in (out / "annotations").glob("*.xml"))
    assert len(images) == 12 and [Path(i).stem for i in images] == xmls
    objs = _objects(out)
    assert objs, "12 images should hold some faces"
    for filename, name, (x0, y0, x1, y1), (w, h) in objs:
        assert filename in images and name in demo.DEMO_CLASSES
        with Image.open(out / "images" / filename) as im:
            assert im.size == (w, h) and im.mode == "RGB"
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h and x1 - x0 >= 30


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = demo.generate_demo_dataset(tmp_path / "a", n_images=5, seed=7)
    b = demo.generate_demo_dataset(tmp_path / "b", n_images=5, seed=7)
    c = demo.generate_demo_dataset(tmp_path / "c", n_images=5, seed=8)
    assert _digest(a) == _digest(b) != _digest(c)


def test_class_mix_is_imbalanced_like_the_real_set_with_negatives():
    per_class = dict.fromkeys(demo.DEMO_CLASSES, 0)
    negatives = 0
    for i in range(150):
        _, faces = demo.render_demo_image(i, seed=0)
        negatives += not faces
        for f in faces:
            per_class[demo.DEMO_CLASSES[f.cls]] += 1
    total = sum(per_class.values())
    share = {k: v / total for k, v in per_class.items()}
    assert 0.6 < share["with_mask"] < 0.85
    assert 0.1 < share["without_mask"] < 0.3
    assert 0.03 < share["mask_weared_incorrect"] < 0.14
    assert 3 <= negatives <= 30


def test_refuses_to_overwrite_a_folder_that_is_not_a_demo(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a demo"):
        demo.generate_demo_dataset(mine, n_images=2)
    assert (mine / "precious.txt").read_text() == "keep me"


def test_regenerating_replaces_a_previous_demo_and_leaves_no_temp_folders(tmp_path):
    out = demo.generate_demo_dataset(tmp_path / "d", n_images=4, seed=1)
    demo.generate_demo_dataset(out, n_images=2, seed=1)
    assert len(list((out / "images").iterdir())) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_ensure_generates_once_into_the_data_root():
    target = demo.ensure_demo_dataset(n_images=3)
    assert target == paths.demo_dataset_dir() and demo.is_complete_demo(target)
    stamp = (target / demo.MARKER).stat().st_mtime_ns
    assert demo.ensure_demo_dataset(n_images=3) == target
    assert (target / demo.MARKER).stat().st_mtime_ns == stamp  # not regenerated


def test_ensure_refuses_a_foreign_folder_at_the_demo_path():
    target = paths.demo_dataset_dir()
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not a complete demo"):
        demo.ensure_demo_dataset(n_images=2)


def _ensure_in_child(data_root: str, queue) -> None:
    import os

    os.environ["DETBOARD_DATA"] = data_root
    from detcore.data import demo as d

    queue.put(str(d.ensure_demo_dataset(n_images=6)))


def test_two_processes_racing_both_get_one_complete_demo(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_ensure_in_child, args=(str(tmp_path / "root"), q)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    results = {q.get(timeout=5), q.get(timeout=5)}
    target = tmp_path / "root" / "demo"
    assert results == {str(target)}
    assert len(list((target / "images").iterdir())) == 6 and demo.is_complete_demo(target)
    assert [p.name for p in (tmp_path / "root").iterdir()] == ["demo"]


def test_reader_loads_the_demo_with_its_classes(tmp_path):
    detect = pytest.importorskip("detcore.data.detect")
    out = demo.generate_demo_dataset(tmp_path / "d", n_images=8, seed=2)
    parsed = detect.load_dataset(out)
    assert parsed.num_images == 8
    assert set(parsed.classes) <= set(demo.DEMO_CLASSES)
    assert parsed.num_objects == len(_objects(out))
    assert not [p for p in parsed.problems if p.kind not in ("no_objects",)]
    assert np.all(np.concatenate([s.labels for s in parsed.samples]) < len(parsed.classes))
