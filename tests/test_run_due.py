"""run-due, run, reset, status and history as cron and operators use them."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import assert_user_error
from iotask.connectors.errors import LeaseLost

import iotask.runner
from iotask.claims import Lease
from iotask.clock import utcnow
from iotask.db import make_engine


@pytest.fixture
def setup(samples):
    """Sample connectors registered; a source and a ledger connection."""
    return samples


def add_task(iotask, name, source="src", *extra):
    iotask("task", "add", name, "--source", source, "--destination", "ledger", *extra)


def ledger_rows(engine, task=None):
    query = "SELECT task, run_id, seq FROM test_ledger"
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("test_ledger"):
            return []
        rows = conn.execute(sa.text(query)).all()
    return [tuple(r) for r in rows if task is None or r[0] == task]


def runs(iotask, name):
    return iotask("history", name, "--json").json()


def test_quiet_on_success_and_not_twice(setup, engine):
    add_task(setup, "users")
    first = setup("run-due")
    assert (first.out, first.err) == ("", "")
    assert sorted(r[2] for r in ledger_rows(engine)) == [1, 2, 3]
    assert setup("run-due").out == ""  # ran today already: not due
    assert len(ledger_rows(engine)) == 3
    task = setup("task", "show", "users", "--json").json()
    assert task["last_status"] == "success" and task["last_execution"] is not None
    [run] = runs(setup, "users")
    assert run["status"] == "success" and run["trigger"] == "cron"
    assert run["counts"]["read"] == 3 and run["counts"]["inserted"] == 3


def test_verbose_json_and_xml_outputs(setup):
    add_task(setup, "a & <b>", "src", "--sequence", "1")
    setup("connection", "add", "bad", "--type", "test-source", "--set", "bad_rows=2")
    add_task(setup, "with errors", "bad", "--sequence", "2")
    verbose = setup("-v", "run-due")
    lines = verbose.out.splitlines()
    assert lines[0].startswith("a & <b>: success in ") and "inserted 3" in lines[0]
    assert lines[1].startswith("with errors: partial") and "failed 1" in lines[1]
    assert "1 rows rejected" in verbose.err  # cron mails row errors
    assert setup("-v", "run-due").out == "nothing due\n"
    setup("reset", "--all")
    data = setup("run-due", "--json").json()
    assert data["ok"] is True
    assert [(t["task"], t["status"]) for t in data["tasks"]] == [
        ("a & <b>", "success"), ("with errors", "partial")]
    assert data["tasks"][1]["row_errors"] == [
        {"row": 2, "key": "2", "column": "seq", "message": "bad value"}]
    setup("reset", "with errors")
    root = ET.fromstring(setup("run-due", "--xml").out)
    assert root.tag == "iotasks"
    by_name = {node.get("name"): node for node in root}
    assert by_name["a & <b>"].get("executed") == "FALSE"
    assert by_name["a & <b>"].get("scheduledDate")
    done = by_name["with errors"]
    assert (done.get("executed"), done.get("status"), done.get("inserted")) == (
        "TRUE", "partial", "2")
    [row] = done.findall("row")
    assert (row.get("index"), row.findtext("pk"), row.findtext("error")) == (
        "2", "2", "bad value")


def test_hand_edit_of_last_execution_makes_it_due(setup, engine):
    add_task(setup, "users", "src", "--at", "02:30", "--now")
    setup("run-due")
    assert len(ledger_rows(engine)) == 3
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE core_task SET last_execution = NULL WHERE name = 'users'"))
    setup("run-due")
    assert len(ledger_rows(engine)) == 6
    yesterday = utcnow() - timedelta(days=2)
    with engine.begin() as conn:  # the Docebo workaround: last_execution = an earlier day
        conn.execute(sa.text("UPDATE core_task SET last_execution = :t WHERE name = 'users'"),
                     {"t": yesterday})
    setup("run-due")
    assert len(ledger_rows(engine)) == 9


def delete_connection_behind_iotasks_back(engine, backend, name):
    """What a DBA can do with foreign key checks off: leave a task naming a missing connection."""
    if backend == "sqlite":  # the sqlite3 shell leaves foreign keys off
        with contextlib.closing(sqlite3.connect(engine.url.database)) as raw:
            raw.execute("DELETE FROM core_connection WHERE name = ?", (name,))
            raw.commit()
        return
    with engine.begin() as conn:
        if backend == "mariadb":
            conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
        else:
            conn.execute(sa.text("SET session_replication_role = replica"))
        conn.execute(sa.text("DELETE FROM core_connection WHERE name = :n"), {"n": name})


def test_one_failing_task_never_stops_the_others(setup, engine, backend):
    iotask = setup
    iotask("connection", "add", "doomed", "--type", "test-source")
    add_task(iotask, "1 missing connection", "doomed", "--sequence", "1")
    iotask("connector", "register", "third_party_connector")
    iotask("connection", "add", "ldap", "--type", "ldap-directory", "--set", "server=ldap://x",
           "--set", "bind_password=secret-pw")
    add_task(iotask, "2 broken module", "ldap", "--sequence", "2")
    iotask("connection", "add", "badparams", "--type", "test-source")
    add_task(iotask, "3 bad params", "badparams", "--sequence", "3")
    iotask("connection", "add", "explodes", "--type", "test-source", "--set", "fail=true")
    add_task(iotask, "4 source raises", "explodes", "--sequence", "4")
    add_task(iotask, "5 fine", "src", "--sequence", "5")
    delete_connection_behind_iotasks_back(engine, backend, "doomed")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE core_connector SET file = 'vanished_vendor.ldap' "
                             "WHERE type = 'ldap-directory'"))
        conn.execute(sa.text("UPDATE core_connection SET params = '{not json' "
                             "WHERE name = 'badparams'"))
    result = iotask("run-due", ok=False)
    assert result.code == 1
    assert "Traceback" not in result.err and "secret-pw" not in result.err
    problems = result.err.strip().splitlines()
    assert len(problems) == 4, result.err
    assert "does not exist" in problems[0]
    assert "vanished_vendor.ldap" in problems[1]
    assert "not valid JSON" in problems[2]
    assert "source broke at row 2" in problems[3]
    assert {r[0] for r in ledger_rows(engine)} == {"5 fine"}  # nothing partial from task 4
    status = {t["name"]: t for t in iotask("status", "--json").json()}
    assert status["5 fine"]["last_status"] == "success"
    for name in ("1 missing connection", "2 broken module", "3 bad params", "4 source raises"):
        assert status[name]["last_status"] == "failed" and status[name]["fail_count"] == 1
        assert status[name]["last_execution"] is None
    [broken] = runs(iotask, "4 source raises")  # a row was written, then rolled back
    assert broken["counts"]["read"] == 1 and broken["counts"]["inserted"] == 0


def set_last_attempt(engine, name, minutes_ago):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE core_task SET last_attempt = :t WHERE name = :n"),
                     {"t": utcnow() - timedelta(minutes=minutes_ago), "n": name})


def test_failed_run_backoff_reset_and_run(setup, engine):
    iotask = setup
    iotask("connection", "add", "flaky", "--type", "test-source", "--set", "fail=true")
    add_task(iotask, "users", "flaky", "--every", "1 day")
    assert iotask("run-due", ok=False).code == 1
    task = iotask("task", "show", "users", "--json").json()
    assert task["last_execution"] is None and task["fail_count"] == 1
    assert iotask("run-due").out == ""  # backing off: not run again at once
    assert len(runs(iotask, "users")) == 1
    set_last_attempt(engine, "users", 6)  # 5 minutes after one failure: due again
    assert iotask("run-due", ok=False).code == 1
    assert iotask("task", "show", "users", "--json").json()["fail_count"] == 2
    set_last_attempt(engine, "users", 6)  # two failures: 10 minutes
    iotask("run-due")
    assert len(runs(iotask, "users")) == 2
    set_last_attempt(engine, "users", 11)
    assert iotask("run-due", ok=False).code == 1
    assert len(runs(iotask, "users")) == 3

    iotask("connection", "edit", "flaky", "--set", "fail=false")
    assert iotask("run-due").out == ""  # still backing off
    reset = iotask("reset", "--failed")
    assert reset.out.startswith("users: last_execution none -> none, fail_count 3 -> 0")
    iotask("run-due")
    history = runs(iotask, "users")
    assert [r["status"] for r in history] == ["success", "reset", "failed", "failed", "failed"]
    assert history[1]["trigger"] == "manual" and "fail_count 3 -> 0" in history[1]["error"]
    task = iotask("task", "show", "users", "--json").json()
    assert task["fail_count"] == 0 and task["last_status"] == "success"

    manual = iotask("-v", "run", "users")  # runs now although not due
    assert manual.out.startswith("users: success")
    assert runs(iotask, "users")[0]["trigger"] == "manual"
    assert len(ledger_rows(engine)) == 6


def test_reset_to_a_time_and_validation(setup):
    add_task(setup, "users", "src", "--at", "02:30")
    setup("run-due")
    out = setup("reset", "users", "--to", "2026-11-20 02:00").out
    assert "-> 2026-11-20 02:00:00 CET" in out
    assert setup("task", "show", "users", "--json").json()["last_execution"] == (
        "2026-11-20T02:00:00+01:00")
    assert_user_error(setup("reset", ok=False), "--failed or --all")
    assert_user_error(setup("reset", "users", "--all", ok=False), "one of them")
    assert_user_error(setup("reset", "users", "--to", "yesterday", ok=False),
                      "expected YYYY-MM-DD HH:MM")
    assert_user_error(setup("reset", "nobody", ok=False), "no task named 'nobody'")


def test_running_task_is_not_run_or_reset_twice(setup, engine):
    add_task(setup, "users")
    until = utcnow() + timedelta(minutes=5)
    with engine.begin() as conn:  # as if another host were running it now
        conn.execute(sa.text("UPDATE core_task SET locked_by = 'other-host:42:beef', "
                             "locked_until = :u WHERE name = 'users'"), {"u": until})
        conn.execute(sa.text(
            "INSERT INTO core_task_run (task, triggered_by, runner, started, status) "
            "VALUES ('users', 'cron', 'other-host:42', :s, 'running')"),
            {"s": utcnow() - timedelta(minutes=1)})
    assert setup("run-due").out == ""
    assert ledger_rows(engine) == []
    manual = setup("run", "users", ok=False)
    assert manual.code == 1 and "running on other-host:42 since" in manual.err
    refused = setup("reset", "users", ok=False)
    assert refused.code == 1 and "--force" in refused.err
    forced = setup("reset", "users", "--force")
    assert "running run marked abandoned" in forced.out
    assert [r["status"] for r in runs(setup, "users")] == ["reset", "abandoned"]
    setup("run-due")
    assert len(ledger_rows(engine)) == 3


def test_nothing_to_process_counts_as_executed(setup):
    setup("connection", "add", "empty", "--type", "test-source", "--set", "nothing=true")
    add_task(setup, "users", "empty")
    assert setup("run-due").code == 0
    task = setup("task", "show", "users", "--json").json()
    assert task["last_status"] == "nothing_to_process" and task["last_execution"] is not None
    assert runs(setup, "users")[0]["error"] == "no new file"


def test_disabled_tasks_are_skipped_by_run_due_but_run_by_run(setup, engine):
    add_task(setup, "users")
    setup("task", "disable", "users")
    setup("run-due")
    assert ledger_rows(engine) == []
    assert setup("status", "--json").json()[0]["next_due"] == "disabled"
    setup("run", "users")
    assert len(ledger_rows(engine)) == 3


def test_run_unknown_task_and_status_table(setup, engine):
    assert_user_error(setup("run", "nobody", ok=False), "no task named 'nobody'")
    add_task(setup, "users")
    assert_user_error(setup("run", "users", "nobody", ok=False), "no task named 'nobody'")
    assert ledger_rows(engine) == []  # nothing ran before the mistake was found
    table = setup("status").out.splitlines()
    assert table[0].split()[:3] == ["NAME", "SCHEDULE", "NEXT"]
    assert "now" in table[1]
    setup("run-due")
    history = setup("history", "users").out
    assert "success" in history.splitlines()[1]
    assert_user_error(setup("history", "nobody", ok=False), "no task named")


def test_log_file_gets_start_and_end(setup, tmp_path, monkeypatch):
    log_file = tmp_path / "iotask.log"
    monkeypatch.setenv("IOTASK_LOG", str(log_file))
    add_task(setup, "users")
    assert setup("run-due").err == ""
    text = log_file.read_text()
    assert "task users: run 1 started (cron" in text
    assert "task users: run 1 success in" in text and "inserted 3" in text


@pytest.mark.parametrize("backend", ["sqlite"])
def test_syslog_gets_start_and_end(setup, monkeypatch):
    """A real UDP syslog receiver on loopback (syslog:HOST:PORT)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    monkeypatch.setenv("IOTASK_LOG", f"syslog:127.0.0.1:{receiver.getsockname()[1]}")
    add_task(setup, "users")
    try:
        assert setup("run-due").err == ""
        messages = [receiver.recv(4096).decode() for _ in range(2)]
    finally:
        receiver.close()
    assert messages[0].startswith("<14>iotask[")  # facility user, severity info
    assert "task users: run 1 started (cron" in messages[0]
    assert "task users: run 1 success in" in messages[1]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_bad_syslog_address_is_named(setup, monkeypatch):
    monkeypatch.setenv("IOTASK_LOG", "syslog:nowhere")
    assert_user_error(setup("run-due", ok=False), "expected syslog, syslog:/path/to/socket")


def test_lease_check_joins_the_destination_transaction_only_on_the_iotask_database(
        setup, engine, migrated_url, tmp_path):
    add_task(setup, "users")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE core_task SET locked_by = 'me:1:aa', locked_until = :u "
                             "WHERE name = 'users'"), {"u": utcnow()})
    lease = Lease(engine, migrated_url, "users", "me:1:aa", 60)
    same = make_engine(migrated_url)
    with same.connect() as conn:
        trans = conn.begin()
        lease.check(conn)  # renewed inside this transaction: invisible until it commits
        trans.rollback()
    with engine.connect() as conn:
        until = conn.execute(sa.text("SELECT locked_until FROM core_task")).scalar()
    assert str(until) < str(utcnow() + timedelta(seconds=30))
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with other.connect() as conn, conn.begin():
        lease.check(conn)  # another database: renewed on the lease's own connection
    with engine.connect() as conn:
        until = conn.execute(sa.text("SELECT locked_until FROM core_task")).scalar()
    assert str(until) > str(utcnow() + timedelta(seconds=30))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE core_task SET locked_by = 'thief:2:bb'"))
    with pytest.raises(LeaseLost):
        lease.check()
    same.dispose()
    other.dispose()


def test_reading_commands_do_not_wait_for_a_long_import(setup, migrated_url, tmp_path):
    """On SQLite an import into the iotask database holds the write lock; reads go on."""
    marker = tmp_path / "half"
    setup("connection", "add", "slow", "--type", "test-source", "--set", "rows=40",
          "--set", "delay_ms=100", "--set", f"marker={marker}")
    add_task(setup, "slow import", "slow")
    add_task(setup, "other")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    runner = subprocess.Popen([str(Path(sys.executable).parent / "iotask"), "--db", migrated_url,
                               "run", "slow import"], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline and runner.poll() is None
            time.sleep(0.05)
        started = time.monotonic()
        status = {t["name"]: t for t in setup("status", "--json").json()}
        assert status["slow import"]["next_due"].startswith("running (")
        assert setup("history", "slow import", "--json").json()[0]["status"] == "running"
        assert setup("task", "list", "--json").json()
        assert time.monotonic() - started < 3  # not stuck behind the import's transaction
    finally:
        assert runner.wait(timeout=60) == 0
    assert runs(setup, "slow import")[0]["counts"]["inserted"] == 40


def test_a_run_whose_row_errors_cannot_be_stored_is_still_recorded(setup, monkeypatch):
    """The outcome is kept and the task freed, rather than left locked until its lease ends."""
    broken = sa.Table("no_such_table", sa.MetaData(), sa.Column("run_id", sa.Integer),
                      sa.Column("row_index", sa.Integer), sa.Column("key_values", sa.Text),
                      sa.Column("column_name", sa.Text), sa.Column("message", sa.Text))
    monkeypatch.setattr(iotask.runner, "TaskRunError", broken)
    setup("connection", "add", "bad", "--type", "test-source", "--set", "bad_rows=2")
    add_task(setup, "users", "bad")
    assert setup("run-due").code == 0
    [run] = runs(setup, "users")
    assert run["status"] == "partial" and run["counts"]["failed"] == 1
    assert "1 row errors could not be stored" in run["error"]
    task = setup("task", "show", "users", "--json").json()
    assert task["locked_by"] is None and task["last_execution"] is not None


def test_an_unexpected_error_logs_its_traceback_to_the_log_not_the_terminal(setup, tmp_path,
                                                                             monkeypatch):
    """A connector's bug fails its task with one line on stderr; the log file gets the
    traceback at ERROR, for whoever fixes the bug."""
    iotask = setup
    iotask("connection", "add", "explodes", "--type", "test-source", "--set", "fail=true")
    add_task(iotask, "raises", "explodes")
    log_file = tmp_path / "iotask.log"
    monkeypatch.setenv("IOTASK_LOG", str(log_file))
    result = iotask("run", "raises", ok=False)
    assert result.code == 1 and "Traceback" not in result.err
    assert "source broke at row 2" in result.err
    logged = log_file.read_text(encoding="utf-8")
    assert "ERROR iotask.runner" in logged and "task raises failed on an unexpected error" in logged
    assert "Traceback (most recent call last)" in logged
    assert "RuntimeError: source broke at row 2" in logged
