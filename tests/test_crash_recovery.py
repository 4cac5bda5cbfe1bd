"""Crash: a runner killed mid-task, or one that lost its lease, leaves no partial data behind.

A `kill -9` of a runner in the middle of a task: after the lease expires the next run-due marks
that run abandoned and runs the task again, and the destination holds no partial data of the
killed run. A runner whose lease was taken over cannot commit.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sample_ledger import SampleLedger

from iotask.clock import utcnow
from iotask.config import Config
from iotask.db import make_engine
from iotask.models import Task, TaskRun
from iotask.runner import Runner

LEASE = 2  # seconds: short, so that a dead runner's lease expires quickly
ROWS = 40
DELAY_MS = 50  # 40 rows x 50 ms: the task runs for about 2 s, half-way after about 1 s
TASK = "import"
TESTS = Path(__file__).resolve().parent
SCRIPT = Path(sys.executable).parent / "iotask"
WAIT_SECONDS = 60
FAR_FUTURE = datetime(2100, 1, 1)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {seconds}s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def slow_task(iotask, tmp_path) -> Path:
    """One task whose source is slow, into the ledger; returns the source's marker file."""
    marker = tmp_path / "half-way"
    iotask("connector", "register", "sample_source")
    iotask("connector", "register", "sample_ledger")
    iotask("connection", "add", "slow", "--type", "test-source", "--set", f"rows={ROWS}",
           "--set", f"delay_ms={DELAY_MS}", "--set", f"marker={marker}")
    iotask("connection", "add", "ledger", "--type", "test-ledger")
    iotask("task", "add", TASK, "--source", "slow", "--destination", "ledger",
           "--every", "1 day")
    return marker


def runs(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(TaskRun.id, TaskRun.status, TaskRun.error,
                                      TaskRun.finished, TaskRun.rows_inserted)
                            .where(TaskRun.task == TASK).order_by(TaskRun.id)).all()


def ledger_rows(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT run_id, seq FROM test_ledger ORDER BY seq")).all()


def task_row(engine: sa.Engine):
    """The task's lease and outcome, timestamps as datetimes (SQLite keeps them as text)."""
    with engine.connect() as conn:
        return conn.execute(sa.select(Task.locked_by, Task.locked_until, Task.last_status,
                                      Task.last_execution).where(Task.name == TASK)).one()


def test_killed_runner_is_abandoned_after_its_lease_and_the_task_runs_again(
        migrated_url, engine, slow_task, iotask, tmp_path, monkeypatch):
    marker = slow_task
    env = {**os.environ, "IOTASK_LEASE_SECONDS": str(LEASE),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS),
                                                      os.environ.get("PYTHONPATH")]))}
    output = tmp_path / "killed-run-due.txt"
    with output.open("wb") as out:
        process = subprocess.Popen([str(SCRIPT), "--db", migrated_url, "run-due"], env=env,
                                   cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None, WAIT_SECONDS,
                 "the runner to be half-way through the task")
        assert marker.exists(), (f"run-due exited {process.returncode} before half-way: "
                                 f"{output.read_text(errors='replace')}")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(WAIT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT_SECONDS)
    assert process.returncode == -signal.SIGKILL, (
        f"the runner finished (exit {process.returncode}) before it could be killed: "
        f"{output.read_text(errors='replace')}")

    # Nothing of the killed run is in the destination; its run is still "running".
    assert ledger_rows(engine) == [], "the killed run left partial data in the destination"
    [killed] = runs(engine)
    assert killed.status == "running"
    assert task_row(engine).locked_by, "the killed runner's lease is gone"

    # While its lease lasts, the task is left alone: its runner might still be alive.
    monkeypatch.setenv("IOTASK_LEASE_SECONDS", str(LEASE))
    report = iotask("run-due", "--json").json()
    [result] = report["tasks"]
    assert result["executed"] is False, f"ran a task whose lease was live: {result}"
    assert "running on" in result["note"], result
    assert [(r.id, r.status) for r in runs(engine)] == [(killed.id, "running")]

    # Once the lease has expired, the next run-due abandons the killed run and runs the task.
    locked_until = task_row(engine).locked_until
    wait_for(lambda: utcnow() > locked_until, LEASE + 10, "the killed runner's lease to expire")
    iotask("connection", "edit", "slow", "--set", "delay_ms=0", "--unset", "marker")
    report = iotask("run-due", "--json").json()
    [result] = report["tasks"]
    assert (result["executed"], result["status"]) == (True, "success"), result

    abandoned, rerun = runs(engine)
    assert abandoned.id == killed.id and abandoned.status == "abandoned"
    assert abandoned.error and "lease expired" in abandoned.error, abandoned.error
    assert abandoned.finished is not None
    assert rerun.id == result["run_id"] and rerun.status == "success"
    assert rerun.rows_inserted == ROWS
    rows = ledger_rows(engine)
    assert [row.seq for row in rows] == list(range(1, ROWS + 1))
    assert {row.run_id for row in rows} == {rerun.id}
    task = task_row(engine)
    assert task.locked_by is None and task.locked_until is None
    assert task.last_status == "success" and task.last_execution is not None

    history = iotask("history", TASK, "--json").json()
    assert [(h["id"], h["status"]) for h in history] == [(rerun.id, "success"),
                                                          (killed.id, "abandoned")]
    assert "lease expired" in history[1]["error"]
    assert history[0]["counts"]["inserted"] == ROWS


def steal_lease(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        stolen = conn.execute(sa.text(
            "UPDATE core_task SET locked_by = 'someone-else', locked_until = :until "
            "WHERE name = :task"), {"until": FAR_FUTURE, "task": TASK}).rowcount
    assert stolen == 1


@pytest.mark.parametrize("moment", ["before-write", "mid-write"])
def test_runner_that_lost_its_lease_commits_nothing(
        backend, migrated_url, engine, slow_task, monkeypatch, moment):
    """The lease is taken over while the run goes on: before it writes, or half-way through.

    On SQLite the destination's open transaction holds the database's write lock, so nobody can
    take the lease half-way through a write: the attempt fails and the run commits normally.
    """
    marker = slow_task
    writing, stolen = threading.Event(), threading.Event()
    if moment == "before-write":
        write = SampleLedger.write

        def paused_write(self, batches, context):
            writing.set()
            if not stolen.wait(WAIT_SECONDS):
                raise RuntimeError("the test never took the lease")
            return write(self, batches, context)

        monkeypatch.setattr(SampleLedger, "write", paused_write)

    config = Config(database_url=migrated_url, timezone=ZoneInfo("UTC"), source="test",
                    lease_seconds=LEASE)
    run_engine = make_engine(migrated_url)
    outcome: dict = {}

    def run_due() -> None:
        try:
            outcome["results"] = Runner(run_engine, config, "cron").run_due()
        except BaseException as exc:  # reported by the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run_due, name="run-due", daemon=True)
    thread.start()
    try:
        if moment == "before-write":
            wait_for(lambda: writing.is_set() or not thread.is_alive(), WAIT_SECONDS,
                     "the run to reach its destination")
        else:
            wait_for(lambda: marker.exists() or not thread.is_alive(), WAIT_SECONDS,
                     "the run to be half-way through its write")
        assert thread.is_alive(), f"the run ended early: {outcome}"
        if backend == "sqlite" and moment == "mid-write":
            database = sa.make_url(migrated_url).database
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                thief = sqlite3.connect(database, timeout=0.2, isolation_level=None)
                try:
                    thief.execute("UPDATE core_task SET locked_by = 'someone-else' "
                                  "WHERE name = ?", (TASK,))
                finally:
                    thief.close()
        else:
            steal_lease(engine)
        stolen.set()
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive(), "the run did not finish"
    finally:
        stolen.set()
        thread.join(WAIT_SECONDS)
        run_engine.dispose()
    assert "error" not in outcome, f"run_due raised {outcome.get('error')!r}"
    [result] = outcome["results"]
    [run] = runs(engine)
    rows = ledger_rows(engine)

    if backend == "sqlite" and moment == "mid-write":
        assert (result.status, run.status) == ("success", "success"), (result, run)
        assert [row.seq for row in rows] == list(range(1, ROWS + 1))
        assert task_row(engine).locked_by is None
        return

    assert result.executed and result.status == "abandoned", result
    assert "taken over" in (result.error or ""), result.error
    assert run.id == result.run_id and run.status == "abandoned", run
    assert "taken over" in (run.error or ""), run.error
    assert rows == [], f"the run that lost its lease committed {len(rows)} rows"
    task = task_row(engine)
    assert task.locked_by == "someone-else", "the loser cleared the new owner's lease"
    assert task.locked_until == FAR_FUTURE
