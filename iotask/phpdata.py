"""A strict reader of PHP ``serialize()`` output, for the maps and params Docebo 3.x/4.0.5 stored.

Never ``eval`` and never PHP's own ``unserialize``: only plain data is read (``N``, ``b``,
``i``, ``d``, ``s``, ``a``); objects, custom-serialized classes, enums and references are
refused, since a map or a connection's settings never hold them and ``unserialize`` of an object
is how PHP applications get exploited. ``s:`` lengths count bytes of the text as PHP wrote it:
the bytes are sliced first, then decoded (Docebo stores UTF-8). Size, nesting and element
counts are bounded, so a hostile row costs little to refuse.

An array whose keys are exactly 0, 1, ... n-1 in order is returned as a list; any other array
as a dict (integer and string keys kept apart, as PHP keeps them).
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_BYTES = 1024 * 1024  # a core_task.map or core_connection.params is a TEXT column: 64 KB
MAX_DEPTH = 32
MAX_ITEMS = 100_000

_INT = re.compile(rb"-?[0-9]{1,19}")
_FLOAT = re.compile(rb"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|-?INF|NAN")
_COUNT = re.compile(rb"[0-9]{1,10}")
_BOOL = re.compile(rb"[01]")
_REFUSED = {ord("O"): "a PHP object", ord("C"): "a custom-serialized PHP object",
            ord("E"): "a PHP enum", ord("r"): "a PHP reference", ord("R"): "a PHP reference"}


class PhpDataError(ValueError):
    """Text that is not plain PHP-serialized data; the message says what and at which byte."""


def loads(data: bytes | str, encoding: str = "utf-8", max_depth: int = MAX_DEPTH) -> Any:
    """The value ``data`` serializes. ``str`` input is encoded with ``encoding`` first, so
    ``s:`` lengths are counted in the bytes PHP counted."""
    raw = data.encode(encoding) if isinstance(data, str) else bytes(data)
    if len(raw) > MAX_BYTES:
        raise PhpDataError(f"serialized data is {len(raw):,} bytes: at most {MAX_BYTES:,} are "
                           "read")
    reader = _Reader(raw, encoding, max_depth)
    value = reader.value(0)
    if reader.pos != len(raw):
        raise PhpDataError(f"unexpected data after the value at byte {reader.pos}")
    return value


class _Reader:
    def __init__(self, data: bytes, encoding: str, max_depth: int) -> None:
        self.data, self.encoding, self.max_depth = data, encoding, max_depth
        self.pos = 0
        self.items = 0

    def _fail(self, what: str) -> PhpDataError:
        return PhpDataError(f"{what} at byte {self.pos}")

    def _expect(self, token: bytes) -> None:
        if not self.data.startswith(token, self.pos):
            got = self.data[self.pos:self.pos + 1]
            raise self._fail(f"expected {token.decode()!r}, found "
                             f"{got.decode('latin-1')!r}" if got else
                             f"expected {token.decode()!r}, found the end of the data")
        self.pos += len(token)

    def _match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        found = pattern.match(self.data, self.pos)
        if found is None:
            raise self._fail(f"expected {what}")
        self.pos = found.end()
        return found.group(0)

    def value(self, depth: int) -> Any:
        if self.pos >= len(self.data):
            raise self._fail("expected a value, found the end of the data")
        kind = self.data[self.pos]
        if kind in _REFUSED:
            raise self._fail(f"{_REFUSED[kind]} is not plain data and is refused")
        if kind == ord("N"):
            self._expect(b"N;")
            return None
        if kind not in b"bidsa":
            raise self._fail(f"unknown type {chr(kind)!r} (expected N, b, i, d, s or a)")
        self._expect(bytes([kind]) + b":")
        if kind == ord("b"):
            flag = self._match(_BOOL, "0 or 1 after b:")
            self._expect(b";")
            return flag == b"1"
        if kind == ord("i"):
            number = int(self._match(_INT, "a whole number after i:"))
            self._expect(b";")
            return number
        if kind == ord("d"):
            return self._float()
        if kind == ord("s"):
            return self._string()
        return self._array(depth + 1)

    def _float(self) -> float:
        text = self._match(_FLOAT, "a number after d:")
        self._expect(b";")
        value = float(text.replace(b"INF", b"inf").replace(b"NAN", b"nan"))
        if math.isinf(value) and b"INF" not in text:
            self.pos -= len(text) + 1
            raise self._fail(f"number {text.decode()} is out of range")
        return value

    def _string(self) -> str:
        length = int(self._match(_COUNT, "a byte length after s:"))
        self._expect(b':"')
        end = self.pos + length
        if end > len(self.data):
            raise self._fail(f"string declares {length:,} bytes but only "
                             f"{max(len(self.data) - self.pos, 0):,} follow")
        start, self.pos = self.pos, end
        self._expect(b'";')  # first: a wrong length is the likelier mistake than a bad byte
        try:
            return self.data[start:end].decode(self.encoding)
        except UnicodeDecodeError as exc:
            self.pos = start + exc.start
            raise self._fail(f"string is not valid {self.encoding}") from None

    def _array(self, depth: int) -> list[Any] | dict[int | str, Any]:
        if depth > self.max_depth:
            raise self._fail(f"arrays nested more than {self.max_depth} deep")
        count = int(self._match(_COUNT, "an element count after a:"))
        self.items += count
        if self.items > MAX_ITEMS:
            raise self._fail(f"more than {MAX_ITEMS:,} array elements")
        self._expect(b":{")
        result: dict[int | str, Any] = {}
        for index in range(count):
            at = self.pos
            if self.data.startswith(b"}", at):
                raise self._fail(f"array declares {count} elements but holds {index}")
            key = self.value(depth)
            if isinstance(key, bool) or not isinstance(key, int | str):
                self.pos = at
                raise self._fail("an array key must be i: or s:")
            if key in result:
                self.pos = at
                raise self._fail(f"array key {key!r} appears twice")
            result[key] = self.value(depth)
        self._expect(b"}")
        if list(result) == list(range(len(result))):
            return list(result.values())
        return result
