"""The hostile walk's dataset findings (issue "Close the holes a hostile walk found"): 3 (entity guard in
every encoding), 7 (zip directories, the uploads quota, extractions without a dataset), 8 (objects per
image), 12 (identical images under different names) and 13 (Pillow formats). Each test is named after
its finding and failed before the fix."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.reliability.tinydata import write_tiny_voc

# --- finding 3: the XML entity guard holds for every encoding --------------------------------------------


def _entity_bomb(encoding_name: str, levels: int = 6) -> str:
    """A VOC file whose class name expands to 2 * 10**levels characters (2,000,000 at 6 levels) from ~3 KB
    (UTF-16); its root element is within the first 4 KB, so format detection takes it for VOC."""
    entities = '<!ENTITY a0 "xx">' + "".join(f'<!ENTITY a{i} "' + f"&a{i - 1};" * 10 + '">' for i in range(1, levels + 1))
    return (f'<?xml version="1.0" encoding="{encoding_name}"?><!DOCTYPE annotation [{entities}]>'
            f"<!-- {'p' * 600} --><annotation><filename>x.png</filename><size><width>40</width><height>30"
            f"</height></size><object><name>&a{levels};</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax>"
            "<ymax>9</ymax></bndbox></object></annotation>")


# (codec used to write the bytes, encoding named in the declaration). "utf-16-be" / "utf-16-le" write no
# BOM: the walk's bypass was UTF-16BE without a BOM (the old pattern check decoded it as little-endian).
ENCODINGS = [("utf-8", "UTF-8"), ("utf-16", "UTF-16"), ("utf-16-be", "UTF-16BE"), ("utf-16-le", "UTF-16LE"),
             ("utf-16-be", "UTF-16"), ("latin-1", "ISO-8859-1"), ("ascii", "US-ASCII")]


@pytest.mark.parametrize("codec, declared", ENCODINGS)
def test_finding3_entity_declarations_are_refused_in_every_encoding(codec, declared):
    from detcore.data.voc import parse_voc_xml

    payload = _entity_bomb(declared).encode(codec)
    assert len(payload) < 5000
    record = parse_voc_xml(payload)
    assert record["ok"] is False, f"parsed: {[len(o[0]) for o in record['objects']]} character class name(s)"
    assert [p[0] for p in record["problems"]] == ["unsafe_xml"]
    assert record["objects"] == [] and record["filename"] is None


@pytest.mark.parametrize("codec", ["utf-32", "utf-32-be"])
def test_finding3_encodings_the_parser_cannot_read_expand_nothing(codec):
    """Expat reads no UTF-32: such a file is not parsed as XML at all, and the lenient fallback never
    expands an entity either."""
    from detcore.data.voc import parse_voc_xml

    record = parse_voc_xml(_entity_bomb("UTF-32").encode(codec))
    assert all(len(str(o[0])) < 100 for o in record["objects"]), "an entity was expanded"
    assert record["ok"] is False or record["problems"][0][0] in ("unsafe_xml", "malformed_xml")


@pytest.mark.parametrize("doctype", ['<!DOCTYPE annotation [<!ELEMENT annotation ANY>]>',
                                     '<!DOCTYPE annotation [<!ENTITY % p "x">]>'])
def test_finding3_any_internal_subset_is_refused(doctype):
    from detcore.data.voc import parse_voc_xml

    payload = f'<?xml version="1.0" encoding="UTF-16BE"?>{doctype}<annotation/>'.encode("utf-16-be")
    assert parse_voc_xml(payload)["problems"][0][0] == "unsafe_xml"


def test_finding3_plain_files_still_parse_in_every_encoding():
    """The control: the guard refuses declarations, not encodings or a bare DOCTYPE."""
    from detcore.data.voc import parse_voc_xml

    body = ("<!DOCTYPE annotation><annotation><filename>a.png</filename><size><width>40</width><height>30</height>"
            "</size><object><name>caf\u00e9</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>9</xmax><ymax>8</ymax>"
            "</bndbox></object></annotation>")
    for codec, declared in ENCODINGS:
        if codec == "ascii":
            continue  # é is not ASCII
        record = parse_voc_xml(f'<?xml version="1.0" encoding="{declared}"?>{body}'.encode(codec))
        assert record["ok"] and record["problems"] == [], (codec, record["problems"])
        assert record["filename"] == "a.png" and record["size"] == [40, 30]
        assert record["objects"] == [["caf\u00e9", 1.0, 2.0, 9.0, 8.0, False, False]]
    # undefined entity: not well-formed, recovered by the lenient parser as before, nothing expanded
    record = parse_voc_xml(b"<annotation><filename>&nope;</filename><object><name>a</name><bndbox><xmin>1</xmin>"
                           b"<ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>")
    assert record["ok"] and record["problems"][0][0] == "malformed_xml"


def test_finding3_a_zip_of_entity_bombs_is_reported_file_by_file(tmp_path):
    """The walk's zip: 30 UTF-16BE bombs beside one honest annotation. Each bomb is a problem naming
    its file; the honest image loads; no class name was expanded."""
    from detcore.data.detect import import_uploaded_zip, load_dataset

    buf = io.BytesIO()
    png = io.BytesIO()
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(png, format="PNG")
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(30):
            zf.writestr(f"ds/annotations/bomb{i:02d}.xml", _entity_bomb("UTF-16BE").encode("utf-16-be"))
            zf.writestr(f"ds/images/bomb{i:02d}.png", png.getvalue())
        zf.writestr("ds/annotations/ok.xml", "<annotation><filename>ok.png</filename><size><width>40</width>"
                    "<height>30</height></size><object><name>face</name><bndbox><xmin>1</xmin><ymin>1</ymin>"
                    "<xmax>20</xmax><ymax>20</ymax></bndbox></object></annotation>")
        zf.writestr("ds/images/ok.png", png.getvalue())
    assert len(buf.getvalue()) < 64 * 1024
    parsed = load_dataset(import_uploaded_zip(buf.getvalue(), "bombs.zip"), verify_images=True)
    assert parsed.classes == ["face"]
    assert [s.image_id for s in parsed.samples] == ["ok"]
    unsafe = sorted(Path(p.file).name for p in parsed.problems if p.kind == "unsafe_xml")
    assert unsafe == [f"bomb{i:02d}.xml" for i in range(30)]


# --- finding 13: Pillow opens only the formats we accept ----------------------------------------------------

# A minimal Encapsulated PostScript file: Pillow identifies it by content (and would hand it to
# Ghostscript to decode, when Ghostscript is installed) whatever the file is called.
EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 40 30\n%%EndComments\n"
       b"newpath 0 0 moveto 40 30 lineto stroke\nshowpage\n%%EOF\n")


def test_finding13_an_eps_renamed_png_is_not_an_image_anywhere(tmp_path):
    from detcore.data.detect import load_dataset
    from detcore.data.images import image_size, load_rgb
    from detcore.errors import DataError

    root = write_tiny_voc(tmp_path / "data" / "tiny", n=4)
    evil = root / "images" / "img001.png"
    evil.write_bytes(EPS)
    with Image.open(evil) as im:
        assert im.format == "EPS"  # the premise: Pillow alone takes it for a picture

    parsed = load_dataset(root, verify_images=True)
    assert "img001" not in [s.image_id for s in parsed.samples]
    [problem] = [p for p in parsed.problems if p.file == str(evil)]
    assert problem.kind == "not_an_image" and "PNG" in problem.detail
    for read in (lambda: load_rgb(evil), lambda: load_rgb(EPS, name="upload.png"), lambda: image_size(evil)):
        with pytest.raises(DataError, match="not an image in an accepted format"):
            read()


@pytest.mark.parametrize("payload, says", [(EPS, "accepted format"), ("bomb", "decompression bomb")],
                         ids=["eps", "bomb"])
def test_finding13_an_eps_mask_is_an_unreadable_annotation(tmp_path, payload, says):
    """Masks are opened like images: only accepted formats. (Found beside it: a decompression-bomb
    mask raised PIL's DecompressionBombError out of the Penn-Fudan reader.)"""
    from detcore.data.detect import load_dataset

    from tests.reliability.test_hostile_images import _png_bomb

    root = tmp_path / "data" / "PennFudan"
    for stem in ("FudanPed00001", "FudanPed00002"):
        (root / "PNGImages").mkdir(parents=True, exist_ok=True)
        (root / "PedMasks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(root / "PNGImages" / f"{stem}.png")
        mask = np.zeros((30, 40), np.uint8)
        mask[5:20, 5:20] = 1
        Image.fromarray(mask, mode="L").save(root / "PedMasks" / f"{stem}_mask.png")
    (root / "PedMasks" / "FudanPed00002_mask.png").write_bytes(_png_bomb(20_000, 20_000) if payload == "bomb"
                                                              else payload)
    parsed = load_dataset(root)
    assert [s.image_id for s in parsed.samples] == ["FudanPed00001"]
    [problem] = [p for p in parsed.problems if p.image_id == "FudanPed00002"]
    assert problem.kind == "unreadable_annotation" and says in problem.detail, problem


def test_finding13_every_pillow_open_in_detcore_names_the_formats():
    """Structural guard: detcore opens images only through detcore.data.images.open_file (formats
    limited); a bare Image.open anywhere else would bring back sniffing by content."""
    import detcore

    package = Path(detcore.__file__).parent
    bare = [f"{p.relative_to(package)}:{i}" for p in package.rglob("*.py")
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if "Image.open(" in line and p.name != "images.py"]
    assert bare == []


@pytest.mark.parametrize("fmt", ["JPEG", "MPO", "PNG", "BMP", "TIFF", "WEBP", "GIF"])
def test_finding13_the_accepted_formats_still_load(fmt):
    """The control: every format the readers list still decodes, including MPO (the multi-picture
    JPEG phone cameras write), which Pillow opens through its JPEG decoder."""
    from detcore.data.images import load_rgb

    buf = io.BytesIO()
    first = Image.new("RGB", (40, 30), (200, 0, 0))
    extra = {"save_all": True, "append_images": [Image.new("RGB", (40, 30), (0, 200, 0))]} if fmt == "MPO" else {}
    first.save(buf, format=fmt, **extra)
    image = load_rgb(buf.getvalue(), name=f"photo.{fmt.lower()}")
    assert image.shape == (30, 40, 3) and abs(int(image[15, 20, 0]) - 200) < 8


# --- finding 7: zip directory entries, the uploads quota, extractions without a dataset -----------------------


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def _dirs_zip(n_dirs: int, *, implied: bool = False) -> bytes:
    """n_dirs folders and one file: as directory entries ("d1/"), or implied by member paths ("d1/x")."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ds/annotations/a.xml", "<annotation/>")
        for i in range(n_dirs):
            if implied:
                zf.writestr(f"ds/d{i}/e/.keep", b"")
            else:
                zf.writestr(zipfile.ZipInfo(f"ds/d{i}/"), b"")
    return buf.getvalue()


def test_finding7_directory_entries_count_against_the_entry_limit(tmp_path):
    """The walk: a 4.4 MB zip of 50,000 directory entries made 50,000 folders — directories were not
    counted. Now every folder the archive would create counts, whether listed or implied by a path."""
    from detcore.data.detect import extract_zip_safely
    from detcore.errors import DataError

    (tmp_path / "upload").mkdir()
    # 61 records: refused from the central directory's record count; 41 records making 63 entries:
    # refused once the folders their paths imply are counted.
    for implied, n, expected in ((False, 60, "lists more than 50 files and folders; the limit is 50 entries"),
                                 (True, 20, "21 files and 42 folders, above the limit of 50 entries")):
        archive = tmp_path / f"dirs-{implied}.zip"
        archive.write_bytes(_dirs_zip(n, implied=implied))
        with pytest.raises(DataError, match=expected) as err:
            extract_zip_safely(archive, tmp_path / "upload" / "ds", max_files=50)
        assert err.value.file == str(archive)
        assert _tree(tmp_path / "upload") == set()


@pytest.mark.slow  # builds a 9 MB zip of 100,001 entries
def test_finding7_an_archive_of_folders_is_refused_before_zipfile_reads_its_directory(tmp_path):
    """With the default limit: 100,001 folder entries (a 9 MB upload; a 200 MB one lists 2.3 M) are
    refused from the central directory's record count, before ``zipfile`` builds an object per entry."""
    import tracemalloc

    from detcore.data.detect import DEFAULT_MAX_FILES, extract_zip_safely
    from detcore.errors import DataError

    archive = tmp_path / "folders.zip"
    archive.write_bytes(_dirs_zip(DEFAULT_MAX_FILES))
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as err:
            extract_zip_safely(archive, tmp_path / "upload" / "ds")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MiB allocated to refuse it"  # zipfile's own parse takes ~55 MiB
    assert "more than 100000 files and folders" in err.value.problem
    assert _tree(tmp_path / "upload") == set()


def _voc_zip(n_images: int, *, noise: bool = False) -> bytes:
    """A small VOC dataset as a zip; ``noise`` makes the images incompressible (~60 KB each)."""
    rng = np.random.default_rng(n_images)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(n_images):
            pixels = rng.integers(0, 255, (150, 140, 3), np.uint8) if noise else np.full((30, 40, 3), 90, np.uint8)
            png = io.BytesIO()
            Image.fromarray(pixels).save(png, format="PNG")
            zf.writestr(f"ds/images/i{i}.png", png.getvalue())
            zf.writestr(f"ds/annotations/i{i}.xml", f"<annotation><filename>i{i}.png</filename><object><name>a"
                        "</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>"
                        "</annotation>")
    return buf.getvalue()


def test_finding7_the_uploads_folder_has_a_quota(monkeypatch):
    """Distinct uploads are extracted side by side under DATA/uploads/; without a quota they fill the
    disk. DETBOARD_UPLOADS_MAX_MB bounds what the folder takes on disk (blocks, folders included)."""
    from detcore import paths
    from detcore.data.detect import import_uploaded_zip
    from detcore.errors import DataError

    monkeypatch.setenv("DETBOARD_UPLOADS_MAX_MB", "1")
    first = import_uploaded_zip(_voc_zip(3), "small.zip")
    assert (first / "images" / "i0.png").is_file()
    kept = _tree(paths.uploads_root())
    with pytest.raises(DataError, match="DETBOARD_UPLOADS_MAX_MB") as err:
        import_uploaded_zip(_voc_zip(20, noise=True), "big.zip")
    assert err.value.file == "big.zip"  # the name the user dropped, not a temp file on the server
    assert "1 MiB" in err.value.problem
    assert _tree(paths.uploads_root()) == kept  # nothing of it written, the first upload untouched
    monkeypatch.setenv("DETBOARD_UPLOADS_MAX_MB", "lots")
    with pytest.raises(DataError, match="DETBOARD_UPLOADS_MAX_MB"):
        import_uploaded_zip(_voc_zip(2), "other.zip")


def test_finding7_an_archive_without_a_dataset_is_not_kept(tmp_path):
    from detcore import paths
    from detcore.data.detect import import_uploaded_zip, load_dataset
    from detcore.errors import DataError

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes/readme.txt", "no dataset here")
        zf.writestr("notes/more/todo.txt", "nor here")
    with pytest.raises(DataError, match="no dataset in a known format") as err:
        import_uploaded_zip(buf.getvalue(), "notes.zip")
    assert err.value.file == "notes.zip"
    assert _tree(paths.uploads_root()) == set()
    # the CLI's way in (a .zip path given to inspect / train) keeps nothing either
    archive = tmp_path / "notes.zip"
    archive.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="no dataset in a known format"):
        load_dataset(archive)
    assert _tree(paths.data_root() / ".imported") == set()


def test_finding7_a_zip_without_a_dataset_dropped_on_the_data_page(app):
    from detcore import paths

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("holiday/photo.txt", "not a dataset")
    at = app.run()
    before = at.session_state["dataset_path"]
    at.file_uploader(key="data_zip").set_value(("holiday.zip", buf.getvalue(), "application/zip")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.value.startswith("holiday.zip:") and "no dataset" in e.value for e in at.error), \
        [e.value for e in at.error]
    assert at.session_state["dataset_path"] == before
    assert _tree(paths.uploads_root()) == set()


# --- finding 8: objects per image are capped; ground-truth masks are drawn into one canvas ----------------


def _voc_objects(n: int) -> str:
    obj = ("<object><name>a</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox>"
           "</object>")
    return ("<annotation><filename>crowd.png</filename><size><width>40</width><height>30</height></size>"
            + obj * n + "</annotation>")


def _crowded_datasets(base: Path, n: int) -> dict[str, Path]:
    """The same two images (one with ``n`` objects, one with 1) in VOC, COCO and YOLO layouts."""
    import json

    png = np.full((30, 40, 3), 90, np.uint8)
    out = {}
    voc = base / "voc"
    for sub in ("images", "annotations"):
        (voc / sub).mkdir(parents=True)
    for stem, k in (("crowd", n), ("calm", 1)):
        Image.fromarray(png).save(voc / "images" / f"{stem}.png")
        (voc / "annotations" / f"{stem}.xml").write_text(_voc_objects(k).replace("crowd.png", f"{stem}.png"))
    out["voc"] = voc
    coco = base / "coco"
    (coco / "images").mkdir(parents=True)
    for stem in ("crowd", "calm"):
        Image.fromarray(png).save(coco / "images" / f"{stem}.png")
    anns = [{"id": i + 1, "image_id": 1 if i < n else 2, "category_id": 1, "bbox": [1, 1, 8, 8]} for i in range(n + 1)]
    (coco / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "crowd.png", "width": 40, "height": 30},
                   {"id": 2, "file_name": "calm.png", "width": 40, "height": 30}],
        "annotations": anns, "categories": [{"id": 1, "name": "a"}]}))
    out["coco"] = coco
    yolo = base / "yolo"
    for sub in ("images", "labels"):
        (yolo / sub).mkdir(parents=True)
    (yolo / "classes.txt").write_text("a\n")
    for stem, k in (("crowd", n), ("calm", 1)):
        Image.fromarray(png).save(yolo / "images" / f"{stem}.png")
        (yolo / "labels" / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.2\n" * k)
    out["yolo"] = yolo
    return out


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo"])
def test_finding8_an_image_above_the_object_cap_is_a_problem_not_a_sample(tmp_path, fmt):
    """The walk: 10^6 boxes on one image — inspect took 16 s / 934 MB and train asked torchvision for
    25.9 GB. Now an image with more objects than the documented cap is reported and not loaded."""
    from detcore.data.detect import load_dataset
    from detcore.data.quality import MAX_OBJECTS_PER_IMAGE

    assert MAX_OBJECTS_PER_IMAGE == 1000
    root = _crowded_datasets(tmp_path, MAX_OBJECTS_PER_IMAGE + 1)[fmt]
    parsed = load_dataset(root, verify_images=True)
    assert [s.image_id for s in parsed.samples] in (["calm"], ["2"])
    crowded = [p for p in parsed.problems if p.kind == "too_many_objects"]
    assert len(crowded) == 1 and crowded[0].image_id in ("crowd", "1")
    assert "1,000 objects per image" in crowded[0].detail
    assert all(p.kind in ("too_many_objects", "no_objects") for p in parsed.problems), parsed.problems
    # at the cap, the image still loads
    root = _crowded_datasets(tmp_path / "at-cap", MAX_OBJECTS_PER_IMAGE)[fmt]
    assert max(s.num_objects for s in load_dataset(root).samples) == MAX_OBJECTS_PER_IMAGE


def test_finding8_a_huge_voc_file_stops_parsing_at_the_cap(tmp_path):
    """200,000 objects in one XML (8.6 MB): the parser stops after the cap instead of building a tree of
    1.4 million elements."""
    import tracemalloc

    from detcore.data.voc import parse_voc_xml

    payload = _voc_objects(200_000).encode()
    tracemalloc.start()
    try:
        record = parse_voc_xml(payload)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert record["ok"] is False and record["problems"][0][0] == "too_many_objects"
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MiB to refuse it"


def _many_instances(tmp_path: Path, n: int, size=(400, 300)):
    """A Penn-Fudan sample and a COCO-polygon sample with ``n`` small instances on one image."""
    from detcore.structures import Sample

    w, h = size
    ids = np.zeros((h, w), np.uint8)
    polys, boxes = [], []
    for k in range(n):
        x, y = (k % 20) * 20, (k // 20) * 20
        ids[y + 2:y + 12, x + 2:x + 12] = k + 1
        polys.append([[x + 2, y + 2, x + 12, y + 2, x + 12, y + 12, x + 2, y + 12]])
        boxes.append([x + 2, y + 2, x + 12, y + 12])
    Image.fromarray(ids, mode="L").save(tmp_path / "mask.png")
    common = dict(image_path=tmp_path / "img.png", width=w, height=h, boxes=boxes, labels=[k % 2 for k in range(n)])
    return (Sample("pf", mask_path=tmp_path / "mask.png", mask_ids=list(range(1, n + 1)), **common),
            Sample("coco", segmentations=polys, **common))


@pytest.mark.parametrize("which", ["instance mask", "polygons"])
def test_finding8_ground_truth_masks_are_drawn_one_object_at_a_time(tmp_path, which):
    """Drawing allocated one full-size mask per object (71.5 GiB asked for 10^6 objects); now one canvas."""
    import tracemalloc

    from detcore import viz

    n = 240
    sample = _many_instances(tmp_path, n)[0 if which == "instance mask" else 1]
    image = np.full((300, 400, 3), 100, np.uint8)
    classes = ["odd", "even"]
    tracemalloc.start()
    try:
        out = viz.draw_ground_truth(image, sample, classes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_mask = 300 * 400
    assert peak < 40 * one_mask, f"{peak / one_mask:.0f} image-sized buffers for {n} masks"  # was > n
    colours = viz.class_colors(classes)
    for k in (20, 21, 139, 239):  # inside each instance, clear of outlines and captions: blended colour
        x, y = (k % 20) * 20 + 7, (k // 20) * 20 + 5
        expected = 100 * (1 - viz.MASK_ALPHA) + np.asarray(colours[classes[k % 2]]) * viz.MASK_ALPHA
        assert np.abs(out[y, x].astype(float) - expected).max() <= 1, (k, out[y, x], expected)
    assert tuple(out[299, 399]) == (100, 100, 100)  # outside every instance: untouched
