"""Sample connections and tasks, so a newcomer sees iotask work on the embedded SQLite default."""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from iotask import connections, tasks
from iotask.models import Connection, Task

USERS = [
    ("jdoe", "John", "Doe", "john.doe@example.com", "sales"),
    ("mrossi", "Mario", "Rossi", "mario.rossi@example.com", "sales/italy"),
    ("akim", "Ana", "Kim", "ana.kim@example.com", "engineering"),
    ("lmüller", "Lena", "Müller", "lena.mueller@example.com", "engineering/berlin"),
]


DEMO_TABLE = "demo_lms_user"


def create_demo_table(session: Session) -> None:
    """The LMS users table the demo imports into, in the iotask database itself."""
    metadata = sa.MetaData()
    sa.Table(DEMO_TABLE, metadata,
             sa.Column("userid", sa.String(50), primary_key=True),
             sa.Column("firstname", sa.String(100)),
             sa.Column("lastname", sa.String(100)),
             sa.Column("email", sa.String(200)),
             sa.Column("org_unit", sa.String(200)),
             mysql_charset="utf8mb4")
    metadata.create_all(session.connection(), checkfirst=True)


def write_sample_files(folder: Path) -> Path:
    """The HR system's users file, dated an hour ago: a finished file, ready to import (a file
    younger than a connection's stable_seconds is taken for one still being written)."""
    folder.mkdir(parents=True, exist_ok=True)
    users = folder / "users.csv"
    with users.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["userid", "firstname", "lastname", "email", "org_unit"])
        writer.writerows(USERS)
    an_hour_ago = time.time() - 3600
    os.utime(users, (an_hour_ago, an_hour_ago))
    return users


def set_up(session: Session, folder: Path, file_roots: Sequence[Path]) -> list[str]:
    """Create what is missing of the demo in ``folder`` (inside ``file_roots``); return the
    names of what was created."""
    users_csv = write_sample_files(folder)
    create_demo_table(session)
    export_csv = folder / "users-export.csv"
    created = []
    wanted_connections = [
        ("demo-hr-users", "csv", "HR system's daily users file",
         [("url", str(users_csv))]),
        ("demo-lms-users", "sql", "LMS users table in the iotask database",
         [("table", DEMO_TABLE), ("key", "userid")]),
        ("demo-users-export", "csv", "Users export for the reporting team",
         [("url", str(export_csv))]),
    ]
    for name, type_name, description, settings in wanted_connections:
        if session.get(Connection, name) is None:
            connections.add(session, name, type_name, description, settings,
                            file_roots=file_roots)
            created.append(name)
    session.flush()
    wanted_tasks = [
        ("demo: import HR users", tasks.TaskChanges(
            source="demo-hr-users", destination="demo-lms-users", schedule_type="at",
            schedule="02:30", import_type="insert", sequence=10,
            description="Users from the HR file into the LMS, nightly")),
        ("demo: export users", tasks.TaskChanges(
            source="demo-lms-users", destination="demo-users-export", schedule_type="any",
            schedule="6 hour", import_type="insert", sequence=20,
            description="Users for the reporting team, every six hours")),
    ]
    for name, changes in wanted_tasks:
        if session.get(Task, name) is None:
            tasks.add(session, name, changes, file_roots, now=True)
            created.append(name)
    return created
