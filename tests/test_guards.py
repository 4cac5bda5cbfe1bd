"""The guards' arithmetic: limits as counts or percents, and which guard stops which run."""

from __future__ import annotations

import pytest
from iotask.connectors.context import ChangeSet, Counts
from iotask.connectors.errors import Held

from iotask.errors import IotaskError
from iotask.guards import Guards, Limit, TooManyErrors


@pytest.mark.parametrize("text, value, percent, shown", [
    ("5%", 5.0, True, "5%"), (" 12.5 % ", 12.5, True, "12.5%"), ("0", 0, False, "0"),
    ("100", 100, False, "100"), ("100%", 100.0, True, "100%")])
def test_limits_read_counts_and_percents(text, value, percent, shown):
    limit = Limit.parse(text, "max_errors")
    assert (limit.value, limit.percent, limit.text) == (value, percent, shown)


@pytest.mark.parametrize("text", ["lots", "5%%", "-1", "101%", "1.5", ""])
def test_a_bad_limit_says_what_is_expected(text):
    with pytest.raises(IotaskError, match="max_remove must be"):
        Limit.parse(text, "max_remove")


def test_percent_and_count_limits_compare_exactly():
    assert not Limit.parse("10%", "x").exceeded(10, 100)
    assert Limit.parse("10%", "x").exceeded(11, 100)
    assert Limit.parse("0%", "x").exceeded(1, 1_000_000)
    assert not Limit.parse("0%", "x").exceeded(0, 0)
    assert not Limit.parse("3", "x").exceeded(3, 5) and Limit.parse("3", "x").exceeded(4, 5)


def guards(import_type="sync", **options) -> Guards:
    return Guards.for_task("t", import_type, options.get("max_errors"),
                           options.get("max_remove"), options.get("allow_empty", False),
                           options.get("accept", False))


def test_defaults_are_strict_for_sync_and_lenient_for_insert():
    one_bad = Counts(read=100, failed=1)
    with pytest.raises(TooManyErrors, match="1 of 100 rows rejected .1.0%., more than max_e"):
        guards("sync").check(ChangeSet(), one_bad)
    guards("insert").check(ChangeSet(), one_bad)
    with pytest.raises(TooManyErrors):
        guards("insert").check(ChangeSet(), Counts(read=100, failed=6))


def test_removals_beyond_the_limit_are_held_unless_accepted():
    changes = ChangeSet(removed=11, owned=100)
    with pytest.raises(Held, match="delete 11 of the 100 records it owns .11.0%.*10%"):
        guards().check(changes, Counts(read=89))
    guards(accept=True).check(changes, Counts(read=89))
    guards(max_remove="20").check(changes, Counts(read=89))
    deactivating = ChangeSet(removed=50, owned=100, removal="deactivate")
    with pytest.raises(Held, match="deactivate 50"):
        guards().check(deactivating, Counts(read=50))


def test_an_empty_source_is_held_even_within_the_limit():
    with pytest.raises(Held, match="no data rows.*all 3 records"):
        guards(max_remove="100%").check(ChangeSet(removed=3, owned=3), Counts(read=0))
    guards(max_remove="100%", allow_empty=True).check(ChangeSet(removed=3, owned=3), Counts())
    guards().check(ChangeSet(), Counts())  # nothing owned, nothing removed: nothing to guard


def test_accepting_never_waives_the_error_limit():
    with pytest.raises(TooManyErrors):
        guards(accept=True).check(ChangeSet(), Counts(read=10, failed=1))
    assert guards().verdict(ChangeSet(removed=1, owned=2), Counts(read=1)).startswith(
        "this run would delete 1 of the 2")
    assert guards().verdict(ChangeSet(), Counts(read=1)) is None
