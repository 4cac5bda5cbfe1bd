"""The columnar fast path and the exact path give the same results, file for file.

Each file of a corpus of valid and hostile CSV files is imported twice with `iotask run`, into
two tables of the same shape: once with IOTASK_EXACT_PATH=1 (the exact Python reader only) and
once as a run goes by default (the fast path, which falls back to the exact path whenever it
finds anything it cannot do alike). The two runs' status, counts, error and row errors, and the
two tables row by row, must be equal, on SQLite, MariaDB and PostgreSQL. The files the fast path
is meant to take must have been taken by it (its debug line), so it cannot silently always fall
back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import aged
from iotask.connectors.columnar import EXACT_ENV

from iotask import db as iotask_db

HEADER = b"userid,name,n,amount,score,hired,seen,active\n"
TYPES = {  # the same table on each database
    "sqlite": ("BOOLEAN", "DATETIME", "DECIMAL(10,2)", "DOUBLE"),
    "mariadb": ("BOOLEAN", "DATETIME", "DECIMAL(10,2)", "DOUBLE"),
    "postgresql": ("BOOLEAN", "TIMESTAMP", "NUMERIC(10,2)", "DOUBLE PRECISION"),
}
FAST_LINE = "columnar fast path:"
BUCKETED_LINE = "rows in dirty buckets staged"  # the bucketed diff's debug line (connectors/sql.py)


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    fast: bool  # the fast path must take it (else: it may, or fall back)
    settings: tuple[str, ...] = ()
    before: bytes | None = None  # imported first, so that the target holds records
    options: tuple[str, ...] = ()  # of `task add`
    run: tuple[str, ...] = ()  # of `run`
    map: dict[str, Any] | None = None
    late: bool = False  # the file comes after the task was saved (with a file it accepts)
    bucketed: bool = False  # on MariaDB, the bucketed diff must find the change set


ROWS = (b"u1,Ann,5,12.50,1.5,2024-01-02,2024-01-02 10:11:12,true\n"
        b"u2,Bob,,,,,,\n"
        b"u3,Cy,-7,0.1,2e3,1999-12-31,1999-12-31T23:59:59,0\n")


def rows(count: int, start: int = 0, unit: str = "Sales") -> bytes:
    return b"".join(f"k{n:05d},{unit} {n},{n},{n}.25,{n / 8},2020-01-{n % 28 + 1:02d},"
                    f"2020-02-03 04:05:06,{'yes' if n % 2 else 'no'}\n".encode()
                    for n in range(start, start + count))


def changed(count: int) -> bytes:
    """``rows(count)`` with every 97th row changed, every 89th gone, every 101st's optional
    values emptied (NULL), and 40 new rows: the shape of a nightly file of a sync."""
    lines = rows(count).splitlines(keepends=True)
    out = []
    for number, line in enumerate(lines):
        if number % 89 == 5:
            continue
        if number % 97 == 3:
            line = line.replace(b",Sales ", b",Legal ")
        elif number % 101 == 7:
            line = line.split(b",")[0] + b",,,,,,,\n"
        out.append(line)
    return b"".join(out) + rows(40, count)


# the columns the fingerprint compares exactly (no float, no timestamp): the bucketed diff's
BUCKETED = {"columns": {"userid": "userid", "name": "name", "n": "n", "amount": "amount",
                        "hired": "hired", "active": "active"}, "key": ["userid"]}
SYNC = ("--import-type", "sync", "--max-remove", "100%")
BIG = 24_000  # rows: above delta.MIN_ROWS

CASES = [
    Case("plain", HEADER + ROWS, True),
    Case("many rows", HEADER + rows(30_000), True),
    Case("utf-8 byte-order mark", b"\xef\xbb\xbf" + HEADER + ROWS, True),
    Case("utf-8-sig", b"\xef\xbb\xbf" + HEADER + ROWS, True, ("encoding=utf-8-sig",)),
    Case("CRLF", (HEADER + ROWS).replace(b"\n", b"\r\n"), True),
    Case("lone CR", (HEADER + ROWS).replace(b"\n", b"\r"), True),
    Case("mixed line ends and blank lines", HEADER + b"\r\n" + ROWS.replace(b"\n", b"\r\n", 1)
         + b"\n\n", True),
    Case("semicolons", (HEADER + ROWS).replace(b",", b";"), True, ("delimiter=;",)),
    Case("tabs", (HEADER + ROWS).replace(b",", b"\t"), True, ("delimiter=\t",)),
    Case("spaces after commas, skipinitialspace", (HEADER + ROWS).replace(b",", b",  "), True,
         ("skipinitialspace=true",)),
    Case("spaces after commas, kept", (HEADER + ROWS).replace(b",", b", "), False),
    Case("spaces around numbers", HEADER + b"u1, Ann , 5 , 1.5 , 2 , 2024-01-02 ,, yes \n",
         True),
    Case("ISO-8859-1", (HEADER + "u1,Jos\u00e9 M\u00fcller,1,,,,,\n".encode("latin-1")), True,
         ("encoding=latin-1",)),
    Case("cp1252", (HEADER + "u1,\u201cq\u201d \u20ac,1,,,,,\n".encode("cp1252")), True,
         ("encoding=cp1252",)),
    Case("latin-1 bytes in a utf-8 file", HEADER + b"u1,Jos\xe9,1,,,,,\n", False),
    Case("byte-order mark, latin-1 declared", b"\xef\xbb\xbf" + HEADER + ROWS, False,
         ("encoding=latin-1",)),
    Case("quoted fields and newlines", HEADER + b'u1,"Ann\nMarie",1,,,,,\n'
         b'u2,"B,""ob""",2,,,,,\n', False),
    Case("text after a closing quote", HEADER + b'u1,"Ann"x,1,,,,,\n', False),
    Case("too few fields", HEADER + ROWS + b"u4,Dan\n", False),
    Case("too many fields", HEADER + b"u4,Dan,1,,,,,,extra\n" + ROWS, False),
    Case("not a whole number", HEADER + ROWS + b"u4,Dan,4.5,,,,,\n", False),
    Case("numbers Python reads", HEADER + b"u4,Dan,+5,,,,,\nu5,Eve,1_000,,,,,\n"
         b"u6,Fay,007,,,,,\n", False),
    Case("no such date", HEADER + b"u4,Dan,,,,2023-02-29,,\n", False),
    Case("a compact date", HEADER + b"u4,Dan,,,,20230228,,\n", False),
    Case("year zero", HEADER + b"u4,Dan,,,,0000-01-01,,\n", False),
    Case("not a flag", HEADER + b"u4,Dan,,,,,,maybe\n", False),
    Case("too many decimal places", HEADER + b"u4,Dan,,1.234,,,,\n", False),
    Case("NaN and infinity", HEADER + b"u4,Dan,,,nan,,,\nu5,Eve,,,inf,,,\n", False),
    Case("a huge number", HEADER + b"u4,Dan,99999999999999999999999,,,,,\n", False),
    Case("empty key", HEADER + ROWS + b",Nobody,1,,,,,\n", False),
    Case("blank key", HEADER + ROWS + b"   ,Nobody,1,,,,,\n", False),
    Case("duplicate key", HEADER + ROWS + b"u1,Ann again,1,,,,,\n", False),
    Case("value too long", HEADER + b"u4," + b"x" * 31 + b",1,,,,,\n", False),
    Case("a 100 KB value", HEADER + b"u4," + b"y" * 100_000 + b",1,,,,,\n", False),
    Case("control characters and backslashes",
         HEADER + b"u4,a\x01b\x1fc\\d \\N,1,,,,,\nu5,\\N,2,,,,,\nu6,\\,3,,,,,\n", True),
    Case("tab inside a value", HEADER + b"u4,a\tb,1,,,,,\n", True),
    Case("NUL byte", HEADER + b"u4,a\x00b,1,,,,,\n", False),
    Case("unicode space in a number", HEADER + "u4,Dan,\u00a05,,,,,\n".encode(), False),
    Case("reject file fed back", HEADER.rstrip(b"\n") + b",iotask_error\n"
         b"u1,Ann,5,,,,,,was wrong\nu2,Bob,6,,,,,,also\n", False),
    Case("header only", HEADER, False),
    Case("header with spaces", b" userid , name ,n\nu1,Ann,1\n", True),
    Case("unknown column", b"userid,nick\nu1,Ann\n", False, late=True),
    Case("renames and a constant", b"id,full\nu1,Ann\nu2,Bob\n", True,
         map={"columns": {"userid": "id", "name": "full", "n": {"const": "7"}},
              "key": ["userid"]}),
    Case("bad bytes in a column the map leaves out", b"id,full,junk\nu1,Ann,\xff\xfe\n", False,
         map={"columns": {"userid": "id", "name": "full"}, "key": ["userid"]}),
    Case("no header, columns set", ROWS, True,
         ("header=false", "columns=userid,name,n,amount,score,hired,seen,active")),
    Case("into a table with records", HEADER + rows(200, 100, "Sales"), True,
         before=HEADER + rows(200)),
    Case("sync into a table with records", HEADER + rows(150, 50, "Legal"), True,
         before=HEADER + rows(100),
         options=("--import-type", "sync", "--max-remove", "100%")),
    Case("sync, duplicate key", HEADER + rows(50) + rows(1, 10), False,
         before=HEADER + rows(100),
         options=("--import-type", "sync", "--max-remove", "100%")),
    Case("sync, a key repeated in other case (equal under MariaDB's collation)",
         HEADER + rows(50) + b"K00010,Again,1,,,,,\n", False, before=HEADER + rows(100),
         options=("--import-type", "sync", "--max-remove", "100%")),
    Case("sync of a file that changed a little", HEADER + changed(BIG), True,
         before=HEADER + rows(BIG), options=SYNC, map=BUCKETED, bucketed=True),
    Case("sync of a file that changed a little, a dry run", HEADER + changed(BIG), True,
         before=HEADER + rows(BIG), options=SYNC, map=BUCKETED, bucketed=True,
         run=("--dry-run",)),
    Case("update import of a file that changed a little", HEADER + changed(BIG), True,
         before=HEADER + rows(BIG), map=BUCKETED, bucketed=True),
    Case("sync of the same rows, other line ends", (HEADER + rows(BIG)).replace(b"\n", b"\r\n"),
         True, before=HEADER + rows(BIG), options=SYNC, map=BUCKETED, bucketed=True),
    Case("sync, a key respelled in other case", HEADER + changed(BIG).replace(
        b"k00010,", b"K00010,"), False, before=HEADER + rows(BIG), options=SYNC,
         map=BUCKETED),
    Case("sync, a key repeated far apart", HEADER + changed(BIG) + rows(1, 500), False,
         before=HEADER + rows(BIG), options=SYNC, map=BUCKETED),
    Case("sync into a table with other records", HEADER + changed(BIG), True,
         before=HEADER + rows(BIG // 2, BIG), options=SYNC, map=BUCKETED),
    Case("a dry run into an empty table", HEADER + ROWS, True, run=("--dry-run",)),
    Case("a dry run into a table with records", HEADER + rows(20, 10), True,
         before=HEADER + rows(20), run=("--dry-run",)),
]


@dataclass
class Outcome:
    report: dict[str, Any]
    table: list[tuple[Any, ...]]
    fast: bool
    errors: list[str] = field(default_factory=list)
    bucketed: bool = False


def create(engine: sa.Engine, backend: str, name: str) -> None:
    boolean, stamp, decimal, double = TYPES[backend]
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {name} (userid VARCHAR(20) NOT NULL PRIMARY KEY, name VARCHAR(30), "
            f"n INTEGER, amount {decimal}, score {double}, hired DATE, seen {stamp}, "
            f"active {boolean}, imported_from_connection VARCHAR(255))")


def content(engine: sa.Engine, name: str) -> list[tuple[Any, ...]]:
    """The table's rows, the owner (the source connection, named after the table) as OWNER."""
    with engine.connect() as conn:
        return [(*("NaN" if value != value else value for value in row[:-1]),
                 row[-1] and row[-1].replace(name, "OWNER"))
                for row in conn.exec_driver_sql(
                    f"SELECT userid, name, n, amount, score, hired, seen, active, "
                    f"imported_from_connection FROM {name} ORDER BY userid")]


def report_of(result: Any, name: str) -> dict[str, Any]:
    """The run's JSON report without what differs from run to run (ids, times, names)."""
    data = json.loads(re.sub(r"iotask_stage_[0-9a-f]+", "STAGE", result.out.replace(name, "TABLE")))
    task = data[0] if isinstance(data, list) else data["tasks"][0]
    return {key: value for key, value in task.items()
            if key not in ("run_id", "started", "finished", "duration_seconds", "reject_file")}


def run_case(iotask: Callable[..., Any], engine: sa.Engine, backend: str, folder: Path,
             case: Case, number: int, exact: bool, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    kind = "exact" if exact else "fast"
    name = f"t{number}_{kind}"
    create(engine, backend, name)
    if exact:
        monkeypatch.setenv(EXACT_ENV, "1")
    else:
        monkeypatch.delenv(EXACT_ENV, raising=False)
    path = folder / f"{name}.csv"
    aged(_write(path, case.before if case.before is not None
                else HEADER if case.late else case.data))
    iotask("connection", "add", f"{name}-csv", "--type", "csv", "--set", f"url={path}",
           *(part for setting in case.settings for part in ("--set", setting)))
    iotask("connection", "add", f"{name}-sql", "--type", "sql", "--set", f"table={name}")
    iotask("task", "add", name, "--source", f"{name}-csv", "--destination", f"{name}-sql",
           *case.options, *(("--map", json.dumps(case.map)) if case.map else ()))
    if case.before is not None:
        first = iotask("run", name, "--json", ok=False)
        assert report_of(first, name)["status"] == "success", first.out
        aged(_write(path, case.data))
    if case.late:
        aged(_write(path, case.data))
    monkeypatch.setenv("IOTASK_LOG_LEVEL", "DEBUG")
    try:
        result = iotask("run", name, "--json", *case.run, ok=False)
    finally:
        monkeypatch.delenv("IOTASK_LOG_LEVEL")
    return Outcome(report_of(result, name), content(engine, name), FAST_LINE in result.err,
                   bucketed=BUCKETED_LINE in result.err)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("backend", ["sqlite", "mariadb", "postgresql"], indirect=True)
def test_the_fast_path_gives_the_exact_paths_results(iotask, migrated_url, backend, tmp_path,
                                                     monkeypatch):
    engine = iotask_db.make_engine(migrated_url)
    folder = tmp_path / "files"
    folder.mkdir()
    problems = []
    try:
        for number, case in enumerate(CASES):
            exact = run_case(iotask, engine, backend, folder, case, number, True, monkeypatch)
            fast = run_case(iotask, engine, backend, folder, case, number, False, monkeypatch)
            if exact.fast:
                problems.append(f"{case.name}: IOTASK_EXACT_PATH=1 took the fast path")
            if case.fast and not fast.fast:
                problems.append(f"{case.name}: the fast path was not taken")
            if case.bucketed and backend == "mariadb" and not fast.bucketed:
                problems.append(f"{case.name}: the bucketed diff did not find the change set")
            if exact.report != fast.report:
                problems.append(f"{case.name}: reports differ:\n  exact {exact.report}\n"
                                f"  fast  {fast.report}")
            if exact.table != fast.table:
                problems.append(f"{case.name}: tables differ:\n  exact {exact.table[:5]}\n"
                                f"  fast  {fast.table[:5]}")
    finally:
        engine.dispose()
    assert not problems, "\n".join(problems)
