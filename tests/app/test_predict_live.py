"""Predict page live inputs: a camera snapshot, a folder on the server a page at a time (confined to the
data root), the model's time per image, and the model's size in the header."""

from __future__ import annotations

import io

import pytest

from tests.app.conftest import no_exceptions


def _predict_page(app):
    at = app.run()
    at.switch_page("pages/predict.py").run()
    no_exceptions(at)
    return at


def _metric(at, label: str) -> str:  # the results' metrics ("Boxes shown", one per class)
    return next(m.value for m in at.metric if m.label == label)


def _jpeg(make_png, index: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(make_png(index))).convert("RGB").save(buf, format="JPEG")
    return buf.getvalue()


def _model_times(at) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("Model time")]


def test_header_shows_the_models_size(app, trained_run):
    from detcore.inference import Predictor
    from detcore.speed import parameter_count
    from detcore.train.runs import Run

    at = _predict_page(app)
    (header,) = [c.value for c in at.caption if c.value.startswith("Model:")]
    params = parameter_count(Predictor.from_run(trained_run, device="cpu").model)
    size = Run(trained_run).checkpoint("best").stat().st_size
    assert f"{params / 1e6:.2f} M parameters" in header and f"checkpoint {size / 2**20:.1f} MB" in header
    assert "speed not measured yet" in header
    Run(trained_run).save_benchmark({"p50_ms": 41.6, "p95_ms": 50.0, "images_per_s": 23.5, "device": "cpu (2 threads)"})
    at.run()
    (header,) = [c.value for c in at.caption if c.value.startswith("Model:")]
    assert "p50 42 ms / image, 23.50 images/s (measured on cpu (2 threads))" in header


def test_a_camera_snapshot_is_predicted_and_timed(app, trained_run, make_png):
    at = _predict_page(app)
    assert not at.camera_input  # the browser is asked for the camera only when the toggle is on
    at.toggle(key="predict_camera_on").set_value(True).run()
    at.camera_input(key="predict_camera").set_value(("shot.jpg", _jpeg(make_png, 4), "image/jpeg")).run()
    no_exceptions(at)
    (name,) = [s.value for s in at.subheader]
    assert name.startswith("camera-") and name.endswith(".jpg")
    (timing,) = _model_times(at)
    assert int(timing.split()[2]) > 0
    at.slider(key="predict_threshold").set_value(0.05).run()
    assert int(_metric(at, "Boxes shown")) > 0


def test_a_server_folder_is_predicted_a_page_at_a_time(app, trained_run, make_png):
    from detcore import paths

    folder = paths.data_root() / "shots"
    folder.mkdir(parents=True)
    for i in range(10):
        (folder / f"shot{i:02d}.png").write_bytes(make_png(i))
    (folder / "notes.txt").write_text("not an image")
    at = _predict_page(app)
    at.text_input(key="predict_folder").set_value("shots").run()
    at.selectbox(key="predict_folder_page_size").set_value(4).run()
    no_exceptions(at)
    assert [s.value for s in at.subheader] == [f"shot{i:02d}.png" for i in range(4)]
    assert len(_model_times(at)) == 4
    assert any("10 images" in c.value and "page 1 of 3" in c.value for c in at.caption)
    at.number_input(key="predict_folder_page").set_value(3).run()
    no_exceptions(at)
    assert [s.value for s in at.subheader] == ["shot08.png", "shot09.png"]
    assert len(at.session_state["predict_cache"]) == 2  # only the page shown stays cached


@pytest.mark.parametrize("typed", ["../outside", "/etc", "missing-folder"])
def test_a_folder_outside_the_data_root_or_missing_is_refused(app, trained_run, tmp_path, typed):
    (tmp_path / "outside").mkdir(exist_ok=True)
    at = _predict_page(app)
    at.text_input(key="predict_folder").set_value(typed).run()
    no_exceptions(at)
    assert any(typed in e.value for e in at.error)
    assert not at.subheader


def test_a_link_inside_the_folder_that_leads_out_is_left_out(app, trained_run, make_png, tmp_path):
    from detcore import paths

    secret = tmp_path / "private.png"
    secret.write_bytes(make_png(1))
    folder = paths.data_root() / "shots"
    folder.mkdir(parents=True)
    (folder / "ok.png").write_bytes(make_png(0))
    (folder / "leak.png").symlink_to(secret)
    at = _predict_page(app)
    at.text_input(key="predict_folder").set_value("shots").run()
    no_exceptions(at)
    assert [s.value for s in at.subheader] == ["ok.png"]
    assert any("1 file(s)" in w.value and "outside the data root" in w.value for w in at.warning)
