"""When a task is due: Docebo's three schedule types, evaluated in a configured time zone.

Pure functions of their arguments: no clock, no database. Three of them are memoised, being pure
functions of a few distinct values that run-due asks about once per task: reading a schedule's
text and turning a local wall-clock time into UTC (10 000 tasks judged in a quarter of the
time). Timestamps in and out
are naive UTC, as the database stores them; schedules are read as wall-clock times in ``tz``.
A task that never ran (``last_execution`` None) is due at once, and a task that missed several
slots runs once, because the next slot is always computed from ``last_execution`` alone.

The types, and where they differ from Docebo:

* ``at`` "HH:MM": due at the first local HH:MM strictly after ``last_execution``. Docebo used
  "the calendar day after ``last_execution``, at HH:MM", which silently skips a day after an
  early manual run (a 01:00 run before a 02:30 slot moved the next run to tomorrow); here the
  02:30 slot that day still runs. Docebo's stored ``"HH:MM <unit>"`` is accepted, unit ignored.
* ``any`` "N hour": the start of the local hour of ``last_execution``, plus N elapsed hours.
  "N day": local midnight of the date of ``last_execution``, plus N calendar days (Docebo's
  rule). Both are anchored to boundaries, so a schedule never drifts by the runs' durations.
* ``cron``: five fields or an alias such as ``@daily``; the next firing strictly after
  ``last_execution``. Evaluated with cronsim, which follows Debian cron (below). croniter
  (7.0) is not used: it fires a ``30 2 * * *`` job twice when 02:30 happens twice.

Daylight saving time, every type exactly once:

* A wall-clock time skipped by spring-forward (02:30 in Europe/Rome on 2026-03-29) means the
  first instant after the gap (03:00), so that day's run is late, not lost. Likewise a local
  midnight that does not exist (America/Sao_Paulo, 2018-11-04) means 01:00.
* A wall-clock time repeated by fall-back means its first occurrence only: slots are computed
  per calendar day and must be strictly after ``last_execution``, so after the run at the first
  02:30 the second 02:30 is not a slot, and a run in the repeated hour moves on to tomorrow.
* "N hour" counts elapsed hours, so an hourly task runs 23 times on a spring-forward day and 25
  times on a fall-back day, never twice in one real hour and never skipping one.
* cron does what Debian cron does: a job whose minute and hour fields do not start with ``*``
  behaves as ``at`` above; one with ``*`` there (``@hourly``, ``*/15 * * * *``) runs by elapsed
  time, in both passes of a repeated hour. cronsim's fixed-time path works on wall-clock time
  and may answer with an instant before a start inside the repeated hour; such answers are
  skipped, which is what keeps "strictly after" true.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Protocol
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from iotask.errors import ScheduleError

_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_MINUTE = timedelta(minutes=1)

_AT = re.compile(r"([0-9]{1,2}):([0-9]{2})(?:\s+(?:hour|day)s?)?", re.IGNORECASE)
_ANY = re.compile(r"([0-9]+)\s*(hour|day)s?", re.IGNORECASE)
_MAX_EVERY = 9999  # keeps "N day" arithmetic inside datetime's range
_MAX_TEXT = 100  # the width of core_task.schedule

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_FIELDS = "minute hour day-of-month month day-of-week"

# A fixed instant to validate, explain and measure cron expressions from, so no result depends
# on the clock.
_REFERENCE = datetime(2024, 1, 1)
_PERIOD_FIRINGS = 500
_PERIOD_SPAN = timedelta(days=366)

_RETRY_FIRST = timedelta(minutes=5)
_RETRY_CAP = timedelta(hours=6)
# 5 minutes doubled 7 times is past the cap; bounding the exponent keeps a huge fail_count
# from overflowing timedelta.
_RETRY_MAX_DOUBLINGS = 7


@dataclass(frozen=True)
class Schedule:
    """A validated schedule; ``text`` is the normalised form stored in core_task.schedule."""

    type: str
    text: str


@lru_cache(maxsize=1024)
def parse(schedule_type: str, schedule: str) -> Schedule:
    """Validate a schedule as typed by a user or stored by Docebo, and normalise it."""
    kind = schedule_type.strip().lower()
    if kind == "at":
        return Schedule("at", f"{_parse_at(schedule):%H:%M}")
    if kind == "any":
        every, unit = _parse_any(schedule)
        return Schedule("any", f"{every} {unit}")
    if kind == "cron":
        return Schedule("cron", _parse_cron(schedule))
    raise ScheduleError(
        f'bad schedule type "{schedule_type}": expected "at", "any" or "cron", '
        'e.g. "at" with "02:30"'
    )


FREQUENCIES = ("hourly", "daily", "weekly")
FREQUENCY_TIME = "02:00"  # daily and weekly tasks run at night unless --at says when


def from_frequency(word: str, at: str | None = None) -> Schedule:
    """PeopleFluent's frequencies as schedules: hourly is every hour (``any`` "1 hour"), daily
    is every day at 02:00 (``at``), weekly is Mondays at 02:00 (``cron`` "0 2 * * 1"); ``at``
    (HH:MM) moves the daily or weekly time."""
    kind = word.strip().lower()
    if kind not in FREQUENCIES:
        raise ScheduleError(f"frequency {word!r} is not one of {', '.join(FREQUENCIES)}")
    if kind == "hourly":
        if at is not None:
            raise ScheduleError("an hourly frequency runs at the start of every hour: give "
                                "--frequency hourly without --at")
        return parse("any", "1 hour")
    when = _parse_at(at if at is not None else FREQUENCY_TIME)
    if kind == "daily":
        return parse("at", f"{when:%H:%M}")
    return parse("cron", f"{when.minute} {when.hour} * * 1")


def next_due(schedule: Schedule, last_execution: datetime | None, tz: ZoneInfo) -> datetime | None:
    """The naive UTC instant the task is next due, or None when it never ran (due now)."""
    schedule = parse(schedule.type, schedule.text)
    if last_execution is None:
        return None
    last = _naive_utc(last_execution, "last_execution")
    try:
        if schedule.type == "at":
            return _next_at(time.fromisoformat(schedule.text), last, tz)
        if schedule.type == "any":
            every, unit = _parse_any(schedule.text)
            return _next_any(every, unit, last, tz)
        return _next_cron(_cron_expression(schedule.text), last, tz)
    except (OverflowError, ValueError) as exc:  # the next slot is past the year 9999
        if isinstance(exc, ScheduleError):
            raise
        return NEVER


@dataclass(frozen=True)
class Expect:
    """When a feed's input must have come: each local day by ``by``, or within ``hours`` of the
    last input."""

    text: str
    by: time | None = None
    hours: int | None = None


_EXPECT = re.compile(r"^\s*(?:daily\s+by\s+(\d{1,2}:\d{2})|every\s+(\d{1,3})\s+hours?)\s*$",
                     re.IGNORECASE)


def parse_expect(text: str) -> Expect:
    """``daily by 06:00`` or ``every 2 hours``; ScheduleError for anything else."""
    found = _EXPECT.match(text or "")
    if found is None:
        raise ScheduleError(f"expect {text!r}: write 'daily by HH:MM' (e.g. daily by 06:00) or "
                            "'every N hours' (e.g. every 2 hours)")
    if found.group(1):
        return Expect(f"daily by {_parse_at(found.group(1)).strftime('%H:%M')}",
                      by=_parse_at(found.group(1)))
    hours = int(found.group(2))
    if not 1 <= hours <= 168:
        raise ScheduleError(f"expect {text!r}: every 1 to 168 hours")
    return Expect(f"every {hours} hour{'s' if hours > 1 else ''}", hours=hours)


def expect_window(expect: Expect, last_input: datetime | None, now: datetime,
                  tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """(the window's start, its deadline), naive UTC, for the window ``now`` is in; None when
    no deadline applies yet (an interval feed that never had input)."""
    if expect.by is not None:
        day = _to_local(now, tz).date()
        start = _wall_clock(datetime.combine(day, time()), tz)
        return start, _wall_clock(datetime.combine(day, expect.by), tz)
    if last_input is None or expect.hours is None:
        return None
    return last_input, last_input + expect.hours * _HOUR


NEVER = datetime.max
"""The next due time of a parked task: one whose last_execution a DBA set so far ahead (year
9999) that no later slot exists. Never due until last_execution is reset."""


def is_due(
    schedule: Schedule, last_execution: datetime | None, now: datetime, tz: ZoneInfo
) -> bool:
    """Whether the task should run at ``now`` (naive UTC)."""
    now = _naive_utc(now, "now")
    due = next_due(schedule, last_execution, tz)
    return due is None or now >= due


def in_words(schedule: Schedule) -> str:
    """The schedule in a few words, for listings and logs."""
    schedule = parse(schedule.type, schedule.text)
    if schedule.type == "at":
        return f"every day at {schedule.text}"
    if schedule.type == "any":
        every, unit = _parse_any(schedule.text)
        words = unit if every == 1 else f"{every} {unit}s"
        return f"every {words}" + (" at midnight" if unit == "day" else "")
    explained = CronSim(_cron_expression(schedule.text), _REFERENCE).explain()
    return f"cron: {schedule.text} ({explained[:1].lower()}{explained[1:]})"


def period(schedule: Schedule, tz: ZoneInfo) -> timedelta:
    """The nominal time between runs, to bound things such as the retry backoff.

    For cron it is the smallest real gap between consecutive firings over about a year or 500
    firings, whichever ends first, so a DST day can shorten it (``@daily`` in New York: 23 h).
    """
    schedule = parse(schedule.type, schedule.text)
    if schedule.type == "at":
        return _DAY
    if schedule.type == "any":
        every, unit = _parse_any(schedule.text)
        return every * (_HOUR if unit == "hour" else _DAY)
    expression = _cron_expression(schedule.text)
    firings = [_next_cron(expression, _REFERENCE, tz)]
    while len(firings) <= _PERIOD_FIRINGS and firings[-1] - firings[0] <= _PERIOD_SPAN:
        firings.append(_next_cron(expression, firings[-1], tz))
    return min(later - earlier for earlier, later in pairwise(firings))


def retry_delay(fail_count: int, schedule: Schedule, tz: ZoneInfo) -> timedelta:
    """How long to wait after ``fail_count`` consecutive failures before trying again.

    5 minutes doubling per failure, never more than 6 hours nor than the schedule's period, so a
    failing task is retried at least as often as it would run anyway.
    """
    if fail_count <= 0:
        return timedelta(0)
    delay = _RETRY_FIRST * 2 ** min(fail_count - 1, _RETRY_MAX_DOUBLINGS)
    return min(delay, _RETRY_CAP, period(schedule, tz))


class Scheduled(Protocol):
    """What due-ness is computed from: a Task, or a row of its scheduling columns."""

    @property
    def schedule_type(self) -> str: ...
    @property
    def schedule(self) -> str: ...
    @property
    def last_execution(self) -> datetime | None: ...
    @property
    def fail_count(self) -> int: ...
    @property
    def last_attempt(self) -> datetime | None: ...


def due_at(task: Scheduled, tz: ZoneInfo) -> datetime | None:
    """When the task is next due (naive UTC); None means now. Derived afresh on every call.

    A failed or held task waits for its retry delay after the last attempt, on top of its
    schedule, so a broken feed is not hammered every minute.
    """
    parsed = parse(task.schedule_type, task.schedule)
    due = next_due(parsed, task.last_execution, tz)
    if task.fail_count > 0 and task.last_attempt is not None:
        retry = task.last_attempt + retry_delay(task.fail_count, parsed, tz)
        due = retry if due is None else max(due, retry)
    return due


def _error(kind: str, text: str, reason: str, example: str) -> ScheduleError:
    return ScheduleError(f'bad "{kind}" schedule "{text}": {reason}, e.g. "{example}"')


def _parse_at(text: str) -> time:
    match = _AT.fullmatch(text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise _error("at", text, "expected HH:MM", "02:30")
    return time(int(match[1]), int(match[2]))


@lru_cache(maxsize=1024)
def _parse_any(text: str) -> tuple[int, str]:
    match = _ANY.fullmatch(text.strip())
    if not match:
        raise _error("any", text, 'expected "N hour" or "N day"', "6 hour")
    every = int(match[1])
    if not 1 <= every <= _MAX_EVERY:
        raise _error("any", text, f"N must be from 1 to {_MAX_EVERY}", "6 hour")
    return every, match[2].lower()


def _parse_cron(text: str) -> str:
    normalised = " ".join(text.split())
    if normalised.startswith("@"):
        alias = normalised.lower()
        if alias == "@reboot":
            raise _error(
                "cron", text, "tasks run on the clock, not at start-up; give a time", "@daily"
            )
        if alias not in _ALIASES:
            raise _error("cron", text, f"the aliases are {', '.join(_ALIASES)}", "@daily")
        return alias
    fields = len(normalised.split())
    if fields != 5:
        reason = f"expected 5 fields ({_CRON_FIELDS}), got {fields}"
        if fields > 5:
            reason += "; seconds and years are not supported"
        raise _error("cron", text, reason, "0 2 * * *")
    if len(normalised) > _MAX_TEXT:
        raise _error("cron", text, f"longer than {_MAX_TEXT} characters", "0 2 * * *")
    try:
        CronSim(normalised, _REFERENCE)
    except CronSimError as exc:
        raise _error("cron", text, str(exc).lower(), "0 2 * * *") from exc
    return normalised


def _cron_expression(text: str) -> str:
    return _ALIASES.get(text, text)


def _naive_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is not None:
        raise ValueError(f"{name} must be a naive UTC datetime, got {value.isoformat()}")
    return value


def _to_local(utc: datetime, tz: ZoneInfo) -> datetime:
    return utc.replace(tzinfo=UTC).astimezone(tz)


def _to_utc(local: datetime) -> datetime:
    return local.astimezone(UTC).replace(tzinfo=None)


@lru_cache(maxsize=4096)
def _wall_clock(wall: datetime, tz: ZoneInfo) -> datetime:
    """The naive UTC instant a local wall-clock time names, as described in the module doc.

    A repeated time gives its first occurrence (fold 0); a skipped one moves a minute at a time
    to the first that exists, which is the end of the gap since transitions fall on whole minutes.
    """
    while _to_local(_to_utc(wall.replace(tzinfo=tz)), tz).replace(tzinfo=None) != wall:
        wall += _MINUTE
    return _to_utc(wall.replace(tzinfo=tz))


def _next_at(at: time, last: datetime, tz: ZoneInfo) -> datetime:
    day = _to_local(last, tz).date()
    today = _wall_clock(datetime.combine(day, at), tz)
    return today if today > last else _wall_clock(datetime.combine(day + _DAY, at), tz)


def _next_any(every: int, unit: str, last: datetime, tz: ZoneInfo) -> datetime:
    local = _to_local(last, tz)
    if unit == "hour":
        # Subtracting the local minutes in real time floors to the local hour in any offset
        # (Asia/Kolkata's +05:30 too) and always lands within the real hour before ``last``.
        into_hour = timedelta(
            minutes=local.minute, seconds=local.second, microseconds=local.microsecond
        )
        return last - into_hour + every * _HOUR
    return _wall_clock(datetime.combine(local.date() + every * _DAY, time()), tz)


def _next_cron(expression: str, last: datetime, tz: ZoneInfo) -> datetime:
    firings = (_to_utc(firing) for firing in CronSim(expression, _to_local(last, tz)))
    return next(firing for firing in firings if firing > last)
