"""forma-users through `iotask run`, on SQLite, MariaDB (forma's own 3.3 DDL) and PostgreSQL:
new users with their root, level, unit and owner memberships; moves between units; empty cells;
valid, language and custom fields; row errors; dry runs; sync's suspend and delete and the
guards; adopting; reading back; and a killed run leaving every forma table as it was."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from conftest import aged, assert_user_error, write_csv
from iotask.connectors import forma
from iotask.connectors.context import MemoryContext
from iotask.connectors.forma import FormaError
from iotask.connectors.forma_users import FormaUsersConnector

SOURCE = "hr-users"
OWNER_GROUP = f"/iotask/users/{SOURCE}"
HEADER = ["userid", "firstname", "lastname", "email", "language", "tree_code", "valid"]
SCRIPT = Path(sys.executable).parent / "iotask"


class Lms:
    """A forma site (forma_url) with org units made here, a CSV source and task "users"."""

    def __init__(self, iotask, url: str, folder: Path, prefix: str = "",
                 **csv_settings: str) -> None:
        self.iotask, self.url, self.folder, self.prefix = iotask, url, folder, prefix
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.file = folder / "users.csv"
        settings = {"url": str(self.file), **csv_settings}
        iotask("connection", "add", SOURCE, "--type", "csv",
               *[part for key, value in settings.items() for part in ("--set", f"{key}={value}")])
        iotask("connection", "add", "forma", "--type", "forma-users", "--set",
               f"database={url}", *(["--set", f"prefix={prefix}"] if prefix else []))

    def task(self, *options: str) -> None:
        self.iotask("task", "add", "users", "--source", SOURCE, "--destination", "forma",
                    *options)

    def run(self, *options: str, ok: bool = True):
        return self.iotask("run", "users", "--json", *options, ok=ok)

    def write(self, rows: list[list[str]], header: list[str] = HEADER) -> None:
        write_csv(self.file, header, rows)

    # --- the site, as a DBA would look at it --------------------------------------------

    def add_unit(self, code: str) -> int:
        """An org unit under the root with its /oc_N and /ocd_N groups (as forma makes them);
        its idOrg."""
        with self.engine.begin() as conn:
            site = forma.Site(conn, self.prefix)
            tree = site.table("core_org_chart_tree")
            count = conn.execute(sa.select(sa.func.count()).select_from(tree)).scalar_one()
            oc, ocd = site.allocate(2)
            id_org = conn.execute(sa.insert(tree).values(
                idParent=0, path=f"/root/{count + 1:08d}", lev=1, iLeft=2 * count + 2,
                iRight=2 * count + 3, code=code, idst_oc=oc, idst_ocd=ocd)).inserted_primary_key[0]
            conn.execute(sa.insert(site.table("core_group")), [
                {"idst": oc, "groupid": f"/oc_{id_org}", "description": "", "hidden": "true",
                 "type": "free", "show_on_platform": ""},
                {"idst": ocd, "groupid": f"/ocd_{id_org}", "description": "", "hidden": "true",
                 "type": "free", "show_on_platform": ""}])
            members = site.table("core_group_members")
            root_ocd = site.seed_group("/ocd_0")
            conn.execute(sa.insert(members), [{"idst": ocd, "idstMember": oc, "filter": ""},
                                              {"idst": root_ocd, "idstMember": ocd,
                                               "filter": ""}])
            conn.execute(sa.insert(site.table("core_org_chart")).values(
                id_dir=id_org, lang_code="english", translation=f"Unit {code}"))
        return int(id_org)

    def add_field(self, name: str, id_common: int, lang: str = "english") -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(forma.Site(conn, self.prefix).table("core_field")).values(
                id_common=id_common, type_field="textfield", lang_code=lang, translation=name,
                sequence=id_common))

    def table(self, name: str) -> sa.Table:
        return sa.Table(self.prefix + name, sa.MetaData(), autoload_with=self.engine)

    def users(self) -> dict[str, dict]:
        user = self.table("core_user")
        with self.engine.connect() as conn:
            return {row.userid: row._asdict() for row in conn.execute(sa.select(user))}

    def groups_of(self, userid: str) -> set[str]:
        user, group = self.table("core_user"), self.table("core_group")
        members = self.table("core_group_members")
        with self.engine.connect() as conn:
            return set(conn.execute(
                sa.select(group.c.groupid)
                .select_from(members.join(group, group.c.idst == members.c.idst)
                             .join(user, user.c.idst == members.c.idstMember))
                .where(user.c.userid == userid)).scalars())

    def language_of(self, userid: str) -> str | None:
        user, setting = self.table("core_user"), self.table("core_setting_user")
        with self.engine.connect() as conn:
            return conn.execute(sa.select(setting.c.value).select_from(
                setting.join(user, user.c.idst == setting.c.id_user))
                .where(user.c.userid == userid, setting.c.path_name == "ui.language")
            ).scalar_one_or_none()

    def field_of(self, userid: str, id_common: int) -> str | None:
        user, entry = self.table("core_user"), self.table("core_field_userentry")
        with self.engine.connect() as conn:
            return conn.execute(sa.select(entry.c.user_entry).select_from(
                entry.join(user, user.c.idst == entry.c.id_user))
                .where(user.c.userid == userid, entry.c.id_common == id_common)
            ).scalar_one_or_none()

    def snapshot(self) -> dict[str, list[tuple]]:
        """Every forma table, every column, in a stable order."""
        names = [table.name for table in forma.declared(self.prefix).sorted_tables]
        found = {}
        with self.engine.connect() as conn:
            for name in names:
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                found[name] = sorted((tuple(row) for row in conn.execute(sa.select(table))),
                                     key=repr)
        return found


@pytest.fixture
def lms(iotask, forma_url, tmp_path) -> Lms:
    site = Lms(iotask, forma_url, tmp_path)
    yield site
    site.engine.dispose()


def counts(result) -> dict[str, int]:
    return result.json()["tasks"][0]["counts"]


def problems(result) -> list[dict]:
    return result.json()["tasks"][0]["row_errors"]


def people(count: int, start: int = 0, tree: str = "", **changed: str) -> list[list[str]]:
    return [[f"u{n:05d}", changed.get(f"u{n:05d}", f"First{n}"), f"Last{n}",
             f"u{n:05d}@example.com", "", tree, ""] for n in range(start, start + count)]


ROOTS = {"/oc_0", "/ocd_0", "/framework/level/user", OWNER_GROUP}


def test_new_users_get_their_units_the_root_groups_and_fresh_ids(lms, backend):
    sales, it = lms.add_unit("SALES"), lms.add_unit("IT")
    lms.write([["jdoe", "John", "Doe", "jdoe@example.com", "italian", "SALES", ""],
               ["asmith", "Ann", "Smith", "ann@example.com", "", "SALES#IT", "1"],
               ["bnone", "Bo", "None", "", "", "", ""]])
    lms.task()
    assert counts(lms.run()) == {"read": 3, "inserted": 3, "updated": 0, "unchanged": 0,
                                 "removed": 0, "failed": 0}
    users = lms.users()
    assert set(users) >= {"/jdoe", "/asmith", "/bnone"}
    jdoe = users["/jdoe"]
    assert (jdoe["firstname"], jdoe["lastname"], jdoe["email"], jdoe["valid"]) == \
        ("John", "Doe", "jdoe@example.com", 1)
    assert jdoe["pass"] == "" and jdoe["signature"] == ""
    registered = jdoe["register_date"]  # forma keeps local time: the run's zone, Europe/Rome
    rome = datetime.now(ZoneInfo("Europe/Rome")).replace(tzinfo=None)
    utc = datetime.now(UTC).replace(tzinfo=None)
    assert abs(registered - rome) < timedelta(minutes=20) < abs(registered - utc)
    assert lms.groups_of("/jdoe") == ROOTS | {f"/oc_{sales}", f"/ocd_{sales}"}
    assert lms.groups_of("/asmith") == ROOTS | {f"/oc_{sales}", f"/ocd_{sales}", f"/oc_{it}",
                                                f"/ocd_{it}"}
    assert lms.groups_of("/bnone") == ROOTS
    assert lms.language_of("/jdoe") == "italian" and lms.language_of("/asmith") is None

    group = lms.table("core_group")
    with lms.engine.connect() as conn:
        group_ids = set(conn.execute(sa.select(group.c.idst)).scalars())
        next_st = conn.execute(sa.select(sa.func.max(lms.table("core_st").c.idst))).scalar_one()
    new_ids = [users[u]["idst"] for u in ("/jdoe", "/asmith", "/bnone")]
    assert not set(new_ids) & group_ids and len(set(new_ids)) == 3
    assert max(new_ids) <= next_st
    if backend == "mariadb":  # forma's own seed: core_st at 11839, /admin is 11836
        assert min(new_ids) > 11839
    assert sorted(new_ids) == new_ids  # paired with the userids in file order


def test_a_second_run_moving_one_user_changes_only_its_memberships(lms):
    sales, it = lms.add_unit("SALES"), lms.add_unit("IT")
    rows = people(20, tree="SALES")
    lms.write(rows)
    lms.task()
    lms.run()
    before = {f"/u{n:05d}": lms.groups_of(f"/u{n:05d}") for n in range(20)}
    assert before["/u00007"] == ROOTS | {f"/oc_{sales}", f"/ocd_{sales}"}
    rows[7][5] = "IT"
    lms.write(rows)
    assert counts(lms.run()) == {"read": 20, "inserted": 0, "updated": 1, "unchanged": 19,
                                 "removed": 0, "failed": 0}
    for n in range(20):
        userid = f"/u{n:05d}"
        if n == 7:
            assert lms.groups_of(userid) == ROOTS | {f"/oc_{it}", f"/ocd_{it}"}
        else:
            assert lms.groups_of(userid) == before[userid]
    assert counts(lms.run())["unchanged"] == 20  # the same file again changes nothing


def test_an_empty_cell_never_blanks_and_valid_language_fields_are_written(lms):
    sales = lms.add_unit("SALES")
    lms.add_field("Department", 41)
    lms.add_field("Reparto", 41, lang="italian")
    lms.add_field("Badge", 42)
    header = [*HEADER, "field:Department", "field:Badge"]
    lms.write([["jdoe", "John", "Doe", "jdoe@example.com", "english", "SALES", "", "Sales",
                "B-1"]], header)
    lms.task()
    lms.run()
    lms.write([["jdoe", "", "", "", "", "", "0", "", "B-2"]], header)
    assert counts(lms.run())["updated"] == 1
    jdoe = lms.users()["/jdoe"]
    assert (jdoe["firstname"], jdoe["lastname"], jdoe["email"], jdoe["valid"]) == \
        ("John", "Doe", "jdoe@example.com", 0)
    assert lms.language_of("/jdoe") == "english"
    assert lms.field_of("/jdoe", 41) == "Sales" and lms.field_of("/jdoe", 42) == "B-2"
    assert lms.groups_of("/jdoe") == ROOTS | {f"/oc_{sales}", f"/ocd_{sales}"}  # kept

    # the field by its other language's name; valid as a word; a language changed
    lms.write([["jdoe", "Johnny", "", "", "italian", "", "yes", "Vendite", ""]],
              [*HEADER, "field:Reparto", "field:Badge"])
    assert counts(lms.run())["updated"] == 1
    jdoe = lms.users()["/jdoe"]
    assert (jdoe["firstname"], jdoe["valid"]) == ("Johnny", 1)
    assert lms.language_of("/jdoe") == "italian" and lms.field_of("/jdoe", 41) == "Vendite"


def test_an_existing_password_is_never_touched_and_a_pass_column_stops_the_run(lms):
    lms.write([["jdoe", "John", "Doe", "", "", "", ""]])
    lms.task()
    lms.run()
    user = lms.table("core_user")
    with lms.engine.begin() as conn:
        conn.execute(sa.update(user).where(user.c.userid == "/jdoe")
                     .values({user.c["pass"]: "5f4dcc3b"}))
    lms.write([["jdoe", "Jon", "Doe", "", "", "", ""]])
    lms.run()
    assert lms.users()["/jdoe"]["pass"] == "5f4dcc3b"
    before = lms.snapshot()

    lms.write([["jdoe", "Jane", "secret1"]], ["userid", "firstname", "pass"])
    result = lms.run(ok=False)
    task = result.json()["tasks"][0]
    assert task["status"] == "failed"
    assert "'pass'" in task["error"] and "passwords are never imported" in task["error"]
    assert "secret1" not in result.out
    assert lms.snapshot() == before


def test_an_unknown_column_or_field_stops_the_run_naming_the_known_ones(lms):
    lms.add_field("Department", 41)
    lms.write([["jdoe", "x"]], ["userid", "nickname"])
    assert_user_error(lms.iotask("task", "add", "users", "--source", SOURCE, "--destination",
                                 "forma", ok=False), "'nickname'", "field:Department")
    lms.write([["ann", "Ann"]], ["userid", "firstname"])
    lms.task()
    lms.write([["jdoe", "x"]], ["userid", "nickname"])
    task = lms.run(ok=False).json()["tasks"][0]
    assert task["status"] == "failed" and "'nickname'" in task["error"]
    assert "firstname" in task["error"] and "field:Department" in task["error"]
    lms.write([["jdoe", "x"]], ["userid", "field:Shoe size"])
    task = lms.run(ok=False).json()["tasks"][0]
    assert "field:Shoe size" in task["error"] and "field:Department" in task["error"]
    assert "/jdoe" not in lms.users()


def test_rows_whose_columns_were_unknown_when_planned_are_checked_by_the_connector(lms):
    """A source whose columns show only at run time (no header yet): write() refuses them."""
    lms.add_field("Department", 41)
    before = lms.snapshot()
    destination = FormaUsersConnector({"database": lms.url})
    for row, words in (({"userid": "jdoe", "pass": "s3cret"}, "passwords are never imported"),
                       ({"userid": "jdoe", "field:Shoe": "42"}, "field:Shoe"),
                       ({"userid": "jdoe", "nick": "J"}, "field:Department")):
        with pytest.raises(FormaError, match=words) as raised:
            destination.write([[row]], MemoryContext(owner=SOURCE))
        assert "s3cret" not in str(raised.value)
    assert lms.snapshot() == before


def test_a_rejected_row_of_an_owned_user_is_not_a_removal(lms):
    lms.write(people(10))
    lms.task("--import-type", "sync", "--max-errors", "50%", "--max-remove", "100%")
    lms.run()
    rows = people(10)
    rows[4][3] = "not-an-address"
    lms.write(rows[:8])
    result = lms.run()
    assert counts(result)["failed"] == 1 and counts(result)["removed"] == 2
    users = lms.users()
    assert users["/u00004"]["valid"] == 1 and users["/u00004"]["email"] == "u00004@example.com"
    assert users["/u00008"]["valid"] == 0 and users["/u00009"]["valid"] == 0


def test_a_field_name_two_fields_share_stops_the_run(lms):
    lms.add_field("Code", 41)
    lms.add_field("Code", 42, lang="italian")
    lms.write([["jdoe", "x"]], ["userid", "field:Code"])
    lms.task()
    task = lms.run(ok=False).json()["tasks"][0]
    assert task["status"] == "failed" and "2 different custom fields" in task["error"]
    assert "/jdoe" not in lms.users()


def test_bad_rows_are_row_errors_with_their_line_and_the_rest_applies(lms, backend):
    lms.add_unit("SALES")
    lms.add_unit("TWIN")
    lms.add_unit("TWIN")
    lms.add_field("Notes", 43)
    rows = people(30, tree="SALES")
    bad = {
        3: (5, "NOWHERE"),  # an unknown unit
        5: (5, "SALES#TWIN"),  # a code two units share
        7: (6, "maybe"),  # valid
        9: (3, "x" * 300 + "@example.com"),  # too long
        11: (3, "not-an-address"),
        13: (1, "Jo\x07hn"),  # a control character
        15: (0, ""),  # no userid
        17: (0, "u00016"),  # a duplicate of line 18's user
    }
    for index, (column, value) in bad.items():
        rows[index][column] = value
    rows[20][1] = "Zoë 😀" if backend == "mariadb" else "Zoë"  # 3-byte utf8 holds no emoji
    rows = [[*row, "line\nbreak ok" if n == 29 else ""] for n, row in enumerate(rows)]
    lms.write(rows, [*HEADER, "field:Notes"])
    lms.task("--max-errors", "50%")
    result = lms.run()
    found = {error["row"]: error for error in problems(result)}
    expected_bad = 9 if backend == "mariadb" else 8
    assert counts(result)["failed"] == expected_bad
    assert counts(result)["inserted"] == 30 - expected_bad
    assert "NOWHERE" in found[5]["message"] and found[5]["column"] == "tree_code"
    assert "TWIN" in found[7]["message"] and "2 org units" in found[7]["message"]
    assert found[9]["column"] == "valid" and "maybe" in found[9]["message"]
    assert found[11]["column"] == "email" and "characters long" in found[11]["message"]
    assert found[13]["column"] == "email"
    assert found[15]["column"] == "firstname" and "control character" in found[15]["message"]
    assert found[17]["column"] == "userid"
    assert "duplicate" in found[19]["message"] and "line 18" in found[19]["message"]
    if backend == "mariadb":
        assert found[22]["column"] == "firstname" and "3-byte" in found[22]["message"]
    assert found[5]["key"] == "userid=u00003"
    users = lms.users()
    assert "/u00003" not in users and "/u00004" in users and users["/u00016"]["firstname"] \
        == "First16"
    assert lms.field_of("/u00029", 43) == "line\nbreak ok"


def test_hostile_language_and_custom_field_values_are_row_errors(lms):
    lms.add_field("Notes", 43)
    header = [*HEADER, "field:Notes"]
    rows = [[*row, "ok"] for row in people(6)]
    rows[1][4] = "x" * 300  # line 3: a language no site has
    rows[2][4] = "it\x01"  # line 4: a control character
    rows[3][7] = "bell\x07"  # line 5: a control character in a custom field
    rows[4][7] = "y" * 70_000  # line 6: more than a TEXT column holds
    lms.write(rows, header)
    lms.task("--max-errors", "100%")
    result = lms.run()
    found = {error["row"]: error for error in problems(result)}
    assert {line: error["column"] for line, error in found.items()} == {
        3: "language", 4: "language", 5: "field:Notes", 6: "field:Notes"}
    assert counts(result)["inserted"] == 2
    assert lms.field_of("/u00000", 43) == "ok" and lms.language_of("/u00001") is None
    assert "/u00001" not in lms.users()


def test_userids_match_as_the_site_compares_them(lms, backend):
    lms.write([["jdoe", "John", "", "", "", "", ""]])
    lms.task("--max-errors", "50%")
    lms.run()
    lms.write([["JDoe", "Johnny", "", "", "", "", ""], ["ann", "Ann", "", "", "", "", ""],
               ["ANN", "Anne", "", "", "", "", ""]])
    result = lms.run()
    users = lms.users()
    if backend == "mariadb":  # forma's utf8_general_ci: a login is one whatever its case
        assert counts(result) == {"read": 3, "inserted": 1, "updated": 1, "unchanged": 0,
                                  "removed": 0, "failed": 1}
        assert users["/jdoe"]["firstname"] == "Johnny" and "/JDoe" not in users
        assert "duplicate" in problems(result)[0]["message"] and "/ANN" not in users
    else:
        assert counts(result)["inserted"] == 3
        assert users["/jdoe"]["firstname"] == "John" and users["/JDoe"]["firstname"] == "Johnny"


def test_a_dry_run_counts_and_samples_and_writes_nothing(lms):
    lms.add_unit("SALES")
    lms.write(people(15, tree="SALES"))
    lms.task("--import-type", "sync", "--max-remove", "100%")
    lms.run()
    before = lms.snapshot()
    lms.write(people(12, start=3, u00005="Renamed") + people(2, start=100))
    data = lms.iotask("run", "users", "--dry-run", "--json").json()[0]
    changes = data["changes"]
    assert (changes["insert"], changes["update"], changes["unchanged"], changes["remove"]) \
        == (2, 1, 11, 3)
    assert data["samples"]["insert"] == ["userid=u00100", "userid=u00101"]
    assert data["samples"]["update"] == ["userid=u00005"]
    assert data["samples"]["remove"] == ["userid=u00000", "userid=u00001", "userid=u00002"]
    assert lms.snapshot() == before


def test_sync_suspends_by_default_and_a_truncated_file_is_held(lms):
    lms.add_unit("SALES")
    lms.write(people(100, tree="SALES"))
    lms.task("--import-type", "sync")
    assert counts(lms.run())["inserted"] == 100
    before = lms.snapshot()

    lms.write(people(10))
    result = lms.run(ok=False)
    task = result.json()["tasks"][0]
    assert result.code == 1 and task["status"] == "held"
    assert "90 of the 100 records" in task["error"] and "--accept-changes" in task["error"]
    assert lms.snapshot() == before

    accepted = lms.run("--accept-changes")
    assert counts(accepted)["removed"] == 90
    users = lms.users()
    assert all(users[f"/u{n:05d}"]["valid"] == 0 for n in range(10, 100))
    assert all(users[f"/u{n:05d}"]["valid"] == 1 for n in range(10))
    assert users["/u00050"]["firstname"] == "First50"  # suspended, not deleted
    assert counts(lms.run())["removed"] == 0  # already suspended: not removed again

    lms.write(people(12))  # u00010 and u00011 come back, their valid cells empty
    back = counts(lms.run())
    assert (back["updated"], back["removed"], back["unchanged"]) == (2, 0, 10)
    users = lms.users()
    assert users["/u00010"]["valid"] == 1 and users["/u00011"]["valid"] == 1
    assert users["/u00012"]["valid"] == 0


def test_sync_delete_removes_the_user_and_its_rows_but_not_others(lms, forma_url, backend):
    lms.iotask("connection", "edit", "forma", "--set", "remove=delete")
    lms.add_unit("SALES")
    lms.add_field("Badge", 42)
    header = [*HEADER, "field:Badge"]
    lms.write([[*row, "B"] for row in people(5, tree="SALES")], header)
    lms.task("--import-type", "sync", "--max-remove", "100%")
    lms.run()
    gone = lms.users()["/u00004"]["idst"]
    lms.write([[*row, "B"] for row in people(4, tree="SALES")], header)
    assert counts(lms.run())["removed"] == 1
    assert "/u00004" not in lms.users() and "/u00003" in lms.users()
    with lms.engine.connect() as conn:
        for name, column in (("core_group_members", "idstMember"),
                             ("core_setting_user", "id_user"),
                             ("core_field_userentry", "id_user")):
            table = lms.table(name)
            assert conn.execute(sa.select(sa.func.count()).select_from(table)
                                .where(table.c[column] == gone)).scalar_one() == 0
    if backend == "mariadb":  # forma's /admin is no source's: never removed
        assert "/admin" in lms.users()


def test_users_made_in_the_lms_are_not_removed_until_adopted(lms, backend):
    lms.write(people(3))
    lms.task("--import-type", "sync", "--max-remove", "100%")
    lms.run()
    user = lms.table("core_user")
    with lms.engine.begin() as conn:
        ids = forma.Site(conn).allocate(2)
        conn.execute(sa.insert(user), [
            {"idst": idst, "userid": f"/{name}", "firstname": "Hand", "lastname": "",
             "pass": "", "email": "", "signature": ""}
            for idst, name in zip(ids, ("handmade", "other"), strict=True)])
    lms.write(people(3) + [["handmade", "Made", "", "", "", "", ""]])
    assert counts(lms.run()) == {"read": 4, "inserted": 0, "updated": 1, "unchanged": 3,
                                 "removed": 0, "failed": 0}
    assert OWNER_GROUP not in lms.groups_of("/handmade")  # updated, not taken over

    adopted = lms.iotask("task", "adopt", "users", "--json").json()
    assert adopted["adopted"] == 1
    assert OWNER_GROUP in lms.groups_of("/handmade")
    assert OWNER_GROUP not in lms.groups_of("/other")
    dry = lms.iotask("task", "adopt", "users", "--all-unowned", "--dry-run", "--json").json()
    assert dry["adopted"] == 1  # /other; forma's /admin (on MariaDB) is an administrator
    assert OWNER_GROUP not in lms.groups_of("/other")
    assert lms.iotask("task", "adopt", "users", "--all-unowned", "--json").json()[
        "adopted"] == 1
    assert OWNER_GROUP in lms.groups_of("/other")
    if backend == "mariadb":
        assert OWNER_GROUP not in lms.groups_of("/admin")

    lms.write(people(3))
    assert counts(lms.run())["removed"] == 2
    users = lms.users()
    assert users["/handmade"]["valid"] == 0 and users["/other"]["valid"] == 0
    assert users["/u00000"]["valid"] == 1


def test_read_writes_back_the_same_file(lms, tmp_path):
    lms.add_unit("SALES")
    lms.add_unit("IT")
    lms.add_field("Badge", 42)
    header = [*HEADER, "field:Badge"]
    rows = [["asmith", "Ann", "Smith", "ann@example.com", "italian", "IT#SALES", "1", "B-7"],
            ["jdoe", "John", "Doe", "jdoe@example.com", "", "SALES", "0", ""],
            ["zoe", "Zoë, \"Q\"", "O'Neil", "", "", "", "1", "multi\nline"]]
    lms.write(rows, header)
    lms.task()
    lms.run()
    user = lms.table("core_user")
    with lms.engine.begin() as conn:  # forma's anonymous user is never read
        (idst,) = forma.Site(conn).allocate(1)
        conn.execute(sa.insert(user).values(
            {"idst": idst, "userid": "/Anonymous", "firstname": "", "lastname": "",
             "pass": "", "email": "", "signature": ""}))
    out = tmp_path / "export.csv"
    lms.iotask("connection", "add", "export", "--type", "csv", "--set", f"url={out}")
    lms.iotask("task", "add", "export", "--source", "forma", "--destination", "export")
    lms.iotask("run", "export")
    with open(out, encoding="utf-8", newline="") as exported:
        got = list(csv.reader(exported))
    assert got[0] == header
    got_rows = [row for row in got[1:] if row[0] != "admin"]
    assert got_rows == rows


def test_a_vendor_file_with_bom_crlf_and_semicolons(iotask, forma_url, tmp_path):
    lms = Lms(iotask, forma_url, tmp_path, delimiter=";", encoding="utf-8-sig")
    sales = lms.add_unit("SALES")
    lms.file.write_bytes("\ufeffuserid;firstname;lastname;tree_code\r\n"
                         "jdoe;Jöhn;Doe;SALES\r\nann;Ann;;\r\n".encode())
    aged(lms.file)
    lms.task()
    assert counts(lms.run())["inserted"] == 2
    assert lms.users()["/jdoe"]["firstname"] == "Jöhn"
    assert lms.groups_of("/jdoe") == ROOTS | {f"/oc_{sales}", f"/ocd_{sales}"}
    assert lms.groups_of("/ann") == ROOTS and lms.users()["/ann"]["lastname"] == ""
    lms.engine.dispose()


def test_a_site_whose_tables_have_a_prefix(iotask, migrated_url, tmp_path):
    iotask("lms", "init", "--prefix", "site2_")
    lms = Lms(iotask, migrated_url, tmp_path, prefix="site2_")
    sales = lms.add_unit("SALES")
    lms.write([["jdoe", "John", "Doe", "", "english", "SALES", ""]])
    lms.task("--import-type", "sync")
    assert counts(lms.run())["inserted"] == 1
    assert lms.groups_of("/jdoe") == ROOTS | {f"/oc_{sales}", f"/ocd_{sales}"}
    assert lms.language_of("/jdoe") == "english"
    assert "core_user" not in sa.inspect(lms.engine).get_table_names()
    lms.engine.dispose()


def test_users_placed_in_units_the_org_chart_connector_made(lms, tmp_path):
    chart = tmp_path / "orgchart.csv"
    chart.write_text("code,name,parent_code\nemea,EMEA,\nemea-it,Italy,emea\n",
                     encoding="utf-8")
    aged(chart)
    lms.iotask("connection", "add", "hr-chart", "--type", "csv", "--set", f"url={chart}")
    lms.iotask("connection", "add", "forma-chart", "--type", "forma-orgchart", "--set",
               f"database={lms.url}")
    lms.iotask("task", "add", "chart", "--source", "hr-chart", "--destination", "forma-chart")
    lms.iotask("run", "chart")
    tree = lms.table("core_org_chart_tree")
    with lms.engine.connect() as conn:
        ids = dict(conn.execute(sa.select(tree.c.code, tree.c.idOrg)).all())
    lms.write([["mrossi", "Mario", "Rossi", "", "italian", "emea-it", ""],
               ["anna", "Anna", "Bell", "", "", "emea#emea-it", ""]])
    lms.task()
    assert counts(lms.run())["inserted"] == 2
    italy, emea = ids["emea-it"], ids["emea"]
    assert lms.groups_of("/mrossi") == ROOTS | {f"/oc_{italy}", f"/ocd_{italy}"}
    assert lms.groups_of("/anna") == ROOTS | {f"/oc_{italy}", f"/ocd_{italy}", f"/oc_{emea}",
                                              f"/ocd_{emea}"}


def test_a_task_with_a_pass_column_in_the_map_is_refused_when_saved(lms):
    lms.write([["jdoe", "s3cret"]], ["userid", "pass"])
    result = lms.iotask("task", "add", "users", "--source", SOURCE, "--destination", "forma",
                        ok=False)
    assert_user_error(result, "pass", "passwords are never imported")


# --- all or nothing -----------------------------------------------------------------------

STAGED = "staged 40000 rows in all"


def big(count: int, units: int) -> list[list[str]]:
    return [[f"k{n:06d}", f"First{n}", f"Last{n}", f"k{n:06d}@example.com", "english",
             f"U{n % units}", ""] for n in range(count)]


TRIALS = {"sqlite": 2, "mariadb": 3, "postgresql": 1}


def test_a_killed_run_leaves_every_forma_table_as_it_was(lms, migrated_url, backend):
    """A sync of 60,000 users (58,000 new, 1,500 moved to another unit, 500 suspended) killed
    with SIGKILL once its rows are being staged: every forma table, column by column, is as
    before; then the run done in full does it all."""
    for n in range(5):
        lms.add_unit(f"U{n}")
    rows = big(2000, 5)
    lms.write(rows)
    lms.task("--import-type", "sync", "--max-remove", "100%")
    lms.run()
    before = lms.snapshot()
    moved = [[*row[:5], f"U{(n + 1) % 5}", row[6]] for n, row in enumerate(rows[500:])]
    lms.write(moved + big(60_000, 5)[2000:])
    env = {**os.environ, "IOTASK_LOG_LEVEL": "DEBUG"}
    for trial in range(TRIALS[backend]):
        child = subprocess.Popen([str(SCRIPT), "--db", migrated_url, "run", "users"],
                                 cwd=lms.folder, env=env, stderr=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, text=True)
        seen = []
        try:
            for line in child.stderr:
                seen.append(line)
                if STAGED in line:
                    child.send_signal(signal.SIGKILL)
                    break
            else:
                pytest.fail("the run ended before its rows were staged:\n" + "".join(seen[-5:]))
        finally:
            child.kill()
            child.wait(timeout=60)
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        assert lms.snapshot() == before, f"trial {trial}: a forma table changed"
        lms.iotask("reset", "users", "--force")
    done = counts(lms.run())
    assert done["inserted"] == 58_000 and done["updated"] == 1500 and done["removed"] == 500
