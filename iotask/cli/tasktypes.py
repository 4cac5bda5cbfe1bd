"""`iotask task types` and `iotask task add NAME --type TYPE --url URL`: a task of one of
PeopleFluent's task types in one step (its connections and map made for it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from iotask.cli.app import CONTEXT, App, json_option
from iotask.errors import IotaskError

if TYPE_CHECKING:
    from iotask import tasks


def type_options(func):
    """The options `task add` takes for a typed task."""
    options = [
        click.option("--type", "task_type", metavar="TYPE",
                     help="A task type (see `iotask task types`): makes the connections "
                          "NAME-file and NAME-lms and the map; instead of --source and "
                          "--destination."),
        click.option("--url", metavar="URL",
                     help="With --type: the file to import (a path, a folder ending in /, an "
                          "ftp:, sftp: or https: URL), or where an export writes."),
        click.option("--lms", "lms_url", metavar="URL",
                     help="With --type: the LMS database (SQLAlchemy URL). Default: "
                          "lms_database_url in the configuration ($IOTASK_LMS_DATABASE_URL), "
                          "else the iotask database."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def add_typed(app: App, name: str, task_type: str | None, url: str | None,
              lms_url: str | None, changes: tasks.TaskChanges, now: bool) -> None:
    """`task add NAME --type TYPE --url URL`: the type and its options checked before the
    database is opened, then the connections and the task in one transaction."""
    from iotask import tasktypes

    if task_type is None:
        raise IotaskError("--url and --lms go with --type TYPE (see `iotask task types`); a "
                          "task of your own connections takes --source and --destination")
    kind = tasktypes.find(task_type)
    checked_url = tasktypes.check_options(kind, url, changes)
    lms = lms_url or app.config.lms_database_url
    with app.session() as session:
        tasktypes.add(session, name, kind.name, checked_url, lms, changes,
                      app.config.file_roots, now=now)
    file_name, lms_name = tasktypes.connection_names(name)
    app.say(f"added task {name} ({kind.name}) with connections {file_name} and {lms_name}")


@click.command("types", context_settings=CONTEXT)
@click.argument("type_name", metavar="[TYPE]", required=False)
@json_option
def types_command(type_name: str | None, as_json: bool) -> None:
    """The task types `iotask task add NAME --type TYPE --url URL` makes in one step: which way
    each goes, its file's format and columns, the LMS connector and a sample file. With TYPE,
    that type in full, a line for each column.

    Example: iotask task add "HR users" --type usersCsv --url /srv/hr/users.csv --frequency daily
    """
    from iotask import tasktypes
    from iotask.cli.output import emit_json, emit_table

    if type_name is not None:
        data = tasktypes.describe(tasktypes.find(type_name))
        if as_json:
            emit_json(data)
            return
        _show(data)
        return
    every = tasktypes.describe_all()
    if as_json:
        emit_json(every)
        return
    available = [d for d in every if d["available"]]
    emit_table(["TYPE", "DIRECTION", "FORMAT", "SOURCE", "DESTINATION", "COLUMNS", "SAMPLE"],
               [[d["name"], d["direction"], d["format"], d["source"], d["destination"],
                 _columns(d["columns"]), d["sample"].rpartition("/")[2]] for d in available])
    click.echo(f"\nsample files: {tasktypes.examples_folder()}")
    click.echo("not available: " + ", ".join(d["name"] for d in every if not d["available"]))


def _columns(columns: list[dict]) -> str:
    """The required columns, then the optional ones in brackets."""
    required = ", ".join(c["name"] for c in columns if c["required"])
    optional = ", ".join(c["name"] for c in columns if not c["required"])
    return f"{required} [{optional}]" if optional else required


def _show(data: dict) -> None:
    click.echo(f"{data['name']}: {data['summary']}")
    for key in ("direction", "format", "source", "destination", "sample"):
        click.echo(f"{key + ':':13} {data[key]}")
    for key, name in (("file_connection", "NAME-file"), ("lms_connection", "NAME-lms")):
        settings = {k: v for k, v in data[key].items() if k != "type"}
        shown = "".join(f", {k}={v}" for k, v in settings.items())
        click.echo(f"{name + ':':13} {data[key]['type']}{shown}")
    if data["notes"]:
        click.echo(f"{'notes:':13} {data['notes']}")
    exporting = data["direction"] == "export"
    click.echo("columns written:" if exporting else "columns:")
    width = max(len(c["name"]) for c in data["columns"])
    for column in data["columns"]:
        need = "" if exporting else ("required  " if column["required"] else "optional  ")
        click.echo(f"  {column['name']:{width}}  {need}{column['help']}")
    url = "FILE" if data["direction"] == "import" else "OUTPUT"
    click.echo(f"example: iotask task add NAME --type {data['name']} --url {url} --frequency "
               "daily --email ADDR")
