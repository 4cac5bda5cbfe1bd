"""`iotask config`: which configuration file and which database a command would use, and why."""

from __future__ import annotations

from pathlib import Path

import click

from iotask import db
from iotask.cli.app import App, json_option, pass_app
from iotask.cli.output import emit_json
from iotask.config import config_files


@click.command("config")
@json_option
@pass_app
def config_command(app: App, as_json: bool) -> None:
    """The configuration in use: the INI file read (and the places looked in), the database and
    where its URL came from, its schema revision, the time zone, the log, the folders.

    Files are looked for in $IOTASK_CONFIG, else ./iotask.ini, ~/.config/iotask/iotask.ini and
    /etc/iotask/iotask.ini, the first found. Reads only: it never creates a database.
    """
    config = app.config
    data = {
        "config_file": config.config_file,
        "looked_in": [str(path.absolute()) for path in config_files()],
        "database": db.masked(config.database_url),
        "database_from": config.source,
        "revision": db.state(app.engine),
        "lms_database": db.masked(config.lms_database_url) if config.lms_database_url
        else "the iotask database",
        "timezone": config.timezone.key,
        "log": config.log,
        "log_level": config.log_level,
        "lease_seconds": config.lease_seconds,
        "file_roots": [str(root) for root in config.file_roots],
        "reject_dir": str(config.reject_dir),
        "current_folder": str(Path.cwd()),
    }
    if as_json:
        emit_json(data)
        return
    width = max(len(key) for key in data) + 1
    for key, value in data.items():
        shown = ", ".join(value) if isinstance(value, list) else (value or "none")
        click.echo(f"{key.replace('_', ' ') + ':':{width + 1}} {shown}")
