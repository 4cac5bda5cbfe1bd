"""Names of tasks and connections: any text a person may type, within Docebo's 50 characters."""

from __future__ import annotations

import unicodedata

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
