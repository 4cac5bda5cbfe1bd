"""`iotask run`'s progress bar: shown to a person at a terminal, never to cron or a pipe."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from conftest import aged

from iotask.config import Config
from iotask.runner import Runner

IOTASK = str(Path(sys.executable).parent / "iotask")
ROWS = 5000
BAR_MARKS = ("\r", "%|", "rows/s", "B/s", "it/s")


@pytest.fixture
def users_csv(tmp_path) -> Path:
    path = tmp_path / "users.csv"
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("userid,firstname,email\n")
        out.writelines(f"u{n},Name {n},u{n}@example.org\n" for n in range(ROWS))
    return aged(path)


@pytest.fixture
def tasks(iotask, engine, users_csv, tmp_path):
    """import: users.csv into lms_user; export: lms_user into out.csv; missing: no file yet."""
    metadata = sa.MetaData()
    sa.Table("lms_user", metadata, sa.Column("userid", sa.String(50), primary_key=True),
             sa.Column("firstname", sa.String(100)), sa.Column("email", sa.String(200)))
    metadata.create_all(engine)
    iotask("connection", "add", "hr", "--type", "csv", "--set", f"url={users_csv}")
    iotask("connection", "add", "none", "--type", "csv", "--set", f"url={tmp_path / 'no.csv'}")
    iotask("connection", "add", "out", "--type", "csv", "--set", f"url={tmp_path / 'out.csv'}")
    iotask("connection", "add", "lms", "--type", "sql", "--set", "table=lms_user",
           "--set", "key=userid")
    iotask("task", "add", "import", "--source", "hr", "--destination", "lms")
    iotask("task", "add", "export", "--source", "lms", "--destination", "out")
    iotask("task", "add", "missing", "--source", "none", "--destination", "lms")
    return iotask


class Recorder:
    """A progress display that keeps what it was told."""

    def __init__(self) -> None:
        self.updates: list[tuple[int, int | None, int | None]] = []
        self.closed = False

    def update(self, rows: int, done: int | None, total: int | None) -> None:
        assert not self.closed
        self.updates.append((rows, done, total))

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "columnar"])
def test_progress_follows_the_read(tasks, engine, migrated_url, users_csv, monkeypatch, exact):
    """The exact reader tells each batch of 1000 rows; the columnar fast path each block it
    read; both the file's position, moving on to its size."""
    if exact:
        monkeypatch.setenv("IOTASK_EXACT_PATH", "1")
    shown: dict[str, Recorder] = {}

    def progress(task: str) -> Recorder:
        shown[task] = Recorder()
        return shown[task]

    config = Config(database_url=migrated_url, timezone=ZoneInfo("UTC"), source="test",
                    file_roots=(users_csv.parent,))
    results = Runner(engine, config, "manual", progress=progress).run(
        ["import", "export", "missing"])
    assert [r.status for r in results] == ["success", "success", "nothing_to_process"]
    assert all(display.closed for display in shown.values())
    batches = list(range(1000, ROWS + 1, 1000))

    size = users_csv.stat().st_size
    imported = shown["import"].updates
    assert {total for _, _, total in imported} == {size}
    done = [done for _, done, _ in imported]
    rows = [rows for rows, _, _ in imported]
    if exact:
        assert rows == batches
        # the file is read 64 KB at a time: the position moves on, by chunks, to its size
        assert done == sorted(done) and len(set(done)) > 1 and done[-1] == size
    else:  # one block holds the whole small file
        assert rows == sorted(rows) and rows[-1] == ROWS
        assert done == sorted(done) and done[-1] == size

    assert shown["export"].updates == [(rows, None, None) for rows in batches]  # size unknown
    assert shown["missing"].updates == []


def test_no_progress_when_output_is_not_a_terminal(tasks):
    result = tasks("-v", "run", "import", "export")
    assert "import: success" in result.out and "export: success" in result.out
    for mark in BAR_MARKS:
        assert mark not in result.out + result.err


def _attached(args: list[str], cwd: Path, stdout_tty: bool,
              stderr_tty: bool) -> tuple[int, str, str]:
    """Run the installed `iotask` with stdout and stderr each a terminal (120x24) or a pipe."""
    ends, masters = [], {}
    for name, tty in (("stdout", stdout_tty), ("stderr", stderr_tty)):
        if tty:
            master, terminal = pty.openpty()
            fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
            masters[master], end = name, terminal
        else:
            read, end = os.pipe()
            masters[read] = name
        ends.append(end)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "IOTASK_TIMEZONE": "UTC", "TERM": "xterm",
           "IOTASK_FILE_ROOTS": os.environ["IOTASK_FILE_ROOTS"]}
    process = subprocess.Popen([IOTASK, *args], stdin=subprocess.DEVNULL, stdout=ends[0],
                               stderr=ends[1], cwd=cwd, env=env)
    for end in ends:
        os.close(end)
    output = {"stdout": b"", "stderr": b""}
    deadline = time.monotonic() + 120
    while masters:
        ready, _, _ = select.select(list(masters), [], [], deadline - time.monotonic())
        assert ready, "iotask did not finish in time"
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: a terminal whose other end closed
                chunk = b""
            if chunk:
                output[masters[fd]] += chunk
            else:
                os.close(fd)
                del masters[fd]
    code = process.wait(timeout=60)
    return code, output["stdout"].decode(), output["stderr"].decode()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("stdout_tty, stderr_tty", [(False, False), (False, True),
                                                    (True, False)])
def test_no_progress_unless_both_outputs_are_terminals(tasks, migrated_url, tmp_path,
                                                       stdout_tty, stderr_tty):
    code, out, err = _attached(["--db", migrated_url, "-v", "run", "import"], tmp_path,
                               stdout_tty, stderr_tty)
    assert code == 0, err
    assert "import: success" in out and "read 5000" in out
    for mark in BAR_MARKS[1:]:
        assert mark not in out + err
    if not stdout_tty:
        assert "\r" not in out + err


@pytest.mark.parametrize("backend", ["sqlite"])
def test_progress_bar_at_a_terminal(tasks, migrated_url, tmp_path):
    code, out, err = _attached(["--db", migrated_url, "-v", "run", "import", "export"],
                               tmp_path, True, True)
    assert code == 0, err
    assert "import: success" in out and "export: success" in out and "%|" not in out
    draws = [draw for draw in err.split("\r") if draw.strip()]
    # the first draw: 1,000 rows on the exact path, the whole small file on the columnar one
    assert draws[0].startswith("import:") and "%|" in draws[0] and " rows]" in draws[0]
    assert "B/s" in draws[0]
    assert any(draw.startswith("export: 1000 rows [") and "rows/s]" in draw for draw in draws)
    assert err.rstrip("\r").rsplit("\r", 1)[-1].strip() == ""  # the bar was cleared


@pytest.mark.parametrize("backend", ["sqlite"])
def test_json_output_at_a_terminal_has_no_bar(tasks, migrated_url, tmp_path):
    code, out, err = _attached(["--db", migrated_url, "run", "import", "--json"], tmp_path,
                               True, True)
    assert code == 0, err
    assert '"status": "success"' in out
    for mark in BAR_MARKS[1:]:
        assert mark not in out + err
