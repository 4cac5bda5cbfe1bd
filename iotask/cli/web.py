"""`iotask serve` (the run-due URL and the console, under waitress) and `iotask user` (who may
sign in to the console)."""

from __future__ import annotations

import sys
from typing import Any

import click

from iotask import users
from iotask.cli.app import CONTEXT, App, json_option, pass_app
from iotask.cli.output import emit_json, emit_table
from iotask.errors import IotaskError

FORWARDED = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default answers this machine only (put a TLS "
                   "proxy in front for others).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, told with -v).")
@click.option("--base-path", default="", metavar="/PATH",
              help="Serve under this path behind a reverse proxy (e.g. /iotask).")
@click.option("--proxy", metavar="ADDR",
              help="The reverse proxy's address: its X-Forwarded-For, -Proto and -Host headers "
                   "are trusted (so the session cookie is Secure behind a TLS proxy). "
                   "Default with --base-path: 127.0.0.1; '*' trusts any.")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Requests served at once.")
@pass_app
def serve_command(app: App, host: str, port: int, base_path: str, proxy: str | None,
                  threads: int) -> None:
    """Serve the run-due URL and the web console with waitress, until stopped.

    POST /run-due runs every due task, as `iotask run-due` does, for a crontab `curl` line; it
    needs IOTASK_RUN_TOKEN (or run_token in the INI file). The console is at /; its users
    are managed with `iotask user`.
    """
    from waitress.server import create_server  # here: cron's run-due never pays for it

    from iotask import log, web

    prefix = web.base_path(base_path)
    log.setup(app.config, app.verbose)
    web.route_server_logs()
    trusted = proxy or ("127.0.0.1" if prefix else None)
    forwarded: dict[str, Any] = ({"trusted_proxy": trusted,
                                  "trusted_proxy_headers": FORWARDED} if trusted else {})
    flask_app = web.create_app(app.config)
    try:
        server = create_server(flask_app, host=host, port=port, threads=threads,
                               url_prefix=prefix, ident="iotask", **forwarded)
    except OSError as exc:
        raise IotaskError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    for address, bound in _addresses(server):
        shown = f"[{address}]" if ":" in address else address
        app.say(f"serving the console and the run-due URL on http://{shown}:{bound}{prefix}/")
    sys.stdout.flush()  # a pipe (a test, a service manager) sees it at once
    server.run()


def _addresses(server: Any) -> list[tuple[str, int]]:
    """Where waitress listens: one address, or several for a name such as localhost."""
    listening = getattr(server, "effective_listen", None)
    if listening:
        return [(str(entry[0]), int(entry[1])) for entry in listening]
    return [(str(server.effective_host), int(server.effective_port))]


@click.group("user", context_settings=CONTEXT)
def user_group() -> None:
    """Console users: admin (runs and changes tasks) or viewer (reads only)."""


def _password() -> str:
    """Asked twice at a terminal; else the first line of stdin (for scripts)."""
    if sys.stdin.isatty():
        return click.prompt("password", hide_input=True,
                            confirmation_prompt="repeat the password")
    line = sys.stdin.readline()
    if not line.strip():
        raise IotaskError("no password: type it at a terminal, or give it as the first line "
                          "of stdin")
    return line.rstrip("\r\n")


@user_group.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(users.ROLES),
              help="admin: may run and change tasks; viewer: sees everything, changes nothing.")
@pass_app
def user_add(app: App, name: str, role: str) -> None:
    """Add console user NAME; the password is asked twice (or read from stdin)."""
    with app.session(read_only=True) as session:
        users.check_new(session, name, role)
    password = _password()
    with app.session() as session:
        users.add(session, name, role, password)
    app.tell(f"added console user {name} ({role})")


@user_group.command("passwd")
@click.argument("name")
@pass_app
def user_passwd(app: App, name: str) -> None:
    """Set console user NAME's password; their open console sessions end."""
    with app.session(read_only=True) as session:
        users.get(session, name)
    password = _password()
    with app.session() as session:
        users.set_password(session, name, password)
    app.tell(f"changed the password of {name}")


@user_group.command("list")
@json_option
@pass_app
def user_list(app: App, as_json: bool) -> None:
    """Every console user and their role (never a password or its hash)."""
    with app.session(read_only=True) as session:
        data = [{"name": row.name, "role": row.role} for row in users.list_all(session)]
    if as_json:
        emit_json(data)
        return
    emit_table(["NAME", "ROLE"], [[d["name"], d["role"]] for d in data])


@user_group.command("remove")
@click.argument("name")
@pass_app
def user_remove(app: App, name: str) -> None:
    """Remove console user NAME; their open console sessions end."""
    with app.session() as session:
        users.remove(session, name)
    app.tell(f"removed console user {name}")
