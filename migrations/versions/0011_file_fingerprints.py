"""Remembered file fingerprints: core_task_file.fingerprint, the count and sum of row hashes of
the rows a file's content maps to (and a key of how they were mapped), so that the pre-check of
the same content again needs only the database's side.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("core_task_file", sa.Column("fingerprint", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("core_task_file") as batch:
        batch.drop_column("fingerprint")
