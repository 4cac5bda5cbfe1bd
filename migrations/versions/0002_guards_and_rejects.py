"""Guards on a task's change set (max_errors, max_remove, allow_empty); a run's reject file.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("core_task") as batch:
        batch.add_column(sa.Column("max_errors", sa.String(20), nullable=True))
        batch.add_column(sa.Column("max_remove", sa.String(20), nullable=True))
        batch.add_column(sa.Column("allow_empty", sa.Boolean(), server_default=sa.false(),
                                   nullable=False))
    with op.batch_alter_table("core_task_run") as batch:
        batch.add_column(sa.Column("reject_file", sa.String(1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("core_task_run") as batch:
        batch.drop_column("reject_file")
    with op.batch_alter_table("core_task") as batch:
        batch.drop_column("allow_empty")
        batch.drop_column("max_remove")
        batch.drop_column("max_errors")
