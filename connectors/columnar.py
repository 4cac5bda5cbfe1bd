"""The columnar fast path's reading side: a CSV file read by pyarrow's streaming reader, mapped
and converted column by column to a SQL table's types, as pyarrow RecordBatches.

The exact path (``csv.CsvConnector.read`` then ``sql._Rows``) stays the reference: this module
gives the same values or raises Unsupported, and the caller then throws away whatever it did and
lets the exact path read the file again, so every row error, count and stored value is the exact
path's. It refuses (Unsupported) anything it cannot prove equal: a file holding the quote
character or a NUL byte, a wrong field count, bytes the encoding cannot decode, a value a column
cannot hold or written in a form it does not parse, an empty key, a constant that is not text,
a column type it does not know. ``IOTASK_EXACT_PATH=1`` turns the fast path off altogether.

pyarrow is imported here only: the sql connector imports this module when a run writes.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from iotask.connectors.context import Progress
from iotask.connectors.csv import REJECT_COLUMN, CsvConnector, CsvError, _header
from iotask.connectors.settings import FALSE_WORDS, TRUE_WORDS

EXACT_ENV = "IOTASK_EXACT_PATH"  # set (to anything but "" or 0): every run takes the exact path
BLOCK_BYTES = 256 * 1024  # pyarrow's read block (about 3,500 users rows): its streaming reader
# holds some 40 blocks ahead, so this keeps a run's memory flat (about 10 MB of arrow buffers)
BATCH_ROWS = 8192  # rows converted at once (about 0.7 MB of users rows): see _blocks
SCAN_BYTES = 1 << 22
ASCII_SPACE = " \t\n\x0b\x0c\r"  # what the fast path trims; all of it str.strip() trims too
KINDS = ("text", "int", "flag", "float", "decimal", "date", "datetime", "bool")  # Spec.kind
_INT = r"^-?[0-9]+$"
_FLOAT = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?$"
_DECIMAL = r"^-?[0-9]+(\.[0-9]+)?$"
_DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}$"
# a superset of what str.strip() removes: a key made of these alone is empty on either path
_BLANK = r"^[\s\pZ\x{0b}\x{1c}-\x{1f}\x{85}]*$"
_WORDS = pa.array(sorted(TRUE_WORDS | FALSE_WORDS))
_TRUE = pa.array(sorted(TRUE_WORDS))


class Unsupported(Exception):
    """The fast path cannot promise the exact path's result for this file; the message says
    why (logged at debug level) and the exact path reads the file instead."""


def enabled() -> bool:
    """Whether runs take the fast path; when they do, pyarrow allocates from jemalloc told to
    give memory back at once (the default pool keeps what it had, 150 MB and more; its arenas
    are set when pyarrow loads: iotask.cli.ARROW_ALLOCATOR), and glibc's malloc maps each
    block of 128 KB or more on its own (see _fixed_mmap_threshold)."""
    if os.environ.get(EXACT_ENV, "").strip() not in ("", "0"):
        return False
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
        pa.jemalloc_set_decay_ms(0)
    except NotImplementedError:  # a pyarrow built without jemalloc
        pa.set_memory_pool(pa.system_memory_pool())
    _fixed_mmap_threshold()
    return True


def _fixed_mmap_threshold() -> None:
    """glibc raises its mmap threshold each time a mapped block is freed, up to 32 MB, so the
    next large blocks (a database's 4 MB answer, its copies) come from the heap and stay in the
    process when freed: 10-20 MB of peak RSS in a sync. Setting the threshold fixes it at the
    default 128 KB. Nothing happens where the C library is not glibc."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


@dataclass(frozen=True)
class CsvFile:
    """A local CSV file and the csv connection's dialect."""

    path: Path
    label: str
    delimiter: str
    quotechar: str
    encoding: str
    header: bool
    columns: list[str] | None
    skipinitialspace: bool
    max_field: int
    sha256: str | None = None  # of the open unit: its content when the run opened it
    state: tuple[int, ...] | None = None  # and its file's (inode, size, mtime, ctime) then

    def unchanged(self) -> bool:
        """Whether the file is still the one whose SHA-256 the run took: not written since
        (every write moves its ctime), not replaced."""
        try:
            return self.state is not None and _state(os.stat(self.path)) == self.state
        except OSError:
            return False


def _state(found: os.stat_result) -> tuple[int, ...]:
    return found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns


@dataclass(frozen=True)
class Spec:
    """One destination column: its kind (the exact path's converter, see sql._kind), where its
    value comes from (a file column, else ``const``) and the arrow type it gets."""

    name: str
    kind: str
    source: str | None = None
    const: Any = None
    length: int | None = None  # text: the most characters the column holds
    precision: int | None = None  # decimal
    scale: int | None = None
    key: bool = False
    typed: bool = False  # const is already the converted value (a status), not text

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: kind {self.kind!r} is not one of {KINDS}")

    @property
    def arrow(self) -> pa.DataType:
        return arrow_type(self)


def arrow_type(spec: Spec) -> pa.DataType:
    """string, int64, bool, float64, decimal128, date32 or timestamp[us] (no zone)."""
    if spec.kind == "decimal":
        return pa.decimal128(spec.precision or 38, spec.scale or 0)
    return {"text": pa.string(), "int": pa.int64(), "flag": pa.int64(), "float": pa.float64(),
            "date": pa.date32(), "datetime": pa.timestamp("us"), "bool": pa.bool_()}[spec.kind]


def csv_file(source: Any, context: Any) -> CsvFile | None:
    """The source as a local CSV file, or None when it is not one (another connector, a remote
    URL not yet fetched): then only the exact path can read it."""
    if not isinstance(source, CsvConnector):
        return None
    found = source._local(context)
    if found is None or not found[0].is_file():
        return None
    params = source.params
    sha256, state = source.open_content or (None, None)
    return CsvFile(found[0], found[1], params["delimiter"], params["quotechar"],
                   params["encoding"], bool(params["header"]),
                   list(params["columns"]) if params.get("columns") else None,
                   bool(params.get("skipinitialspace")), source._max_field, sha256,
                   None if state is None else _state(state))


def file_columns(file: CsvFile) -> list[str]:
    """The file's column names as the exact path reads them (trimmed header, no reject-file
    column). Unsupported for a header the fast path does not read itself."""
    _check_bytes(file)
    if not file.header:
        if file.columns is None:
            raise Unsupported("no header and no columns")
        return list(file.columns)
    return _read_header(file)[0]


def _check_bytes(file: CsvFile, unit: bool = False) -> bool:
    """No quote character and no NUL byte anywhere in the file (a memchr scan), and the BOM
    rule: with these the file is plain delimited text, which both readers split alike.
    With ``unit``, whether the file holds a 0x1f byte too (see unit_free_columns). A file
    whose state is known is scanned once while it stays unchanged (CsvFile.unchanged): the
    fast path, its pre-check and the bucketed diff each ask."""
    try:
        quote = file.quotechar.encode(file.encoding.removesuffix("-sig"))
        delimiter = file.delimiter.encode(file.encoding.removesuffix("-sig"))
    except UnicodeEncodeError:
        raise Unsupported("the quote or delimiter character is not in the encoding") from None
    if len(delimiter) != 1 or len(quote) != 1 or not file.delimiter.isascii():
        raise Unsupported("a delimiter or quote character of more than one byte")
    key = (file.path, file.state, quote, file.encoding, file.header)
    known = _SCANNED.get(key) if file.state is not None else None
    if known is not None and file.unchanged():
        return unit and known
    found = False
    with open(file.path, "rb") as raw:
        first = True
        while chunk := raw.read(SCAN_BYTES):
            if first and chunk.startswith(codecs.BOM_UTF8) and file.encoding not in (
                    "utf-8", "utf-8-sig"):
                raise Unsupported("a byte-order mark in a file that is not UTF-8")
            if first and chunk.startswith(codecs.BOM_UTF8) and not file.header:
                raise Unsupported("a byte-order mark without a header line")
            first = False
            if quote in chunk:
                raise Unsupported("the file holds the quote character")
            if b"\x00" in chunk:
                raise Unsupported("the file holds a NUL byte")
            found = found or b"\x1f" in chunk
    if file.state is not None and file.unchanged():
        _SCANNED.clear()  # one file at a time: the one being read
        _SCANNED[key] = found
    return unit and found


_SCANNED: dict[tuple[Any, ...], bool] = {}  # _check_bytes's last scan: whether it found 0x1f


def unit_free_columns(file: CsvFile, specs: list[Spec]) -> frozenset[str]:
    """The specs (their names) whose values come from the file, when no byte of the file can
    be U+001F, the fingerprint's unit separator (an ASCII-compatible encoding and no 0x1f
    byte): their values need no check of their own. Else none. Unsupported as _check_bytes."""
    try:
        name = codecs.lookup(file.encoding).name
    except LookupError:
        return frozenset()
    if name not in ("ascii", "utf-8", "utf-8-sig") and not name.startswith(("iso8859-",
                                                                             "cp125")):
        return frozenset()
    if _check_bytes(file, unit=True):
        return frozenset()
    return frozenset(spec.name for spec in specs if spec.source is not None)


def estimated_rows(file: CsvFile) -> int:
    """About how many lines the file has, from its first 64 KB: enough to size a load's
    parts (bulk.py), never a count."""
    with open(file.path, "rb") as raw:
        head = raw.read(1 << 16)
        size = os.fstat(raw.fileno()).st_size
    return size * max(head.count(b"\n"), 1) // max(len(head), 1)


def _read_header(file: CsvFile) -> tuple[list[str], bool]:
    """(names, whether the file is a reject file with its trailing iotask_error column)."""
    with open(file.path, "rb") as raw:
        head = raw.read(min(file.max_field, 1 << 20) + 2)
    ends = [at for at in (head.find(b"\n"), head.find(b"\r")) if at >= 0]
    if not ends:
        raise Unsupported("no line end within the header's first megabyte")
    try:
        line = head[:min(ends)].decode(file.encoding).removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise Unsupported("the header is not text in the encoding") from None
    if not line.strip():
        raise Unsupported("a blank first line")
    record = line.split(file.delimiter)
    if file.skipinitialspace:
        record = [field.lstrip(" ") for field in record]
    try:
        names = _header(record, file.label, 1, file.quotechar)
    except CsvError as exc:
        raise Unsupported(f"the header: {exc}") from None
    return names, record[-1].strip() == REJECT_COLUMN and len(record) > 1


@dataclass(frozen=True)
class Select:
    """Some of the rows of a second pass over a file: ``keep`` is given each batch of the
    ``columns`` (spec names) converted, and answers a mask; the other columns are converted
    for the rows kept only (the first pass converted, and so checked, every value)."""

    columns: frozenset[str]
    keep: Callable[[pa.RecordBatch], pa.Array]


def typed_batches(file: CsvFile, specs: list[Spec],
                  progress: Progress | None = None, select: Select | None = None,
                  ) -> Iterator[pa.RecordBatch]:
    """The file's rows mapped and converted: RecordBatches with one column per spec, named as
    the destination's columns, of ``arrow_type``; nulls where the exact path has NULL.
    ``progress`` is told after each batch: the rows so far, the bytes read and the file's size.

    Can be called again for a second pass over the same file. Raises Unsupported at the first
    thing the exact path might do otherwise (nothing is yielded after that).
    """
    with open(file.path, "rb") as handle:
        yield from _typed_batches(file, specs, handle, progress, select)


def _typed_batches(file: CsvFile, specs: list[Spec], handle: IO[bytes],
                   progress: Progress | None, select: Select | None,
                   ) -> Iterator[pa.RecordBatch]:
    _check_bytes(file)
    if file.header:
        names, rejects = _read_header(file)
        read_names = names + ([REJECT_COLUMN] if rejects else [])
    else:
        if file.columns is None:
            raise Unsupported("no header and no columns")
        names = read_names = list(file.columns)
    for spec in specs:
        if spec.source is not None and spec.source not in names:
            raise Unsupported(f"source column {spec.source!r} is not in the file")
    encoding = "utf8" if file.encoding.startswith("utf-8") else file.encoding
    try:
        reader = pacsv.open_csv(
            handle,
            read_options=pacsv.ReadOptions(use_threads=False, block_size=BLOCK_BYTES,
                                           column_names=read_names,
                                           skip_rows=1 if file.header else 0,
                                           encoding=encoding),
            parse_options=pacsv.ParseOptions(delimiter=file.delimiter, quote_char=False,
                                             double_quote=False, escape_char=False,
                                             newlines_in_values=False, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(read_names, pa.string()), check_utf8=True,
                strings_can_be_null=False, quoted_strings_can_be_null=False))
        # every column, mapped or not: the exact path decodes and measures whole lines
    except (pa.ArrowException, UnicodeError, ValueError) as exc:
        raise Unsupported(f"pyarrow cannot read the file: {exc}") from None
    longest = file.max_field - len(read_names) - 2
    size, rows = os.fstat(handle.fileno()).st_size, 0
    for batch in _blocks(reader):
        count = batch.num_rows
        raw = {name: batch.column(name) for name in batch.schema.names}
        if file.skipinitialspace:
            raw = {name: pc.utf8_ltrim(values, characters=" ") for name, values in raw.items()}
        # bytes, not characters (no decoding: cheaper, and never fewer): a line that might be
        # longer than max_field_size is for the exact path, which stops at it
        if sum(pc.max(pc.binary_length(values)).as_py() or 0
               for values in raw.values()) > longest:
            raise Unsupported("a line may be longer than max_field_size")
        first: dict[str, pa.Array] = {}
        kept = count
        if select is not None:
            first = {spec.name: convert(spec, raw[spec.source] if spec.source is not None
                                        else _constant(spec, count))
                     for spec in specs if spec.name in select.columns}
            mask = select.keep(pa.RecordBatch.from_arrays(list(first.values()),
                                                          names=list(first)))
            kept = pc.sum(mask.cast(pa.int64())).as_py() or 0
            if kept:
                raw = {name: values.filter(mask) for name, values in raw.items()}
                first = {name: values.filter(mask) for name, values in first.items()}
        if kept:
            columns = [first[spec.name] if spec.name in first else
                       convert(spec, raw[spec.source] if spec.source is not None
                               else _constant(spec, kept)) for spec in specs]
            yield pa.RecordBatch.from_arrays(columns, names=[spec.name for spec in specs])
        rows += count
        if progress is not None:
            progress(rows, handle.tell(), size)


def _blocks(reader: pacsv.CSVStreamingReader) -> Iterator[pa.RecordBatch]:
    """The reader's batches joined into BATCH_ROWS rows or more: each conversion is a few
    vectorised calls per column, whose fixed cost a 3,500-row block would pay three times."""
    pending: list[pa.RecordBatch] = []
    count = 0
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except (pa.ArrowException, UnicodeError, ValueError) as exc:
            raise Unsupported(f"pyarrow: {exc}") from None
        if batch.num_rows:
            pending.append(batch)
            count += batch.num_rows
        if count >= BATCH_ROWS:
            yield _joined(pending)
            pending, count = [], 0
    if count:
        yield _joined(pending)


def _joined(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _constant(spec: Spec, count: int) -> pa.Array:
    value = spec.const
    if spec.typed:
        try:
            return pa.repeat(pa.scalar(value, type=spec.arrow), count)
        except (pa.ArrowException, TypeError, ValueError):
            raise Unsupported(f"constant {value!r} for column {spec.name!r}") from None
    if value is None:
        return pa.nulls(count, pa.string())
    if not isinstance(value, str):
        raise Unsupported(f"a constant that is not text in column {spec.name!r}")
    return pa.repeat(pa.scalar(value, pa.string()), count)


def _any(mask: pa.Array) -> bool:
    return bool(pc.any(mask).as_py())


def _all_match(values: pa.Array, pattern: str) -> bool:
    """Every value that is not null matches ``pattern``."""
    return bool(pc.all(pc.match_substring_regex(values, pattern)).as_py() is not False)


def convert(spec: Spec, values: pa.Array) -> pa.Array:
    """One column of text (as read: never null, except a NULL constant) converted as the exact
    path's converter for the column's kind does, or Unsupported."""
    if spec.typed:
        if spec.key and values.null_count:
            raise Unsupported(f"key column {spec.name!r} is empty")
        return values
    if spec.kind == "text":
        if spec.length is not None and len(values) and (
                pc.max(pc.binary_length(values)).as_py() or 0) > spec.length and (
                pc.max(pc.utf8_length(values)).as_py() or 0) > spec.length:  # bytes first
            raise Unsupported(f"column {spec.name!r}: a value longer than {spec.length}")
        if spec.key and (values.null_count or _any(pc.match_substring_regex(values, _BLANK))):
            raise Unsupported(f"key column {spec.name!r} is empty")
        return values
    text = pc.utf8_trim(values, characters=ASCII_SPACE)
    # typed scalars here and wherever a batch is converted: for each untyped Python value it
    # converts, pyarrow tries to import dateutil (0.3-0.7 ms a time where it is not installed)
    blank = pc.equal(pc.binary_length(text), pa.scalar(0, pa.int32()))
    if spec.key and (text.null_count or _any(blank)):
        raise Unsupported(f"key column {spec.name!r} is empty")
    text = pc.if_else(blank, pa.scalar(None, pa.string()), text)
    try:
        return _parse(spec, text)
    except (pa.ArrowException, ValueError, OverflowError) as exc:
        raise Unsupported(f"column {spec.name!r}: {exc}") from None


def _parse(spec: Spec, text: pa.Array) -> pa.Array:
    kind = spec.kind
    if kind == "int":
        _require(text, _INT, spec)
        return pc.cast(text, pa.int64())
    if kind in ("bool", "flag"):
        lower = pc.utf8_lower(text)
        word = pc.is_in(lower, value_set=_WORDS)
        if kind == "bool":
            if _any(pc.and_(pc.is_valid(text), pc.invert(word))):
                raise Unsupported(f"column {spec.name!r}: not a true/false word")
            truth = pc.is_in(lower, value_set=_TRUE)
            return pc.if_else(pc.is_null(text), pa.scalar(None, pa.bool_()), truth)
        flags = pc.if_else(pc.is_in(lower, value_set=_TRUE), pa.scalar(1, pa.int64()),
                           pa.scalar(0, pa.int64()))
        numbers = pc.if_else(word, pa.scalar(None, pa.string()), text)
        _require(numbers, _INT, spec)
        result = pc.if_else(word, flags, pc.cast(numbers, pa.int64()))
        return pc.if_else(pc.is_null(text), pa.scalar(None, pa.int64()), result)
    if kind == "float":
        _require(text, _FLOAT, spec)
        floats = pc.cast(text, pa.float64())
        if _any(pc.is_inf(floats)):
            raise Unsupported(f"column {spec.name!r}: a number too large")
        return floats
    if kind == "decimal":
        if spec.precision is None:
            raise Unsupported(f"column {spec.name!r}: a decimal without precision")
        _require(text, _DECIMAL, spec)
        return pc.cast(text, spec.arrow)  # refuses digits the scale would cut
    if kind == "date":
        # arrow's cast reads YYYY-MM-DD only, ASCII digits, real days (no 31 February): the
        # shape and calendar checks in one (tests/test_columnar.py holds it to that); year 0
        # it reads too, the exact path does not
        dates = pc.cast(text, pa.date32())
        if _any(pc.starts_with(text, "0000")):
            raise Unsupported(f"column {spec.name!r}: a date that is not a calendar date")
        return dates
    if kind == "datetime":
        _require(text, _DATETIME, spec)
        text = pc.replace_substring(text, "T", " ")
        times = pc.cast(text, pa.timestamp("us"))
        _round_trip(text, datetime_text(times), spec)
        return times
    raise Unsupported(f"column {spec.name!r}: a type the fast path does not convert")


def datetime_text(times: pa.Array, suffix: str = "") -> pa.Array:
    """YYYY-MM-DD HH:MM:SS (then ``suffix``): whole seconds, the only ones the fast path reads
    (strftime's %S of a microsecond timestamp would add the fraction)."""
    return pc.strftime(pc.cast(times, pa.timestamp("s")), format=f"%Y-%m-%d %H:%M:%S{suffix}")


def _require(text: pa.Array, pattern: str, spec: Spec) -> None:
    if not _all_match(text, pattern):
        raise Unsupported(f"column {spec.name!r}: a value in a form the fast path does not "
                          "parse")


def _round_trip(text: pa.Array, again: pa.Array, spec: Spec) -> None:
    """The parsed value written back is the text: no day 31 of February, no year 0."""
    if pc.any(pc.not_equal(text, again)).as_py() or _any(pc.starts_with(text, "0000")):
        raise Unsupported(f"column {spec.name!r}: a date that is not a calendar date")
