"""Which rows of a file differ from a table's, found without staging the file: a bucketed diff
of fingerprints, so that a sync of a file that changed a little stages its new and changed
rows only (on MariaDB, staging 1 M rows and joining them cost 2-3 LOAD DATAs of the file).

Rows go to buckets by the CRC-32 of their key's text (the low bits). Pass one: the database
sums its row hashes per bucket (``fingerprint.server_buckets``) while the same sums are taken
here over the file. A bucket whose count and sum agree on both sides holds the same rows
(``fingerprint``: a false agreement is practically impossible). Pass two: the database gives
the key text and row hash of each of its rows in the other, dirty, buckets while the file is
read again; a file row in a dirty bucket whose key the database has with the same hash is
unchanged, any other one is staged, and each key the database has there but the file has not
is a record the file no longer holds.

Keys are matched byte for byte here, while the database matches them under its collation
(``ann`` and ``ANN`` are one key under a case-insensitive one): the caller refuses the result
when a staged key matches a record spelled otherwise (``Stage.respelled``), the only way the
two can disagree for a key unique in the table.

Only for scheme CRC (MariaDB 10.8 and later, which computes it in SQL); None whenever the diff
cannot promise the full stage's change set (a value it cannot compare, a repeated key) or would
not be quicker (a small file, a table with many more rows than the file, many dirty buckets).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from iotask.connectors import fingerprint
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    import pyarrow as pa

MIN_ROWS = 10_000  # fewer rows: staging all of them is as quick
ROWS_PER_BUCKET = 8  # the more buckets, the fewer rows a change makes dirty, the longer pass one
MIN_BITS, MAX_BITS = 10, 18  # at most 262 144 buckets: their sums are Python dicts
MAX_FETCHED = 300_000  # rows of dirty buckets read from the database at most (memory)
CHUNK_ROWS = 32_768  # file rows hashed at once
log = logging.getLogger("iotask.delta")


@dataclass
class Delta:
    """The file against the table's rows: ``rows`` in the file, ``owned`` in the table (the
    ones compared), the file's new and changed rows as batches, and the identities of the
    compared records whose key the file no longer has."""

    rows: int
    owned: int
    changed: list[pa.RecordBatch]
    removed: list[tuple[Any, ...]]


def diff(engine: sa.Engine, table: sa.Table, columns: Sequence[str], keys: int,
         identity: Sequence[str], where: Sequence[sa.ColumnElement[bool]],
         batches: Callable[[], Iterator[pa.RecordBatch]], size: int) -> Delta | None:
    """The Delta of the file whose typed ``batches`` (a new pass at each call; its first
    ``keys`` of ``columns`` are the key) are compared with ``table``'s rows matching ``where``;
    ``identity``: the columns that identify a record to remove; ``size``: the file's bytes."""
    if fingerprint.scheme(engine.dialect) != fingerprint.CRC:
        return None
    kinds = fingerprint.kinds(table, columns, "mysql")
    if kinds is None:
        return None
    key_kinds = kinds[:keys]
    try:
        with ThreadPoolExecutor(1) as pool:
            first = _pass_one(engine, pool, table, kinds, key_kinds, where, batches(), size)
            if first is None:
                return None
            rows, owned, bits, dirty, fetched = first
            if not dirty:
                return Delta(rows, owned, [], [])
            log.debug("bucketed diff: %d of %d buckets dirty, %d of the table's rows in them",
                      len(dirty), 1 << bits, fetched)
            if fetched > MAX_FETCHED:
                return None
            stored = pool.submit(_on_server, engine, fingerprint.server_rows, table, kinds,
                                 key_kinds, identity, where, bits, sorted(dirty))
            kept = _dirty_rows(batches(), kinds, key_kinds, bits, dirty)
            found = stored.result()
    except (fingerprint.Unknown, DBAPIError) as exc:
        log.debug("bucketed diff does not apply: %s", exc)
        return None
    if len(found) != fetched:  # the table changed meanwhile
        return None
    changed: list[pa.RecordBatch] = []
    seen: set[bytes] = set()
    for batch, texts, hashes in kept:
        stage = []
        for text, value in zip(texts, hashes, strict=True):
            if text in seen:
                log.debug("bucketed diff: a key is repeated in the file")
                return None
            seen.add(text)
            stored_row = found.pop(text, None)
            stage.append(stored_row is None or stored_row[0] != value)
        if any(stage):
            changed.append(batch.filter(stage))
    return Delta(rows, owned, changed, [values for _, values in found.values()])


def _pass_one(engine: sa.Engine, pool: ThreadPoolExecutor, table: sa.Table,
              kinds: list[fingerprint.Kind], key_kinds: list[fingerprint.Kind],
              where: Sequence[sa.ColumnElement[bool]], batches: Iterator[pa.RecordBatch],
              size: int) -> tuple[int, int, int, set[int], int] | None:
    """The file's and the table's bucket sums: (file rows, table rows, bits, dirty buckets,
    table rows in them); None when the diff would not be quicker."""

    chunks = _chunks(batches)
    head = next(chunks, None)
    if head is None:
        return None
    estimate = size * head.num_rows // max(head.nbytes, 1)  # typed bytes: about the text's
    bits = min(MAX_BITS, max(MIN_BITS, math.ceil(math.log2(max(estimate, 1) / ROWS_PER_BUCKET))))
    if estimate < MIN_ROWS or estimate > ROWS_PER_BUCKET << MAX_BITS:
        return None
    owned = _on_server(engine, lambda conn, *_: conn.scalar(
        sa.select(sa.func.count()).select_from(table).where(*where)))
    if owned > 2 * estimate + MIN_ROWS:
        return None
    stored = pool.submit(_on_server, engine, fingerprint.server_buckets, table, kinds,
                         key_kinds, where, bits)
    sums: list[pa.Table] = []
    rows = 0
    for chunk in _with_head(head, chunks):
        rows += chunk.num_rows
        sums.append(_bucket_sums(chunk, kinds, key_kinds, bits))
        if sum(part.num_rows for part in sums) > 4 << bits:
            sums = [_merged(sums)]
    here = _as_dict(_merged(sums)) if sums else {}
    there = stored.result()
    dirty = {bucket for bucket in here.keys() | there.keys()
             if here.get(bucket) != there.get(bucket)}
    fetched = sum(there[bucket].rows for bucket in dirty if bucket in there)
    return rows, owned, bits, dirty, fetched


def _with_head(head: pa.RecordBatch, rest: Iterator[pa.RecordBatch]
               ) -> Iterator[pa.RecordBatch]:
    yield head
    yield from rest


def _on_server(engine: sa.Engine, query: Callable[..., Any], *args: Any) -> Any:
    """``query(conn, *args)`` on a connection of its own, in a read-only transaction."""
    with engine.connect() as conn, conn.begin():
        return query(conn, *args)


def _chunks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The batches combined into about CHUNK_ROWS rows each: fewer, longer vectorised calls."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        pending.append(batch)
        count += batch.num_rows
        if count >= CHUNK_ROWS:
            yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
            pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def _buckets(chunk: pa.RecordBatch, key_kinds: list[fingerprint.Kind], bits: int
             ) -> tuple[pa.Array, list[bytes]]:
    """A chunk's buckets, and its key texts."""
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = fingerprint.Hasher(key_kinds, "mysql", fingerprint.CRC).texts(chunk).to_pylist()
    return pc.bit_wise_and(fingerprint.crc_words(keys),
                           pa.scalar((1 << bits) - 1, pa.uint32())), keys


def _halves(chunk: pa.RecordBatch, kinds: list[fingerprint.Kind]) -> tuple[pa.Array, pa.Array]:
    """A chunk's row hashes, their high and low halves."""
    return fingerprint.crc_halves(
        fingerprint.Hasher(kinds, "mysql", fingerprint.CRC).texts(chunk).to_pylist())


def _bucket_sums(chunk: pa.RecordBatch, kinds: list[fingerprint.Kind],
                 key_kinds: list[fingerprint.Kind], bits: int) -> pa.Table:
    import pyarrow as pa

    buckets, _ = _buckets(chunk, key_kinds, bits)
    high, low = _halves(chunk, kinds)
    return (pa.table({"k": buckets, "n": pa.repeat(pa.scalar(1, pa.uint64()), len(buckets)),
                      "h": high, "l": low})
            .group_by("k").aggregate([("n", "sum"), ("h", "sum"), ("l", "sum")])
            .rename_columns(["k", "n", "h", "l"]))


def _merged(sums: list[pa.Table]) -> pa.Table:
    import pyarrow as pa

    return (pa.concat_tables(sums).group_by("k")
            .aggregate([("n", "sum"), ("h", "sum"), ("l", "sum")])
            .rename_columns(["k", "n", "h", "l"]))


def _as_dict(sums: pa.Table) -> dict[int, fingerprint.Fingerprint]:
    columns = sums.to_pydict()
    return {bucket: fingerprint.Fingerprint(count, ((high << 32) + low) % fingerprint.MODULUS)
            for bucket, count, high, low in zip(columns["k"], columns["n"], columns["h"],
                                                columns["l"], strict=True)}


def _dirty_rows(batches: Iterator[pa.RecordBatch], kinds: list[fingerprint.Kind],
                key_kinds: list[fingerprint.Kind], bits: int, dirty: set[int]
                ) -> list[tuple[pa.RecordBatch, list[bytes], list[int]]]:
    """The file's rows in ``dirty`` buckets, a chunk at a time: (rows, key texts, hashes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = pa.array(sorted(dirty), pa.uint32())
    kept = []
    for chunk in _chunks(batches):
        buckets, keys = _buckets(chunk, key_kinds, bits)
        mask = pc.is_in(buckets, value_set=wanted)
        if not pc.any(mask).as_py():
            continue
        chunk = chunk.filter(mask)
        high, low = _halves(chunk, kinds)
        hashes = pc.bit_wise_or(pc.shift_left(high, pa.scalar(32, pa.uint64())), low)
        chosen = [key for key, keep in zip(keys, mask.to_pylist(), strict=True) if keep]
        kept.append((chunk, chosen, hashes.to_pylist()))
    return kept
