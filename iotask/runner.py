"""run-due, run, dry runs and previews: decide what is due, claim it (``iotask.claims``), run its
data flow (``iotask.dataflow``) in a run context (``iotask.run_context``), and record the run.

One task's failure never stops the others: every exception a run raises becomes a run status
(``outcome``), recorded in ``core_task_run`` with its message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from shlex import quote
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, insert, select, true, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from iotask import claims, clock, connections, dataflow, db, notify, schedule, tasks
from iotask.claims import Lease
from iotask.config import Config
from iotask.connectors.base import Connector
from iotask.connectors.context import ChangeSet, Counts, MemoryContext, RowError
from iotask.connectors.errors import (
    ConnectorError,
    FilesFailed,
    Held,
    LeaseLost,
    NothingToProcess,
    NotReadyYet,
    TooManyErrors,
)
from iotask.connectors.masking import mask
from iotask.errors import IotaskError, NotFound
from iotask.mapping import LINE
from iotask.models import Task, TaskRun, TaskRunError
from iotask.run_context import MAX_MESSAGE, Run, shorten
from iotask.run_status import EXECUTED, RunStatus

log = logging.getLogger("iotask.runner")

TRIGGERS = ("cron", "url", "manual", "console")
# What run-due judges a task by, read for every enabled task in one SELECT: a task that is not
# due costs no ORM object and no query of its own.
SCHEDULING = (Task.name, Task.schedule_type, Task.schedule, Task.last_execution, Task.fail_count,
              Task.last_attempt)


@dataclass
class TaskResult:
    """What happened to one task in one call: executed or not, and how it ended."""

    task: str
    executed: bool
    status: RunStatus | None = None
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
    notes: list[str] = field(default_factory=list)  # what was done to files: not errors

    @property
    def ok(self) -> bool:
        """Executed successfully, or rightly not executed (not due, running elsewhere)."""
        if self.executed:
            return self.status in EXECUTED or self.status == RunStatus.ADOPTED
        return self.status != RunStatus.FAILED

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()


@dataclass
class Outcome:
    """How a run that raised ends: its status and message; ``keep_counts`` when some of it was
    applied (other files of a folder); ``stays_due`` when its files were still being written."""

    status: RunStatus
    error: str | None
    keep_counts: bool = False
    stays_due: bool = False


def outcome(exc: Exception, task: str) -> Outcome:
    """The run status for what a run raised. An unexpected exception is a bug or an I/O error:
    logged with its traceback, and that task alone fails."""
    if isinstance(exc, NothingToProcess):
        return Outcome(RunStatus.NOTHING_TO_PROCESS, str(exc) or None,
                       stays_due=isinstance(exc, NotReadyYet))
    if isinstance(exc, Held):
        return Outcome(RunStatus.HELD, str(exc))
    if isinstance(exc, LeaseLost):
        return Outcome(RunStatus.ABANDONED, str(exc))
    if isinstance(exc, FilesFailed):  # the other files were applied: their counts stand
        return Outcome(RunStatus.FAILED, str(exc), keep_counts=True)
    if isinstance(exc, IotaskError | ConnectorError | TooManyErrors):
        return Outcome(RunStatus.FAILED, str(exc))
    log.error("task %s failed on an unexpected error", task, exc_info=exc)
    return Outcome(RunStatus.FAILED, f"{type(exc).__name__}: {exc}".splitlines()[0])


def open_endpoints(engine: Engine, task: Task) -> tuple[Connector, Connector]:
    """The task's source and destination connectors, from their connections as stored now."""
    with Session(db.reader(engine)) as session:
        return (connections.endpoint(session, task.conn_source, "source"),
                connections.endpoint(session, task.conn_destination, "destination"))


@dataclass
class Preview:
    """The first source rows as the task's map makes them (``task preview``)."""

    columns: list[str]
    rows: list[tuple[int | None, dict[str, Any]]]  # (line, destination column: value)
    row_errors: list[RowError]
    nothing: str | None = None  # why there is nothing to preview (no file yet)


class TaskProgress(Protocol):
    """One task's progress display: told after each batch read, closed when the run ends."""

    def update(self, rows: int, done: int | None, total: int | None) -> None:
        """Rows read so far; bytes read and total when the source knows its size."""

    def close(self) -> None:
        """Take the display away before the run's result is reported."""


class Runner:
    """Runs tasks for one trigger (cron, url, manual or console) against one iotask database."""

    def __init__(self, engine: Engine, config: Config, trigger: str,
                 progress: Callable[[str], TaskProgress] | None = None) -> None:
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {TRIGGERS}")
        self.engine, self.config, self.trigger = engine, config, trigger
        self.progress = progress  # given a task's name, its display; None (cron): no display
        self.reader = db.reader(engine)
        self.runner = claims.runner_name()

    def _task(self, name: str) -> Task | None:
        with Session(self.reader) as session:
            return session.get(Task, name)

    def _enabled(self) -> dict[str, Any]:
        """Every enabled task's scheduling columns (rows), by name, in run order."""
        with self.reader.connect() as conn:
            rows = conn.execute(select(*SCHEDULING).where(Task.enabled == true())
                                .order_by(Task.sequence, Task.name))
            return {row.name: row for row in rows}

    def _claim(self, task: Task, now: datetime, manual: bool) -> tuple[int, str] | None:
        return claims.claim(self.engine, task, now, trigger=self.trigger, runner=self.runner,
                            lease_seconds=self.config.lease_seconds, manual=manual)

    # --- running -------------------------------------------------------------------------

    def _execute(self, task: Task, run_id: int, token: str, started: datetime,
                 scheduled: datetime | None, accept: bool = False,
                 reimport: bool = False) -> TaskResult:
        log.info("task %s: run %d started (%s, %s)", task.name, run_id, self.trigger,
                 self.runner)
        lease = Lease(self.engine, self.config.database_url, task.name, token,
                      self.config.lease_seconds)
        shown = self.progress(task.name) if self.progress is not None else None
        source: Connector | None = None
        context = Run(task, run_id, lease, self.config, self.engine, accept, reimport)
        warning = notify.started(self.config, task, run_id, self.trigger)
        if warning:
            context.notes.append(warning)
        ended = Outcome(RunStatus.FAILED, None)
        try:
            with lease:
                tasks.check_runnable(task)
                source, destination = open_endpoints(self.engine, task)
                ended.status = dataflow.execute(source, destination, context, task.map,
                                                shown.update if shown is not None else None)
        except Exception as exc:
            ended = outcome(exc, task.name)
            context.stays_due = ended.stays_due
        finally:
            if shown is not None:
                shown.close()
        status, error = ended.status, ended.error
        if status == RunStatus.NOTHING_TO_PROCESS and task.expect:
            context.stays_due = True  # an expected feed: keep looking until the input comes
            missing, first = self._missing_input(task, started)
            if missing is not None:  # the task shows missing_input until the input comes;
                context.task_status, context.task_error = RunStatus.MISSING_INPUT, missing
                if first:  # the run that says so first alerts, once per window
                    status, error = RunStatus.MISSING_INPUT, missing
        if context.rejected and source is not None and status != RunStatus.ABANDONED:
            context.unit_done(source)
        context.notes = [mask(note) for note in context.notes if note not in (error or "")]
        finished = clock.utcnow()
        error = shorten(mask(error) if error else error, MAX_MESSAGE)
        if status not in EXECUTED and not ended.keep_counts:  # rolled back: nothing applied
            counts = context.counts
            counts.inserted = counts.updated = counts.unchanged = counts.removed = 0
        if lease.lost and status != RunStatus.ABANDONED:
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
        result = TaskResult(task.name, True, status, run_id, started, finished, scheduled,
                            context.counts, error, context.errors,
                            reject_file=context.reject_file, notes=context.notes)
        warning = notify.ended(self.config, task, result)
        if warning:  # recorded with the run; the task's outcome stands
            log.warning("task %s: run %d: %s", task.name, run_id, warning)
            result.notes = [*result.notes, mask(warning)]
            db.transaction(self.engine, lambda conn: conn.execute(
                update(TaskRun).where(TaskRun.id == run_id)
                .values(notes=json.dumps(result.notes, ensure_ascii=False))))
        return result

    def _missing_input(self, task: Task, now: datetime) -> tuple[str | None, bool]:
        """Whether the window's deadline passed with nothing to process (the reason), and
        whether this is the first run of the window to say so (it alerts, the others not)."""
        expect = schedule.parse_expect(task.expect or "")
        window = schedule.expect_window(expect, task.last_execution, now, self.config.timezone)
        if window is None or now < window[1]:
            return None, False
        with self.reader.connect() as conn:
            told = conn.scalar(select(TaskRun.id).where(
                TaskRun.task == task.name, TaskRun.status == RunStatus.MISSING_INPUT,
                TaskRun.started >= window[0]).limit(1))
        return (f"no input by {clock.show(window[1], self.config.timezone)} (expect "
                f"{expect.text}): still looking at each run-due"), told is None

    def _finish(self, task: Task, run_id: int, token: str, started: datetime,
                finished: datetime, status: RunStatus, error: str | None, context: Run) -> None:
        values: dict[str, Any] = {"locked_by": None, "locked_until": None,
                                  "last_status": context.task_status or status,
                                  "last_error": context.task_error or error}
        if status in EXECUTED and not context.stays_due:
            values.update(last_execution=started, fail_count=0)
        elif status in (RunStatus.FAILED, RunStatus.HELD):
            values.update(fail_count=Task.fail_count + 1)
        counts = context.counts
        stored_error = error
        if counts.failed > len(context.errors):
            note = f"{counts.failed} rows rejected, the first {len(context.errors)} stored"
            stored_error = f"{error}; {note}" if error else note

        def work(conn: Connection) -> None:
            if status != RunStatus.ABANDONED:
                conn.execute(update(Task).where(Task.name == task.name,
                                                Task.locked_by == token).values(**values))
            conn.execute(update(TaskRun).where(TaskRun.id == run_id).values(
                status=status, finished=finished, rows_read=counts.read,
                rows_inserted=counts.inserted, rows_updated=counts.updated,
                rows_unchanged=counts.unchanged, rows_removed=counts.removed,
                rows_failed=counts.failed, reject_file=context.reject_file,
                files=json.dumps(context.files, ensure_ascii=False) if context.files else None,
                notes=json.dumps(context.notes, ensure_ascii=False) if context.notes else None,
                error=stored_error))
            if context.errors:
                conn.execute(insert(TaskRunError), [
                    {"run_id": run_id, "row_index": e.row_index,
                     "key_values": mask(e.key_values) if e.key_values else e.key_values,
                     "column_name": e.column, "message": mask(e.message)}
                    for e in context.errors])

        db.transaction(self.engine, work)

    # --- entry points --------------------------------------------------------------------

    def run_due(self) -> list[TaskResult]:
        """Every enabled task that is due, in sequence order, each at most once."""
        claims.sweep_abandoned(self.engine)
        results = []
        enabled = self._enabled()
        stale = False  # a task ran: the rows read before it may have changed meanwhile
        for name in list(enabled):
            if stale:
                enabled, stale = self._enabled(), False
            row = enabled.get(name)
            if row is None:  # removed or disabled while an earlier task ran
                continue
            try:
                result = self._not_due(row) or self._run_if_due(name)
            except DBAPIError as exc:  # e.g. SQLite busy beyond its timeout: try next minute
                result = TaskResult(name, False, RunStatus.FAILED,
                                    error=f"database error: {db.reason(exc)}")
            except Exception as exc:  # a bug: this task fails alone, run-due goes on
                result = TaskResult(name, False, RunStatus.FAILED,
                                    error=outcome(exc, name).error)
            if result is not None:
                results.append(result)
                stale = stale or result.executed
        return results

    def _not_due(self, row: Any) -> TaskResult | None:
        """The result for a task its scheduling columns show not due; None when it may be due
        (or its schedule is unreadable): ``_run_if_due`` then reads the whole row and judges it
        again before claiming it."""
        try:
            due = schedule.due_at(row, self.config.timezone)
        except schedule.ScheduleError:
            return None
        if due is not None and due > clock.utcnow():
            return TaskResult(row.name, False, scheduled=due, note="not due")
        return None

    def _run_if_due(self, name: str) -> TaskResult | None:
        task = self._task(name)
        if task is None or not task.enabled:
            return None
        now = clock.utcnow()
        try:
            due = schedule.due_at(task, self.config.timezone)
        except schedule.ScheduleError as exc:
            error = (f"task {name!r}: unreadable schedule in core_task: {exc}; fix it with "
                     f"`iotask task edit {quote(name)} --at HH:MM` (or --every, --cron)")
            self._record_unrunnable(task, error)
            return TaskResult(name, False, RunStatus.FAILED, error=error)
        if due is not None and due > now:
            return TaskResult(name, False, scheduled=due, note="not due")
        if task.locked_until is not None and task.locked_until >= now:
            return TaskResult(name, False, scheduled=due,
                              note=claims.holder(self.engine, task, self.config.timezone))
        claim = self._claim(task, now, manual=False)
        if claim is None:
            return TaskResult(name, False, scheduled=due, note="taken by another runner")
        return self._execute(task, *claim, now, due)

    def _record_unrunnable(self, task: Task, error: str) -> None:
        """A task run-due cannot even judge: its row says so (last_status, last_error), for a
        DBA or a monitor, without a run in history every minute."""
        if task.last_status == RunStatus.FAILED and task.last_error == error:
            return
        db.transaction(self.engine, lambda conn: conn.execute(
            update(Task).where(Task.name == task.name).values(
                last_status=RunStatus.FAILED, last_error=shorten(error, MAX_MESSAGE))))

    def run(self, names: Sequence[str], accept_changes: bool = False,
            reimport: bool = False) -> list[TaskResult]:
        """Run these tasks now, whatever their schedule or enabled flag; still claiming.

        ``accept_changes``: a person has looked at a held change set; apply it this once.
        ``reimport``: import files even when their content was imported before.
        """
        missing = [name for name in names if self._task(name) is None]
        if missing:
            raise NotFound(f"no task named {missing[0]!r}: see `iotask task list`")
        claims.sweep_abandoned(self.engine)
        results = []
        for name in names:
            task = self._task(name)
            if task is None:  # removed while the earlier tasks ran
                results.append(TaskResult(name, False, RunStatus.FAILED,
                                          error="task was removed"))
                continue
            now = clock.utcnow()
            claim = self._claim(task, now, manual=True)
            if claim is None:
                fresh = self._task(name) or task
                where = claims.holder(self.engine, fresh, self.config.timezone)
                results.append(TaskResult(name, False, RunStatus.FAILED,
                                          error=f"task {name!r} is {where}"))
                continue
            results.append(self._execute(task, *claim, now, None, accept_changes, reimport))
        return results

    def _existing(self, name: str) -> Task:
        task = self._task(name)
        if task is None:
            raise NotFound(f"no task named {name!r}: see `iotask task list`")
        return task

    def dry_run(self, name: str, reimport: bool = False) -> TaskResult:
        """Compute the task's change set and discard it: no claim, no history, nothing applied.

        The result's ``changes`` holds the counts and sample keys, ``note`` the guards' verdict,
        ``status`` what a real run would end as (held, failed, success, ...).
        """
        task = self._existing(name)
        context = Run(task, 0, None, self.config, self.engine, reimport=reimport)
        started = clock.utcnow()
        error: str | None = None
        try:
            tasks.check_runnable(task)
            source, destination = open_endpoints(self.engine, task)
            status = dataflow.execute(source, destination, context, task.map)
        except Exception as exc:
            ended = outcome(exc, name)
            status, error = ended.status, ended.error
        verdict = context.verdict
        if verdict is not None:  # what a real run would have ended as
            status = outcome(verdict, name).status
        return TaskResult(name, False, status, None, started, clock.utcnow(), None, context.counts,
                          mask(error) if error else error, context.errors,
                          note=None if verdict is None else str(verdict),
                          changes=context.changes)

    def adopt(self, name: str, everything: bool = False, dry_run: bool = False) -> TaskResult:
        """Give the task's source the destination records no source owns (those whose keys it
        holds now, or ``everything``), so that a sync may remove them once they leave the
        source. Claims the task like a run, and is recorded in its history (status adopted,
        the count as updated); a dry run only counts."""
        task = self._existing(name)
        tasks.check_runnable(task)
        started = clock.utcnow()
        if dry_run:
            context = Run(task, 0, None, self.config, self.engine)
            try:
                source, destination = open_endpoints(self.engine, task)
                found = dataflow.adopt(source, destination, context, task.map, everything)
            except Exception as exc:
                ended = outcome(exc, name)
                return TaskResult(name, False, ended.status, error=mask(ended.error or ""))
            return TaskResult(name, False, RunStatus.ADOPTED, None, started, clock.utcnow(),
                              counts=Counts(read=context.counts.read, updated=found))
        claim = self._claim(task, started, manual=True)
        if claim is None:
            holder = claims.holder(self.engine, self._task(name) or task, self.config.timezone)
            return TaskResult(name, False, RunStatus.FAILED, error=f"task {name!r} is {holder}")
        run_id, token = claim
        lease = Lease(self.engine, self.config.database_url, name, token,
                      self.config.lease_seconds)
        context = Run(task, run_id, lease, self.config, self.engine)
        error: str | None = None
        try:
            with lease:
                source, destination = open_endpoints(self.engine, task)
                context.counts.updated = dataflow.adopt(source, destination, context, task.map,
                                                        everything)
            status = RunStatus.ADOPTED
        except Exception as exc:
            ended = outcome(exc, name)
            status, error = ended.status, shorten(mask(ended.error or ""), MAX_MESSAGE)
        finished = clock.utcnow()
        counts = context.counts
        note = (f"{counts.updated} records no source owned now belong to {task.conn_source}"
                + ("" if everything else " (those whose keys the source holds)"))

        def work(conn: Connection) -> None:
            conn.execute(update(Task).where(Task.name == name, Task.locked_by == token)
                         .values(locked_by=None, locked_until=None, last_status=task.last_status))
            conn.execute(update(TaskRun).where(TaskRun.id == run_id).values(
                status=status, finished=finished, rows_read=counts.read,
                rows_updated=counts.updated, rows_failed=counts.failed, error=error,
                notes=None if error else json.dumps([note], ensure_ascii=False)))

        db.transaction(self.engine, work)
        return TaskResult(name, True, status, run_id, started, finished, None, counts, error,
                          context.errors, notes=[] if error else [note])

    def preview(self, name: str, limit: int) -> Preview:
        """The first ``limit`` source rows through the task's map. Reads the source only: the
        destination is asked for its columns, never created, changed or truncated."""
        task = self._existing(name)
        source, destination = open_endpoints(self.engine, task)
        context = MemoryContext(task=name, import_type=tasks.import_type_name(task.import_type),
                                database_url=self.config.database_url,
                                file_roots=list(self.config.file_roots),
                                timezone=self.config.timezone)
        try:
            columns, rows = dataflow.preview(source, destination, context, task.map, limit)
        except NothingToProcess as exc:
            return Preview([], [], [], nothing=str(exc))
        except ConnectorError as exc:
            raise IotaskError(str(exc)) from None
        return Preview(columns, [(row.get(LINE), {c: row.get(c) for c in columns})
                                 for row in rows], context.errors)
