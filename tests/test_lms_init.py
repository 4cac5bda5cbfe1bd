"""`iotask lms init`: forma's tables and seed groups on every backend; never over existing ones."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import assert_user_error, run_cli
from iotask.connectors import forma


def _groups(url: str) -> dict[str, int]:
    eng = sa.create_engine(url)
    with eng.connect() as conn:
        rows = conn.execute(sa.text("SELECT groupid, idst FROM core_group")).all()
    eng.dispose()
    return dict(rows)


def test_init_creates_the_tables_and_the_seed_groups(iotask, migrated_url):
    result = iotask("lms", "init", "--json")
    created = result.json()
    assert "core_user" in created["tables"] and "learning_courseuser" in created["tables"]
    groups = _groups(migrated_url)
    assert set(forma.SEED_GROUPS) <= set(groups)
    assert len(set(groups.values())) == len(groups)  # ids from one sequence: no collision
    eng = sa.create_engine(migrated_url)
    with eng.begin() as conn:
        site = forma.Site(conn)
        fresh = site.allocate(2)
        table = site.table("core_group_members")
        members = conn.execute(sa.select(table.c.idst, table.c.idstMember)).all()
    eng.dispose()
    assert min(fresh) > max(groups.values())
    assert (groups["/ocd_0"], groups["/oc_0"]) in [tuple(row) for row in members]


def test_init_refuses_a_database_that_has_forma_tables(iotask, migrated_url):
    iotask("lms", "init")
    before = _groups(migrated_url)
    result = iotask("lms", "init", ok=False)
    assert_user_error(result, "already holds forma tables", "never alters")
    assert _groups(migrated_url) == before


def test_init_with_a_prefix_creates_prefixed_tables(iotask, migrated_url):
    iotask("lms", "init", "--prefix", "site2_")
    names = set(sa.inspect(sa.create_engine(migrated_url)).get_table_names())
    assert {"site2_core_user", "site2_core_group", "site2_learning_course"} <= names
    assert "core_user" not in names


def test_the_forma_fixture_holds_forma_tables(forma_url):
    groups = _groups(forma_url)
    assert {"/oc_0", "/ocd_0", "/framework/level/user"} <= set(groups)


def test_init_on_an_unreachable_server_is_one_line():
    result = run_cli("--db", "mysql+pymysql://u:secret@127.0.0.1:1/x", "lms", "init")
    assert_user_error(result)
    assert "secret" not in result.err


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("kind", ["users", "orgchart", "courses", "enrollments"])
def test_every_forma_connector_refuses_a_bad_database_url_when_saved(iotask, kind):
    result = iotask("connection", "add", "lms", "--type", f"forma-{kind}",
                    "--set", "database=mysql://lms@db.example.com:port/forma", ok=False)
    assert_user_error(result, "setting 'database'")
    assert iotask("connection", "list", "--json").json() == []
