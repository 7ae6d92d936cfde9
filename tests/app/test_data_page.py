"""Data page: the demo on first launch, a folder under DATA, a dropped .zip, problems and browser filters."""

import io
import zipfile
from pathlib import Path


def _metric(at, label):
    return next(m for m in at.metric if m.label == label).value


def _zip_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, Path("mydata") / path.relative_to(folder))
    return buf.getvalue()


def test_opens_on_demo_with_counts_and_charts(app, demo_dir):
    at = app.run()
    assert not at.exception
    assert _metric(at, "Format") == "VOC"
    assert _metric(at, "Images") == "16"
    assert at.session_state["dataset_path"] == str(demo_dir)
    assert len(at.get("plotly_chart")) >= 4  # class balance, objects/image, box sizes, aspect (+ image sizes)


def test_dropped_zip_becomes_the_current_dataset(app, tmp_path):
    from detcore import paths
    from detcore.data.demo import generate_demo_dataset

    other = generate_demo_dataset(tmp_path / "elsewhere", n_images=5, seed=3)
    at = app.run()
    at.file_uploader(key="data_zip").set_value(("mydata.zip", _zip_folder(other), "application/zip")).run()
    assert not at.exception, [e.value for e in at.exception]
    current = Path(at.session_state["dataset_path"])
    assert paths.uploads_root() in current.parents
    assert _metric(at, "Images") == "5"
    # The choice holds on another page and back.
    at.switch_page("pages/predict.py").run()
    at.switch_page("pages/data.py").run()
    assert _metric(at, "Images") == "5"


def test_a_broken_zip_is_an_error_message_not_a_crash(app):
    at = app.run()
    at.file_uploader(key="data_zip").set_value(("broken.zip", b"PK\x03\x04 not really", "application/zip")).run()
    assert not at.exception
    assert any("broken" in e.value and "zip" in e.value for e in at.error)
    assert _metric(at, "Images") == "16"  # still on the demo


def test_folder_outside_data_is_refused(app):
    at = app.run()
    at.text_input[0].input("/etc").run()
    next(b for b in at.button if b.label == "Open folder").click().run()
    assert not at.exception
    assert any("outside the allowed data folders" in e.value for e in at.error)


def test_folder_under_data_can_be_opened(app):
    from detcore import paths
    from detcore.data.demo import generate_demo_dataset

    generate_demo_dataset(paths.data_root() / "small", n_images=4, seed=5)
    at = app.run()
    at.selectbox[0].select("small").run()
    next(b for b in at.button if b.label == "Open folder").click().run()
    assert not at.exception
    assert _metric(at, "Images") == "4"


def test_problem_table_and_browser_filter(app, demo_dir):
    # One VOC box reaching outside its image: the reader clips it and reports box_clipped.
    xml = next((demo_dir / "annotations").glob("*.xml"))
    text = xml.read_text()
    xmax_start = text.index("<xmax>") + len("<xmax>")
    xml.write_text(text[:xmax_start] + "9999" + text[text.index("</xmax>"):])
    at = app.run()
    assert not at.exception
    kinds = next(m for m in at.multiselect if m.label == "Problem kinds")
    assert "box_clipped" in kinds.options
    kinds.set_value(["box_clipped"]).run()
    problems = at.dataframe[-1].value
    assert list(problems["kind"]) == ["box_clipped"] and xml.name in problems["file"].iloc[0]

    at.selectbox(key="data_browser_problem").select("box_clipped").run()
    assert any(m.value.startswith("1 images") for m in at.markdown)
    assert len(at.get("image")) == 1


def test_geometry_check_tab_compares_a_model_before_and_after_fitting(app, demo_dir):
    """The demo's faces are large for SSDlite: the check says so; a stride-32 model on 64-px input
    cannot match them, and the fitted geometry can. The plot and the table come with the verdict."""
    at = app.run()
    target = at.selectbox(key="data_geometry_target")
    assert target.value == "demo-cpu"  # the preset this dataset would train with
    assert any("SSDlite" in o or "ssdlite" in o for o in target.options)
    target.select("fasterrcnn_mobilenet_v2_custom").run()
    assert not at.exception, [e.value for e in at.exception]
    verdict = (at.success or at.warning)[0].value
    assert verdict.startswith("fasterrcnn_mobilenet_v2_custom at its default input can match")
    default = _metric(at, "Recall ceiling, default")
    fitted = _metric(at, "Recall ceiling, fitted")
    assert int(fitted.rstrip(" %")) >= int(default.rstrip(" %"))
    import json

    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    plot = next(s for s in specs if "anchor sizes" in json.dumps(s.get("layout", {}).get("title", "")))
    assert plot["layout"]["xaxis"]["type"] == "log" and plot["layout"]["yaxis"]["type"] == "log"
    assert any(t.get("name") == "anchors" for t in plot["data"])
    table = next(d.value for d in at.dataframe if "fitted recall" in d.value.columns)
    assert set(table["boxes"]) >= {"small", "medium", "large", "with_mask"}


def test_geometry_check_follows_the_dataset_and_keeps_a_choice_for_it(app, tmp_path):
    """The check opens on the preset the dataset would train with: demo-cpu for the demo, cpu-real for
    real photos dropped after it (not the demo's leftover choice); a model picked for a dataset stays."""
    from detcore.data.demo import generate_demo_dataset

    other = generate_demo_dataset(tmp_path / "photos", n_images=5, seed=3)
    (other / "demo.json").unlink()  # no longer the synthetic demo set: "real photos" to the app
    at = app.run()
    assert at.selectbox(key="data_geometry_target").value == "demo-cpu"
    at.selectbox(key="data_geometry_target").select("fasterrcnn_mobilenet_v2_custom").run()
    at.run()
    assert at.selectbox(key="data_geometry_target").value == "fasterrcnn_mobilenet_v2_custom"
    at.file_uploader(key="data_zip").set_value(("photos.zip", _zip_folder(other), "application/zip")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert _metric(at, "Images") == "5"
    assert at.selectbox(key="data_geometry_target").value == "cpu-real"
