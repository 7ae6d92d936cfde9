"""The shared-password gate's attempt limit and the audit log (ui/attempts.py, ui/audit.py): free
attempts, then a doubling wait per client address during which even the right password is refused
with a lockout message, a new session from the same address gets no fresh attempts, and every
sign-in (ok, failed, refused) is a line of RUNS/audit.jsonl — without the password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui.attempts import FREE_ATTEMPTS, LIMITER, AttemptLimiter

GATED_APP = Path(__file__).with_name("gated_app.py")
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The server's one limiter, emptied, on a clock the test moves (no sleeping, no races with load)."""
    now = [1000.0]
    LIMITER.clear()
    monkeypatch.setattr(LIMITER, "clock", lambda: now[0])
    yield now
    LIMITER.clear()


@pytest.fixture
def gate(monkeypatch):
    monkeypatch.setenv("DETBOARD_PASSWORD", PASSWORD)
    return lambda: AppTest.from_file(str(GATED_APP), default_timeout=30).run()


def _enter(at: AppTest, password: str) -> AppTest:
    at.text_input(key="_detboard_password").input(password)
    at.form_submit_button[0].click()
    return at.run()


def _inside(at: AppTest) -> bool:
    return [t.value for t in at.title] == ["Inside"]


def _audit() -> list[dict]:
    from ui.audit import audit_path

    return [json.loads(line) for line in audit_path().read_text().splitlines()]


def test_wrong_passwords_then_a_growing_wait_that_refuses_even_the_right_one(gate, clock):
    at = gate()
    for _ in range(FREE_ATTEMPTS):
        at = _enter(at, "wrong")
        assert [e.value for e in at.error] == ["Wrong password."]
    at = _enter(at, "wrong")
    assert "Too many wrong passwords" in at.error[0].value and "2 s" in at.error[0].value

    at = _enter(at, PASSWORD)  # during the wait the password is not even checked
    assert not _inside(at) and "Too many wrong passwords" in at.error[0].value
    other_tab = _enter(gate(), PASSWORD)  # a fresh session from the same address: same wait
    assert not _inside(other_tab) and "Too many wrong passwords" in other_tab.error[0].value

    clock[0] += 2.1
    at = _enter(at, "wrong again")
    assert "4 s" in at.error[0].value  # the wait doubles with each wrong password
    clock[0] += 3.0
    assert "Too many wrong passwords" in _enter(at, PASSWORD).error[0].value  # 1 s of the 4 s still to go
    clock[0] += 1.1
    at = _enter(at, PASSWORD)
    assert _inside(at) and not at.exception
    assert LIMITER.wait_s("local") == 0  # the right password clears the count

    events = [r["event"] for r in _audit()]
    assert events == ["sign_in_failed"] * (FREE_ATTEMPTS + 1) + ["sign_in_refused"] * 2 + ["sign_in_failed",
                                                                                          "sign_in_refused",
                                                                                          "sign_in_ok"]
    for record in _audit():
        assert record["session"] and record["client"] == "local" and record["time"] > 0
    from ui.audit import audit_path

    assert PASSWORD not in audit_path().read_text() and "wrong" not in audit_path().read_text()


def test_the_limiter_doubles_up_to_its_cap_per_client_and_forgets_old_failures():
    now = [1000.0]
    limiter = AttemptLimiter(free=2, base_delay_s=1.0, max_delay_s=8.0, clock=lambda: now[0])
    waits = [limiter.failed("10.0.0.1") for _ in range(7)]
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert limiter.wait_s("10.0.0.1") == 8.0 and limiter.wait_s("10.0.0.2") == 0.0  # per address
    now[0] += 5
    assert limiter.wait_s("10.0.0.1") == 3.0
    now[0] += 100  # long after the last failure: forgotten when the next failure is counted
    assert limiter.failed("10.0.0.2") == 0.0
    assert limiter.failed("10.0.0.1") == 0.0
    limiter.succeeded("10.0.0.1")
    assert limiter.wait_s("10.0.0.1") == 0.0
