"""Managing connections: configured endpoints whose settings are validated before they are saved."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from shlex import quote
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from iotask import jsontext, registry
from iotask.connectors.base import Connector
from iotask.connectors.errors import SettingsError
from iotask.errors import IotaskError, NotFound
from iotask.models import Connection, Task
from iotask.names import check_lengths, check_name


def get(session: Session, name: str) -> Connection:
    row = session.get(Connection, name)
    if row is None:
        raise NotFound(f"no connection named {name!r}: see `iotask connection list`")
    return row


def stored_params(row: Connection) -> dict[str, Any]:
    """The settings as stored; a hand-edited params column that is not a JSON object is an error."""
    params = jsontext.loads(row.params or "{}", f"connection {row.name!r}: params column",
                            f": fix it with `iotask connection edit {quote(row.name)} "
                            "--params-json ...`")
    if not isinstance(params, dict):
        raise IotaskError(f"connection {row.name!r}: params column must hold a JSON object")
    return params


def parse_params_json(text: str) -> dict[str, Any]:
    params = jsontext.loads(text, "--params-json")
    if not isinstance(params, dict):
        raise IotaskError('--params-json must be a JSON object, e.g. {"url": "/srv/users.csv"}')
    return params


def parse_assignments(pairs: Iterable[str]) -> list[tuple[str, str]]:
    """``KEY=VALUE`` strings from --set, split at the first '='."""
    result = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise IotaskError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set delimiter=;")
        result.append((key.strip(), value))
    return result


def build_params(
    cls: type[Connector],
    base: dict[str, Any],
    assignments: Iterable[tuple[str, str]] = (),
    unset: Iterable[str] = (),
) -> dict[str, Any]:
    """Apply --set and --unset on top of ``base``, then validate against the connector's schema."""
    params = dict(base)
    try:
        for key in unset:
            cls.setting(key)
            params.pop(key, None)
        for key, text in assignments:
            params[key] = cls.setting(key).from_text(text)
        return cls.validate(params)
    except SettingsError as exc:
        raise IotaskError(str(exc)) from None


def check_location(cls: type[Connector], params: dict[str, Any],
                   file_roots: Sequence[Path] | None) -> None:
    """Refuse a URL no run could use (a file: path outside the base folders, an unknown
    scheme) when the connection is saved, not at 2 a.m."""
    if file_roots is None:
        return
    try:
        cls.check_location(params, list(file_roots))
    except SettingsError as exc:
        raise IotaskError(str(exc)) from None


def add(
    session: Session,
    name: str,
    type_name: str,
    description: str = "",
    assignments: Iterable[tuple[str, str]] = (),
    params_json: str | None = None,
    file_roots: Sequence[Path] | None = None,
) -> Connection:
    """Add a connection; ``file_roots`` (the configured ones) confine its file: URLs."""
    check_name(name, "connection")
    if session.get(Connection, name) is not None:
        raise IotaskError(f"connection {name!r} already exists: use `iotask connection edit`")
    cls = registry.connector_class(session, type_name)
    base = parse_params_json(params_json) if params_json is not None else {}
    params = build_params(cls, base, assignments)
    check_location(cls, params, file_roots)
    row = Connection(name=name, type=type_name, description=description or "",
                     params=json.dumps(params, ensure_ascii=False))
    check_lengths(row, f"connection {name!r}:")
    session.add(row)
    return row


def edit(
    session: Session,
    name: str,
    description: str | None = None,
    type_name: str | None = None,
    assignments: Iterable[tuple[str, str]] = (),
    unset: Iterable[str] = (),
    params_json: str | None = None,
    file_roots: Sequence[Path] | None = None,
) -> Connection:
    """Change a connection; with a new type, the settings are validated against the new schema."""
    row = get(session, name)
    new_type = type_name or row.type
    cls = registry.connector_class(session, new_type)
    base = parse_params_json(params_json) if params_json is not None else stored_params(row)
    params = build_params(cls, base, assignments, unset)
    check_location(cls, params, file_roots)
    if new_type != row.type:
        check_roles_still_fit(session, name, cls)
    row.type = new_type
    row.params = json.dumps(params, ensure_ascii=False)
    if description is not None:
        row.description = description
    check_lengths(row, f"connection {name!r}:")
    return row


def users(session: Session, name: str) -> list[str]:
    """Names of the tasks that read from or write to the connection."""
    return list(session.scalars(
        select(Task.name)
        .where(or_(Task.conn_source == name, Task.conn_destination == name))
        .order_by(Task.name)
    ))


def check_roles_still_fit(session: Session, name: str, cls: type[Connector]) -> None:
    for task in session.scalars(select(Task).where(
            or_(Task.conn_source == name, Task.conn_destination == name))):
        if task.conn_source == name and not cls.can_read:
            raise IotaskError(
                f"connector type {cls.type_name!r} cannot read, but task {task.name!r} uses "
                f"connection {name!r} as its source"
            )
        if task.conn_destination == name and not cls.can_write:
            raise IotaskError(
                f"connector type {cls.type_name!r} cannot write, but task {task.name!r} uses "
                f"connection {name!r} as its destination"
            )


def remove(session: Session, name: str) -> None:
    row = get(session, name)
    tasks = users(session, name)
    if tasks:
        listed = ", ".join(repr(t) for t in tasks)
        raise IotaskError(
            f"connection {name!r} is used by task(s) {listed}: remove or edit those tasks first"
        )
    session.delete(row)


def endpoint(session: Session, name: str, role: str) -> Connector:
    """The connector a task's source or destination connection configures, ready to use."""
    try:
        row = get(session, name)
    except NotFound:
        raise IotaskError(f"{role} connection {name!r} does not exist (deleted?): "
                          "edit the task or add the connection") from None
    cls = registry.connector_class(session, row.type)
    if not (cls.can_read if role == "source" else cls.can_write):
        raise IotaskError(f"{role} connection {name!r}: connector type {row.type!r} cannot "
                          f"{'read' if role == 'source' else 'write'}")
    try:
        return cls(stored_params(row))
    except ValueError as exc:
        raise IotaskError(f"{role} connection {name!r} has bad settings: {exc}") from None


def describe(session: Session, row: Connection) -> dict[str, Any]:
    """A connection as it may be shown: secrets masked."""
    try:
        cls: type[Connector] | None = registry.connector_class(session, row.type)
    except IotaskError:
        cls = None
    try:
        params = stored_params(row)
        shown = cls.shown(params) if cls else {key: "********" for key in params}
    except IotaskError as exc:
        shown = {"error": str(exc)}
    return {
        "name": row.name,
        "type": row.type,
        "description": row.description,
        "params": shown,
        "used_by": users(session, row.name),
    }


def list_all(session: Session) -> list[Connection]:
    return list(session.scalars(select(Connection).order_by(Connection.name)))
