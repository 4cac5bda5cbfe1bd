"""A tiny PHP ``serialize()`` writer for tests: Docebo 3.6's stored form of known Python values.

It follows PHP's rules (written from PHP's documented output, not from iotask.phpdata): s:
lengths in UTF-8 bytes, a list as an array keyed 0..n-1, ``urlencode`` with '+' for spaces.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus


def serialize(value: Any) -> str:
    if value is None:
        return "N;"
    if isinstance(value, bool):
        return f"b:{int(value)};"
    if isinstance(value, int):
        return f"i:{value};"
    if isinstance(value, float):
        if value in (float("inf"), float("-inf")):
            return "d:INF;" if value > 0 else "d:-INF;"
        return f"d:{repr(value).upper()};"
    if isinstance(value, str):
        return f's:{len(value.encode("utf-8"))}:"{value}";'
    if isinstance(value, list):
        value = dict(enumerate(value))
    if isinstance(value, dict):
        body = "".join(serialize(key) + serialize(item) for key, item in value.items())
        return f"a:{len(value)}:{{{body}}}"
    raise TypeError(f"cannot serialize {type(value).__name__}")


def urlencode(text: str) -> str:
    """PHP's urlencode(): everything but letters, digits and -_. encoded, spaces as '+'."""
    return quote_plus(text, safe="-_.")


def stored(value: Any) -> str:
    """What Docebo 3.6 keeps in core_task.map and core_connection.params."""
    return urlencode(serialize(value))
