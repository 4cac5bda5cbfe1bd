"""run-due's quick look: whether the database has nothing due, told without SQLAlchemy.

Cron starts run-due every minute and most minutes nothing is due, yet importing SQLAlchemy, the
models and the runner costs more than judging 10 000 tasks. So run-due first reads the columns
that decide due-ness with the database's own driver (sqlite3, PyMySQL, psycopg) and judges each
task with the runner's own function, ``schedule.due_at``. The answer is True only when the full
run-due would certainly do nothing: the schema is at this iotask's head, no runner died holding a
task (the full run-due would mark its run abandoned), and every enabled task's schedule is
readable and comes due later. Anything else is False — a task due, a URL form or a value not
read here, any error — and the full run-due judges again and reports what there is to report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote
from zoneinfo import ZoneInfo

from iotask import clock, schedule
from iotask.config import Config
from iotask.revisions import VERSION_TABLE, head_revision
from iotask.run_status import RunStatus

# SQLAlchemy's reading of a database URL (sqlalchemy.engine.url), narrowed to the forms iotask's
# own databases take: no IPv6 host, a numeric port, the whole text matched. Others go the full way.
_URL = re.compile(r"""
    (?P<name>[\w+]+)://
    (?:(?P<username>[^:/]*)(?::(?P<password>[^@]*))?@)?
    (?P<host>[^/:?\[\]]+)?
    (?::(?P<port>[0-9]+))?
    (?:/(?P<database>[^?]*))?
    (?:\?(?P<query>.*))?
    \Z""", re.VERBOSE | re.DOTALL)
SQLITE = ("sqlite", "sqlite+pysqlite")
MYSQL = ("mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql")
POSTGRESQL = ("postgresql", "postgresql+psycopg")
# The query parameters passed to the driver as SQLAlchemy passes them; any other: the full way.
MYSQL_QUERY = {"unix_socket", "charset"}
POSTGRESQL_QUERY = {"host"}
_SQLITE_TIME = re.compile(clock.SQLITE_PATTERN)


class Target(NamedTuple):
    """Where a database URL points, as its driver is called: ``sqlite``, ``mysql`` or
    ``postgresql``, and the driver's connect arguments (for SQLite, ``database`` alone)."""

    backend: str
    connect: dict[str, Any]


class Scheduled(NamedTuple):
    """One enabled task's scheduling columns, as ``schedule.due_at`` reads them."""

    schedule_type: str
    schedule: str
    last_execution: datetime | None
    fail_count: int
    last_attempt: datetime | None


def target(url: str) -> Target | None:
    """The driver's connect arguments for ``url`` as SQLAlchemy would make them; None for a form
    this module does not read (the full path then parses it, and says what is wrong with it)."""
    found = _URL.match(url)
    if found is None:
        return None
    name, query_text = found["name"], found["query"]
    pairs = parse_qsl(query_text) if query_text is not None else []
    query = dict(pairs)
    if len(query) != len(pairs):  # a repeated parameter: SQLAlchemy makes it a list
        return None
    user, password, database = (None if found[key] is None else unquote(found[key])
                                for key in ("username", "password", "database"))
    port = int(found["port"]) if found["port"] else None
    parts = {"user": user, "password": password, "host": found["host"], "port": port,
             "database": database}
    given = {key: value for key, value in parts.items() if value}  # as translate_connect_args
    if name in SQLITE:
        if query or set(given) != {"database"} or database is None or database == ":memory:" \
                or database.startswith("~"):
            return None
        return Target("sqlite", {"database": database})
    if name in MYSQL and set(query) <= MYSQL_QUERY and "database" in given:
        return Target("mysql", {**given, "charset": "utf8mb4", **query})
    if name in POSTGRESQL and set(query) <= POSTGRESQL_QUERY and "database" in given:
        given["dbname"] = given.pop("database")
        return Target("postgresql", {**given, **query})
    return None


def nothing_due(config: Config) -> bool:
    """True when a run-due now would run nothing, mark nothing and report no problem; False
    when it might, or when this cannot tell (then the full run-due decides)."""
    where = target(config.database_url)
    if where is None:
        return False
    try:
        return _look(where, config.timezone)
    except Exception:  # noqa: BLE001 (any surprise is the full path's to judge and to tell)
        return False


def _look(where: Target, tz: ZoneInfo) -> bool:
    if where.backend == "sqlite":
        return _look_sqlite(where.connect["database"], tz)
    if where.backend == "mysql":
        import pymysql
        from pymysql.constants import CLIENT

        # FOUND_ROWS: SQLAlchemy's pymysql dialect always sets it; no TLS through a local
        # socket, as databases.make_engine
        local = {"ssl_disabled": True} if "unix_socket" in where.connect else {}
        with pymysql.connect(**where.connect, **local, client_flag=CLIENT.FOUND_ROWS) as conn, \
                conn.cursor() as cursor:
            return _judge(cursor, "%s", "true", clock.utcnow(), tz, None)
    import psycopg

    with psycopg.connect(**where.connect) as conn, conn.cursor() as cursor:
        return _judge(cursor, "%s", "true", clock.utcnow(), tz, None)


def _look_sqlite(database: str, tz: ZoneInfo) -> bool:
    import sqlite3

    if not Path(database).exists():  # connecting would create it: `db upgrade` alone may
        return False
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        cursor = conn.cursor()
        # the full path's engine turns WAL on when it connects: a database not in WAL goes there
        if cursor.execute("PRAGMA journal_mode").fetchone() != ("wal",):
            return False
        cursor.execute("BEGIN")  # one snapshot for every read, as the full path's reader
        return _judge(cursor, "?", "1", clock.utcnow(), tz, _sqlite_time)
    finally:
        conn.close()


@lru_cache(maxsize=4096)
def _sqlite_time(value: object) -> datetime | None:
    """A SQLite timestamp as the models' column type reads it (``clock.SQLITE_PATTERN``);
    memoised, since a task's last_attempt is its last_execution after a success, and the tasks
    one run-due ran started within the same few seconds."""
    if value is None:
        return None
    found = _SQLITE_TIME.match(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"not a timestamp: {value!r}")
    year, month, day, hour, minute, second = map(int, found.groups(0))
    return datetime(year, month, day, hour, minute, second)


def _sqlite_text(value: datetime) -> str:
    """A timestamp as the models' SQLite column type stores and compares it."""
    return clock.SQLITE_STORAGE % {"year": value.year, "month": value.month, "day": value.day,
                                   "hour": value.hour, "minute": value.minute,
                                   "second": value.second}


def _judge(cursor: Any, mark: str, true: str, now: datetime, tz: ZoneInfo,
           read_time: Any) -> bool:
    """The schema revision, the sweep's question and every enabled task, read on ``cursor``
    (``mark``: the driver's placeholder; ``true``: how the dialect writes a true boolean;
    ``read_time``: how its timestamps are read, None when the driver returns datetimes)."""
    cursor.execute(f"SELECT version_num FROM {VERSION_TABLE}")
    if [row[0] for row in cursor.fetchall()] != [head_revision()]:
        return False
    cursor.execute(f"SELECT id FROM core_task_run WHERE status = {mark} AND task IN (SELECT "
                   f"name FROM core_task WHERE locked_until IS NULL OR locked_until < {mark}) "
                   "LIMIT 1", (RunStatus.RUNNING.value,
                               now if read_time is None else _sqlite_text(now)))
    if cursor.fetchone() is not None:  # a dead runner's run: the full path marks it abandoned
        return False
    cursor.execute("SELECT schedule_type, schedule, last_execution, fail_count, last_attempt "
                   f"FROM core_task WHERE enabled = {true}")
    return _none_due(cursor.fetchall(), now, tz, read_time)


def _none_due(rows: Iterable[Sequence[Any]], now: datetime, tz: ZoneInfo,
              read_time: Any) -> bool:
    for schedule_type, text, last_execution, fail_count, last_attempt in rows:
        if read_time is not None:
            last_execution, last_attempt = read_time(last_execution), read_time(last_attempt)
        due = schedule.due_at(Scheduled(schedule_type, text, last_execution, fail_count,
                                        last_attempt), tz)
        if due is None or due <= now:
            return False
    return True
