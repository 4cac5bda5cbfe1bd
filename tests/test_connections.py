"""Connections: settings validated against the connector's schema, secrets never shown."""

from __future__ import annotations

import json

import pytest
from conftest import assert_user_error


def test_add_list_show_edit_remove(iotask):
    iotask("connection", "add", "hr-users", "--type", "csv", "--description", "HR file",
           "--set", "url=hr/users.csv", "--set", "delimiter=;", "--set", "header=false",
           "--set", "columns=userid, firstname,lastname")
    shown = iotask("connection", "show", "hr-users", "--json").json()
    assert shown["type"] == "csv" and shown["description"] == "HR file"
    assert shown["params"] == {"url": "hr/users.csv", "delimiter": ";", "header": False,
                               "columns": ["userid", "firstname", "lastname"],
                               "quotechar": '"', "encoding": "utf-8", "formulas": True}
    listed = iotask("connection", "list", "--json").json()
    assert [c["name"] for c in listed] == ["hr-users"]
    iotask("connection", "edit", "hr-users", "--set", "encoding=cp1252", "--description", "x")
    shown = iotask("connection", "show", "hr-users", "--json").json()
    assert shown["params"]["encoding"] == "cp1252" and shown["description"] == "x"
    assert shown["params"]["delimiter"] == ";"  # untouched settings stay
    table = iotask("connection", "list").out
    assert "hr-users" in table and "csv" in table
    iotask("connection", "remove", "hr-users")
    assert iotask("connection", "list", "--json").json() == []


def test_params_json_and_set_together(iotask):
    iotask("connection", "add", "db", "--type", "sql",
           "--params-json", '{"table": "lms_user", "key": ["userid"]}', "--set", "table=x")
    assert iotask("connection", "show", "db", "--json").json()["params"] == {
        "table": "x", "key": ["userid"]}


@pytest.mark.parametrize("args, fragments", [
    (["--set", "nonsense=1"], ["unknown setting 'nonsense'", "known: url"]),
    ([], ["missing required setting 'url'"]),
    (["--set", "url=x", "--set", "header=maybe"], ["'header' must be true or false"]),
    (["--set", "url=x", "--set", "encoding=ebcdic"], ["'encoding' must be one of"]),
    (["--set", "url=x", "--set", "delimiter=;;"], ["'delimiter' must be exactly one"]),
    (["--set", "url=x", "--set", "header=no"], ["'columns' is required"]),
    (["--set", "url"], ["expected KEY=VALUE"]),
    (["--params-json", '{"url": 5}'], ["'url' must be a URL string"]),
    (["--params-json", "[1"], ["--params-json is not valid JSON"]),
    (["--params-json", "[1]"], ["must be a JSON object"]),
])
def test_bad_settings_are_refused_naming_the_key(iotask, args, fragments):
    result = iotask("connection", "add", "c", "--type", "csv", *args, ok=False)
    assert_user_error(result, *fragments)
    assert iotask("connection", "list", "--json").json() == []  # nothing saved


def test_unknown_type_and_duplicates_and_missing(iotask):
    assert_user_error(iotask("connection", "add", "c", "--type", "nope", ok=False),
                      "no connector type 'nope'",
                      ("csv, forma-courses, forma-enrollments, forma-lms, forma-merges, "
                       "forma-orgchart, forma-users, ims-enterprise, sql, xml"))
    iotask("connection", "add", "c", "--type", "sql", "--set", "table=t")
    assert_user_error(iotask("connection", "add", "c", "--type", "sql", "--set", "table=t",
                             ok=False), "already exists")
    assert_user_error(iotask("connection", "show", "zz", ok=False), "no connection named 'zz'")
    assert_user_error(iotask("connection", "remove", "zz", ok=False), "no connection named")


def test_remove_refused_while_tasks_use_it(iotask):
    iotask("connection", "add", "src", "--type", "csv", "--set", "url=x.csv")
    iotask("connection", "add", "dst", "--type", "sql", "--set", "table=t")
    iotask("task", "add", "t1", "--source", "src", "--destination", "dst")
    iotask("task", "add", "t2", "--source", "src", "--destination", "dst")
    assert_user_error(iotask("connection", "remove", "dst", ok=False), "'t1', 't2'")
    assert "dst" in [c["name"] for c in iotask("connection", "list", "--json").json()]


def test_changing_type_revalidates_settings(iotask):
    iotask("connection", "add", "c", "--type", "csv", "--set", "url=x.csv")
    assert_user_error(iotask("connection", "edit", "c", "--type", "sql", ok=False),
                      "unknown setting")
    iotask("connection", "edit", "c", "--type", "sql", "--params-json", '{"table": "t"}')
    assert iotask("connection", "show", "c", "--json").json()["type"] == "sql"


SECRET = "s3cr3t-Pa55"


def test_secrets_are_masked_everywhere(iotask):
    iotask("connector", "register", "third_party_connector")
    iotask("connection", "add", "dir", "--type", "ldap-directory",
           "--set", f"server=ldaps://admin:{SECRET}@ldap.example.com",
           "--set", f"bind_password={SECRET}")
    iotask("connection", "add", "db", "--type", "sql",
           "--set", f"database=mysql+pymysql://lms:{SECRET}@db.example.com/lms",
           "--set", "table=users")
    outputs = [
        iotask("connection", "show", "dir").out,
        iotask("connection", "show", "dir", "--json").out,
        iotask("connection", "list").out,
        iotask("connection", "list", "--json").out,
        iotask("connection", "show", "db", "--json").out,
        iotask("connection", "show", "db").out,
        iotask("-v", "connection", "edit", "dir", "--set", "page_size=10").out,
    ]
    bad = iotask("connection", "edit", "dir", "--params-json",
                 json.dumps({"server": "ldap://x", "bind_password": 12345678}), ok=False)
    outputs += [bad.out, bad.err]
    for text in outputs:
        assert SECRET not in text and "12345678" not in text
    shown = iotask("connection", "show", "dir", "--json").json()["params"]
    assert shown["bind_password"] == "********"
    assert shown["server"] == "ldaps://admin:***@ldap.example.com"
    db_shown = iotask("connection", "show", "db", "--json").json()["params"]
    assert db_shown["database"] == "mysql+pymysql://lms:***@db.example.com/lms"
