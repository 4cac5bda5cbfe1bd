"""Tasks: add, list, show, edit, enable, disable, remove; every mistake refused clearly."""

from __future__ import annotations

import pytest
from conftest import assert_user_error


@pytest.fixture
def conns(iotask):
    iotask("connection", "add", "hr-file", "--type", "csv", "--set", "url=users.csv")
    iotask("connection", "add", "lms", "--type", "sql", "--set", "table=lms_user")
    iotask("connector", "register", "third_party_connector")
    iotask("connection", "add", "ldap", "--type", "ldap-directory",
           "--set", "server=ldap://x", "--set", "bind_password=p")
    return iotask


def test_add_and_show_everything(conns):
    iotask = conns
    iotask("task", "add", "users", "--source", "hr-file", "--destination", "lms",
           "--at", "2:30", "--import-type", "2", "--map", '[{"map": "userid", "pk": "1"}]',
           "--sequence", "7", "--email", "hr@example.com, it@example.com",
           "--description", "nightly users", "--now")
    task = iotask("task", "show", "users", "--json").json()
    assert task["source"] == "hr-file" and task["destination"] == "lms"
    assert (task["schedule_type"], task["schedule"]) == ("at", "02:30")
    assert task["import_type"] == "sync"
    assert task["map"] == [{"map": "userid", "pk": "1"}]
    assert task["sequence"] == 7 and task["enabled"] is True
    assert task["notify_email"] == "hr@example.com, it@example.com"
    assert task["last_execution"] is None and task["next_due"] == "now"
    assert task["fail_count"] == 0
    text = iotask("task", "show", "users").out
    assert "nightly users" in text and "02:30" in text


def test_default_schedule_is_daily(conns):
    conns("task", "add", "t", "--source", "hr-file", "--destination", "lms")
    task = conns("task", "show", "t", "--json").json()
    assert (task["schedule_type"], task["schedule"], task["import_type"]) == (
        "any", "1 day", "insert")


@pytest.mark.parametrize("option, value, stored", [
    ("--every", "6 hours", ("any", "6 hour")),
    ("--every", "1 day", ("any", "1 day")),
    ("--cron", "0  2 * * 1-5", ("cron", "0 2 * * 1-5")),
    ("--cron", "@daily", ("cron", "@daily")),
    ("--at", "23:59", ("at", "23:59")),
])
def test_schedules_are_normalised(conns, option, value, stored):
    conns("task", "add", "t", "--source", "hr-file", "--destination", "lms", option, value)
    task = conns("task", "show", "t", "--json").json()
    assert (task["schedule_type"], task["schedule"]) == stored


@pytest.mark.parametrize("args, fragments", [
    (["--at", "25:00"], ["02:30"]),
    (["--every", "3 weeks"], ["6 hour"]),
    (["--cron", "61 * * * *"], ["e.g."]),
    (["--at", "02:30", "--every", "1 day"], ["give one schedule"]),
    (["--map", "{bad"], ["--map is not valid JSON"]),
    (["--map", '"text"'], ["--map must be a JSON list"]),
    (["--email", "not-an-address"], ["'not-an-address' is not valid"]),
    (["--sequence", "-1"], ["sequence must be 0 or more"]),
    (["--import-type", "replace"], ["'replace' is not one of"]),
    (["--sequence", "x"], ["'x' is not a valid integer"]),
])
def test_bad_task_options(conns, args, fragments):
    result = conns("task", "add", "t", "--source", "hr-file", "--destination", "lms", *args,
                   ok=False)
    assert_user_error(result, *fragments)
    assert conns("task", "list", "--json").json() == []


def test_connections_must_exist_and_fit_their_role(conns):
    assert_user_error(conns("task", "add", "t", "--source", "nope", "--destination", "lms",
                            ok=False), "no connection named 'nope'")
    assert_user_error(conns("task", "add", "t", "--source", "hr-file", "--destination", "ldap",
                            ok=False), "'ldap' (type ldap-directory) cannot write")
    assert_user_error(conns("task", "add", "t", "--source", "hr-file", ok=False),
                      "--destination")


def test_edit_enable_disable_remove(conns):
    iotask = conns
    iotask("task", "add", "t", "--source", "hr-file", "--destination", "lms", "--at", "01:00",
           "--now")
    iotask("task", "edit", "t", "--every", "2 day", "--description", "changed")
    task = iotask("task", "show", "t", "--json").json()
    assert (task["schedule_type"], task["schedule"], task["description"]) == (
        "any", "2 day", "changed")
    iotask("task", "disable", "t")
    assert iotask("task", "show", "t", "--json").json()["enabled"] is False
    assert iotask("task", "list").out.splitlines()[1].split()[-1] == "no"
    iotask("task", "enable", "t")
    assert iotask("task", "show", "t", "--json").json()["enabled"] is True
    assert_user_error(iotask("task", "add", "t", "--source", "hr-file", "--destination", "lms",
                             ok=False), "already exists")
    iotask("task", "remove", "t")
    assert_user_error(iotask("task", "show", "t", ok=False), "no task named 't'")
    assert_user_error(iotask("task", "enable", "t", ok=False), "no task named 't'")


def test_list_is_in_sequence_order(conns):
    for name, seq in (("b", 2), ("a", 3), ("c", 1)):
        conns("task", "add", name, "--source", "hr-file", "--destination", "lms",
              "--sequence", str(seq))
    assert [t["name"] for t in conns("task", "list", "--json").json()] == ["c", "b", "a"]


def test_connection_type_change_must_keep_tasks_working(conns):
    conns("task", "add", "t", "--source", "ldap", "--destination", "hr-file")
    conns("connection", "edit", "lms", "--type", "csv", "--params-json", '{"url": "o.csv"}')
    assert_user_error(conns("connection", "edit", "hr-file", "--type", "ldap-directory",
                            "--params-json", '{"server": "ldap://y", "bind_password": "p"}',
                            ok=False), "cannot write", "task 't'")
