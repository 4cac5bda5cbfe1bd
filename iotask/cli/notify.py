"""`iotask notify test ADDR`: is the mail server set up right?"""

from __future__ import annotations

import click

from iotask import notify
from iotask.cli.app import CONTEXT, App, pass_app


@click.group("notify", context_settings=CONTEXT)
def notify_group() -> None:
    """E-mail to task addresses (--email, --notify) through the configured SMTP server."""


@notify_group.command("test")
@click.argument("address")
@pass_app
def notify_test(app: App, address: str) -> None:
    """Send a test message to ADDRESS and print the mail server's answer."""
    answer = notify.test_message(app.config, address)
    smtp = app.config.smtp
    assert smtp is not None  # test_message refuses without a server
    click.echo(f"sent to {address} through {smtp.host}:{smtp.port}: {answer}")
