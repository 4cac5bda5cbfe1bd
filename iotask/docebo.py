"""Adopting a Docebo or forma.lms site's I/O tasks: its core_task, core_connection and
core_connector rows become iotask connections and tasks, each change told in one line.

The site's database is only read: its engine is opened read-only at the database level, and
nothing but SELECTs is sent. Maps and params are URL-encoded PHP ``serialize()`` output (Docebo
3.x/4.0.5, read by ``iotask.phpdata``) or URL-encoded JSON (forma since 2016). Something one
row holds that iotask cannot use skips that row, with the reason; the other rows go on.
"""

from __future__ import annotations

import json
import re
import sqlite3
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    select,
    type_coerce,
)
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, NoSuchTableError, OperationalError, SAWarning
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from iotask import connections, db, phpdata, registry, schedule, tasks
from iotask.connectors.databases import DatabaseUrlError
from iotask.errors import IotaskError, NotFound
from iotask.mapping import IGNORE
from iotask.models import Connection, Task

DEFAULT_PREFIX = "core_"
PREFIX = re.compile(r"^[A-Za-z0-9_]{0,40}$")
LMS_TYPES = {"users": "forma-users", "orgchart": "forma-orgchart", "courses": "forma-courses",
             "courseusers": "forma-enrollments"}
CSV_TYPES = ("cvs-connector", "csv-connector", "forma-csv", "csv")
CONNECTOR_FILE = re.compile(r"connector\.(?:docebo|forma)?(users|orgchart|courses|courseusers|"
                            r"csv)\.php")
GLOB_CHARS = set("*?[")
# Docebo params that describe the connection itself, or the admin UI's wizard state
OWN_PARAMS = {"name", "description", "readwrite", "step", "old_name", "field_def_type"}
REMOVE = {"users": ("canceled", {"1": "suspend", "2": "delete"}),
          "courses": ("on_delete", {"1": "status0", "2": "delete"}),
          "courseusers": ("on_delete", {"1": "suspend", "2": "unsubscribe"})}
WHY_NOT = {
    "sendnotify": "iotask sends no e-mail to the people it imports; run e-mails go to the "
                  "task's --email",
    "org_chart_destination": "no iotask setting: org units come from the rows",
    "pwd_force_change_policy": "password policy is not an iotask setting",
    "use_default_password": "password policy is not an iotask setting",
    "default_password": "password policy is not an iotask setting; the password is not copied",
    "std_menu_to_assign": "course menus are not an iotask setting",
}


class Skip(Exception):
    """One connection or task that cannot be adopted; the message says why."""


@dataclass
class Line:
    """What one Docebo connection or task became."""

    kind: str  # connection or task
    name: str
    outcome: str  # created, updated, unchanged, skipped
    detail: str = ""  # the iotask type, the fields updated, or why it was skipped
    not_mapped: list[str] = field(default_factory=list)

    def text(self) -> str:
        name = self.name if self.name.isprintable() else repr(self.name)
        if self.outcome == "skipped":
            return f"{self.kind} {name}: skipped: {self.detail}"
        line = f"{self.kind} {name}: {self.outcome}" + (f" ({self.detail})" if self.detail else "")
        return line + ("; not mapped: " + ", ".join(self.not_mapped) if self.not_mapped else "")

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "outcome": self.outcome,
                "detail": self.detail, "not_mapped": self.not_mapped}


@dataclass
class Adoption:
    """Every line of one import, connections first, then tasks in Docebo's run order."""

    lines: list[Line] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        return any(line.outcome == "skipped" for line in self.lines)


@dataclass
class Site:
    """The three Docebo tables as read: each row a dict of its columns."""

    connectors: dict[str, str]  # type -> file
    connections: list[dict[str, Any]]
    tasks: list[dict[str, Any]]


# --- reading the site ---------------------------------------------------------------------


def site_url(url: str) -> str:
    """The --from URL as a connection stores it: a SQLite path made absolute, so a run from
    cron's folder finds the same file."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return url
    return parsed.set(database=str(Path(parsed.database).absolute())).render_as_string(
        hide_password=False)


def _parse(url: str) -> URL:
    try:
        return db.parse_url(url)
    except DatabaseUrlError as exc:
        raise IotaskError(f"--from: {exc}") from None


def _read_only_engine(url: str) -> Engine:
    """An engine that cannot write: SQLite opened with mode=ro, a server session set to read
    only transactions."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not parsed.database or parsed.database == ":memory:" or not path.is_file():
            raise IotaskError(f"--from {db.masked(parsed)}: no such SQLite database file")
        uri = f"file:{quote(str(path.absolute()))}?mode=ro"
        return create_engine("sqlite://", poolclass=NullPool,
                             creator=lambda: sqlite3.connect(uri, uri=True))
    try:
        engine = db.make_engine(url)
    except IotaskError as exc:
        raise IotaskError(f"--from: {exc}") from None
    backend = engine.url.get_backend_name()

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if backend == "postgresql":
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            dbapi_connection.commit()
        else:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
        cursor.close()

    return engine


def _rows(conn: Any, table: Table, order: Sequence[str]) -> list[dict[str, Any]]:
    """Every row; dates as the driver gives them (a DBA's '0000-00-00' must not stop the read)."""
    columns = [type_coerce(c, String).label(c.name) if isinstance(c.type, DateTime | Date)
               else c for c in table.c]
    query = select(*columns).order_by(*(table.c[name] for name in order if name in table.c))
    return [dict(row._mapping) for row in conn.execute(query)]


def read_site(url: str, prefix: str = DEFAULT_PREFIX, own_url: str | None = None) -> Site:
    """The site's connectors, connections and tasks (tasks in run order). ``own_url``, iotask's
    database, is refused: its tables have Docebo's names but are not a site's."""
    if own_url is not None and _parse(site_url(url)) == _parse(site_url(own_url)):
        raise IotaskError("--from names iotask's own database: give the Docebo/forma site's")
    if not PREFIX.match(prefix):
        raise IotaskError(f"--prefix {prefix!r}: letters, digits and _ only (e.g. core_)")
    engine, where = _read_only_engine(url), db.masked(_parse(url))
    names = {what: f"{prefix}{what}" for what in ("connector", "connection", "task")}
    try:
        with engine.connect() as conn:
            meta = MetaData()
            try:
                with warnings.catch_warnings():  # a column type of Docebo's not known here
                    warnings.simplefilter("ignore", SAWarning)
                    tables = {what: Table(name, meta, autoload_with=conn)
                              for what, name in names.items()}
            except NoSuchTableError as exc:
                raise IotaskError(f"{where} has no table {exc}: is it a Docebo "
                                  "or forma.lms database? (--prefix names other tables than "
                                  "core_...)") from None
            for what, table in tables.items():
                needed = {"connector": {"type", "file"}, "connection": {"name", "type", "params"},
                          "task": {"name", "conn_source", "conn_destination", "map"}}[what]
                missing = sorted(needed - set(table.c.keys()))
                if missing:
                    raise IotaskError(f"table {table.name} has no column {missing[0]}: it is "
                                      "not a Docebo/forma I/O task table")
            connectors = {str(row["type"]): str(row["file"] or "")
                          for row in _rows(conn, tables["connector"], ["type"])}
            site = Site(connectors, _rows(conn, tables["connection"], ["name"]),
                        _rows(conn, tables["task"], ["sequence", "name"]))
            conn.rollback()
    except OperationalError as exc:
        raise db.connect_error(where, exc) from None
    except DBAPIError as exc:
        raise IotaskError(f"cannot read {where}: {db.reason(exc)}") from None
    finally:
        engine.dispose()
    return site


# --- decoding ------------------------------------------------------------------------------


def decode(text: Any, what: str) -> Any:
    """A stored map or params value: URL-encoded (or plain) JSON or PHP-serialized data."""
    if text is None:
        return None
    if isinstance(text, str):
        text = text.encode("utf-8")
    if not isinstance(text, bytes):
        raise Skip(f"{what} is a {type(text).__name__}, not text")
    stripped = text.strip()
    if not stripped:
        return None
    # urlencode() leaves no ':', '{', '[' or '"': text holding one is stored as it is
    raw = stripped if set(stripped) & set(b':{["') else unquote_to_bytes(
        stripped.replace(b"+", b" "))
    if len(raw) > phpdata.MAX_BYTES:
        raise Skip(f"{what} is {len(raw):,} bytes: at most {phpdata.MAX_BYTES:,} are read")
    if raw.lstrip()[:1] in (b"[", b"{"):
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise Skip(f"{what} is not valid UTF-8 (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise Skip(f"{what} is neither PHP-serialized nor valid JSON: {exc.msg} at "
                       f"line {exc.lineno} column {exc.colno}") from None
        except RecursionError:
            raise Skip(f"{what} is JSON nested too deeply to be read") from None
    try:
        return phpdata.loads(raw)
    except phpdata.PhpDataError as exc:
        raise Skip(f"{what} is not plain PHP-serialized data or JSON: {exc}") from None


def _params(row: dict[str, Any]) -> dict[str, Any]:
    value = decode(row.get("params"), "params")
    if value in (None, []):
        return {}
    if not isinstance(value, dict):
        raise Skip("params is not a key: value array")
    return {str(key): item for key, item in value.items()}


def _shown_key(key: str) -> str:
    """A name from the site's rows as a line may show it: printable, at most 60 characters."""
    key = key if key.isprintable() else repr(key)
    return key if len(key) <= 60 else key[:57] + "..."


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def positional_map(value: Any) -> tuple[list[dict[str, str]], list[str]]:
    """Docebo's map (by source column position) in iotask's positional form, pk flags and
    ignored columns kept; and the entry keys iotask does not use."""
    if isinstance(value, dict):
        try:
            by_index = {int(key): entry for key, entry in value.items()}
        except ValueError:
            raise Skip("map is not indexed by source column position (0, 1, ...)") from None
        if min(by_index, default=0) < 0 or max(by_index, default=0) > 10_000:
            raise Skip("map positions must be 0 to 10000")
        value = [by_index.get(i, {"map": IGNORE}) for i in range(max(by_index, default=-1) + 1)]
    if not isinstance(value, list) or not value:
        raise Skip("its map is empty: Docebo would import nothing with it")
    entries, unused = [], set()
    for index, entry in enumerate(value, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("map"), str) \
                or not entry["map"].strip():
            raise Skip(f"map entry {index} has no destination column ('map')")
        unused |= {_shown_key(str(key)) for key in entry} - {"map", "pk"}
        item = {"map": entry["map"]}
        if entry["map"] != IGNORE and _flag(entry.get("pk", "")):
            item["pk"] = "1"
        entries.append(item)
    return entries, [f"map entry key {key} (iotask's map holds map and pk)"
                     for key in sorted(unused)]


def _schedule(row: dict[str, Any]) -> schedule.Schedule:
    kind = str(row.get("schedule_type") or "").strip().lower()
    text = str(row.get("schedule") or "").strip()
    try:
        if kind == "at":
            return schedule.parse("at", text)
        if kind in ("any", "", "interval"):
            return schedule.parse("any", text)
    except schedule.ScheduleError as exc:
        raise Skip(f"schedule {kind or 'interval'} {text!r}: {exc}") from None
    raise Skip(f"schedule type {kind!r} is not at, any or interval")


def _import_type(row: dict[str, Any]) -> str:
    value = str(row.get("import_type") or "").strip()
    if value not in ("1", "2"):
        raise Skip(f"import type {value!r} is not 1 (insert) or 2 (insert and remove)")
    return "insert" if value == "1" else "sync"


def _last_execution(value: Any, tz: ZoneInfo) -> datetime | None:
    """Docebo's last_execution (the PHP server's local time, which iotask's zone is taken to
    be) as naive UTC; a zero date means never."""
    if value is None or str(value).strip() in ("", "0000-00-00 00:00:00", "0000-00-00"):
        return None
    if isinstance(value, datetime):
        local = value
    else:
        try:
            local = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise Skip(f"last_execution {str(value)[:40]!r} is not a date and time") from None
    try:
        return local.replace(tzinfo=tz, microsecond=0).astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise Skip(f"last_execution {value} is out of range") from None


# --- connections ---------------------------------------------------------------------------


@dataclass
class Plan:
    """The iotask connection a Docebo connection becomes."""

    type_name: str
    params: dict[str, Any]
    not_mapped: list[str]
    role: str | None = None  # a Docebo csv connection reads (source) or writes (destination)


def _kind(type_name: str, file: str) -> str | None:
    name = type_name.strip().lower()
    for prefix in ("docebo-", "forma-"):
        if name.startswith(prefix) and name[len(prefix):] in LMS_TYPES:
            return name[len(prefix):]
    if name in CSV_TYPES:
        return "csv"
    found = CONNECTOR_FILE.fullmatch(Path(file.replace("\\", "/")).name.lower())
    return found.group(1) if found else None


def _lms(kind: str, params: dict[str, Any], url: str, prefix: str) -> Plan:
    type_name = LMS_TYPES[kind]
    settings: dict[str, Any] = {"database": url}
    not_mapped = []
    if prefix != DEFAULT_PREFIX:
        # the forma-* connectors' prefix is the text before core_/learning_ (site2_core_user)
        if prefix.endswith(DEFAULT_PREFIX):
            settings["prefix"] = prefix.removesuffix(DEFAULT_PREFIX)
        else:
            not_mapped.append(f"the site's prefix {prefix!r} (the forma-* connectors read "
                              "tables named PREFIXcore_* and PREFIXlearning_*: set 'prefix' "
                              "with iotask connection edit)")
    remove_key, choices = REMOVE.get(kind, ("", {}))
    for key, value in params.items():
        if key in OWN_PARAMS:
            continue
        if key == remove_key:
            choice = choices.get(str(value).strip())
            if choice is None:
                not_mapped.append(f"{key} ({str(value)[:20]!r} is not 1 or 2)")
            else:
                settings["remove"] = choice
            continue
        why = WHY_NOT.get(key, f"{type_name} has no such setting")
        not_mapped.append(f"{_shown_key(key)} ({why})")
    return Plan(type_name, settings, not_mapped)


def _one_char(params: dict[str, Any], key: str, default: str, not_mapped: list[str]) -> str:
    value = params.get(key)
    if value is None or value == "":
        if value == "":
            not_mapped.append(f"{key} (empty: iotask uses {default!r})")
        return default
    if not isinstance(value, str) or len(value) != 1:
        raise Skip(f"{key} {str(value)[:10]!r} must be one character")
    return value


def _csv(params: dict[str, Any], files: Path | None) -> Plan:
    if files is None:
        raise Skip("a csv connection needs --files DIR (the site's files/common/iofiles/ "
                   "folder) to know where its files are")
    pattern, sub = params.get("filepattern"), params.get("subpattern") or ""
    if not isinstance(pattern, str) or not pattern.strip():
        raise Skip("its filepattern is empty")
    for what, value in (("filepattern", pattern), ("subpattern", sub)):
        if not isinstance(value, str) or ".." in Path(value).parts or value.startswith("/") \
                or (what == "filepattern" and "/" in value):
            raise Skip(f"{what} {str(value)[:60]!r} must name files inside the iofiles folder")
    readwrite = str(params.get("readwrite", "1")).strip()
    if readwrite not in ("1", "2"):
        raise Skip(f"readwrite {readwrite[:10]!r} is not 1 (read) or 2 (write)")
    folder = quote(str((files / sub).absolute()).rstrip("/")) + "/"
    not_mapped: list[str] = []
    settings: dict[str, Any] = {
        "delimiter": _one_char(params, "field_delimiter", ",", not_mapped),
        "quotechar": _one_char(params, "field_enclosure", '"', not_mapped),
        "header": _flag(params.get("first_row_header", "1")),
    }
    field_def = params.get("field_def")
    if isinstance(field_def, list) and field_def and all(isinstance(c, str) for c in field_def):
        settings["columns"] = field_def
    elif field_def not in (None, "", []):
        not_mapped.append("field_def (not a list of column names)")
    for key in sorted(set(params) - OWN_PARAMS - {"filepattern", "subpattern", "field_delimiter",
                                                   "field_enclosure", "first_row_header",
                                                   "field_def"}):
        not_mapped.append(f"{_shown_key(key)} (csv has no such setting)")
    if readwrite == "1":  # read, then renamed (Docebo: processed...; iotask: .imported)
        settings.update(url=f"file:{folder}{quote(pattern, safe='*?[]!')}", consume="rename")
        if pattern[0] in GLOB_CHARS:
            not_mapped.append(f"Docebo's skipping of processed* files (filepattern {pattern} "
                              "also matches the ones it left: move them away before the first "
                              "run)")
        return Plan("csv", settings, not_mapped, "source")
    if GLOB_CHARS & set(pattern):
        raise Skip(f"it writes, so its filepattern {pattern!r} must be a file name, not a glob")
    if "columns" not in settings:
        raise Skip("it writes, and Docebo writes only the columns field_def names: it has none")
    if settings["header"]:  # Docebo's writer never wrote one, whatever the setting said
        not_mapped.append("first_row_header (Docebo wrote no header line to a file it wrote: "
                          "neither does iotask)")
    # Docebo renames a written file to <Ymd><name> once it is closed
    settings.update(url=f"file:{folder}{{date:%Y%m%d}}{quote(pattern)}", header=False)
    return Plan("csv", settings, not_mapped, "destination")


def plan_connection(row: dict[str, Any], connectors: dict[str, str], url: str, prefix: str,
                    files: Path | None) -> Plan:
    """The iotask type and settings of a Docebo connection; Skip when it has none."""
    type_name = str(row.get("type") or "")
    kind = _kind(type_name, connectors.get(type_name, ""))
    if kind is None:
        file = connectors.get(type_name)
        where = f" (file {_shown_key(file)})" if file else ""
        raise Skip(f"connector type {_shown_key(type_name)!r}{where} has no iotask equivalent")
    params = _params(row)
    return _csv(params, files) if kind == "csv" else _lms(kind, params, url, prefix)


# --- saving --------------------------------------------------------------------------------


def _saved(session: Session, work: Callable[[], Line]) -> Line:
    """``work`` in a savepoint: a row that fails leaves nothing half-written behind it."""
    try:
        with session.begin_nested():
            return work()
    except (IotaskError, Skip) as exc:
        raise Skip(str(exc)) from None
    except DBAPIError as exc:
        raise Skip(f"the database refused it: {db.reason(exc)}") from None


def _save_connection(session: Session, name: str, description: str, plan: Plan,
                     file_roots: Sequence[Path], update: bool) -> Line:
    try:
        cls = registry.connector_class(session, plan.type_name)
    except NotFound:
        raise Skip(f"connector type {plan.type_name} is not registered: run `iotask db "
                   "upgrade` (or `iotask connector register`)") from None
    params = connections.build_params(cls, plan.params)
    line = Line("connection", name, "created", plan.type_name, plan.not_mapped)
    existing = session.get(Connection, name)
    if existing is None:
        connections.add(session, name, plan.type_name, description,
                        params_json=json.dumps(params), file_roots=file_roots)
        return line
    differences = [what for what, same in (
        ("type", existing.type == plan.type_name),
        ("description", (existing.description or "") == description),
        ("settings", connections.stored_params(existing) == params)) if not same]
    if not differences:
        line.outcome, line.detail = "unchanged", plan.type_name
        return line
    if not update:
        raise Skip(f"an iotask connection of that name has other {', '.join(differences)}: "
                   "--update replaces them")
    connections.edit(session, name, description, plan.type_name,
                     params_json=json.dumps(params), file_roots=file_roots)
    line.outcome, line.detail = "updated", ", ".join(differences)
    return line


def _task_changes(row: dict[str, Any], tz: ZoneInfo) -> tuple[tasks.TaskChanges,
                                                              datetime | None, list[str]]:
    entries, not_mapped = positional_map(decode(row.get("map"), "map"))
    parsed = _schedule(row)
    sequence = row.get("sequence")
    try:
        number = int(sequence or 0)
    except (TypeError, ValueError):
        raise Skip(f"sequence {str(sequence)[:20]!r} is not a number") from None
    changes = tasks.TaskChanges(
        source=str(row.get("conn_source") or ""),
        destination=str(row.get("conn_destination") or ""),
        schedule_type=parsed.type, schedule=parsed.text, import_type=_import_type(row),
        map=json.dumps(entries, ensure_ascii=False), sequence=number,
        description=str(row.get("description") or ""))
    return changes, _last_execution(row.get("last_execution"), tz), not_mapped


def _differences(row: Task, changes: tasks.TaskChanges, last: datetime | None) -> list[str]:
    probe = Task(name=row.name, description="", import_type="insert", sequence=0, enabled=True,
                 fail_count=0, allow_empty=False)
    tasks.apply_fields(probe, changes)
    found = [what for what, same in (
        ("connections", (row.conn_source, row.conn_destination)
         == (changes.source, changes.destination)),
        *((name, getattr(row, name) == getattr(probe, name)) for name in (
            "description", "schedule_type", "schedule", "import_type", "map", "sequence")),
        ("last_execution", row.last_execution == last)) if not same]
    return found


def _save_task(session: Session, name: str, changes: tasks.TaskChanges, last: datetime | None,
               not_mapped: list[str], file_roots: Sequence[Path], update: bool) -> Line:
    line = Line("task", name, "created", f"{changes.source} -> {changes.destination}",
                not_mapped)
    existing = session.get(Task, name)
    if existing is None:
        tasks.add(session, name, changes, file_roots, now=True).last_execution = last
        return line
    differences = _differences(existing, changes, last)
    if not differences:
        line.outcome = "unchanged"
        return line
    if not update:
        raise Skip(f"an iotask task of that name has other {', '.join(differences)}: --update "
                   "replaces them")
    tasks.edit(session, name, changes, file_roots).last_execution = last
    line.outcome, line.detail = "updated", ", ".join(differences)
    return line


def adopt(session: Session, site: Site, url: str, tz: ZoneInfo, file_roots: Sequence[Path],
          prefix: str = DEFAULT_PREFIX, files: Path | None = None,
          update: bool = False) -> Adoption:
    """Create (or, with ``update``, update) the iotask connections and tasks the site's rows
    describe. The caller commits, or rolls back for a dry run."""
    done, adopted, seen = Adoption(), dict[str, str | None](), set[str]()
    for row in site.connections:
        name = str(row.get("name") or "")
        try:
            if name in seen:
                raise Skip("another connection of that name came first")
            seen.add(name)
            plan = plan_connection(row, site.connectors, url, prefix, files)
            description = str(row.get("description") or "")
            done.lines.append(_saved(session, partial(_save_connection, session, name,
                                                      description, plan, file_roots, update)))
            adopted[name] = plan.role
        except Skip as exc:
            done.lines.append(Line("connection", name, "skipped", str(exc)))
    seen.clear()
    for row in site.tasks:
        name = str(row.get("name") or "")
        try:
            if name in seen:
                raise Skip("another task of that name came first (forma 4 allows that, "
                           "iotask does not)")
            seen.add(name)
            changes, last, not_mapped = _task_changes(row, tz)
            for role, connection in (("source", changes.source),
                                     ("destination", changes.destination)):
                if connection not in adopted:
                    raise Skip(f"its {role} connection {connection!r} was not adopted")
                if adopted[connection] not in (None, role):
                    raise Skip(f"its {role} connection {connection!r} is a csv connection for "
                               f"{'reading' if role == 'destination' else 'writing'} (Docebo's "
                               "readwrite)")
            done.lines.append(_saved(session, partial(_save_task, session, name, changes, last,
                                                      not_mapped, file_roots, update)))
        except Skip as exc:
            done.lines.append(Line("task", name, "skipped", str(exc)))
    return done
