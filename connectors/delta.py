"""Which rows of a file may differ from a table's, found without staging the file: a bucketed
diff of fingerprints, so that a sync of a file that changed a little stages a few of its rows
(on MariaDB, staging 1 M rows and joining them cost 2-3 LOAD DATAs of the file).

Rows go to buckets by the CRC-32 of their key's text (the low bits). Pass one: the database
sums its row hashes per bucket (``fingerprint.server_buckets``) while the same sums are taken
here over the file. A bucket whose count and sum agree on both sides holds the same rows
(``fingerprint``: a false agreement is practically impossible): its file rows are unchanged and
none of its records is gone. Pass two reads the file again and stages the rows of the other,
dirty, buckets, and the usual joins find among them what is new and what changed, and among
the records of the dirty buckets (``Delta.scope``) the ones the file no longer has.

A staged key that matches a record spelled otherwise (``ann`` for ``ANN`` under a
case-insensitive collation) is the one way the partial stage could answer otherwise than the
whole one: the caller refuses it (``Stage.respelled``).

Only for scheme CRC (MariaDB 10.8 and later, which computes it in SQL); None whenever the diff
cannot compare the values or would not be quicker (a small file, a table with many more rows
than the file).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from iotask.connectors import fingerprint
from iotask.connectors.columnar import Select, Unsupported
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    import pyarrow as pa

MIN_ROWS = 10_000  # fewer rows: staging all of them is as quick
ROWS_PER_BUCKET = 8  # the more buckets, the fewer rows a change makes dirty, the longer pass one
MIN_BITS, MAX_BITS = 10, 18  # at most 262 144 buckets, 10 MB of text from the database
SPREAD = 4  # rows are added to the per-bucket totals (2**bits each) once there are 1/SPREAD as many
log = logging.getLogger("iotask.delta")


@dataclass
class Delta:
    """The file against the table's rows: ``rows`` in the file, ``owned`` in the table (the
    ones compared), the ``dirty`` buckets (of ``bits`` bits) where they differ; ``batches``
    reads the file (``path``) again. ``total`` is the file's sum of row hashes: with ``rows``,
    its fingerprint (fingerprint.Fingerprint)."""

    rows: int
    total: int
    owned: int
    bits: int
    dirty: pa.Array
    key_kinds: list[fingerprint.Kind]
    batches: Callable[[Select | None], Iterator[pa.RecordBatch]]
    path: str
    stamp: tuple[int, int]  # the file's size and modification time in pass one
    unit_free: frozenset[str]  # as in fingerprint.Hasher

    def dirty_rows(self) -> Iterator[pa.RecordBatch]:
        """The file's rows in dirty buckets, read again (the other rows' values are not
        converted); raises Unsupported when the file no longer has pass one's rows."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not len(self.dirty):
            return
        flags = bytearray(1 << self.bits)
        for bucket in self.dirty.to_pylist():
            flags[bucket] = 1
        dirty = pa.Array.from_buffers(pa.uint8(), len(flags), [None, pa.py_buffer(flags)])
        seen = [0]

        def keep(keys: pa.RecordBatch) -> pa.Array:
            seen[0] += keys.num_rows
            try:
                numbers = _buckets(keys, self.key_kinds, self.bits, self.unit_free)
            except fingerprint.Unknown:  # pass one hashed the same keys
                numbers = None
            if numbers is None or seen[0] > self.rows:
                raise Unsupported("the file changed while it was read")
            # a flag per bucket, not is_in: hashing 100 000 dirty buckets took 10 MB
            return pc.cast(pc.take(dirty, numbers), pa.bool_())

        yield from self.batches(Select(frozenset(kind.name for kind in self.key_kinds), keep))
        if seen[0] != self.rows or _stamp(self.path) != self.stamp:
            raise Unsupported("the file changed while it was read")

    def scope(self, conn: sa.Connection, table: sa.Table) -> sa.ColumnElement[bool]:
        """SQL: a record is in a dirty bucket (the others hold exactly the file's rows)."""
        if not len(self.dirty):
            return sa.false()
        return fingerprint.in_buckets(conn, table, self.key_kinds, self.bits,
                                      self.dirty.to_pylist())


def diff(engine: sa.Engine, table: sa.Table, columns: Sequence[str], keys: int,
         where: Sequence[sa.ColumnElement[bool]],
         batches: Callable[[Select | None], Iterator[pa.RecordBatch]], path: str,
         unit_free: frozenset[str] = frozenset()) -> Delta | None:
    """Pass one of the diff of the file at ``path``, whose typed ``batches`` (a new pass at each
    call, of the rows a Select keeps; its first ``keys`` of ``columns`` are the key), against
    ``table``'s rows matching ``where``; ``unit_free`` as in fingerprint.Hasher."""
    if fingerprint.scheme(engine.dialect) != fingerprint.CRC:
        return None
    try:
        stamp = _stamp(path)
    except OSError:
        return None
    kinds = fingerprint.kinds(table, columns, "mysql")
    if kinds is None:
        return None
    key_kinds = kinds[:keys]
    try:
        with ThreadPoolExecutor(1) as pool:
            first = _pass_one(engine, pool, table, kinds, key_kinds, where, batches(None),
                              stamp[0], unit_free)
    except (fingerprint.Unknown, DBAPIError) as exc:
        log.debug("bucketed diff does not apply: %s", exc)
        return None
    if first is None:
        return None
    rows, total, owned, bits, dirty, fetched = first
    log.debug("bucketed diff: %d of %d buckets dirty, %d of the table's rows in them",
              len(dirty), 1 << bits, fetched)
    return Delta(rows, total, owned, bits, dirty, key_kinds, batches, path, stamp, unit_free)


def _pass_one(engine: sa.Engine, pool: ThreadPoolExecutor, table: sa.Table,
              kinds: list[fingerprint.Kind], key_kinds: list[fingerprint.Kind],
              where: Sequence[sa.ColumnElement[bool]], batches: Iterator[pa.RecordBatch],
              size: int, unit_free: frozenset[str]
              ) -> tuple[int, int, int, int, pa.Array, int] | None:
    """The file's and the table's bucket sums compared: (file rows, file's sum of row hashes,
    table rows, bits, dirty buckets, table rows in them); None when the diff would not be
    quicker."""
    import pyarrow as pa
    import pyarrow.compute as pc

    head = next(batches, None)
    if head is None:
        return None
    estimate = size * head.num_rows // max(head.nbytes, 1)  # typed bytes: about the text's
    bits = min(MAX_BITS, max(MIN_BITS, math.ceil(math.log2(max(estimate, 1) / ROWS_PER_BUCKET))))
    if estimate < MIN_ROWS or estimate > ROWS_PER_BUCKET << MAX_BITS:
        return None
    if _on_server(engine, _table_rows, table) > 2 * estimate + MIN_ROWS:
        return None
    scatter = getattr(pc, "scatter", None)  # not in older pyarrow
    if scatter is None:
        return None
    last = (1 << bits) - 1

    def spread(found: _Sums) -> tuple[pa.Array, pa.Array]:
        """Each bucket's count and sum, zero for the buckets not ``found``."""
        places = found[0].cast(pa.int32())
        more, hashes = (pc.fill_null(scatter(values, places, max_index=last), 0)
                        for values in found[1:])
        return more, hashes

    started = time.perf_counter()
    stored = pool.submit(_timed, engine, fingerprint.server_buckets, table, kinds, key_kinds,
                         where, bits)
    counts, sums = spread(_nothing())
    rows = 0
    one = pa.scalar(1, pa.int32())
    pending: list[_Sums] = []  # summed per chunk, spread a few chunks at a time
    for batch in _with_head(head, batches):
        numbers = _buckets(batch, key_kinds, bits, unit_free)
        rows += len(numbers)
        hashes = _hashes(batch, kinds, unit_free)
        pending.append((numbers, pa.repeat(one, len(hashes)), hashes))
        if sum(len(part[0]) for part in pending) * SPREAD >= last:
            more, hashed = spread(_summed(_joined(pending)))
            counts, sums, pending = pc.add(counts, more), pc.add(sums, hashed), []
    if pending:
        more, hashed = spread(_summed(_joined(pending)))
        counts, sums = pc.add(counts, more), pc.add(sums, hashed)
    log.debug("bucketed diff: the file's sums in %.2fs", time.perf_counter() - started)
    there, seconds = stored.result()
    log.debug("bucketed diff: the table's sums in %.2fs", seconds)
    stored_counts, stored_sums = spread(
        _summed(tuple(there[name].combine_chunks() for name in ("k", "n", "s"))))
    dirty = pc.indices_nonzero(pc.or_(pc.not_equal(counts, stored_counts),
                                      pc.not_equal(sums, stored_sums))).cast(pa.uint32())
    total = (pc.sum(sums).as_py() or 0) % fingerprint.MODULUS  # uint64 sums wrap
    return (rows, total, pc.sum(stored_counts).as_py() or 0, bits, dirty,
            pc.sum(pc.take(stored_counts, dirty)).as_py() or 0)


_Sums = tuple["pa.Array", "pa.Array", "pa.Array"]  # buckets, their rows, their sums of hashes


def _nothing() -> _Sums:
    import pyarrow as pa

    return pa.array([], pa.uint32()), pa.array([], pa.int32()), pa.array([], pa.uint64())


def _joined(parts: list[_Sums]) -> _Sums:
    import pyarrow as pa

    return (pa.concat_arrays([part[0] for part in parts]),
            pa.concat_arrays([part[1] for part in parts]),
            pa.concat_arrays([part[2] for part in parts]))


def _summed(sums: _Sums) -> _Sums:
    """The rows and hashes summed per bucket (modulo 2**64), each bucket once. Sorted and cut
    where the bucket changes, then spread over all buckets (scatter): pyarrow's group_by
    (Acero) kept 40-90 MB more, hashing 100 000 buckets (is_in) 10-20 MB."""
    import pyarrow as pa
    import pyarrow.compute as pc

    order = pc.sort_indices(sums[0])
    buckets, counts, hashes = (pc.take(values, order) for values in sums)
    size = len(buckets)
    if not size:
        return buckets, counts, hashes
    ends = pa.concat_arrays([
        pc.indices_nonzero(pc.not_equal(buckets.slice(1), buckets.slice(0, size - 1))),
        pa.array([size - 1], pa.uint64())])
    totals = []
    for values in (counts, hashes):
        running = pc.take(pc.cumulative_sum(values), ends)  # wraps, as the sums may
        totals.append(pc.subtract(running, pa.concat_arrays(
            [pa.array([0], running.type), running.slice(0, len(ends) - 1)])))
    return pc.take(buckets, ends), totals[0], totals[1]


def _stamp(path: str) -> tuple[int, int]:
    found = os.stat(path)
    return found.st_size, found.st_mtime_ns


def _table_rows(conn: sa.Connection, table: sa.Table) -> int:
    """About how many records ``table`` has (InnoDB's estimate: a COUNT took 0.25 s)."""
    return int(conn.execute(sa.text(
        "SELECT table_rows FROM information_schema.tables WHERE table_schema = "
        "COALESCE(:schema, DATABASE()) AND table_name = :table"),
        {"schema": table.schema, "table": table.name}).scalar() or 0)


def _with_head(head: pa.RecordBatch, rest: Iterator[pa.RecordBatch]
               ) -> Iterator[pa.RecordBatch]:
    yield head
    yield from rest


def _timed(engine: sa.Engine, query: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``_on_server``, and the seconds it took."""
    started = time.perf_counter()
    return _on_server(engine, query, *args), time.perf_counter() - started


def _on_server(engine: sa.Engine, query: Callable[..., Any], *args: Any) -> Any:
    """``query(conn, *args)`` on a connection of its own, in a read-only transaction."""
    with engine.connect() as conn, conn.begin():
        return query(conn, *args)


def _texts(batch: pa.RecordBatch, kinds: list[fingerprint.Kind], unit_free: frozenset[str]
           ) -> list[bytes]:
    """The CRC row texts of a batch's ``kinds`` columns (the key's, or the whole row's)."""
    return fingerprint.Hasher(kinds, "mysql", fingerprint.CRC, unit_free).texts(
        batch).to_pylist()


def _buckets(batch: pa.RecordBatch, key_kinds: list[fingerprint.Kind], bits: int,
             unit_free: frozenset[str]) -> pa.Array:
    """A batch's buckets."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.bit_wise_and(fingerprint.crc_words(_texts(batch, key_kinds, unit_free)),
                           pa.scalar((1 << bits) - 1, pa.uint32()))


def _hashes(batch: pa.RecordBatch, kinds: list[fingerprint.Kind], unit_free: frozenset[str]
            ) -> pa.Array:
    """A batch's row hashes."""
    return fingerprint.crc_hashes(_texts(batch, kinds, unit_free))
