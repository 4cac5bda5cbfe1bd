"""The iotask database: its engine, short retried transactions, and the migration state check.

The engines themselves come from ``iotask.connectors.databases``, which the SQL connectors share.
The state check runs before every command that touches the database, so it reads
``alembic_version`` with plain SQL and knows the revisions from the migrations' file names
(``iotask.revisions``): Alembic itself is imported only to migrate.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from iotask.connectors import databases
from iotask.connectors.databases import DatabaseUrlError
from iotask.connectors.databases import masked as masked
from iotask.connectors.databases import parse_url as parse_url
from iotask.connectors.databases import reader as reader
from iotask.connectors.databases import reason as reason
from iotask.errors import IotaskError
from iotask.revisions import VERSION_TABLE, head_revision, known_revisions

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

RETRYABLE_CODES = {1205, 1213}  # MySQL/MariaDB lock wait timeout, deadlock
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # PostgreSQL serialization failure, deadlock
T = TypeVar("T")

def make_engine(url: str, read_only: bool = False, local_infile: bool = False) -> Engine:
    """An engine for ``url`` (see ``iotask.connectors.databases.make_engine``); a URL that cannot
    be used is a configuration mistake, told in one line."""
    try:
        return databases.make_engine(url, read_only, local_infile)
    except DatabaseUrlError as exc:
        raise IotaskError(str(exc)) from None


def _retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = orig.args[0] if orig is not None and orig.args else None
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in RETRYABLE_CODES or sqlstate in RETRYABLE_SQLSTATES


def transaction(engine: Engine, work: Callable[[Connection], T], attempts: int = 6) -> T:
    """Run a short transaction, retrying deadlocks and lock timeouts (they happen under load).

    SQLite needs no retry here: its busy timeout already waits for the writer ahead.
    """
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            if attempt == attempts - 1 or not _retryable(exc):
                raise
            time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
    raise AssertionError("unreachable")


def connect_error(url: str | URL, exc: OperationalError) -> IotaskError:
    """One clear line for a database that cannot be reached."""
    return IotaskError(databases.unreachable(url, exc))


def alembic_config(engine: Engine | None = None) -> AlembicConfig:
    """Alembic configuration pointing at the migrations shipped inside the package."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("iotask.migrations")))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The revision recorded in ``alembic_version``; None when there is no such table."""
    try:
        with reader(engine).connect() as conn:
            if not inspect(conn).has_table(VERSION_TABLE):
                return None
            versions = list(conn.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}")))
    except OperationalError as exc:
        raise connect_error(engine.url, exc) from None
    if len(versions) > 1:  # branches: iotask's migrations are one line, so not its own
        raise IotaskError(f"database {masked(engine.url)} records several schema revisions "
                          f"({', '.join(sorted(versions))}) in {VERSION_TABLE}: it is not "
                          "migrated by this iotask")
    return versions[0] if versions else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    try:
        command.upgrade(alembic_config(engine), revision)
    except OperationalError as exc:
        raise connect_error(engine.url, exc) from None


def missing_file(engine: Engine) -> bool:
    """A SQLite URL whose file is not there: connecting would create it, and only
    `iotask db upgrade` may."""
    database = engine.url.database
    return (engine.url.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
            and not Path(database).exists())


def state(engine: Engine) -> str:
    """The database's schema state in words, without creating a SQLite file that is not there."""
    if missing_file(engine):
        return "no such database file: `iotask db upgrade` creates it"
    current, head = current_revision(engine), head_revision()
    if current == head:
        return f"{current} (up to date)"
    return f"{current or 'no iotask tables'} (`iotask db upgrade` brings it to {head})"


def check_migrated(engine: Engine) -> None:
    """Refuse to work on a database whose schema is not the one this code expects."""
    if missing_file(engine):
        raise IotaskError(f"database file {engine.url.database} does not exist: run "
                          "`iotask db upgrade` to create it")
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    where = masked(engine.url)
    if current is None:
        has_tables = bool(inspect(engine).get_table_names())
        what = "has no iotask tables" if not has_tables else "is not an iotask database"
        raise IotaskError(f"database {where} {what}: run `iotask db upgrade` first")
    if current not in known_revisions():
        raise IotaskError(
            f"database {where} is at revision {current}, newer than this iotask knows "
            f"(head {head}): upgrade iotask"
        )
    raise IotaskError(
        f"database {where} is at revision {current}, this iotask needs {head}: "
        "run `iotask db upgrade`"
    )
