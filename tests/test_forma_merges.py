"""forma-merges through the CLI, fed by the xml connector's user-merge format (the
userMergeXml task type): enrollments and completions counted before and after (none lost), the
better completion kept, memberships moved, the duplicate suspended; unknown users, self-merges,
chains and repeated duplicates are row errors; a dry run writes nothing; a failure in any pair
rolls every pair back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import aged, assert_user_error
from iotask.connectors import forma
from test_xml_connector import EXAMPLES

TWO = pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
COMPLETED = 2


class Site:
    """An LMS loaded from the XML samples (examples/users.xml, courses.xml,
    training-records.xml) through the xml connector, and a merge task "merge" reading
    ``merges.xml`` into forma-merges."""

    def __init__(self, iotask, url: str, folder: Path) -> None:
        self.iotask, self.url, self.folder = iotask, url, folder
        for kind, fmt in (("courses", "courses"), ("users", "users"),
                          ("enrollments", "training-records")):
            path = aged(Path(shutil.copy(EXAMPLES / f"{fmt}.xml", folder / f"{fmt}.xml")))
            iotask("connection", "add", f"{kind}-xml", "--type", "xml", "--set", f"url={path}",
                   "--set", f"format={fmt}")
            iotask("connection", "add", f"lms-{kind}", "--type", f"forma-{kind}",
                   "--set", f"database={url}")
            iotask("task", "add", f"load {kind}", "--source", f"{kind}-xml",
                   "--destination", f"lms-{kind}")
            iotask("run", f"load {kind}")
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        md = sa.MetaData()
        self.user, self.course, self.group, self.members, self.cu, self.log = (
            sa.Table(name, md, autoload_with=self.engine) for name in
            ("core_user", "learning_course", "core_group", "core_group_members",
             "learning_courseuser", "learning_statuschangelog"))
        self.merges = folder / "merges.xml"
        iotask("connection", "add", "merges-xml", "--type", "xml", "--set",
               f"url={self.merges}", "--set", "format=user-merge")
        iotask("connection", "add", "lms-merges", "--type", "forma-merges",
               "--set", f"database={url}")
        iotask("task", "add", "merge", "--source", "merges-xml", "--destination", "lms-merges",
               "--max-errors", "100%")

    def write(self, pairs: list[tuple[str, str]] | None = None) -> None:
        if pairs is None:
            shutil.copy(EXAMPLES / "user-merge.xml", self.merges)
        else:
            self.merges.write_text(
                '<?xml version="1.0" encoding="utf-8"?>\n<user-merges version="1">\n' + "".join(
                    f"  <merge><userid>{a}</userid><survivor>{b}</survivor></merge>\n"
                    for a, b in pairs) + "</user-merges>\n", encoding="utf-8")
        aged(self.merges)

    def run(self, *options: str, ok: bool = True) -> dict:
        result = self.iotask("run", "merge", "--json", *options, ok=ok).json()
        return result["tasks"][0] if "tasks" in result else result[0]

    def ids(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {forma.userid_relative(u): int(i) for u, i in
                    conn.execute(sa.select(self.user.c.userid, self.user.c.idst))}

    def enrollments(self) -> dict[tuple[str, str], tuple[int, str, int | None]]:
        """(userid, code): (status, date_complete, score) of every enrollment."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(self.user.c.userid, self.course.c.code,
                                          self.cu.c.status, self.cu.c.date_complete,
                                          self.cu.c.score_given)
                                .select_from(self.cu.join(self.user,
                                                          self.user.c.idst == self.cu.c.idUser)
                                             .join(self.course, self.course.c.idCourse
                                                   == self.cu.c.idCourse)))
            return {(forma.userid_relative(u), c): (int(s), str(d or "")[:16], g)
                    for u, c, s, d, g in rows}

    def groups(self, userid: str) -> set[str]:
        g, m = self.group, self.members
        with self.engine.connect() as conn:
            return {row[0] for row in conn.execute(
                sa.select(g.c.groupid).select_from(m.join(g, g.c.idst == m.c.idst))
                .where(m.c.idstMember == self.ids()[userid]))}

    def valid(self, userid: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(self.user.c.valid).where(
                self.user.c.userid == forma.userid_absolute(userid))).scalar_one())

    def join_groups(self, userid: str, *names: str) -> None:
        with self.engine.begin() as conn:
            site = forma.Site(conn)
            ids = site.ensure_groups(list(names))
            conn.execute(sa.insert(self.members), [
                {"idst": ids[name], "idstMember": self.ids()[userid], "filter": ""}
                for name in names])

    def snapshot(self) -> dict[str, list]:
        with self.engine.connect() as conn:
            return {name: sorted(map(tuple, conn.execute(sa.select(table))), key=repr)
                    for name, table in (("cu", self.cu), ("members", self.members),
                                        ("users", self.user), ("log", self.log))}


@pytest.fixture
def site(iotask, forma_url, tmp_path) -> Site:
    return Site(iotask, forma_url, tmp_path)


def pair_view(enrolled: dict, *userids: str) -> tuple[set[str], set[str]]:
    """The courses any of ``userids`` is enrolled in, and those any of them completed."""
    mine = {key: value for key, value in enrolled.items() if key[0] in userids}
    return ({code for _, code in mine}, {code for (_, code), v in mine.items()
                                         if v[0] == COMPLETED})


@TWO
def test_merging_the_sample_loses_no_enrollment_and_no_completion(site):
    site.join_groups("jdoe2", "/sales", "/support")
    site.join_groups("jdoe", "/support")
    site.join_groups("jdoe2", "/framework/level/admin")
    before = site.enrollments()
    jdoe2_groups = site.groups("jdoe2")
    assert pair_view(before, "jdoe", "jdoe2") == ({"SAF-101", "GDPR-2026"}, {"SAF-101"})
    assert before[("mrossi", "FORK-CL")][0] == 0  # subscribed; mrossi.old completed it

    site.write()
    result = site.run()

    assert result["status"] == "success", result
    assert result["counts"]["updated"] == 2
    after = site.enrollments()
    # none lost: each survivor holds every course of the pair, and every completion
    assert pair_view(after, "jdoe") == pair_view(before, "jdoe", "jdoe2")
    assert pair_view(after, "mrossi") == pair_view(before, "mrossi", "mrossi.old")
    assert not [key for key in after if key[0] in ("jdoe2", "mrossi.old")]
    assert len(after) == len(before) - 2  # the two enrollments both accounts had, merged
    # the better completion: jdoe's own SAF-101 (later), mrossi.old's FORK-CL (completed)
    assert after[("jdoe", "SAF-101")] == before[("jdoe", "SAF-101")]
    assert after[("jdoe", "GDPR-2026")] == before[("jdoe2", "GDPR-2026")]
    assert after[("mrossi", "FORK-CL")] == before[("mrossi.old", "FORK-CL")]
    with site.engine.connect() as conn:
        logged = conn.execute(sa.select(site.log.c.status_user).where(
            site.log.c.idUser == site.ids()["mrossi"])).scalars().all()
    assert COMPLETED in logged
    # memberships: moved (never twice), the admin level and owner groups stay
    groups = site.groups("jdoe")
    assert {"/sales", "/support"} <= groups
    assert "/framework/level/admin" not in groups
    gdpr = [g for g in jdoe2_groups if g.startswith("/lms/course/")
            and g.endswith("/subscribed/3")]
    assert set(gdpr) <= groups
    left = site.groups("jdoe2")
    assert "/framework/level/admin" in left and "/sales" not in left
    assert all(g.startswith(("/framework/level/", "/iotask/")) for g in left), left
    # suspended, not deleted
    assert site.valid("jdoe2") == 0 and site.valid("mrossi.old") == 0
    assert site.valid("jdoe") == 1
    notes = result["notes"]
    assert "jdoe2 → jdoe: 1 enrollment moved, 1 kept on the survivor" in notes[0]
    assert "mrossi.old → mrossi: 0 enrollments moved, 1 kept on the survivor (1 with the " \
           "duplicate's better completion)" in notes[1]
    assert notes[0].endswith("jdoe2 suspended")

    # merged again: nothing left to move, nothing changes
    snapshot = site.snapshot()
    again = site.run()
    assert again["status"] == "success"
    assert "0 enrollments moved, 0 groups" in again["notes"][0]
    assert site.snapshot() == snapshot


def test_bad_pairs_are_row_errors_and_the_good_ones_merge(site):
    site.write([("nobody", "jdoe"), ("jdoe", "jdoe"), ("lmüller", "ghost"),
                ("aobrien", "jdoe2"), ("jdoe2", "jdoe"),
                ("mrossi.old", "mrossi"), ("mrossi.old", "lmüller")])
    result = site.run(ok=False)
    errors = {error["row"]: error for error in result["row_errors"]}
    assert set(errors) == {3, 4, 5, 6, 8, 9}  # the records' lines
    assert errors[3]["column"] == "userid" and "nobody is not a user" in errors[3]["message"]
    assert errors[3]["key"] == "userid=nobody, survivor=jdoe"
    assert "merged into itself" in errors[4]["message"]
    assert errors[5]["column"] == "survivor" and "ghost is not a user" in errors[5]["message"]
    assert "itself merged away" in errors[6]["message"]  # a chain: aobrien → jdoe2 → jdoe
    assert "several pairs" in errors[8]["message"] and "several pairs" in errors[9]["message"]
    assert result["counts"]["updated"] == 1  # jdoe2 → jdoe (line 7)
    assert site.valid("jdoe2") == 0 and site.valid("mrossi.old") == 1

    site.write([("mrossi.old", "aobrien")])  # aobrien is suspended in the sample
    (error,) = site.run(ok=False)["row_errors"]
    assert error["column"] == "survivor" and "is suspended" in error["message"]
    assert site.valid("mrossi.old") == 1


@TWO
def test_two_duplicates_of_one_survivor_may_share_a_course(site):
    site.join_groups("jdoe2", "/sales")
    site.join_groups("lmüller", "/sales")
    before = site.enrollments()
    site.write([("jdoe2", "jdoe"), ("lmüller", "jdoe")])  # both enrolled in GDPR-2026
    result = site.run()
    assert result["status"] == "success" and not result["row_errors"], result
    after = site.enrollments()
    assert pair_view(after, "jdoe") == pair_view(before, "jdoe", "jdoe2", "lmüller")
    assert after[("jdoe", "GDPR-2026")] == before[("jdoe2", "GDPR-2026")]  # in progress wins
    assert "lmüller → jdoe: 0 enrollments moved, 1 kept on the survivor" in result["notes"][1]
    assert "/sales" in site.groups("jdoe") and "/sales" not in site.groups("lmüller")


@TWO
def test_a_better_status_without_a_completion_date_is_taken(site):
    """In progress (no date_complete: a zero date on forma 3.x) beats subscribed."""
    site.write([("jdoe2", "lmüller")])  # jdoe2 in progress in GDPR-2026, lmüller subscribed
    result = site.run()
    assert result["status"] == "success", result
    status, complete, _ = site.enrollments()[("lmüller", "GDPR-2026")]
    assert status == 1 and complete in ("", "None", "0000-00-00 00:0")


def test_a_dry_run_writes_nothing(site):
    site.write()
    before = site.snapshot()
    dry = site.run("--dry-run")
    assert dry["changes"]["update"] == 2
    assert dry["samples"]["update"] == ["userid=jdoe2 → jdoe", "userid=mrossi.old → mrossi"]
    assert site.snapshot() == before


TRIGGERS = {
    "sqlite": ["CREATE TRIGGER no_suspend BEFORE UPDATE OF valid ON core_user "
               "WHEN NEW.userid = '/mrossi.old' BEGIN SELECT RAISE(ABORT, 'refused by a "
               "trigger'); END"],
    "mariadb": ["CREATE TRIGGER no_suspend BEFORE UPDATE ON core_user FOR EACH ROW BEGIN "
                "IF NEW.userid = '/mrossi.old' AND NEW.valid = 0 THEN SIGNAL SQLSTATE '45000' "
                "SET MESSAGE_TEXT = 'refused by a trigger'; END IF; END"],
}


@TWO
def test_a_failure_in_any_pair_rolls_every_pair_back(site, backend):
    with site.engine.begin() as conn:
        for statement in TRIGGERS[backend]:
            conn.exec_driver_sql(statement)
    site.write()  # jdoe2 → jdoe first, then mrossi.old → mrossi, whose suspension fails
    before = site.snapshot()
    result = site.run(ok=False)
    assert result["status"] == "failed"
    assert "suspending the duplicate failed" in result["error"]
    assert "refused by a trigger" in result["error"]
    assert site.snapshot() == before
    assert site.valid("jdoe2") == 1


def test_a_merge_task_is_never_a_sync(site):
    assert_user_error(site.iotask("task", "add", "merge-sync", "--source", "merges-xml",
                                  "--destination", "lms-merges", "--import-type", "sync",
                                  ok=False), "import type insert, not sync")
