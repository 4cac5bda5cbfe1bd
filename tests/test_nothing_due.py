"""run-due's quick look (``iotask.nothing_due``): with nothing due, `iotask run-due` answers
without importing SQLAlchemy; with anything due it runs as before; and the quick look's verdict
is the full run-due's for every kind of task, on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from conftest import add_waiting_task, run_cli
from iotask.connectors import databases

from iotask import config, nothing_due
from iotask.clock import utcnow
from iotask.models import Task, TaskRun

# Runs the CLI as the console script does, then writes its exit code and the modules it loaded.
PROBE = """
import json, os, sys
from iotask.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
with open(os.environ["PROBE_OUT"], "w") as out:
    json.dump({"code": code, "modules": sorted(sys.modules)}, out)
"""


def probe(tmp_path: Path, *args: str, **env: str) -> tuple[int, set[str], str]:
    """`iotask ARGS` in a fresh interpreter: its exit code, the top-level packages it
    imported, and what it printed on stdout."""
    out = tmp_path / "probe.json"
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120,
                          env={**os.environ, "PROBE_OUT": str(out), "IOTASK_TIMEZONE": "UTC",
                               **env})
    assert "Traceback" not in done.stderr, done.stderr
    found = json.loads(out.read_text())
    return found["code"], {name.split(".")[0] for name in found["modules"]}, done.stdout


def test_nothing_due_is_told_without_sqlalchemy_and_a_due_task_still_runs(iotask, engine,
                                                                         migrated_url, tmp_path):
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (userid VARCHAR(20) PRIMARY KEY, "
                             "name VARCHAR(50))"))
    add_waiting_task(iotask, tmp_path)
    log = tmp_path / "run.log"
    code, modules, out = probe(tmp_path, "--db", migrated_url, "run-due", IOTASK_LOG=str(log))
    assert (code, out) == (0, "")
    assert "sqlalchemy" not in modules
    assert log.exists() and log.read_text() == ""  # opened as the runner opens it
    code, modules, out = probe(tmp_path, "--db", migrated_url, "-v", "run-due")
    assert (code, out) == (0, "nothing due\n")
    assert "sqlalchemy" not in modules

    iotask("reset", "daily")
    code, modules, out = probe(tmp_path, "--db", migrated_url, "-v", "run-due")
    assert code == 0 and out.startswith("daily: success in "), out
    assert "sqlalchemy" in modules
    assert [run["status"] for run in iotask("history", "daily", "--json").json()] == [
        "success", "reset"]


def scenarios(now: datetime, zone: ZoneInfo) -> dict[str, dict]:
    """One enabled task's columns per case: what due-ness is decided from."""
    local = now.replace(tzinfo=UTC).astimezone(zone)
    hour_ago, in_an_hour = local - timedelta(hours=1), local + timedelta(hours=1)
    return {
        "never ran": {"last_execution": None},
        "every 6 hours, ran 1 h ago": {"schedule_type": "any", "schedule": "6 hour",
                                       "last_execution": now - timedelta(hours=1)},
        "every 6 hours, ran 7 h ago": {"schedule_type": "any", "schedule": "6 hour",
                                       "last_execution": now - timedelta(hours=7)},
        "every 2 days, ran now": {"schedule_type": "any", "schedule": "2 day",
                                  "last_execution": now},
        "at an hour ago, ran 2 h ago": {"schedule_type": "at", "schedule": f"{hour_ago:%H:%M}",
                                        "last_execution": now - timedelta(hours=2)},
        "at an hour ago, ran 30 min ago": {"schedule_type": "at",
                                           "schedule": f"{hour_ago:%H:%M}",
                                           "last_execution": now - timedelta(minutes=30)},
        "at in an hour, ran 2 h ago": {"schedule_type": "at", "schedule": f"{in_an_hour:%H:%M}",
                                       "last_execution": now - timedelta(hours=2)},
        "cron every 15 min, ran 20 min ago": {"schedule_type": "cron",
                                              "schedule": "*/15 * * * *",
                                              "last_execution": now - timedelta(minutes=20)},
        "cron daily, ran now": {"schedule_type": "cron", "schedule": "@daily",
                                "last_execution": now},
        "cron weekdays an hour ago, ran 2 h ago": {
            "schedule_type": "cron", "schedule": f"{hour_ago.minute} {hour_ago.hour} * * 1-5",
            "last_execution": now - timedelta(hours=2)},
        "failed, retry in 4 min": {"schedule_type": "any", "schedule": "1 hour",
                                   "last_execution": None, "fail_count": 1,
                                   "last_attempt": now - timedelta(minutes=1)},
        "failed, retry passed": {"schedule_type": "any", "schedule": "1 hour",
                                 "last_execution": None, "fail_count": 1,
                                 "last_attempt": now - timedelta(minutes=10)},
        "failed 3 times, daily, retry in 10 min": {
            "schedule_type": "cron", "schedule": "@daily", "fail_count": 3,
            "last_execution": now - timedelta(hours=1),
            "last_attempt": now - timedelta(minutes=10)},
        "locked, not due": {"last_execution": now, "locked_by": "elsewhere:1",
                            "locked_until": now + timedelta(minutes=5), "running": True},
        "locked, due": {"last_execution": None, "locked_by": "elsewhere:1",
                        "locked_until": now + timedelta(minutes=5), "running": True},
        "runner died, not due": {"last_execution": now, "locked_by": "dead:1",
                                 "locked_until": now - timedelta(minutes=1), "running": True},
        "lease expired, no run, not due": {"last_execution": now, "locked_by": "gone:1",
                                           "locked_until": now - timedelta(minutes=1)},
        "disabled, due": {"last_execution": None, "enabled": False},
        "unreadable schedule": {"schedule_type": "weekly", "schedule": "monday"},
        "parked": {"last_execution": datetime(9999, 12, 30)},
        "typed by hand, ran now": {"schedule_type": "any", "schedule": "1 day",
                                   "typed": f"{now:%Y-%m-%d %H:%M}"},
    }


DEFAULTS = {"schedule_type": "any", "schedule": "1 day", "last_execution": None,
            "fail_count": 0, "last_attempt": None, "locked_by": None, "locked_until": None,
            "enabled": True}


def full_run_due_finds_nothing(engine: sa.Engine, url: str) -> bool:
    """The full run-due (--json never takes the quick look): nothing run, nothing marked."""
    with engine.connect() as conn:
        before = conn.scalar(sa.select(sa.func.count()).where(TaskRun.status == "abandoned"))
    result = run_cli("--db", url, "run-due", "--json")
    with engine.connect() as conn:
        after = conn.scalar(sa.select(sa.func.count()).where(TaskRun.status == "abandoned"))
    report = json.loads(result.out)
    return before == after and all(not task["executed"] and task["note"] == "not due"
                                   for task in report["tasks"])


@pytest.mark.parametrize("zone", ["Europe/Rome", "America/New_York", "Asia/Kolkata"])
def test_the_quick_look_judges_every_kind_of_task_as_the_full_run_due(samples, engine,
                                                                      migrated_url, zone,
                                                                      monkeypatch):
    monkeypatch.setenv("IOTASK_TIMEZONE", zone)
    samples("task", "add", "case", "--source", "src", "--destination", "ledger")
    samples("task", "add", "other", "--source", "src", "--destination", "ledger")
    with engine.begin() as conn:
        conn.execute(sa.update(Task).where(Task.name == "other").values(enabled=False))
    verdicts = {}
    for case, columns in scenarios(utcnow(), ZoneInfo(zone)).items():
        now = utcnow()
        values = {**DEFAULTS, **{k: v for k, v in columns.items()
                                 if k not in ("running", "typed")}}
        with engine.begin() as conn:
            conn.execute(sa.update(TaskRun).where(TaskRun.status == "running")
                         .values(status="abandoned"))
            conn.execute(sa.update(Task).where(Task.name == "case").values(**values))
            if "typed" in columns:
                conn.execute(sa.text("UPDATE core_task SET last_execution = :typed "
                                     "WHERE name = 'case'"), {"typed": columns["typed"]})
            if columns.get("running"):
                conn.execute(sa.insert(TaskRun).values(task="case", triggered_by="cron",
                                                       runner=values["locked_by"], started=now,
                                                       status="running"))
        quick = nothing_due.nothing_due(config.load(migrated_url))
        verdicts[case] = full_run_due_finds_nothing(engine, migrated_url)
        assert quick == verdicts[case], f"{case} in {zone}: quick look said {quick}"
    # the cases cover both answers, and these are what they are in any zone
    assert {case: verdicts[case] for case in ("never ran", "every 6 hours, ran 1 h ago",
                                              "failed, retry in 4 min", "locked, not due",
                                              "runner died, not due", "disabled, due",
                                              "unreadable schedule", "parked")} == {
        "never ran": False, "every 6 hours, ran 1 h ago": True,
        "failed, retry in 4 min": True, "locked, not due": True,
        "runner died, not due": False, "disabled, due": True,
        "unreadable schedule": False, "parked": True}


def test_a_database_not_at_this_iotasks_head_goes_the_full_way(migrated_url, engine):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0003'"))
    assert nothing_due.nothing_due(config.load(migrated_url)) is False
    result = run_cli("--db", migrated_url, "run-due")
    assert result.code == 2 and "is at revision 0003" in result.err


def test_a_missing_sqlite_file_is_not_created(tmp_path):
    missing = tmp_path / "none.db"
    assert nothing_due.nothing_due(config.load(f"sqlite:///{missing}")) is False
    assert not missing.exists()


@pytest.mark.parametrize("url", [
    "sqlite:///iotask.db",
    "sqlite:////var/lib/iotask/iotask.db",
    "mysql+pymysql://root@localhost/iotask?unix_socket=/tmp/dbs/mariadb.sock&charset=utf8mb4",
    "mysql://us%40er:p%40ss%2Fw:rd@db.example:3307/iotask",
    "mariadb+pymysql://iotask:secret@127.0.0.1/io%20task?charset=utf8",
    "mariadb://root@/iotask?unix_socket=/run/mysqld/mysqld.sock",
    "postgresql+psycopg://postgres@/iotask?host=/tmp/dbs/pgsock",
    "postgresql://iotask:p%3Ass@db.example:5433/iotask",
])
def test_connect_arguments_are_sqlalchemys(url):
    """What the quick look hands the driver is what SQLAlchemy's dialect would."""
    where = nothing_due.target(url)
    assert where is not None
    engine = sa.create_engine(databases.parse_url(url))
    args, params = engine.dialect.create_connect_args(engine.url)
    if where.backend == "sqlite":
        assert [os.path.abspath(where.connect["database"])] == args
        return
    params.pop("client_flag", None)  # PyMySQL's FOUND_ROWS, added when connecting
    params.pop("context", None)  # psycopg's adapters: types the scheduling columns do not use
    assert (where.connect, args) == (params, [])


@pytest.mark.parametrize("url", [
    "sqlite://", "sqlite:///:memory:", "sqlite:///~/iotask.db", "sqlite:///x.db?mode=ro",
    "mysql+pymysql://root@[::1]/iotask", "mysql+mysqldb://root@localhost/iotask",
    "mysql://root@localhost/iotask?ssl_ca=/ca.pem", "mysql://root@localhost:33x6/iotask",
    "mysql://root@localhost/iotask?charset=a&charset=b", "mysql://root@localhost",
    "postgresql+psycopg2://postgres@localhost/iotask", "postgres://postgres@localhost/iotask",
    "postgresql://postgres@localhost/iotask?sslmode=require", "oracle://scott@host/orcl",
    "not a url",
])
def test_other_urls_go_the_full_way(url):
    assert nothing_due.target(url) is None


def test_no_tls_through_a_local_socket(monkeypatch):
    """A MariaDB reached through its unix socket is connected without TLS, by the full path
    and by the quick look alike: PyMySQL 1.2 would otherwise try TLS and load the system's CA
    store for every connection (30 ms each), which protects nothing on a local socket."""
    from conftest import server_url

    url = server_url("mariadb")
    assert "unix_socket=" in url  # as scripts/dbservers starts it
    engine = databases.make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection.ssl is False
    finally:
        engine.dispose()
    import pymysql

    seen: list[dict] = []
    real = pymysql.connect

    def connect(**arguments):
        seen.append(arguments)
        return real(**arguments)

    monkeypatch.setattr(pymysql, "connect", connect)
    where = nothing_due.target(url)
    assert where is not None
    try:
        nothing_due._look(where, ZoneInfo("UTC"))
    except pymysql.MySQLError:
        pass  # the server's own database need not hold iotask's tables: connecting is the point
    assert [arguments.get("ssl_disabled") for arguments in seen] == [True]
