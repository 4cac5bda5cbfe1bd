"""Regression tests for the defects hostile testing and a new user's first day found: each one
failed before its fix. Through the CLI, as a user meets them; on all three databases where the
database takes part."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from conftest import aged, assert_user_error, run_cli
from servers import PASSWORD, start_ftp
from test_dataflow import OWNER, Site, counts, users, write_csv
from test_intake import add_intake, content, task_json, users_table, write
from test_progress import _attached

from iotask import db as iotask_db

IOTASK = str(Path(sys.executable).parent / "iotask")


@pytest.fixture
def site(iotask, engine, tmp_path) -> Site:
    return Site(iotask, engine, tmp_path)


# --- guards that a NaN switched off --------------------------------------------------------


@pytest.mark.parametrize("limit", ["nan%", "NaN%", "inf", "-inf%", "1e3", "١٠", "0x10", " %"])
def test_a_limit_that_is_not_a_plain_number_is_refused(site, limit):
    write_csv(site.file, users(10))
    site.task("--import-type", "sync")
    for option in ("--max-remove", "--max-errors"):
        assert_user_error(site.iotask("task", "edit", "users", option, limit, ok=False),
                          "must be a count such as 100 or a percent such as 5%")


def test_a_nan_limit_written_by_hand_fails_the_run_and_removes_nothing(site):
    write_csv(site.file, users(10))
    site.task("--import-type", "sync")
    assert counts(site.run())["inserted"] == 10
    with site.engine.begin() as conn:
        conn.execute(sa.text("UPDATE core_task SET max_remove = 'nan%', max_errors = 'NaN%' "
                             "WHERE name = 'users'"))
    write_csv(site.file, users(1))  # 9 of 10 records would go
    result = site.run(ok=False)
    assert result.code == 1
    task = result.json()["tasks"][0]
    assert task["status"] == "failed" and "core_task.max_errors" in task["error"]
    assert "iotask task edit users --max-errors" in task["error"]
    assert len(site.content()) == 10


# --- a symlink in an import folder ---------------------------------------------------------


@pytest.fixture
def lms(iotask, engine) -> sa.Table:
    table = users_table(engine)
    iotask("connection", "add", "lms", "--type", "sql", "--set", "table=lms_user")
    return table


def test_a_symlink_out_of_the_file_roots_is_never_read(iotask, engine, lms, tmp_path):
    """The folder's good file is applied and renamed; the link to /etc/passwd fails on its own
    and is left where it is; preview and run show nothing of what it points to."""
    inbox = tmp_path / "in"
    write(inbox / "good.csv", "u1,Ann\nu2,Bob\n", age=100)
    os.symlink("/etc/passwd", inbox / "p.csv")
    add_intake(iotask, f"{inbox}/", "consume=rename")

    preview = iotask("task", "preview", "intake", ok=False)
    assert "root:" not in preview.out + preview.err
    assert preview.code == 2 and "outside the folders iotask may use" in preview.err

    result = iotask("run", "intake", "--json", ok=False)
    task = result.json()["tasks"][0]
    assert task["status"] == "failed" and "p.csv" in task["error"]
    assert "outside the folders iotask may use" in task["error"]
    assert task["counts"]["inserted"] == 2 and content(engine, lms) == {"u1": "Ann", "u2": "Bob"}
    assert "root" not in str(content(engine, lms))
    assert sorted(p.name for p in inbox.iterdir()) == ["good.csv.imported", "p.csv"]
    with engine.connect() as conn:
        imported = conn.execute(sa.text("SELECT name FROM core_task_file")).scalars().all()
    assert imported == ["good.csv"]
    history = iotask("history", "intake", "--json").json()[0]
    assert history["counts"]["inserted"] == 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_file_applied_but_not_renamed_keeps_its_counts(iotask, engine, lms, tmp_path):
    """The server refuses the rename after the rows were committed: the run says so, with the
    counts of what is in the table, and the next run does not import the content again."""
    root = tmp_path / "ftp"
    write(root / "out" / "users.csv", "u1,Ann\nu2,Bob\n")
    with start_ftp(root, perm="elr") as server:  # list and read only: no rename
        add_intake(iotask, server.url("/out/"), f"password={PASSWORD}", "retries=0")
        task = task_json(iotask, ok=False)
        assert task["status"] == "failed" and "could not be marked imported" in task["error"]
        assert task["counts"]["inserted"] == 2
        assert content(engine, lms) == {"u1": "Ann", "u2": "Bob"}
        again = task_json(iotask, ok=False)
        assert again["counts"]["inserted"] == 0 and "already imported" in again["error"]


# --- guards judge each file of a folder on its own -------------------------------------------


def test_each_file_of_a_folder_is_judged_on_its_own_rows(iotask, engine, lms, tmp_path):
    inbox = tmp_path / "in"
    write(inbox / "a.csv", "".join(f"u{n},A{n}\n" for n in range(50)), age=300)
    write(inbox / "b.csv", "".join(f"v{n},B{n}\n" for n in range(50))
          + "".join(f"x{n}\n" for n in range(20)), age=200)  # 20 of 70 rows bad
    write(inbox / "c.csv", "".join(f"w{n},C{n}\n" for n in range(50)), age=100)
    iotask("connection", "add", "drop", "--type", "csv", "--set", f"url={inbox}/")
    iotask("task", "add", "intake", "--source", "drop", "--destination", "lms",
           "--max-errors", "10%")
    task = task_json(iotask, ok=False)
    assert task["status"] == "failed"
    assert task["error"].startswith("1 of 3 files failed (b.csv: "), task["error"]
    assert "20 of 70 rows rejected" in task["error"]
    assert task["counts"]["inserted"] == 100 and task["counts"]["failed"] == 20
    assert task["counts"]["read"] == 170
    assert len(content(engine, lms)) == 100
    assert sorted(p.name for p in inbox.iterdir()) == ["a.csv.imported", "b.csv",
                                                       "c.csv.imported"]


# --- secrets in every output -----------------------------------------------------------------


def test_a_value_too_long_for_its_column_is_one_line_without_the_password(iotask):
    result = iotask("connection", "add", "x", "--type", "csv", "--set", "url=in/x.csv",
                    "--set", "password=S3cr3tPw", "--description", "d" * 256, ok=False)
    assert_user_error(result, "description is 256 characters long: at most 255")
    assert "S3cr3tPw" not in result.out + result.err and "Traceback" not in result.err
    assert iotask("connection", "list", "--json").json() == []


def test_a_password_in_a_database_urls_query_string_is_masked(iotask, tmp_path, monkeypatch):
    """In `connection show`, the run's error, history and the log file."""
    log_file = tmp_path / "iotask.log"
    monkeypatch.setenv("IOTASK_LOG", str(log_file))
    source = write(tmp_path / "users.csv", "u1,Ann\n")
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    url = "postgresql+psycopg://lms@127.0.0.1:1/lms?connect_timeout=2&password=QpW0rd99"
    iotask("connection", "add", "far", "--type", "sql", "--set", f"database={url}",
           "--set", "table=lms_user")
    iotask("task", "add", "t", "--source", "hr", "--destination", "far")
    shown = iotask("connection", "show", "far").out + iotask("connection", "list", "--json").out
    ran = iotask("run", "t", "--json", ok=False)
    assert ran.json()["tasks"][0]["status"] == "failed"
    history = iotask("history", "t").out + iotask("history", "t", "--json").out
    everything = shown + ran.out + ran.err + history + log_file.read_text(encoding="utf-8")
    assert "password=***" in shown and "cannot connect" in history
    assert "QpW0rd99" not in everything


@pytest.mark.parametrize("url", ["ftp://bob:pa/ssW0rdX@127.0.0.1/in/",
                                 "ftp://bob:pa@ss@W0rdX@127.0.0.1/in/"])
def test_a_malformed_url_is_never_echoed_with_its_password(iotask, url):
    added = iotask("connection", "add", "f", "--type", "csv", "--set", f"url={url}", ok=False)
    output = added.out + added.err
    if added.code == 0:
        output += iotask("connection", "show", "f").out
        output += iotask("connection", "list", "--json").out
    assert "ssW0rdX" not in output and "W0rdX" not in output and "Traceback" not in output


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_malformed_database_url_is_never_echoed_with_its_password(iotask):
    result = iotask("--db", "mysql+pymysql//root:pw@localhost/lms", "status", ok=False)
    assert result.code == 2 and "pw@" not in result.err and "Traceback" not in result.err
    assert "root:***@" in result.err


# --- the Docebo XML report ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_xml_report_is_well_formed_whatever_the_data_holds(iotask, engine, lms, tmp_path):
    source = tmp_path / "users.csv"
    source.write_bytes(b"userid,firstname\r\na\x01b,Ann\r\na\x01b,Again\r\nc\x0bd,Cy\r\n")
    aged(source)
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    iotask("task", "add", "t\x7fx", "--source", "hr", "--destination", "lms",
           "--max-errors", "100%", ok=False)  # a name with a control character is refused
    iotask("task", "add", "t", "--source", "hr", "--destination", "lms", "--max-errors", "100%")
    result = iotask("run", "t", "--xml")
    root = ET.fromstring(result.out.encode("utf-8"))
    (task,) = root.iter("iotask")
    assert task.get("status") == "partial"
    keys = [pk.text for pk in task.iter("pk")]
    assert any("a\\x01b" in (key or "") for key in keys), keys


# --- one hand-edited task never stops the others -------------------------------------------


def test_invalid_task_rows_fail_alone_and_free_their_claim(samples, engine):
    iotask = samples
    for number in range(1, 8):
        iotask("task", "add", f"h{number}", "--source", "src", "--destination", "ledger",
               "--sequence", str(number))
    edits = {"h2": "schedule_type = 'bogus'", "h3": "import_type = '9'",
             "h4": "max_errors = 'lots'", "h5": "map = '{not json'",
             "h6": "schedule = '25:99', schedule_type = 'at'"}
    with engine.begin() as conn:
        for name, assignment in edits.items():
            conn.execute(sa.text(f"UPDATE core_task SET {assignment} WHERE name = '{name}'"))
    result = iotask("run-due", "--json", ok=False)
    assert result.code == 1 and "Traceback" not in result.err
    by_name = {t["task"]: t for t in result.json()["tasks"]}
    assert by_name["h1"]["status"] == "success" and by_name["h7"]["status"] == "success"
    for name in edits:
        assert by_name[name]["status"] == "failed", by_name[name]
    assert "core_task.import type '9'" in by_name["h3"]["error"]
    assert "core_task.max_errors" in by_name["h4"]["error"]
    assert "unreadable schedule" in by_name["h2"]["error"]
    with engine.connect() as conn:
        rows = {r.name: r for r in conn.execute(sa.text(
            "SELECT name, locked_by, last_status, last_error FROM core_task"))}
    assert all(row.locked_by is None for row in rows.values())
    assert all(rows[name].last_status == "failed" for name in edits)
    assert "unreadable schedule" in rows["h6"].last_error
    again = iotask("run-due", "--json", ok=False)
    assert {t["task"] for t in again.json()["tasks"] if t["executed"]} == set()
    history = iotask("history", "h3", "--json").json()
    assert [run["status"] for run in history] == ["failed"]  # retried after its backoff only


def test_a_task_parked_in_the_year_9999_is_shown_as_parked(samples):
    iotask = samples
    iotask("task", "add", "parked", "--source", "src", "--destination", "ledger", "--at", "02:30")
    iotask("task", "add", "hourly", "--source", "src", "--destination", "ledger",
           "--every", "1 hour")
    iotask("reset", "parked", "hourly", "--to", "9999-12-31 23:59")
    assert not any(t["executed"] for t in iotask("run-due", "--json").json()["tasks"])
    status = {t["name"]: t for t in iotask("status", "--json").json()}
    assert status["parked"]["next_due"] == "parked"
    assert status["hourly"]["next_due"] == "9999-12-31T23:00:00+00:00"  # Rome would overflow
    assert "parked" in iotask("status").out
    assert iotask("task", "show", "parked", "--json").json()["next_due"] == "parked"
    assert "9999-12-31" in iotask("task", "list").out
    assert "9999-12-31" in iotask("task", "show", "hourly").out


# --- a huge line ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_huge_line_stops_the_read_with_its_line_number(iotask, engine, lms, tmp_path):
    source = tmp_path / "users.csv"
    with open(source, "w", encoding="utf-8") as out:
        out.write("userid,firstname\nu1,Ann\nu2," + "x" * (12 * 1024 * 1024) + "\nu3,Cy\n")
    aged(source)
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    iotask("task", "add", "t", "--source", "hr", "--destination", "lms")
    result = iotask("run", "t", "--json", ok=False)
    task = result.json()["tasks"][0]
    assert task["status"] == "failed" and "line 3 is longer than 8,388,608" in task["error"]
    assert "max_field_size" in task["error"] and content(engine, lms) == {}
    preview = iotask("task", "preview", "t", ok=False)
    assert preview.code == 2 and "line 3 is longer than" in preview.err
    iotask("connection", "edit", "hr", "--set", "max_field_size=16777216")
    iotask("task", "edit", "t", "--max-errors", "100%")
    counted = iotask("run", "t", "--json").json()["tasks"][0]["counts"]
    assert counted["read"] == 3 and counted["inserted"] == 2  # the long name is too long for
    assert counted["failed"] == 1  # its column: a row error now, no longer a stopped read
    assert_user_error(iotask("connection", "edit", "hr", "--set", "max_field_size=10", ok=False),
                      "max_field_size")


# --- one line, never a traceback ---------------------------------------------------------------

DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("args", "message"), [
    (("task", "edit", "t", "--map", DEEP), "--map is nested too deeply"),
    (("connection", "add", "deep", "--type", "csv", "--params-json", f'{{"url": {DEEP}}}'),
     "--params-json is nested too deeply"),
    (("connection", "add", "nul", "--type", "csv", "--set", "url=file:///in/a%00b.csv"),
     "NUL character"),
    (("--db", "mysql+pymysql://u@h:abc/db", "status"), "cannot parse database URL"),
    (("connection", "add", "p", "--type", "sql", "--set", "database=mysql://u@h:abc/db",
      "--set", "table=x"), "setting 'database': cannot parse database URL"),
    (("task", "edit", "t", "--sequence", "99999999999999999999"), "not in the range"),
    (("connection", "add", "s", "--type", "csv", "--set", "url=in/x.csv",
      "--set", "stable_seconds=99999999999999999999"), "'stable_seconds' must be a number"),
    (("connection", "add", "o", "--type", "csv", "--set", "url=ftp://h/x.csv",
      "--set", "timeout=99999999999999999999"), "'timeout' must be a number"),
    (("connection", "add", "n", "--type", "csv", "--set", "url=out/users-{name}.csv"),
     "only {date:FORMAT}"),
    (("task", "edit", "t", "--max-errors", "1" * 30), "must be a count"),
    (("task", "edit", "t", "--description", "d" * 256), "at most 255"),
])
def test_bad_input_is_one_line_and_exit_2(iotask, tmp_path, args, message):
    source = write(tmp_path / "users.csv", "u1,Ann\n")
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    iotask("connection", "add", "copy", "--type", "csv", "--set", f"url={tmp_path / 'c.csv'}")
    iotask("task", "add", "t", "--source", "hr", "--destination", "copy")
    result = iotask(*args, ok=False)
    assert_user_error(result, message)
    assert result.code == 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_bad_configuration_is_one_line_and_exit_2(iotask, tmp_path, monkeypatch):
    bad_ini = tmp_path / "bad.ini"
    bad_ini.write_bytes(b"[iotask]\ntimezone = Europe/Z\xfcrich\n")
    for variable, value, message in (
            ("IOTASK_CONFIG", str(bad_ini), "is not UTF-8"),
            ("IOTASK_LEASE_SECONDS", "99999999999999999999", "lease seconds must be"),
            ("IOTASK_LOG", "syslog:/nonexistent.sock", "is not a syslog socket"),
            ("IOTASK_DATABASE_URL", "postgresql://u@h:99x/db", "cannot parse database URL")):
        with monkeypatch.context() as patch:
            patch.setenv(variable, value)
            result = run_cli("run-due")
        assert_user_error(result, message)
        assert result.code == 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_file_that_is_not_a_database_is_one_line(iotask, tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_text("garbage\n")
    assert_user_error(iotask("--db", f"sqlite:///{corrupt}", "status", ok=False),
                      "file is not a database")
    source = write(tmp_path / "users.csv", "u1,Ann\n")
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    iotask("connection", "add", "bad", "--type", "sql", "--set", f"database=sqlite:///{corrupt}",
           "--set", "table=lms_user")
    iotask("task", "add", "t", "--source", "hr", "--destination", "bad")
    dry = iotask("run", "t", "--dry-run", ok=False)
    assert dry.code == 1 and "file is not a database" in dry.out and "Traceback" not in dry.err
    assert_user_error(iotask("task", "preview", "t", ok=False), "file is not a database")
    ran = iotask("run", "t", ok=False)
    assert ran.code == 1 and "file is not a database" in ran.err and "Traceback" not in ran.err


# --- an operator's surprises -------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
def test_global_options_are_accepted_after_the_command(iotask, migrated_url, tmp_path):
    upgraded = run_cli("db", "upgrade", "-v", "--db", migrated_url)
    assert upgraded.code == 0 and "is at revision" in upgraded.out
    assert run_cli("status", "--json", "--db", migrated_url).json() == []
    listed = run_cli("task", "list", "-v", "--db", migrated_url)
    assert listed.code == 0 and listed.out.startswith("SEQ")


def owned_users(iotask, engine) -> sa.Table:
    """lms_user with an ownership column, for sync tasks, as connection "lms"."""
    table = sa.Table("lms_user", sa.MetaData(),
                     sa.Column("userid", sa.String(50), primary_key=True),
                     sa.Column("firstname", sa.String(100)),
                     sa.Column("imported_from_connection", sa.String(255)))
    table.create(engine)
    iotask("connection", "add", "lms", "--type", "sql", "--set", "table=lms_user")
    return table


def test_a_dry_run_honours_reimport_and_says_held_when_a_real_run_would_be(iotask, engine,
                                                                           tmp_path):
    lms = owned_users(iotask, engine)
    inbox = tmp_path / "in"
    write(inbox / "a.csv", "".join(f"u{n},A{n}\n" for n in range(10)))
    iotask("connection", "add", "drop", "--type", "csv", "--set", f"url={inbox}/")
    iotask("task", "add", "intake", "--source", "drop", "--destination", "lms",
           "--import-type", "sync")
    assert task_json(iotask)["counts"]["inserted"] == 10
    (inbox / "a.csv.imported").rename(inbox / "b.csv")  # the same content again
    plain = iotask("run", "intake", "--dry-run", "--json", ok=False).json()[0]
    assert plain["status"] == "nothing_to_process" and plain["changes"] is None
    again = iotask("run", "intake", "--dry-run", "--reimport", "--json").json()[0]
    assert again["changes"]["unchanged"] == 10 and again["status"] == "success"
    write(inbox / "b.csv", "u1,A1\n")  # 9 of 10 records would go
    held = iotask("run", "intake", "--dry-run", "--json", ok=False)
    assert held.code == 1
    verdict = held.json()[0]
    assert verdict["status"] == "held" and "more than max_remove" in verdict["verdict"]
    assert len(content(engine, lms)) == 10


@pytest.mark.parametrize("backend", ["sqlite"])
def test_suggested_commands_quote_task_names_for_the_shell(iotask, engine, tmp_path):
    owned_users(iotask, engine)
    source = write(tmp_path / "users.csv", "".join(f"u{n},A{n}\n" for n in range(10)))
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    iotask("task", "add", "HR users", "--source", "hr", "--destination", "lms",
           "--import-type", "sync")
    iotask("run", "HR users")
    write(source, "u1,A1\n")
    held = iotask("run", "HR users", "--json", ok=False).json()["tasks"][0]
    assert held["status"] == "held"
    assert "`iotask run 'HR users' --accept-changes`" in held["error"]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE core_task SET max_errors = 'x' WHERE name = 'HR users'"))
    failed = iotask("run", "HR users", ok=False)
    assert "`iotask task edit 'HR users' --max-errors ...`" in failed.err
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE core_task SET max_errors = '100%', import_type = 'insert' "
                             "WHERE name = 'HR users'"))
    write(source, "u1,A1\nu2,A2,extra\n")
    partial = iotask("run", "HR users")
    assert "see `iotask history 'HR users'`" in partial.err


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_header_with_spaces_after_the_commas_names_its_columns_without_quotes(iotask, engine,
                                                                                tmp_path):
    """As Totara's and Moodle's fixtures write them: userid, "firstname"."""
    table = sa.Table("lms_user", sa.MetaData(),
                     sa.Column("userid", sa.String(50), primary_key=True),
                     sa.Column("firstname", sa.String(100)))
    table.create(engine)
    iotask("connection", "add", "lms", "--type", "sql", "--set", "table=lms_user")
    source = tmp_path / "users.csv"
    source.write_text('userid, "firstname"\r\nu1, "Ann, the first"\r\nu2, Bob\r\n',
                      encoding="utf-8")
    aged(source)
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}",
           "--set", "skipinitialspace=true")
    iotask("task", "add", "t", "--source", "hr", "--destination", "lms")
    preview = iotask("task", "preview", "t", "--json").json()
    assert preview["columns"] == ["userid", "firstname"]
    iotask("run", "t")
    assert content(engine, table) == {"u1": "Ann, the first", "u2": "Bob"}
    iotask("connection", "edit", "hr", "--set", "skipinitialspace=false")
    kept = iotask("task", "preview", "t", "--json").json()  # the header is trimmed all the same
    assert kept["columns"] == ["userid", "firstname"]


def test_a_new_time_of_day_task_first_runs_at_its_slot(samples, engine):
    iotask = samples
    iotask("task", "add", "nightly", "--source", "src", "--destination", "ledger", "--at", "02:30")
    iotask("task", "add", "weekdays", "--source", "src", "--destination", "ledger",
           "--cron", "0 2 * * 1-5")
    iotask("task", "add", "hourly", "--source", "src", "--destination", "ledger",
           "--every", "6 hour")
    iotask("task", "add", "at-once", "--source", "src", "--destination", "ledger",
           "--at", "02:30", "--now")
    status = {t["name"]: t for t in iotask("status", "--json").json()}
    assert status["nightly"]["next_due"] != "now" and status["weekdays"]["next_due"] != "now"
    assert status["hourly"]["next_due"] == "now" and status["at-once"]["next_due"] == "now"
    ran = iotask("run-due", "--json").json()["tasks"]
    assert sorted(t["task"] for t in ran if t["executed"]) == ["at-once", "hourly"]
    with engine.begin() as conn:  # a DBA's NULL still means due now
        conn.execute(sa.text("UPDATE core_task SET last_execution = NULL WHERE name = 'nightly'"))
    ran = iotask("run-due", "--json").json()["tasks"]
    assert [t["task"] for t in ran if t["executed"]] == ["nightly"]


def test_notes_are_kept_apart_from_errors(iotask, engine, lms, tmp_path):
    inbox = tmp_path / "in"
    write(inbox / "a.csv", "u1,Ann\n")
    add_intake(iotask, f"{inbox}/")
    task = task_json(iotask)
    assert task["status"] == "success" and task["error"] is None
    assert task["notes"] == ["a.csv: renamed to a.csv.imported"]
    with engine.connect() as conn:
        last_error = conn.execute(sa.text("SELECT last_error FROM core_task")).scalar()
    assert last_error is None
    (run,) = iotask("history", "intake", "--json").json()
    assert run["error"] is None and run["notes"] == ["a.csv: renamed to a.csv.imported"]
    assert "run 1: note: a.csv: renamed to a.csv.imported" in iotask("history", "intake").out


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12"])
def test_dated_export_names_and_log_lines_use_the_configured_zone(iotask, engine, lms, tmp_path,
                                                                    monkeypatch, zone):
    """+14 and -12 hours: at any time of day at least one of them is on another date than the
    machine's UTC clock, so the file name tells which zone filled it."""
    monkeypatch.setenv("IOTASK_TIMEZONE", zone)
    log_file = tmp_path / "iotask.log"
    monkeypatch.setenv("IOTASK_LOG", str(log_file))
    source = write(tmp_path / "users.csv", "u1,Ann\n")
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    out = tmp_path / "out"
    out.mkdir()
    iotask("connection", "add", "export", "--type", "csv",
           "--set", f"url={out}/users-{{date:%Y%m%d-%H}}.csv")
    iotask("task", "add", "t", "--source", "hr", "--destination", "export")
    before = datetime.now(ZoneInfo(zone)).strftime("%Y%m%d-%H")
    iotask("run", "t")
    after = datetime.now(ZoneInfo(zone)).strftime("%Y%m%d-%H")
    (written,) = out.iterdir()
    assert written.name in (f"users-{before}.csv", f"users-{after}.csv")
    offset = datetime.now(ZoneInfo(zone)).strftime("%z")
    first = log_file.read_text(encoding="utf-8").splitlines()[0]
    assert first.split(" ")[0].endswith(f"{offset[:3]}:{offset[3:]}"), first


def test_cron_from_home_finds_the_users_config_and_no_second_database(tmp_path, monkeypatch):
    for name in ("IOTASK_DATABASE_URL", "IOTASK_CONFIG", "IOTASK_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    config_home = tmp_path / "config"
    (config_home / "iotask").mkdir(parents=True)
    (config_home / "iotask" / "iotask.ini").write_text(
        "[iotask]\ndatabase_url = sqlite:///lms.db\ntimezone = Asia/Tokyo\n", encoding="utf-8")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)  # where cron runs
    shown = run_cli("config", "--json")
    assert shown.code == 0, shown.err
    data = shown.json()
    assert data["config_file"] == str(config_home / "iotask" / "iotask.ini")
    assert data["database"] == f"sqlite:///{config_home / 'iotask' / 'lms.db'}"
    assert data["timezone"] == "Asia/Tokyo" and "no such database file" in data["revision"]
    assert_user_error(run_cli("status"), "does not exist", "iotask db upgrade")
    assert "no such file" in run_cli("db", "current").out
    assert list(home.iterdir()) == [] and not (config_home / "iotask" / "lms.db").exists()
    assert run_cli("db", "upgrade").code == 0
    assert (config_home / "iotask" / "lms.db").exists() and list(home.iterdir()) == []
    assert "up to date" in run_cli("config").out


@pytest.mark.parametrize("backend", ["sqlite"])
def test_at_a_terminal_commands_say_what_they_did_and_cron_stays_silent(iotask, migrated_url,
                                                                        tmp_path):
    source = write(tmp_path / "users.csv", "u1,Ann\nu2,Bob\nu3,Cy\n")
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    iotask("connection", "add", "out", "--type", "csv", "--set", f"url={tmp_path / 'out.csv'}")
    iotask("task", "add", "t", "--source", "hr", "--destination", "out")
    db = ["--db", migrated_url]

    def terminal(*args: str) -> tuple[int, str, str]:
        return _attached([*db, *args], tmp_path, stdout_tty=True, stderr_tty=True)

    code, out, _ = terminal("run", "t")
    assert code == 0 and "t: success" in out and "inserted 3" in out
    assert iotask("run", "t").out == ""  # no terminal: silent
    code, out, _ = terminal("reset", "--failed")
    assert code == 0 and "nothing to reset" in out
    code, out, _ = terminal("task", "edit", "t")
    assert code == 0 and "nothing changed" in out
    code, out, err = terminal("task", "remove", "t")
    assert code == 2 and "give --yes" in err and "(2 runs)" in err
    assert [t["name"] for t in iotask("task", "list", "--json").json()] == ["t"]
    assert_user_error(iotask("task", "remove", "t", ok=False), "give --yes")
    code, out, _ = terminal("task", "remove", "t", "--yes")
    assert code == 0 and "removed t" in out
    assert iotask("task", "list", "--json").json() == []


def test_sync_takes_over_records_that_existed_before_it_with_task_adopt(site):
    for number in range(10):
        site.add_record(f"u{number:04d}", None)  # in the LMS before iotask
    site.add_record("admin", None)
    write_csv(site.file, users(11))
    site.task("--import-type", "sync")
    dry = site.iotask("task", "adopt", "users", "--dry-run", "--json").json()
    assert (dry["adopted"], dry["dry_run"]) == (10, True)
    assert {row[4] for row in site.content()} == {None}
    adopted = site.iotask("task", "adopt", "users", "--json").json()
    assert adopted["status"] == "adopted" and adopted["adopted"] == 10
    owners = {row[0]: row[4] for row in site.content()}
    assert owners["admin"] is None and owners["u0009"] == "hr-csv"
    (record,) = site.iotask("history", "users", "--json").json()
    assert record["status"] == "adopted" and record["counts"]["updated"] == 10
    assert site.iotask("task", "show", "users", "--json").json()["last_execution"] is None

    write_csv(site.file, users(10, start=1))  # u0000 left the HR file
    assert counts(site.run())["removed"] == 1
    assert "u0000" not in {row[0] for row in site.content()}
    assert {row[0] for row in site.content()} >= {"admin", "u0010"}
    everything = site.iotask("task", "adopt", "users", "--all-unowned", "--json").json()
    assert everything["adopted"] == 1
    assert {row[4] for row in site.content()} == {OWNER}


def test_sync_into_a_table_without_an_ownership_column_is_refused_when_saved(iotask, engine,
                                                                             lms, tmp_path):
    source = write(tmp_path / "users.csv", "u1,Ann\n")
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    assert_user_error(iotask("task", "add", "t", "--source", "hr", "--destination", "lms",
                             "--import-type", "sync", ok=False),
                      "has no column 'imported_from_connection'")
    iotask("task", "add", "t", "--source", "hr", "--destination", "lms")
    assert_user_error(iotask("task", "edit", "t", "--import-type", "sync", ok=False),
                      "has no column 'imported_from_connection'")
    assert iotask("task", "show", "t", "--json").json()["import_type"] == "insert"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_file_too_large_names_the_file(iotask, migrated_url, tmp_path):
    """A file-size limit (ulimit -f) hit while exporting: the error says which file."""
    source = write(tmp_path / "users.csv", "".join(f"u{n},Name {n}\n" for n in range(30_000)))
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    target = tmp_path / "out.csv"
    iotask("connection", "add", "out", "--type", "csv", "--set", f"url={target}")
    iotask("task", "add", "t", "--source", "hr", "--destination", "out")
    limit = source.stat().st_size // 2

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([IOTASK, "--db", migrated_url, "run", "t"], capture_output=True,
                            text=True, timeout=120, preexec_fn=small_files, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot write {target}: File too large" in result.stderr, result.stderr
    assert not target.exists()


def test_a_lost_mariadb_connection_is_said_so():
    import pymysql

    lost = sa.exc.InterfaceError("SELECT 1", {}, pymysql.err.InterfaceError(0, ""))
    assert iotask_db.reason(lost) == ("the connection to the database was lost (server "
                                      "restarted or timed out?)")


def test_a_key_column_the_destination_lacks_is_refused_when_saved(iotask, engine, lms, tmp_path):
    source = write(tmp_path / "users.csv", "u1,Ann\n")
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    iotask("connection", "add", "lms2", "--type", "sql", "--set", "table=lms_user",
           "--set", "key=employee_no")
    assert_user_error(iotask("task", "add", "t", "--source", "hr", "--destination", "lms2",
                             ok=False), "key column 'employee_no' is not in table 'lms_user'")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_adopting_into_a_destination_without_ownership_is_one_line(iotask, tmp_path):
    source = write(tmp_path / "users.csv", "u1,Ann\n")
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    iotask("connection", "add", "out", "--type", "csv", "--set", f"url={tmp_path / 'o.csv'}")
    iotask("task", "add", "t", "--source", "hr", "--destination", "out")
    for args in (("task", "adopt", "t", "--dry-run"), ("task", "adopt", "t")):
        result = iotask(*args, ok=False)
        assert result.code == 1 and "nothing to adopt" in result.err
        assert "Traceback" not in result.err
