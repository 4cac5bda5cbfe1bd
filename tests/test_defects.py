"""Regression tests for the defects hostile testing and a new user's first day found: each one
failed before its fix. Through the CLI, as a user meets them; on all three databases where the
database takes part."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conftest import assert_user_error
from test_dataflow import Site, counts, users, write_csv


@pytest.fixture
def site(iotask, engine, tmp_path) -> Site:
    return Site(iotask, engine, tmp_path)


# --- guards that a NaN switched off --------------------------------------------------------


@pytest.mark.parametrize("limit", ["nan%", "NaN%", "inf", "-inf%", "1e3", "١٠", "0x10", " %"])
def test_a_limit_that_is_not_a_plain_number_is_refused(site, limit):
    write_csv(site.file, users(10))
    site.task("--import-type", "sync")
    for option in ("--max-remove", "--max-errors"):
        assert_user_error(site.iotask("task", "edit", "users", option, limit, ok=False),
                          "must be a count such as 100 or a percent such as 5%")


def test_a_nan_limit_written_by_hand_fails_the_run_and_removes_nothing(site):
    write_csv(site.file, users(10))
    site.task("--import-type", "sync")
    assert counts(site.run())["inserted"] == 10
    with site.engine.begin() as conn:
        conn.execute(sa.text("UPDATE core_task SET max_remove = 'nan%', max_errors = 'NaN%' "
                             "WHERE name = 'users'"))
    write_csv(site.file, users(1))  # 9 of 10 records would go
    result = site.run(ok=False)
    assert result.code == 1
    task = result.json()["tasks"][0]
    assert task["status"] == "failed" and "core_task.max_errors" in task["error"]
    assert "iotask task edit users --max-errors" in task["error"]
    assert len(site.content()) == 10
