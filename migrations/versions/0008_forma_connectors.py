"""The forma-* connectors are built in: core_connector rows for forma-users, forma-orgchart,
forma-courses and forma-enrollments (a site that registered one by hand keeps its row).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FORMA = (
    ("forma-users", "iotask.connectors.forma_users", "FormaUsersConnector"),
    ("forma-orgchart", "iotask.connectors.forma_orgchart", "FormaOrgChartConnector"),
    ("forma-courses", "iotask.connectors.forma_courses", "FormaCoursesConnector"),
    ("forma-enrollments", "iotask.connectors.forma_enrollments", "FormaEnrollmentsConnector"),
)

connector = sa.table("core_connector", sa.column("type", sa.String),
                     sa.column("file", sa.String), sa.column("class", sa.String))


def upgrade() -> None:
    bind = op.get_bind()
    present = set(bind.execute(sa.select(connector.c.type)).scalars())
    rows = [{"type": type_name, "file": module, "class": class_name}
            for type_name, module, class_name in FORMA if type_name not in present]
    if rows:
        op.bulk_insert(connector, rows)


def downgrade() -> None:
    op.execute(connector.delete().where(
        connector.c.type.in_([type_name for type_name, _m, _c in FORMA]),
        connector.c.file.in_([module for _t, module, _c in FORMA])))
