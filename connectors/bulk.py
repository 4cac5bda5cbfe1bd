"""The columnar fast path's writing side: typed pyarrow batches (``columnar.typed_batches``)
bulk-loaded into one table, the target itself when it is empty, else a Stage's temporary table.

MariaDB/MySQL: ``LOAD DATA LOCAL INFILE`` of a FIFO that a second thread fills with the rows in
LOAD DATA's text format, so the server loads while the file is read and converted. PostgreSQL:
``COPY ... FROM STDIN`` in the same text format, produced a batch ahead in a second thread.
SQLite: ADBC into scratch databases, a part at a time, each copied by one
``INSERT ... SELECT`` on the run's connection while the next is written. Everything runs on
the caller's connection and transaction; any failure raises LoadFailed (or Unsupported from
the reading) and the caller rolls back.
"""

from __future__ import annotations

import fcntl
import itertools
import logging
import math
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from iotask.connectors.columnar import Spec, datetime_text

log = logging.getLogger("iotask.columnar")
_SPECIAL = r"[\\\t\n\r]"
_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
_END = object()
PIPE_BYTES = 1 << 20  # the FIFO's buffer (Linux's default most an unprivileged process may set)
_LINES = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none",
                            null_string="\\N", eol="\n")


class LoadFailed(Exception):
    """The database refused or changed something (a warning, a constraint, a count that does
    not match): the caller rolls back and the exact path runs."""


def load(conn: sa.Connection, table: sa.Table, specs: list[Spec],
         batches: Iterator[pa.RecordBatch], line_column: str | None = None,
         rows_hint: int | None = None) -> int:
    """Load every batch into ``table`` (its columns named as the specs, plus ``line_column``
    numbered 1, 2, ... when given); how many rows. ``rows_hint``, about how many there are,
    sizes SQLite's parts."""
    backend = "mysql" if conn.dialect.name in ("mysql", "mariadb") else conn.dialect.name
    names = ([line_column] if line_column else []) + [spec.name for spec in specs]
    quote = conn.dialect.identifier_preparer.quote
    started = time.perf_counter()
    if backend == "mysql":
        count = _load_data(conn, quote(table.name), [quote(n) for n in names], specs, batches,
                           line_column is not None)
    elif backend == "postgresql":
        count = _copy(conn, table.name, names, specs, batches, line_column is not None)
    elif backend == "sqlite":
        count = _insert(conn, quote(table.name), [quote(n) for n in names], specs, batches,
                        line_column is not None, rows_hint)
    else:
        raise LoadFailed(f"no bulk loader for {conn.dialect.name}")
    log.debug("columnar: %d rows loaded into %s in %.2fs", count, table.name,
              time.perf_counter() - started)
    return count


def _texts(batches: Iterator[pa.RecordBatch], specs: list[Spec], backend: str,
           numbered: bool) -> Iterator[tuple[int, pa.Buffer]]:
    """Each batch as (rows, bytes) in the text format LOAD DATA and COPY share: tab-separated,
    one line a row, backslash escapes, \\N for NULL. pyarrow's CSV writer writes the lines
    (never quoting: the values are escaped first) three times faster than joining them."""
    done = 0
    for batch in batches:
        count = batch.num_rows
        columns = [_text(batch.column(i), spec, backend) for i, spec in enumerate(specs)]
        if numbered:
            columns.insert(0, pa.array(range(done + 1, done + count + 1), pa.int64()))
        sink = pa.BufferOutputStream()
        pacsv.write_csv(pa.RecordBatch.from_arrays(columns, names=[
            f"c{position}" for position in range(len(columns))]), sink, _LINES)
        done += count
        yield count, sink.getvalue()


def _text(values: pa.Array, spec: Spec, backend: str) -> pa.Array:
    """A column ready for the writer: text escaped, booleans and date-times as the database
    reads them; the writer itself writes numbers, decimals and dates as pyarrow casts them."""
    if spec.kind == "bool":
        true, false = ("1", "0") if backend == "mysql" else ("t", "f")
        return pc.if_else(values, pa.scalar(true, pa.string()), pa.scalar(false, pa.string()))
    if spec.kind == "datetime":
        return datetime_text(values)
    if spec.kind == "text" and _special(values):
        for old, new in _ESCAPES:
            values = pc.replace_substring(values, old, new)
    return values


def _special(values: pa.Array) -> bool:
    """Whether a text column may hold a character to escape: one search of its whole values
    buffer (bytes of a sliced array's neighbours included: at worst it escapes for nothing)."""
    data = values.buffers()[2]
    if data is None or not data.size:
        return False
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [
        None, pa.array([0, data.size], pa.int64()).buffers()[1], data])
    return bool(pc.match_substring_regex(whole, _SPECIAL)[0].as_py())


def _load_data(conn: sa.Connection, table: str, names: list[str], specs: list[Spec],
               batches: Iterator[pa.RecordBatch], numbered: bool) -> int:
    """LOAD DATA LOCAL of a FIFO written by a second thread. LOCAL turns data errors into
    warnings, so any warning, or a row count other than the rows sent, is a failure."""
    folder = tempfile.mkdtemp(prefix="iotask-load-")
    fifo = os.path.join(folder, "rows.tsv")
    os.mkfifo(fifo, 0o600)
    failed: list[BaseException] = []
    sent = [0]
    opened = threading.Event()

    def produce() -> None:
        try:
            out = os.open(fifo, os.O_WRONLY)
        except OSError as exc:
            failed.append(exc)
            return
        try:  # a megabyte ahead instead of 64 KB: the writer stalls less on the server's pace
            fcntl.fcntl(out, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except OSError:
            pass  # a system capping pipes lower: only slower
        opened.set()
        try:
            for count, data in _texts(batches, specs, "mysql", numbered):
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view):]
                sent[0] += count
                log.debug("columnar: %d rows sent", sent[0])
        except BrokenPipeError as exc:
            failed.append(exc)
        except BaseException as exc:  # Unsupported above all: re-raised in the caller
            failed.append(exc)
        finally:
            os.close(out)

    thread = threading.Thread(target=produce, name="iotask-columnar", daemon=True)
    thread.start()
    try:
        sql = (f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} CHARACTER SET utf8mb4 "
               "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
               f"({', '.join(names)})")
        try:
            result = conn.exec_driver_sql(sql, (fifo,))
        finally:
            if not opened.is_set():  # the server refused before reading: let the writer end
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
            thread.join()
        if failed:
            raise failed[0]
        warning = conn.exec_driver_sql("SHOW WARNINGS LIMIT 1").first()
        if warning is not None:
            raise LoadFailed(f"LOAD DATA: {warning[2]}")
        if result.rowcount != sent[0]:
            raise LoadFailed(f"LOAD DATA loaded {result.rowcount} of {sent[0]} rows")
        return sent[0]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def ahead(items: Iterator[Any]) -> Generator[Any, None, None]:
    """``items`` produced one ahead in a second thread (pyarrow releases the GIL), in order;
    the producer's exception comes out where its item would have."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put(item)
            slots.put(_END)
        except BaseException as exc:
            slots.put(exc)

    thread = threading.Thread(target=produce, name="iotask-columnar", daemon=True)
    thread.start()
    try:
        while (item := slots.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting for a free slot
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def _copy(conn: sa.Connection, table: str, names: list[str], specs: list[Spec],
          batches: Iterator[pa.RecordBatch], numbered: bool) -> int:
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names)))
    raw: Any = conn.connection.dbapi_connection
    sent = 0
    with raw.cursor() as cursor:
        with cursor.copy(statement) as copy:
            for count, data in ahead(_texts(batches, specs, "postgresql", numbered)):
                copy.write(data)
                sent += count
                log.debug("columnar: %d rows sent", sent)
        if cursor.rowcount not in (-1, sent):
            raise LoadFailed(f"COPY loaded {cursor.rowcount} of {sent} rows")
    return sent


_SQLITE: dict[str, Callable[[pa.Array], pa.Array]] = {
    # the values SQLAlchemy's SQLite bind processors give: Decimal as float, dates as text
    "decimal": lambda values: pc.cast(pc.cast(values, pa.string()), pa.float64()),
    "date": lambda values: pc.cast(values, pa.string()),
    "datetime": lambda values: datetime_text(values, ".000000"),
    "bool": lambda values: pc.cast(values, pa.int64()),
}


PARTS = 8  # scratch databases a SQLite load is split into (SQLite attaches ten at most)
PART_ROWS = 65_536  # the fewest rows of one part


def _insert(conn: sa.Connection, table: str, names: list[str], specs: list[Spec],
            batches: Iterator[pa.RecordBatch], numbered: bool, rows_hint: int | None) -> int:
    """ADBC ingests the batches, a part at a time, into scratch databases of its own (no lock
    on the destination) in a second thread; the run's connection attaches each part once it is
    written and copies it with one INSERT ... SELECT inside its transaction while ADBC writes
    the next: binding whole arrow columns in C is three times faster than executemany's
    tuples, and the copy of one part overlaps the ingest of the next. Each part is written by
    one library and then only read by the other (ADBC's SQLite is a copy of its own, whose
    locks the run's SQLite does not see)."""
    import adbc_driver_sqlite.dbapi as adbc

    folder = tempfile.mkdtemp(prefix="iotask-load-")
    fields = [f"c{position}" for position in range(len(specs))]
    part_rows = max(PART_ROWS, -(-(rows_hint or 0) // PARTS))
    parts: queue.Queue[Any] = queue.Queue()  # (path, rows) of each part written, then _END
    stop = threading.Event()
    failed: list[BaseException] = []
    sent = 0

    def converted() -> Iterator[pa.RecordBatch]:
        nonlocal sent
        for batch in batches:
            yield pa.RecordBatch.from_arrays(
                [_SQLITE.get(spec.kind, _same)(batch.column(i)) for i, spec in enumerate(specs)],
                names=fields)
            sent += batch.num_rows
            log.debug("columnar: %d rows sent", sent)

    def ingest() -> None:
        rows = ahead(converted())  # made while ADBC binds the previous batch
        try:
            pending = next(rows, None)
            for index in itertools.count():
                if pending is None or stop.is_set():
                    break
                count = 0

                def part(limit: float = part_rows if index < PARTS - 1 else math.inf,
                         ) -> Iterator[pa.RecordBatch]:  # the last part takes what is left
                    nonlocal pending, count
                    while pending is not None and not stop.is_set() and count < limit:
                        batch = pending
                        count += batch.num_rows
                        yield batch
                        try:
                            pending = next(rows, None)
                        except BaseException as exc:  # kept from ADBC, which would wrap it
                            failed.append(exc)
                            return

                path = os.path.join(folder, f"part{index}.db")
                reader = pa.RecordBatchReader.from_batches(pending.schema, part())
                with adbc.connect(path, autocommit=True) as scratch, scratch.cursor() as cursor:
                    cursor.execute("PRAGMA journal_mode = OFF")  # a scratch copy: no journal
                    cursor.fetchall()
                    cursor.execute("PRAGMA synchronous = OFF")
                    cursor.execute("BEGIN")
                    cursor.adbc_ingest("iotask_rows", reader, mode="create")
                    cursor.execute("COMMIT")
                if failed:
                    raise failed[0]
                log.debug("columnar: part %d of %d rows written", index, count)
                parts.put((path, count))
            parts.put(_END)
        except BaseException as exc:  # Unsupported above all: re-raised in the caller
            parts.put(exc)
        finally:
            rows.close()

    thread = threading.Thread(target=ingest, name="iotask-ingest", daemon=True)
    thread.start()
    try:
        copied = 0
        for index in itertools.count():
            item = parts.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            path, count = item
            schema = f"iotask_scratch{index}"
            conn.exec_driver_sql(f"ATTACH DATABASE ? AS {schema}", (path,))
            conn.exec_driver_sql(f"PRAGMA {schema}.cache_size = -64")  # read once, in order
            values = ", ".join([f"rowid + {copied}"] * numbered + fields)
            conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(names)}) SELECT {values} "
                                 f"FROM {schema}.iotask_rows ORDER BY rowid")
            copied += count
            log.debug("columnar: part %d copied", index)
        return copied
    finally:
        stop.set()
        thread.join()
        shutil.rmtree(folder, ignore_errors=True)


def _same(values: pa.Array) -> pa.Array:
    return values
