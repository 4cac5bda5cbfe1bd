"""`iotask connector`: the kinds of endpoint, their settings, registering a new one."""

from __future__ import annotations

import json

import click

from iotask import registry
from iotask.cli.app import CONTEXT, App, json_option, pass_app
from iotask.cli.output import emit_json, emit_table


@click.group("connector", context_settings=CONTEXT)
def connector_group() -> None:
    """Kinds of endpoint: list them, show their settings, register a new one."""


@connector_group.command("list")
@json_option
@pass_app
def connector_list(app: App, as_json: bool) -> None:
    """Registered connectors: type, module, class and whether each reads and writes."""
    with app.session(read_only=True) as session:
        infos = registry.list_connectors(session)
    data = [{
        "type": info.type_name, "module": info.module, "class": info.class_name,
        "read": bool(info.cls and info.cls.can_read),
        "write": bool(info.cls and info.cls.can_write),
        "description": info.cls.description if info.cls else "",
        "error": info.error,
    } for info in infos]
    if as_json:
        emit_json(data)
        return
    emit_table(["TYPE", "MODULE", "CLASS", "READ", "WRITE", "DESCRIPTION"], [
        [d["type"], d["module"], d["class"], "yes" if d["read"] else "no",
         "yes" if d["write"] else "no", d["error"] or d["description"]] for d in data])


@connector_group.command("show")
@click.argument("type_name", metavar="TYPE")
@json_option
@pass_app
def connector_show(app: App, type_name: str, as_json: bool) -> None:
    """The settings a connector type takes (use them with `connection add --set KEY=VALUE`)."""
    with app.session(read_only=True) as session:
        cls = registry.connector_class(session, type_name)
    settings = [{"name": s.name, "kind": s.kind, "required": s.required, "default": s.default,
                 "secret": s.secret, "choices": list(s.choices), "help": s.help}
                for s in cls.settings]
    if as_json:
        emit_json({"type": cls.type_name, "read": cls.can_read, "write": cls.can_write,
                   "description": cls.description, "settings": settings})
        return
    click.echo(f"{cls.type_name}: {cls.description}")
    emit_table(["SETTING", "KIND", "REQUIRED", "DEFAULT", "HELP"], [
        [s["name"], s["kind"] + (" (secret)" if s["secret"] else ""),
         "yes" if s["required"] else "", "" if s["default"] is None else json.dumps(s["default"]),
         s["help"] + (f" [{', '.join(s['choices'])}]" if s["choices"] else "")]
        for s in settings])


@connector_group.command("register")
@click.argument("module")
@pass_app
def connector_register(app: App, module: str) -> None:
    """Register a connector MODULE (an importable dotted name) that sets CONNECTOR = its class."""
    with app.session() as session:
        row = registry.register(session, module)
    app.say(f"registered connector type {row.type} ({row.file}.{row.class_})")
