"""The schema revisions this iotask ships, known from the migrations' file names (``NNNN_what.py``
holds revision ``NNNN``; tests/test_migrations.py checks them against Alembic's own view).

Neither Alembic nor SQLAlchemy is imported: the migration check of every command, and run-due's
quick look at a database with nothing due (``iotask.nothing_due``), need only these numbers.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

VERSION_TABLE = "alembic_version"
MIGRATION_FILE = re.compile(r"^(\d{4})_\w+\.py$")


@cache
def known_revisions() -> tuple[str, ...]:
    """The revisions this iotask ships, oldest first: the numbers of the migration files."""
    versions = resources.files("iotask.migrations") / "versions"
    found = (MIGRATION_FILE.match(entry.name) for entry in versions.iterdir())
    return tuple(sorted(match.group(1) for match in found if match))


def head_revision() -> str:
    return known_revisions()[-1]
