"""Files a task imported (name, size, SHA-256), so the same content is not imported twice.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "core_task_file",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task", sa.String(50), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("location", sa.String(1000), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("imported_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["task"], ["core_task.name"], onupdate="CASCADE",
                                ondelete="CASCADE", name="fk_core_task_file_task_core_task"),
        sa.PrimaryKeyConstraint("id", name="pk_core_task_file"),
        **MYSQL,
    )
    op.create_index("ix_core_task_file_task_sha256", "core_task_file", ["task", "sha256"])


def downgrade() -> None:
    op.drop_table("core_task_file")  # its index goes with it (MariaDB's FK needs it till then)
