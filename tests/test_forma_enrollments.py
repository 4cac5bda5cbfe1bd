"""forma-enrollments through the CLI on SQLite, PostgreSQL (iotask lms init) and MariaDB (forma's
own 3.x DDL): enrollments and completions, level-group memberships that follow the level, the
status change log, row errors for unknown users and courses and hostile values, and the proof
that Docebo's defect cannot happen: a sync removes only the task's own enrollments that its file
no longer has."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import aged, write_csv
from iotask.connectors import forma

OWNER = "hr-training"
HEADER = ["userid", "code", "level", "date_subscription", "status", "date_complete", "score"]


class Lms:
    """A forma site with users and courses made directly in its tables, a CSV source
    "hr-training" on training.csv and a destination "forma"."""

    def __init__(self, iotask, url: str, folder: Path, **settings: str) -> None:
        self.iotask, self.url, self.folder = iotask, url, folder
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        md = sa.MetaData()
        self.user, self.course, self.group, self.members, self.enrolled, self.log = (
            sa.Table(name, md, autoload_with=self.engine) for name in
            ("core_user", "learning_course", "core_group", "core_group_members",
             "learning_courseuser", "learning_statuschangelog"))
        self.file = folder / "training.csv"
        iotask("connection", "add", OWNER, "--type", "csv", "--set", f"url={self.file}")
        iotask("connection", "add", "forma", "--type", "forma-enrollments", "--set",
               f"database={url}", *[part for key, value in settings.items()
                                    for part in ("--set", f"{key}={value}")])
        self.users = {name: self.add_user(name) for name in ("jdoe", "ann", "bob")}
        self.courses = {code: self.add_course(code) for code in ("C-101", "C-102")}

    def add_user(self, userid: str) -> int:
        with self.engine.begin() as conn:
            (idst,) = forma.Site(conn).allocate(1)
            conn.execute(sa.insert(self.user).values(idst=idst, userid=f"/{userid}",
                                                     signature="", firstname=userid))
        return idst

    def add_course(self, code: str, owner: str | None = "hr-courses") -> int:
        """A course made without its level groups (as some other tool might)."""
        with self.engine.begin() as conn:
            return int(conn.execute(sa.insert(self.course).values(
                code=code, name=code, description="", box_description="", calendarId="",
                imported_from_connection=owner)).inserted_primary_key[0])

    def enroll(self, userid: str, code: str, owner: str | None, level: int = 3,
               status: int = 0) -> None:
        """An enrollment made by hand in the LMS (owner None) or by another feed."""
        with self.engine.begin() as conn:
            conn.execute(sa.insert(self.enrolled).values(
                idUser=self.users[userid], idCourse=self.courses[code], level=level,
                status=status, date_inscr=datetime(2025, 1, 1),
                imported_from_connection=owner))

    def write(self, rows: list[list[str]], header: list[str] = HEADER) -> None:
        write_csv(self.file, header, rows)

    def task(self, *options: str) -> None:
        self.iotask("task", "add", "training", "--source", OWNER, "--destination", "forma",
                    *options)

    def run(self, *options: str, ok: bool = True):
        return self.iotask("run", "training", "--json", *options, ok=ok)

    def enrollments(self) -> dict[tuple[str, str], dict]:
        ids = {v: k for k, v in self.users.items()}
        codes = {v: k for k, v in self.courses.items()}
        with self.engine.connect() as conn:
            return {(ids[row.idUser], codes[row.idCourse]): dict(row._mapping)
                    for row in conn.execute(sa.select(self.enrolled))}

    def level_of(self, userid: str, code: str) -> set[str]:
        """The level groups of the course that the user is a member of."""
        g, m = self.group, self.members
        with self.engine.connect() as conn:
            return {row[0].rsplit("/", 1)[1] for row in conn.execute(
                sa.select(g.c.groupid).select_from(m.join(g, g.c.idst == m.c.idst))
                .where(m.c.idstMember == self.users[userid],
                       g.c.groupid.like(f"/lms/course/{self.courses[code]}/subscribed/%")))}

    def logged(self) -> list[tuple[str, str, int]]:
        ids = {v: k for k, v in self.users.items()}
        codes = {v: k for k, v in self.courses.items()}
        with self.engine.connect() as conn:
            return sorted((ids[row.idUser], codes[row.idCourse], row.status_user)
                          for row in conn.execute(sa.select(self.log)))

    def table_sizes(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for t in (self.enrolled, self.group, self.members, self.log)}

    @staticmethod
    def counts(result) -> dict[str, int]:
        return result.json()["tasks"][0]["counts"]


@pytest.fixture
def lms(iotask, forma_url, tmp_path) -> Lms:
    site = Lms(iotask, forma_url, tmp_path)
    yield site
    site.engine.dispose()


def test_enrollments_and_completions_with_their_level_groups(lms):
    lms.write([["jdoe", "C-101", "", "", "", "", ""],
               ["ann", "C-101", "tutor", "", "completed", "2026-03-01 10:30:00", "95"],
               ["bob", "C-102", "", "2026-01-15", "", "", ""]])
    lms.task()
    assert lms.counts(lms.run()) == {"read": 3, "inserted": 3, "updated": 0, "unchanged": 0,
                                     "removed": 0, "failed": 0}
    rows = lms.enrollments()
    jdoe, ann, bob = rows[("jdoe", "C-101")], rows[("ann", "C-101")], rows[("bob", "C-102")]
    assert (jdoe["level"], jdoe["status"], jdoe["score_given"], jdoe["edition_id"]) == (
        3, 0, None, 0)
    assert jdoe["date_inscr"] is not None and not forma.is_no_date(jdoe["date_inscr"])
    assert jdoe["date_complete"] is None
    assert (ann["level"], ann["status"], ann["score_given"]) == (4, 2, 95)
    assert ann["date_complete"] == datetime(2026, 3, 1, 10, 30)
    assert bob["date_inscr"] == datetime(2026, 1, 15)
    assert {row["imported_from_connection"] for row in rows.values()} == {OWNER}
    # the courses had no level groups: made, and each user is in the one of their level
    assert lms.level_of("jdoe", "C-101") == {"3"} and lms.level_of("ann", "C-101") == {"4"}
    assert lms.level_of("bob", "C-102") == {"3"}
    with lms.engine.connect() as conn:
        groups = [row[0] for row in conn.execute(sa.select(lms.group.c.groupid).where(
            lms.group.c.groupid.like(f"/lms/course/{lms.courses['C-101']}/%")))]
    assert len(groups) == 8
    assert lms.logged() == [("ann", "C-101", 2), ("bob", "C-102", 0), ("jdoe", "C-101", 0)]

    assert lms.counts(lms.run())["unchanged"] == 3
    assert len(lms.logged()) == 3  # no change, no log

    # a completions file: status 2 with a date (now when empty) and a score; a level change
    # moves the membership
    lms.write([["jdoe", "C-101", "", "", "2", "", "88"],
               ["ann", "C-101", "student", "", "", "", ""]])
    assert lms.counts(lms.run()) == {"read": 2, "inserted": 0, "updated": 2, "unchanged": 0,
                                     "removed": 0, "failed": 0}
    rows = lms.enrollments()
    jdoe, ann = rows[("jdoe", "C-101")], rows[("ann", "C-101")]
    assert (jdoe["status"], jdoe["score_given"]) == (2, 88) and jdoe["date_complete"] is not None
    assert (ann["level"], ann["status"], ann["score_given"]) == (3, 2, 95)  # kept
    assert ann["date_complete"] == datetime(2026, 3, 1, 10, 30)
    assert lms.level_of("ann", "C-101") == {"3"} and lms.level_of("jdoe", "C-101") == {"3"}
    assert lms.logged() == [("ann", "C-101", 2), ("bob", "C-102", 0), ("jdoe", "C-101", 0),
                            ("jdoe", "C-101", 2)]


def test_sync_removes_only_the_tasks_own_enrollments_missing_from_the_file(lms):
    """Docebo's defect: its insert-remove suspended every enrollment in the site."""
    lms.users["admin"] = lms.add_user("site-admin")
    lms.users["carl"] = lms.add_user("carl")
    lms.write([["jdoe", "C-101", "", "", "", "", ""], ["bob", "C-102", "", "", "", "", ""],
               ["ann", "C-101", "", "", "", "", ""]])
    lms.task("--import-type", "sync", "--max-remove", "100%")
    assert lms.counts(lms.run())["inserted"] == 3
    lms.enroll("admin", "C-101", None)  # by hand in the LMS
    lms.enroll("carl", "C-102", None)  # by hand, and not in the file
    lms.enroll("ann", "C-102", "other-feed")  # another feed's
    lms.enroll("bob", "C-101", "other-feed", status=1)

    # the file keeps ann (unchanged) and completes admin's manual enrollment
    lms.write([["ann", "C-101", "", "", "", "", ""],
               ["site-admin", "C-101", "", "", "completed", "2026-02-02", "70"]])
    dry = lms.iotask("run", "training", "--dry-run", "--json").json()[0]
    assert dry["changes"]["remove"] == 2 and dry["changes"]["owned"] == 3
    assert dry["samples"]["remove"] == ["userid=bob, code=C-102", "userid=jdoe, code=C-101"]
    result = lms.run()
    assert lms.counts(result) == {"read": 2, "inserted": 0, "updated": 1, "unchanged": 1,
                                  "removed": 2, "failed": 0}
    rows = lms.enrollments()
    assert rows[("jdoe", "C-101")]["status"] == 3 and rows[("bob", "C-102")]["status"] == 3
    assert rows[("ann", "C-101")]["status"] == 0
    assert (rows[("admin", "C-101")]["status"], rows[("admin", "C-101")]["score_given"],
            rows[("admin", "C-101")]["imported_from_connection"]) == (2, 70, None)
    assert rows[("carl", "C-102")]["status"] == 0
    assert rows[("ann", "C-102")]["status"] == 0 and rows[("bob", "C-101")]["status"] == 1
    assert ("jdoe", "C-101", 3) in lms.logged() and ("bob", "C-102", 3) in lms.logged()
    assert lms.counts(lms.run())["removed"] == 0  # suspended already

    # back in the file without a status: the task's own suspended enrollment is subscribed
    # again; one suspended by hand stays suspended (its missing level-group membership made)
    lms.enroll("carl", "C-101", None, status=3)
    assert lms.level_of("carl", "C-101") == set()
    lms.write([["ann", "C-101", "", "", "", "", ""], ["jdoe", "C-101", "", "", "", "", ""],
               ["carl", "C-101", "", "", "", "", ""]])
    assert lms.counts(lms.run()) == {"read": 3, "inserted": 0, "updated": 2, "unchanged": 1,
                                     "removed": 0, "failed": 0}
    rows = lms.enrollments()
    assert rows[("jdoe", "C-101")]["status"] == 0 and rows[("carl", "C-101")]["status"] == 3
    assert lms.level_of("carl", "C-101") == {"3"}
    assert lms.logged().count(("jdoe", "C-101", 0)) == 2


def test_sync_unsubscribe_deletes_the_enrollment_and_its_membership(iotask, forma_url,
                                                                     tmp_path):
    lms = Lms(iotask, forma_url, tmp_path, remove="unsubscribe")
    lms.write([["jdoe", "C-101", "mentor", "", "", "", ""], ["ann", "C-101", "", "", "", "", ""]])
    lms.task("--import-type", "sync", "--max-remove", "100%")
    lms.run()
    lms.enroll("bob", "C-101", None)
    assert lms.level_of("jdoe", "C-101") == {"5"}
    lms.write([["ann", "C-101", "", "", "", "", ""]])
    assert lms.counts(lms.run())["removed"] == 1
    assert set(lms.enrollments()) == {("ann", "C-101"), ("bob", "C-101")}
    assert lms.level_of("jdoe", "C-101") == set() and lms.level_of("ann", "C-101") == {"3"}
    lms.engine.dispose()


def test_unknown_users_and_courses_are_row_errors_the_rest_goes_on(lms):
    lms.write([["jdoe", "C-101", "", "", "", "", ""],
               ["ghost", "C-101", "", "", "", "", ""],
               ["ann", "C-999", "", "", "", "", ""],
               ["nobody", "C-000", "", "", "", "", ""],
               ["bob", "C-102", "", "", "", "", ""]])
    lms.task("--max-errors", "100%")
    data = lms.run().json()["tasks"][0]
    errors = [(e["row"], e["column"], e["key"], e["message"]) for e in data["row_errors"]]
    assert [e[:3] for e in errors] == [(3, "userid", "userid=ghost, code=C-101"),
                                       (4, "code", "userid=ann, code=C-999"),
                                       (5, "userid", "userid=nobody, code=C-000")]
    assert "no user ghost" in errors[0][3] and "no course C-999" in errors[1][3]
    assert data["counts"]["inserted"] == 2 and data["counts"]["failed"] == 3
    assert set(lms.enrollments()) == {("jdoe", "C-101"), ("bob", "C-102")}


def test_hostile_values_are_row_errors_naming_line_and_column(lms):
    lms.add_course("TWICE")
    lms.add_course("TWICE")
    lms.write([
        ["jdoe", "C-101", "", "", "finished", "", ""],           # 2
        ["ann", "C-101", "", "2024-13-40", "", "", ""],          # 3
        ["bob", "C-101", "", "", "", "", "NaN"],                 # 4
        ["bob", "C-102", "", "", "", "", "1e999"],               # 5
        ["jdoe", "X" * 60, "", "", "", "", ""],                  # 6
        ["jd\x1boe", "C-102", "", "", "", "", ""],               # 7
        ["ann", "C-102", "boss", "", "", "", ""],                # 8
        ["jdoe", "C-102", "", "", "", "2026-02-30 10:00", ""],   # 9
        ["jdoe", "TWICE", "", "", "", "", ""],                   # 10
        ["ann", "C-102", "", "", "", "", "85.5"],                # 11 (and a duplicate key)
        ["jdoe", "C-101", "", "", "", "", ""],                   # 12 duplicate of line 2
        ["", "C-101", "", "", "", "", ""],                       # 13
    ])
    lms.task("--max-errors", "100%")
    data = lms.run().json()["tasks"][0]
    errors = {(e["row"], e["column"]): e["message"] for e in data["row_errors"]}
    expected = {(2, "status"): "finished", (3, "date_subscription"): "2024-13-40",
                (4, "score"): "NaN", (5, "score"): "1e999", (6, "code"): "60 characters",
                (7, "userid"): "U+001B", (8, "level"): "boss",
                (9, "date_complete"): "2026-02-30", (10, "code"): "held by 2 courses",
                (11, "score"): "85.5", (12, "userid"): "duplicate",
                (13, "userid"): "empty"}
    assert set(errors) == set(expected), errors
    for where, fragment in expected.items():
        assert fragment in errors[where], (where, errors[where])
    assert data["counts"]["failed"] == 12 and data["counts"]["inserted"] == 0
    assert lms.enrollments() == {}


def test_a_rejected_row_keeps_its_enrollment_from_a_sync(lms):
    lms.write([["jdoe", "C-101", "", "", "", "", ""], ["ann", "C-101", "", "", "", "", ""]])
    lms.task("--import-type", "sync", "--max-remove", "100%", "--max-errors", "100%")
    lms.run()
    lms.write([["jdoe", "C-101", "", "", "bogus", "", ""], ["bob", "C-101", "", "", "", "", ""]])
    result = lms.run()
    assert lms.counts(result)["removed"] == 1 and lms.counts(result)["failed"] == 1
    rows = lms.enrollments()
    assert rows[("jdoe", "C-101")]["status"] == 0 and rows[("ann", "C-101")]["status"] == 3


def test_a_dry_run_writes_nothing(lms):
    lms.write([["jdoe", "C-101", "", "", "completed", "", "90"]])
    lms.task()
    before = lms.table_sizes()
    dry = lms.iotask("run", "training", "--dry-run", "--json").json()[0]
    assert dry["changes"]["insert"] == 1
    assert dry["samples"]["insert"] == ["userid=jdoe, code=C-101"]
    assert lms.table_sizes() == before and lms.enrollments() == {}


def test_a_vendor_shaped_file_bom_crlf_semicolons(lms):
    lms.file.write_bytes("\ufeffuserid;code;status;date_complete;score\r\n"
                         "jdoe;C-101;completed;2026-04-01 09:00;100\r\n"
                         "ann;C-102;in progress;;\r\n".encode())
    aged(lms.file)
    lms.iotask("connection", "edit", OWNER, "--set", "delimiter=;", "--set",
               "encoding=utf-8-sig")
    lms.task()
    assert lms.counts(lms.run())["inserted"] == 2
    rows = lms.enrollments()
    assert (rows[("jdoe", "C-101")]["status"], rows[("jdoe", "C-101")]["score_given"]) == (2, 100)
    assert rows[("ann", "C-102")]["status"] == 1


def test_enrollments_read_back_as_the_file_that_wrote_them(lms, tmp_path):
    lms.write([["jdoe", "C-101", "teacher", "2026-01-15", "completed", "2026-03-01 10:30",
                "95"], ["ann", "C-102", "", "2026-01-16 08:15:00", "", "", ""]])
    lms.task()
    lms.run()
    out = tmp_path / "export.csv"
    lms.iotask("connection", "add", "export", "--type", "csv", "--set", f"url={out}")
    lms.iotask("task", "add", "export", "--source", "forma", "--destination", "export")
    lms.iotask("run", "export")
    with open(out, encoding="utf-8", newline="") as exported:
        rows = list(csv.DictReader(exported))
    assert rows == [
        {"userid": "ann", "code": "C-102", "level": "student",
         "date_subscription": "2026-01-16 08:15:00", "status": "subscribed",
         "date_complete": "", "score": ""},
        {"userid": "jdoe", "code": "C-101", "level": "teacher",
         "date_subscription": "2026-01-15 00:00:00", "status": "completed",
         "date_complete": "2026-03-01 10:30:00", "score": "95"}]
    aged(out)
    lms.iotask("connection", "add", "reimport", "--type", "csv", "--set", f"url={out}")
    lms.iotask("task", "add", "back", "--source", "reimport", "--destination", "forma")
    result = lms.iotask("run", "back", "--json").json()["tasks"][0]
    assert result["counts"]["unchanged"] == 2 and result["counts"]["updated"] == 0, result


def test_adopt_lets_a_sync_remove_enrollments_made_in_the_lms(lms):
    lms.enroll("jdoe", "C-101", None)
    lms.enroll("ann", "C-101", None)
    lms.enroll("bob", "C-101", "other-feed")
    lms.write([["jdoe", "C-101", "", "", "", "", ""]])
    lms.task("--import-type", "sync", "--max-remove", "100%")
    assert lms.iotask("task", "adopt", "training", "--json").json()["adopted"] == 1
    rows = lms.enrollments()
    assert rows[("jdoe", "C-101")]["imported_from_connection"] == OWNER
    assert rows[("ann", "C-101")]["imported_from_connection"] is None
    lms.write([["bob", "C-102", "", "", "", "", ""]])
    assert lms.counts(lms.run())["removed"] == 1
    rows = lms.enrollments()
    assert rows[("jdoe", "C-101")]["status"] == 3 and rows[("ann", "C-101")]["status"] == 0
    assert rows[("bob", "C-101")]["status"] == 0
