"""forma-courses through the CLI on SQLite, PostgreSQL (iotask lms init) and MariaDB (forma's own
3.x DDL): new courses with their 8 level groups, Docebo's ownership (another connection's course
is left alone and counted), removal status0 / delete of the task's own courses only, row errors
for hostile values, dry runs, vendor-shaped files, read round trips and adopt."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import aged, write_csv

OWNER = "hr-courses"
HEADER = ["code", "name", "description", "status", "date_begin", "date_end", "difficult",
          "max_num_subscribe", "credits", "selling"]


class Lms:
    """A forma site, a CSV source "hr-courses" on courses.csv and a destination "forma"."""

    def __init__(self, iotask, url: str, folder: Path) -> None:
        self.iotask, self.url, self.folder = iotask, url, folder
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.md = sa.MetaData()
        self.course, self.group, self.members, self.enrolled = (
            sa.Table(name, self.md, autoload_with=self.engine) for name in
            ("learning_course", "core_group", "core_group_members", "learning_courseuser"))
        self.file = folder / "courses.csv"
        iotask("connection", "add", OWNER, "--type", "csv", "--set", f"url={self.file}")
        iotask("connection", "add", "forma", "--type", "forma-courses", "--set",
               f"database={url}")

    def write(self, rows: list[list[str]], header: list[str] = HEADER) -> None:
        write_csv(self.file, header, rows)

    def task(self, *options: str) -> None:
        self.iotask("task", "add", "courses", "--source", OWNER, "--destination", "forma",
                    *options)

    def run(self, *options: str, ok: bool = True):
        return self.iotask("run", "courses", "--json", *options, ok=ok)

    def courses(self) -> dict[str, dict]:
        with self.engine.connect() as conn:
            return {row.code: dict(row._mapping) for row in conn.execute(
                sa.select(self.course).order_by(self.course.c.idCourse))}

    def groups(self, course_id: int) -> dict[str, tuple]:
        g = self.group
        with self.engine.connect() as conn:
            return {row.groupid: (row.idst, row.type, row.hidden) for row in conn.execute(
                sa.select(g).where(g.c.groupid.like(f"/lms/course/{course_id}/%")))}

    def memberships(self) -> set[tuple[int, int]]:
        with self.engine.connect() as conn:
            return {tuple(row) for row in conn.execute(
                sa.select(self.members.c.idst, self.members.c.idstMember))}

    def add_course(self, code: str, owner: str | None, name: str = "Kept", **values) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(sa.insert(self.course).values(
                code=code, name=name, description="", box_description="", calendarId="",
                imported_from_connection=owner, **values))
            return int(result.inserted_primary_key[0])

    def counts(self, result) -> dict[str, int]:
        return result.json()["tasks"][0]["counts"]


@pytest.fixture
def lms(iotask, forma_url, tmp_path) -> Lms:
    site = Lms(iotask, forma_url, tmp_path)
    yield site
    site.engine.dispose()


def rows_101_102() -> list[list[str]]:
    return [["C-101", "Safety first", "Fire and ladders", "available", "2026-01-10",
             "2026-06-30", "easy", "25", "1.5", "yes"],
            ["C-102", "Excel", "", "", "", "0000-00-00", "", "", "", ""]]


def test_new_courses_get_their_level_groups_and_another_owners_course_is_left_alone(lms):
    foreign = lms.add_course("F-1", "other-feed", name="Theirs")
    manual = lms.add_course("M-1", None, name="Made by hand")
    lms.write(rows_101_102() + [["F-1", "Renamed", "", "", "", "", "", "", "", ""],
                                ["M-1", "Renamed too", "", "", "", "", "", "", "", ""]])
    lms.task()
    result = lms.run()
    assert lms.counts(result) == {"read": 4, "inserted": 2, "updated": 0, "unchanged": 2,
                                  "removed": 0, "failed": 0}
    notes = result.json()["tasks"][0]["notes"]
    assert any("2 courses left alone" in note and "F-1" in note and "M-1" in note
               for note in notes), notes

    courses = lms.courses()
    assert courses["F-1"]["name"] == "Theirs" and courses["F-1"]["idCourse"] == foreign
    assert courses["M-1"]["name"] == "Made by hand" and courses["M-1"]["idCourse"] == manual
    assert courses["M-1"]["imported_from_connection"] is None
    first, second = courses["C-101"], courses["C-102"]
    assert (first["name"], first["description"], first["status"], first["difficult"],
            first["max_num_subscribe"], first["credits"], first["selling"]) == (
        "Safety first", "Fire and ladders", 1, "easy", 25, 1.5, 1)
    assert str(first["date_begin"])[:10] == "2026-01-10"
    assert (second["description"], second["box_description"], second["status"],
            second["difficult"], second["course_type"]) == ("", "", 0, "medium", "elearning")
    assert first["imported_from_connection"] == OWNER and first["create_date"] is not None
    members = lms.memberships()
    for course in (first, second):
        groups = lms.groups(course["idCourse"])
        base = f"/lms/course/{course['idCourse']}"
        assert set(groups) == {f"{base}/group/alluser",
                               *(f"{base}/subscribed/{level}" for level in range(1, 8))}
        assert {(kind, hidden) for _idst, kind, hidden in groups.values()} == {
            ("course", "true")}
        alluser = groups[f"{base}/group/alluser"][0]
        assert all((alluser, groups[f"{base}/subscribed/{level}"][0]) in members
                   for level in range(1, 8))
    ids = [idst for c in (first, second) for idst, _k, _h in lms.groups(c["idCourse"]).values()]
    assert len(set(ids)) == 16  # from core_st: no collision with the seed groups either
    assert not set(ids) & {1, 2, 3, 4, 5, 6}

    assert lms.counts(lms.run()) == {"read": 4, "inserted": 0, "updated": 0, "unchanged": 4,
                                     "removed": 0, "failed": 0}
    # an empty cell never blanks a value; a changed one is written
    lms.write([["C-101", "Safety second", "", "", "", "", "", "", "", ""],
               ["C-102", "", "", "concluded", "", "", "", "", "", ""]])
    assert lms.counts(lms.run())["updated"] == 2
    courses = lms.courses()
    assert courses["C-101"]["name"] == "Safety second"
    assert courses["C-101"]["description"] == "Fire and ladders"
    assert courses["C-101"]["status"] == 1 and courses["C-102"]["status"] == 3
    assert courses["C-102"]["name"] == "Excel"


def test_a_zero_date_clears_a_date_an_empty_cell_keeps_it(lms):
    lms.write(rows_101_102())
    lms.task()
    lms.run()
    lms.write([["C-101", "", "", "", "", "0000-00-00", "", "", "", ""]])
    assert lms.counts(lms.run())["updated"] == 1
    course = lms.courses()["C-101"]
    assert str(course["date_begin"])[:10] == "2026-01-10"
    assert course["date_end"] is None or str(course["date_end"]).startswith("0000")
    assert lms.counts(lms.run())["unchanged"] == 1


def test_sync_status0_removes_only_the_tasks_own_courses(lms):
    lms.add_course("F-1", "other-feed")
    lms.add_course("M-1", None, status=1)
    lms.write(rows_101_102() + [["C-103", "Word", "", "available", "", "", "", "", "", ""]])
    lms.task("--import-type", "sync", "--max-remove", "100%")
    assert lms.counts(lms.run())["inserted"] == 3
    lms.write(rows_101_102()[:1])  # C-102 and C-103 gone; F-1 and M-1 never in the file
    result = lms.run()
    assert lms.counts(result)["removed"] == 1  # C-102 is in preparation (0) already
    courses = lms.courses()
    assert courses["C-103"]["status"] == 0 and courses["C-101"]["status"] == 1
    assert courses["M-1"]["status"] == 1 and set(courses) == {"C-101", "C-102", "C-103",
                                                              "F-1", "M-1"}
    assert lms.counts(lms.run())["removed"] == 0


def test_sync_delete_removes_the_course_its_groups_and_enrollments(lms):
    foreign = lms.add_course("F-1", "other-feed")
    lms.iotask("connection", "edit", "forma", "--set", "remove=delete")
    lms.write(rows_101_102())
    lms.task("--import-type", "sync", "--max-remove", "100%")
    lms.run()
    courses = lms.courses()
    gone, kept = courses["C-102"]["idCourse"], courses["C-101"]["idCourse"]
    gone_groups = lms.groups(gone)
    with lms.engine.begin() as conn:
        for course_id in (gone, kept, foreign):
            conn.execute(sa.insert(lms.enrolled).values(idUser=11836, idCourse=course_id,
                                                        level=3, status=0))
        conn.execute(sa.insert(lms.members).values(
            idst=gone_groups[f"/lms/course/{gone}/subscribed/3"][0], idstMember=11836,
            filter=""))
    lms.write(rows_101_102()[:1])
    dry = lms.iotask("run", "courses", "--dry-run", "--json").json()[0]
    assert dry["changes"]["remove"] == 1 and dry["samples"]["remove"] == ["code=C-102"]
    assert dry["changes"]["removal"] == "delete"
    assert gone in {c["idCourse"] for c in lms.courses().values()}
    assert lms.counts(lms.run())["removed"] == 1
    assert set(lms.courses()) == {"C-101", "F-1"}
    assert lms.groups(gone) == {} and len(lms.groups(kept)) == 8
    idsts = {idst for idst, _k, _h in gone_groups.values()}
    assert not {pair for pair in lms.memberships() if pair[0] in idsts or pair[1] in idsts}
    with lms.engine.connect() as conn:
        left = {row[0] for row in conn.execute(sa.select(lms.enrolled.c.idCourse))}
    assert left == {kept, foreign}


def test_hostile_values_are_row_errors_naming_line_and_column(lms):
    lms.add_course("TWICE", "hr-courses")
    lms.add_course("TWICE", None)
    lms.write([
        ["C-1", "Good", "multi\nline\ttext", "", "", "", "", "", "", ""],          # line 2-3
        ["C-2", "Bad status", "", "opened", "", "", "", "", "", ""],              # line 4
        ["C-3", "Bad date", "", "", "2024-13-40", "", "", "", "", ""],            # line 5
        ["C-4", "Bad credits", "", "", "", "", "", "", "NaN", ""],                # line 6
        ["C-5", "Huge", "", "", "", "", "", "1e999", "", ""],                     # line 7
        ["X" * 60, "Long code", "", "", "", "", "", "", "", ""],                  # line 8
        ["C-6", "Bell\x07name", "", "", "", "", "", "", "", ""],                  # line 9
        ["C-7", "", "", "", "", "", "", "", "", ""],                              # line 10
        ["C-1", "Again", "", "", "", "", "", "", "", ""],                         # line 11
        ["TWICE", "Which?", "", "", "", "", "", "", "", ""],                      # line 12
        ["C-8", "Hard", "", "", "", "", "impossible", "", "", ""],                # line 13
        ["C-9", "Infinite", "", "", "", "", "", "", "inf", ""],                   # line 14
        ["C-10", "Sells?", "", "", "", "", "", "", "", "maybe"],                  # line 15
        ["C-11", "Novel", "é" * 40000, "", "", "", "", "", "", ""],              # line 16
    ])
    lms.task("--max-errors", "100%")
    result = lms.run()
    data = result.json()["tasks"][0]
    errors = {(e["row"], e["column"]): e for e in data["row_errors"]}
    expected = {(4, "status"): "opened", (5, "date_begin"): "2024-13-40",
                (6, "credits"): "NaN", (7, "max_num_subscribe"): "1e999",
                (8, "code"): "60 characters", (9, "name"): "U+0007",
                (10, "name"): "needs one", (11, "code"): "duplicate",
                (12, "code"): "held by 2 courses", (13, "difficult"): "impossible",
                (14, "credits"): "inf", (15, "selling"): "maybe",
                (16, "description"): "80000 bytes"}
    assert set(errors) == set(expected), errors
    for where, fragment in expected.items():
        assert fragment in errors[where]["message"], errors[where]
    assert errors[(4, "status")]["key"] == "code=C-2"
    assert data["counts"]["inserted"] == 1 and data["counts"]["failed"] == 13
    courses = lms.courses()
    assert set(courses) == {"C-1", "TWICE"}
    assert courses["C-1"]["description"] == "multi\nline\ttext"


def test_a_dry_run_writes_nothing(lms):
    lms.write(rows_101_102())
    lms.task()
    with lms.engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(lms.group)).scalar_one()
    dry = lms.iotask("run", "courses", "--dry-run", "--json").json()[0]
    assert dry["changes"]["insert"] == 2 and dry["samples"]["insert"] == ["code=C-101",
                                                                          "code=C-102"]
    assert lms.courses() == {}
    with lms.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(lms.group)).scalar_one() \
            == before


def test_a_vendor_shaped_file_bom_crlf_semicolons(lms):
    lms.file.write_bytes("\ufeffcode;name;status;difficult\r\nV-1;Zoë's course;2;veryeasy\r\n"
                         "V-2;Second;confirmed;Very Easy\r\n".encode())
    aged(lms.file)
    lms.iotask("connection", "edit", OWNER, "--set", "delimiter=;", "--set",
               "encoding=utf-8-sig")
    lms.task()
    assert lms.counts(lms.run())["inserted"] == 2
    courses = lms.courses()
    assert courses["V-1"]["name"] == "Zoë's course" and courses["V-1"]["status"] == 2
    assert courses["V-2"]["difficult"] == "veryeasy"


def test_an_unknown_column_stops_the_run(lms):
    lms.write(rows_101_102()[:1])
    lms.task()
    lms.write([["C-1", "x"]], header=["code", "title"])
    result = lms.run(ok=False)
    assert result.code != 0
    assert "'title'" in result.out + result.err and "credits" in result.out + result.err
    assert lms.courses() == {}


def test_courses_read_back_as_the_file_that_wrote_them(lms, tmp_path):
    lms.write(rows_101_102())
    lms.task()
    lms.run()
    out = tmp_path / "export.csv"
    lms.iotask("connection", "add", "export", "--type", "csv", "--set", f"url={out}")
    lms.iotask("task", "add", "export", "--source", "forma", "--destination", "export")
    lms.iotask("run", "export")
    with open(out, encoding="utf-8", newline="") as exported:
        rows = list(csv.DictReader(exported))
    assert [row["code"] for row in rows] == ["C-101", "C-102"]
    first = rows[0]
    assert (first["name"], first["status"], first["date_begin"], first["date_end"],
            first["difficult"], first["credits"], first["selling"]) == (
        "Safety first", "available", "2026-01-10", "2026-06-30", "easy", "1.5", "1")
    assert rows[1]["date_end"] == "" and rows[1]["status"] == "preparation"
    # and back: the export imported into the same site changes nothing
    aged(out)
    lms.iotask("connection", "add", "reimport", "--type", "csv", "--set", f"url={out}")
    lms.iotask("task", "add", "back", "--source", "reimport", "--destination", "forma")
    result = lms.iotask("run", "back", "--json").json()["tasks"][0]
    assert result["counts"]["unchanged"] == 2 and result["counts"]["updated"] == 0, result


def test_adopt_lets_a_sync_remove_courses_made_in_the_lms(lms):
    lms.add_course("M-1", None, status=1)
    lms.add_course("M-2", None, status=1)
    lms.add_course("F-1", "other-feed", status=1)
    lms.write([["M-1", "", "", "", "", "", "", "", "", ""]])
    lms.task("--import-type", "sync", "--max-remove", "100%")
    adopted = lms.iotask("task", "adopt", "courses", "--json").json()
    assert adopted["adopted"] == 1
    courses = lms.courses()
    assert courses["M-1"]["imported_from_connection"] == OWNER
    assert courses["M-2"]["imported_from_connection"] is None
    assert courses["F-1"]["imported_from_connection"] == "other-feed"
    lms.write([["C-9", "New", "", "", "", "", "", "", "", ""]])
    assert lms.counts(lms.run())["removed"] == 1
    courses = lms.courses()
    assert courses["M-1"]["status"] == 0 and courses["M-2"]["status"] == 1
    assert courses["F-1"]["status"] == 1


def test_a_character_the_sites_3_byte_utf8_cannot_hold_is_a_row_error(lms, backend):
    lms.write([["E-1", "Fire safety \U0001F525", "", "", "", "", "", "", "", ""],
               ["E-2", "Città e caffè", "", "", "", "", "", "", "", ""]])
    lms.task("--max-errors", "100%")
    data = lms.run().json()["tasks"][0]
    courses = lms.courses()
    assert courses["E-2"]["name"] == "Città e caffè"
    if backend == "mariadb":  # forma 3.x: CHARSET=utf8, 3 bytes a character at most
        assert [(e["row"], e["column"]) for e in data["row_errors"]] == [(2, "name")]
        assert "U+1F525" in data["row_errors"][0]["message"] and "E-1" not in courses
    else:
        assert courses["E-1"]["name"] == "Fire safety \U0001F525"


def test_a_rejected_row_keeps_its_course_from_a_sync(lms):
    lms.write([["C-101", "One", "", "available", "", "", "", "", "", ""],
               ["C-102", "Two", "", "available", "", "", "", "", "", ""]])
    lms.task("--import-type", "sync", "--max-remove", "100%", "--max-errors", "100%")
    lms.run()
    lms.write([["C-101", "One", "", "bogus", "", "", "", "", "", ""]])
    result = lms.run()
    assert lms.counts(result)["removed"] == 1 and lms.counts(result)["failed"] == 1
    courses = lms.courses()
    assert courses["C-101"]["status"] == 1 and courses["C-102"]["status"] == 0
