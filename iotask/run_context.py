"""The context of one run, as a connector sees it: row errors, reject files, the guards' review,
files imported before, notes, and the lease check before a commit."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import tzinfo
from pathlib import Path

from sqlalchemy import Connection, Engine, insert, select

from iotask import clock, db, names, tasks
from iotask.claims import Lease
from iotask.config import Config
from iotask.connectors.base import Connector
from iotask.connectors.context import SAMPLE_KEYS, ChangeSet, Counts, RowError, Unit
from iotask.connectors.errors import ConnectorError, Held, TooManyErrors
from iotask.guards import Guards
from iotask.models import Task, TaskFile
from iotask.run_status import RunStatus

log = logging.getLogger("iotask.run_context")

MAX_STORED_ROW_ERRORS = 1000
MAX_REJECTED_ROWS = 100_000  # rows written to a reject file; the count says how many in all
MAX_KEY_TEXT = 500  # a row's key as stored and shown: enough to find it, never megabytes
MAX_MESSAGE = 2000  # run and row messages: TEXT holds 64 KB on MariaDB


def shorten(text: str | None, limit: int) -> str | None:
    """Text cut to ``limit`` characters, saying how much was cut: stored values stay bounded."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


class Run:
    """The RunContext a connector sees during one run (or dry run: no lease, nothing applied)."""

    def __init__(self, task: Task, run_id: int, lease: Lease | None, config: Config,
                 engine: Engine, accept: bool = False, reimport: bool = False) -> None:
        self.task = task.name
        self.run_id = run_id
        # as stored; a value a hand edit broke fails the run (tasks.check_runnable) at its start
        self.import_type = tasks.IMPORT_TYPES.get(task.import_type.strip().lower(),
                                                  task.import_type)
        self.database_url: str | None = config.database_url
        self.key: list[str] | None = None
        self.owner: str | None = task.conn_source
        self.dry_run = lease is None
        self.file_roots: list[Path] = list(config.file_roots)
        self.timezone: tzinfo = config.timezone
        self.reimport = reimport
        self.stays_due = False  # files still being written: due again at the next run-due
        self.task_status: RunStatus | None = None  # what core_task shows, when not the run's
        self.task_error: str | None = None
        self.counts = Counts()
        self._unit_start = Counts()  # the counts when the current file began
        self.files: list[str] = []
        self.notes: list[str] = []
        self.reject_files: list[str] = []
        self._config, self._engine = config, engine
        self.errors: list[RowError] = []
        self.rejected: dict[int, str] = {}  # row index: first message, for the reject file
        self.changes: ChangeSet | None = None
        self.verdict: TooManyErrors | Held | None = None  # the guards' word on a dry run
        self._guard_settings = (task.max_errors, task.max_remove, task.allow_empty, accept)
        self._lease = lease
        self._kept: tuple[str, str] | None = None  # remember()'s, for the current file

    @property
    def guards(self) -> Guards:
        """Read when the change set is reviewed, so a hand-edited bad limit fails the run only."""
        return Guards.for_task(self.task, self.import_type, *self._guard_settings)

    def row_error(self, error: RowError) -> None:
        self.counts.failed += 1
        if len(self.errors) < MAX_STORED_ROW_ERRORS:
            self.errors.append(RowError(error.row_index, shorten(error.message, MAX_MESSAGE) or "",
                                        shorten(error.key_values, MAX_KEY_TEXT),
                                        shorten(error.column, 100)))
        index = error.row_index
        if index is not None and index not in self.rejected and \
                len(self.rejected) < MAX_REJECTED_ROWS:
            where = f"column {error.column}: " if error.column and \
                not error.message.startswith(("column", "key column", "duplicate")) else ""
            self.rejected[index] = where + error.message

    def _unit_counts(self) -> Counts:
        """This file's own counts: each file of a folder is judged by the guards on its own."""
        start = self._unit_start
        return Counts(read=self.counts.read - start.read, failed=self.counts.failed - start.failed)

    def review(self, changes: ChangeSet) -> bool:
        if self.dry_run:  # a folder's files add up to one change set to look at
            self.changes = changes if self.changes is None else _added(self.changes, changes)
            self.verdict = self.verdict or self.guards.stop(changes, self._unit_counts())
            return False
        self.changes = changes
        self.guards.check(changes, self._unit_counts())
        return True

    def check_lease(self, connection: Connection | None = None) -> None:
        if self._lease is not None:
            self._lease.check(connection)

    @property
    def reject_file(self) -> str | None:
        return shorten("; ".join(self.reject_files), 1000 - 40) if self.reject_files else None

    def imported_before(self, unit: Unit) -> str | None:
        with db.reader(self._engine).connect() as conn:
            earlier = conn.execute(
                select(TaskFile.name, TaskFile.imported_at, TaskFile.run_id)
                .where(TaskFile.task == self.task, TaskFile.sha256 == unit.sha256)
                .order_by(TaskFile.id).limit(1)).first()
        if earlier is None:
            return None
        when = clock.show(earlier.imported_at, self._config.timezone)
        return f"as {earlier.name} on {when} (run {earlier.run_id})"

    def record_import(self, unit: Unit) -> None:
        kept, self._kept = self._kept, None
        db.transaction(self._engine, lambda conn: conn.execute(insert(TaskFile).values(
            task=self.task, name=unit.name[:255], location=shorten(unit.where, 900),
            size=unit.size or 0, sha256=unit.sha256 or "", run_id=self.run_id or None,
            imported_at=clock.utcnow(), fingerprint=" ".join(kept) if kept else None)))

    def remembered(self, sha256: str, key: str) -> str | None:
        with db.reader(self._engine).connect() as conn:
            found = conn.execute(
                select(TaskFile.fingerprint)
                .where(TaskFile.task == self.task, TaskFile.sha256 == sha256,
                       TaskFile.fingerprint.like(f"{key} %"))
                .order_by(TaskFile.id.desc()).limit(1)).scalar()
        return found.removeprefix(f"{key} ") if found else None

    def remember(self, key: str, value: str) -> None:
        if len(key) + 1 + len(value) <= TaskFile.fingerprint.type.length:
            self._kept = (key, value)

    def unit_done(self, source: Connector) -> None:
        """Write the file's rejected rows now, while the source still has it; the next file's
        counts start from here."""
        self._unit_start = replace(self.counts)
        self._kept = None
        if self.rejected and not self.dry_run:
            problem = write_rejects(self._config.reject_dir, self.run_id, source, self)
            if problem:
                self.notes.append(problem)
            self.rejected = {}


def _added(first: ChangeSet, then: ChangeSet) -> ChangeSet:
    """Two files' change sets as one: counts summed, sample keys kept up to SAMPLE_KEYS."""
    samples = {kind: (first.samples.get(kind, []) + then.samples.get(kind, []))[:SAMPLE_KEYS]
               for kind in first.samples.keys() | then.samples.keys()}
    return ChangeSet(first.inserted + then.inserted, first.updated + then.updated,
                     first.unchanged + then.unchanged, first.removed + then.removed,
                     max(first.owned, then.owned), then.removal, samples)


def write_rejects(folder: Path, run_id: int, source: Connector, context: Run) -> str | None:
    """Write the rejected rows for a person to fix and submit again; a problem, or None."""
    stem = f"{names.file_safe(context.task)}-run{run_id}-rejects"
    if context.reject_files:
        stem += f"-{len(context.reject_files) + 1}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = source.write_rejects(context.rejected, folder, stem)
    except (OSError, ConnectorError) as exc:
        log.warning("task %s: run %d: could not write the reject file: %s", context.task,
                    run_id, exc)
        return f"could not write the reject file in {folder}: {exc}"
    if path is not None:
        context.reject_files.append(str(path))
    return None
