"""Engines for the three supported databases, and the migration state check.

SQLite is the embedded default: WAL, a long busy timeout, foreign keys on and ``BEGIN IMMEDIATE``
for every transaction, because a deferred transaction that later writes fails at once when another
process wrote first (the reason APScheduler-style claims break on SQLite).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from iotask.errors import IotaskError

SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY = "iotask_read_only"
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql",
                   "mariadb": "mariadb+pymysql"}


def parse_url(url: str) -> URL:
    """Parse a database URL, choosing the drivers iotask ships with when none is named."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise IotaskError(
            f"cannot parse database URL {url!r}: expected e.g. sqlite:///iotask.db, "
            "mysql+pymysql://user:pass@host/db or postgresql+psycopg://user:pass@host/db"
        ) from None
    if parsed.drivername in DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=DEFAULT_DRIVERS[parsed.drivername])
    if parsed.get_backend_name() in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def masked(url: str | URL) -> str:
    """The URL as it may be shown: the password replaced by ***."""
    try:
        return (url if isinstance(url, URL) else make_url(url)).render_as_string(
            hide_password=True
        )
    except ArgumentError:
        return "<unparseable URL>"


def reader(engine: Engine) -> Engine:
    """The same engine for reading only: on SQLite its transactions begin deferred, so reads
    (status, history, the run-due scan) never wait for a long import holding the write lock."""
    return engine.execution_options(**{READ_ONLY: True})


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if engine.url.database not in (None, "", ":memory:"):
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
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise IotaskError(
                f"cannot open SQLite database {parsed.database}: folder {folder} does not exist"
            )
    try:
        connect_args = {"local_infile": True} if local_infile and backend in (
            "mysql", "mariadb") else {}
        engine = create_engine(parsed, pool_pre_ping=backend != "sqlite",
                               connect_args=connect_args)
    except (NoSuchModuleError, ModuleNotFoundError, ArgumentError) as exc:
        raise IotaskError(f"unsupported database URL {masked(parsed)}: {exc}") from None
    if backend == "sqlite":
        _sqlite_setup(engine)
    return reader(engine) if read_only else engine


def reason(exc: DBAPIError) -> str:
    """The driver's own message, first line only: what a person needs from a database error."""
    lines = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def connect_error(url: str | URL, exc: OperationalError) -> IotaskError:
    """One clear line for a database that cannot be reached."""
    return IotaskError(f"cannot connect to database {masked(url)}: {reason(exc)}")


def alembic_config(engine: Engine | None = None) -> AlembicConfig:
    """Alembic configuration pointing at the migrations shipped inside the package."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("migrations")))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    try:
        with reader(engine).connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise connect_error(engine.url, exc) from None


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as exc:
        raise connect_error(engine.url, exc) from None


def check_migrated(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not the one this code expects."""
    database = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:") \
            and not Path(database).exists():
        raise IotaskError(
            f"database file {database} does not exist: run `iotask db upgrade` to create it")
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    where = masked(engine.url)
    if current is None:
        has_tables = bool(inspect(engine).get_table_names())
        what = "has no iotask tables" if not has_tables else "is not an iotask database"
        raise IotaskError(f"database {where} {what}: run `iotask db upgrade` first")
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current not in known:
        raise IotaskError(
            f"database {where} is at revision {current}, newer than this iotask knows "
            f"(head {head}): upgrade iotask"
        )
    raise IotaskError(
        f"database {where} is at revision {current}, this iotask needs {head}: "
        "run `iotask db upgrade`"
    )
