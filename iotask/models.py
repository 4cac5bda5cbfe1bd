"""The core tables, under Docebo's names so a DBA who knows Docebo reads them at once.

All timestamps are naive UTC. New columns sit beside Docebo's with self-explaining names.
Tables use a binary utf8mb4 collation on MariaDB/MySQL so that names compare exactly as they do
on SQLite and PostgreSQL (``Task`` and ``task``, ``a`` and ``ä`` are different names).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
    true,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from iotask.clock import SQLITE_PATTERN, SQLITE_STORAGE, utcnow

NAME_LENGTH = 50

# SQLite keeps timestamps as text (see ``iotask.clock.SQLITE_STORAGE``).
SQLITE_TIMESTAMP = sqlite.DATETIME(storage_format=SQLITE_STORAGE, regexp=SQLITE_PATTERN)
Timestamp = DateTime().with_variant(SQLITE_TIMESTAMP, "sqlite")

MYSQL_TABLE_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    metadata = metadata


class Connector(Base):
    """A kind of endpoint: a Python module and class that can read and/or write."""

    __tablename__ = "core_connector"
    __table_args__ = MYSQL_TABLE_ARGS

    type: Mapped[str] = mapped_column(String(25), primary_key=True)
    file: Mapped[str] = mapped_column(String(255))
    class_: Mapped[str] = mapped_column("class", String(50))


class Connection(Base):
    """A configured endpoint: a connector type plus its settings (JSON)."""

    __tablename__ = "core_connection"
    __table_args__ = MYSQL_TABLE_ARGS

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(String(255), server_default="")
    type: Mapped[str] = mapped_column(
        String(25), ForeignKey("core_connector.type", onupdate="CASCADE")
    )
    params: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)


class Task(Base):
    """Source connection to destination connection, on a schedule (Docebo's core_task)."""

    __tablename__ = "core_task"
    __table_args__ = MYSQL_TABLE_ARGS

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(String(255), server_default="")
    conn_source: Mapped[str] = mapped_column(
        String(NAME_LENGTH), ForeignKey("core_connection.name", onupdate="CASCADE"), index=True
    )
    conn_destination: Mapped[str] = mapped_column(
        String(NAME_LENGTH), ForeignKey("core_connection.name", onupdate="CASCADE"), index=True
    )
    schedule_type: Mapped[str] = mapped_column(String(10), server_default="any")
    schedule: Mapped[str] = mapped_column(String(100), server_default="1 day")
    import_type: Mapped[str] = mapped_column(String(50), server_default="insert")
    map: Mapped[str | None] = mapped_column(Text)
    last_execution: Mapped[datetime | None] = mapped_column(Timestamp)
    sequence: Mapped[int] = mapped_column(Integer, server_default="0")
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    notify_email: Mapped[str | None] = mapped_column(String(255))
    notify: Mapped[str | None] = mapped_column(String(20))  # start,end / end / problems
    expect: Mapped[str | None] = mapped_column(String(50))  # "daily by 06:00", "every 2 hours"
    last_status: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    fail_count: Mapped[int] = mapped_column(Integer, server_default="0")
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column(Timestamp)
    last_attempt: Mapped[datetime | None] = mapped_column(Timestamp)
    run_count: Mapped[int] = mapped_column(Integer, server_default="0")
    max_errors: Mapped[str | None] = mapped_column(String(20))  # "5%" or "100"; NULL: default
    max_remove: Mapped[str | None] = mapped_column(String(20))  # "10%" or "500"; NULL: default
    allow_empty: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)  # set on edits


class TaskRun(Base):
    """One execution of a task: who ran it, when, how it ended and what it changed."""

    __tablename__ = "core_task_run"
    __table_args__ = MYSQL_TABLE_ARGS

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(
        String(NAME_LENGTH),
        ForeignKey("core_task.name", onupdate="CASCADE", ondelete="CASCADE"),
        index=True,
    )
    triggered_by: Mapped[str] = mapped_column(String(10))  # cron, url or manual
    runner: Mapped[str] = mapped_column(String(100))
    started: Mapped[datetime] = mapped_column(Timestamp)
    finished: Mapped[datetime | None] = mapped_column(Timestamp)
    status: Mapped[str] = mapped_column(String(20))
    rows_read: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_inserted: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_updated: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_unchanged: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_removed: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_failed: Mapped[int] = mapped_column(Integer, server_default="0")
    files: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    reject_file: Mapped[str | None] = mapped_column(String(1000))
    notes: Mapped[str | None] = mapped_column(Text)  # JSON list: what was done to the files


class TaskRunError(Base):
    """One rejected row of a run: where it was, its key, and why."""

    __tablename__ = "core_task_run_error"
    __table_args__ = MYSQL_TABLE_ARGS

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("core_task_run.id", ondelete="CASCADE"), index=True
    )
    row_index: Mapped[int | None] = mapped_column(Integer)
    key_values: Mapped[str | None] = mapped_column(Text)
    column_name: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text)


class TaskFile(Base):
    """A file a task imported: its name, size and SHA-256, so the same content is not imported
    twice (under the same or another name) unless a person asks with --reimport; and, when the
    destination computed it, the fingerprint of the rows it maps to, so that a pre-check of the
    same content again computes only the database's side."""

    __tablename__ = "core_task_file"
    __table_args__ = (Index("ix_core_task_file_task_sha256", "task", "sha256"),
                      MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(
        String(NAME_LENGTH),
        ForeignKey("core_task.name", onupdate="CASCADE", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    location: Mapped[str] = mapped_column(String(1000))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # "<mapping key> <rows> <hash sum>": the file side of a pre-check (connectors/fingerprint.py)
    fingerprint: Mapped[str | None] = mapped_column(String(100))


class ConsoleUser(Base):
    """A person who may sign in to the web console: admin (changes things) or viewer (reads)."""

    __tablename__ = "core_console_user"
    __table_args__ = MYSQL_TABLE_ARGS

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    role: Mapped[str] = mapped_column(String(10))  # admin or viewer
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, never the password
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class ConsoleSecret(Base):
    """A secret the web side generates once and keeps (the session-signing key): in the
    database, so every worker and host serving the console signs alike."""

    __tablename__ = "core_console_secret"
    __table_args__ = MYSQL_TABLE_ARGS

    name: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))


__all__ = [
    "Base",
    "ConsoleSecret",
    "ConsoleUser",
    "Connection",
    "Connector",
    "Task",
    "TaskRun",
    "TaskFile",
    "TaskRunError",
    "metadata",
]
