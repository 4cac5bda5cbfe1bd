"""run-due, run and reset: decide what is due, claim it so it never runs twice, run it, record it.

The claim is one conditional UPDATE of the task row (a lease: ``locked_by``/``locked_until``),
which works the same on SQLite, MariaDB and PostgreSQL. Every claim increments ``run_count``, and a
run-due claim only succeeds if ``run_count`` is still what it was when the task was judged due, so
two runners that both saw a task due cannot both run it. The lease is renewed while the task runs;
a runner whose lease expired is presumed dead, its run is marked abandoned, and it cannot commit.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, insert, or_, select, true, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from connectors.base import (
    SAMPLE_KEYS,
    ChangeSet,
    Connector,
    ConnectorError,
    Counts,
    FilesFailed,
    Held,
    LeaseLost,
    NothingToProcess,
    NotReadyYet,
    RowError,
    Unit,
)
from iotask import clock, connections, db, names, schedule, tasks
from iotask import engine as data_engine
from iotask.clock import utcnow
from iotask.config import Config
from iotask.engine import (
    ABANDONED,
    EXECUTED,
    FAILED,
    HELD,
    NOTHING_TO_PROCESS,
    RESET,
    RUNNING,
)
from iotask.errors import IotaskError, NotFound
from iotask.guards import Guards
from iotask.models import Task, TaskFile, TaskRun, TaskRunError

log = logging.getLogger("iotask.runner")

TRIGGERS = ("cron", "url", "manual")
MAX_STORED_ROW_ERRORS = 1000
MAX_REJECTED_ROWS = 100_000  # rows written to a reject file; the count says how many in all
MAX_KEY_TEXT = 500  # a row's key as stored and shown: enough to find it, never megabytes
MAX_MESSAGE = 2000  # run and row messages: TEXT holds 64 KB on MariaDB
RETRYABLE_CODES = {1205, 1213}  # MySQL/MariaDB lock wait timeout, deadlock
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # PostgreSQL serialization failure, deadlock
T = TypeVar("T")


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = orig.args[0] if orig is not None and orig.args else None
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in RETRYABLE_CODES or sqlstate in RETRYABLE_SQLSTATES


def transaction(engine: Engine, work: Callable[[Connection], T], attempts: int = 6) -> T:
    """Run a short transaction, retrying deadlocks and lock timeouts (they happen under load).

    SQLite needs no retry here: its busy timeout already waits for the writer ahead.
    """
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            if attempt == attempts - 1 or not _retryable(exc):
                raise
            time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
    raise AssertionError("unreachable")


def shorten(text: str | None, limit: int) -> str | None:
    """Text cut to ``limit`` characters, saying how much was cut: stored values stay bounded."""
    if text is None or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def due_at(task: Task, tz) -> datetime | None:
    """When the task is next due (naive UTC); None means now. Derived afresh on every call.

    A failed or held task waits for its retry delay after the last attempt, on top of its
    schedule, so a broken feed is not hammered every minute.
    """
    parsed = schedule.parse(task.schedule_type, task.schedule)
    due = schedule.next_due(parsed, task.last_execution, tz)
    if task.fail_count > 0 and task.last_attempt is not None:
        retry = task.last_attempt + schedule.retry_delay(task.fail_count, parsed, tz)
        due = retry if due is None else max(due, retry)
    return due


@dataclass
class TaskResult:
    """What happened to one task in one call: executed or not, and how it ended."""

    task: str
    executed: bool
    status: str | None = None
    run_id: int | None = None
    started: datetime | None = None
    finished: datetime | None = None
    scheduled: datetime | None = None
    counts: Counts = field(default_factory=Counts)
    error: str | None = None
    row_errors: list[RowError] = field(default_factory=list)
    note: str | None = None
    reject_file: str | None = None
    changes: ChangeSet | None = None  # what a dry run would have done

    @property
    def ok(self) -> bool:
        """Executed successfully, or rightly not executed (not due, running elsewhere)."""
        if self.executed:
            return self.status in EXECUTED
        return self.status != FAILED

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()


class Lease:
    """The claim on a task row, renewed in the background while the task runs."""

    def __init__(self, engine: Engine, database_url: str, task: str, token: str,
                 seconds: int) -> None:
        self.engine, self.database_url = engine, database_url
        self.task, self.token, self.seconds = task, token, seconds
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease:{task}", daemon=True)

    def _renew_on(self, conn: Connection) -> bool:
        until = utcnow() + timedelta(seconds=self.seconds)
        result = conn.execute(update(Task).where(Task.name == self.task,
                                                 Task.locked_by == self.token)
                              .values(locked_until=until))
        if result.rowcount != 1:
            self.lost = True
        return not self.lost

    def renew(self) -> bool:
        return transaction(self.engine, self._renew_on)

    def check(self, connection: Connection | None = None) -> None:
        """Raise LeaseLost unless the lease is still ours; renew it for the commit ahead.

        A destination in the iotask database passes its own connection, so the check runs in the
        same transaction as its changes and both commit together or not at all.
        """
        same_database = connection is not None and (
            connection.engine.url.render_as_string(hide_password=False)
            == self.engine.url.render_as_string(hide_password=False))
        owned = (not self.lost and
                 (self._renew_on(connection) if same_database else self.renew()))
        if not owned:
            raise LeaseLost(f"task {self.task!r} was taken over by another runner: "
                            "this run committed nothing")

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.renew():
                    log.warning("task %s: lease lost to another runner", self.task)
                    return
            except DBAPIError as exc:
                log.warning("task %s: could not renew the lease: %s", self.task,
                            db.reason(exc))

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Run:
    """The RunContext a connector sees during one run (or dry run: no lease, nothing applied)."""

    def __init__(self, task: Task, run_id: int, lease: Lease | None, config: Config,
                 engine: Engine, accept: bool = False, reimport: bool = False) -> None:
        self.task = task.name
        self.run_id = run_id
        self.import_type = tasks.import_type_name(task.import_type)
        self.database_url = config.database_url
        self.key: list[str] | None = None
        self.owner: str | None = task.conn_source
        self.dry_run = lease is None
        self.file_roots: list[Path] | None = list(config.file_roots)
        self.reimport = reimport
        self.stays_due = False  # files still being written: due again at the next run-due
        self.counts = Counts()
        self.files: list[str] = []
        self.notes: list[str] = []
        self.reject_files: list[str] = []
        self._config, self._engine = config, engine
        self.errors: list[RowError] = []
        self.rejected: dict[int, str] = {}  # row index: first message, for the reject file
        self.changes: ChangeSet | None = None
        self.verdict: str | None = None  # what the guards would say about a dry run
        self._guard_settings = (task.max_errors, task.max_remove, task.allow_empty, accept)
        self._lease = lease

    @property
    def guards(self) -> Guards:
        """Read when the change set is reviewed, so a hand-edited bad limit fails the run only."""
        return Guards.for_task(self.task, self.import_type, *self._guard_settings)

    def row_error(self, error: RowError) -> None:
        self.counts.failed += 1
        if len(self.errors) < MAX_STORED_ROW_ERRORS:
            self.errors.append(RowError(error.row_index, shorten(error.message, MAX_MESSAGE),
                                        shorten(error.key_values, MAX_KEY_TEXT),
                                        shorten(error.column, 100)))
        index = error.row_index
        if index is not None and index not in self.rejected and \
                len(self.rejected) < MAX_REJECTED_ROWS:
            where = f"column {error.column}: " if error.column and \
                not error.message.startswith(("column", "key column", "duplicate")) else ""
            self.rejected[index] = where + error.message

    def review(self, changes: ChangeSet) -> bool:
        if self.dry_run:  # a folder's files add up to one change set to look at
            self.changes = changes if self.changes is None else _added(self.changes, changes)
            self.verdict = self.verdict or self.guards.verdict(changes, self.counts)
            return False
        self.changes = changes
        self.guards.check(changes, self.counts)
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
        transaction(self._engine, lambda conn: conn.execute(insert(TaskFile).values(
            task=self.task, name=unit.name[:255], location=shorten(unit.where, 900),
            size=unit.size or 0, sha256=unit.sha256 or "", run_id=self.run_id or None,
            imported_at=utcnow())))

    def unit_done(self, source: Connector) -> None:
        """Write the file's rejected rows now, while the source still has it."""
        if self.rejected and not self.dry_run:
            problem = write_rejects(self._config.reject_dir, self.run_id, source, self)
            if problem:
                self.notes.append(problem)
            self.rejected = {}


def _added(first: ChangeSet, then: ChangeSet) -> ChangeSet:
    """Two files' change sets as one: counts summed, sample keys kept up to SAMPLE_KEYS."""
    samples = {kind: (first.samples.get(kind, []) + then.samples.get(kind, []))[:SAMPLE_KEYS]
               for kind in first.samples.keys() | then.samples.keys()}
    return ChangeSet(first.inserts + then.inserts, first.updates + then.updates,
                     first.unchanged + then.unchanged, first.removes + then.removes,
                     max(first.owned, then.owned), then.removal, samples)


class TaskProgress(Protocol):
    """One task's progress display: told after each batch read, closed when the run ends."""

    def update(self, rows: int, done: int | None, total: int | None) -> None:
        """Rows read so far; bytes read and total when the source knows its size."""

    def close(self) -> None:
        """Take the display away before the run's result is reported."""


class Runner:
    """Runs tasks for one trigger (cron, url or manual) against one iotask database."""

    def __init__(self, engine: Engine, config: Config, trigger: str,
                 progress: Callable[[str], TaskProgress] | None = None) -> None:
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {TRIGGERS}")
        self.engine, self.config, self.trigger = engine, config, trigger
        self.progress = progress  # given a task's name, its display; None (cron): no display
        self.reader = db.reader(engine)
        self.runner = runner_name()

    # --- what is due ---------------------------------------------------------------------

    def _task(self, name: str) -> Task | None:
        with Session(self.reader) as session:
            return session.get(Task, name)

    def _enabled_names(self) -> list[str]:
        with self.reader.connect() as conn:
            return list(conn.scalars(select(Task.name).where(Task.enabled == true())
                                     .order_by(Task.sequence, Task.name)))

    def sweep_abandoned(self) -> int:
        """Mark the runs of runners that died (lease expired) abandoned and free their tasks."""
        now = utcnow()
        expired = select(Task.name).where(or_(Task.locked_until.is_(None),
                                              Task.locked_until < now))
        with self.reader.connect() as conn:
            stale = conn.scalar(select(TaskRun.id).where(TaskRun.status == RUNNING,
                                                         TaskRun.task.in_(expired)).limit(1))
        if stale is None:
            return 0

        def work(conn: Connection) -> int:
            marked = conn.execute(
                update(TaskRun).where(TaskRun.status == RUNNING, TaskRun.task.in_(expired))
                .values(status=ABANDONED, finished=now,
                        error="the runner stopped before finishing (its lease expired)")
            ).rowcount
            conn.execute(update(Task).where(Task.locked_until < now)
                         .values(locked_by=None, locked_until=None, last_status=ABANDONED))
            return marked

        marked = transaction(self.engine, work)
        if marked:
            log.warning("marked %d run(s) abandoned: their runner stopped", marked)
        return marked

    # --- claiming ------------------------------------------------------------------------

    def _claim(self, task: Task, now: datetime, manual: bool) -> tuple[int, str] | None:
        token = f"{self.runner}:{secrets.token_hex(4)}"
        conditions = [Task.name == task.name,
                      or_(Task.locked_until.is_(None), Task.locked_until < now)]
        if not manual:
            conditions.append(Task.run_count == task.run_count)

        def work(conn: Connection) -> int | None:
            claimed = conn.execute(
                update(Task).where(*conditions).values(
                    locked_by=token,
                    locked_until=now + timedelta(seconds=self.config.lease_seconds),
                    run_count=Task.run_count + 1, last_attempt=now, last_status=RUNNING)
            ).rowcount
            if claimed != 1:
                return None
            conn.execute(update(TaskRun).where(TaskRun.task == task.name,
                                               TaskRun.status == RUNNING)
                         .values(status=ABANDONED, finished=now,
                                 error="the runner stopped before finishing (lease expired)"))
            return conn.execute(insert(TaskRun).values(
                task=task.name, triggered_by=self.trigger, runner=self.runner, started=now,
                status=RUNNING)).inserted_primary_key[0]

        run_id = transaction(self.engine, work)
        return None if run_id is None else (run_id, token)

    def _holder(self, task: Task) -> str:
        with self.reader.connect() as conn:
            run = conn.execute(select(TaskRun.runner, TaskRun.started)
                               .where(TaskRun.task == task.name, TaskRun.status == RUNNING)
                               .order_by(TaskRun.id.desc()).limit(1)).first()
        tz = self.config.timezone
        if run is None:
            return f"locked by {task.locked_by} until {clock.show(task.locked_until, tz)}"
        return f"running on {run.runner} since {clock.show(run.started, tz)}"

    # --- running -------------------------------------------------------------------------

    def _execute(self, task: Task, run_id: int, token: str, started: datetime,
                 scheduled: datetime | None, accept: bool = False,
                 reimport: bool = False) -> TaskResult:
        log.info("task %s: run %d started (%s, %s)", task.name, run_id, self.trigger,
                 self.runner)
        lease = Lease(self.engine, self.config.database_url, task.name, token,
                      self.config.lease_seconds)
        shown = self.progress(task.name) if self.progress is not None else None
        error: str | None = None
        source: Connector | None = None
        context = Run(task, run_id, lease, self.config, self.engine, accept, reimport)
        keep_counts = False
        try:
            with lease:
                with Session(self.reader) as session:
                    source = connections.endpoint(session, task.conn_source, "source")
                    destination = connections.endpoint(session, task.conn_destination,
                                                       "destination")
                status = data_engine.execute(source, destination, context, task.map,
                                             shown.update if shown is not None else None)
        except NothingToProcess as exc:
            status, error = NOTHING_TO_PROCESS, str(exc) or None
            context.stays_due = isinstance(exc, NotReadyYet)
        except Held as exc:
            status, error = HELD, str(exc)
        except LeaseLost as exc:
            status, error = ABANDONED, str(exc)
        except FilesFailed as exc:  # the other files were applied: their counts stand
            status, error, keep_counts = FAILED, str(exc), True
        except (IotaskError, ConnectorError) as exc:
            status, error = FAILED, str(exc)
        except Exception as exc:  # a connector's bug or an I/O error: this task fails alone
            log.debug("task %s: run %d failed", task.name, run_id, exc_info=True)
            status, error = FAILED, f"{type(exc).__name__}: {exc}".splitlines()[0]
        finally:
            if shown is not None:
                shown.close()
        if context.rejected and source is not None and status != ABANDONED:
            context.unit_done(source)
        notes = [note for note in context.notes if note not in (error or "")]
        if notes and status != NOTHING_TO_PROCESS:
            error = "; ".join([*([error] if error else []), *notes])
        finished = utcnow()
        error = shorten(error, MAX_MESSAGE)
        if status not in EXECUTED and not keep_counts:  # rolled back: nothing was applied
            counts = context.counts
            counts.inserted = counts.updated = counts.unchanged = counts.removed = 0
        if lease.lost and status != ABANDONED:
            error = (error + "; " if error else "") + "lease lost while finishing"
        try:
            self._finish(task, run_id, token, started, finished, status, error, context)
        except DBAPIError as exc:  # keep the outcome and free the task, without the row errors
            reason = db.reason(exc)
            log.error("task %s: run %d: could not store its row errors: %s", task.name, run_id,
                      reason)
            note = f"its {len(context.errors)} row errors could not be stored: {reason}"
            error = shorten(f"{error}; {note}" if error else note, MAX_MESSAGE)
            context.errors = []
            self._finish(task, run_id, token, started, finished, status, error, context)
        log.info("task %s: run %d %s in %.1fs: read %d, inserted %d, updated %d, unchanged %d, "
                "removed %d, failed %d%s", task.name, run_id, status,
                (finished - started).total_seconds(), context.counts.read,
                context.counts.inserted, context.counts.updated, context.counts.unchanged,
                context.counts.removed, context.counts.failed, f": {error}" if error else "")
        return TaskResult(task.name, True, status, run_id, started, finished, scheduled,
                          context.counts, error, context.errors, reject_file=context.reject_file)

    def _finish(self, task: Task, run_id: int, token: str, started: datetime,
                finished: datetime, status: str, error: str | None, context: Run) -> None:
        values: dict[str, Any] = {"locked_by": None, "locked_until": None,
                                  "last_status": status, "last_error": error}
        if status in EXECUTED and not context.stays_due:
            values.update(last_execution=started, fail_count=0)
        elif status in (FAILED, HELD):
            values.update(fail_count=Task.fail_count + 1)
        counts = context.counts
        stored_error = error
        if counts.failed > len(context.errors):
            note = f"{counts.failed} rows rejected, the first {len(context.errors)} stored"
            stored_error = f"{error}; {note}" if error else note

        def work(conn: Connection) -> None:
            if status != ABANDONED:
                conn.execute(update(Task).where(Task.name == task.name,
                                                Task.locked_by == token).values(**values))
            conn.execute(update(TaskRun).where(TaskRun.id == run_id).values(
                status=status, finished=finished, rows_read=counts.read,
                rows_inserted=counts.inserted, rows_updated=counts.updated,
                rows_unchanged=counts.unchanged, rows_removed=counts.removed,
                rows_failed=counts.failed, reject_file=context.reject_file,
                files=json.dumps(context.files, ensure_ascii=False) if context.files else None,
                error=stored_error))
            if context.errors:
                conn.execute(insert(TaskRunError), [
                    {"run_id": run_id, "row_index": e.row_index, "key_values": e.key_values,
                     "column_name": e.column, "message": e.message} for e in context.errors])

        transaction(self.engine, work)

    # --- entry points --------------------------------------------------------------------

    def run_due(self) -> list[TaskResult]:
        """Every enabled task that is due, in sequence order, each at most once."""
        self.sweep_abandoned()
        results = []
        for name in self._enabled_names():
            try:
                result = self._run_if_due(name)
            except DBAPIError as exc:  # e.g. SQLite busy beyond its timeout: try next minute
                result = TaskResult(name, False, FAILED,
                                    error=f"database error: {db.reason(exc)}")
            if result is not None:
                results.append(result)
        return results

    def _run_if_due(self, name: str) -> TaskResult | None:
        task = self._task(name)
        if task is None or not task.enabled:
            return None
        now = utcnow()
        try:
            due = due_at(task, self.config.timezone)
        except schedule.ScheduleError as exc:
            return TaskResult(name, False, FAILED, error=f"unreadable schedule: {exc}")
        if due is not None and due > now:
            return TaskResult(name, False, scheduled=due, note="not due")
        if task.locked_until is not None and task.locked_until >= now:
            return TaskResult(name, False, scheduled=due, note=self._holder(task))
        claim = self._claim(task, now, manual=False)
        if claim is None:
            return TaskResult(name, False, scheduled=due, note="taken by another runner")
        return self._execute(task, *claim, now, due)

    def run(self, names: Sequence[str], accept_changes: bool = False,
            reimport: bool = False) -> list[TaskResult]:
        """Run these tasks now, whatever their schedule or enabled flag; still claiming.

        ``accept_changes``: a person has looked at a held change set; apply it this once.
        ``reimport``: import files even when their content was imported before.
        """
        missing = [name for name in names if self._task(name) is None]
        if missing:
            raise NotFound(f"no task named {missing[0]!r}: see `iotask task list`")
        self.sweep_abandoned()
        results = []
        for name in names:
            task = self._task(name)
            if task is None:  # removed while the earlier tasks ran
                results.append(TaskResult(name, False, FAILED, error="task was removed"))
                continue
            now = utcnow()
            claim = self._claim(task, now, manual=True)
            if claim is None:
                fresh = self._task(name) or task
                results.append(TaskResult(name, False, FAILED,
                                          error=f"task {name!r} is {self._holder(fresh)}"))
                continue
            results.append(self._execute(task, *claim, now, None, accept_changes, reimport))
        return results

    def dry_run(self, name: str) -> TaskResult:
        """Compute the task's change set and discard it: no claim, no history, nothing applied.

        The result's ``changes`` holds the counts and sample keys, ``note`` the guards' verdict.
        """
        task = self._task(name)
        if task is None:
            raise NotFound(f"no task named {name!r}: see `iotask task list`")
        context = Run(task, 0, None, self.config, self.engine)
        started = utcnow()
        error: str | None = None
        try:
            with Session(self.reader) as session:
                source = connections.endpoint(session, task.conn_source, "source")
                destination = connections.endpoint(session, task.conn_destination,
                                                   "destination")
            status = data_engine.execute(source, destination, context, task.map)
        except NothingToProcess as exc:
            status, error = NOTHING_TO_PROCESS, str(exc) or None
        except (IotaskError, ConnectorError) as exc:
            status, error = FAILED, str(exc)
        return TaskResult(name, False, status, None, started, utcnow(), None, context.counts,
                          error, context.errors, note=context.verdict, changes=context.changes)


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


@dataclass
class ResetChange:
    task: str
    changed: bool
    message: str


def reset(engine: Engine, config: Config, names: Iterable[str], to: datetime | None = None,
          force: bool = False) -> list[ResetChange]:
    """Make tasks due at the next run-due (or as if last executed at ``to``), logged in history.

    A task that is running is left alone unless ``force``: then its run is marked abandoned.
    """
    tz = config.timezone
    who = f"{getpass.getuser()}@{runner_name()}"
    changes = []
    for name in names:
        now = utcnow()
        with Session(db.reader(engine)) as session:
            task = session.get(Task, name)
        if task is None:
            raise NotFound(f"no task named {name!r}: see `iotask task list`")
        running = task.locked_until is not None and task.locked_until >= now
        if running and not force:
            changes.append(ResetChange(name, False, f"{name}: not reset, it is running "
                                       f"({task.locked_by}); --force if that runner is dead"))
            continue
        before = (f"last_execution {clock.show(task.last_execution, tz) or 'none'} -> "
                  f"{clock.show(to, tz) or 'none'}, fail_count {task.fail_count} -> 0")
        message = f"{name}: {before}" + (", running run marked abandoned" if running else "")

        transaction(engine, lambda conn, task=task, message=message, now=now:
                    _reset_row(conn, task.name, to, now, who, message))
        changes.append(ResetChange(name, True, message))
    return changes


def _reset_row(conn: Connection, name: str, to: datetime | None, now: datetime, who: str,
               message: str) -> None:
    conn.execute(update(Task).where(Task.name == name).values(
        last_execution=to, fail_count=0, locked_by=None, locked_until=None, last_status=RESET))
    conn.execute(update(TaskRun).where(TaskRun.task == name, TaskRun.status == RUNNING)
                 .values(status=ABANDONED, finished=now,
                         error=f"abandoned by a forced reset by {who}"))
    conn.execute(insert(TaskRun).values(task=name, triggered_by="manual", runner=who, started=now,
                                        finished=now, status=RESET, error=message))


def failed_task_names(engine: Engine) -> list[str]:
    with db.reader(engine).connect() as conn:
        return list(conn.scalars(select(Task.name).where(
            or_(Task.fail_count > 0, Task.last_status.in_((FAILED, HELD, ABANDONED))))
            .order_by(Task.sequence, Task.name)))


def all_task_names(engine: Engine) -> list[str]:
    with db.reader(engine).connect() as conn:
        return list(conn.scalars(select(Task.name).order_by(Task.sequence, Task.name)))

