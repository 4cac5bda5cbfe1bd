"""E-mail about runs, against a real SMTP server (aiosmtpd on loopback): start and end messages,
notify=problems, STARTTLS with AUTH, a server that is down, `iotask notify test`."""

from __future__ import annotations

import email
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from zoneinfo import ZoneInfo

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import assert_user_error

from iotask import clock

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])  # the database is not the subject
ROME = ZoneInfo("Europe/Rome")  # the zone the iotask fixture configures


@dataclass
class Inbox:
    messages: list[Message] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(email.message_from_bytes(envelope.original_content))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def subjects(self) -> list[str]:
        return [message["Subject"] for message in self.messages]

    def text(self, index: int) -> str:
        message = self.messages[index]
        part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
        return part.get_payload(decode=True).decode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp(monkeypatch) -> Iterator[Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    monkeypatch.setenv("IOTASK_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("IOTASK_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("IOTASK_SMTP_FROM", "iotask@example.com")
    monkeypatch.setenv("IOTASK_BASE_URL", "https://lms.example.com/iotask/")
    yield inbox
    controller.stop()


@pytest.fixture
def feed(iotask, tmp_path):
    """Task "hr" copying a three-row CSV to another CSV, notifying two addresses."""
    source = tmp_path / "users.csv"
    source.write_text("userid,name\nu1,Ann\nu2,Bob\nu3,Cy\n", encoding="utf-8")
    iotask("connection", "add", "in", "--type", "csv", "--set", f"url={source}",
           "--set", "stable_seconds=0")
    iotask("connection", "add", "out", "--type", "csv", "--set", f"url={tmp_path / 'out.csv'}")
    iotask("task", "add", "HR users", "--source", "in", "--destination", "out",
           "--email", "hr@example.com, it@example.com")
    return source


@SQLITE_ONLY
def test_start_and_end_messages_reach_every_address(iotask, smtp, feed):
    ran = iotask("run", "HR users", "--json").json()["tasks"][0]
    assert not ran["notes"], ran["notes"]
    assert smtp.subjects() == ["iotask: HR users started (run 1)",
                               "iotask: HR users success (run 1)"]
    assert smtp.recipients == [["hr@example.com", "it@example.com"]] * 2
    end = smtp.text(1)
    assert "Read 3, inserted 3" in end and "success (run 1)" in end
    assert "https://lms.example.com/iotask/tasks/HR%20users/runs/1" in end
    assert smtp.messages[1].get_content_type() == "multipart/alternative"
    assert smtp.messages[1]["From"] == "iotask@example.com"


@SQLITE_ONLY
def test_problems_only_sends_nothing_for_a_success_and_one_message_for_a_failure(
        iotask, smtp, feed):
    iotask("task", "edit", "HR users", "--notify", "problems")
    iotask("run", "HR users")
    assert smtp.messages == []
    feed.write_text("userid,name\nu1,Ann,extra\n", encoding="utf-8")  # every row rejected
    iotask("run", "HR users", ok=False)
    assert smtp.subjects() == ["iotask: HR users failed (run 2)"]
    assert "Rejected row 2" in smtp.text(0)
    (attached,) = [part for part in smtp.messages[0].walk() if part.get_filename()]
    assert attached.get_filename() == "HR_users-run2-rejects.csv"
    assert b"u1,Ann,extra" in attached.get_payload(decode=True)


@SQLITE_ONLY
def test_starttls_with_auth(iotask, feed, tmp_path, monkeypatch):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    def authenticate(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"iotask", b"m4il-pw")
        return AuthResult(success=ok)

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(),
                            tls_context=server_context, require_starttls=True,
                            auth_required=True, authenticator=authenticate)
    controller.start()
    try:
        for name, value in (("HOST", "127.0.0.1"), ("PORT", str(controller.port)),
                            ("SECURITY", "starttls"), ("USER", "iotask"),
                            ("PASSWORD", "env:MAIL_PW"), ("CA_BUNDLE", str(ca_file))):
            monkeypatch.setenv(f"IOTASK_SMTP_{name}", value)
        monkeypatch.setenv("MAIL_PW", "m4il-pw")
        result = iotask("run", "HR users", "--json")
        assert inbox.subjects() == ["iotask: HR users started (run 1)",
                                    "iotask: HR users success (run 1)"]
        sent = iotask("notify", "test", "ops@example.com")
        assert "sent to ops@example.com" in sent.out and "250" in sent.out
        monkeypatch.setenv("MAIL_PW", "wrong")
        monkeypatch.setenv("IOTASK_SMTP_TIMEOUT", "2")
        refused = iotask("run", "HR users", "--json").json()["tasks"][0]
        assert refused["status"] == "success"  # the task's outcome stands
        assert any("was not sent" in note for note in refused["notes"])
        assert "m4il-pw" not in result.out + str(refused) and "wrong" not in str(refused)
    finally:
        controller.stop()


@SQLITE_ONLY
def test_a_mail_server_that_is_down_never_fails_the_task(iotask, feed, monkeypatch):
    monkeypatch.setenv("IOTASK_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("IOTASK_SMTP_PORT", str(_free_port()))  # nobody listens there
    monkeypatch.setenv("IOTASK_SMTP_TIMEOUT", "2")
    task = iotask("run", "HR users", "--json").json()["tasks"][0]
    assert task["status"] == "success" and task["counts"]["inserted"] == 3
    warnings = [note for note in task["notes"] if "was not sent" in note]
    assert len(warnings) == 2 and "hr@example.com" in warnings[0]
    (run,) = iotask("history", "HR users", "--json").json()
    assert run["status"] == "success" and len(run["notes"]) == 2


@SQLITE_ONLY
def test_a_silent_mail_server_costs_at_most_its_timeout(iotask, feed, monkeypatch):
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        monkeypatch.setenv("IOTASK_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("IOTASK_SMTP_PORT", str(silent.getsockname()[1]))
        monkeypatch.setenv("IOTASK_SMTP_TIMEOUT", "1")
        iotask("task", "edit", "HR users", "--notify", "end")
        task = iotask("run", "HR users", "--json").json()["tasks"][0]
    assert task["status"] == "success"
    assert any("did not answer within 1 s" in note for note in task["notes"]), task["notes"]


@SQLITE_ONLY
def test_notify_test_without_a_server_is_one_line(iotask, monkeypatch):
    monkeypatch.delenv("IOTASK_SMTP_HOST", raising=False)
    assert_user_error(iotask("notify", "test", "ops@example.com", ok=False),
                      "no mail server is configured")
    monkeypatch.setenv("IOTASK_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("IOTASK_SMTP_SECURITY", "carrier-pigeon")
    assert_user_error(iotask("notify", "test", "ops@example.com", ok=False),
                      "smtp_security 'carrier-pigeon'")


class FrozenClock:
    """iotask's clock (clock.utcnow) set by the test: naive UTC, moved by hand."""

    def __init__(self, monkeypatch, start: datetime) -> None:
        self.now = start
        monkeypatch.setattr(clock, "utcnow", lambda: self.now)

    def local(self, text: str) -> None:
        """Set the clock to a Europe/Rome wall-clock time."""
        self.now = (datetime.fromisoformat(text).replace(tzinfo=ROME)
                    .astimezone(UTC).replace(tzinfo=None))


@SQLITE_ONLY
def test_a_daily_feed_missing_by_its_deadline_alerts_once_then_takes_the_late_file(
        iotask, smtp, tmp_path, monkeypatch):
    frozen = FrozenClock(monkeypatch, datetime(2026, 11, 30, 12, 0))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    iotask("connection", "add", "drop", "--type", "csv", "--set", f"url={inbox}/",
           "--set", "stable_seconds=0")
    iotask("connection", "add", "out", "--type", "csv", "--set", f"url={tmp_path / 'out.csv'}")
    iotask("task", "add", "nightly", "--source", "drop", "--destination", "out",
           "--at", "02:00", "--expect", "daily by 06:00", "--email", "ops@example.com",
           "--notify", "problems")
    outcomes = []
    for wall in ("2026-12-01 02:01", "2026-12-01 05:59", "2026-12-01 06:01", "2026-12-01 06:02",
                 "2026-12-01 07:30"):
        frozen.local(wall)
        ran = iotask("run-due", "--json", ok=False).json()["tasks"]
        outcomes.append([t["status"] for t in ran if t["executed"]])
    assert outcomes == [["nothing_to_process"], ["nothing_to_process"], ["missing_input"],
                        ["nothing_to_process"], ["nothing_to_process"]]
    assert smtp.subjects() == ["iotask: nightly missing_input (run 3)"]
    assert "no input by 2026-12-01 06:00" in smtp.text(0)
    status = {t["name"]: t for t in iotask("status", "--json").json()}
    assert status["nightly"]["last_status"] == "missing_input"

    (inbox / "users.csv").write_text("userid,name\nu1,Ann\n", encoding="utf-8")
    frozen.local("2026-12-01 09:00")  # the late file, the same day
    ran = iotask("run-due", "--json").json()["tasks"]
    assert [t["status"] for t in ran if t["executed"]] == ["success"]
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines() == ["userid,name",
                                                                               "u1,Ann"]
    frozen.local("2026-12-01 10:00")
    assert not any(t["executed"] for t in iotask("run-due", "--json").json()["tasks"])
    assert len(smtp.messages) == 1  # notify=problems: the success sent nothing
    assert_user_error(iotask("task", "edit", "nightly", "--expect", "sometimes", ok=False),
                      "daily by HH:MM")
