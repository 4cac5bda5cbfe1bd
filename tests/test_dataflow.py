"""One run's data flow end to end through `iotask run`, on SQLite, MariaDB and PostgreSQL:
CSV to table and back, insert and sync, ownership, delete and deactivate, the guards, dry runs
and reject files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import aged

OWNER = "hr-csv"
HEADER = ["userid", "firstname", "lastname", "email", "birth_year"]


def users(count: int, start: int = 0, **changed: str) -> list[list[str]]:
    rows = []
    for number in range(start, start + count):
        userid = f"u{number:04d}"
        rows.append([userid, changed.get(userid, f"First{number}"), f"Last{number}",
                     f"{userid}@example.com", str(1960 + number % 40)])
    return rows


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return aged(path)


class Site:
    """A migrated database with an lms_user table, a CSV source and task "users"."""

    def __init__(self, iotask, engine: sa.Engine, folder: Path, **destination: str) -> None:
        self.iotask, self.engine, self.folder = iotask, engine, folder
        self.table = sa.Table(
            "lms_user", sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("userid", sa.String(50), nullable=False, unique=True),
            sa.Column("firstname", sa.String(100)),
            sa.Column("lastname", sa.String(100)),
            sa.Column("email", sa.String(200)),
            sa.Column("birth_year", sa.Integer),
            sa.Column("active", sa.Integer, nullable=False, server_default="1"),
            sa.Column("imported_from_connection", sa.String(255)),
        )
        self.table.create(engine)
        self.file = folder / "users.csv"
        iotask("connection", "add", OWNER, "--type", "csv", "--set", f"url={self.file}")
        settings = [f"{key}={value}" for key, value in
                    {"table": "lms_user", "key": "userid", **destination}.items()]
        iotask("connection", "add", "lms", "--type", "sql",
               *[part for setting in settings for part in ("--set", setting)])

    def task(self, *options: str) -> None:
        self.iotask("task", "add", "users", "--source", OWNER, "--destination", "lms",
                    *options)

    def run(self, *options: str, ok: bool = True):
        return self.iotask("run", "users", "--json", *options, ok=ok)

    def content(self) -> list[tuple]:
        t = self.table
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(
                sa.select(t.c.userid, t.c.firstname, t.c.birth_year, t.c.active,
                          t.c.imported_from_connection).order_by(t.c.userid))]

    def add_record(self, userid: str, owner: str | None) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(self.table).values(
                userid=userid, firstname="Kept", imported_from_connection=owner))


@pytest.fixture
def site(iotask, engine, tmp_path) -> Site:
    return Site(iotask, engine, tmp_path)


def counts(result) -> dict[str, int]:
    return result.json()["tasks"][0]["counts"]


def test_insert_then_sync_removes_only_the_sources_own_records(site):
    write_csv(site.file, users(100))
    site.task("--import-type", "insert")
    assert counts(site.run())["inserted"] == 100
    site.add_record("admin", None)  # made by hand in the LMS
    site.add_record("zz-other", "other-feed")  # written by another feed
    assert {row[4] for row in site.content()} == {OWNER, None, "other-feed"}

    write_csv(site.file, users(95, start=5, u0010="Renamed", u0011="Renamed") + users(2, 200))
    site.iotask("task", "edit", "users", "--import-type", "sync")
    result = site.run()
    assert counts(result) == {"read": 97, "inserted": 2, "updated": 2, "unchanged": 93,
                              "removed": 5, "failed": 0}
    rows = {row[0]: row for row in site.content()}
    assert not any(f"u{n:04d}" in rows for n in range(5))
    assert rows["admin"][4] is None and rows["zz-other"][4] == "other-feed"
    assert rows["u0010"][1] == "Renamed" and rows["u0200"][4] == OWNER
    assert len(rows) == 95 + 2 + 2

    assert counts(site.run()) == {"read": 97, "inserted": 0, "updated": 0, "unchanged": 97,
                                  "removed": 0, "failed": 0}


def test_sync_deactivates_and_a_returning_record_is_active_again(iotask, engine, tmp_path):
    site = Site(iotask, engine, tmp_path, remove="deactivate", status_column="active")
    write_csv(site.file, users(20))
    site.task("--import-type", "sync")
    assert counts(site.run())["inserted"] == 20
    site.add_record("admin", None)

    write_csv(site.file, users(19, start=1))
    assert counts(site.run())["removed"] == 1
    rows = {row[0]: row for row in site.content()}
    assert rows["u0000"][3] == 0 and rows["u0001"][3] == 1 and rows["admin"][3] == 1
    assert counts(site.run())["removed"] == 0  # already inactive: not removed again

    write_csv(site.file, users(20))
    assert counts(site.run())["updated"] == 1
    assert all(row[3] == 1 for row in site.content())


def test_table_to_csv_export_round_trips(site, tmp_path):
    write_csv(site.file, users(30) + [["u9999", "Zoë, \"Q\"", "Multi\nline", "", ""]])
    site.task()
    site.run()
    out = tmp_path / "export.csv"
    site.iotask("connection", "add", "lms-read", "--type", "sql", "--set",
                "query=SELECT userid, firstname, lastname, email, birth_year FROM lms_user "
                "ORDER BY userid")
    site.iotask("connection", "add", "export", "--type", "csv", "--set", f"url={out}")
    site.iotask("task", "add", "export", "--source", "lms-read", "--destination", "export")
    site.iotask("run", "export")
    with open(out, encoding="utf-8", newline="") as exported, \
            open(site.file, encoding="utf-8", newline="") as imported:
        assert list(csv.reader(exported)) == list(csv.reader(imported))


def test_a_truncated_file_is_held_and_nothing_is_removed(site):
    write_csv(site.file, users(200))
    site.task("--import-type", "sync")
    site.run()
    before = site.content()

    write_csv(site.file, users(20, u0001="Changed"))
    result = site.run(ok=False)
    task = result.json()["tasks"][0]
    assert result.code == 1 and task["status"] == "held"
    assert "delete 180 of the 200 records it owns (90.0%), more than max_remove 10%" \
        in task["error"]
    assert "--accept-changes" in task["error"]
    assert site.content() == before

    accepted = site.run("--accept-changes")
    assert counts(accepted)["removed"] == 180 and counts(accepted)["updated"] == 1
    assert len(site.content()) == 20


def test_an_empty_file_removes_nothing_unless_allowed(site):
    write_csv(site.file, users(10))
    site.task("--import-type", "sync")
    site.run()
    before = site.content()
    write_csv(site.file, [])  # a header alone
    result = site.run(ok=False)
    task = result.json()["tasks"][0]
    assert task["status"] == "held" and "no data rows" in task["error"]
    assert site.content() == before

    site.iotask("task", "edit", "users", "--allow-empty", "--max-remove", "100%")
    assert counts(site.run())["removed"] == 10
    assert site.content() == []


def test_too_many_bad_rows_fail_the_run_and_apply_nothing(site, tmp_path):
    rows = users(100)
    for row in rows[::7][:15]:  # 15 bad rows: a year that is no number
        row[4] = "nineteen-eighty"
    write_csv(site.file, rows)
    site.task("--max-errors", "5%")
    result = site.run(ok=False)
    task = result.json()["tasks"][0]
    assert task["status"] == "failed"
    assert "15 of 100 rows rejected (15.0%), more than max_errors 5%" in task["error"]
    assert site.content() == []
    assert task["reject_file"] and Path(task["reject_file"]).exists()


def test_within_the_threshold_rows_apply_and_the_fixed_reject_file_imports(site, tmp_path):
    rows = users(100)
    rows[3][4] = "19x0"
    rows[50][0] = ""
    write_csv(site.file, rows[:60] + [["u0500", "Short"]] + rows[60:])
    site.task()
    result = site.run()
    task = result.json()["tasks"][0]
    assert task["status"] == "partial"
    assert task["counts"]["inserted"] == 98 and task["counts"]["failed"] == 3
    assert {(e["row"], e["column"]) for e in task["row_errors"]} == {
        (5, "birth_year"), (52, "userid"), (62, None)}
    assert f"rejected rows in {task['reject_file']}" in site.iotask(
        "history", "users").out.replace("written to", "in")

    reject = Path(task["reject_file"])
    with open(reject, encoding="utf-8", newline="") as handle:
        written = list(csv.reader(handle))
    assert written[0] == [*HEADER, "iotask_error"]
    assert [row[:5] for row in written[1:]] == [rows[3], ["", *rows[50][1:]],
                                                ["u0500", "Short", "", "", ""]]
    assert "not a whole number" in written[1][5] and "empty" in written[2][5]

    written[1][4] = "1980"
    written[2][0] = "u0050"
    written[3] = ["u0500", "Short", "Name", "s@example.com", "1990", written[3][5]]
    with open(reject, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(written)
    aged(reject)
    site.iotask("connection", "edit", OWNER, "--set", f"url={reject}")
    fixed = site.run().json()["tasks"][0]
    assert fixed["status"] == "success"
    assert fixed["counts"]["inserted"] == 3 and fixed["counts"]["failed"] == 0
    assert len(site.content()) == 101


def test_duplicate_keys_in_one_file_keep_the_first_row(site):
    rows = users(5) + [["u0002", "Again", "X", "x@example.com", "1970"]]
    write_csv(site.file, rows)
    site.task("--max-errors", "1")
    task = site.run().json()["tasks"][0]
    assert task["counts"]["inserted"] == 5 and task["counts"]["failed"] == 1
    assert task["row_errors"][0]["row"] == 7
    assert "duplicate key userid=u0002: also on line 4" in task["row_errors"][0]["message"]
    assert {row[0]: row[1] for row in site.content()}["u0002"] == "First2"


def test_dry_run_shows_the_change_set_and_applies_nothing(site):
    write_csv(site.file, users(50))
    site.task("--import-type", "sync")
    site.run()
    write_csv(site.file, users(40, start=10, u0020="New") + users(1, 300))
    before = site.content()

    result = site.iotask("run", "users", "--dry-run", ok=False)
    assert result.code == 1  # 10 of 50 removals is more than 10%: a real run would be held
    assert "would insert 1, update 1, leave 39 unchanged, delete 10 of 50 owned" in result.out
    assert "remove: userid=u0000; userid=u0001" in result.out
    assert "insert: userid=u0300" in result.out and "update: userid=u0020" in result.out
    assert "held" not in result.out.split("guards:")[0]
    assert "more than max_remove 10%" in result.out

    data = site.iotask("run", "users", "--dry-run", "--json", "--max-remove", ok=False)
    assert data.code == 2  # --max-remove is a task setting, not a run option
    data = site.iotask("run", "users", "--dry-run", "--json", ok=False).json()[0]
    assert data["changes"] == {"insert": 1, "update": 1, "unchanged": 39, "remove": 10,
                               "owned": 50, "removal": "delete"}
    assert len(data["samples"]["remove"]) == 10
    assert site.content() == before
    history = site.iotask("history", "users", "--json").json()
    assert len(history) == 1  # dry runs are not runs

    site.iotask("task", "edit", "users", "--max-remove", "25%")
    assert site.iotask("run", "users", "--dry-run").code == 0
    assert counts(site.run())["removed"] == 10


def test_guard_limits_are_checked_when_saved(site):
    result = site.iotask("task", "add", "bad", "--source", OWNER, "--destination", "lms",
                         "--max-remove", "lots", ok=False)
    assert result.code == 2 and "--max-remove must be a count such as 100 or a percent" \
        in result.err
    site.task("--max-errors", "12 %")
    shown = site.iotask("task", "show", "users", "--json").json()
    assert shown["max_errors"] == "12%" and shown["max_remove"] == "10%"
    assert shown["allow_empty"] is False
