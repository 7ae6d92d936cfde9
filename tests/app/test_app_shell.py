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


@pytest.mark.parametrize("page", PAGES)
def test_oidc_configured_gates_every_page_until_signed_in(app, page):
    """Hostile walk, finding 1 (critical): with [auth] configured every page rendered for anyone."""
    app.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                           "client_id": "detboard", "client_secret": "s",
                           "server_metadata_url": "https://idp.example/.well-known/openid-configuration"}
    at = app.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["detboard"] and not at.metric and not at.sidebar.markdown
    assert [b.label for b in at.button] == ["Sign in"]
    at.user = {"is_logged_in": True, "email": "ana@example.org"}
    at.run()
    assert [t.value for t in at.title] == [PAGES[page]]
    assert any("ana@example.org" in c.value for c in at.sidebar.caption)
