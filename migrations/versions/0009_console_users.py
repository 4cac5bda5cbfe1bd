"""The web console: core_console_user (admin or viewer, an argon2 hash) and
core_console_secret (the session-signing key, generated once by the web side).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "core_console_user",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_core_console_user"),
        **MYSQL,
    )
    op.create_table(
        "core_console_secret",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_core_console_secret"),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("core_console_secret")
    op.drop_table("core_console_user")
