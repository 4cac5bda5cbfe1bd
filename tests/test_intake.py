"""File intake and export through `iotask run`, against real servers: folders of files each
applied then renamed, half-written files left for later, the same content never imported twice,
FTP/SFTP/HTTPS sources and exports, and file: URLs confined to their base folders."""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from conftest import aged, assert_user_error
from servers import PASSWORD, Answer, make_tls, start_ftp, start_https, start_sftp

HEADER = "userid,firstname\n"
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])  # the database is not the subject


def write(path: Path, body: str, age: float = 600.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + body, encoding="utf-8")
    return aged(path, age)


def users_table(engine: sa.Engine) -> sa.Table:
    table = sa.Table("lms_user", sa.MetaData(),
                     sa.Column("userid", sa.String(50), primary_key=True),
                     sa.Column("firstname", sa.String(100)))
    table.create(engine)
    return table


def content(engine: sa.Engine, table: sa.Table) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(table.c.userid, table.c.firstname)).all())


def task_json(iotask, *options: str, ok: bool = True) -> dict:
    return iotask("run", "intake", "--json", *options, ok=ok).json()["tasks"][0]


@pytest.fixture
def lms(iotask, engine) -> sa.Table:
    table = users_table(engine)
    iotask("connection", "add", "lms", "--type", "sql", "--set", "table=lms_user")
    return table


def add_intake(iotask, url: str, *settings: str) -> None:
    iotask("connection", "add", "drop", "--type", "csv", "--set", f"url={url}",
           *[part for setting in settings for part in ("--set", setting)])
    iotask("task", "add", "intake", "--source", "drop", "--destination", "lms",
           "--max-errors", "100%")


def test_a_folder_applies_each_file_then_renames_it_and_keeps_a_broken_one(
        iotask, engine, lms, tmp_path):
    inbox = tmp_path / "inbox"
    write(inbox / "a.csv", "u1,Ann\nu2,Bob\n", age=500)
    write(inbox / "b.csv", "u1,Anna\n", age=400)  # newer: its u1 wins
    write(inbox / "broken.csv", 'u3,"never closed\n', age=300)
    write(inbox / "c.csv", "u4,Cy\n", age=200)
    write(inbox / "d.csv", "u5,Di\n", age=100)
    write(inbox / "done.csv.imported", "u9,Old\n")
    add_intake(iotask, f"{inbox}/")

    result = iotask("run", "intake", "--json", ok=False)
    task = result.json()["tasks"][0]
    assert result.code == 1 and task["status"] == "failed"
    assert "1 of 5 files failed" in task["error"] and "broken.csv" in task["error"]
    assert "line 2" in task["error"] and "never closed" in task["error"]
    assert task["counts"]["inserted"] == 4 and task["counts"]["updated"] == 1
    assert content(engine, lms) == {"u1": "Anna", "u2": "Bob", "u4": "Cy", "u5": "Di"}
    assert sorted(p.name for p in inbox.iterdir()) == [
        "a.csv.imported", "b.csv.imported", "broken.csv", "c.csv.imported",
        "d.csv.imported", "done.csv.imported"]
    history = iotask("history", "intake", "--json").json()[0]
    assert history["files"] == [str(inbox / name) for name in
                                ("a.csv", "b.csv", "broken.csv", "c.csv", "d.csv")]

    again = task_json(iotask, ok=False)
    assert again["counts"]["inserted"] == again["counts"]["updated"] == 0
    assert "broken.csv" in again["error"] and "1 of 1" not in again["error"]
    assert (inbox / "broken.csv").exists()

    (inbox / "broken.csv").unlink()
    assert task_json(iotask)["status"] == "nothing_to_process"


@SQLITE_ONLY
def test_a_file_still_being_written_is_left_for_a_later_run(iotask, engine, lms, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    growing = inbox / "users.csv"
    growing.write_text(HEADER, encoding="utf-8")
    add_intake(iotask, f"{inbox}/", "stable_seconds=1")
    stop = threading.Event()

    def append() -> None:
        number = 0
        while not stop.is_set():
            with open(growing, "a", encoding="utf-8") as out:
                out.write(f"u{number},Name\n")
            number += 1
            time.sleep(0.2)

    writer = threading.Thread(target=append)
    writer.start()
    try:
        for _ in range(5):
            time.sleep(0.3)
            task = task_json(iotask)
            assert task["status"] == "nothing_to_process", task
            assert "still being written" in task["error"]
    finally:
        stop.set()
        writer.join()
    assert content(engine, lms) == {}
    # still due: cron's next run-due, a minute later, takes the file (not the next day's)
    assert iotask("task", "show", "intake", "--json").json()["next_due"] == "now"
    lines = growing.read_text(encoding="utf-8").count("\n") - 1
    time.sleep(1.2)
    task = task_json(iotask)
    assert task["status"] == "success" and task["counts"]["inserted"] == lines >= 5
    assert (inbox / "users.csv.imported").exists()
    assert iotask("task", "show", "intake", "--json").json()["next_due"] != "now"


@SQLITE_ONLY
def test_the_same_content_under_another_name_is_skipped(iotask, engine, lms, tmp_path):
    inbox = tmp_path / "inbox"
    write(inbox / "monday.csv", "u1,Ann\n")
    add_intake(iotask, f"{inbox}/")
    assert task_json(iotask)["counts"]["inserted"] == 1
    with engine.begin() as conn:
        conn.execute(sa.delete(lms))

    shutil.copy(inbox / "monday.csv.imported", inbox / "tuesday.csv")
    aged(inbox / "tuesday.csv")
    result = iotask("run", "intake", "--json")
    task = result.json()["tasks"][0]
    assert task["status"] == "nothing_to_process"
    assert "tuesday.csv: already imported as monday.csv" in task["error"]
    assert "--reimport" in task["error"] and "was imported as monday.csv" in result.err
    assert (inbox / "tuesday.csv.imported").exists() and content(engine, lms) == {}

    shutil.copy(inbox / "monday.csv.imported", inbox / "wednesday.csv")
    aged(inbox / "wednesday.csv")
    assert task_json(iotask, "--reimport")["counts"]["inserted"] == 1
    assert content(engine, lms) == {"u1": "Ann"}


@SQLITE_ONLY
def test_patterns_are_anchored_and_a_single_file_stays_in_place(iotask, engine, lms, tmp_path):
    inbox = tmp_path / "inbox"
    write(inbox / "users-1.csv", "u1,Ann\n")
    write(inbox / "oldusers-1.csv", "u2,Old\n")
    write(inbox / "users-1.csv.bak", "u3,Bak\n")
    add_intake(iotask, f"{inbox}/", "pattern=users-*.csv")
    task_json(iotask)
    assert content(engine, lms) == {"u1": "Ann"}
    assert (inbox / "oldusers-1.csv").exists() and (inbox / "users-1.csv.bak").exists()

    iotask("connection", "edit", "drop", "--unset", "pattern", "--set",
           f"url={inbox / 'users-1.csv.bak'}")
    assert task_json(iotask)["counts"]["inserted"] == 1
    assert task_json(iotask)["counts"]["unchanged"] == 1  # read in place every run
    assert (inbox / "users-1.csv.bak").exists()


@SQLITE_ONLY
def test_ftp_intake_retries_a_dropped_download_and_never_shows_the_password(
        iotask, engine, lms, tmp_path, monkeypatch):
    root = tmp_path / "ftp"
    write(root / "out" / "users.csv", "".join(f"u{n},Name {n}\n" for n in range(3000)))
    monkeypatch.setenv("HR_FTP_PASSWORD", PASSWORD)
    with start_ftp(root) as server:
        add_intake(iotask, server.url("/out/"), "password=env:HR_FTP_PASSWORD", "retries=2")
        shown = iotask("connection", "show", "drop", "--json").json()["params"]
        assert shown["password"] == {"env": "HR_FTP_PASSWORD"}
        server.drops.append(20_000)
        task = task_json(iotask)
        assert task["status"] == "success" and task["counts"]["inserted"] == 3000
        assert server.retrievals == ["out/users.csv", "out/users.csv"]
        assert sorted(p.name for p in (root / "out").iterdir()) == ["users.csv.imported"]

        write(root / "out" / "more.csv", "u9000,Late\n")
        server.drops.extend([5, 5, 5])
        result = iotask("run", "intake", "--json", ok=False)
        task = result.json()["tasks"][0]
        assert task["status"] == "failed" and "after 3 attempts" in task["error"]
        assert f"127.0.0.1:{server.port}/out/more.csv" in task["error"]
        assert (root / "out" / "more.csv").exists() and "u9000" not in content(engine, lms)
        everything = result.out + result.err + iotask("history", "intake", "--json").out
        assert PASSWORD not in everything


@SQLITE_ONLY
def test_sftp_intake_and_export(iotask, engine, lms, tmp_path):
    root = tmp_path / "sftp"
    write(root / "hr" / "users.csv", "u1,Ann\nu2,Bob\n")
    (root / "reports").mkdir()
    with start_sftp(root, tmp_path / "keys") as server:
        add_intake(iotask, server.url("/hr/"), f"known_hosts={server.known_hosts}",
                   f"private_key={server.client_key}")
        assert task_json(iotask)["counts"]["inserted"] == 2
        assert (root / "hr" / "users.csv.imported").exists()

        iotask("connection", "add", "report", "--type", "csv", "--set",
               f"url={server.url('/reports/users-{date:%Y%m%d}.csv')}",
               "--set", f"known_hosts={server.known_hosts}",
               "--set", f"private_key={server.client_key}")
        iotask("task", "add", "export", "--source", "lms", "--destination", "report")
        iotask("run", "export")
    today = datetime.now(ZoneInfo("Europe/Rome"))  # {date} is the run's zone's (the fixture's)
    exported = root / "reports" / f"users-{today:%Y%m%d}.csv"
    with open(exported, encoding="utf-8", newline="") as handle:
        assert sorted(map(tuple, csv.reader(handle))) == [("u1", "Ann"), ("u2", "Bob"),
                                                          ("userid", "firstname")]
    assert [p.name for p in (root / "reports").iterdir()] == [exported.name]


@pytest.fixture
def https(tmp_path) -> Iterator:
    tls = make_tls(tmp_path / "tls")
    with start_https(tls) as server:
        server.ca = tls.ca_path
        yield server


@SQLITE_ONLY
def test_https_source_retries_503_and_needs_the_ca(iotask, engine, lms, https):
    https.documents["/users.csv"] = (HEADER + "u1,Ann\n").encode()
    add_intake(iotask, https.url("/users.csv"), "stable_seconds=0")
    refused = task_json(iotask, ok=False)
    assert refused["status"] == "failed" and "certificate" in refused["error"].lower()
    iotask("connection", "edit", "drop", "--set", f"ca_bundle={https.ca}")
    https.scripts["/users.csv"] = [Answer(503, b"busy"), Answer(503, b"busy")]
    task = task_json(iotask)
    assert task["status"] == "success" and task["counts"]["inserted"] == 1
    assert [r.method for r in https.received] == ["HEAD", "HEAD", "HEAD", "GET"]


@SQLITE_ONLY
def test_https_export_posts_csv_and_quotes_a_refusal(iotask, engine, lms, https, monkeypatch):
    with engine.begin() as conn:
        conn.execute(sa.insert(lms), [{"userid": "u1", "firstname": "Zoë"}])
    monkeypatch.setenv("LMS_TOKEN", "Bearer t0ken-value")
    iotask("connection", "add", "push", "--type", "csv", "--set",
           f"url={https.url('/api/users.csv')}", "--set", f"ca_bundle={https.ca}",
           "--set", "auth_header=env:LMS_TOKEN")
    iotask("task", "add", "push", "--source", "lms", "--destination", "push")
    iotask("run", "push")
    [post] = [r for r in https.received if r.method == "POST"]
    assert post.body.decode("utf-8") == "userid,firstname\r\nu1,Zoë\r\n"
    assert post.headers["Content-Type"].startswith("text/csv")
    assert post.headers["Authorization"] == "Bearer t0ken-value"

    https.scripts["/api/users.csv"] = [Answer(400, b'{"error": "column firstname unknown"}')]
    result = iotask("run", "push", "--json", ok=False)
    error = result.json()["tasks"][0]["error"]
    assert "400" in error and "column firstname unknown" in error
    assert "t0ken-value" not in result.out + result.err


@SQLITE_ONLY
def test_ftp_export_replaces_the_file_at_once(iotask, engine, lms, tmp_path):
    root = tmp_path / "ftp"
    (root / "out").mkdir(parents=True)
    (root / "out" / "users.csv").write_text("old export\n")
    with engine.begin() as conn:
        conn.execute(sa.insert(lms), [{"userid": "u1", "firstname": "Ann"}])
    with start_ftp(root) as server:
        iotask("connection", "add", "ftp-out", "--type", "csv", "--set",
               f"url={server.url('/out/users.csv')}", "--set", f"password={PASSWORD}")
        assert iotask("connection", "show", "ftp-out", "--json").json()["params"][
            "password"] == "********"
        iotask("task", "add", "export", "--source", "lms", "--destination", "ftp-out")
        iotask("run", "export")
    assert (root / "out" / "users.csv").read_bytes() == b"userid,firstname\r\nu1,Ann\r\n"
    assert [p.name for p in (root / "out").iterdir()] == ["users.csv"]


@SQLITE_ONLY
def test_file_urls_outside_the_base_folders_are_refused(iotask, lms, tmp_path, monkeypatch):
    roots = tmp_path / "iofiles"
    (roots / "in").mkdir(parents=True)
    monkeypatch.setenv("IOTASK_FILE_ROOTS", str(roots))
    for url, words in [("file:///etc/passwd", "outside the folders iotask may use"),
                       (f"{roots}/../secret.csv", "'..' is not allowed"),
                       ("/etc/", "IOTASK_FILE_ROOTS")]:
        result = iotask("connection", "add", "bad", "--type", "csv", "--set", f"url={url}",
                        ok=False)
        assert_user_error(result, words)

    write(roots / "in" / "users.csv", "u1,Ann\n")
    add_intake(iotask, "in/users.csv")  # relative: inside the first base folder
    assert task_json(iotask)["counts"]["inserted"] == 1

    outside = tmp_path / "elsewhere.csv"
    write(outside, "u2,Eve\n")
    (roots / "in" / "users.csv").unlink()
    os.symlink(outside, roots / "in" / "users.csv")  # swapped in after the connection was saved
    task = task_json(iotask, ok=False)
    assert task["status"] == "failed" and f"resolves to {outside}" in task["error"]


@SQLITE_ONLY
def test_a_secret_from_the_environment_must_be_set(iotask, engine, lms, tmp_path, monkeypatch):
    monkeypatch.delenv("MISSING_PASSWORD", raising=False)
    with start_ftp(tmp_path) as server:
        add_intake(iotask, server.url("/"), "password=env:MISSING_PASSWORD")
        task = task_json(iotask, ok=False)
    assert task["status"] == "failed"
    assert "environment variable MISSING_PASSWORD, which is not set" in task["error"]


@SQLITE_ONLY
def test_a_dry_run_of_a_folder_consumes_nothing(iotask, engine, lms, tmp_path):
    inbox = tmp_path / "inbox"
    write(inbox / "a.csv", "u1,Ann\n", age=200)
    write(inbox / "b.csv", "u2,Bob\nu3,Cy\n", age=100)
    add_intake(iotask, f"{inbox}/")
    result = iotask("run", "intake", "--dry-run")
    assert "read 3, would insert 3" in result.out  # both files' change sets, added up
    assert "insert: userid=u1; userid=u2; userid=u3" in result.out
    assert sorted(p.name for p in inbox.iterdir()) == ["a.csv", "b.csv"]
    assert content(engine, lms) == {} and iotask("history", "intake", "--json").json() == []
    assert task_json(iotask)["counts"]["inserted"] == 3  # not taken for imported by the dry run


@SQLITE_ONLY
@pytest.mark.parametrize("where", ["local", "ftp"])
def test_a_failed_file_moves_to_the_quarantine_folder(iotask, engine, lms, tmp_path, where):
    inbox = tmp_path / "inbox"
    write(inbox / "good.csv", "u1,Ann\n", age=200)
    write(inbox / "bad.csv", 'u2,"never closed\n', age=100)
    (inbox / "failed").mkdir()
    with contextlib.ExitStack() as stack:
        if where == "ftp":
            server = stack.enter_context(start_ftp(tmp_path))
            add_intake(iotask, server.url("/inbox/"), f"password={PASSWORD}",
                       "quarantine=failed")
        else:
            add_intake(iotask, f"{inbox}/", "quarantine=failed")
        task = task_json(iotask, ok=False)
        assert task["status"] == "failed" and "bad.csv: moved to failed/bad.csv" in task["notes"]
        assert "inbox/bad.csv line 2: a quoted field" in task["error"]  # where it was, not a
        assert "iotask-fetch" not in task["error"]  # temporary copy's path
        assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == ["good.csv.imported"]
        assert [p.name for p in (inbox / "failed").iterdir()] == ["bad.csv"]
        assert task_json(iotask)["status"] == "nothing_to_process"
    assert content(engine, lms) == {"u1": "Ann"}
    result = iotask("connection", "edit", "drop", "--set", "quarantine=../x", ok=False)
    assert_user_error(result, "'quarantine' is the name of a subfolder")
