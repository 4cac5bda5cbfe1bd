"""Managing tasks: source connection to destination connection, on a schedule."""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from shlex import quote
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, func, insert, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from iotask import clock, connections, db, jsontext, mapping, registry, schedule
from iotask.claims import runner_name
from iotask.connectors.context import Column, MemoryContext
from iotask.connectors.errors import ConnectorError
from iotask.errors import IotaskError, NotFound
from iotask.guards import DEFAULT_MAX_ERRORS, DEFAULT_MAX_REMOVE, Guards, Limit
from iotask.models import Task, TaskRun
from iotask.names import check_lengths, check_name
from iotask.run_status import RunStatus

IMPORT_TYPES = {"insert": "insert", "sync": "sync", "1": "insert", "2": "sync"}
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+$")
DEFAULT_SCHEDULE = ("any", "1 day")
TIME_OF_DAY = ("at", "cron")  # schedules whose first run waits for their slot


@dataclass
class TaskChanges:
    """What ``task add`` / ``task edit`` may set; None leaves a value as it is."""

    source: str | None = None
    destination: str | None = None
    schedule_type: str | None = None
    schedule: str | None = None
    import_type: str | None = None
    map: str | None = None
    sequence: int | None = None
    email: str | None = None
    notify: str | None = None  # start,end / end / problems; "" restores the default
    expect: str | None = None  # "daily by 06:00", "every 2 hours"; "" for none
    description: str | None = None
    enabled: bool | None = None
    max_errors: str | None = None  # "" resets to the default
    max_remove: str | None = None
    allow_empty: bool | None = None


def get(session: Session, name: str) -> Task:
    row = session.get(Task, name)
    if row is None:
        raise NotFound(f"no task named {name!r}: see `iotask task list`")
    return row


def import_type_name(value: str) -> str:
    """insert or sync, accepting Docebo's stored '1' and '2'."""
    try:
        return IMPORT_TYPES[value.strip().lower()]
    except KeyError:
        raise IotaskError(
            f"import type {value!r} is not one of insert, sync (Docebo's 1 and 2 also work)"
        ) from None


def check_runnable(task: Task) -> None:
    """Refuse a row that a hand edit left unusable (import type, guard limits), naming the
    column and the command that puts it right: that task fails, the others run."""
    try:
        import_type = import_type_name(task.import_type)
    except IotaskError as exc:
        raise IotaskError(f"task {task.name!r}: core_task.{exc}; fix it with `iotask task edit "
                          f"{quote(task.name)} --import-type insert` (or sync)") from None
    Guards.for_task(task.name, import_type, task.max_errors, task.max_remove,
                    bool(task.allow_empty))
    if task.expect:
        try:
            schedule.parse_expect(task.expect)
        except schedule.ScheduleError as exc:
            raise IotaskError(f"task {task.name!r}: core_task.{exc}; fix it with `iotask task "
                              f"edit {quote(task.name)} --expect ...`") from None


def compact_map(text: str) -> str:
    """The --map option as stored: JSON, Docebo's positional list or the named form."""
    value = jsontext.loads(text, "--map")
    if not isinstance(value, list | dict):
        raise IotaskError(
            '--map must be a JSON list ([{"map": "userid", "pk": "1"}, ...]) or object '
            '({"columns": {...}, "key": [...]})'
        )
    return json.dumps(value, ensure_ascii=False)


def check_emails(text: str) -> str | None:
    addresses = [part.strip() for part in text.split(",") if part.strip()]
    for address in addresses:
        if not EMAIL.match(address):
            raise IotaskError(
                f"e-mail address {address!r} is not valid: expected e.g. hr-team@example.com "
                "(several: separate with commas)"
            )
    return ", ".join(addresses) or None


def _check_connection(session: Session, name: str, role: str) -> None:
    row = connections.get(session, name)
    cls = registry.connector_class(session, row.type)
    able = cls.can_read if role == "source" else cls.can_write
    if not able:
        verb = "read" if role == "source" else "write"
        raise IotaskError(
            f"connection {name!r} (type {row.type}) cannot {verb}: choose another {role}"
        )


MapChecks = set[tuple[str, str, "str | None", str]]  # (source, destination, map, import type)


def _apply(session: Session, row: Task, changes: TaskChanges,
           file_roots: Sequence[Path] | None, checked: MapChecks | None = None) -> None:
    if changes.source is not None:
        _check_connection(session, changes.source, "source")
        row.conn_source = changes.source
    if changes.destination is not None:
        _check_connection(session, changes.destination, "destination")
        row.conn_destination = changes.destination
    apply_fields(row, changes)
    row.updated_at = clock.utcnow()
    check_lengths(row, f"task {row.name!r}:")
    if any(value is not None for value in (changes.source, changes.destination, changes.map,
                                           changes.import_type)):
        check_map(session, row, file_roots, checked)


def apply_fields(row: Task, changes: TaskChanges) -> None:
    """The row's own fields as ``changes`` sets them, each checked (no database needed)."""
    if changes.schedule_type is not None:
        try:
            parsed = schedule.parse(changes.schedule_type, changes.schedule or "")
        except schedule.ScheduleError as exc:
            raise IotaskError(str(exc)) from None
        row.schedule_type, row.schedule = parsed.type, parsed.text
    if changes.import_type is not None:
        row.import_type = import_type_name(changes.import_type)
    if changes.map is not None:
        row.map = compact_map(changes.map) if changes.map.strip() else None
    if changes.sequence is not None:
        if changes.sequence < 0:
            raise IotaskError(f"sequence must be 0 or more, got {changes.sequence}")
        row.sequence = changes.sequence
    if changes.email is not None:
        row.notify_email = check_emails(changes.email)
    if changes.notify is not None:
        row.notify = changes.notify or None
    if changes.expect is not None:
        try:
            row.expect = schedule.parse_expect(changes.expect).text if changes.expect else None
        except schedule.ScheduleError as exc:
            raise IotaskError(str(exc)) from None
    if changes.description is not None:
        row.description = changes.description
    if changes.enabled is not None:
        row.enabled = changes.enabled
    if changes.max_errors is not None:
        row.max_errors = _limit(changes.max_errors, "--max-errors")
    if changes.max_remove is not None:
        row.max_remove = _limit(changes.max_remove, "--max-remove")
    if changes.allow_empty is not None:
        row.allow_empty = changes.allow_empty


def _limit(text: str, option: str) -> str | None:
    """A guard limit as stored ("5%", "100"); empty text means the default."""
    if not text.strip():
        return None
    return Limit.parse(text, option).text


def guards_of(row: Task) -> dict[str, Any]:
    """The task's guards as they apply, defaults filled in (a hand-edited bad limit shown)."""
    import_type = IMPORT_TYPES.get(row.import_type.strip().lower(), "insert")
    return {"max_errors": row.max_errors or DEFAULT_MAX_ERRORS[import_type],
            "max_remove": row.max_remove or DEFAULT_MAX_REMOVE,
            "allow_empty": bool(row.allow_empty)}


def endpoint_columns(session: Session, name: str, role: str,
                     context: MemoryContext) -> list[Column] | None:
    """A connection's columns as they can be known now; None if they cannot (yet)."""
    try:
        return connections.endpoint(session, name, role).columns(context)
    except (ConnectorError, IotaskError, DBAPIError):
        return None  # a missing file or an unreachable database: checked again at run time


def check_map(session: Session, row: Task, file_roots: Sequence[Path] | None = None,
              checked: MapChecks | None = None) -> None:
    """Refuse a map that does not fit the task's source and destination columns (as far as
    they can be read now, file: paths confined to ``file_roots``). ``checked``: the
    combinations already found to fit in this transaction (a schedule of 10 000 tasks over a
    few connections reflects each table once, not 10 000 times), to which this one is added."""
    combination = (row.conn_source, row.conn_destination, row.map, row.import_type)
    if checked is not None and combination in checked:
        return
    context = MemoryContext(
        task=row.name, import_type=import_type_name(row.import_type),
        database_url=session.get_bind().engine.url.render_as_string(hide_password=False),
        file_roots=list(file_roots or ()), owner=row.conn_source)
    resolved = mapping.resolve(
        row.map, endpoint_columns(session, row.conn_source, "source", context),
        endpoint_columns(session, row.conn_destination, "destination", context),
        context.import_type)
    context.key = resolved.key or None
    try:  # e.g. sync into a table with no ownership column: refused now, not at 2 a.m.
        connections.endpoint(session, row.conn_destination, "destination").check_task(context)
    except ConnectorError as exc:
        raise IotaskError(f"task {row.name!r}: {exc}") from None
    if checked is not None:
        checked.add(combination)


def add(session: Session, name: str, changes: TaskChanges,
        file_roots: Sequence[Path] | None = None, now: bool = False,
        checked: MapChecks | None = None) -> Task:
    """A new task. One with a time of day (--at, --cron) first runs at its next slot, as if it
    had run when it was added; an interval task (--every) at the next run-due; ``now``: any
    task at the next run-due (last_execution left empty)."""
    check_name(name, "task")
    if session.get(Task, name) is not None:
        raise IotaskError(f"task {name!r} already exists: use `iotask task edit`")
    if changes.source is None or changes.destination is None:
        raise IotaskError("a task needs --source CONNECTION and --destination CONNECTION, or "
                          "--type TYPE and --url URL (see `iotask task types`)")
    if changes.schedule_type is None:
        changes.schedule_type, changes.schedule = DEFAULT_SCHEDULE
    row = Task(name=name, description="", import_type="insert", sequence=0, enabled=True,
               fail_count=0, allow_empty=False)
    _apply(session, row, changes, file_roots, checked)
    if not now and row.schedule_type in TIME_OF_DAY:
        row.last_execution = clock.utcnow()
    session.add(row)
    return row


def edit(session: Session, name: str, changes: TaskChanges,
         file_roots: Sequence[Path] | None = None, checked: MapChecks | None = None) -> Task:
    row = get(session, name)
    _apply(session, row, changes, file_roots, checked)
    return row


def run_count(session: Session, name: str) -> int:
    """How many runs the task's history holds (resets not counted)."""
    get(session, name)
    return session.scalar(select(func.count()).select_from(TaskRun).where(
        TaskRun.task == name, TaskRun.status != RunStatus.RESET)) or 0


def remove(session: Session, name: str) -> None:
    session.delete(get(session, name))


def list_all(session: Session) -> list[Task]:
    return list(session.scalars(select(Task).order_by(Task.sequence, Task.name)))


def failed_names(engine: Engine) -> list[str]:
    """The tasks whose last run failed, was held or abandoned, in run order."""
    with db.reader(engine).connect() as conn:
        return list(conn.scalars(select(Task.name).where(
            or_(Task.fail_count > 0, Task.last_status.in_(
                (RunStatus.FAILED, RunStatus.HELD, RunStatus.ABANDONED))))
            .order_by(Task.sequence, Task.name)))


def all_names(engine: Engine) -> list[str]:
    with db.reader(engine).connect() as conn:
        return list(conn.scalars(select(Task.name).order_by(Task.sequence, Task.name)))


def next_due_text(task: Task, tz: ZoneInfo, now: datetime | None = None) -> str | None:
    """When the task is next due, as every view shows it (``schedule.due_at``: backoff
    included): an ISO time, "now" (never ran; or, given ``now``, overdue), "parked"
    (last_execution so far ahead that no slot comes), or None for an unreadable schedule."""
    try:
        due = schedule.due_at(task, tz)
    except schedule.ScheduleError:
        return None
    if due is None or (now is not None and due <= now):
        return "now"
    if due == schedule.NEVER:
        return "parked"
    return clock.iso(due, tz)


def schedule_of(row: Task) -> schedule.Schedule | None:
    """The task's parsed schedule; None when a hand edit left it unreadable."""
    try:
        return schedule.parse(row.schedule_type, row.schedule)
    except schedule.ScheduleError:
        return None


def _shown_map(text: str | None) -> Any:
    """The stored map as JSON; a hand edit that broke it is shown as the raw text."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def describe(row: Task, tz: ZoneInfo) -> dict[str, Any]:
    """A task as ``task show --json`` and the console present it."""
    parsed = schedule_of(row)
    words = (f"unreadable schedule {row.schedule_type} {row.schedule!r}" if parsed is None
             else schedule.in_words(parsed))
    return {
        "name": row.name,
        "description": row.description,
        "source": row.conn_source,
        "destination": row.conn_destination,
        "schedule_type": row.schedule_type,
        "schedule": row.schedule,
        "schedule_words": words,
        "import_type": IMPORT_TYPES.get(row.import_type.strip().lower(), row.import_type),
        "map": _shown_map(row.map),
        **guards_of(row),
        "sequence": row.sequence,
        "enabled": bool(row.enabled),
        "notify_email": row.notify_email,
        "notify": row.notify or "start,end",
        "expect": row.expect,
        "last_execution": clock.iso(row.last_execution, tz),
        "next_due": next_due_text(row, tz),
        "last_status": row.last_status,
        "last_error": row.last_error,
        "fail_count": row.fail_count,
        "locked_by": row.locked_by,
        "locked_until": clock.iso(row.locked_until, tz),
    }


@dataclass
class ResetChange:
    task: str
    changed: bool
    message: str


def reset(engine: Engine, tz: ZoneInfo, names: Iterable[str], to: datetime | None = None,
          force: bool = False, who: str | None = None) -> list[ResetChange]:
    """Make tasks due at the next run-due (or as if last executed at ``to``), logged in history
    as done by ``who`` (default: this OS user at host:pid).

    A task that is running is left alone unless ``force``: then its run is marked abandoned.
    """
    who = who or f"{getpass.getuser()}@{runner_name()}"
    changes = []
    for name in names:
        now = clock.utcnow()
        with Session(db.reader(engine)) as session:
            task = session.get(Task, name)
        if task is None:
            raise NotFound(f"no task named {name!r}: see `iotask task list`")
        running = task.locked_until is not None and task.locked_until >= now
        if running and not force:
            changes.append(ResetChange(name, False, f"{name}: not reset, it is running "
                                       f"({task.locked_by}); --force if that runner is dead"))
            continue
        before = (f"last_execution {clock.show(task.last_execution, tz) or 'none'} -> "
                  f"{clock.show(to, tz) or 'none'}, fail_count {task.fail_count} -> 0")
        message = f"{name}: {before}" + (", running run marked abandoned" if running else "")

        def work(conn: Connection, name: str = name, message: str = message,
                 now: datetime = now) -> None:
            _reset_row(conn, name, to, now, who, message)

        db.transaction(engine, work)
        changes.append(ResetChange(name, True, message))
    return changes


def _reset_row(conn: Connection, name: str, to: datetime | None, now: datetime, who: str,
               message: str) -> None:
    conn.execute(update(Task).where(Task.name == name).values(
        last_execution=to, fail_count=0, locked_by=None, locked_until=None,
        last_status=RunStatus.RESET))
    conn.execute(update(TaskRun).where(TaskRun.task == name,
                                       TaskRun.status == RunStatus.RUNNING)
                 .values(status=RunStatus.ABANDONED, finished=now,
                         error=f"abandoned by a forced reset by {who}"))
    conn.execute(insert(TaskRun).values(task=name, triggered_by="manual", runner=who, started=now,
                                        finished=now, status=RunStatus.RESET, error=message))
