"""The columnar fast path: a kill -9 during a direct load leaves the target empty, the typed
batches it gives other code, and pyarrow loaded only by a run that writes.

That the fast path gives the exact path's results is tests/test_fast_path_differential.py.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from conftest import aged
from iotask.connectors import bulk, columnar

from iotask import db as iotask_db
from iotask.clock import utcnow
from iotask.models import Task

SCRIPT = Path(sys.executable).parent / "iotask"
ROWS = 300_000
SENT = "columnar: "  # the loader's debug lines: "columnar: N rows sent" after each batch,
# and on SQLite "columnar: part N copied" after each part
TRIALS = 2
LEASE = 2  # seconds: a killed run's lease expires soon


def users(path: Path, count: int, offset: int = 0, name: str = "Name") -> Path:
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("userid,name,hired\n")
        out.writelines(f"u{n + offset:07d},{name} {n},2020-01-{n % 28 + 1:02d}\n"
                       for n in range(count))
    return aged(path)


def wait_for_lease(engine: sa.Engine) -> None:
    """Until the killed runner's lease on the task has expired (LEASE seconds)."""
    deadline = time.monotonic() + 60
    while True:
        with engine.connect() as conn:
            until = conn.execute(sa.select(Task.locked_until).where(Task.name == "people")
                                 ).scalar_one()
        if until is None or utcnow() > until:
            return
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.1)


def content(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(
            "SELECT userid, name, hired, imported_from_connection FROM people ORDER BY userid")]


@pytest.mark.parametrize("records", [0, 2000], ids=["direct load", "staged"])
def test_a_run_killed_during_a_fast_load_leaves_the_table_as_it_was(iotask, migrated_url,
                                                                    tmp_path, records):
    """Killed with SIGKILL while its batches are being loaded, straight into the empty table
    or into the stage of one with records, a run leaves the table as it was. On SQLite it is
    killed once a part has been copied into the table, inside the run's transaction."""
    engine = iotask_db.make_engine(migrated_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE people (userid VARCHAR(20) PRIMARY KEY, "
                                 "name VARCHAR(40), hired DATE, "
                                 "imported_from_connection VARCHAR(255))")
        path = users(tmp_path / "people.csv", records or ROWS)
        iotask("connection", "add", "people-csv", "--type", "csv", "--set", f"url={path}")
        iotask("connection", "add", "people-sql", "--type", "sql", "--set", "table=people")
        iotask("task", "add", "people", "--source", "people-csv", "--destination", "people-sql",
               "--import-type", "sync", "--max-remove", "100%")
        env = {**os.environ, "IOTASK_LOG_LEVEL": "DEBUG", "IOTASK_LEASE_SECONDS": str(LEASE)}
        env.pop(columnar.EXACT_ENV, None)
        if records:
            iotask("run", "people")
            users(path, ROWS, offset=records // 2, name="Renamed")
        before = content(engine)
        assert len(before) == records
        killing = "part 0 copied" if migrated_url.startswith("sqlite") else "rows sent"
        for _trial in range(TRIALS):
            wait_for_lease(engine)
            child = subprocess.Popen([str(SCRIPT), "--db", migrated_url, "run", "people"],
                                     cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True)
            seen = []
            try:
                assert child.stderr is not None
                for line in child.stderr:
                    seen.append(line)
                    if SENT in line and killing in line:
                        child.send_signal(signal.SIGKILL)
                        break
                else:
                    pytest.fail("the run ended before loading:\n" + "".join(seen[-5:]))
            finally:
                child.kill()
                child.wait(timeout=60)
                if child.stderr is not None:
                    child.stderr.close()
            assert child.returncode == -signal.SIGKILL
            assert not any("columnar fast path:" in line for line in seen), \
                "killed after the load: " + "".join(seen[-3:])
            assert content(engine) == before, "the killed run changed the table"
        wait_for_lease(engine)
        done = subprocess.run([str(SCRIPT), "--db", migrated_url, "run", "people"], cwd=tmp_path,
                              env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert ("staged" if records else "loaded straight into the empty table") in done.stderr
        after = content(engine)
        assert len(after) == ROWS  # a sync: the records the file no longer has are gone
        assert after[-1] == (f"u{ROWS + records // 2 - 1:07d}", f"Renamed {ROWS - 1}"
                             if records else f"Name {ROWS - 1}", after[-1][2], "people-csv")
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_typed_batches_are_arrow_batches_typed_like_the_destination(tmp_path, backend):
    path = tmp_path / "typed.csv"
    path.write_bytes(b"id,name,n,amount,score,day,at,flag\n"
                     b"a, Ann ,5,1.5,2.25,2024-02-29,2024-02-29T10:11:12,Yes\n"
                     b"b,,,,,,,\n")
    file = columnar.CsvFile(path, str(path), ",", '"', "utf-8", True, None, False, 1 << 20)
    specs = [columnar.Spec("key", "text", source="id", length=10, key=True),
             columnar.Spec("name", "text", source="name"),
             columnar.Spec("n", "int", source="n"),
             columnar.Spec("amount", "decimal", source="amount", precision=10, scale=2),
             columnar.Spec("score", "float", source="score"),
             columnar.Spec("day", "date", source="day"),
             columnar.Spec("at", "datetime", source="at"),
             columnar.Spec("flag", "bool", source="flag"),
             columnar.Spec("unit", "text", const="Sales")]
    for _second_pass in range(2):
        [batch] = list(columnar.typed_batches(file, specs))
        assert batch.schema.names == [spec.name for spec in specs]
        assert batch.schema.types == [pa.string(), pa.string(), pa.int64(),
                                      pa.decimal128(10, 2), pa.float64(), pa.date32(),
                                      pa.timestamp("us"), pa.bool_(), pa.string()]
        assert batch.to_pylist() == [
            {"key": "a", "name": " Ann ", "n": 5, "amount": Decimal("1.50"), "score": 2.25,
             "day": date(2024, 2, 29), "at": datetime(2024, 2, 29, 10, 11, 12), "flag": True,
             "unit": "Sales"},
            {"key": "b", "name": "", "n": None, "amount": None, "score": None, "day": None,
             "at": None, "flag": None, "unit": "Sales"}]
    with pytest.raises(columnar.Unsupported, match="'n'"):
        path.write_bytes(b"id,name,n,amount,score,day,at,flag\nc,C,x,,,,,\n")
        list(columnar.typed_batches(file, specs))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_reader_blocks_are_converted_in_batches_of_thousands(tmp_path, backend):
    """pyarrow's reader gives 256 KB blocks; they are joined before conversion, so each
    vectorised call takes at least BATCH_ROWS rows, and every row comes once, in order."""
    path = users(tmp_path / "many.csv", 30_000)
    file = columnar.CsvFile(path, str(path), ",", '"', "utf-8", True, None, False, 1 << 20)
    specs = [columnar.Spec("userid", "text", source="userid", key=True),
             columnar.Spec("name", "text", source="name")]
    batches = list(columnar.typed_batches(file, specs))
    assert [batch.num_rows >= columnar.BATCH_ROWS for batch in batches[:-1]] == [True] * (
        len(batches) - 1) and len(batches) <= -(-30_000 // columnar.BATCH_ROWS)
    assert [row["userid"] for batch in batches for row in batch.to_pylist()] == [
        line.split(",")[0] for line in path.read_text().splitlines()[1:]]


@pytest.mark.parametrize("encoding, content, free", [
    ("utf-8", "id,name\na,Zoë\n", {"key", "name"}),
    ("iso-8859-1", "id,name\na,Zoë\n", {"key", "name"}),
    ("utf-8", "id,name\na,Zo\x1fë\n", set()),  # U+001F: each value is searched
    ("iso-8859-1", "id,name\na,Zo\x1f\n", set()),
    ("utf-16", "id,name\na,Zoë\n", set()),  # 0x1f may be half of another character
    ("no-such-codec", "id,name\na,Zoe\n", set()),
])
def test_columns_known_free_of_the_unit_separator(tmp_path, encoding, content, free):
    """The fingerprint's row text puts U+001F before each value, so a value holding it is not
    compared: a file without the byte (in an encoding where U+001F is that byte alone) spares
    the search in its values; a constant is searched all the same."""
    path = tmp_path / "unit.csv"
    path.write_bytes(content.encode(encoding if encoding != "no-such-codec" else "ascii"))
    file = columnar.CsvFile(path, str(path), ",", '"', encoding, True, None, False, 1 << 20)
    specs = [columnar.Spec("key", "text", source="id", key=True),
             columnar.Spec("name", "text", source="name"),
             columnar.Spec("unit", "text", const="Sales")]
    assert columnar.unit_free_columns(file, specs) == free


@pytest.mark.parametrize("text", [
    "2023-02-29", "2023-02-30", "2023-04-31", "2023-13-01", "2023-00-10", "2023-01-00",
    "0000-01-01", "2023-2-01", "20230101", "20230-1-01", "10000-01-01", "+023-01-01",
    "-001-01-01", "2023/01/01", "2023-01-1x", "1e3-01-01", "２０２３-01-01", "2023-01-0\u0661",
    "2023-01-01T00", "2023-01-01 00:00:00", "2023-W01-1", "2023-01-01 1"])
def test_a_date_the_fast_path_reads_is_an_iso_calendar_date(text):
    """What the date conversion does not read goes to the exact path: every form but
    YYYY-MM-DD of a real day from year 1 (Python's fromisoformat reads some of them since
    3.11, arrow's cast none)."""
    spec = columnar.Spec("day", "date", source="day")
    assert columnar.convert(spec, pa.array(["2024-02-29", " 0001-01-01 ", "9999-12-31", ""])
                            ).to_pylist() == [date(2024, 2, 29), date(1, 1, 1),
                                              date(9999, 12, 31), None]
    with pytest.raises(columnar.Unsupported, match="'day'"):
        columnar.convert(spec, pa.array(["2024-02-29", text]))


def test_a_file_is_scanned_once_while_unchanged_and_again_once_written(tmp_path,
                                                                      monkeypatch):
    """The byte scan's answer is kept for a file whose state is known while that state holds:
    a file written since (a quote character added) is scanned again and refused."""
    path = users(tmp_path / "scanned.csv", 10)
    opened: list[object] = []

    def counted(name, *args, **kwargs):
        opened.append(name)
        return open(name, *args, **kwargs)

    monkeypatch.setattr(columnar, "open", counted, raising=False)

    def csv_file(state):
        return columnar.CsvFile(path, str(path), ",", '"', "utf-8", True, None, False, 1 << 20,
                                state=state)

    known = csv_file(columnar._state(os.stat(path)))
    assert columnar._check_bytes(known, unit=True) is False
    assert columnar._check_bytes(known) is False
    assert columnar.unit_free_columns(known, PARTED) == {"userid", "name"}
    assert len(opened) == 1
    unknown = csv_file(None)
    columnar._check_bytes(unknown)
    columnar._check_bytes(unknown)
    assert len(opened) == 3
    with open(path, "a", encoding="utf-8") as out:
        out.write('u9999999,"Quoted",2020-01-01\n')
    with pytest.raises(columnar.Unsupported, match="quote"):
        columnar._check_bytes(known)


PARTED = [columnar.Spec("userid", "text", source="userid", key=True),
          columnar.Spec("name", "text", source="name")]


def one_row_batches(count: int, fail_at: int | None = None) -> Iterator[pa.RecordBatch]:
    for n in range(count):
        if n == fail_at:
            raise columnar.Unsupported("a value the exact path must judge")
        yield pa.RecordBatch.from_pydict({"userid": [f"u{n:03d}"], "name": [f"Name {n}"]})


@pytest.fixture
def parted(tmp_path, monkeypatch) -> Iterator[tuple[sa.Engine, sa.Table, Path]]:
    """A SQLite table, loads split into parts of two rows, and the folder their scratch
    databases go to."""
    monkeypatch.setattr(bulk, "PART_ROWS", 2)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'parts.db'}")
    table = sa.Table("people", sa.MetaData(), sa.Column("line", sa.Integer),
                     sa.Column("userid", sa.String(20), primary_key=True),
                     sa.Column("name", sa.String(40)))
    table.create(engine)
    yield engine, table, scratch
    engine.dispose()


def test_a_sqlite_load_in_parts_keeps_every_row_in_order_with_its_line(parted, caplog):
    """Parts of two rows: the first seven parts hold two rows each, the last (SQLite attaches
    ten databases at most) every row left; the line numbers run on across the parts."""
    engine, table, scratch = parted
    caplog.set_level(logging.DEBUG, "iotask.columnar")
    with engine.connect() as conn, conn.begin():
        assert bulk.load(conn, table, PARTED, one_row_batches(25), "line") == 25
        rows = conn.execute(sa.select(table).order_by(table.c.line)).all()
    assert [tuple(row) for row in rows] == [(n + 1, f"u{n:03d}", f"Name {n}") for n in range(25)]
    written = [record.getMessage() for record in caplog.records if "written" in record.message]
    assert written == [f"columnar: part {n} of 2 rows written" for n in range(7)] + [
        "columnar: part 7 of 11 rows written"]
    assert list(scratch.iterdir()) == []
    assert "iotask-ingest" not in [thread.name for thread in threading.enumerate()]


@pytest.mark.parametrize("failure", ["reading", "copying"])
def test_a_sqlite_load_failing_in_a_later_part_raises_and_leaves_nothing(parted, failure):
    """A reading that stops at the seventh row (the exact path's case), or a copy that the
    table refuses in the third part (a key it has): the error comes out of load, the ingest
    thread has ended, the scratch databases are gone, and a rollback leaves the table as it
    was."""
    engine, table, scratch = parted
    with engine.begin() as conn:
        conn.execute(table.insert().values(line=0, userid="u005", name="Kept"))
    error = columnar.Unsupported if failure == "reading" else sa.exc.IntegrityError
    with engine.connect() as conn, conn.begin() as transaction:
        with pytest.raises(error):
            bulk.load(conn, table, PARTED,
                      one_row_batches(12, 6 if failure == "reading" else None), "line")
        transaction.rollback()
    assert list(scratch.iterdir()) == []
    assert "iotask-ingest" not in [thread.name for thread in threading.enumerate()]
    with engine.connect() as conn:
        assert [tuple(row) for row in conn.execute(sa.select(table))] == [(0, "u005", "Kept")]


def test_the_sql_connector_does_not_import_pyarrow_until_a_run_writes():
    code = ("import sys, iotask.connectors.sql, iotask.dataflow, iotask.cli; "
            "print('pyarrow' in sys.modules)")
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
