"""Names of tasks and connections: any text a person may type, within Docebo's 50 characters."""

from __future__ import annotations

import unicodedata
from typing import Any

from iotask.errors import IotaskError
from iotask.models import NAME_LENGTH


def check_name(name: str, what: str) -> str:
    """Accept quotes, semicolons, unicode...; refuse what cannot be typed or shown back."""
    if not name or not name.strip():
        raise IotaskError(f"{what} name must not be empty")
    if name != name.strip():
        raise IotaskError(f"{what} name {name!r} must not start or end with spaces")
    if len(name) > NAME_LENGTH:
        raise IotaskError(
            f"{what} name {name!r} is {len(name)} characters long: at most {NAME_LENGTH}"
        )
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in name):
        raise IotaskError(f"{what} name {name!r} contains control or invisible characters")
    return name


def check_lengths(row: Any, what: str) -> None:
    """Refuse, before the database does, a value longer than its column: MariaDB and
    PostgreSQL would refuse it at commit, SQLite would store it whole."""
    for column in row.__table__.columns:
        value = getattr(row, column.key, None)
        length = getattr(column.type, "length", None)
        if isinstance(value, str) and length is not None and len(value) > length:
            raise IotaskError(f"{what} {column.name} is {len(value)} characters long: at most "
                              f"{length}")


def file_safe(name: str) -> str:
    """A name as part of a file name: letters, digits, dot, dash and underscore only."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in name)
    return safe.strip(".") or "task"
