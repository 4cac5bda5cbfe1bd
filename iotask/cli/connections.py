"""`iotask connection`: configured endpoints, a connector type plus its settings."""

from __future__ import annotations

import json

import click

from iotask import connections
from iotask.cli.app import CONTEXT, App, json_option, pass_app
from iotask.cli.output import emit_json, emit_table


@click.group("connection", context_settings=CONTEXT)
def connection_group() -> None:
    """Configured endpoints: a connector type plus its settings."""


set_option = click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE",
    help="A setting (repeatable). See `iotask connector show TYPE` for the keys.")
params_json_option = click.option(
    "--params-json", metavar="JSON", help="All settings as one JSON object (replaces them).")


@connection_group.command("add")
@click.argument("name")
@click.option("--type", "type_name", required=True, help="Connector type, e.g. csv or sql.")
@click.option("--description", default="", help="Free text.")
@set_option
@params_json_option
@pass_app
def connection_add(app: App, name: str, type_name: str, description: str,
                   assignments: tuple[str, ...], params_json: str | None) -> None:
    """Add connection NAME. Example:

    iotask connection add hr-users --type csv --set url=/srv/hr/users.csv --set delimiter=;
    """
    with app.session() as session:
        connections.add(session, name, type_name, description,
                        connections.parse_assignments(assignments), params_json,
                        app.config.file_roots)
    app.say(f"added connection {name}")


@connection_group.command("edit")
@click.argument("name")
@click.option("--type", "type_name", help="Change the connector type.")
@click.option("--description", help="Free text.")
@set_option
@click.option("--unset", multiple=True, metavar="KEY", help="Remove a setting (repeatable).")
@params_json_option
@pass_app
def connection_edit(app: App, name: str, type_name: str | None, description: str | None,
                    assignments: tuple[str, ...], unset: tuple[str, ...],
                    params_json: str | None) -> None:
    """Change connection NAME's type, description or settings."""
    with app.session() as session:
        connections.edit(session, name, description, type_name,
                         connections.parse_assignments(assignments), unset, params_json,
                         app.config.file_roots)
    app.say(f"changed connection {name}")


@connection_group.command("remove")
@click.argument("name")
@pass_app
def connection_remove(app: App, name: str) -> None:
    """Remove connection NAME (refused while a task uses it)."""
    with app.session() as session:
        connections.remove(session, name)
    app.say(f"removed connection {name}")


@connection_group.command("list")
@json_option
@pass_app
def connection_list(app: App, as_json: bool) -> None:
    """Every connection, with the tasks that use it. Secrets are masked."""
    with app.session(read_only=True) as session:
        data = [connections.describe(session, row) for row in connections.list_all(session)]
    if as_json:
        emit_json(data)
        return
    emit_table(["NAME", "TYPE", "DESCRIPTION", "USED BY"],
               [[d["name"], d["type"], d["description"], ", ".join(d["used_by"])] for d in data])


@connection_group.command("show")
@click.argument("name")
@json_option
@pass_app
def connection_show(app: App, name: str, as_json: bool) -> None:
    """One connection and its settings. Secrets are masked."""
    with app.session(read_only=True) as session:
        data = connections.describe(session, connections.get(session, name))
    if as_json:
        emit_json(data)
        return
    click.echo(f"name:        {data['name']}")
    click.echo(f"type:        {data['type']}")
    click.echo(f"description: {data['description']}")
    click.echo(f"used by:     {', '.join(data['used_by'])}")
    for key, value in data["params"].items():
        click.echo(f"  {key} = {json.dumps(value, ensure_ascii=False)}")
