"""Time: stored as naive UTC, shown and entered in the configured time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from iotask.errors import IotaskError

# SQLite keeps timestamps as text. Store them to the second, as a DBA would type them, and read
# back what a DBA may type by hand: '2026-11-20 01:30', '2026-11-20T01:30:00', '2026-11-20'.
# The models' SQLite column type and run-due's quick look (``iotask.nothing_due``) share these.
SQLITE_STORAGE = "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d"
SQLITE_PATTERN = (r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})"
                  r"(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.\d+)?)?)?\s*$")


def utcnow() -> datetime:
    """The current time as naive UTC to the second, the form every timestamp column stores."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def to_local(value: datetime, tz: ZoneInfo) -> datetime:
    """``value`` (naive UTC) in ``tz``; in UTC when ``tz`` would take it past the year 9999."""
    try:
        return value.replace(tzinfo=UTC).astimezone(tz)
    except OverflowError:
        return value.replace(tzinfo=UTC)


def show(value: datetime | None, tz: ZoneInfo) -> str:
    """``2026-11-22 03:30 CET`` — what a person reads; empty for None."""
    if value is None:
        return ""
    return to_local(value, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def iso(value: datetime | None, tz: ZoneInfo) -> str | None:
    """ISO 8601 with the zone offset, for --json."""
    return None if value is None else to_local(value, tz).isoformat()


def parse_local(text: str, tz: ZoneInfo) -> datetime:
    """``YYYY-MM-DD HH:MM[:SS]`` in the configured zone → naive UTC."""
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            local = datetime.strptime(text.strip(), fmt)
            break
        except ValueError:
            continue
    else:
        raise IotaskError(
            f"cannot read time {text!r}: expected YYYY-MM-DD HH:MM, e.g. 2026-11-21 02:30"
        )
    try:
        return local.replace(tzinfo=tz).astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        raise IotaskError(f"time {text!r} in {tz.key} is after the year 9999 in UTC: to park a "
                          "task, use 9999-12-30") from None
