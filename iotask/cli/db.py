"""`iotask db`: create, upgrade and inspect the iotask tables (wraps Alembic)."""

from __future__ import annotations

import click

from iotask import db
from iotask.cli.app import CONTEXT, App, json_option, pass_app
from iotask.cli.output import emit_json


@click.group("db", context_settings=CONTEXT)
def db_group() -> None:
    """Create or upgrade the iotask tables (wraps Alembic)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_app
def db_upgrade(app: App, revision: str) -> None:
    """Create or upgrade the iotask tables. Safe to run again."""
    db.upgrade(app.engine, revision)
    app.say(f"database {db.masked(app.engine.url)} is at revision "
            f"{db.current_revision(app.engine)}")


@db_group.command("current")
@json_option
@pass_app
def db_current(app: App, as_json: bool) -> None:
    """Show the database's schema revision and whether it is up to date (never creates a
    SQLite file that is not there: only `iotask db upgrade` does)."""
    exists = not db.missing_file(app.engine)
    current, head = db.current_revision(app.engine) if exists else None, db.head_revision()
    if as_json:
        emit_json({"database": db.masked(app.engine.url), "exists": exists, "current": current,
                   "head": head, "up_to_date": current == head})
        return
    state = "up to date" if current == head else f"needs `iotask db upgrade` to {head}"
    if not exists:
        state = "no such file: `iotask db upgrade` creates it"
    click.echo(f"{db.masked(app.engine.url)}: revision {current or 'none'} ({state})")
