"""What a connector exchanges with the run: rows, files, columns, counts, change sets, row
errors, and the RunContext the runner gives it (MemoryContext outside the runner)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from iotask.connectors.base import Connector
    from sqlalchemy import Connection

Row = dict[str, Any]
Batch = list[Row]
Progress = Callable[[int, int | None, int | None], None]
"""Told after each batch: rows read so far, then bytes read and total when the source knows."""


@dataclass
class Unit:
    """One file a source reads as its own unit of work: applied, then consumed.

    ``where`` names it for people (never with a password); ``sha256`` and ``size`` are known
    once the source has opened it. A file read in place every run (``once`` False: a fixed
    file the sender overwrites) is imported whatever its content.
    """

    name: str
    where: str
    handle: Any = None  # the source's own reference (a listed remote file)
    once: bool = True  # consumed after import: the same content is not imported twice
    sha256: str | None = None
    size: int | None = None


class UnitOutcome(StrEnum):
    """What becomes of a file once its run is done with it (``Connector.close_unit``)."""

    CONSUMED = "consumed"  # applied, or a copy of a file already applied: not to be taken again
    FAILED = "failed"  # left for the next run, or moved to quarantine
    KEPT = "kept"  # held or a dry run: left as it is


@dataclass(frozen=True)
class Column:
    """A column an endpoint has: whether a destination needs a value, whether it is a key, and
    (when known) its type and default as the database states them, for people reading a map.
    ``refused``: a column people expect that the destination will not take, and why (a map or
    file giving it is refused with that reason)."""

    name: str
    required: bool = False
    key: bool = False
    type: str | None = None
    default: str | None = None
    refused: str | None = None


class ChangeKind(StrEnum):
    """The four things a run can do to a record. A ChangeKind names a dry run's sample keys and
    report fields; ``counted`` names the Counts and ChangeSet field that counts it."""

    INSERT = "insert"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    REMOVE = "remove"

    @property
    def counted(self) -> str:
        return {"insert": "inserted", "update": "updated", "unchanged": "unchanged",
                "remove": "removed"}[self.value]


@dataclass
class Counts:
    """A run's row counts, as ``core_task_run`` stores them (``rows_read``, ...)."""

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0


SAMPLE_KEYS = 10  # keys shown per kind of change by a dry run


@dataclass
class ChangeSet:
    """What applying the staged rows would do, computed before anything is applied.

    ``owned`` is how many records the task's source owned before the run: the base of the
    removal guard. ``samples`` holds up to SAMPLE_KEYS keys per ChangeKind, filled for dry runs.
    The counts are named as in Counts: what the run would have inserted, updated, ...
    """

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    owned: int = 0
    removal: str = "delete"  # or "deactivate"
    samples: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class RowError:
    """One rejected row: where it was (the physical line for files), its key, and why."""

    row_index: int | None
    message: str
    key_values: str | None = None
    column: str | None = None


class RunContext(Protocol):
    """What the runner gives a connector during one run."""

    task: str
    run_id: int
    import_type: str  # "insert" or "sync"
    database_url: str | None  # the iotask database, the default for SQL connectors
    key: list[str] | None  # the key columns the task's map names, over the destination's own
    owner: str | None  # what a destination writes in its ownership column: the source's name
    dry_run: bool  # compute and review the change set, then discard it
    file_roots: list[Path]  # the folders file: URLs must stay in; none given: no file at all
    timezone: tzinfo  # the configured zone: dated file names, times in messages
    reimport: bool  # apply files whose content was imported before
    counts: Counts
    files: list[str]
    notes: list[str]  # what happened to each file, for the run's record

    def row_error(self, error: RowError) -> None:
        """Record a rejected row; the run goes on. A source counts the rows it rejects as read."""

    def review(self, changes: ChangeSet) -> bool:
        """Called by a destination with its change set before applying anything.

        True: apply it. False: discard it (a dry run). Raises Held, or a ConnectorError for too
        many rejected rows, when a guard stops the run.
        """

    def imported_before(self, unit: Unit) -> str | None:
        """When (and as what) this task imported a file with ``unit``'s SHA-256; None if never."""

    def record_import(self, unit: Unit) -> None:
        """Remember ``unit``'s name, size and SHA-256 as imported by this task."""

    def remembered(self, sha256: str, key: str) -> str | None:
        """What ``remember`` kept under ``key`` with an import of the content ``sha256`` by
        this task (the latest such import), or None."""

    def remember(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key`` with the import of the current file (``record_import``
        stores it; a file not recorded keeps nothing). ``key`` and ``value`` hold no spaces."""

    def unit_done(self, source: Connector) -> None:
        """A file is finished (applied or not): its rejected rows go to its reject file."""

    def check_lease(self, connection: Connection | None = None) -> None:
        """Raise LeaseLost unless this runner still owns the task. Call right before commit.

        A destination writing to a database passes its connection: when that is the iotask
        database the check runs in the same transaction and commits with the data.
        """


@dataclass
class MemoryContext:
    """A RunContext outside the runner (previews, tests): row errors kept in a list."""

    task: str = "preview"
    run_id: int = 0
    import_type: str = "insert"
    database_url: str | None = None
    key: list[str] | None = None
    owner: str | None = None
    dry_run: bool = False
    file_roots: list[Path] = field(default_factory=list)  # no folder: file: URLs refused
    timezone: tzinfo = UTC
    reimport: bool = False
    counts: Counts = field(default_factory=Counts)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    changes: ChangeSet | None = None
    imported: dict[str, str] = field(default_factory=dict)  # SHA-256: name
    memory: dict[tuple[str, str], str] = field(default_factory=dict)  # (SHA-256, key): value
    _kept: tuple[str, str] | None = None

    def imported_before(self, unit: Unit) -> str | None:
        name = self.imported.get(unit.sha256 or "")
        return f"as {name}" if name else None

    def record_import(self, unit: Unit) -> None:
        if unit.sha256:
            self.imported[unit.sha256] = unit.name
            if self._kept is not None:
                self.memory[(unit.sha256, self._kept[0])] = self._kept[1]
        self._kept = None

    def remembered(self, sha256: str, key: str) -> str | None:
        return self.memory.get((sha256, key))

    def remember(self, key: str, value: str) -> None:
        self._kept = (key, value)

    def unit_done(self, source: Connector) -> None:
        return None

    def row_error(self, error: RowError) -> None:
        self.errors.append(error)
        self.counts.failed += 1

    def review(self, changes: ChangeSet) -> bool:
        self.changes = changes
        return not self.dry_run

    def check_lease(self, connection: Connection | None = None) -> None:
        return None


class Probe:
    """A RunContext for a pass that only looks (a destination's pre-check): row errors are
    noted here instead of recorded, and rows are counted apart, so that the real pass that may
    follow records everything exactly once. Everything else is the run's own context."""

    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.counts = Counts()
        self.failed = False  # a row error was seen: the pre-check does not apply

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context, name)

    def row_error(self, error: RowError) -> None:
        self.failed = True
        self.counts.failed += 1
