"""Add Task and Edit Task: the form's fields in one list, checked by the same code as
`iotask task add` / `task edit` (``iotask.tasks``), each error shown beside its field.

A task type selector (PeopleFluent's usersCsv, ...) is one more entry in ``FIELDS`` plus its
preset in ``changes_from``; the template draws whatever the list holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from iotask import connections, db, registry, tasks
from iotask.errors import IotaskError, MapError, NotFound
from iotask.models import Connection, Task
from iotask.names import check_name
from iotask.web.auth import admin_required
from iotask.web.pages import connection_view
from iotask.web.state import console

bp = Blueprint("forms", __name__)

Choices = Callable[[Session], list[tuple[str, str]]]


@dataclass(frozen=True)
class Field:
    key: str
    label: str
    kind: str = "text"  # text, textarea, select, checkbox, number
    help: str = ""
    choices: Choices | None = None
    adding_only: bool = False


def _connections(role: str) -> Choices:
    def choices(session: Session) -> list[tuple[str, str]]:
        found = []
        for row in connections.list_all(session):
            try:
                cls = registry.connector_class(session, row.type)
            except IotaskError:
                continue
            if cls.can_read if role == "source" else cls.can_write:
                found.append((row.name, f"{row.name} ({row.type})"))
        return found
    return choices


def _fixed(*pairs: tuple[str, str]) -> Choices:
    return lambda _session: list(pairs)


FIELDS = (
    Field("direction", "Import or Export", "select",
          "Which end is the file the URL below names: the source of an import, the "
          "destination of an export.",
          _fixed(("import", "Import: a file into a system"),
                 ("export", "Export: a system into a file"))),
    Field("name", "Title", help="The task's name, at most 50 characters.", adding_only=True),
    Field("description", "Description"),
    Field("source", "Source connection", "select", "Where rows are read from.",
          _connections("source")),
    Field("destination", "Destination connection", "select", "Where rows are written to.",
          _connections("destination")),
    Field("url", "URL", help="The file's location (a path, or a file:, ftp:, ftps:, sftp: or "
          "https: URL): it changes that connection, for every task using it; empty: left as it "
          "is. A password in it shows as ***."),
    Field("schedule_type", "Frequency", "select", "", _fixed(
        ("at", "daily at a time (HH:MM)"), ("any", "every N hours or days"),
        ("cron", "cron expression"))),
    Field("schedule", "Schedule", help="02:30 for daily; 6 hour or 1 day for every; "
                                       "0 2 * * 1-5 or @daily for cron."),
    Field("import_type", "Import type", "select",
          "sync also removes the records this task's source wrote and no longer has.",
          _fixed(("insert", "insert: add and update"), ("sync", "sync: also remove"))),
    Field("map", "Column map", "textarea",
          'JSON: [{"map": "userid", "pk": "1"}, ...] or {"columns": {...}, "key": [...]}; '
          "empty: columns by name."),
    Field("email", "E-mail", help="Told when the task starts and ends; several: commas."),
    Field("notify", "Notify", "select", "", _fixed(
        ("start,end", "start and end"), ("end", "end"), ("problems", "problems only"))),
    Field("expect", "Expect input", help="'daily by 06:00' or 'every 2 hours'; empty: none."),
    Field("max_errors", "Max rejected rows", help="A count or a percent (5%); empty: default."),
    Field("max_remove", "Max removals", help="A count or a percent (10%); empty: default."),
    Field("allow_empty", "An empty source may remove everything", "checkbox"),
    Field("sequence", "Sequence", "number", "Run order among due tasks, low first."),
    Field("enabled", "Enabled", "checkbox", "run-due runs it on its schedule."),
)
FILE_END = {"import": "source", "export": "destination"}
TEXT_CHANGES = ("description", "source", "destination", "import_type", "map", "email",
                "notify", "expect", "max_errors", "max_remove")


def values_of(row: Task | None) -> dict[str, Any]:
    """The form's values for a task (or a new one's defaults)."""
    if row is None:
        return {"direction": "import", "url": "", "name": "", "schedule_type": "any",
                "schedule": "1 day",
                "import_type": "insert", "notify": "start,end", "sequence": "0",
                "enabled": True, "allow_empty": False}
    return {"name": row.name, "description": row.description, "source": row.conn_source,
            "destination": row.conn_destination, "schedule_type": row.schedule_type,
            "schedule": row.schedule, "import_type": tasks.IMPORT_TYPES.get(
                row.import_type.strip().lower(), row.import_type),
            "map": row.map or "", "email": row.notify_email or "",
            "notify": row.notify or "start,end", "expect": row.expect or "",
            "max_errors": row.max_errors or "", "max_remove": row.max_remove or "",
            "allow_empty": bool(row.allow_empty), "sequence": str(row.sequence),
            "enabled": bool(row.enabled), "direction": "import", "url": ""}


def shown_url(session: Session, name: str) -> str | None:
    """The ``url`` setting of connection ``name`` as the console may show it (a password in it
    masked); None when the connection has no such setting."""
    row = session.get(Connection, name) if name else None
    if row is None:
        return None
    value = connections.describe(session, row)["params"].get("url")
    return value if isinstance(value, str) else None


def file_end(session: Session, row: Task, values: dict[str, Any]) -> None:
    """Fill the form's direction and URL from the task's connections: an export when only its
    destination has a URL."""
    source, destination = shown_url(session, row.conn_source), shown_url(
        session, row.conn_destination)
    values["direction"] = "export" if destination is not None and source is None else "import"
    values["url"] = (destination if values["direction"] == "export" else source) or ""


def _apply_url(session: Session, values: dict[str, Any], roots: Any) -> str | None:
    """Set the file end's connection's URL from the form; the error for the URL field, if any.
    A URL left as shown (a masked password included) changes nothing."""
    url = values["url"]
    name = values[FILE_END.get(values["direction"], "source")]
    if not url or not name:
        return None
    current = shown_url(session, name)
    if url == current:
        return None
    try:
        cls = registry.connector_class(session, connections.get(session, name).type)
        if not any(setting.name == "url" for setting in cls.settings):
            return (f"connection {name!r} ({cls.type_name}) has no URL: choose a file "
                    "connection for that end, or leave URL empty")
        connections.edit(session, name, assignments=[("url", url)], file_roots=roots)
    except IotaskError as exc:
        return str(exc)
    return None


def submitted() -> dict[str, Any]:
    form = request.form
    values: dict[str, Any] = {field.key: form.get(field.key, "").strip()
                              for field in FIELDS if field.kind != "checkbox"}
    values["map"] = form.get("map", "")
    values["direction"] = values["direction"] or "import"
    for field in FIELDS:
        if field.kind == "checkbox":
            values[field.key] = form.get(field.key) == "on"
    return values


def changes_from(values: dict[str, Any]) -> tuple[tasks.TaskChanges, dict[str, str]]:
    """The form's values as ``task add/edit`` changes, and the errors of the fields that are
    wrong on their own (each checked by ``tasks.apply_fields``, as the CLI's options are)."""
    errors: dict[str, str] = {}
    sequence: int | None = None
    try:
        sequence = int(values["sequence"] or "0")
    except ValueError:
        errors["sequence"] = f"sequence must be a whole number, got {values['sequence']!r}"
    changes = tasks.TaskChanges(
        **{key: values[key] for key in TEXT_CHANGES},
        schedule_type=values["schedule_type"], schedule=values["schedule"],
        sequence=sequence, allow_empty=values["allow_empty"], enabled=values["enabled"])
    for key, alone in (
            ("schedule", tasks.TaskChanges(schedule_type=changes.schedule_type,
                                           schedule=changes.schedule)),
            ("import_type", tasks.TaskChanges(import_type=changes.import_type)),
            ("map", tasks.TaskChanges(map=changes.map)),
            ("sequence", tasks.TaskChanges(sequence=sequence)),
            ("email", tasks.TaskChanges(email=changes.email)),
            ("expect", tasks.TaskChanges(expect=changes.expect)),
            ("max_errors", tasks.TaskChanges(max_errors=changes.max_errors)),
            ("max_remove", tasks.TaskChanges(max_remove=changes.max_remove))):
        if key in errors:
            continue
        try:
            tasks.apply_fields(Task(name="form", import_type="insert"), alone)
        except IotaskError as exc:
            errors[key] = str(exc)
    for key in ("source", "destination"):
        if not values[key]:
            errors[key] = f"choose a {key} connection"
    if values["direction"] not in FILE_END:
        errors["direction"] = "choose Import or Export"
    return changes, errors


def _place(exc: IotaskError, changes: tasks.TaskChanges) -> str:
    """Which field an error of the whole task belongs beside."""
    message = str(exc)
    if isinstance(exc, MapError):
        return "map"
    for key in ("source", "destination"):
        if repr(getattr(changes, key)) in message:
            return key
    return "form"


def _render(row: Task | None, values: dict[str, Any], errors: dict[str, str], status: int = 200
            ) -> Any:
    with Session(db.reader(console().engine)) as session:
        choices = {field.key: field.choices(session) for field in FIELDS if field.choices}
        settings = [connection_view(session, row.name)
                    for row in connections.list_all(session)]
    page = render_template("task_form.html", fields=FIELDS, adding=row is None, values=values,
                           errors=errors, choices=choices, task=row, connections=settings)
    return page, status


class _UrlRefused(Exception):
    """The URL field's value was refused; nothing of the form is saved."""


def _save(name: str, adding: bool, values: dict[str, Any]) -> Any:
    state = console()
    changes, errors = changes_from(values)
    if adding:
        try:
            check_name(name, "task")
        except IotaskError as exc:
            errors["name"] = str(exc)
    if not errors:
        try:
            with Session(state.engine) as session, session.begin():
                problem = _apply_url(session, values, state.config.file_roots)
                if problem is not None:
                    raise _UrlRefused(problem)  # rolls the transaction back
                if adding:
                    tasks.add(session, name, changes, state.config.file_roots)
                else:
                    tasks.edit(session, name, changes, state.config.file_roots)
        except _UrlRefused as exc:
            errors["url"] = str(exc)
        except NotFound as exc:
            if not adding:
                abort(404, str(exc))
            errors[_place(exc, changes)] = str(exc)
        except IotaskError as exc:
            place = _place(exc, changes)
            errors["name" if adding and "already exists" in str(exc) else place] = str(exc)
    if errors:
        return _render(None if adding else Task(name=name), values, errors, 400)
    return redirect(url_for("pages.task_page", name=name))


@bp.route("/task/new", methods=["GET", "POST"])
@admin_required
def add_task() -> Any:
    if request.method == "GET":
        return _render(None, values_of(None), {})
    values = submitted()
    return _save(values["name"], True, values)


@bp.route("/task/edit", methods=["GET", "POST"])
@admin_required
def edit_task() -> Any:
    name = request.args.get("name", "")
    with Session(db.reader(console().engine)) as session:
        row = session.get(Task, name)
    if row is None:
        abort(404, f"no task named {name!r}")
    if request.method == "GET":
        values = values_of(row)
        with Session(db.reader(console().engine)) as session:
            file_end(session, row, values)
        return _render(row, values, {})
    values = submitted()
    values["name"] = name
    return _save(name, False, values)
