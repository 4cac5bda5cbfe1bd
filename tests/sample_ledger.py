"""A destination for runner tests: every row written, with its task and run, in one transaction.

The table lives in the iotask database, so the lease check runs on the same connection and
commits with the rows, as a real destination in that database does.
"""

from __future__ import annotations

import sqlalchemy as sa
from iotask.connectors.base import Connector

from iotask.db import make_engine

metadata = sa.MetaData()
ledger = sa.Table(
    "test_ledger", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task", sa.String(50), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
)


class SampleLedger(Connector):
    type_name = "test-ledger"
    description = "records every row for tests"
    can_write = True

    def write(self, batches, context):
        engine = make_engine(context.database_url)
        try:
            metadata.create_all(engine, checkfirst=True)
        except sa.exc.DBAPIError:
            pass  # another runner created it at the same moment
        try:
            with engine.begin() as conn:
                for batch in batches:
                    conn.execute(ledger.insert(), [
                        {"task": context.task, "run_id": context.run_id, "seq": row["seq"]}
                        for row in batch])
                    context.counts.inserted += len(batch)
                context.check_lease(conn)
        finally:
            engine.dispose()


CONNECTOR = SampleLedger
