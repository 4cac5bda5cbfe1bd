"""Guards on a run's change set, checked before anything is applied.

A truncated file must never become a mass deletion, and a file full of bad rows must never be
half-imported: too many rejected rows fail the run, too many removals (or removals from an empty
source) hold it for a person to look at, and `iotask run NAME --accept-changes` applies it then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from shlex import quote

from iotask.connectors.context import ChangeSet, Counts
from iotask.connectors.errors import Held, TooManyErrors
from iotask.errors import IotaskError

DEFAULT_MAX_ERRORS = {"insert": "5%", "sync": "0%"}
DEFAULT_MAX_REMOVE = "10%"
COUNT = re.compile(r"[0-9]{1,12}", re.ASCII)
PERCENT = re.compile(r"[0-9]{1,3}(\.[0-9]{1,6})?", re.ASCII)


@dataclass(frozen=True)
class Limit:
    """A count ("500") or a percent ("5%") of some base."""

    value: float
    percent: bool
    text: str

    @classmethod
    def parse(cls, text: str, what: str) -> Limit:
        """Read a limit, or say exactly what is wrong with it. Only plain ASCII digits are
        numbers here: 'nan%', 'inf', '1e9' or '١٠' would otherwise switch a guard off."""
        cleaned = str(text).strip()
        percent = cleaned.endswith("%")
        number = cleaned.removesuffix("%").strip()
        if not (PERCENT if percent else COUNT).fullmatch(number):
            raise IotaskError(f"{what} must be a count such as 100 or a percent such as 5%, "
                              f"got {text!r}")
        value = float(number) if percent else int(number)
        if percent and value > 100:
            raise IotaskError(f"{what} must be between 0% and 100%, got {text!r}")
        return cls(value, percent, f"{number}%" if percent else number)

    def exceeded(self, count: int, base: int) -> bool:
        if self.percent:
            return count * 100 > self.value * base
        return count > self.value


def share(count: int, base: int) -> str:
    return f"{count * 100 / base:.1f}%" if base else "0%"


@dataclass(frozen=True)
class Guards:
    """One task's guards for one run; ``accept`` is a person's go-ahead for a held change set."""

    task: str
    max_errors: Limit
    max_remove: Limit
    allow_empty: bool = False
    accept: bool = False

    @classmethod
    def for_task(cls, task: str, import_type: str, max_errors: str | None,
                 max_remove: str | None, allow_empty: bool, accept: bool = False) -> Guards:
        """The guards as stored in the task's row; a limit a hand edit broke fails the run
        (never "no limit"), saying how to put it right."""
        def stored(text: str, column: str) -> Limit:
            try:
                return Limit.parse(text, column)
            except IotaskError as exc:
                option = "--" + column.replace("_", "-")
                raise IotaskError(f"task {task!r}: core_task.{exc}; nothing was applied: set "
                                  f"a valid limit with `iotask task edit {quote(task)} {option} "
                                  "...`") from None

        return cls(task, stored(max_errors or DEFAULT_MAX_ERRORS[import_type], "max_errors"),
                   stored(max_remove or DEFAULT_MAX_REMOVE, "max_remove"), allow_empty, accept)

    def stop(self, changes: ChangeSet, counts: Counts) -> TooManyErrors | Held | None:
        """What would stop the change set (TooManyErrors or Held), or None."""
        try:
            self.check(changes, counts)
        except (TooManyErrors, Held) as exc:
            return exc
        return None

    def verdict(self, changes: ChangeSet, counts: Counts) -> str | None:
        """Why the change set must not be applied, or None."""
        stopped = self.stop(changes, counts)
        return None if stopped is None else str(stopped)

    def check(self, changes: ChangeSet, counts: Counts) -> None:
        """Raise TooManyErrors or Held when a guard trips; nothing has been applied yet."""
        if self.max_errors.exceeded(counts.failed, counts.read):
            raise TooManyErrors(
                f"{counts.failed} of {counts.read} rows rejected "
                f"({share(counts.failed, counts.read)}), more than max_errors "
                f"{self.max_errors.text}: nothing was applied; fix the rows (see `iotask "
                f"history {quote(self.task)}` and the reject file) or raise the limit with "
                f"`iotask task edit {quote(self.task)} --max-errors ...`")
        if self.accept or not changes.removed:
            return
        verb = "deactivate" if changes.removal == "deactivate" else "delete"
        if counts.read == 0 and not self.allow_empty:
            raise Held(f"the source has no data rows, so this run would {verb} all "
                       f"{changes.removed} records it owns: held, nothing was applied; if that "
                       f"is right, `iotask run {quote(self.task)} --accept-changes` (or "
                       "--allow-empty)")
        if self.max_remove.exceeded(changes.removed, changes.owned):
            raise Held(f"this run would {verb} {changes.removed} of the {changes.owned} records "
                       f"it owns ({share(changes.removed, changes.owned)}), more than max_remove "
                       f"{self.max_remove.text}: held, nothing was applied; check the source "
                       f"(truncated file?), then `iotask run {quote(self.task)} --accept-changes`")
