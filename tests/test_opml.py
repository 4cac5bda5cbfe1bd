"""Task schedules as OPML: export, import into an empty database, the same tasks field by field;
a second import changes nothing; secrets stay out; hostile files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_user_error, run_cli

VOLATILE = {"last_execution", "next_due", "last_status", "last_error", "fail_count",
            "locked_by", "locked_until"}


@pytest.fixture
def schedules(iotask, tmp_path, monkeypatch):
    """Three tasks of every kind of setting, one connection with a typed password."""
    monkeypatch.setenv("HR_FTP_PASSWORD", "s3cret-ftp")
    files = tmp_path / "files"
    files.mkdir()
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={files}/users.csv",
           "--set", "delimiter=;", "--description", "HR feed")
    iotask("connection", "add", "ftp", "--type", "csv", "--set", "url=ftp://hr@ftp.example.com/in/",
           "--set", "password=env:HR_FTP_PASSWORD")
    iotask("connection", "add", "typed", "--type", "csv",
           "--set", "url=sftp://hr@sftp.example.com/in/", "--set", "password=Typ3d-Secret")
    iotask("connection", "add", "out", "--type", "csv", "--set", f"url={files}/out.csv")
    iotask("task", "add", "HR users", "--source", "hr", "--destination", "out", "--at", "02:30",
           "--sequence", "3", "--email", "hr@example.com", "--notify", "problems",
           "--max-errors", "2%", "--map", '{"columns": {"userid": "id"}, "key": ["userid"]}',
           "--description", "nightly <users> & more")
    iotask("task", "add", "from ftp", "--source", "ftp", "--destination", "out", "--every",
           "6 hour", "--max-remove", "50", "--disabled")
    iotask("task", "add", "typed", "--source", "typed", "--destination", "out",
           "--cron", "0 5 * * 1-5", "--allow-empty")
    return iotask


def shown(db: str) -> tuple[list[dict], list[dict]]:
    listed = run_cli("--db", db, "task", "list", "--json").json()
    task_rows = [{k: v for k, v in task.items() if k not in VOLATILE} for task in listed]
    conns = run_cli("--db", db, "connection", "list", "--json").json()
    return task_rows, conns


def test_export_then_import_into_an_empty_database_gives_the_same_tasks(schedules, migrated_url,
                                                                        tmp_path):
    exported = tmp_path / "schedules.opml"
    schedules("schedule", "export", str(exported))
    text = exported.read_text(encoding="utf-8")
    assert "s3cret-ftp" not in text and "Typ3d-Secret" not in text
    assert '&quot;env&quot;: &quot;HR_FTP_PASSWORD&quot;' in text
    assert "connection typed: password left out (secret)" in text
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert run_cli("--db", other, "db", "upgrade").code == 0
    imported = run_cli("--db", other, "-v", "schedule", "import", str(exported))
    assert imported.code == 0, imported.err
    assert "added task HR users" in imported.out and "added connection ftp" in imported.out
    before_tasks, before_conns = shown(migrated_url)
    after_tasks, after_conns = shown(other)
    assert after_tasks == before_tasks
    strip = [{**c, "params": {k: v for k, v in c["params"].items() if k != "password"}}
             for c in before_conns]
    assert [{**c, "params": {k: v for k, v in c["params"].items() if k != "password"}}
            for c in after_conns] == strip
    ftp = next(c for c in after_conns if c["name"] == "ftp")
    assert ftp["params"]["password"] == {"env": "HR_FTP_PASSWORD"}

    again = run_cli("--db", other, "-v", "schedule", "import", str(exported))
    assert again.code == 0 and again.out and all(
        line.startswith("unchanged") for line in again.out.splitlines()), again.out
    assert shown(other) == (after_tasks, after_conns)


def test_an_edited_file_changes_only_what_was_edited(schedules, tmp_path):
    exported = tmp_path / "schedules.opml"
    schedules("schedule", "export", str(exported))
    text = exported.read_text(encoding="utf-8").replace('schedule="02:30"', 'schedule="04:15"')
    exported.write_text(text, encoding="utf-8")
    dry = schedules("schedule", "import", str(exported), "--dry-run")
    assert "would be: changed task HR users: schedule" in dry.out
    assert schedules("task", "show", "HR users", "--json").json()["schedule"] == "02:30"
    done = schedules("schedule", "import", str(exported))
    assert done.out.strip() == "changed task HR users: schedule"
    assert schedules("task", "show", "HR users", "--json").json()["schedule"] == "04:15"
    schedules("task", "remove", "typed", "--yes")
    trimmed = tmp_path / "one.opml"
    schedules("schedule", "export", str(trimmed))
    schedules("task", "add", "extra", "--source", "hr", "--destination", "out")
    kept = schedules("schedule", "import", str(trimmed))
    assert "removed" not in kept.out
    pruned = schedules("schedule", "import", str(trimmed), "--prune")
    assert "removed task extra" in pruned.out
    assert {t["name"] for t in schedules("task", "list", "--json").json()} == {
        "HR users", "from ftp"}


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(("body", "message"), [
    (b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
     b'<opml version="2.0"><body>&b;</body></opml>', "declares a DOCTYPE or entities"),
    (b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><opml/>',
     "declares a DOCTYPE"),
    (b"<opml version='2.0'><body><outline", "is not well-formed XML"),
    (b"<rss><channel/></rss>", "is not an OPML file"),
    (b"<opml version='2.0'><body><outline type='iotask-task' text='t'/></body></opml>",
     "needs a source and a destination"),
    (b"<opml version='2.0'><body>" + b" " * (11 * 1024 * 1024) + b"</body></opml>",
     "a schedule file is at most"),
])
def test_a_hostile_or_malformed_file_is_refused_and_changes_nothing(schedules, tmp_path, body,
                                                                   message):
    before = schedules("task", "list", "--json").json()
    path = tmp_path / "bad.opml"
    path.write_bytes(body)
    assert_user_error(schedules("schedule", "import", str(path), ok=False), message)
    assert schedules("task", "list", "--json").json() == before


def test_a_file_naming_an_unknown_connector_is_one_line(schedules, tmp_path):
    exported = tmp_path / "schedules.opml"
    schedules("schedule", "export", str(exported))
    schedules("task", "remove", "HR users", "from ftp", "typed", "--yes")
    schedules("connection", "remove", "hr")
    text = exported.read_text(encoding="utf-8").replace('connector="csv" description="HR feed"',
                                                        'connector="ldap" description="HR feed"')
    exported.write_text(text, encoding="utf-8")
    assert_user_error(schedules("schedule", "import", str(exported), ok=False),
                      "no connector type 'ldap'")
    assert schedules("task", "list", "--json").json() == []
    assert json.loads(schedules("connection", "list", "--json").out) != []
    assert Path(exported).exists()


def test_a_schedule_over_few_connections_checks_each_map_once(iotask, engine, tmp_path):
    """Tasks over the same connections with the same map are checked against the tables once
    per import, not once per task (a schedule of 10 000 tasks reflected its table 10 000 times,
    minutes on PostgreSQL); a task with another map is still checked, and refused."""
    import sqlalchemy as sa

    sa.Table("staff", sa.MetaData(), sa.Column("userid", sa.String(20), primary_key=True),
             sa.Column("name", sa.String(50))).create(engine)
    source = tmp_path / "staff.csv"
    source.write_text("userid,name\nu1,Ann\n", encoding="utf-8")
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={source}")
    iotask("connection", "add", "db", "--type", "sql", "--set", "table=staff",
           "--set", "key=userid")
    for number in range(6):
        iotask("task", "add", f"staff {number}", "--source", "hr", "--destination", "db",
               "--every", "1 hour", "--map", '{"columns": {"userid": "userid", "name": "name"}}')
    exported = tmp_path / "staff.opml"
    iotask("schedule", "export", str(exported))
    for number in range(6):
        iotask("task", "remove", f"staff {number}", "--yes")
    reflected: list[str] = []

    def seen(inspector, table, column_info) -> None:
        if column_info["name"] == "userid":
            reflected.append(table.name)

    sa.event.listen(sa.Table, "column_reflect", seen)
    try:
        done = iotask("schedule", "import", str(exported))
        assert done.out.count("added task staff") == 6
        assert 0 < len(reflected) <= 2  # the map's columns, the key: not 6 times each
        text = exported.read_text(encoding="utf-8")
        last = text.rindex("name&quot;: &quot;name")
        exported.write_text(text[:last] + "name&quot;: &quot;nick" + text[last + 22:],
                            encoding="utf-8")
        for number in range(6):
            iotask("task", "remove", f"staff {number}", "--yes")
        refused = iotask("schedule", "import", str(exported), ok=False)
    finally:
        sa.event.remove(sa.Table, "column_reflect", seen)
    assert refused.code != 0 and "staff 5" in refused.err and "nick" in refused.err
