"""Import benchmark: `iotask run` against bulk-load baselines measured in the same run, and the
start-up of `iotask --help` and of a `run-due` that finds nothing due among many tasks.

A measurement, not a test (see bench/README.md): it prints each ratio next to its budget and exits
0 even when a budget is missed; 1 only when something broke. iotask is driven only through its
command line, each measured import in a process of its own, so that the figures stay comparable
whatever engine sits behind `iotask run` and the peak RSS is that import's alone.

    python bench/bench.py [--rows N] [--databases sqlite,mariadb,postgresql] [--lms-rows N]
                          [--startup-tasks N] [--repeat N] [--keep] [--json]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import operator
import os
import platform
import random
import re
import secrets
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session

REPO = Path(__file__).resolve().parent.parent
DBSERVERS = REPO / "scripts" / "dbservers"
IOTASK = Path(sys.executable).parent / "iotask"  # the console script of the running venv
DATABASES = ("sqlite", "mariadb", "postgresql")
COLUMNS = ("userid", "firstname", "lastname", "email", "org_unit", "hired")
SEED = 20_240_611
ORM_ROWS = 50_000
TASK = "bench-users"
COUNT_NAMES = ("inserted", "updated", "unchanged", "removed", "failed")

# Budgets (DESIGN.md "Budgets", issue 14), each x the database's baseline in the same run: LOAD
# DATA on MariaDB, the raw sqlite3 executemany upsert on SQLite, COPY on PostgreSQL. A scenario a
# database has no budget for is measured and shown without one.
BUDGETS: dict[str, dict[str, float]] = {
    "mariadb": {"first": 1.3, "unchanged": 0.5, "sync": 1.5},
    "sqlite": {"first": 0.9, "unchanged": 0.5},
    "postgresql": {"first": 1.5},
}
ORM_BUDGET = 20.0  # iotask first import rows/s over naive ORM rows/s, at least
RSS_BUDGET_MB = 150.0  # at 1 M and at 10 M rows
HELP_BUDGET = 0.15  # seconds, the whole `iotask --help` process
RUN_DUE_BUDGET = 0.5  # seconds, the whole `iotask run-due` process, STARTUP_TASKS none due
STARTUP_TASKS = 10_000
REPEAT = 3  # runs of each baseline, first import and unchanged re-import; the median counts
STARTUP_REPEATS = 7  # each start-up line is the median of this many runs

FIRST_NAMES = ("Anna", "Bruno", "Chiara", "David", "Elena", "François", "Giulia", "Hans", "Inès",
               "Jakub", "Karin", "Luca", "María", "Noah", "Olga", "Paolo", "Quentin", "Rosa",
               "Søren", "Tomás", "Ursula", "Viktor", "Wen", "Ximena", "Yusuf", "Zoë")
LAST_NAMES = ("Abbott", "Bianchi", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Horvath",
              "Ivanova", "Jansen", "Kowalski", "López", "Müller", "Nakamura", "O'Brien", "Petit",
              "Quinn", "Rossi", "Schmidt", "Tanaka", "Ulrich", "Van Dijk", "Weber", "Young")
ORG_UNITS = ("Sales", "Marketing", "Engineering", "Support", "Finance", "Human Resources",
             "Legal", "Operations", "Research", "Training")
NEXT_UNIT = dict(zip(ORG_UNITS, ORG_UNITS[1:] + ORG_UNITS[:1], strict=True))
HIRED_FROM, HIRED_DAYS = date(1990, 1, 1).toordinal(), 35 * 365

METADATA = sa.MetaData()


def user_table(name: str) -> sa.Table:
    """The users table shape; every import and baseline writes one of these."""
    return sa.Table(
        name, METADATA,
        sa.Column("userid", sa.String(20), primary_key=True),
        sa.Column("firstname", sa.String(60), nullable=False),
        sa.Column("lastname", sa.String(60), nullable=False),
        sa.Column("email", sa.String(120), nullable=False),
        sa.Column("org_unit", sa.String(60), nullable=False),
        sa.Column("hired", sa.Date),
        sa.Column("imported_from_connection", sa.String(255)),  # what sync removal needs
    )


USERS = user_table("bench_user")
BASELINE = user_table("bench_baseline")


class Base(DeclarativeBase):
    pass


class NaiveUser(Base):
    __table__ = user_table("bench_orm")


class BenchError(Exception):
    """Something broke: the figures of this database cannot be trusted."""


@dataclass
class Files:
    rows: int
    first: Path  # the users file
    changed: Path  # the same with 1 % of the rows changed and 1 % missing
    changed_rows: int
    missing_rows: int
    megabytes: float


@dataclass
class Line:
    """One line of the report."""

    database: str
    scenario: str
    seconds: float | None = None
    rows: int | None = None
    ratio: float | None = None
    budget: str = ""
    result: str = ""  # OK, MISS, baseline, NOT MEASURED, FAILED; empty when there is no budget
    rss_mb: float | None = None
    own_seconds: float | None = None  # the duration iotask reports, start-up excluded
    counts: dict[str, int] | None = None
    note: str = ""

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.rows and self.seconds else None


@dataclass
class Run:
    seconds: float
    own_seconds: float | None
    rss_mb: float
    status: str
    counts: dict[str, int]
    error: str | None


def say(message: str) -> None:
    """Progress on stderr, so that stdout holds only the report."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def judge(line: Line, value: float, op: str, limit: float, unit: str = "x") -> None:
    checks = {"<=": operator.le, ">=": operator.ge, "<": operator.lt}
    line.budget = f"{op} {limit:g}{unit}"
    line.result = "OK" if checks[op](value, limit) else "MISS"


# --- data -------------------------------------------------------------------------------------

def users(rows: int) -> Iterator[list[str]]:
    """The same rows for the same count on every run (fixed seed)."""
    rng = random.Random(SEED)
    width = max(7, len(str(rows)))
    for number in range(1, rows + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first}.{last}.{number}@example.com".lower().replace(" ", "").replace("'", "")
        hired = date.fromordinal(HIRED_FROM + rng.randrange(HIRED_DAYS)).isoformat()
        yield [f"u{number:0{width}d}", first, last, email, rng.choice(ORG_UNITS), hired]


def write_files(folder: Path, rows: int) -> Files:
    """The users file and its sync variant, written in one pass."""
    first, changed = folder / "users.csv", folder / "users-changed.csv"
    changed_rows = missing_rows = 0
    with (open(first, "w", newline="", encoding="utf-8") as out_first,
          open(changed, "w", newline="", encoding="utf-8") as out_changed):
        writers = csv.writer(out_first, lineterminator="\n"), csv.writer(out_changed,
                                                                          lineterminator="\n")
        for writer in writers:
            writer.writerow(COLUMNS)
        for number, row in enumerate(users(rows), start=1):
            writers[0].writerow(row)
            if number % 100 == 50:
                missing_rows += 1
                continue
            if number % 100 == 0:
                row[4] = NEXT_UNIT[row[4]]
                changed_rows += 1
            writers[1].writerow(row)
    then = time.time() - 60  # iotask waits for a file changed within its stable_seconds (10)
    for path in (first, changed):
        os.utime(path, (then, then))
    return Files(rows, first, changed, changed_rows, missing_rows, first.stat().st_size / 1e6)


# --- baselines --------------------------------------------------------------------------------

def settle(engine: sa.Engine, database: str) -> None:
    """Let the work a step left behind finish before the next step is timed, whichever side
    made it: the OS writes its dirty pages back, PostgreSQL vacuums and analyses what was just
    loaded (else autovacuum does it during the next timed step, on the other core) and
    checkpoints, MariaDB flushes its dirty buffer pool pages. A server that refuses (a user
    without the privilege) is left as it is."""
    os.sync()
    try:
        if database == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM (ANALYZE)")
                conn.exec_driver_sql("CHECKPOINT")
        elif database == "mariadb":
            with engine.connect() as conn:
                was = conn.exec_driver_sql("SELECT @@GLOBAL.innodb_max_dirty_pages_pct").scalar()
                conn.exec_driver_sql("SET GLOBAL innodb_max_dirty_pages_pct = 0")
                try:
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline and int(conn.exec_driver_sql(
                            "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'").one()[1]):
                        time.sleep(0.2)
                finally:
                    conn.exec_driver_sql(f"SET GLOBAL innodb_max_dirty_pages_pct = {float(was)}")
    except sa.exc.DBAPIError as exc:
        say(f"{database}: not settled ({str(exc.orig or exc).splitlines()[0]})")
    os.sync()


def load_data(engine: sa.Engine, path: Path, rows: int) -> float:
    """Seconds for LOAD DATA LOCAL INFILE of the file into the empty baseline table."""
    statement = (f"LOAD DATA LOCAL INFILE %s INTO TABLE {BASELINE.name} CHARACTER SET utf8mb4 "
                 "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
                 f"LINES TERMINATED BY '\\n' IGNORE 1 LINES ({', '.join(COLUMNS)})")
    with engine.connect() as conn:
        start = time.perf_counter()
        with conn.begin():
            conn.exec_driver_sql(statement, (str(path),))
        seconds = time.perf_counter() - start
    _check_loaded(engine, rows, "LOAD DATA")
    return seconds


def copy_file(engine: sa.Engine, path: Path, rows: int) -> float:
    """Seconds for COPY ... FROM STDIN (csv, header) of the file into the empty baseline table,
    the file streamed in 1 MB blocks by psycopg in this process (as LOAD DATA LOCAL is)."""
    statement = (f"COPY {BASELINE.name} ({', '.join(COLUMNS)}) FROM STDIN "
                 "WITH (FORMAT csv, HEADER true, ENCODING 'UTF8')")
    raw = engine.raw_connection()
    try:
        start = time.perf_counter()
        with raw.cursor() as cursor, open(path, "rb") as handle:
            with cursor.copy(statement) as copy:
                while block := handle.read(1 << 20):
                    copy.write(block)
        raw.commit()
        seconds = time.perf_counter() - start
    finally:
        raw.close()
    _check_loaded(engine, rows, "COPY")
    return seconds


def sqlite_upsert(path: Path, source: Path, rows: int) -> float:
    """Seconds for a raw sqlite3 executemany upsert of the file: WAL, one transaction."""
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        METADATA.create_all(engine, tables=[BASELINE])
        names = ", ".join(COLUMNS)
        updates = ", ".join(f"{name} = excluded.{name}" for name in COLUMNS[1:])
        statement = (f"INSERT INTO {BASELINE.name} ({names}) VALUES "
                     f"({', '.join('?' * len(COLUMNS))}) "
                     f"ON CONFLICT(userid) DO UPDATE SET {updates}")
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            start = time.perf_counter()
            with open(source, newline="", encoding="utf-8") as handle:
                reader = csv.reader(handle)
                next(reader)
                connection.execute("BEGIN")
                connection.executemany(statement, reader)
                connection.execute("COMMIT")
            seconds = time.perf_counter() - start
        finally:
            connection.close()
        _check_loaded(engine, rows, "the sqlite3 upsert")
    finally:
        engine.dispose()
    return seconds


def baseline_once(database: str, engine: sa.Engine, folder: Path, path: Path,
                  rows: int) -> float:
    """Seconds for one run of the database's own loader into an empty table."""
    if database == "sqlite":
        for leftover in folder.glob("raw.db*"):
            leftover.unlink()
        return sqlite_upsert(folder / "raw.db", path, rows)
    empty_table(engine, BASELINE)
    return (load_data if database == "mariadb" else copy_file)(engine, path, rows)


def empty_table(engine: sa.Engine, table: sa.Table) -> None:
    """``table`` emptied as if new: truncated on a server; dropped, created again and the file
    vacuumed on SQLite (no free pages left for the next load to reuse)."""
    if engine.dialect.name == "sqlite":
        table.drop(engine)
        table.create(engine)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE TABLE {table.name}")


def median_run(runs: list[Run], expected: dict[str, int]) -> Run:
    """The run of median wall time (the upper middle, as ``statistics.median_high``), with the
    peak RSS of them all; the first run that did not succeed with the ``expected`` counts, if
    one did not."""
    odd = next((run for run in runs if run.status != "success" or run.counts != expected),
               None)
    if odd is not None:
        return odd
    middle = sorted(runs, key=operator.attrgetter("seconds"))[len(runs) // 2]
    return replace(middle, rss_mb=max(run.rss_mb for run in runs))


def _check_loaded(engine: sa.Engine, rows: int, what: str) -> None:
    with engine.connect() as conn:
        loaded = conn.scalar(sa.select(sa.func.count()).select_from(BASELINE))
    if loaded != rows:
        raise BenchError(f"{what} loaded {loaded} rows, expected {rows}: the baseline is wrong")


def naive_orm(engine: sa.Engine, path: Path, rows: int) -> float:
    """Seconds for the Docebo-style import: one ORM object added and flushed per row."""
    start = time.perf_counter()
    with Session(engine) as session, open(path, newline="", encoding="utf-8") as handle:
        for record in itertools.islice(csv.DictReader(handle), rows):
            record["hired"] = date.fromisoformat(record["hired"])
            session.add(NaiveUser(**record))
            session.flush()
        session.commit()
    return time.perf_counter() - start


# --- iotask -----------------------------------------------------------------------------------

class Iotask:
    """The iotask command on one database, run in a scratch folder (no stray ./iotask.ini).

    ``files`` is the folder of the CSV files: iotask reads ``file:`` URLs only inside its file
    roots, so it is given as the one root.
    """

    def __init__(self, url: str, folder: Path, files: Path) -> None:
        self.url, self.folder = url, folder
        self.env = {**installed_env(), "IOTASK_FILE_ROOTS": str(files)}

    def setup(self, *args: str) -> None:
        done = subprocess.run([str(IOTASK), "--db", self.url, *args], cwd=self.folder,
                              env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise BenchError(f"`iotask {shlex.join(args)}` exited {done.returncode}: "
                             f"{_tail(done.stderr)}")

    def output(self, *args: str) -> str:
        """What `iotask ARGS` prints on stdout; BenchError when it fails."""
        done = subprocess.run([str(IOTASK), "--db", self.url, *args], cwd=self.folder,
                              env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise BenchError(f"`iotask {shlex.join(args)}` exited {done.returncode}: "
                             f"{_tail(done.stderr)}")
        return done.stdout

    def timed(self, *args: str, database: bool = True) -> float:
        """Wall seconds of the whole `iotask [--db URL] ARGS` process, start-up included."""
        command = [str(IOTASK), *(["--db", self.url] if database else []), *args]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=self.folder, env=self.env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise BenchError(f"`iotask {shlex.join(args)}` exited {done.returncode}: "
                             f"{_tail(done.stderr)}")
        return seconds

    def run(self, task: str = TASK) -> Run:
        """`iotask run TASK --json --reimport` in its own process: wall time and that process's
        peak RSS. --reimport: iotask skips a file whose content it imported before."""
        out_path, err_path = self.folder / "run.json", self.folder / "run.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            start = time.perf_counter()
            child = subprocess.Popen([str(IOTASK), "--db", self.url, "run", task, "--json",
                                      "--reimport"],
                                     cwd=self.folder, env=self.env, stdout=out, stderr=err)
            # reaped with wait4, not Popen.wait: its rusage is this child's own peak RSS
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        try:
            report = json.loads(out_path.read_text(encoding="utf-8"))["tasks"][0]
        except (ValueError, KeyError, IndexError):
            raise BenchError(f"`iotask run {task} --json --reimport` exited {child.returncode} "
                             f"without a report: {_tail(err_path.read_text(errors='replace'))}"
                             ) from None
        return Run(seconds, report.get("duration_seconds"), usage.ru_maxrss / 1024,
                   report["status"], {name: report["counts"][name] for name in COUNT_NAMES},
                   report.get("error"))


def _tail(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no message)"


def _counts_text(counts: dict[str, int]) -> str:
    return "/".join(str(counts[name]) for name in COUNT_NAMES)


def import_line(database: str, scenario: str, run: Run, rows: int, baseline: float,
                expected: dict[str, int]) -> Line:
    """A line for an import that must succeed with exactly the expected counts."""
    if run.status != "success":
        raise BenchError(f"{scenario}: run {run.status}: {run.error}")
    line = Line(database, scenario, run.seconds, rows, run.seconds / baseline, rss_mb=run.rss_mb,
                own_seconds=run.own_seconds, counts=run.counts)
    if run.counts != expected:
        line.result = "FAILED"
        line.note = f"counts {_counts_text(run.counts)}, expected {_counts_text(expected)}"
    return line


def sync_line(database: str, iotask: Iotask, files: Files, baseline: float) -> Line:
    """The sync re-import, or why it could not be measured (a product without sync removal)."""
    rows = files.rows - files.missing_rows
    line = Line(database, "iotask sync: 1 % changed, 1 % missing", rows=rows)
    expected = {"inserted": 0, "updated": files.changed_rows,
                "unchanged": rows - files.changed_rows, "removed": files.missing_rows,
                "failed": 0}
    iotask.setup("connection", "edit", "bench-csv", "--set", f"url={files.changed}")
    try:
        iotask.setup("task", "edit", TASK, "--import-type", "sync")
    except BenchError as exc:
        line.result, line.note = "NOT MEASURED", f"not measured: iotask refused sync: {exc}"
        return line
    run = iotask.run()
    took = f"(the run took {run.seconds:.1f} s, counts {_counts_text(run.counts)})"
    if run.status != "success":
        line.result = "NOT MEASURED"
        line.note = f"not measured: the sync run {run.status}: {run.error} {took}"
    elif run.counts["removed"] == 0:
        line.result = "NOT MEASURED"
        line.note = (f"not measured: the sync run removed none of the {files.missing_rows} "
                     f"missing rows (sync removal not supported yet) {took}")
    else:
        line = import_line(database, line.scenario, run, rows, baseline, expected)
    return line


# --- one database -----------------------------------------------------------------------------

def scenarios(database: str, url: str, files: Files, folder: Path, repeat: int = REPEAT,
              ) -> list[Line]:
    """Baseline, first import, unchanged re-import, sync, naive ORM and peak RSS on one database.
    The baseline and the first import are run ``repeat`` times in turn (each into an empty
    table), then the unchanged re-import ``repeat`` times: each line is the median run, so
    that a moment of noise on a shared machine does not decide a budget."""
    mariadb = database == "mariadb"
    budgets = BUDGETS[database]
    engine = sa.create_engine(url, connect_args={"local_infile": True} if mariadb else {})
    try:
        iotask = Iotask(url, folder, files.first.parent)
        say(f"{database}: iotask db upgrade, tables, connections, task")
        iotask.setup("db", "upgrade")
        METADATA.create_all(engine, tables=[USERS, NaiveUser.__table__]
                            + ([BASELINE] if database != "sqlite" else []))
        iotask.setup("connection", "add", "bench-csv", "--type", "csv",
                     "--set", f"url={files.first}")
        iotask.setup("connection", "add", "bench-sql", "--type", "sql",
                     "--set", f"table={USERS.name}", "--set", "key=userid")
        iotask.setup("task", "add", TASK, "--source", "bench-csv", "--destination", "bench-sql")

        rows = files.rows
        name = {"mariadb": "LOAD DATA LOCAL INFILE", "postgresql": "COPY FROM STDIN (csv)"
                }.get(database, "sqlite3 executemany upsert")
        inserted = {"inserted": rows, "updated": 0, "unchanged": 0, "removed": 0, "failed": 0}
        baselines, first_runs = [], []
        for attempt in range(1, repeat + 1):
            say(f"{database}: {name}, {attempt} of {repeat}")
            settle(engine, database)
            baselines.append(baseline_once(database, engine, folder, files.first, rows))
            say(f"{database}: iotask first import, {attempt} of {repeat}")
            if attempt > 1:
                empty_table(engine, USERS)
            settle(engine, database)
            first_runs.append(iotask.run())
        baseline = statistics.median_high(baselines)
        lines = [Line(database, f"{name} (baseline)", baseline, rows, 1.0, result="baseline")]
        first_run = median_run(first_runs, inserted)
        first = import_line(database, "iotask first import", first_run, rows, baseline,
                            inserted)
        if not first.result and "first" in budgets:
            judge(first, first.ratio or 0.0, "<=", budgets["first"])
        same = {"inserted": 0, "updated": 0, "unchanged": rows, "removed": 0, "failed": 0}
        again_runs = []
        for attempt in range(1, repeat + 1):
            say(f"{database}: iotask re-import, unchanged, {attempt} of {repeat}")
            settle(engine, database)
            again_runs.append(iotask.run())
        again_run = median_run(again_runs, same)
        again = import_line(database, "iotask re-import, unchanged", again_run, rows, baseline,
                            same)
        if not again.result and "unchanged" in budgets:
            judge(again, again.ratio or 0.0, "<=", budgets["unchanged"])
        say(f"{database}: iotask sync")
        settle(engine, database)
        sync = sync_line(database, iotask, files, baseline)
        if not sync.result and "sync" in budgets:
            judge(sync, sync.ratio or 0.0, "<=", budgets["sync"])
        lines += [first, again, sync]

        orm_rows = min(ORM_ROWS, rows)
        say(f"{database}: naive ORM insert of {orm_rows:,} rows")
        settle(engine, database)
        orm_seconds = naive_orm(engine, files.first, orm_rows)
        speedup = (rows / first_run.seconds) / (orm_rows / orm_seconds)
        orm = Line(database, f"naive ORM insert, {orm_rows} rows (ratio: iotask speed-up)",
                   orm_seconds, orm_rows, speedup)
        judge(orm, speedup, ">=", ORM_BUDGET)

        peak = max(run.rss_mb for run in (first_run, again_run))
        if sync.rss_mb is not None:
            peak = max(peak, sync.rss_mb)
        rss = Line(database, "peak RSS of the iotask runs", rss_mb=peak)
        judge(rss, peak, "<", RSS_BUDGET_MB, " MB")
        return [*lines, orm, rss]
    finally:
        engine.dispose()


LMS_COLUMNS = ("userid", "firstname", "lastname", "email", "language", "tree_code", "valid")
LMS_UNITS = 50
LMS_BUDGET = 2.0  # forma-users first import, x the sql connector's on the same rows
LMS_TASK, FLAT_TASK = "bench-lms-users", "bench-flat-users"


def write_lms_files(folder: Path, rows: int) -> tuple[Path, Path]:
    """An org chart of LMS_UNITS units under 5 divisions, and a users file of ``rows`` rows
    whose tree_code puts each user in one unit (every tenth in two)."""
    orgchart, people = folder / "lms-orgchart.csv", folder / "lms-users.csv"
    with open(orgchart, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["code", "name", "parent_code"])
        for number in range(LMS_UNITS):
            parent = "" if number < 5 else f"unit{number % 5}"
            writer.writerow([f"unit{number}", f"Unit {number}", parent])
    with open(people, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(LMS_COLUMNS)
        for number, row in enumerate(users(rows), start=1):
            units = f"unit{5 + number % (LMS_UNITS - 5)}"
            if number % 10 == 0:
                units += f"#unit{number % 5}"
            writer.writerow([row[0], row[1], row[2], row[3], "english", units, "1"])
    then = time.time() - 60
    for path in (orgchart, people):
        os.utime(path, (then, then))
    return orgchart, people


def lms_scenarios(url: str, folder: Path, rows: int) -> list[Line]:
    """forma-users into an `iotask lms init` database against the plain sql connector
    importing the same rows into one table of the same width, both through `iotask run`."""
    database = "mariadb"
    orgchart, people = write_lms_files(folder, rows)
    engine = sa.create_engine(url)
    flat = sa.Table("bench_lms_flat", sa.MetaData(),
                    sa.Column("userid", sa.String(255), primary_key=True),
                    *(sa.Column(name, sa.String(255), nullable=False)
                      for name in LMS_COLUMNS[1:-1]),
                    sa.Column("valid", sa.SmallInteger, nullable=False))
    try:
        flat.create(engine)
    finally:
        engine.dispose()
    iotask = Iotask(url, folder, people.parent)
    say(f"{database}: LMS: db upgrade, lms init, org chart of {LMS_UNITS} units")
    iotask.setup("db", "upgrade")
    iotask.setup("lms", "init")
    for name, kind, settings in (
            ("bench-orgchart-csv", "csv", [f"url={orgchart}"]),
            ("bench-users-csv", "csv", [f"url={people}"]),
            ("bench-forma-orgchart", "forma-orgchart", []),
            ("bench-forma-users", "forma-users", []),
            ("bench-flat", "sql", [f"table={flat.name}", "key=userid"])):
        iotask.setup("connection", "add", name, "--type", kind,
                     *itertools.chain.from_iterable(("--set", item) for item in settings))
    iotask.setup("task", "add", "bench-lms-orgchart", "--source", "bench-orgchart-csv",
                 "--destination", "bench-forma-orgchart")
    iotask.setup("task", "add", LMS_TASK, "--source", "bench-users-csv",
                 "--destination", "bench-forma-users")
    iotask.setup("task", "add", FLAT_TASK, "--source", "bench-users-csv",
                 "--destination", "bench-flat")
    units = iotask.run("bench-lms-orgchart")
    if units.status != "success":
        raise BenchError(f"LMS org chart import {units.status}: {units.error}")
    say(f"{database}: LMS: sql connector, {rows:,} users into one flat table")
    flat_run = iotask.run(FLAT_TASK)
    new = {"inserted": rows, "updated": 0, "unchanged": 0, "removed": 0, "failed": 0}
    baseline = import_line(database, "LMS: sql connector, users into one flat table (baseline)",
                           flat_run, rows, flat_run.seconds, new)
    baseline.result = baseline.result or "baseline"
    say(f"{database}: LMS: forma-users, {rows:,} users with org units")
    lms_run = iotask.run(LMS_TASK)
    first = import_line(database, "LMS: forma-users first import (users, units, groups)",
                        lms_run, rows, flat_run.seconds, new)
    if not first.result:
        judge(first, first.ratio or 0.0, "<=", LMS_BUDGET)
    again_run = iotask.run(LMS_TASK)
    again = import_line(database, "LMS: forma-users re-import, unchanged", again_run, rows,
                        flat_run.seconds, {**new, "inserted": 0, "unchanged": rows})
    rss = Line(database, "LMS: peak RSS of the forma-users runs",
               rss_mb=max(lms_run.rss_mb, again_run.rss_mb))
    judge(rss, rss.rss_mb or 0.0, "<", RSS_BUDGET_MB, " MB")
    return [baseline, first, again, rss]


SERVER_VARIABLES = {"mariadb": "IOTASK_TEST_MARIADB_URL",
                    "postgresql": "IOTASK_TEST_POSTGRESQL_URL"}


def server_url(database: str, folder: Path, started: list[Path], servers: dict[str, str]) -> str:
    """IOTASK_TEST_MARIADB_URL / IOTASK_TEST_POSTGRESQL_URL, else the URL of throwaway servers
    started (once, both) in ``folder``."""
    variable = SERVER_VARIABLES[database]
    url = os.environ.get(variable)
    if url:
        return url
    if not servers:
        folder.chmod(0o755)  # mkdtemp's 0700 would keep the postgres OS user out
        place = folder / "db"
        started.append(place)  # stopped at the end even if starting fails halfway
        say(f"starting throwaway MariaDB and PostgreSQL in {place}")
        done = subprocess.run([str(DBSERVERS), "start", str(place)], stdout=subprocess.PIPE,
                              text=True)
        servers.update(re.findall(r"^export (\w+)='([^']*)'$", done.stdout, re.MULTILINE))
        if done.returncode:
            raise BenchError(f"scripts/dbservers start exited {done.returncode} (see its "
                             "messages)")
    if variable not in servers:
        raise BenchError(f"scripts/dbservers start gave no {variable}")
    return servers[variable]


@contextmanager
def fresh_database(database: str, server_url: str, keep: bool) -> Iterator[str]:
    """A fresh bench_xxxx database on the server (utf8mb4_bin on MariaDB), dropped afterwards
    unless kept."""
    server = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"bench_{secrets.token_hex(4)}"
    create = f"CREATE DATABASE {name}" + (" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                                          if database == "mariadb" else "")
    try:
        with server.connect() as conn:
            conn.exec_driver_sql(create)
        try:
            yield sa.make_url(server_url).set(database=name).render_as_string(
                hide_password=False)
        finally:
            if not keep:
                with server.connect() as conn:
                    conn.exec_driver_sql(f"DROP DATABASE {name}")
    finally:
        server.dispose()


def server_version(database: str, url: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if database == "mariadb":
                return f"MariaDB {conn.scalar(sa.text('SELECT VERSION()'))}"
            return f"PostgreSQL {conn.scalar(sa.text('SHOW server_version'))}"
    finally:
        engine.dispose()


# --- start-up ---------------------------------------------------------------------------------

def many_tasks(exported: str, count: int, now: datetime) -> str:
    """The exported one-task OPML file made into ``count`` tasks with the same connections and
    schedules none of which comes due within a day of ``now`` once last_execution is ``now``:
    most every 2 to 4 days, a tenth at a local time of day an hour before now, a tenth by cron
    at that same time."""
    root = ET.fromstring(exported)
    body = root.find("body")
    if body is None or len(body) != 1:
        raise BenchError("`iotask schedule export` did not give one task outline")
    model = body[0]
    body.remove(model)
    slot = now - timedelta(hours=1)
    for number in range(count):
        task = deepcopy(model)
        task.set("text", f"startup-{number:05d}")
        kind = number % 10
        if kind == 0:
            task.set("schedule_type", "at")
            task.set("schedule", f"{slot:%H:%M}")
        elif kind == 1:
            task.set("schedule_type", "cron")
            task.set("schedule", f"{slot.minute} {slot.hour} * * *")
        else:
            task.set("schedule_type", "any")
            task.set("schedule", f"{2 + number % 3} day")
        body.append(task)
    return ET.tostring(root, encoding="unicode")


def startup_folder(folder: Path) -> tuple[Path, Path]:
    folder.mkdir()
    feed = folder / "startup.csv"
    feed.write_text("userid,firstname\nu1,Anna\n", encoding="utf-8")
    return folder, feed


def median_seconds(measure: Any) -> float:
    return statistics.median(measure() for _ in range(STARTUP_REPEATS))


def help_line(folder: Path) -> Line:
    """`iotask --help`, the whole process: Python, click and iotask's command table."""
    place = folder / "help"
    place.mkdir()
    iotask = Iotask("", place, place)
    seconds = median_seconds(lambda: iotask.timed("--help", database=False))
    line = Line("-", f"iotask --help (median of {STARTUP_REPEATS})", seconds)
    judge(line, seconds, "<", HELP_BUDGET, " s")
    return line


def run_due_line(database: str, url: str, folder: Path, count: int) -> Line:
    """`iotask run-due` with ``count`` enabled tasks, none due: the whole process, as cron runs
    it every minute. The tasks come in through `iotask schedule import` and are made not due by
    `iotask reset --all --to NOW`; one `run-due --json` checks that none ran."""
    folder, feed = startup_folder(folder)
    iotask = Iotask(url, folder, folder)
    iotask.env["IOTASK_TIMEZONE"] = "UTC"
    say(f"{database}: run-due start-up: {count:,} tasks (schedule import, reset --all --to)")
    iotask.setup("db", "upgrade")
    iotask.setup("connection", "add", "startup-csv", "--type", "csv", "--set", f"url={feed}")
    iotask.setup("connection", "add", "startup-sql", "--type", "sql",
                 "--set", "table=startup_user", "--set", "key=userid")
    iotask.setup("task", "add", "startup-00000", "--source", "startup-csv",
                 "--destination", "startup-sql")
    now = datetime.now(UTC).replace(tzinfo=None)
    opml = folder / "tasks.opml"
    opml.write_text(many_tasks(iotask.output("schedule", "export"), count, now), encoding="utf-8")
    iotask.setup("schedule", "import", str(opml))
    iotask.setup("reset", "--all", "--to", f"{now:%Y-%m-%d %H:%M}")
    report = json.loads(iotask.output("run-due", "--json"))["tasks"]
    ran = [task["task"] for task in report if task["executed"]]
    if ran or len(report) != count:
        raise BenchError(f"run-due reported {len(report)} tasks, expected {count}, and ran "
                         f"{len(ran)} ({', '.join(ran[:3])}...): the start-up line is wrong")
    say(f"{database}: run-due start-up: timing {STARTUP_REPEATS} runs")
    seconds = median_seconds(lambda: iotask.timed("run-due"))
    line = Line(database, f"iotask run-due: {count} tasks, none due (median of "
                          f"{STARTUP_REPEATS})", seconds)
    judge(line, seconds, "<", RUN_DUE_BUDGET, " s")
    return line


def bench_database(database: str, files: Files, folder: Path, started: list[Path],
                   servers: dict[str, str], keep: bool, versions: dict[str, str],
                   lms_rows: int = 0, startup_tasks: int = 0, repeat: int = REPEAT,
                   ) -> list[Line]:
    work = folder / database
    work.mkdir()
    if database == "sqlite":
        versions[database] = f"SQLite {sqlite3.sqlite_version}"
        lines = scenarios(database, f"sqlite:///{work / 'iotask.db'}", files, work, repeat)
        if startup_tasks:
            lines.append(run_due_line(database, f"sqlite:///{work / 'startup.db'}",
                                      work / "startup", startup_tasks))
        return lines
    server = server_url(database, folder, started, servers)
    with fresh_database(database, server, keep) as url:
        versions[database] = server_version(database, url)
        lines = scenarios(database, url, files, work, repeat)
    if startup_tasks:
        with fresh_database(database, server, keep) as url:
            lines.append(run_due_line(database, url, work / "startup", startup_tasks))
    if lms_rows and database == "mariadb":
        with fresh_database(database, server, keep) as url:
            lms_folder = folder / "lms"
            lms_folder.mkdir()
            lines += lms_scenarios(url, lms_folder, lms_rows)
    return lines


# --- report -----------------------------------------------------------------------------------

HEADERS = ("database", "scenario", "seconds", "rows/s", "ratio", "budget", "result",
           "peak RSS MB", "own s", "ins/upd/same/rem/fail")


def _cells(line: Line) -> list[str]:
    def number(value: float | None, form: str) -> str:
        return "" if value is None else format(value, form)
    ratio = "" if line.ratio is None else f"{line.ratio:.2f}x"
    return [line.database, line.scenario, number(line.seconds, ".2f"),
            number(line.rows_per_second, ",.0f"), ratio, line.budget, line.result,
            number(line.rss_mb, ".0f"), number(line.own_seconds, ".0f"),
            _counts_text(line.counts) if line.counts else ""]


def print_table(lines: list[Line], files: Files, versions: dict[str, str], total: float) -> None:
    print(f"iotask import benchmark: {files.rows:,} rows x {len(COLUMNS)} columns "
          f"({files.megabytes:.1f} MB CSV, seed {SEED}); Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {', '.join(versions.values())}")
    print("seconds: wall time (iotask: the whole `iotask run` process, start-up included; "
          "own s: the duration it reports, to the second); a baseline, first import or "
          "unchanged re-import: the median run")
    rows = [_cells(line) for line in lines]
    widths = [max(len(text) for text in column) for column in zip(HEADERS, *rows, strict=True)]
    numeric = {2, 3, 4, 7, 8}
    for row in [list(HEADERS), *rows]:
        print("  ".join(text.rjust(width) if index in numeric else text.ljust(width)
                        for index, (text, width) in enumerate(zip(row, widths, strict=True)))
              .rstrip())
    for line in lines:
        if line.note:
            print(f"{line.database}, {line.scenario}: {line.note}")
    print(f"total {total:.0f} s")


def report_json(lines: list[Line], files: Files, versions: dict[str, str],
                total: float, repeat: int = REPEAT) -> dict[str, Any]:
    return {
        "rows": files.rows, "csv_megabytes": round(files.megabytes, 1), "seed": SEED,
        "repeat": repeat,
        "python": platform.python_version(), "cpus": os.cpu_count(), "versions": versions,
        "total_seconds": round(total, 1),
        "budgets": {"ratios": BUDGETS, "orm_speedup": ORM_BUDGET,
                    "peak_rss_mb": RSS_BUDGET_MB, "help_seconds": HELP_BUDGET,
                    "run_due_seconds": RUN_DUE_BUDGET},
        "lines": [{**asdict(line), "rows_per_second": line.rows_per_second} for line in lines],
        "ok": all(line.result != "FAILED" for line in lines),
    }


# --- main -------------------------------------------------------------------------------------

def databases_option(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DATABASES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"expected some of {', '.join(DATABASES)}, got {text!r}")
    return list(dict.fromkeys(names))


def installed_env() -> dict[str, str]:
    """This environment as an installed iotask runs in: without PYTHONDONTWRITEBYTECODE, which
    some sandboxes set and which makes every process compile iotask's modules again (0.1 s)."""
    return {name: value for name, value in os.environ.items()
            if name != "PYTHONDONTWRITEBYTECODE"}


def compile_iotask() -> None:
    """Byte-compile iotask's packages, as ``pip install`` does: an editable install (a source
    checkout) has no .pyc files until a process writes them."""
    subprocess.run([sys.executable, "-c",
                    "import compileall, iotask, iotask.connectors, iotask.migrations\n"
                    "for package in (iotask, iotask.connectors, iotask.migrations):\n"
                    "    for path in package.__path__:\n"
                    "        compileall.compile_dir(path, quiet=1, maxlevels=0)\n"],
                   check=True, env=installed_env())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the users CSV")
    parser.add_argument("--databases", type=databases_option, default=list(DATABASES),
                        help="comma-separated: sqlite,mariadb,postgresql (default all three)")
    parser.add_argument("--lms-rows", type=int, default=100_000,
                        help="users for the LMS line on MariaDB (forma-users); 0 leaves it out")
    parser.add_argument("--startup-tasks", type=int, default=STARTUP_TASKS,
                        help="tasks for the run-due start-up line on each database; 0 leaves "
                             "the start-up lines out")
    parser.add_argument("--repeat", type=int, default=REPEAT,
                        help="runs of each baseline, first import and unchanged re-import, of "
                             f"which the median counts (default {REPEAT})")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (and database)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    if args.startup_tasks < 0:
        parser.error("--startup-tasks must be 0 or more")
    if args.rows < 100:
        parser.error("--rows must be at least 100 (1 % of them change, 1 % go missing)")
    if not IOTASK.exists():
        parser.error(f"no iotask command at {IOTASK}: run with the Python of a venv where "
                     "iotask is installed")

    start = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="iotask-bench-"))
    started: list[Path] = []
    servers: dict[str, str] = {}
    lines: list[Line] = []
    versions: dict[str, str] = {}
    try:
        compile_iotask()
        say(f"writing {args.rows:,} rows to {folder}")
        files = write_files(folder, args.rows)
        if args.startup_tasks:
            say("iotask --help start-up")
            lines.append(help_line(folder))
        for database in args.databases:
            try:
                measured = bench_database(database, files, folder, started, servers,
                                          args.keep, versions, args.lms_rows,
                                          args.startup_tasks, args.repeat)
                for line in measured:  # said at once: a run cut short still tells them
                    say(" | ".join(cell for cell in _cells(line) if cell))
                lines += measured
            except (BenchError, sa.exc.SQLAlchemyError, sqlite3.Error, OSError) as exc:
                say(f"{database}: broke: {exc}")
                lines.append(Line(database, "benchmark", result="FAILED", note=str(exc)))
    finally:
        for place in started:
            subprocess.run([str(DBSERVERS), "stop", str(place)], stdout=subprocess.DEVNULL)
        if args.keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    total = time.perf_counter() - start
    if args.json:
        print(json.dumps(report_json(lines, files, versions, total, args.repeat), indent=2))
    else:
        print_table(lines, files, versions, total)
    return 0 if all(line.result != "FAILED" for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
