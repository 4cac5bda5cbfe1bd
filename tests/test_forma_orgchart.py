"""forma-orgchart through `iotask run` on SQLite, MariaDB (forma's own 3.x DDL) and PostgreSQL:
a CSV of code, parent_code and names builds forma's org chart (a valid nested set, paths and
levels, the two groups per unit), moves and renames units, rejects cycles and unknown parents
row by row, and a sync removes only the empty leaf units its source owns."""

from __future__ import annotations

import csv
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import aged
from iotask.connectors import forma
from iotask.connectors.context import MemoryContext
from iotask.connectors.forma_orgchart import FormaOrgChartConnector

OWNER = "hr-org"
HEADER = ["code", "parent_code", "name", "name:italian"]
TABLES = ("core_org_chart_tree", "core_org_chart", "core_group", "core_group_members",
          "core_st", "core_user")

# a tree of 9 units, listed children first: every child comes before its parent
TREE = [
    ["dev-be", "dev", "Backend", "Sviluppo backend"],
    ["dev-fe", "dev", "Frontend", ""],
    ["dev", "it", "Development", "Sviluppo"],
    ["ops", "it", "Operations", "Operazioni"],
    ["it", "", "IT", "Informatica"],
    ["sales-n", "sales", "Sales North", "Vendite Nord"],
    ["sales-s", "sales", "Sales South", "Vendite Sud"],
    ["sales", "", "Sales", "Vendite"],
    ["hr", "", "Human Resources", "Risorse umane"],
]


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER,
              delimiter: str = ",", encoding: str = "utf-8", newline: str = "\n") -> Path:
    with open(path, "w", encoding=encoding, newline="") as out:
        writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
        writer.writerow(header)
        writer.writerows(rows)
    return aged(path)


class Org:
    """The forma database, a CSV source OWNER and task "org" into forma-orgchart "lms"."""

    def __init__(self, iotask, url: str, folder: Path, *options: str) -> None:
        self.iotask, self.url, self.folder = iotask, url, folder
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.file = folder / "org.csv"
        iotask("connection", "add", OWNER, "--type", "csv", "--set", f"url={self.file}")
        iotask("connection", "add", "lms", "--type", "forma-orgchart",
               "--set", f"database={url}")
        iotask("task", "add", "org", "--source", OWNER, "--destination", "lms", *options)

    def run(self, *options: str, ok: bool = True) -> dict[str, Any]:
        result = self.iotask("run", "org", "--json", *options, ok=ok)
        return result.json()["tasks"][0]

    def snapshot(self) -> dict[str, list[tuple]]:
        md = sa.MetaData()
        with self.engine.connect() as conn:
            tables = [sa.Table(name, md, autoload_with=conn) for name in TABLES]
            return {t.name: sorted(tuple(map(str, row)) for row in conn.execute(sa.select(t)))
                    for t in tables}

    def rows(self, table: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            t = sa.Table(table, sa.MetaData(), autoload_with=conn)
            return [dict(row._mapping) for row in conn.execute(sa.select(t))]

    def groups(self) -> dict[str, dict[str, Any]]:
        return {row["groupid"]: row for row in self.rows("core_group")}

    def members(self) -> set[tuple[int, int]]:
        return {(row["idst"], row["idstMember"]) for row in self.rows("core_group_members")}

    def names(self) -> dict[tuple[str, str], str]:
        codes = {row["idOrg"]: row["code"] for row in self.rows("core_org_chart_tree")}
        return {(codes[row["id_dir"]], row["lang_code"]): row["translation"]
                for row in self.rows("core_org_chart")}

    def add_user(self, userid: str, unit: str) -> None:
        """A user placed in ``unit`` as forma does: members of its /oc_ and /ocd_ groups."""
        tree = valid_tree(self)
        with self.engine.begin() as conn:
            site = forma.Site(conn)
            [idst] = site.allocate(1)
            conn.execute(sa.insert(site.table("core_user")).values(
                {"idst": idst, "userid": f"/{userid}", "signature": "", "pass": "x"}))
            conn.execute(sa.insert(site.table("core_group_members")).values(
                [{"idst": tree[unit]["idst_oc"], "idstMember": idst, "filter": ""},
                 {"idst": tree[unit]["idst_ocd"], "idstMember": idst, "filter": ""}]))


def by_hand(url: str, rows: list[dict[str, str]]) -> None:
    """Units written without an owner, as an administrator would make them in forma."""
    FormaOrgChartConnector({"database": url}).write([rows], MemoryContext(database_url=url))


@pytest.fixture
def org(iotask, forma_url, tmp_path) -> Org:
    iotask("connector", "register", "iotask.connectors.forma_orgchart")  # until the migration
    return Org(iotask, forma_url, tmp_path, "--max-errors", "50%", "--max-remove", "100%")


def counts(task: dict[str, Any]) -> tuple[int, int, int, int, int]:
    c = task["counts"]
    return c["inserted"], c["updated"], c["unchanged"], c["removed"], c["failed"]


def valid_tree(org: Org) -> dict[str, dict[str, Any]]:
    """Check the whole org chart: a standard nested set over the root's children (1 .. 2n,
    every child strictly inside its parent, siblings apart, sizes right), paths and levels that
    agree with it, and each unit's two groups with their memberships. The units by code."""
    units = {row["idOrg"]: row for row in org.rows("core_org_chart_tree")}
    children: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for unit in units.values():
        assert unit["idParent"] == 0 or unit["idParent"] in units, unit
        children[unit["idParent"]].append(unit)

    def size(unit_id: int) -> int:
        return 1 + sum(size(child["idOrg"]) for child in children[unit_id])

    numbers = sorted(n for u in units.values() for n in (u["iLeft"], u["iRight"]))
    assert numbers == list(range(1, 2 * len(units) + 1))
    for unit in units.values():
        parent = units.get(unit["idParent"])
        assert unit["iLeft"] < unit["iRight"]
        assert unit["iRight"] - unit["iLeft"] + 1 == 2 * size(unit["idOrg"]), unit
        segments = unit["path"].split("/")
        assert segments[:2] == ["", "root"] and len(segments) - 2 == unit["lev"], unit
        assert all(len(part) == 8 and part.isdigit() for part in segments[2:]), unit
        if parent is None:
            assert unit["lev"] == 1
        else:
            assert parent["iLeft"] < unit["iLeft"] and unit["iRight"] < parent["iRight"]
            assert unit["lev"] == parent["lev"] + 1
            assert unit["path"].startswith(parent["path"] + "/")
    for kids in children.values():
        kids.sort(key=lambda u: u["iLeft"])
        for before, after in zip(kids, kids[1:], strict=False):
            assert before["iRight"] < after["iLeft"]  # no overlap among siblings
        assert [int(u["path"].rsplit("/", 1)[1]) for u in kids] == list(
            range(1, len(kids) + 1))  # siblings numbered 1..n in nested-set order
    groups, members = org.groups(), org.members()
    org_ocd = {u["idst_ocd"] for u in units.values()} | {groups["/ocd_0"]["idst"]}
    for unit in units.values():
        oc, ocd = groups[f"/oc_{unit['idOrg']}"], groups[f"/ocd_{unit['idOrg']}"]
        assert (oc["idst"], ocd["idst"]) == (unit["idst_oc"], unit["idst_ocd"])
        assert oc["hidden"] == ocd["hidden"] == "true" and oc["type"] == ocd["type"] == "free"
        parent_ocd = (groups["/ocd_0"]["idst"] if unit["idParent"] == 0
                      else units[unit["idParent"]]["idst_ocd"])
        assert {g for g, m in members if m == ocd["idst"] and g in org_ocd} == {parent_ocd}
        assert (ocd["idst"], oc["idst"]) in members
    by_code = {}
    for unit in units.values():
        parent = units.get(unit["idParent"])
        by_code[unit["code"]] = {**unit, "parent_code": parent["code"] if parent else ""}
    return by_code


def owned_codes(org: Org, owner: str = OWNER) -> set[str]:
    groups, members = org.groups(), org.members()
    owner_group = groups[f"/iotask/orgchart/{owner}"]["idst"]
    return {code for code, unit in valid_tree(org).items()
            if (owner_group, unit["idst_oc"]) in members}


# --- building the tree -----------------------------------------------------------------------


def test_a_children_first_file_builds_a_valid_tree_and_a_second_run_changes_nothing(org):
    write_csv(org.file, TREE)
    task = org.run()
    assert task["status"] == "success", task
    assert counts(task) == (9, 0, 0, 0, 0)
    tree = valid_tree(org)
    assert {code: unit["parent_code"] for code, unit in tree.items()} == {
        row[0]: row[1] for row in TREE}
    assert tree["dev-be"]["lev"] == 3 and tree["it"]["lev"] == 1
    # siblings in file order: it, sales, hr at the top; dev before ops
    assert [tree[c]["path"] for c in ("it", "sales", "hr")] == [
        "/root/00000001", "/root/00000002", "/root/00000003"]
    assert tree["ops"]["path"] == "/root/00000001/00000002"
    assert tree["dev-be"]["path"] == "/root/00000001/00000001/00000001"
    names = org.names()
    assert names[("dev", "english")] == "Development" and names[("dev", "italian")] == "Sviluppo"
    assert ("dev-fe", "italian") not in names  # an empty cell writes no name
    assert owned_codes(org) == {row[0] for row in TREE}

    before = org.snapshot()
    assert counts(org.run("--reimport")) == (0, 0, 9, 0, 0)
    assert org.snapshot() == before


def test_a_moved_unit_keeps_the_tree_valid_and_a_rename_updates_only_the_name(org):
    write_csv(org.file, TREE)
    org.run()
    old = valid_tree(org)
    moved = [row[:] for row in TREE]
    moved[2] = ["dev", "sales", "Development", "Sviluppo"]  # dev (and its children) to sales
    moved[8] = ["hr", "", "People", ""]  # renamed in english; italian cell empty: kept
    moved[3] = ["ops", "infra", "Operations", "Operazioni"]  # below a unit new in this run
    moved.insert(0, ["infra", "it", "Infrastructure", ""])
    write_csv(org.file, moved)
    task = org.run()
    assert counts(task) == (1, 3, 6, 0, 0), task
    tree = valid_tree(org)
    assert tree["dev"]["parent_code"] == "sales" and tree["dev"]["lev"] == 2
    assert tree["dev-be"]["lev"] == 3 and tree["dev-be"]["path"].startswith(
        tree["dev"]["path"] + "/")
    assert (old["it"]["idst_ocd"], old["dev"]["idst_ocd"]) not in org.members()
    assert (tree["sales"]["idst_ocd"], tree["dev"]["idst_ocd"]) in org.members()
    assert tree["ops"]["parent_code"] == "infra" and tree["ops"]["lev"] == 3
    assert (old["it"]["idst_ocd"], old["ops"]["idst_ocd"]) not in org.members()
    assert {code: unit["idOrg"] for code, unit in tree.items() if code != "infra"} == {
        code: unit["idOrg"] for code, unit in old.items()}  # moved, not recreated
    names = org.names()
    assert names[("hr", "english")] == "People" and names[("hr", "italian")] == "Risorse umane"

    back = [row[:] for row in moved]
    back[2] = ["dev", "", "Development", "Sviluppo"]  # to the top: an empty parent_code
    write_csv(org.file, back)
    assert counts(org.run())[:2] == (0, 1)
    tree = valid_tree(org)
    assert tree["dev"]["idParent"] == 0 and tree["dev"]["lev"] == 1
    assert tree["dev"]["path"] == "/root/00000004"  # moved in: after the units already there

    write_csv(org.file, [["dev", "Sviluppo software"]], header=["code", "name:italian"])
    assert counts(org.run())[:3] == (0, 1, 0)  # no parent_code column: every unit stays put
    assert valid_tree(org)["dev"]["parent_code"] == ""
    assert org.names()[("dev", "italian")] == "Sviluppo software"
    assert org.names()[("dev", "english")] == "Development"


def test_cycles_and_unknown_parents_are_row_errors_and_the_rest_is_applied(org):
    write_csv(org.file, TREE)
    org.run()
    rows = TREE + [
        ["loop-a", "loop-b", "A", ""], ["loop-b", "loop-a", "B", ""],  # a cycle of new units
        ["self", "self", "Myself", ""],  # its own parent
        ["orphan", "nowhere", "Orphan", ""],  # unknown parent
        ["orphan-kid", "orphan", "Kid", ""],  # below a rejected row
        ["new-team", "ops", "New team", ""],  # fine
    ]
    rows[4] = ["it", "dev-be", "IT", "Informatica"]  # it below its own grandchild: a cycle
    write_csv(org.file, rows)
    task = org.run()
    assert task["status"] == "partial"
    errors = {error["key"]: error for error in task["row_errors"]}
    assert set(errors) == {"code=loop-a", "code=loop-b", "code=self", "code=orphan",
                           "code=orphan-kid", "code=it"}
    assert "cycle" in errors["code=loop-a"]["message"]
    assert "loop-a" in errors["code=loop-a"]["message"] and "loop-b" in errors[
        "code=loop-a"]["message"]
    assert "cycle" in errors["code=it"]["message"] and "dev-be" in errors["code=it"]["message"]
    assert "its own parent" in errors["code=self"]["message"]
    assert "'nowhere' is not a unit" in errors["code=orphan"]["message"]
    assert errors["code=orphan"]["column"] == "parent_code"
    assert "parent 'orphan' was rejected (line 14)" in errors["code=orphan-kid"]["message"]
    assert errors["code=loop-a"]["row"] == 11
    assert counts(task) == (1, 0, 8, 0, 6)  # 'it' rejected
    tree = valid_tree(org)
    assert tree["new-team"]["parent_code"] == "ops"
    assert tree["it"]["parent_code"] == ""  # the rejected move did not happen
    assert not {"loop-a", "loop-b", "self", "orphan", "orphan-kid"} & set(tree)


def test_a_code_two_units_share_is_a_row_error_naming_it(org):
    write_csv(org.file, TREE)
    org.run()
    by_hand(org.url, [{"code": "x-twin", "name": "Twin 1"}])
    with org.engine.begin() as conn:  # forma lets two units have one code
        conn.execute(sa.text("UPDATE core_org_chart_tree SET code = 'hr' WHERE code = 'x-twin'"))
    write_csv(org.file, TREE + [["hr-team", "hr", "HR team", ""]])
    task = org.run()
    errors = {error["key"]: error["message"] for error in task["row_errors"]}
    assert "code 'hr' is shared by 2 units" in errors["code=hr"]
    assert "parent_code 'hr' is shared by 2 units" in errors["code=hr-team"]
    assert counts(task) == (0, 0, 8, 0, 2)


# --- sync -----------------------------------------------------------------------------------


def test_sync_removes_only_owned_empty_leaf_units(org, iotask, tmp_path, caplog):
    org.iotask("task", "edit", "org", "--import-type", "sync")
    write_csv(org.file, TREE)
    org.run()
    by_hand(org.url, [{"code": "hand", "parent_code": "hr", "name": "Made by hand"}])
    other = tmp_path / "other.csv"
    write_csv(other, [["other", "hr", "Other feed", ""]])
    iotask("connection", "add", "other-feed", "--type", "csv", "--set", f"url={other}")
    iotask("task", "add", "other", "--source", "other-feed", "--destination", "lms")
    iotask("run", "other")
    org.add_user("jdoe", "sales-s")
    assert owned_codes(org, "other-feed") == {"other"}

    # the file no longer has sales-n, sales-s (a user in it), dev with dev-be and dev-fe
    # (removed together: dev is a leaf once they are gone), ops (a new unit comes below it)
    # and hr (hand and other stay below it)
    keep = {"it", "sales"}
    rows = [row for row in TREE if row[0] in keep] + [["ops-new", "ops", "New", ""]]
    write_csv(org.file, rows)
    unchanged = org.snapshot()
    dry = org.iotask("run", "org", "--dry-run", "--json").json()[0]
    assert org.snapshot() == unchanged
    assert dry["changes"]["remove"] == 4 and dry["changes"]["owned"] == 9
    assert sorted(dry["samples"]["remove"]) == ["code=dev", "code=dev-be", "code=dev-fe",
                                                 "code=sales-n"]
    before = valid_tree(org)
    logger = logging.getLogger("iotask.forma.orgchart")  # the CLI's logging may not propagate
    logger.addHandler(caplog.handler)
    try:
        task = org.run()
    finally:
        logger.removeHandler(caplog.handler)
    assert counts(task) == (1, 0, 2 + 3, 4, 0), task  # kept: sales-s, ops, hr
    assert "1 org chart units the source no longer has are kept, as they hold users: " \
           "'sales-s'" in caplog.text
    assert "are kept, as units below them stay: 'ops', 'hr'" in caplog.text
    tree = valid_tree(org)
    assert set(tree) == {"it", "sales", "sales-s", "ops", "ops-new", "hr", "hand", "other"}
    gone = [before[code] for code in ("dev", "dev-be", "dev-fe", "sales-n")]
    groups = {row["idst"] for row in org.rows("core_group")}
    dropped = {unit[key] for unit in gone for key in ("idst_oc", "idst_ocd")}
    assert not dropped & groups
    assert not any(g in dropped or m in dropped for g, m in org.members())
    assert not {unit["idOrg"] for unit in gone} & {row["id_dir"] for row in
                                                    org.rows("core_org_chart")}

    # the kept ones go once they are empty leaves the file does not have
    write_csv(org.file, [row for row in TREE if row[0] in keep])
    task = org.run()
    assert counts(task)[3] == 2  # ops-new, and ops, a leaf once ops-new goes
    assert set(valid_tree(org)) == {"it", "sales", "sales-s", "hr", "hand", "other"}
    assert counts(org.run("--reimport"))[2:4] == (2 + 2, 0)  # sales-s and hr kept again


def test_adopted_units_are_removed_by_a_later_sync(org):
    by_hand(org.url, [{"code": "legacy", "name": "Legacy"}, {"code": "kept", "name": "Kept"}])
    write_csv(org.file, [["legacy", "", "Legacy", ""]])
    adopted = org.iotask("task", "adopt", "org", "--json").json()
    assert adopted["adopted"] == 1
    assert owned_codes(org) == {"legacy"}
    org.iotask("task", "edit", "org", "--import-type", "sync", "--allow-empty")
    write_csv(org.file, [["other", "", "Other", ""]])
    task = org.run()
    assert counts(task) == (1, 0, 0, 1, 0)
    assert set(valid_tree(org)) == {"kept", "other"}


# --- dry run, hostile values, vendor files -------------------------------------------------


def test_a_dry_run_writes_nothing(org):
    write_csv(org.file, TREE[:5])
    org.run()
    before = org.snapshot()
    moved = [row[:] for row in TREE]
    moved[3] = ["ops", "", "Ops", ""]
    write_csv(org.file, moved)
    result = org.iotask("run", "org", "--dry-run", "--json").json()[0]
    assert result["changes"]["insert"] == 4 and result["changes"]["update"] == 1
    assert result["samples"]["update"] == ["code=ops"]
    assert result["samples"]["insert"][:2] == ["code=sales-n", "code=sales-s"]
    assert org.snapshot() == before
    assert org.iotask("history", "org", "--json").json()[0]["counts"]["inserted"] == 5


def test_hostile_values_are_row_errors_naming_the_column(org, backend):
    long_code = "x" * 300
    rows = [
        ["ok", "", "Fine", ""],
        ["bell\x07", "", "Bell", ""],  # a control character in the code
        ["tab-name", "", "Tab\there", ""],  # ... in a name
        ["esc-parent", "ok\x1b", "Esc", ""],  # ... in parent_code
        [long_code, "", "Long", ""],  # code is varchar(255)
        ["long-name", "", "N" * 256, ""],
        ["emoji", "", "Team \U0001F600", ""],  # beyond U+FFFF: 3-byte utf8 on forma 3.x
        ["ok", "", "Again", ""],  # a duplicate code
        ["", "", "No code", ""],
        ["nameless", "ok", "", ""],  # a new unit needs a name
        ["long-parent", "p" * 300, "Long parent", ""],
    ]
    write_csv(org.file, rows)
    org.iotask("task", "edit", "org", "--max-errors", "100%")
    task = org.run()
    errors = {(error["row"], error["column"]): error["message"] for error in task["row_errors"]}
    assert "control character U+0007" in errors[(3, "code")]
    assert "control character U+0009" in errors[(4, "name")]
    assert "control character U+001B" in errors[(5, "parent_code")]
    assert "300 characters long, forma's column holds 255" in errors[(6, "code")]
    assert "256 characters long" in errors[(7, "name")]
    assert "duplicate key code=ok: also on line 2" in errors[(9, "code")]
    assert "'code' is empty" in errors[(10, "code")]
    assert "is new and has no name" in errors[(11, "name")]
    assert "300 characters long" in errors[(12, "parent_code")]
    tree = valid_tree(org)
    if backend == "mariadb":
        assert "beyond U+FFFF" in errors[(8, "name")]
        assert set(tree) == {"ok"}
    else:
        assert set(tree) == {"ok", "emoji"}
        assert org.names()[("emoji", "english")] == "Team \U0001F600"
    assert org.names()[("ok", "english")] == "Fine"


def test_a_semicolon_file_with_a_bom_and_crlf_lines(org):
    org.iotask("connection", "edit", OWNER, "--set", "delimiter=;",
               "--set", "encoding=utf-8-sig")
    write_csv(org.file, [["nord", "", "Nord; Est", "Nord-Est"], ["città", "nord", "Città", ""]],
              delimiter=";", encoding="utf-8-sig", newline="\r\n")
    task = org.run()
    assert counts(task) == (2, 0, 0, 0, 0), task
    tree = valid_tree(org)
    assert tree["città"]["parent_code"] == "nord"
    assert org.names()[("nord", "english")] == "Nord; Est"


@pytest.mark.parametrize("header, message", [
    (["code", "parent_code", "name", "colour"], "column 'colour' (line 2) is not a "
                                                "forma-orgchart column"),
    (["code", "parent_code", "name", "name:english"], "columns 'name' and 'name:english' both "
                                                      "give the name in english"),
    (["id", "parent_code", "name", "name:italian"], "column 'id' (line 2) is not"),
])
def test_an_unknown_column_stops_the_run_before_anything_is_applied(org, header, message):
    write_csv(org.file, [["a", "", "A", "x"]], header=header)
    task = org.run(ok=False)
    assert task["status"] == "failed" and message in task["error"], task
    assert "nothing was applied" in task["error"]
    assert valid_tree(org) == {}


def test_a_site_unit_that_is_not_below_the_root_stops_the_run(org):
    write_csv(org.file, TREE)
    org.run()
    with org.engine.begin() as conn:  # a unit whose parent was deleted by hand
        tree = sa.Table("core_org_chart_tree", sa.MetaData(), autoload_with=conn)
        conn.execute(sa.update(tree).where(tree.c.code == "hr").values(idParent=9999))
    before = org.snapshot()
    without_hr = [row for row in TREE if row[0] != "hr"]
    write_csv(org.file, without_hr + [["new", "it", "New", ""]])
    task = org.run(ok=False)
    assert task["status"] == "failed"
    assert "(code 'hr') has idParent 9999, which does not exist" in task["error"], task
    assert org.snapshot() == before
    write_csv(org.file, TREE + [["new", "it", "New", ""]])  # hr's row puts it back at the top
    assert counts(org.run()) == (1, 1, 8, 0, 0)
    assert valid_tree(org)["hr"]["parent_code"] == ""


def test_the_language_setting_names_column_name(org):
    org.iotask("connection", "edit", "lms", "--set", "language=italian")
    write_csv(org.file, [["a", "", "Vendite", "x"]], header=["code", "parent_code", "name",
                                                             "name:english"])
    org.run()
    assert org.names() == {("a", "italian"): "Vendite", ("a", "english"): "x"}


# --- reading --------------------------------------------------------------------------------


def test_export_lists_parents_first_and_round_trips(org, iotask, tmp_path):
    write_csv(org.file, TREE)
    org.run()
    out = tmp_path / "export.csv"
    iotask("connection", "add", "export", "--type", "csv", "--set", f"url={out}")
    iotask("task", "add", "export", "--source", "lms", "--destination", "export")
    iotask("run", "export")
    with open(out, encoding="utf-8", newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert list(exported[0]) == ["code", "parent_code", "name", "name:italian"]
    seen: set[str] = set()
    for row in exported:
        assert row["parent_code"] == "" or row["parent_code"] in seen  # parents first
        seen.add(row["code"])
    assert {row["code"]: [row["parent_code"], row["name"], row["name:italian"]]
            for row in exported} == {row[0]: row[1:] for row in TREE}

    write_csv(org.file, [list(row.values()) for row in exported])  # the export back in
    assert counts(org.run("--reimport")) == (0, 0, 9, 0, 0)
    assert json.dumps(sorted(valid_tree(org))) == json.dumps(sorted(row[0] for row in TREE))


def test_units_without_a_code_are_left_out_of_an_export_with_what_is_below_them(
        org, caplog):
    write_csv(org.file, TREE[-1:])
    org.run()
    with org.engine.begin() as conn:  # units made in forma's UI often have no code
        tree = sa.Table("core_org_chart_tree", sa.MetaData(), autoload_with=conn)
        conn.execute(sa.insert(tree), [
            {"idOrg": 500, "idParent": 0, "path": "/root/00000002", "lev": 1, "iLeft": 3,
             "iRight": 6, "code": "", "idst_oc": 0, "idst_ocd": 0},
            {"idOrg": 501, "idParent": 500, "path": "/root/00000002/00000001", "lev": 2,
             "iLeft": 4, "iRight": 5, "code": "below", "idst_oc": 0, "idst_ocd": 0}])
    source = FormaOrgChartConnector({"database": org.url})
    logger = logging.getLogger("iotask.forma.orgchart")  # the CLI's logging may not propagate
    logger.addHandler(caplog.handler)
    try:
        rows = [row for batch in source.read(MemoryContext(database_url=org.url))
                for row in batch]
    finally:
        logger.removeHandler(caplog.handler)
    assert rows == [{"code": "hr", "parent_code": "", "name": "Human Resources",
                     "name:italian": "Risorse umane"}]
    assert "2 org chart units are left out of the export" in caplog.text


def test_a_map_keyed_on_another_column_is_refused(org):
    result = org.iotask("task", "add", "bad", "--source", OWNER, "--destination", "lms",
                        "--map", '{"columns": {"code": "code", "name": "name"}, "key": ["name"]}',
                        ok=False)
    assert result.code != 0 and "matches units on code, not on name" in result.err
