"""Expected feeds: core_task.expect ("daily by 06:00", "every 2 hours"); a run that found no
input past that deadline is recorded as missing_input, once per window.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("core_task", sa.Column("expect", sa.String(50), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("core_task") as batch:
        batch.drop_column("expect")
