"""Core tables: connectors, connections, tasks, runs and run errors; built-in connectors.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
BUILT_IN_CONNECTORS = [
    {"type": "csv", "file": "connectors.csv", "class": "CsvConnector"},
    {"type": "sql", "file": "connectors.sql", "class": "SqlConnector"},
]


def upgrade() -> None:
    connector = op.create_table(
        "core_connector",
        sa.Column("type", sa.String(25), nullable=False),
        sa.Column("file", sa.String(255), nullable=False),
        sa.Column("class", sa.String(50), nullable=False),
        sa.PrimaryKeyConstraint("type", name="pk_core_connector"),
        **MYSQL,
    )
    op.create_table(
        "core_connection",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("description", sa.String(255), server_default="", nullable=False),
        sa.Column("type", sa.String(25), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["type"], ["core_connector.type"], onupdate="CASCADE",
                                name="fk_core_connection_type"),
        sa.PrimaryKeyConstraint("name", name="pk_core_connection"),
        **MYSQL,
    )
    op.create_table(
        "core_task",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("description", sa.String(255), server_default="", nullable=False),
        sa.Column("conn_source", sa.String(50), nullable=False),
        sa.Column("conn_destination", sa.String(50), nullable=False),
        sa.Column("schedule_type", sa.String(10), server_default="any", nullable=False),
        sa.Column("schedule", sa.String(100), server_default="1 day", nullable=False),
        sa.Column("import_type", sa.String(50), server_default="insert", nullable=False),
        sa.Column("map", sa.Text(), nullable=True),
        sa.Column("last_execution", sa.DateTime(), nullable=True),
        sa.Column("sequence", sa.Integer(), server_default="0", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("notify_email", sa.String(255), nullable=True),
        sa.Column("last_status", sa.String(20), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("fail_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_by", sa.String(100), nullable=True),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("last_attempt", sa.DateTime(), nullable=True),
        sa.Column("run_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["conn_source"], ["core_connection.name"], onupdate="CASCADE",
                                name="fk_core_task_conn_source"),
        sa.ForeignKeyConstraint(["conn_destination"], ["core_connection.name"],
                                onupdate="CASCADE", name="fk_core_task_conn_destination"),
        sa.PrimaryKeyConstraint("name", name="pk_core_task"),
        **MYSQL,
    )
    op.create_index("ix_core_task_conn_source", "core_task", ["conn_source"])
    op.create_index("ix_core_task_conn_destination", "core_task", ["conn_destination"])
    op.create_table(
        "core_task_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task", sa.String(50), nullable=False),
        sa.Column("triggered_by", sa.String(10), nullable=False),
        sa.Column("runner", sa.String(100), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("finished", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows_read", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rows_inserted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rows_updated", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rows_unchanged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rows_removed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rows_failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("files", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["task"], ["core_task.name"], onupdate="CASCADE",
                                ondelete="CASCADE", name="fk_core_task_run_task"),
        sa.PrimaryKeyConstraint("id", name="pk_core_task_run"),
        **MYSQL,
    )
    op.create_index("ix_core_task_run_task", "core_task_run", ["task"])
    op.create_table(
        "core_task_run_error",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("row_index", sa.Integer(), nullable=True),
        sa.Column("key_values", sa.Text(), nullable=True),
        sa.Column("column_name", sa.String(100), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["core_task_run.id"], ondelete="CASCADE",
                                name="fk_core_task_run_error_run_id"),
        sa.PrimaryKeyConstraint("id", name="pk_core_task_run_error"),
        **MYSQL,
    )
    op.create_index("ix_core_task_run_error_run_id", "core_task_run_error", ["run_id"])
    op.bulk_insert(connector, BUILT_IN_CONNECTORS)


def downgrade() -> None:
    op.drop_table("core_task_run_error")
    op.drop_table("core_task_run")
    op.drop_table("core_task")
    op.drop_table("core_connection")
    op.drop_table("core_connector")
