"""The connector registry: built-ins seeded, third-party modules registered, never eval'd."""

from __future__ import annotations

import sqlalchemy as sa
from conftest import assert_user_error


def test_builtin_connectors_listed(iotask):
    listed = {c["type"]: c for c in iotask("connector", "list", "--json").json()}
    assert listed["csv"]["module"] == "iotask.connectors.csv"
    assert listed["csv"]["class"] == "CsvConnector"
    assert listed["csv"]["read"] and listed["csv"]["write"]
    assert listed["sql"]["error"] is None
    table = iotask("connector", "list").out
    assert table.splitlines()[0].split() == ["TYPE", "MODULE", "CLASS", "READ", "WRITE",
                                             "DESCRIPTION"]


def test_register_third_party_module(iotask, engine):
    iotask("connector", "register", "third_party_connector")
    listed = {c["type"]: c for c in iotask("connector", "list", "--json").json()}
    plug = listed["ldap-directory"]
    assert (plug["module"], plug["class"], plug["read"], plug["write"]) == (
        "third_party_connector", "LdapDirectory", True, False)
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            "SELECT file, class FROM core_connector WHERE type = 'ldap-directory'")).one()
    assert tuple(row) == ("third_party_connector", "LdapDirectory")
    shown = iotask("connector", "show", "ldap-directory", "--json").json()
    assert [s["name"] for s in shown["settings"]] == ["server", "bind_password", "page_size",
                                                      "follow_referrals"]
    iotask("connection", "add", "dir", "--type", "ldap-directory", "--set", "server=ldap://h",
           "--set", "bind_password=x", "--set", "page_size=50", "--set", "follow_referrals=yes")
    params = iotask("connection", "show", "dir", "--json").json()["params"]
    assert params["page_size"] == 50 and params["follow_referrals"] is True
    assert_user_error(iotask("connection", "add", "d2", "--type", "ldap-directory",
                             "--set", "server=ldap://h", "--set", "bind_password=x",
                             "--set", "page_size=many", ok=False), "'page_size'", "whole number")


def test_register_errors(iotask):
    assert_user_error(iotask("connector", "register", "no_such_module_xyz", ok=False),
                      "cannot import module 'no_such_module_xyz'")
    assert_user_error(iotask("connector", "register", "broken_connector", ok=False),
                      "declares no connector", "CONNECTOR =")
    assert_user_error(iotask("connector", "register", "../../etc/passwd", ok=False),
                      "not a Python module name")
    assert_user_error(iotask("connector", "register", "os; import shutil", ok=False),
                      "not a Python module name")
    assert_user_error(iotask("connector", "register", "iotask.connectors.csv", ok=False),
                      "'csv' is already registered")
    iotask("connector", "register", "third_party_connector")
    assert_user_error(iotask("connector", "register", "third_party_connector", ok=False),
                      "already registered")


def test_a_row_naming_a_missing_module_is_reported_not_fatal(iotask, engine):
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO core_connector (type, file, class) "
                             "VALUES ('gone', 'vanished_vendor.connector', 'Gone')"))
        conn.execute(sa.text("INSERT INTO core_connector (type, file, class) "
                             "VALUES ('evil', '__import__(\"os\").system(\"id\")', 'X')"))
    listed = {c["type"]: c for c in iotask("connector", "list", "--json").json()}
    assert "cannot import module 'vanished_vendor.connector'" in listed["gone"]["error"]
    assert "not a Python module name" in listed["evil"]["error"]
    assert listed["csv"]["error"] is None
    assert_user_error(iotask("connection", "add", "c", "--type", "gone", ok=False),
                      "connector type 'gone' is unusable")
