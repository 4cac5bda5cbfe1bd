"""``iotask lms init``: the forma.lms tables the forma-* connectors use, in a database that has
none, so that a site without forma (the demo, the tests) has a working LMS database."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from iotask import db
from iotask.connectors import forma
from iotask.errors import IotaskError


@dataclass
class Created:
    """What ``init`` made: the tables, in creation order, and the seed groups."""

    tables: list[str]
    groups: dict[str, int]


def init(url: str, prefix: str = "") -> Created:
    """Create the forma tables with forma's column types and defaults, and its seed groups.

    It never alters an existing forma table: a database that holds any of them is refused
    before anything is created.
    """
    metadata = forma.declared(prefix)
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            existing = set(sa.inspect(conn).get_table_names())
        present = [name for name in metadata.tables if name in existing]
        if present:
            raise IotaskError(
                f"{db.masked(url)} already holds forma tables ({', '.join(present[:5])}"
                f"{', ...' if len(present) > 5 else ''}): lms init never alters an existing "
                "forma table, and the forma-* connectors can use them as they are")
        with engine.begin() as conn:
            metadata.create_all(conn)
            site = forma.Site(conn, prefix, url)
            groups = site.ensure_groups(list(forma.SEED_GROUPS))
            members = site.table("core_group_members")
            # the root unit's own group is a member of the group of it and its descendants
            conn.execute(sa.insert(members).values(
                idst=groups[forma.ROOT_OCD], idstMember=groups[forma.ROOT_OC], filter=""))
        return Created(list(metadata.tables), groups)
    except OperationalError as exc:
        raise db.connect_error(engine.url, exc) from None
    finally:
        engine.dispose()
