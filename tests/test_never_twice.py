"""Never twice: concurrent `iotask run-due` processes run every due task exactly once.

8 `iotask run-due` processes are started together (behind a barrier) against one database
holding 20 due tasks; every task must execute exactly once per trial. This is checked from the
destination's data (the ``test_ledger`` table) and from ``core_task_run``, never from logs.

Environment:
    IOTASK_TEST_TRIALS  trials per database (default 50). Set it lower to iterate quickly
                        while developing, e.g. ``IOTASK_TEST_TRIALS=3 pytest tests/...``.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from iotask.cli import main

PROCESSES = 8
TASKS = [f"t{number:02d}" for number in range(1, 21)]
ROWS = 3
DEFAULT_TRIALS = 50
JOIN_SECONDS = 120


def trials() -> int:
    text = os.environ.get("IOTASK_TEST_TRIALS")
    if not text:
        return DEFAULT_TRIALS
    try:
        value = int(text)
    except ValueError:
        pytest.fail(f"IOTASK_TEST_TRIALS must be a whole number, got {text!r}")
    if value < 1:
        pytest.fail(f"IOTASK_TEST_TRIALS must be at least 1, got {value}")
    return value


def _child(barrier, url: str, output: str) -> None:
    """One `iotask run-due`, started the moment all its siblings are ready."""
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    barrier.wait(timeout=60)
    main(["--db", url, "run-due"])  # exits through sys.exit: the exit code is the process's


def _start_together(url: str, folder: Path) -> list[tuple[int | None, str]]:
    """Run PROCESSES run-due processes at once; return each one's exit code and output."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    outputs = [folder / f"run-due-{index}.txt" for index in range(PROCESSES)]
    processes = [context.Process(target=_child, args=(barrier, url, str(output)), daemon=True)
                 for output in outputs]
    try:
        for process in processes:
            process.start()
        deadline = time.monotonic() + JOIN_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(10)
    return [(process.exitcode, output.read_text(errors="replace"))
            for process, output in zip(processes, outputs, strict=True)]


@pytest.fixture
def twenty_tasks(iotask):
    iotask("connector", "register", "sample_source")
    iotask("connector", "register", "sample_ledger")
    iotask("connection", "add", "numbers", "--type", "test-source", "--set", f"rows={ROWS}")
    iotask("connection", "add", "ledger", "--type", "test-ledger")
    for sequence, name in enumerate(TASKS, start=1):
        iotask("task", "add", name, "--source", "numbers", "--destination", "ledger",
               "--every", "1 day", "--sequence", str(sequence))
    return TASKS


def test_concurrent_run_due_runs_every_task_exactly_once(
        backend, migrated_url, engine, twenty_tasks, tmp_path):
    count = trials()
    started = time.monotonic()
    runners_per_trial = []
    for trial in range(1, count + 1):
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE core_task SET last_execution = NULL"))
            before = conn.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM core_task_run")
                                  ).scalar_one()
        engine.dispose()  # no pooled connection may be shared with the forked children

        outcomes = _start_together(migrated_url, tmp_path)
        failed = [(index, code, output) for index, (code, output) in enumerate(outcomes)
                  if code != 0]
        assert not failed, f"trial {trial}: run-due processes did not exit 0: " + "; ".join(
            f"#{index} exit {code}: {output.strip()[-2000:]!r}" for index, code, output in failed)

        with engine.connect() as conn:
            runs = conn.execute(sa.text(
                "SELECT id, task, status, rows_inserted, runner FROM core_task_run "
                "WHERE id > :before ORDER BY id"), {"before": before}).all()
            ledger = conn.execute(sa.text(
                "SELECT task, run_id, seq FROM test_ledger WHERE run_id > :before"),
                {"before": before}).all()

        runs_by_task: dict[str, list] = {}
        for run in runs:
            runs_by_task.setdefault(run.task, []).append(run)
        assert sorted(runs_by_task) == TASKS, (
            f"trial {trial}: tasks with a new core_task_run row: {sorted(runs_by_task)}")
        twice = {task: [(r.id, r.status) for r in rs] for task, rs in runs_by_task.items()
                 if len(rs) != 1}
        assert not twice, f"trial {trial}: tasks with more than one run: {twice}"
        assert len(runs) == len(TASKS), f"trial {trial}: {len(runs)} new runs: {runs}"
        not_success = [(r.task, r.id, r.status) for r in runs if r.status != "success"]
        assert not not_success, f"trial {trial}: runs that did not succeed: {not_success}"

        runners_per_trial.append(len({run.runner for run in runs}))

        rows_by_task: dict[str, list] = {}
        for row in ledger:
            rows_by_task.setdefault(row.task, []).append(row)
        assert sorted(rows_by_task) == TASKS, (
            f"trial {trial}: tasks with rows in the ledger: {sorted(rows_by_task)}")
        for task in TASKS:
            rows = rows_by_task[task]
            run_ids = {row.run_id for row in rows}
            assert len(run_ids) == 1, (
                f"trial {trial}: task {task} wrote rows from runs {sorted(run_ids)}")
            assert sorted(row.seq for row in rows) == list(range(1, ROWS + 1)), (
                f"trial {trial}: task {task} wrote {sorted(row.seq for row in rows)}")
            run = runs_by_task[task][0]
            assert run_ids == {run.id}, (
                f"trial {trial}: task {task}: ledger rows of run {run_ids}, "
                f"core_task_run says run {run.id}")
            assert run.rows_inserted == ROWS, (
                f"trial {trial}: task {task}: run {run.id} recorded {run.rows_inserted} rows")

    elapsed = time.monotonic() - started
    print(f"\n{backend}: {count} trials of {PROCESSES} run-due processes x {len(TASKS)} tasks "
          f"in {elapsed:.1f}s ({elapsed / count:.2f}s per trial); processes that ran tasks, "
          f"per trial: {runners_per_trial}")
    # Not vacuous: the processes really overlapped, several of them claiming tasks at once.
    assert max(runners_per_trial) > 1, "one process ran every task in every trial"
