"""When a task's addresses are told about its runs: core_task.notify (start,end / end /
problems; NULL: start,end, PeopleFluent's behaviour).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("core_task", sa.Column("notify", sa.String(20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("core_task") as batch:
        batch.drop_column("notify")
