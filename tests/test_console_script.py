"""The installed `iotask` command, as a person or cron runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

IOTASK = str(Path(sys.executable).parent / "iotask")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([IOTASK, *args], capture_output=True, text=True, cwd=cwd, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_help_answers_questions(tmp_path):
    top = run("--help", cwd=tmp_path)
    assert top.returncode == 0
    for command in ("run-due", "run", "reset", "status", "history", "task", "connection",
                    "connector", "db"):
        assert f"  {command} " in top.stdout
    run_due = run("run-due", "--help", cwd=tmp_path).stdout
    assert "last_execution" in run_due and "Exit 0" in run_due
    assert "--every" in run("task", "add", "--help", cwd=tmp_path).stdout
    assert run("--version", cwd=tmp_path).stdout.startswith("iotask, version ")


def test_user_error_is_one_line_without_traceback(tmp_path):
    result = run("task", "list", cwd=tmp_path)  # ./iotask.db does not exist yet
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "iotask: error: database file iotask.db does not exist: "
        "run `iotask db upgrade` to create it"]
    assert not (tmp_path / "iotask.db").exists()  # a read-only command creates nothing
    bad = run("task", "add", "x", "--sourc", "a", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    assert "--sourc" in bad.stderr and "Traceback" not in bad.stderr


def test_fresh_folder_to_working_install(tmp_path):
    assert run("db", "upgrade", cwd=tmp_path).returncode == 0
    assert (tmp_path / "iotask.db").exists()
    assert run("task", "list", cwd=tmp_path).returncode == 0
