"""Engines for the three supported databases, shared by the iotask side and the SQL connectors.

SQLite is the embedded default: WAL, a long busy timeout, foreign keys on and ``BEGIN IMMEDIATE``
for every transaction, because a deferred transaction that later writes fails at once when another
process wrote first (the reason APScheduler-style claims break on SQLite). MariaDB/MySQL and
PostgreSQL drivers are optional extras: a missing one is named with the extra that installs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from iotask.connectors.errors import ConnectorError, SettingsError
from iotask.connectors.masking import mask, remember_url
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError


class DatabaseUrlError(ConnectorError):
    """A database URL that cannot be parsed or used (unknown dialect, missing driver, no folder)."""


SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "iotask_read_only"
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql",
                   "mariadb": "mariadb+pymysql"}
EXTRAS = {"mysql": ("MariaDB/MySQL", "mysql"), "mariadb": ("MariaDB/MySQL", "mysql"),
          "postgresql": ("PostgreSQL", "postgres")}  # backend: (what, the extra with its driver)


def parse_url(url: str) -> URL:
    """Parse a database URL, choosing the drivers iotask ships with when none is named."""
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 (a port that is not a number raises here, not at connect)
    except (ArgumentError, ValueError):
        raise DatabaseUrlError(
            f"cannot parse database URL {url!r}: expected e.g. sqlite:///iotask.db, "
            "mysql+pymysql://user@host/db or postgresql+psycopg://user@host/db"
        ) from None
    if parsed.drivername in DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=DEFAULT_DRIVERS[parsed.drivername])
    if parsed.get_backend_name() in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def database_setting(params: Mapping[str, Any], default: str | None,
                     error: type[ConnectorError] = DatabaseUrlError) -> str:
    """A database connector's ``database`` setting, else ``default`` (the iotask database the
    runner names in the run's context); ``error`` (the connector's own) when there is neither."""
    url = params.get("database") or default
    if not url:
        raise error("setting 'database' is not set and there is no iotask database "
                               "to default to: --set database=URL")
    return str(url)


def check_database_setting(params: Mapping[str, Any]) -> None:
    """When a connection is saved: a ``database`` setting that is not a database URL is
    refused, naming the setting."""
    if params.get("database"):
        try:
            parse_url(params["database"])
        except DatabaseUrlError as exc:
            raise SettingsError(f"setting 'database': {exc}") from None


def masked(url: str | URL) -> str:
    """The URL as it may be shown: the password and query-string secrets replaced by ***."""
    try:
        return mask((url if isinstance(url, URL) else make_url(url)).render_as_string(
            hide_password=True))
    except ArgumentError:
        return mask(str(url))


def reader(engine: Engine) -> Engine:
    """The same engine for reading only: on SQLite its transactions begin deferred, so reads
    (status, history, the run-due scan) never wait for a long import holding the write lock."""
    return engine.execution_options(**{READ_ONLY: True})


def _sqlite_setup(engine: Engine, wal: bool) -> None:
    """Autocommit driver, busy timeout, foreign keys; WAL only for an engine that writes: a
    database only read (another site's, a source) is left in its journal mode, byte for byte."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if wal and engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        deferred = connection.get_execution_options().get(READ_ONLY)
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


def make_engine(url: str, read_only: bool = False, local_infile: bool = False) -> Engine:
    """An engine for ``url`` with the settings iotask relies on.

    ``read_only``: on SQLite, transactions begin deferred, so a long read (WAL) never holds the
    write lock that claims and lease renewals need. ``local_infile``: on MariaDB/MySQL the client
    may send files with LOAD DATA LOCAL (staging); only for a destination, never for reads.
    """
    remember_url(url)
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise DatabaseUrlError(
                f"cannot open SQLite database {parsed.database}: folder {folder} does not exist"
            )
    try:
        connect_args: dict[str, Any] = {}
        if backend in ("mysql", "mariadb"):
            if local_infile:
                connect_args["local_infile"] = True
            if "unix_socket" in parsed.query and not any(name.startswith("ssl")
                                                         for name in parsed.query):
                # TLS over a local socket protects nothing, and PyMySQL 1.2 builds a TLS
                # context (the system's CA store, ~30 ms) for every connection by default
                connect_args["ssl_disabled"] = True
        engine = create_engine(parsed, pool_pre_ping=backend != "sqlite",
                               connect_args=connect_args)
    except ModuleNotFoundError as exc:
        if backend in EXTRAS:
            what, extra = EXTRAS[backend]
            raise DatabaseUrlError(
                f"{what} databases need the {exc.name} driver, which is not installed: "
                f"pip install 'iotask[{extra}]'") from None
        raise DatabaseUrlError(f"unsupported database URL {masked(parsed)}: {exc}") from None
    except (NoSuchModuleError, ArgumentError) as exc:
        raise DatabaseUrlError(f"unsupported database URL {masked(parsed)}: {exc}") from None
    if backend == "sqlite":
        _sqlite_setup(engine, wal=not read_only)
    return reader(engine) if read_only else engine


def reason(exc: DBAPIError) -> str:
    """The driver's own message, first line only: what a person needs from a database error."""
    lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    if not lines or lines[0] in ("(0, '')", "0"):  # PyMySQL's InterfaceError(0, '')
        return "the connection to the database was lost (server restarted or timed out?)"
    return lines[0]


def unreachable(url: str | URL, exc: OperationalError) -> str:
    """One clear line for a database that cannot be reached."""
    return f"cannot connect to database {masked(url)}: {reason(exc)}"
