"""Tests for iotask.schedule: parsing, next slot, DST exactly-once, descriptions and backoff."""

import re
from dataclasses import FrozenInstanceError
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from iotask.schedule import (
    Schedule,
    ScheduleError,
    in_words,
    is_due,
    next_due,
    parse,
    period,
    retry_delay,
)

ROME = ZoneInfo("Europe/Rome")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
SAO_PAULO = ZoneInfo("America/Sao_Paulo")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
UTC_ZONE = ZoneInfo("UTC")

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def case_id(value: object) -> str | None:
    """Readable test ids: a zone by its key, a day by its date."""
    if isinstance(value, ZoneInfo):
        return value.key
    if isinstance(value, date):
        return value.isoformat()
    return None


def at_utc(text: str) -> datetime:
    """A naive UTC datetime from "YYYY-MM-DD HH:MM[:SS]"."""
    return datetime.fromisoformat(text)


def wall_to_utc(text: str, tz: ZoneInfo) -> datetime:
    """Naive UTC for an unambiguous local wall-clock time "YYYY-MM-DD HH:MM[:SS]" in tz."""
    return datetime.fromisoformat(text).replace(tzinfo=tz).astimezone(UTC).replace(tzinfo=None)


# --- parse ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule_type", "text", "expected"),
    [
        ("at", "02:30", Schedule("at", "02:30")),
        ("at", "2:30", Schedule("at", "02:30")),
        ("at", "  02:30  ", Schedule("at", "02:30")),
        ("at", "00:00", Schedule("at", "00:00")),
        ("at", "23:59", Schedule("at", "23:59")),
        ("at", "02:30 hour", Schedule("at", "02:30")),
        ("at", "02:30 day", Schedule("at", "02:30")),
        ("at", "2:30 Days", Schedule("at", "02:30")),
        ("AT", "02:30", Schedule("at", "02:30")),
        ("any", "6 hour", Schedule("any", "6 hour")),
        ("any", "6 hours", Schedule("any", "6 hour")),
        ("any", "  6 HOURS ", Schedule("any", "6 hour")),
        ("any", "06 hour", Schedule("any", "6 hour")),
        ("any", "1 day", Schedule("any", "1 day")),
        ("any", "2 Days", Schedule("any", "2 day")),
        ("any", "9999 day", Schedule("any", "9999 day")),
        (" Any ", "1 day", Schedule("any", "1 day")),
        ("cron", "0 2 * * *", Schedule("cron", "0 2 * * *")),
        ("cron", "  0   2 *\t*  * ", Schedule("cron", "0 2 * * *")),
        ("cron", "*/15 * * * *", Schedule("cron", "*/15 * * * *")),
        ("cron", "0 9 * * mon-fri", Schedule("cron", "0 9 * * mon-fri")),
        ("cron", "0 0 29 2 *", Schedule("cron", "0 0 29 2 *")),
        ("cron", "@yearly", Schedule("cron", "@yearly")),
        ("cron", "@annually", Schedule("cron", "@annually")),
        ("cron", "@monthly", Schedule("cron", "@monthly")),
        ("cron", "@weekly", Schedule("cron", "@weekly")),
        ("cron", "@daily", Schedule("cron", "@daily")),
        ("cron", " @DAILY ", Schedule("cron", "@daily")),
        ("cron", "@midnight", Schedule("cron", "@midnight")),
        ("cron", "@hourly", Schedule("cron", "@hourly")),
    ],
)
def test_parse_normalises(schedule_type: str, text: str, expected: Schedule) -> None:
    assert parse(schedule_type, text) == expected


@pytest.mark.parametrize(
    ("schedule_type", "text", "says"),
    [
        ("at", "25:00", "expected HH:MM"),
        ("at", "24:00", "expected HH:MM"),
        ("at", "12:60", "expected HH:MM"),
        ("at", "", "expected HH:MM"),
        ("at", "   ", "expected HH:MM"),
        ("at", "garbage", "expected HH:MM"),
        ("at", "2:3", "expected HH:MM"),
        ("at", "02:30:00", "expected HH:MM"),
        ("at", "123:00", "expected HH:MM"),
        ("at", "02:30 week", "expected HH:MM"),
        ("at", "-1:30", "expected HH:MM"),
        ("any", "0 hour", "N must be from 1 to 9999"),
        ("any", "0 day", "N must be from 1 to 9999"),
        ("any", "10000 day", "N must be from 1 to 9999"),
        ("any", "-1 hour", 'expected "N hour" or "N day"'),
        ("any", "6 minutes", 'expected "N hour" or "N day"'),
        ("any", "1 week", 'expected "N hour" or "N day"'),
        ("any", "1.5 hour", 'expected "N hour" or "N day"'),
        ("any", "6", 'expected "N hour" or "N day"'),
        ("any", "hour", 'expected "N hour" or "N day"'),
        ("any", "", 'expected "N hour" or "N day"'),
        ("any", "02:30", 'expected "N hour" or "N day"'),
        ("cron", "@reboot", "not at start-up"),
        ("cron", "@fortnightly", "aliases are @yearly"),
        ("cron", "0 0 2 * * *", "got 6; seconds and years are not supported"),
        ("cron", "0 0 2 * * * 2026", "got 7; seconds and years are not supported"),
        ("cron", "* * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 3"),
        ("cron", "", "got 0"),
        ("cron", "61 * * * *", "bad minute"),
        ("cron", "0 24 * * *", "bad hour"),
        ("cron", "0 0 30 2 *", "bad day-of-month"),
        ("cron", "0 0 * 13 *", "bad month"),
        ("cron", "0 0 * * 8", "bad day-of-week"),
        ("cron", "a b c d e", "bad minute"),
        ("cron", "0 0 1-31/1," + ",".join(["1"] * 50) + " * *", "longer than 100 characters"),
        ("every", "1 day", 'expected "at", "any" or "cron"'),
        ("", "02:30", 'expected "at", "any" or "cron"'),
    ],
)
def test_parse_rejects_with_reason_and_example(schedule_type: str, text: str, says: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse(schedule_type, text)
    message = str(caught.value)
    assert says in message
    assert f'"{text}"' in message or f'"{schedule_type}"' in message
    assert 'e.g. "' in message


def test_error_message_is_exact_for_a_bad_time() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse("at", "25:00")
    assert str(caught.value) == 'bad "at" schedule "25:00": expected HH:MM, e.g. "02:30"'


@pytest.mark.parametrize(
    ("schedule_type", "text", "example"),
    [("at", "x", "02:30"), ("any", "x", "6 hour"), ("cron", "x", "0 2 * * *")],
)
def test_error_example_is_itself_valid(schedule_type: str, text: str, example: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(f'e.g. "{example}"')):
        parse(schedule_type, text)
    parse(schedule_type, example)


def test_schedule_error_is_a_value_error() -> None:
    assert issubclass(ScheduleError, ValueError)


def test_schedule_is_frozen() -> None:
    schedule = parse("at", "02:30")
    with pytest.raises(FrozenInstanceError):
        schedule.text = "03:00"  # type: ignore[misc]


# --- next_due -------------------------------------------------------------------------------

# (type, schedule, last_execution, expected next due), as unambiguous wall-clock times in Rome.
NEXT_DUE_IN_ROME = [
    ("at", "02:30", "2026-01-10 02:30", "2026-01-11 02:30"),
    ("at", "02:30", "2026-01-10 01:00", "2026-01-10 02:30"),  # early manual run: still today
    ("at", "02:30", "2026-01-10 02:29:59", "2026-01-10 02:30"),
    ("at", "02:30", "2026-01-10 02:30:01", "2026-01-11 02:30"),
    ("at", "02:30", "2026-01-10 23:00", "2026-01-11 02:30"),
    ("at", "02:30 day", "2026-01-10 01:00", "2026-01-10 02:30"),  # Docebo's stored form
    ("at", "00:00", "2026-01-10 00:00", "2026-01-11 00:00"),
    ("at", "23:59", "2026-12-31 23:59", "2027-01-01 23:59"),
    ("at", "23:59", "2028-02-28 23:59:30", "2028-02-29 23:59"),
    ("any", "6 hour", "2026-01-10 08:47", "2026-01-10 14:00"),  # anchored to the hour
    ("any", "6 hour", "2026-01-10 14:00", "2026-01-10 20:00"),
    ("any", "6 hour", "2026-01-10 20:05", "2026-01-11 02:00"),
    ("any", "1 hour", "2026-01-10 08:00", "2026-01-10 09:00"),
    ("any", "1 hour", "2026-01-10 08:59:59.999999", "2026-01-10 09:00"),
    ("any", "36 hour", "2026-01-10 08:47", "2026-01-11 20:00"),
    ("any", "1 day", "2026-01-10 15:00", "2026-01-11 00:00"),  # next local midnight
    ("any", "1 day", "2026-01-10 00:00", "2026-01-11 00:00"),
    ("any", "1 day", "2026-01-10 23:59:59", "2026-01-11 00:00"),
    ("any", "2 day", "2026-01-10 23:59", "2026-01-12 00:00"),
    ("any", "7 day", "2026-01-10 09:00", "2026-01-17 00:00"),
    ("any", "1 day", "2026-01-31 09:00", "2026-02-01 00:00"),  # month end
    ("any", "1 day", "2026-04-30 09:00", "2026-05-01 00:00"),
    ("any", "1 day", "2026-12-31 09:00", "2027-01-01 00:00"),  # year end
    ("any", "1 day", "2028-02-28 10:00", "2028-02-29 00:00"),  # leap day
    ("any", "1 day", "2027-02-28 10:00", "2027-03-01 00:00"),
    ("any", "30 day", "2026-01-31 09:00", "2026-03-02 00:00"),
    ("cron", "0 2 * * *", "2026-01-10 01:00", "2026-01-10 02:00"),
    ("cron", "0 2 * * *", "2026-01-10 02:00", "2026-01-11 02:00"),
    ("cron", "0 2 * * *", "2026-01-10 02:00:01", "2026-01-11 02:00"),
    ("cron", "*/15 * * * *", "2026-01-10 08:47", "2026-01-10 09:00"),
    ("cron", "*/15 * * * *", "2026-01-10 09:00", "2026-01-10 09:15"),
    ("cron", "0 9 * * mon-fri", "2026-01-09 09:00", "2026-01-12 09:00"),  # Friday -> Monday
    ("cron", "0 0 31 * *", "2026-01-31 00:00", "2026-03-31 00:00"),  # skips February
    ("cron", "0 0 31 * *", "2026-03-31 00:00", "2026-05-31 00:00"),  # skips April
    ("cron", "0 0 29 2 *", "2026-01-01 00:00", "2028-02-29 00:00"),
    ("cron", "0 0 29 2 *", "2028-02-29 00:00", "2032-02-29 00:00"),
    ("cron", "@daily", "2026-01-10 15:00", "2026-01-11 00:00"),
    ("cron", "@midnight", "2026-01-10 00:00", "2026-01-11 00:00"),
    ("cron", "@hourly", "2026-01-10 08:47", "2026-01-10 09:00"),
    ("cron", "@weekly", "2026-01-07 12:00", "2026-01-11 00:00"),  # Wednesday -> Sunday
    ("cron", "@monthly", "2026-01-15 12:00", "2026-02-01 00:00"),
    ("cron", "@yearly", "2026-06-01 12:00", "2027-01-01 00:00"),
    ("cron", "@annually", "2026-01-01 00:00", "2027-01-01 00:00"),
]


@pytest.mark.parametrize(("schedule_type", "text", "last", "expected"), NEXT_DUE_IN_ROME)
def test_next_due_in_rome(schedule_type: str, text: str, last: str, expected: str) -> None:
    schedule = parse(schedule_type, text)
    assert next_due(schedule, wall_to_utc(last, ROME), ROME) == wall_to_utc(expected, ROME)


# (type, schedule, zone, last_execution UTC, expected UTC): explicit instants where local time
# is ambiguous or missing, or where the zone's offset matters.
NEXT_DUE_UTC = [
    # the zone decides the instant
    ("at", "02:30", NEW_YORK, "2026-01-10 12:00", "2026-01-11 07:30"),
    ("at", "02:30", UTC_ZONE, "2026-01-10 12:00", "2026-01-11 02:30"),
    ("cron", "0 2 * * *", NEW_YORK, "2026-01-10 12:00", "2026-01-11 07:00"),
    ("cron", "0 2 * * *", ROME, "2026-01-10 12:00", "2026-01-11 01:00"),
    # Asia/Kolkata is +05:30: 10:47 local is floored to 10:00 local, not to 10:30
    ("any", "6 hour", KOLKATA, "2026-01-10 05:17", "2026-01-10 10:30"),
    ("any", "1 hour", KOLKATA, "2026-01-10 05:29", "2026-01-10 05:30"),
    ("any", "1 day", KOLKATA, "2026-01-10 20:00", "2026-01-11 18:30"),
    # Rome spring-forward, 2026-03-29 02:00 CET -> 03:00 CEST (01:00Z): 02:30 means 03:00
    ("at", "02:30", ROME, "2026-03-28 01:30", "2026-03-29 01:00"),
    ("at", "02:30", ROME, "2026-03-29 01:00", "2026-03-30 00:30"),
    ("cron", "30 2 * * *", ROME, "2026-03-28 01:30", "2026-03-29 01:00"),
    ("cron", "30 2 * * *", ROME, "2026-03-29 01:00", "2026-03-30 00:30"),
    ("any", "1 hour", ROME, "2026-03-29 00:30", "2026-03-29 01:00"),  # 01:30 CET -> 03:00 CEST
    ("any", "1 day", ROME, "2026-03-28 10:00", "2026-03-28 23:00"),
    ("any", "1 day", ROME, "2026-03-29 12:00", "2026-03-29 22:00"),
    # Rome fall-back, 2026-10-25 03:00 CEST -> 02:00 CET (01:00Z): 02:30 is 00:30Z and 01:30Z
    ("at", "02:30", ROME, "2026-10-24 00:30", "2026-10-25 00:30"),  # the first 02:30
    ("at", "02:30", ROME, "2026-10-25 00:30", "2026-10-26 01:30"),  # not the second one
    ("at", "02:30", ROME, "2026-10-25 00:10", "2026-10-25 00:30"),  # 02:10 in the first pass
    ("at", "02:30", ROME, "2026-10-25 01:10", "2026-10-26 01:30"),  # 02:10 in the second pass
    ("cron", "30 2 * * *", ROME, "2026-10-24 00:30", "2026-10-25 00:30"),
    ("cron", "30 2 * * *", ROME, "2026-10-25 00:30", "2026-10-26 01:30"),
    ("cron", "30 2 * * *", ROME, "2026-10-25 00:10", "2026-10-25 00:30"),
    ("cron", "30 2 * * *", ROME, "2026-10-25 01:10", "2026-10-26 01:30"),
    ("cron", "0 * * * *", ROME, "2026-10-25 00:00", "2026-10-25 01:00"),  # both 02:00 run
    ("any", "1 hour", ROME, "2026-10-25 00:45", "2026-10-25 01:00"),  # 02:45 CEST -> 02:00 CET
    ("any", "1 hour", ROME, "2026-10-25 01:45", "2026-10-25 02:00"),
    # New York spring-forward, 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z)
    ("at", "02:30", NEW_YORK, "2026-03-07 07:30", "2026-03-08 07:00"),
    ("cron", "30 2 * * *", NEW_YORK, "2026-03-07 07:30", "2026-03-08 07:00"),
    ("any", "1 hour", NEW_YORK, "2026-03-08 06:30", "2026-03-08 07:00"),
    # New York fall-back, 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z): 01:30 happens twice
    ("at", "01:30", NEW_YORK, "2026-10-31 05:30", "2026-11-01 05:30"),
    ("at", "01:30", NEW_YORK, "2026-11-01 05:30", "2026-11-02 06:30"),
    ("at", "01:30", NEW_YORK, "2026-11-01 06:10", "2026-11-02 06:30"),
    ("cron", "30 1 * * *", NEW_YORK, "2026-11-01 05:30", "2026-11-02 06:30"),
    ("cron", "30 1 * * *", NEW_YORK, "2026-11-01 06:10", "2026-11-02 06:30"),
    ("at", "02:30", NEW_YORK, "2026-10-31 06:30", "2026-11-01 07:30"),  # 02:30 once, EST
    ("any", "1 hour", NEW_YORK, "2026-11-01 05:30", "2026-11-01 06:00"),  # to 01:00 EST
    ("any", "1 hour", NEW_YORK, "2026-11-01 06:30", "2026-11-01 07:00"),
    ("any", "1 day", NEW_YORK, "2026-10-31 16:00", "2026-11-01 04:00"),
    ("any", "1 day", NEW_YORK, "2026-11-01 16:00", "2026-11-02 05:00"),  # a 25-hour day
    # Sao Paulo 2018-11-04: DST began at midnight, so that day started at 01:00 (-02)
    ("any", "1 day", SAO_PAULO, "2018-11-03 15:00", "2018-11-04 03:00"),
    ("any", "1 day", SAO_PAULO, "2018-11-04 03:00", "2018-11-05 02:00"),
    ("at", "00:00", SAO_PAULO, "2018-11-03 15:00", "2018-11-04 03:00"),
    ("cron", "@daily", SAO_PAULO, "2018-11-03 15:00", "2018-11-04 03:00"),
    # Lord Howe falls back only 30 minutes (02:00 +11 -> 01:30 +10:30 at 15:00Z): a run at the
    # second 01:40 (15:10Z) must not be due again before the next real hour starts
    ("any", "1 hour", LORD_HOWE, "2026-04-04 15:10", "2026-04-04 15:30"),
]


@pytest.mark.parametrize(
    ("schedule_type", "text", "tz", "last", "expected"), NEXT_DUE_UTC, ids=case_id
)
def test_next_due_at_exact_instants(
    schedule_type: str, text: str, tz: ZoneInfo, last: str, expected: str
) -> None:
    assert next_due(parse(schedule_type, text), at_utc(last), tz) == at_utc(expected)


@pytest.mark.parametrize(
    ("schedule_type", "text"), [("at", "02:30"), ("any", "6 hour"), ("cron", "@daily")]
)
def test_never_run_is_due_now(schedule_type: str, text: str) -> None:
    schedule = parse(schedule_type, text)
    assert next_due(schedule, None, ROME) is None
    assert is_due(schedule, None, at_utc("2026-01-10 12:00"), ROME)


@pytest.mark.parametrize(
    ("schedule_type", "text", "last"),
    [
        ("at", "02:30", "2026-01-10 02:30"),
        ("any", "1 hour", "2026-01-10 08:47"),
        ("any", "1 day", "2026-01-10 08:47"),
        ("cron", "*/15 * * * *", "2026-01-10 08:47"),
        ("cron", "@weekly", "2026-01-10 08:47"),
    ],
)
def test_next_due_is_strictly_after_last_execution(
    schedule_type: str, text: str, last: str
) -> None:
    last_execution = at_utc(last)
    for tz in (ROME, NEW_YORK, KOLKATA, UTC_ZONE):
        assert next_due(parse(schedule_type, text), last_execution, tz) > last_execution


def test_result_follows_the_zone_argument_with_nothing_cached() -> None:
    schedule = parse("cron", "0 2 * * *")
    last = at_utc("2026-01-10 12:00")
    answers = [next_due(schedule, last, tz) for tz in (ROME, NEW_YORK, ROME)]
    assert answers == [
        at_utc("2026-01-11 01:00"),
        at_utc("2026-01-11 07:00"),
        at_utc("2026-01-11 01:00"),
    ]


def test_schedule_built_directly_is_normalised_before_use() -> None:
    schedule = Schedule("ANY", " 6 HOURS ")
    assert next_due(schedule, wall_to_utc("2026-01-10 08:47", ROME), ROME) == wall_to_utc(
        "2026-01-10 14:00", ROME
    )
    assert in_words(schedule) == "every 6 hours"


@pytest.mark.parametrize(
    "schedule", [Schedule("at", "25:00"), Schedule("any", "0 day"), Schedule("weekly", "x")]
)
def test_invalid_schedule_is_rejected_by_every_function(schedule: Schedule) -> None:
    for call in (
        lambda: next_due(schedule, None, ROME),
        lambda: is_due(schedule, None, at_utc("2026-01-10 12:00"), ROME),
        lambda: in_words(schedule),
        lambda: period(schedule, ROME),
        lambda: retry_delay(1, schedule, ROME),
    ):
        with pytest.raises(ScheduleError):
            call()


def test_aware_datetimes_are_refused() -> None:
    schedule = parse("at", "02:30")
    aware = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="last_execution must be a naive UTC datetime"):
        next_due(schedule, aware, ROME)
    with pytest.raises(ValueError, match="now must be a naive UTC datetime"):
        is_due(schedule, at_utc("2026-01-10 02:30"), aware, ROME)


# --- is_due ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-01-10 13:59:59", False),
        ("2026-01-10 14:00:00", True),  # due exactly at the slot
        ("2026-01-10 14:00:01", True),
        ("2026-01-12 09:00:00", True),  # and stays due until it runs
    ],
)
def test_is_due_from_the_slot_on(now: str, expected: bool) -> None:
    schedule = parse("any", "6 hour")
    assert is_due(schedule, at_utc("2026-01-10 08:47"), at_utc(now), UTC_ZONE) is expected


@pytest.mark.parametrize(
    ("schedule_type", "text", "following"),
    [
        ("at", "02:30", "2026-01-05 02:30"),
        ("any", "6 hour", "2026-01-04 18:00"),
        ("any", "1 day", "2026-01-05 00:00"),
        ("cron", "0 2 * * *", "2026-01-05 02:00"),
        ("cron", "@hourly", "2026-01-04 13:00"),
    ],
)
def test_overdue_task_runs_once_then_waits_for_a_future_slot(
    schedule_type: str, text: str, following: str
) -> None:
    schedule = parse(schedule_type, text)
    last = wall_to_utc("2026-01-01 02:30", ROME)
    now = wall_to_utc("2026-01-04 12:00", ROME)  # three days of slots missed
    assert is_due(schedule, last, now, ROME)
    # it runs once; its start becomes last_execution
    assert not is_due(schedule, now, now + MINUTE, ROME)
    assert next_due(schedule, now, ROME) == wall_to_utc(following, ROME)


# --- DST: a cron loop calling is_due every minute -------------------------------------------


def simulate_day(schedule: Schedule, tz: ZoneInfo, day: date) -> list[datetime]:
    """Run the task whenever due, checking every real minute; return the runs on ``day``.

    The loop starts at noon the day before with a task that never ran, so it enters the day
    in the state its own earlier runs left.
    """
    day_start = datetime.combine(day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    day_end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    now = (day_start - timedelta(hours=12)).replace(tzinfo=None)
    end = day_end.astimezone(UTC).replace(tzinfo=None)
    last = None
    runs = []
    while now < end:
        if is_due(schedule, last, now, tz):
            last = now
            runs.append(now)
        now += MINUTE
    return [run for run in runs if run >= day_start.replace(tzinfo=None)]


ROME_SPRING = date(2026, 3, 29)
ROME_FALL = date(2026, 10, 25)
NEW_YORK_SPRING = date(2026, 3, 8)
NEW_YORK_FALL = date(2026, 11, 1)


@pytest.mark.parametrize(
    ("tz", "day", "schedule_type", "text", "runs"),
    [
        # 02:30 does not exist: one run, at 03:00 CEST
        (ROME, ROME_SPRING, "at", "02:30", ["2026-03-29 01:00"]),
        (ROME, ROME_SPRING, "cron", "30 2 * * *", ["2026-03-29 01:00"]),
        (ROME, ROME_SPRING, "at", "01:30", ["2026-03-29 00:30"]),
        (ROME, ROME_SPRING, "at", "03:00", ["2026-03-29 01:00"]),
        (ROME, ROME_SPRING, "any", "1 day", ["2026-03-28 23:00"]),
        (ROME, ROME_SPRING, "cron", "@daily", ["2026-03-28 23:00"]),
        # 02:30 happens twice: one run, at the first (CEST)
        (ROME, ROME_FALL, "at", "02:30", ["2026-10-25 00:30"]),
        (ROME, ROME_FALL, "cron", "30 2 * * *", ["2026-10-25 00:30"]),
        (ROME, ROME_FALL, "at", "02:00", ["2026-10-25 00:00"]),
        (ROME, ROME_FALL, "cron", "0 2 * * *", ["2026-10-25 00:00"]),
        (ROME, ROME_FALL, "any", "1 day", ["2026-10-24 22:00"]),
        (NEW_YORK, NEW_YORK_SPRING, "at", "02:30", ["2026-03-08 07:00"]),
        (NEW_YORK, NEW_YORK_SPRING, "cron", "30 2 * * *", ["2026-03-08 07:00"]),
        (NEW_YORK, NEW_YORK_SPRING, "any", "1 day", ["2026-03-08 05:00"]),
        # New York repeats 01:00-01:59, so there 02:30 is plain and 01:30 is the double one
        (NEW_YORK, NEW_YORK_FALL, "at", "02:30", ["2026-11-01 07:30"]),
        (NEW_YORK, NEW_YORK_FALL, "cron", "30 2 * * *", ["2026-11-01 07:30"]),
        (NEW_YORK, NEW_YORK_FALL, "at", "01:30", ["2026-11-01 05:30"]),
        (NEW_YORK, NEW_YORK_FALL, "cron", "30 1 * * *", ["2026-11-01 05:30"]),
        (NEW_YORK, NEW_YORK_FALL, "any", "1 day", ["2026-11-01 04:00"]),
    ],
    ids=case_id,
)
def test_dst_day_runs_exactly_once(
    tz: ZoneInfo, day: date, schedule_type: str, text: str, runs: list[str]
) -> None:
    assert simulate_day(parse(schedule_type, text), tz, day) == [at_utc(run) for run in runs]


@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        (ROME, ROME_SPRING, 23),
        (ROME, ROME_FALL, 25),
        (NEW_YORK, NEW_YORK_SPRING, 23),
        (NEW_YORK, NEW_YORK_FALL, 25),
        (ROME, date(2026, 1, 10), 24),
    ],
    ids=case_id,
)
@pytest.mark.parametrize(("schedule_type", "text"), [("any", "1 hour"), ("cron", "@hourly")])
def test_hourly_runs_once_in_every_real_hour_of_a_dst_day(
    tz: ZoneInfo, day: date, hours: int, schedule_type: str, text: str
) -> None:
    runs = simulate_day(parse(schedule_type, text), tz, day)
    day_start = datetime.combine(day, datetime.min.time(), tzinfo=tz).astimezone(UTC)
    expected = [day_start.replace(tzinfo=None) + hour * HOUR for hour in range(hours)]
    assert runs == expected


@pytest.mark.parametrize(
    ("tz", "day"), [(ROME, ROME_FALL), (NEW_YORK, NEW_YORK_SPRING)], ids=case_id
)
def test_every_two_hours_keeps_real_two_hour_gaps_through_dst(tz: ZoneInfo, day: date) -> None:
    runs = simulate_day(parse("any", "2 hour"), tz, day)
    assert len(runs) > 10
    assert {later - earlier for earlier, later in pairwise(runs)} == {2 * HOUR}


# --- in words --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule_type", "text", "words"),
    [
        ("at", "02:30", "every day at 02:30"),
        ("at", "0:05 day", "every day at 00:05"),
        ("any", "1 hour", "every hour"),
        ("any", "6 hours", "every 6 hours"),
        ("any", "1 day", "every day at midnight"),
        ("any", "2 days", "every 2 days at midnight"),
        ("cron", "0 2 * * *", "cron: 0 2 * * * (at 02:00 every day)"),
        ("cron", "@daily", "cron: @daily (at 00:00 every day)"),
        ("cron", "@hourly", "cron: @hourly (at the start of every hour)"),
        ("cron", "15 8 * * 1-5", "cron: 15 8 * * 1-5 (at 08:15 on Monday through Friday)"),
    ],
)
def test_in_words(schedule_type: str, text: str, words: str) -> None:
    assert in_words(parse(schedule_type, text)) == words


# --- period and retry_delay -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule_type", "text", "tz", "expected"),
    [
        ("at", "02:30", ROME, timedelta(days=1)),
        ("any", "1 hour", ROME, timedelta(hours=1)),
        ("any", "6 hour", ROME, timedelta(hours=6)),
        ("any", "2 day", ROME, timedelta(days=2)),
        ("cron", "*/15 * * * *", ROME, timedelta(minutes=15)),
        ("cron", "* * * * *", ROME, timedelta(minutes=1)),
        ("cron", "@hourly", NEW_YORK, timedelta(hours=1)),
        ("cron", "0 0,12 * * *", UTC_ZONE, timedelta(hours=12)),
        ("cron", "0 2 * * *", UTC_ZONE, timedelta(days=1)),
        ("cron", "0 9 * * 1-5", UTC_ZONE, timedelta(days=1)),
        ("cron", "@daily", UTC_ZONE, timedelta(days=1)),
        ("cron", "@daily", NEW_YORK, timedelta(hours=23)),  # real gaps: the 23-hour day
        ("cron", "@weekly", UTC_ZONE, timedelta(days=7)),
        ("cron", "@monthly", UTC_ZONE, timedelta(days=28)),
        ("cron", "0 0 31 * *", UTC_ZONE, timedelta(days=31)),  # Jul 31 -> Aug 31
        ("cron", "@yearly", UTC_ZONE, timedelta(days=365)),
        ("cron", "0 0 29 2 *", UTC_ZONE, timedelta(days=4 * 365 + 1)),
    ],
    ids=case_id,
)
def test_period(schedule_type: str, text: str, tz: ZoneInfo, expected: timedelta) -> None:
    assert period(parse(schedule_type, text), tz) == expected


@pytest.mark.parametrize(
    ("fail_count", "minutes"),
    [
        (-1, 0),
        (0, 0),
        (1, 5),
        (2, 10),
        (3, 20),
        (4, 40),
        (5, 80),
        (6, 160),
        (7, 320),
        (8, 360),  # capped at 6 hours
        (9, 360),
        (100, 360),
        (10**9, 360),  # no overflow
    ],
)
def test_retry_delay_doubles_up_to_six_hours(fail_count: int, minutes: int) -> None:
    schedule = parse("at", "02:30")
    assert retry_delay(fail_count, schedule, ROME) == timedelta(minutes=minutes)


@pytest.mark.parametrize(
    ("schedule_type", "text", "fail_count", "minutes"),
    [
        ("any", "1 hour", 1, 5),
        ("any", "1 hour", 4, 40),
        ("any", "1 hour", 5, 60),  # 80 minutes capped at the period
        ("any", "1 hour", 50, 60),
        ("cron", "*/15 * * * *", 2, 10),
        ("cron", "*/15 * * * *", 3, 15),  # 20 minutes capped at the period
        ("cron", "*/15 * * * *", 9, 15),
        ("cron", "*/5 * * * *", 1, 5),
        ("cron", "*/5 * * * *", 2, 5),
        ("any", "2 day", 9, 360),
    ],
)
def test_retry_delay_never_exceeds_the_period(
    schedule_type: str, text: str, fail_count: int, minutes: int
) -> None:
    schedule = parse(schedule_type, text)
    assert retry_delay(fail_count, schedule, ROME) == timedelta(minutes=minutes)
