"""The built-in connectors live in the iotask namespace: core_connector.file names
iotask.connectors.csv instead of connectors.csv (which no longer installs as a top-level package).

Only the modules iotask shipped are rewritten; third-party rows keep the module they name.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUILT_IN = ("connectors.csv", "connectors.sql")

connector = sa.table("core_connector", sa.column("file", sa.String))


def _rename(old_prefix: str, new_prefix: str) -> None:
    for module in BUILT_IN:
        name = module.removeprefix("connectors.")
        op.execute(connector.update().where(connector.c.file == old_prefix + name)
                   .values(file=new_prefix + name))


def upgrade() -> None:
    _rename("connectors.", "iotask.connectors.")


def downgrade() -> None:
    _rename("iotask.connectors.", "connectors.")
