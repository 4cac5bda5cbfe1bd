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


TEARDOWN = """
import atexit, sys, threading
atexit.register(lambda: print("torn down", file=sys.stderr))
if sys.argv[1] == "thread":
    gate = threading.Event()
    threading.Thread(target=gate.wait, args=(1,)).start()
sys.argv = ["iotask", *sys.argv[2:]]
from iotask.cli import script
script()
"""


def test_the_script_ends_without_tearing_python_down_once_its_output_is_out(tmp_path):
    """Python's own exit (freeing every module and object) is skipped: atexit does not run;
    output, exit codes and SystemExit messages are as Python's exit would give them; a thread
    other than a daemon still running means the usual exit, which waits for it."""

    def script(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", TEARDOWN, *args], capture_output=True,
                              text=True, cwd=tmp_path, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})

    version = script("quick", "--version")
    assert version.returncode == 0 and version.stdout.startswith("iotask, version ")
    assert "torn down" not in version.stderr
    error = script("quick", "task", "list")  # ./iotask.db does not exist
    assert error.returncode == 2 and error.stderr.startswith("iotask: error: database file")
    assert "torn down" not in error.stderr
    waited = script("thread", "--version")
    assert waited.returncode == 0 and waited.stdout.startswith("iotask, version ")
    assert "torn down" in waited.stderr
