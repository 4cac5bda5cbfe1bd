"""scripts/iotask-cron: the crontab line's command, with flock against overlapping calls."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ROOT / "scripts" / "iotask-cron"


@pytest.fixture
def cron_env(tmp_path):
    """A home folder with a migrated SQLite database and one due task."""
    url = f"sqlite:///{tmp_path / 'iotask.db'}"
    env = {**os.environ, "IOTASK_HOME": str(tmp_path), "IOTASK_VENV": sys.prefix,
           "IOTASK_DATABASE_URL": url, "IOTASK_ENV_FILE": str(tmp_path / "none"),
           "PYTHONPATH": str(Path(__file__).parent)}
    env.pop("IOTASK_LOG", None)
    for args in (["db", "upgrade"], ["connector", "register", "sample_source"],
                 ["connector", "register", "sample_ledger"],
                 ["connection", "add", "src", "--type", "test-source"],
                 ["connection", "add", "led", "--type", "test-ledger"],
                 ["task", "add", "users", "--source", "src", "--destination", "led"]):
        assert run_cli("--db", url, *args).code == 0
    return env, sa.create_engine(url)


def runs(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM core_task_run")).scalar()


def test_runs_due_tasks_quietly_and_logs_to_a_file(cron_env, tmp_path):
    env, engine = cron_env
    result = subprocess.run([str(WRAPPER)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert runs(engine) == 1
    log = (tmp_path / "iotask.log").read_text()
    assert "task users: run 1 started (cron" in log and "task users: run 1 success" in log


def test_overlapping_call_exits_at_once(cron_env, tmp_path):
    env, engine = cron_env
    with open(tmp_path / ".iotask-cron.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run-due still going on
        result = subprocess.run([str(WRAPPER)], env=env, capture_output=True, text=True,
                                timeout=30)
    assert result.returncode == 0 and result.stderr == ""
    assert runs(engine) == 0
    assert "previous run-due still running" in (tmp_path / "iotask.log").read_text()


def test_failures_reach_cron_mail_and_exit_code(cron_env):
    env, engine = cron_env
    url = env["IOTASK_DATABASE_URL"]
    assert run_cli("--db", url, "connection", "edit", "src", "--set", "fail=true").code == 0
    result = subprocess.run([str(WRAPPER)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("iotask: task 'users' failed (run 1): RuntimeError")


def test_missing_virtualenv_is_one_clear_line(cron_env, tmp_path):
    env, _ = cron_env
    env = {**env, "IOTASK_VENV": str(tmp_path / "no-venv")}
    result = subprocess.run([str(WRAPPER)], env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2 and "no iotask in" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_overlapping_call_with_the_log_on_stderr_writes_no_file_named_stderr(cron_env,
                                                                              tmp_path):
    """Issue 10.15: IOTASK_LOG=stderr made the skipped line go to a file called stderr."""
    env, engine = cron_env
    env = {**env, "IOTASK_LOG": "stderr"}
    with open(tmp_path / ".iotask-cron.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run([str(WRAPPER)], env=env, capture_output=True, text=True,
                                timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not (tmp_path / "stderr").exists() and runs(engine) == 0
