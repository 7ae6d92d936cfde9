"""Predict page: drop images, the model runs once per image, the slider and class toggles only filter."""


def _predict_page(app):
    at = app.run()
    at.switch_page("pages/predict.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _boxes_shown(at) -> int:
    return int(next(m for m in at.metric if m.label == "Boxes shown").value)


def test_without_a_run_the_page_offers_to_train_the_demo_model(app):
    at = _predict_page(app)
    assert [t.value for t in at.title] == ["Predict"]
    assert any("No trained run" in i.value for i in at.info)
    assert not at.file_uploader

    # One click starts the demo preset in the background and opens the Train page on it.
    from ui.registry import job_registry

    try:
        next(b for b in at.button if b.label == "Train the demo model").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert [t.value for t in at.title] == ["Train"]
        job = job_registry().active()
        assert job is not None and str(job.run_dir) == at.session_state["run_dir"]
        assert job.config.preset == "demo-cpu"
    finally:
        for job in job_registry().jobs():
            job.stop()
            job.join(120)


def test_slider_filters_cached_detections_without_rerunning_the_model(app, trained_run, make_png):
    at = _predict_page(app)
    uploader = at.file_uploader(key="predict_uploads")
    uploader.set_value([("a.png", make_png(0), "image/png"), ("b.png", make_png(1), "image/png")]).run()
    assert not at.exception, [e.value for e in at.exception]
    cache = dict(at.session_state["predict_cache"])
    assert len(cache) == 2

    slider = at.slider(key="predict_threshold")
    assert slider.label == "Score threshold"
    slider.set_value(0.05).run()
    low = _boxes_shown(at)
    at.slider(key="predict_threshold").set_value(1.0).run()
    high = _boxes_shown(at)
    assert low > high == 0  # an untrained-ish model still scores many boxes above the 0.05 floor

    # Same cached objects after the slider moved: filtering never ran the model again.
    after = at.session_state["predict_cache"]
    assert after.keys() == cache.keys() and all(after[k] is cache[k] for k in cache)


def test_hiding_a_class_removes_its_boxes(app, trained_run, make_png):
    at = _predict_page(app)
    at.file_uploader(key="predict_uploads").set_value(("a.png", make_png(2), "image/png")).run()
    at.slider(key="predict_threshold").set_value(0.05).run()
    per_class = {m.label: int(m.value) for m in at.metric}
    classes = at.multiselect(key="predict_classes")
    busiest = max(classes.value, key=lambda c: per_class[c])
    assert per_class[busiest] > 0
    classes.unselect(busiest).run()
    assert _boxes_shown(at) == per_class["Boxes shown"] - per_class[busiest]


def test_a_file_that_is_not_an_image_is_reported_not_crashed(app, trained_run, make_png):
    at = _predict_page(app)
    at.file_uploader(key="predict_uploads").set_value(
        [("notes.png", b"this is not a png", "image/png"), ("ok.png", make_png(3), "image/png")]).run()
    assert not at.exception
    assert any("notes.png" in e.value for e in at.error)
    assert _boxes_shown(at) >= 0 and len(at.session_state["predict_cache"]) == 1
