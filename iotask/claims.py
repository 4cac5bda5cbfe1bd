"""Claims and leases: how a task is taken by one runner, and never run twice.

The claim is one conditional UPDATE of the task row (a lease: ``locked_by``/``locked_until``),
which works the same on SQLite, MariaDB and PostgreSQL. Every claim increments ``run_count``, and a
run-due claim only succeeds if ``run_count`` is still what it was when the task was judged due, so
two runners that both saw a task due cannot both run it. The lease is renewed while the task runs;
a runner whose lease expired is presumed dead, its run is marked abandoned, and it cannot commit.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, insert, or_, select, update
from sqlalchemy.exc import DBAPIError

from iotask import clock, db
from iotask.connectors.errors import LeaseLost
from iotask.models import Task, TaskRun
from iotask.run_status import RunStatus

log = logging.getLogger("iotask.claims")

LEASE_EXPIRED = "the runner stopped before finishing (its lease expired)"


def runner_name() -> str:
    """This process as runs and claims name it: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


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
        until = clock.utcnow() + timedelta(seconds=self.seconds)
        result = conn.execute(update(Task).where(Task.name == self.task,
                                                 Task.locked_by == self.token)
                              .values(locked_until=until))
        if result.rowcount != 1:
            self.lost = True
        return not self.lost

    def renew(self) -> bool:
        return db.transaction(self.engine, self._renew_on)

    def check(self, connection: Connection | None = None) -> None:
        """Raise LeaseLost unless the lease is still ours; renew it for the commit ahead.

        A destination in the iotask database passes its own connection, so the check runs in the
        same transaction as its changes and both commit together or not at all.
        """
        same_database = connection is not None and (
            connection.engine.url.render_as_string(hide_password=False)
            == self.engine.url.render_as_string(hide_password=False))
        owned = (not self.lost and
                 (self._renew_on(connection) if connection is not None and same_database
                  else self.renew()))
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


def sweep_abandoned(engine: Engine) -> int:
    """Mark the runs of runners that died (lease expired) abandoned and free their tasks."""
    now = clock.utcnow()
    expired = select(Task.name).where(or_(Task.locked_until.is_(None), Task.locked_until < now))
    with db.reader(engine).connect() as conn:
        stale = conn.scalar(select(TaskRun.id).where(TaskRun.status == RunStatus.RUNNING,
                                                     TaskRun.task.in_(expired)).limit(1))
    if stale is None:
        return 0

    def work(conn: Connection) -> int:
        marked = conn.execute(
            update(TaskRun).where(TaskRun.status == RunStatus.RUNNING, TaskRun.task.in_(expired))
            .values(status=RunStatus.ABANDONED, finished=now, error=LEASE_EXPIRED)
        ).rowcount
        conn.execute(update(Task).where(Task.locked_until < now)
                     .values(locked_by=None, locked_until=None,
                             last_status=RunStatus.ABANDONED))
        return marked

    marked = db.transaction(engine, work)
    if marked:
        log.warning("marked %d run(s) abandoned: their runner stopped", marked)
    return marked


def claim(engine: Engine, task: Task, now: datetime, *, trigger: str, runner: str,
          lease_seconds: int, manual: bool) -> tuple[int, str] | None:
    """Take the task for this runner: (the new run's id, the lease token), or None when another
    runner holds it (or, for run-due, ran it since it was judged due)."""
    token = f"{runner}:{secrets.token_hex(4)}"
    conditions = [Task.name == task.name, or_(Task.locked_until.is_(None),
                                              Task.locked_until < now)]
    if not manual:
        conditions.append(Task.run_count == task.run_count)

    def work(conn: Connection) -> int | None:
        claimed = conn.execute(
            update(Task).where(*conditions).values(
                locked_by=token, locked_until=now + timedelta(seconds=lease_seconds),
                run_count=Task.run_count + 1, last_attempt=now, last_status=RunStatus.RUNNING)
        ).rowcount
        if claimed != 1:
            return None
        conn.execute(update(TaskRun).where(TaskRun.task == task.name,
                                           TaskRun.status == RunStatus.RUNNING)
                     .values(status=RunStatus.ABANDONED, finished=now, error=LEASE_EXPIRED))
        inserted = conn.execute(insert(TaskRun).values(
            task=task.name, triggered_by=trigger, runner=runner, started=now,
            status=RunStatus.RUNNING)).inserted_primary_key
        return None if inserted is None else int(inserted[0])

    run_id = db.transaction(engine, work)
    return None if run_id is None else (run_id, token)


def holder(engine: Engine, task: Task, tz: ZoneInfo) -> str:
    """Who holds the task, for people: the runner and since when."""
    with db.reader(engine).connect() as conn:
        run = conn.execute(select(TaskRun.runner, TaskRun.started)
                           .where(TaskRun.task == task.name,
                                  TaskRun.status == RunStatus.RUNNING)
                           .order_by(TaskRun.id.desc()).limit(1)).first()
    if run is None:
        return f"locked by {task.locked_by} until {clock.show(task.locked_until, tz)}"
    return f"running on {run.runner} since {clock.show(run.started, tz)}"
