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
    """What ``create`` made: the tables, in creation order, and the seed groups."""

    tables: list[str]
    groups: dict[str, int]


def present(conn: sa.Connection, prefix: str = "") -> list[str]:
    """The forma tables ``lms init`` would create that the database already has."""
    existing = set(sa.inspect(conn).get_table_names())
    return [name for name in forma.declared(prefix).tables if name in existing]


def create(conn: sa.Connection, prefix: str = "") -> Created:
    """Create the forma tables with forma's column types and defaults, and its seed groups, in
    the caller's transaction. A database that holds any of them is refused first: forma's own
    tables are never altered."""
    found = present(conn, prefix)
    if found:
        raise IotaskError(
            f"{db.masked(conn.engine.url)} already holds forma tables ({', '.join(found[:5])}"
            f"{', ...' if len(found) > 5 else ''}): lms init never alters an existing forma "
            "table, and the forma-* connectors can use them as they are")
    metadata = forma.declared(prefix)
    metadata.create_all(conn)
    site = forma.Site(conn, prefix)
    groups = site.ensure_groups(list(forma.SEED_GROUPS), hidden=True)
    members = site.table("core_group_members")
    # the root unit's own group is a member of the group of it and its descendants
    conn.execute(sa.insert(members).values(
        idst=groups[forma.ROOT_OCD], idstMember=groups[forma.ROOT_OC], filter=""))
    return Created(list(metadata.tables), groups)


def init(url: str, prefix: str = "") -> Created:
    """``create`` in the database at ``url``, committed."""
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            return create(conn, prefix)
    except OperationalError as exc:
        raise db.connect_error(engine.url, exc) from None
    finally:
        engine.dispose()
