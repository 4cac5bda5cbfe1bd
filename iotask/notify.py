"""E-mail about runs, as PeopleFluent sends it: to a task's addresses when a run starts and when
it ends (``notify``: start,end — the default —, end, or problems only).

A mail server that is down or refuses never fails the task: the problem comes back as a
warning, recorded with the run, and no attempt outlasts the configured SMTP timeout.
"""

from __future__ import annotations

import email.policy
import html
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote
from zoneinfo import ZoneInfo

from iotask import clock
from iotask.config import Config, Smtp
from iotask.connectors.masking import mask, remember
from iotask.errors import IotaskError
from iotask.models import Task
from iotask.run_status import RunStatus

if TYPE_CHECKING:
    from iotask.runner import TaskResult

MODES = ("start,end", "end", "problems")
PROBLEMS = (RunStatus.FAILED, RunStatus.HELD, RunStatus.PARTIAL, RunStatus.ABANDONED,
            RunStatus.MISSING_INPUT)
MAX_ROW_ERRORS = 20
MAX_ATTACHMENT = 2 * 1024 * 1024  # a larger reject file is named, not attached
SMTP_POLICY = email.policy.SMTP  # CRLF line ends: smtplib sends bytes as they are


class NotifyError(IotaskError):
    """The message could not be handed to the mail server; the message says why."""


def addresses(task: Task) -> list[str]:
    return [part.strip() for part in (task.notify_email or "").split(",") if part.strip()]


def wants(task: Task, event: str, status: str | None = None) -> bool:
    """Whether the task's addresses hear of this event ("start" or "end" with its status)."""
    mode = task.notify or "start,end"
    if not addresses(task):
        return False
    if event == "start":
        return mode == "start,end"
    return mode != "problems" or status in PROBLEMS


def send(smtp: Smtp, to: list[str], message: EmailMessage) -> str:
    """Hand ``message`` to the server; its answer (e.g. "250 OK"). Raises NotifyError."""
    password = smtp.password
    if password and password.startswith("env:"):
        variable = password[4:]
        password = os.environ.get(variable)
        if not password:
            raise NotifyError(f"the SMTP password is to come from {variable}, which is not set")
    remember(password)
    context = (None if smtp.security == "none" else  # the CA store is read only for TLS
               ssl.create_default_context(cafile=str(smtp.ca_bundle) if smtp.ca_bundle else None))
    where = f"{smtp.host}:{smtp.port}"
    message["From"] = message["From"] or smtp.sender
    try:
        server: smtplib.SMTP
        if smtp.security == "ssl":
            server = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout,
                                      context=context)
        else:
            server = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        with server:
            if smtp.security == "starttls":
                server.starttls(context=context)
            server.ehlo_or_helo_if_needed()
            if smtp.user:
                server.login(smtp.user, password or "")
            code, answer = server.mail(smtp.sender)
            if code >= 400:
                raise NotifyError(f"mail server {where} refused the sender {smtp.sender}: "
                                  f"{code} {answer.decode(errors='replace')}")
            for address in to:
                code, answer = server.rcpt(address)
                if code >= 400:
                    raise NotifyError(f"mail server {where} refused {address}: {code} "
                                      f"{answer.decode(errors='replace')}")
            code, answer = server.data(message.as_bytes(policy=SMTP_POLICY))
            if code >= 400:
                raise NotifyError(f"mail server {where} refused the message: {code} "
                                  f"{answer.decode(errors='replace')}")
            return f"{code} {answer.decode(errors='replace')}"
    except TimeoutError:
        raise NotifyError(f"mail server {where} did not answer within {smtp.timeout:g} s") from None
    except (OSError, smtplib.SMTPException) as exc:
        if "timed out" in str(exc):  # smtplib words a timeout in a reply as a disconnection
            raise NotifyError(f"mail server {where} did not answer within {smtp.timeout:g} s"
                              ) from None
        raise NotifyError(mask(f"mail server {where}: {exc}")) from None


def _message(to: list[str], subject: str, lines: list[str],
             link: str | None) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="iotask")
    text = "\n".join(lines + ([f"\n{link}"] if link else []))
    message.set_content(mask(text))
    rows = "".join(f"<p>{html.escape(mask(line))}</p>" for line in lines)
    anchor = f'<p><a href="{html.escape(link)}">{html.escape(link)}</a></p>' if link else ""
    message.add_alternative(f"<html><body>{rows}{anchor}</body></html>", subtype="html")
    return message


def _link(config: Config, task: str, run_id: int | None) -> str | None:
    if not config.base_url:
        return None
    return f"{config.base_url}/tasks/{quote(task, safe='')}" + (f"/runs/{run_id}"
                                                                if run_id else "")


def started(config: Config, task: Task, run_id: int, trigger: str) -> str | None:
    """Tell the task's addresses its run began; a warning when that failed, else None."""
    if config.smtp is None or not wants(task, "start"):
        return None
    tz: ZoneInfo = config.timezone
    lines = [f"Task {task.name} started (run {run_id}, {trigger}) at "
             f"{clock.show(clock.utcnow(), tz)}.",
             f"Source: {task.conn_source}; destination: {task.conn_destination}."]
    message = _message(addresses(task), f"iotask: {task.name} started (run {run_id})",
                       lines, _link(config, task.name, run_id))
    return _deliver(config.smtp, addresses(task), message, "start")


def ended(config: Config, task: Task, result: TaskResult) -> str | None:
    """Tell the task's addresses how its run ended; a warning when that failed, else None."""
    status = result.status
    if config.smtp is None or not wants(task, "end", status):
        return None
    counts = result.counts
    run_id = result.run_id
    duration = result.duration or 0.0
    lines = [f"Task {task.name}: {status} (run {run_id}) in {duration:.1f} s.",
             f"Read {counts.read}, inserted {counts.inserted}, updated {counts.updated}, "
             f"unchanged {counts.unchanged}, removed {counts.removed}, rejected {counts.failed}."]
    if result.error:
        lines.append(f"Error: {result.error}")
    for note in result.notes:
        lines.append(f"Note: {note}")
    row_errors = result.row_errors
    for error in row_errors[:MAX_ROW_ERRORS]:
        where = f"row {error.row_index}" if error.row_index is not None else "a row"
        lines.append(f"Rejected {where}: {error.message}")
    if counts.failed > MAX_ROW_ERRORS:
        lines.append(f"... and {counts.failed - MAX_ROW_ERRORS} more: `iotask history "
                     f"{task.name}`")
    message = _message(addresses(task), f"iotask: {task.name} {status} (run {run_id})",
                       lines, _link(config, task.name, run_id))
    reject = result.reject_file
    if reject and ";" not in reject:
        path = Path(reject)
        if path.is_file() and path.stat().st_size <= MAX_ATTACHMENT:
            message.add_attachment(path.read_bytes(), maintype="text", subtype="csv",
                                   filename=path.name)
    return _deliver(config.smtp, addresses(task), message, "end")


def _deliver(smtp: Smtp, to: list[str], message: EmailMessage, event: str) -> str | None:
    try:
        send(smtp, to, message)
    except NotifyError as exc:
        return f"the {event} e-mail to {', '.join(to)} was not sent: {exc}"
    return None


def test_message(config: Config, address: str) -> str:
    """Send a test message to ``address``; the server's answer. Raises NotifyError."""
    if config.smtp is None:
        raise NotifyError("no mail server is configured: set smtp_host in the INI file or "
                          "IOTASK_SMTP_HOST (and smtp_port, smtp_security, smtp_user, ...)")
    now = clock.show(clock.utcnow(), config.timezone)
    message = _message([address], "iotask: test message",
                       [f"This is a test message from iotask, sent at {now}."], config.base_url)
    return send(config.smtp, [address], message)
