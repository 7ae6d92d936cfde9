"""The shell every page shares: navigation, one title per page, the sidebar's dataset and run."""

import pytest

PAGES = {"pages/data.py": "Data", "pages/train.py": "Train", "pages/evaluate.py": "Evaluate",
         "pages/predict.py": "Predict"}


def test_first_launch_opens_data_page_on_demo_dataset(app, demo_dir):
    at = app.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Data"]
    assert at.session_state["dataset_path"] == str(demo_dir)
    assert any("demo" in m.value for m in at.sidebar.markdown)


@pytest.mark.parametrize("page,title", PAGES.items())
def test_every_page_has_exactly_one_title_and_no_exception(app, page, title):
    at = app.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [title]


def test_a_configured_password_gates_every_page(app, monkeypatch):
    monkeypatch.setenv("DETBOARD_PASSWORD", "s3cret")
    at = app.run()
    assert [t.value for t in at.title] == ["detboard"] and not at.metric
    at.switch_page("pages/predict.py").run()
    assert [t.value for t in at.title] == ["detboard"]
    at.text_input(key="_detboard_password").input("s3cret")
    at.button[0].click().run()
    assert [t.value for t in at.title] == ["Predict"]
