"""A DBA who knows Docebo works on the tables with plain SQL, and iotask sees the change."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa


def test_select_and_update_core_task_by_hand(iotask, engine):
    iotask("connection", "add", "src", "--type", "csv", "--set", "url=x.csv")
    iotask("connection", "add", "dst", "--type", "sql", "--set", "table=t")
    iotask("task", "add", "users", "--source", "src", "--destination", "dst", "--at", "02:30",
           "--sequence", "3")
    with engine.begin() as conn:  # typed by hand, without seconds, as DBAs do
        conn.execute(sa.text(
            "UPDATE core_task SET last_execution = '2026-11-20 01:30' WHERE name = 'users'"))
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT name, schedule_type, schedule, last_execution, sequence FROM core_task")
        ).all()
    assert len(rows) == 1
    name, schedule_type, schedule, last_execution, sequence = rows[0]
    assert (name, schedule_type, schedule, sequence) == ("users", "at", "02:30", 3)
    assert str(last_execution).startswith("2026-11-20 01:30")  # SQLite gives text back
    shown = iotask("task", "show", "users", "--json").json()
    assert shown["last_execution"] == "2026-11-20T02:30:00+01:00"  # stored UTC, shown in Rome
    assert shown["next_due"] == "2026-11-21T02:30:00+01:00"
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE core_task SET last_execution = NULL WHERE name = 'users'"))
    shown = iotask("task", "show", "users", "--json").json()
    assert shown["last_execution"] is None and shown["next_due"] == "now"


def test_docebo_stored_forms_written_by_hand_are_understood(iotask, engine):
    iotask("connection", "add", "src", "--type", "csv", "--set", "url=x.csv")
    iotask("connection", "add", "dst", "--type", "sql", "--set", "table=t")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO core_task (name, description, conn_source, conn_destination, "
            "schedule_type, schedule, import_type, map, sequence, created_at, updated_at) "
            "VALUES (:name, '', 'src', 'dst', 'at', '02:30 hour', '2', NULL, 1, :now, :now)"),
            {"name": "from-docebo", "now": datetime(2026, 1, 1)})
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE core_task SET last_execution = :t"),
                     {"t": datetime(2026, 11, 21, 3, 0)})
    assert iotask("task", "show", "from-docebo", "--json").json()["last_execution"] == (
        "2026-11-21T04:00:00+01:00")
    shown = iotask("task", "show", "from-docebo", "--json").json()
    assert "02:30" in shown["schedule_words"] and "unreadable" not in shown["schedule_words"]
    assert shown["import_type"] == "sync"
    assert shown["enabled"] is True and shown["fail_count"] == 0  # server defaults filled in
