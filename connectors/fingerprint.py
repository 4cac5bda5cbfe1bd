"""Fingerprints of a table's rows: a count and an order-independent sum of 64-bit row hashes,
computed by the database over the stored rows and by iotask over the rows it would write, so that
an unchanged re-import is found without staging anything.

Both sides hash the same canonical text of each row. A value's text is what the database
stores: text byte-exact (no collation folding), integers in decimal, booleans 1/0, dates ISO,
decimals with exactly the column's scale. With CRC and SIPHASH the row's text is its NULL map
(the sum of 2**i over its NULL values, i the column's place; only when a column may hold NULL),
then the values, NULL as ``''``, each after a unit separator (U+001F); a file value holding
U+001F makes the pre-check not apply. That suffices for one row text to be one row: a file
row's text has exactly one separator per column, so a table row with the same text has no
separator in its values either, and splits into the same values and NULL map. Nothing is
escaped or sized, so the database computes little per value. With MD5, the values are joined by
tabs, NULL as ``\\N``, with LOAD DATA's escapes (a backslash doubled, a tab ``\\t``). Sums are
taken modulo 2**64.

The row hash, by database (``scheme``):

- CRC (MariaDB 10.8 and later, which has CRC32C): the product of the CRC-32 and the CRC-32C
  of the row's UTF-8 text, a 64-bit number (below 2**64: no BIGINT UNSIGNED overflow). The two
  CRCs are different polynomials, so a changed row changes both unless both collide. CRCs are
  linear: values swapped between two rows of the same lengths change both rows' CRCs by one XOR
  delta, and a plain sum of CRCs stays the same whenever the two rows' bits under that delta
  differ (about 2**-16 for a 16-bit delta). The product is neither XOR-linear nor additive:
  the two rows' hashes change by unrelated amounts. Products of 32-bit numbers are not spread
  evenly over 64 bits (some have many factorisations): two random rows share a hash with
  probability about 30 / 2**64, 2**-59 ((12/pi**2) ln(2**32) + 4, counted exactly for smaller
  words). MariaDB computes it with each CRC referenced once, in one pass (a murmur3 mix of each
  CRC needed a derived table and cost 60 operations a row: the server's side took 2 s, not
  1.3 s, in a sync's GROUP BY), iotask with one C call per row and CRC (ISA-L's crc32,
  crc32c.crc32c) and the product in pyarrow.
- SIPHASH (SQLite, whose "server" is this process): Python's own keyed 64-bit SipHash of the
  text. SQLite builds each stored row's text in SQL (``stored_texts``), read through ADBC; a
  Matcher compares them with the file's directly while both come in the same order, and sums
  the hashes of the rest.
- MD5 (MySQL, MariaDB before 10.8, PostgreSQL): the first 8 bytes of the text's MD5,
  big-endian, computed by the database in SQL.

Any other type (floats, times, binary, ...) or a value the column would not store exactly gives
"don't know" (Unknown, or None): a false "unchanged" must be practically impossible, while a
false "changed" only costs the normal staging path.
"""

from __future__ import annotations

import hashlib
import os
import struct
import urllib.parse
from array import array
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import astuple, dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache, reduce
from operator import add, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import crc32c
import sqlalchemy as sa
from isal.isal_zlib import crc32
from sqlalchemy.dialects import mysql

if TYPE_CHECKING:
    import pyarrow as pa

NULL = "\\N"  # MD5
SEPARATOR = "\t"  # MD5
UNIT = "\x1f"  # CRC, SIPHASH: before each value; a file value holding it is Unknown
MAX_COLUMNS = 62  # CRC, SIPHASH: the NULL map is a BIGINT
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t"})
MODULUS = 1 << 64
PIECE = 1024  # CRC: buckets in a text of server_buckets
CHUNK_ROWS = 8192  # arrow rows hashed at once (about 0.7 MB of text): more cost memory, each side
TEXT, INTEGER, BOOLEAN, DATE, DECIMAL = "text", "integer", "boolean", "date", "decimal"


class Unknown(Exception):
    """A value (or type) the fingerprint cannot canonicalise exactly: the pre-check does not
    apply."""


@dataclass(frozen=True)
class Fingerprint:
    """How many rows, and the sum of their hashes modulo 2**64."""

    rows: int
    total: int

    def __str__(self) -> str:
        return f"{self.rows} rows, hash sum {self.total:016x}"


@dataclass(frozen=True)
class Kind:
    """A written column's canonical form: its kind and, for decimals, precision and scale."""

    name: str
    kind: str
    precision: int | None = None
    scale: int | None = None
    nullable: bool = True


def kinds(table: sa.Table, columns: Sequence[str], backend: str) -> list[Kind] | None:
    """The canonical form of each of ``columns`` of the reflected ``table``; None when one of
    them has a type the fingerprint cannot compare exactly on this backend ("mysql" covers
    MariaDB, "postgresql", "sqlite"), or there are more than MAX_COLUMNS."""
    if len(columns) > MAX_COLUMNS:
        return None
    found = []
    for name in columns:
        kind = _kind(table.c[name], backend)
        if kind is None:
            return None
        found.append(replace(kind, nullable=bool(table.c[name].nullable)))
    return found


def _kind(column: sa.Column[Any], backend: str) -> Kind | None:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return Kind(column.name, BOOLEAN)
    if isinstance(kind, sa.Integer):
        return Kind(column.name, INTEGER)
    if isinstance(kind, sa.Float) or not isinstance(kind, sa.Numeric | sa.Date | sa.String):
        return None
    if isinstance(kind, sa.Numeric):
        # SQLite stores decimals as floating point: not exact
        if backend == "sqlite" or kind.scale is None or kind.precision is None:
            return None
        return Kind(column.name, DECIMAL, kind.precision, kind.scale)
    if isinstance(kind, sa.Date):
        return Kind(column.name, DATE)
    if backend == "mysql" and getattr(kind, "binary", False):
        return None  # a BINARY-collated mysql string type holds bytes, not text
    return Kind(column.name, TEXT)


# --- the row hash ---------------------------------------------------------------------------

CRC, SIPHASH, MD5 = "CRC-32 times CRC-32C", "SipHash, in this process", "MD5"
_U32 = next(code for code in "IL" if array(code).itemsize == 4)


def scheme(dialect: sa.engine.Dialect) -> str:
    """The row hash both sides compute for this database: CRC where the database has CRC32C
    (MariaDB 10.8 and later), SIPHASH where it is this process (SQLite), else MD5."""
    if dialect.name == "sqlite":
        return SIPHASH
    if getattr(dialect, "is_mariadb", False) and (dialect.server_version_info or ()) >= (10, 8):
        return CRC
    return MD5


def _crc_hash(text: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """Scheme CRC's row hash in MariaDB's SQL: the product of the text's two CRCs, the text
    built once (0.15 s per 1 M rows less than building it for each CRC) and kept in a user
    variable between them. MariaDB evaluates a product's operands left to right; were it ever
    not to, the hash would not be the text's and the sums would differ (a "changed", never an
    "unchanged")."""
    held: sa.ColumnElement[Any] = sa.literal_column("@iotask_row_text")
    return sa.func.crc32(held.op(":=")(text)) * sa.func.crc32c(held)


def _unsigned(number: int) -> sa.ColumnElement[Any]:
    return sa.literal(number, mysql.BIGINT(unsigned=True))


def _unsigned_decimal(number: int) -> sa.ColumnElement[Any]:
    """A whole number beyond BIGINT UNSIGNED, such as 2**64."""
    return sa.literal(Decimal(number), sa.Numeric(30, 0))


def crc_hashes(texts: Sequence[bytes]) -> pa.Array:
    """The CRC row hashes of ``texts`` (UTF-8), a uint64 array: one C call per row and CRC,
    the product vectorised (exact: below 2**64)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.multiply(pc.cast(crc_words(texts, crc32), pa.uint64()),
                       pc.cast(crc_words(texts, crc32c.crc32c), pa.uint64()))


def crc_words(texts: Sequence[bytes], crc: Callable[[bytes], int] = crc32) -> pa.Array:
    """``crc`` of each text, a uint32 array."""
    import pyarrow as pa

    values = array(_U32, map(crc, texts))
    return pa.Array.from_buffers(pa.uint32(), len(values), [None, pa.py_buffer(values)])


def _crc_total(texts: Sequence[bytes]) -> int:
    """The sum of the CRC row hashes of ``texts`` (UTF-8), modulo 2**64."""
    import pyarrow.compute as pc

    return (pc.sum(crc_hashes(texts)).as_py() or 0) % MODULUS  # uint64 sums wrap


def _siphash_total(texts: Sequence[bytes]) -> int:
    """Python's own 64-bit SipHash of each text (keyed per process: both sides must be this
    process), in one C loop."""
    return sum(map(hash, texts)) % MODULUS


def _md5_total(texts: Sequence[bytes]) -> int:
    md5 = hashlib.md5
    digests = b"".join([md5(text).digest() for text in texts])
    return sum(map(itemgetter(0), struct.iter_unpack(">Q8x", digests))) % MODULUS


# --- remembered file sides ------------------------------------------------------------------

def memory_key(scheme: str, columns: Sequence[Kind], how: Sequence[Any],
               modules: Sequence[Any] = ()) -> str | None:
    """A key for the fingerprint of a file's rows, with the file's content: what the value
    depends on besides that content. ``how`` says how the file is read and mapped (the
    caller's settings and specs); the source of this module and of ``modules`` (the ones that
    convert the values) stands for iotask's version, so that a change of code is a new key.
    None for SIPHASH, which is keyed per process."""
    if scheme == SIPHASH:
        return None
    digest = hashlib.sha256(repr((scheme, [astuple(kind) for kind in columns],
                                  list(how))).encode())
    digest.update(_code((__file__, *(module.__file__ for module in modules))))
    return digest.hexdigest()[:32]


@cache
def _code(sources: tuple[str, ...]) -> bytes:
    """The SHA-256 of these source files, read once per process."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(Path(source).read_bytes())
    return digest.digest()


def as_text(found: Fingerprint) -> str:
    """A fingerprint as remembered: ``rows:sum`` (the sum in 16 hex digits)."""
    return f"{found.rows}:{found.total:016x}"


def from_text(text: str) -> Fingerprint | None:
    """``as_text``'s fingerprint again; None for anything else (a hand edit)."""
    rows, _, total = text.partition(":")
    if not rows.isdigit() or len(total) != 16:
        return None
    try:
        return Fingerprint(int(rows), int(total, 16))
    except ValueError:
        return None


# --- the server side ------------------------------------------------------------------------

def server(conn: sa.Connection, table: sa.Table, columns: Sequence[Kind],
           where: Sequence[sa.ColumnElement[bool]]) -> Fingerprint | None:
    """The fingerprint of ``table``'s rows matching ``where``, over ``columns``, computed by the
    database (MariaDB/MySQL, PostgreSQL); SQLite's rows are read through ADBC and hashed here.
    None when the database's text is not UTF-8."""
    backend = _backend(conn)
    if backend == "sqlite":
        return _stored(conn, table, columns, where)
    if backend == "postgresql":
        if conn.exec_driver_sql("SHOW server_encoding").scalar() != "UTF8":
            return None
    elif backend != "mysql":
        return None
    if scheme(conn.dialect) == CRC:
        row = _united_row_text(table, columns, _utf8mb4(conn, table))
        query = (sa.select(sa.func.count(), sa.func.sum(_crc_hash(row))).select_from(table)
                 .where(*where))
    else:
        row = _row_text(table, columns, backend)
        head = sa.func.substr(sa.func.md5(row), 1, 16)
        if backend == "mysql":
            value = sa.cast(sa.func.conv(head, 16, 10), mysql.BIGINT(unsigned=True))
        else:
            from sqlalchemy.dialects.postgresql import BIT  # 30 ms to import: PostgreSQL only

            value = sa.cast(sa.cast(sa.literal("x", sa.Text) + head, BIT(64)),
                            sa.BigInteger)
        query = (sa.select(sa.func.count(), sa.func.sum(value)).select_from(table)
                 .where(*where))
    count, total = conn.execute(query).one()
    return Fingerprint(int(count), int(total or 0) % MODULUS)


def server_buckets(conn: sa.Connection, table: sa.Table, columns: Sequence[Kind],
                   keys: Sequence[Kind], where: Sequence[sa.ColumnElement[bool]],
                   bits: int) -> pa.Table:
    """Scheme CRC (MariaDB): the fingerprint of each bucket of ``table``'s rows matching
    ``where``, a row's bucket the low ``bits`` bits of the CRC-32 of its key's text (``keys``,
    hashed as a row of those columns alone): a table of ``k`` (uint32, the bucket), ``n``
    (int32, its rows) and ``s`` (uint64, their sum of row hashes modulo 2**64).

    The buckets come as texts of PIECE buckets each (GROUP_CONCAT), streamed and parsed by
    pyarrow a piece at a time: fetched as 2**bits rows, their DECIMAL sums cost 1.2 s and 70 MB
    per 131 072 buckets in PyMySQL; as one text, 10-20 MB of peak memory."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    utf8mb4 = _utf8mb4(conn, table)
    row = _united_row_text(table, columns, utf8mb4)
    key = _united_row_text(table, keys, utf8mb4)
    bucket = sa.func.crc32(key).bitwise_and(_unsigned((1 << bits) - 1)).label("k")
    sums = (sa.select(bucket, sa.func.count().label("n"), sa.func.sum(_crc_hash(row)).label("s"))
            .select_from(table).where(*where).group_by(bucket).subquery("sums"))
    # a line per bucket, GROUP_CONCAT's own separator (a comma) between them; as bytes, which
    # PyMySQL does not decode
    query = (sa.select(sa.cast(sa.func.group_concat(sa.func.concat_ws(
        _literal(" "), sums.c.k, sums.c.n, sums.c.s.op("MOD")(_unsigned_decimal(MODULUS)))),
        mysql.BINARY())).group_by(sums.c.k.op("DIV")(_unsigned(PIECE))))
    longest = PIECE * 40  # a bucket's line: at most 10 + 1 + 19 + 1 + 20 + 1 bytes
    before = int(conn.execute(sa.text("SELECT @@session.group_concat_max_len")).scalar() or 0)
    types = {"k": pa.uint32(), "n": pa.int32(), "s": pa.uint64()}
    pieces = [pa.table({name: pa.array([], kind) for name, kind in types.items()})]
    if before < longest:
        conn.execute(sa.text("SET SESSION group_concat_max_len = :n"), {"n": longest})
    try:
        for (piece,) in conn.execution_options(stream_results=True).execute(query):
            pieces.append(pacsv.read_csv(
                pa.py_buffer(bytes(piece).replace(b",", b"\n")),
                read_options=pacsv.ReadOptions(column_names=list(types), use_threads=False),
                parse_options=pacsv.ParseOptions(delimiter=" "),
                convert_options=pacsv.ConvertOptions(column_types=types)))
    finally:
        if before < longest:
            conn.execute(sa.text("SET SESSION group_concat_max_len = :n"), {"n": before})
    return pa.concat_tables(pieces)


def in_buckets(conn: sa.Connection, table: sa.Table, keys: Sequence[Kind], bits: int,
               buckets: Sequence[int]) -> sa.ColumnElement[bool]:
    """Scheme CRC (MariaDB), SQL: a record of ``table`` is in one of ``buckets``, as
    ``server_buckets`` splits them. The buckets are a bitmap, one bit read per record: an IN
    list of 12 000 buckets took three times as long (MariaDB turns it into a join)."""
    bitmap = bytearray((1 << bits) // 8)
    for number in buckets:
        bitmap[number >> 3] |= 1 << (number & 7)
    key = _united_row_text(table, keys, _utf8mb4(conn, table))
    bucket = sa.func.crc32(key).bitwise_and(_unsigned((1 << bits) - 1))
    byte = sa.func.ascii(sa.func.substring(sa.literal(bytes(bitmap), sa.LargeBinary),
                                           bucket.bitwise_rshift(_unsigned(3)) + 1, 1))
    return byte.bitwise_rshift(bucket.bitwise_and(_unsigned(7))).bitwise_and(_unsigned(1)) == 1


def _backend(conn: sa.Connection) -> str:
    name = conn.dialect.name
    return "mysql" if name in ("mysql", "mariadb") else name


def _row_text(table: sa.Table, columns: Sequence[Kind], backend: str) -> sa.ColumnElement[Any]:
    pieces = []
    for kind in columns:
        column = table.c[kind.name]
        text: sa.ColumnElement[Any] = _text_of(column, kind, backend)
        if kind.kind == TEXT:
            text = sa.func.replace(sa.func.replace(text, _literal("\\"), _literal("\\\\")),
                                   _literal(SEPARATOR), _literal("\\t"))
        pieces.append(sa.case((column.is_(None), _literal(NULL)), else_=text))
    return sa.func.concat_ws(_literal(SEPARATOR), *pieces) if len(pieces) > 1 else pieces[0]


def _united_row_text(table: sa.Table, columns: Sequence[Kind], utf8mb4: set[str]
                     ) -> sa.ColumnElement[Any]:
    """Scheme CRC's row text in MariaDB's SQL: the NULL map, then each value after UNIT, text
    converted only when not stored as utf8mb4 already. Numbers and dates are left to CONCAT_WS,
    whose text of them is the CAST's (ASCII digits) without a CAST's cost (0.4 s per 1 M
    rows)."""
    pieces: list[sa.ColumnElement[Any]] = []
    nulls: list[sa.ColumnElement[Any]] = []
    for place, kind in enumerate(columns):
        column = table.c[kind.name]
        piece: sa.ColumnElement[Any] = column
        if kind.kind == TEXT and kind.name not in utf8mb4:
            piece = sa.cast(column, _char("mysql"))
        if kind.nullable:
            nulls.append(sa.func.isnull(column) * sa.literal(1 << place, sa.BigInteger))
            piece = sa.func.ifnull(piece, _literal(""))
        pieces.append(piece)
    head = reduce(add, nulls) if nulls else _literal("")
    return sa.func.concat_ws(_literal(UNIT), head, *pieces)


def _utf8mb4(conn: sa.Connection, table: sa.Table) -> set[str]:
    """The names of ``table``'s columns whose text MariaDB stores as utf8mb4."""
    found = conn.execute(
        sa.text("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "COALESCE(:schema, DATABASE()) AND table_name = :table AND "
                "character_set_name = 'utf8mb4'"),
        {"schema": table.schema, "table": table.name})
    return {name for (name,) in found}


def _literal(text: str) -> sa.ColumnElement[Any]:
    return sa.literal(text, sa.Text)


def _char(backend: str) -> sa.types.TypeEngine[Any]:
    return mysql.CHAR(charset="utf8mb4") if backend == "mysql" else sa.Text()


def _text_of(column: sa.Column[Any], kind: Kind, backend: str) -> sa.ColumnElement[Any]:
    """The column's value as its canonical text, in SQL."""
    if kind.kind == BOOLEAN and backend == "postgresql":
        return sa.case((column.is_(True), sa.literal("1", sa.Text)),
                       else_=sa.literal("0", sa.Text))
    if kind.kind == DATE and backend == "postgresql":
        return sa.func.to_char(column, sa.literal("YYYY-MM-DD", sa.Text))
    return sa.cast(column, _char(backend))


def _odd(table: sa.Table, columns: Sequence[Kind]) -> sa.ColumnElement[Any]:
    """SQLite: a stored BLOB among the row's values. SQLite converts a value as the column's
    affinity says whether a DBA or iotask writes it, so an INTEGER, REAL or TEXT value that
    reads as the text iotask would write is what iotask's write would store (a REAL in an
    integer column reads as '2.5', an INTEGER in a date column as '20240105': never a text
    iotask writes there); a BLOB is stored as given and reads as its bytes, b'Ann' as 'Ann'.
    BLOB sorts above every other storage class, so the row's greatest value is a BLOB exactly
    when one is (NULLs as '': max() of a NULL is NULL): 0.1 s per 1 M rows of 6 columns, a
    typeof() test per value 0.25 s."""
    values = [sa.func.ifnull(table.c[kind.name], _literal("")) if kind.nullable
              else table.c[kind.name] for kind in columns]
    greatest = values[0] if len(values) == 1 else sa.func.max(*values)
    return greatest >= sa.literal(b"", sa.LargeBinary)


def _sqlite_row_text(table: sa.Table, columns: Sequence[Kind]) -> sa.ColumnElement[Any]:
    """SQLite's text of a row exactly as Hasher joins it (scheme SIPHASH): the NULL map (when
    a column may hold NULL), then each value after UNIT, integers in decimal. A NULL where
    the column cannot hold one makes the whole text NULL."""
    unit = _literal(UNIT)
    head: sa.ColumnElement[Any] = _literal("")
    nulls = [sa.type_coerce(table.c[kind.name].is_(None), sa.Integer) * (1 << place)
             for place, kind in enumerate(columns) if kind.nullable]
    if nulls:
        head = sa.cast(reduce(add, nulls), sa.Text)
    text = head
    for kind in columns:
        value: sa.ColumnElement[Any] = table.c[kind.name]
        if kind.kind not in (TEXT, DATE):
            value = sa.cast(value, sa.Text)
        if kind.nullable:
            value = sa.func.ifnull(value, _literal(""))
        text = text.op("||")(unit).op("||")(value)
    return text


def stored_texts(conn: sa.Connection, table: sa.Table, columns: Sequence[Kind],
                 where: Sequence[sa.ColumnElement[bool]]) -> Iterator[pa.Array]:
    """SQLite: the row texts (Hasher's, scheme SIPHASH) of ``table``'s rows matching
    ``where``, batch by batch, binary arrays built by SQLite (one value a row costs ADBC
    0.45 s per 1 M rows of 6 columns, six values 0.6 s) and read through ADBC in the table's
    scan order on a connection of its own: ``conn`` is used only here. Raises Unknown for a
    database that is not a file and, as they come, for a batch holding a stored BLOB
    (``_odd``, a column of the same query) or a NULL where none can be."""
    path = conn.engine.url.database
    if not path or path == ":memory:":
        raise Unknown("an SQLite database that is not a file")
    compiled = (sa.select(_sqlite_row_text(table, columns), _odd(table, columns))
                .select_from(table).where(*where)
                .compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True}))
    parameters = [compiled.params[name] for name in compiled.positiontup or []]
    uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"
    return _read_texts(uri, str(compiled), parameters)


def _read_texts(uri: str, query: str, parameters: list[Any]) -> Iterator[pa.Array]:
    import adbc_driver_sqlite.dbapi as adbc
    import pyarrow as pa
    import pyarrow.compute as pc

    with adbc.connect(uri, autocommit=True) as reader, reader.cursor() as cursor:
        cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(CHUNK_ROWS)})
        cursor.execute(query, parameters)
        for batch in cursor.fetch_record_batch():
            if not batch.num_rows:
                continue
            if pc.max(batch.column(1)).as_py():
                raise Unknown("a BLOB stored in a column iotask writes text or numbers to")
            texts = batch.column(0)
            if texts.null_count:
                raise Unknown("a NULL in a column that cannot hold NULL")
            yield texts.cast(pa.binary())


def _stored(conn: sa.Connection, table: sa.Table, columns: Sequence[Kind],
            where: Sequence[sa.ColumnElement[bool]]) -> Fingerprint | None:
    """SQLite: the stored rows' fingerprint, their texts hashed here; None where
    ``stored_texts`` raises Unknown. A stored value holding U+001F gives its row one more
    separator than a file row can have: it never matches."""
    hasher = Hasher(columns, "sqlite")
    try:
        for texts in stored_texts(conn, table, columns, where):
            hasher.add_row_texts(texts)
        return hasher.fingerprint()
    except Unknown:
        return None


# --- the client side ------------------------------------------------------------------------

class Hasher:
    """The fingerprint of the rows iotask would write, fed batch by batch.

    ``add_tuples`` takes the exact path's typed tuples (the line first, then the values in
    ``columns`` order), ``add_rows`` the values alone, ``add_batch`` a pyarrow RecordBatch whose
    columns have the destination's names; each raises Unknown for a value that cannot be
    compared exactly. ``backend`` ("mysql", "postgresql", "sqlite") says how the database stores
    booleans; ``row_hash`` is the database's ``scheme`` (by default MD5 for PostgreSQL,
    SIPHASH for SQLite, else CRC). ``unit_free`` names the columns whose values the caller
    knows cannot hold U+001F (a file without that byte), which are then not searched for it.
    """

    def __init__(self, columns: Sequence[Kind], backend: str, row_hash: str | None = None,
                 unit_free: Collection[str] = ()) -> None:
        self.columns = list(columns)
        self._unit_free = frozenset(unit_free)
        self.rows = 0
        self.total = 0
        self._pending: list[list[Any]] = []  # arrow batches not hashed yet, as column lists
        self._pending_rows = 0
        self._pending_types: list[Any] = []
        self.scheme = row_hash or {"postgresql": MD5, "sqlite": SIPHASH}.get(backend, CRC)
        self._total = {CRC: _crc_total, SIPHASH: _siphash_total, MD5: _md5_total}[self.scheme]
        # MariaDB and SQLite store a boolean in an integer column as 1/0; PostgreSQL refuses it
        integer_booleans = backend != "postgresql"
        self._united = self.scheme != MD5
        self._texts = [_plain if self._united and kind.kind == TEXT
                       else _value_text(kind, integer_booleans) for kind in self.columns]
        self._mapped = self._united and any(kind.nullable for kind in self.columns)

    def add_tuples(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """The exact path's ``(line, value, ...)`` tuples."""
        if rows:
            self._add_columns(list(zip(*rows, strict=True))[1:])

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows of values alone, in ``columns`` order."""
        if rows:
            self._add_columns(list(zip(*rows, strict=True)))

    def _add_columns(self, values: list[tuple[Any, ...]]) -> None:
        """Column by column, in C loops wherever the values allow."""
        pieces = [_column_text(text, column) for text, column in zip(self._texts, values,
                                                                     strict=True)]
        if not self._united:
            texts = (list(map(SEPARATOR.join, zip(*pieces, strict=True))) if len(pieces) > 1
                     else list(pieces[0]))
            return self._hash(texts)
        nulls = [0] * len(values[0]) if self._mapped else None
        for place, (kind, column) in enumerate(zip(self.columns, values, strict=True)):
            if None not in column:
                continue
            if nulls is None or not kind.nullable:
                raise Unknown(f"NULL in column {kind.name!r}, which cannot hold NULL")
            pieces[place] = texts = list(pieces[place])
            for row, value in enumerate(column):
                if value is None:
                    nulls[row] |= 1 << place
                    texts[row] = ""
        head = [""] * len(values[0]) if nulls is None else list(map(str, nulls))
        self._hash(list(map(UNIT.join, zip(head, *pieces, strict=True))))

    def _hash(self, texts: list[str]) -> None:
        try:
            encoded = list(map(str.encode, texts))
        except UnicodeEncodeError:
            raise Unknown("a value that is not valid Unicode") from None
        self._add(encoded)

    def _add(self, texts: Sequence[bytes]) -> None:
        self.rows += len(texts)
        self.total = (self.total + self._total(texts)) % MODULUS

    def add_batch(self, batch: pa.RecordBatch) -> None:
        """A pyarrow RecordBatch with a column per written column (string, integer, bool,
        date32 or decimal128; nulls as nulls)."""
        if not batch.num_rows:
            return
        arrays = []
        for kind in self.columns:
            try:
                arrays.append(batch.column(kind.name))
            except KeyError:
                raise Unknown(f"no column {kind.name!r} in the batch") from None
        self._queue(arrays)

    def texts(self, batch: pa.RecordBatch) -> pa.Array:
        """Schemes CRC and SIPHASH: each row's text, a binary array (raises Unknown as
        ``add_batch``)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        assert self._united
        try:
            texts = [pc.cast(_arrow_text(batch.column(kind.name), kind), pa.string())
                     for kind in self.columns]
        except KeyError:
            raise Unknown("a column is not in the batch") from None
        return self._united_texts(texts).cast(pa.binary())

    def add_row_texts(self, texts: pa.Array) -> None:
        """Rows' texts as ``texts`` gives them (a binary array)."""
        self._add(texts.to_pylist())

    def _queue(self, arrays: list[Any]) -> None:
        """Batches are kept until CHUNK_ROWS rows, then converted and hashed at once: fewer,
        longer vectorised calls (each gives up the GIL, which the other side's thread holds)."""
        types = [array.type for array in arrays]
        if types != self._pending_types:
            self._flush()
            self._pending_types = types
        self._pending.append(arrays)
        self._pending_rows += len(arrays[0])
        if self._pending_rows >= CHUNK_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self._pending:
            return
        columns = [pa.concat_arrays(list(arrays)) for arrays in zip(*self._pending, strict=True)]
        self._pending, self._pending_rows = [], 0
        texts = [pc.cast(_arrow_text(values, kind), pa.string())
                 for kind, values in zip(self.columns, columns, strict=True)]
        joined = self._united_texts(texts) if self._united else self._escaped_texts(texts)
        self._add(joined.cast(pa.binary()).to_pylist())  # arrow strings are valid UTF-8

    def _united_texts(self, texts: list[Any]) -> Any:
        """CRC and SIPHASH: the NULL map, then each value after UNIT."""
        import pyarrow as pa
        import pyarrow.compute as pc

        nulls = None
        pieces = []
        for place, (kind, text) in enumerate(zip(self.columns, texts, strict=True)):
            if text.null_count:
                if not kind.nullable:
                    raise Unknown(f"NULL in column {kind.name!r}, which cannot hold NULL")
                flags = pc.multiply(pc.cast(pc.is_null(text), pa.int64()),
                                    pa.scalar(1 << place, pa.int64()))
                nulls = flags if nulls is None else pc.add(nulls, flags)
                text = pc.fill_null(text, "")
            if kind.kind == TEXT and kind.name not in self._unit_free and pc.any(
                    pc.match_substring(text, UNIT)).as_py():
                raise Unknown(f"a value holding U+001F in column {kind.name!r}")
            pieces.append(text)
        head: Any = pa.scalar("0" if self._mapped else "", pa.string())
        if nulls is not None:
            head = pc.cast(nulls, pa.string())
        return pc.binary_join_element_wise(head, *pieces, pa.scalar(UNIT, pa.string()))

    def _escaped_texts(self, texts: list[Any]) -> Any:
        """MD5: the values joined by tabs, escaped as LOAD DATA does, NULL as ``\\N``."""
        import pyarrow as pa
        import pyarrow.compute as pc

        pieces = []
        for text in texts:
            if pc.any(pc.match_substring_regex(text, r"[\\\t]")).as_py():
                text = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"),
                                            SEPARATOR, "\\t")
            pieces.append(pc.fill_null(text, NULL))
        return (pc.binary_join_element_wise(*pieces, pa.scalar(SEPARATOR, pa.string()))
                if len(pieces) > 1 else pieces[0])

    def fingerprint(self) -> Fingerprint:
        """The rows so far (raises Unknown as ``add_batch`` does, for rows still queued)."""
        self._flush()
        return Fingerprint(self.rows, self.total)


class Matcher:
    """SQLite, where both sides are this process: the file's rows against the stored rows,
    without hashing the rows both give in the same order.

    The row texts are compared directly while both sides give the same rows in the same
    order (a table written by an import of the same file, in its order, read in the table's
    scan order); from the first difference on, both sides' remaining texts are hashed and
    summed as Hasher does. Each row compared equal would add the same hash to both sums, so
    leaving them out of both gives the answer of hashing everything: ``fingerprints`` are
    equal exactly when hashing every row would have found them equal. Hashing costs 0.15 s per
    1 M rows on each side, comparing 0.01 s.
    """

    FILE, STORED = 0, 1

    def __init__(self, columns: Sequence[Kind], unit_free: Collection[str] = ()) -> None:
        self._hashers = (Hasher(columns, "sqlite", unit_free=unit_free),
                         Hasher(columns, "sqlite"))
        self._queues: tuple[list[Any], list[Any]] = ([], [])
        self.read = [0, 0]  # rows given, by side
        self.same = 0  # rows compared equal, pairwise from the first
        self.diverged = False

    def add_file(self, batch: pa.RecordBatch) -> None:
        """A typed batch of the file's rows, as ``Hasher.add_batch`` takes it."""
        self._add(self.FILE, self._hashers[self.FILE].texts(batch))

    def add_stored(self, texts: pa.Array) -> None:
        """A batch of ``stored_texts``."""
        self._add(self.STORED, texts)

    def _add(self, side: int, texts: pa.Array) -> None:
        import pyarrow.compute as pc

        self.read[side] += len(texts)
        if self.diverged:
            self._hashers[side].add_row_texts(texts)
            return
        self._queues[side].append(texts)
        file, stored = self._queues
        while file and stored:
            rows = min(len(file[0]), len(stored[0]))
            if not pc.all(pc.equal(file[0].slice(0, rows), stored[0].slice(0, rows))).as_py():
                self.diverged = True
                self._hash_queued()
                return
            self.same += rows
            for queue in (file, stored):
                queue[0] = queue[0].slice(rows)
                if not len(queue[0]):
                    queue.pop(0)

    def _hash_queued(self) -> None:
        for hasher, queue in zip(self._hashers, self._queues, strict=True):
            for texts in queue:
                hasher.add_row_texts(texts)
            queue.clear()

    def fingerprints(self) -> tuple[Fingerprint, Fingerprint]:
        """The file's and the stored rows' fingerprints once both sides are given: counts of
        all their rows, sums over the rows not compared equal."""
        self._hash_queued()
        found = [hasher.fingerprint() for hasher in self._hashers]
        return (Fingerprint(self.same + found[0].rows, found[0].total),
                Fingerprint(self.same + found[1].rows, found[1].total))


def _column_text(text: Callable[[Any], str], values: tuple[Any, ...]) -> Sequence[str]:
    """One column's canonical texts; the common cases (text without NULL or anything to
    escape, whole numbers, dates) in C loops."""
    kinds = set(map(type, values))
    if text is _plain and kinds == {str}:
        if UNIT in "".join(values):
            raise Unknown("a value holding U+001F")
        return values
    if text is _text and kinds == {str}:
        joined = "".join(values)
        if "\\" in joined or SEPARATOR in joined:
            return [value.translate(_ESCAPES) for value in values]
        return values
    if kinds == {int} and text in (_integer, _whole):
        return list(map(str, values))
    if kinds == {date} and text is _date:
        return list(map(date.isoformat, values))
    return [NULL if value is None else text(value) for value in values]


def _value_text(kind: Kind, integer_booleans: bool) -> Callable[[Any], str]:
    """A value as the database stores it."""
    if kind.kind == TEXT:
        return _text
    if kind.kind in (INTEGER, BOOLEAN):
        return _integer if integer_booleans or kind.kind == BOOLEAN else _whole
    if kind.kind == DATE:
        return _date
    assert kind.precision is not None and kind.scale is not None
    return _decimal_text(kind.precision, kind.scale)


def _text(value: Any) -> str:
    if type(value) is not str:
        raise Unknown(f"{type(value).__name__} value in a text column")
    return value.translate(_ESCAPES)


def _plain(value: Any) -> str:
    if type(value) is not str:
        raise Unknown(f"{type(value).__name__} value in a text column")
    if UNIT in value:
        raise Unknown("a value holding U+001F")
    return value


def _integer(value: Any) -> str:
    if type(value) is bool:
        return "1" if value else "0"
    return _whole(value)


def _whole(value: Any) -> str:
    if type(value) is not int:
        raise Unknown(f"{type(value).__name__} value in an integer column")
    return str(value)


def _date(value: Any) -> str:
    if type(value) is not date:
        raise Unknown(f"{type(value).__name__} value in a date column")
    return value.isoformat()


def _decimal_text(precision: int, scale: int) -> Callable[[Any], str]:
    """Decimals with exactly ``scale`` digits after the point; a value that would need rounding
    or does not fit is Unknown (the database would round it, or refuse it)."""
    quantum = Decimal(1).scaleb(-scale)

    def shown(value: Any) -> str:
        if type(value) is int:
            value = Decimal(value)
        if type(value) is not Decimal or not value.is_finite():
            raise Unknown(f"{type(value).__name__} value in a decimal column")
        try:
            exact = value.quantize(quantum)
        except InvalidOperation:
            raise Unknown("a decimal the column cannot hold") from None
        if exact != value or len(exact.as_tuple().digits) > precision:
            raise Unknown("a decimal the column would round")
        return f"{abs(exact) if exact.is_zero() else exact:f}"

    return shown


def _arrow_text(array: Any, kind: Kind) -> Any:
    """A pyarrow array as canonical text (nulls stay null); Unknown for an arrow type that
    does not match the column's kind."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind_of = array.type
    if kind.kind == TEXT and (pa.types.is_string(kind_of) or pa.types.is_large_string(kind_of)):
        return pc.cast(array, pa.string())
    if kind.kind in (INTEGER, BOOLEAN) and pa.types.is_boolean(kind_of):
        return pc.if_else(array, pa.scalar("1", pa.string()), pa.scalar("0", pa.string()))
    if kind.kind == INTEGER and pa.types.is_integer(kind_of):
        return pc.cast(array, pa.string())
    if kind.kind == DATE and pa.types.is_date32(kind_of):
        return pc.cast(array, pa.string())
    if kind.kind == DECIMAL and (pa.types.is_decimal(kind_of) or pa.types.is_integer(kind_of)):
        assert kind.precision is not None and kind.scale is not None
        if kind.precision > 38:
            raise Unknown(f"decimal column {kind.name!r} wider than 38 digits")
        try:
            exact = pc.cast(array, pa.decimal128(38, kind.scale), safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise Unknown("a decimal the column would round") from None
        digits = kind.precision - kind.scale
        if pc.any(pc.greater_equal(pc.abs(exact), pa.scalar(Decimal(10) ** digits,
                                                            exact.type))).as_py():
            raise Unknown("a decimal the column cannot hold")
        return pc.cast(exact, pa.string())
    if pa.types.is_null(kind_of):
        return pa.nulls(len(array), pa.string())
    raise Unknown(f"arrow type {kind_of} for {kind.kind} column {kind.name!r}")

