"""Names full of quotes, semicolons, comment markers and unicode round-trip and harm nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import assert_user_error

HOSTILE = [
    "Robert'); DROP TABLE core_task;--",
    'say "hello"; -- not a comment',
    "a`b`c /* x */ \\ back",
    "Ünïcödé → 学习 📚 ä",
    "a" * 50,
    "%s %(name)s {0} $1 ?",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_round_trip(iotask, engine, name):
    iotask("connection", "add", name, "--type", "csv", "--set", "url=x.csv",
           "--description", name)
    iotask("connection", "add", "dst", "--type", "sql", "--set", "table=t")
    iotask("task", "add", name, "--source", name, "--destination", "dst", "--description", name)
    task = iotask("task", "show", name, "--json").json()
    assert task["name"] == name and task["source"] == name and task["description"] == name
    assert iotask("connection", "show", name, "--json").json()["used_by"] == [name]
    iotask("task", "edit", name, "--sequence", "5")
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT name, sequence FROM core_task")).all()
        tables = set(sa.inspect(conn).get_table_names())
    assert [tuple(r) for r in stored] == [(name, 5)]
    assert {"core_task", "core_connection", "core_connector"} <= tables
    iotask("task", "remove", name)
    iotask("connection", "remove", name)
    assert [c["name"] for c in iotask("connection", "list", "--json").json()] == ["dst"]


def test_similar_names_stay_distinct(iotask):
    """Case and accents matter on every database (binary collation on MariaDB)."""
    names = ["users", "Users", "üsers", "users2"]
    for name in names:
        iotask("connection", "add", name, "--type", "csv", "--set", "url=x.csv")
    listed = [c["name"] for c in iotask("connection", "list", "--json").json()]
    assert sorted(listed) == sorted(names)


@pytest.mark.parametrize("name, fragment", [
    ("a" * 51, "at most 50"),
    ("", "must not be empty"),
    (" padded", "must not start or end with spaces"),
    ("tab\there", "control or invisible"),
])
def test_unusable_names_are_refused(iotask, name, fragment):
    assert_user_error(iotask("connection", "add", name, "--type", "csv", "--set", "url=x",
                             ok=False), fragment)
