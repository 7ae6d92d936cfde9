"""Secure by default (docs/deploy.md): the repository's config binds 127.0.0.1, so the README's
``streamlit run app.py`` answers on this machine and nowhere else; started on an address others can
reach with no password and no OIDC, every page shows a warning banner and the log says so once; a
dataset import is a line of the audit log."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from streamlit import config as st_config

from tests.app.test_data_page import _zip_folder

REPO = Path(__file__).resolve().parents[2]
PAGES = ["pages/data.py", "pages/train.py", "pages/evaluate.py", "pages/predict.py"]


@pytest.fixture
def bound_to(monkeypatch):
    """Run the app as if started with ``--server.address ADDRESS``."""
    import ui.exposure

    monkeypatch.setattr(ui.exposure, "_logged", set())
    original = st_config.get_option("server.address")

    def bind(address):
        st_config.set_option("server.address", address)

    yield bind
    st_config.set_option("server.address", original)


def _banner(at) -> bool:
    return any("Open to the network without sign-in" in w.value for w in at.warning)


def test_the_repository_config_binds_loopback():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert "streamlit run app.py" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("address", ["0.0.0.0", ""])
def test_every_page_warns_when_reachable_without_sign_in_and_the_log_says_so(app, bound_to, address, caplog,
                                                                            monkeypatch):
    monkeypatch.delenv("DETBOARD_PASSWORD", raising=False)
    bound_to(address)
    at = app.run()
    with caplog.at_level(logging.WARNING, logger="ui.exposure"):
        for page in PAGES:
            at.switch_page(page).run()
            assert not at.exception, [e.value for e in at.exception]
            assert _banner(at), page
    said = [r.getMessage() for r in caplog.records if "no password and no OIDC" in r.getMessage()]
    assert len(said) == 1 and (address or "every interface") in said[0]  # once per server, not per page


def test_no_banner_on_loopback_or_with_a_password(app, bound_to, monkeypatch):
    bound_to("127.0.0.1")
    assert not _banner(app.run())
    bound_to("0.0.0.0")
    monkeypatch.setenv("DETBOARD_PASSWORD", "a long passphrase")
    at = app.run()
    at.text_input(key="_detboard_password").input("a long passphrase")
    at.form_submit_button[0].click()
    at.run()
    assert [t.value for t in at.title] == ["Data"] and not _banner(at)


def test_a_dataset_import_is_in_the_audit_log(app, tmp_path):
    from detcore import paths
    from detcore.data.demo import generate_demo_dataset

    other = generate_demo_dataset(tmp_path / "elsewhere", n_images=3, seed=3)
    at = app.run()
    at.file_uploader(key="data_zip").set_value(("mydata.zip", _zip_folder(other), "application/zip")).run()
    assert not at.exception
    records = [json.loads(line) for line in (paths.runs_root() / "audit.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records] == ["dataset_imported"]
    assert records[0]["name"] == "mydata.zip" and records[0]["folder"] == at.session_state["dataset_path"]
    assert records[0]["session"] and records[0]["client"] == "local"


def _non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


@pytest.mark.slow  # a real server start
def test_the_readme_launch_answers_on_this_machine_only(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DETBOARD_DATA=str(tmp_path / "data"), DETBOARD_RUNS=str(tmp_path / "runs"))
    # The README's command, plus only what a test needs: no browser to open, a free port.
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://localhost:{port}/", timeout=5) as r:  # what a local browser opens
            assert r.status == 200
        other = _non_loopback_address()
        if other is not None:  # the machine's network address: nothing listens there
            with pytest.raises(OSError):
                socket.create_connection((other, port), timeout=3).close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
