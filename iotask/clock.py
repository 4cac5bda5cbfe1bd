"""Time: stored as naive UTC, shown and entered in the configured time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from iotask.errors import IotaskError


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
