"""The XML, IMS Enterprise, forma-lms and forma-merges connectors are built in: core_connector
rows for xml, forma-merges, ims-enterprise and forma-lms (a site that registered one by hand
keeps its row).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUILT_IN = (
    ("xml", "iotask.connectors.xml", "XmlConnector"),
    ("forma-merges", "iotask.connectors.forma_merges", "FormaMergesConnector"),
    ("ims-enterprise", "iotask.connectors.ims_enterprise", "ImsEnterpriseConnector"),
    ("forma-lms", "iotask.connectors.forma_lms", "FormaLmsConnector"),
)

connector = sa.table("core_connector", sa.column("type", sa.String),
                     sa.column("file", sa.String), sa.column("class", sa.String))


def upgrade() -> None:
    bind = op.get_bind()
    present = set(bind.execute(sa.select(connector.c.type)).scalars())
    rows = [{"type": type_name, "file": module, "class": class_name}
            for type_name, module, class_name in BUILT_IN if type_name not in present]
    if rows:
        op.bulk_insert(connector, rows)


def downgrade() -> None:
    op.execute(connector.delete().where(
        connector.c.type.in_([type_name for type_name, _m, _c in BUILT_IN]),
        connector.c.file.in_([module for _t, module, _c in BUILT_IN])))
