"""Fixtures: every database test runs on SQLite, MariaDB and PostgreSQL, each in a fresh database.

`scripts/test` starts the servers and exports IOTASK_TEST_MARIADB_URL and
IOTASK_TEST_POSTGRESQL_URL. Without them a server test fails when CI is set and skips otherwise
(so a developer without servers can still run the SQLite part, as `scripts/test --fast` does).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from iotask.connectors import masking

from iotask import db as iotask_db
from iotask.cli import main

BACKENDS = ("sqlite", "mariadb", "postgresql")
SERVER_URL_VARS = {"mariadb": "IOTASK_TEST_MARIADB_URL",
                   "postgresql": "IOTASK_TEST_POSTGRESQL_URL"}


def server_url(backend: str) -> str:
    variable = SERVER_URL_VARS[backend]
    url = os.environ.get(variable)
    if url:
        return url
    message = f"{variable} is not set: run the suite with scripts/test, which starts {backend}"
    if os.environ.get("CI") and not os.environ.get("IOTASK_TEST_FAST"):
        pytest.fail(message)
    pytest.skip(message)


def _fresh_server_database(backend: str) -> Iterator[str]:
    base = iotask_db.parse_url(server_url(backend))
    name = f"iotask_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        if backend == "mariadb":
            conn.exec_driver_sql(
                f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        else:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            if backend == "mariadb":
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(autouse=True)
def fresh_secrets() -> Iterator[None]:
    """Each test is one command's process as far as masking goes: the secrets an earlier test
    configured are not masked in this one's output."""
    yield
    masking.forget()


@pytest.fixture(autouse=True)
def file_roots(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """file: URLs may name the tests' temporary files (confinement has tests of its own)."""
    monkeypatch.setenv("IOTASK_FILE_ROOTS", str(tmp_path_factory.getbasetemp()))


def aged(path: Path, seconds: float = 60) -> Path:
    """Date a file back, as one finished a while ago: a fresh file is still being written for
    a connection's stable_seconds (default 10 s) and waits for a later run."""
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """A CSV file as a feed sends it (a header line, then the rows), finished a while ago."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return aged(path)


def add_waiting_task(iotask: Callable[..., Any], folder: Path) -> None:
    """Task "daily" (people.csv into table people, key userid), not due: its time of day passed
    an hour ago, so it waits for tomorrow's slot."""
    feed = write_csv(folder / "people.csv", ["userid", "name"], [["u1", "Anna"]])
    iotask("connection", "add", "people", "--type", "csv", "--set", f"url={feed}")
    iotask("connection", "add", "table", "--type", "sql", "--set", "table=people",
           "--set", "key=userid")
    slot = datetime.now(UTC) - timedelta(hours=1)
    iotask("task", "add", "daily", "--source", "people", "--destination", "table",
           "--at", f"{slot:%H:%M}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, tmp_path) -> Iterator[str]:
    """A URL of an empty database on the backend under test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'iotask.db'}"
    else:
        yield from _fresh_server_database(backend)


@pytest.fixture
def migrated_url(db_url: str) -> str:
    engine = iotask_db.make_engine(db_url)
    iotask_db.upgrade(engine)
    engine.dispose()
    return db_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[sa.Engine]:
    """An engine on a migrated database, for raw SQL as a DBA would write it."""
    eng = iotask_db.make_engine(migrated_url)
    yield eng
    eng.dispose()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def run_cli(*args: str) -> Result:
    """Run `iotask ARGS` in this process, as the console script would."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def iotask(migrated_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path):
    """`iotask(...)` runs the CLI against the migrated test database; it must succeed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IOTASK_DATABASE_URL", raising=False)
    monkeypatch.delenv("IOTASK_CONFIG", raising=False)
    monkeypatch.setenv("IOTASK_TIMEZONE", "Europe/Rome")

    def call(*args: str, ok: bool = True) -> Result:
        result = run_cli("--db", migrated_url, *args)
        if ok:
            assert result.code == 0, f"iotask {' '.join(args)} failed: {result.err}"
        return result

    return call


def assert_user_error(result: Result, *fragments: str) -> None:
    """A user mistake: non-zero exit, one line on stderr, no traceback."""
    assert result.code != 0, f"expected failure, got success: {result.out}"
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {result.err!r}"
    assert lines[0].startswith("iotask: error: "), lines[0]
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


@pytest.fixture
def samples(iotask):
    """The sample connectors registered (tests/sample_source.py, sample_ledger.py), with a
    source connection "src" of three rows and a ledger connection "ledger"."""
    iotask("connector", "register", "sample_source")
    iotask("connector", "register", "sample_ledger")
    iotask("connection", "add", "src", "--type", "test-source", "--set", "rows=3")
    iotask("connection", "add", "ledger", "--type", "test-ledger")
    return iotask


FORMA_DDL = Path(__file__).parent / "data" / "forma" / "forma-3.3-mariadb.sql"


def load_forma_ddl(url: str) -> None:
    """Create forma's own 3.x tables and seed rows (tests/data/forma/) in a MariaDB database,
    under the sql_mode forma's installer uses (zero-date defaults allowed)."""
    statements = [part.strip() for part in FORMA_DDL.read_text().split(";\n")]
    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.begin() as conn:
        conn.exec_driver_sql("SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'")
        for statement in statements:
            code = "\n".join(line for line in statement.splitlines()
                             if not line.startswith("--")).strip()
            if code:
                conn.exec_driver_sql(code.replace("%", "%%"))
    eng.dispose()


@pytest.fixture
def forma_url(backend: str, migrated_url: str) -> Iterator[str]:
    """A database holding the forma.lms tables the forma-* connectors write: on SQLite and
    PostgreSQL the iotask database itself after `iotask lms init` (the embedded default); on
    MariaDB a second database with forma's own 3.x DDL (3-byte utf8, zero dates, seed rows)."""
    if backend == "mariadb":
        for url in _fresh_server_database("mariadb"):
            load_forma_ddl(url)
            yield url
        return
    result = run_cli("--db", migrated_url, "lms", "init")
    assert result.code == 0, result.err
    yield migrated_url
