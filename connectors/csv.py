"""CSV files: read and write.

Reading streams the file and numbers physical lines itself, so that every rejected row and every
broken file names the line a person opens in an editor. Writing goes to a temporary file that
replaces the target only when everything was written, so a failed export never leaves half a file.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from connectors.base import (
    Batch,
    ChangeSet,
    Column,
    Connector,
    ConnectorError,
    NothingToProcess,
    Row,
    RowError,
    RunContext,
    Setting,
    SettingsError,
)

ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252")
BATCH_SIZE = 1000
FIELD_SIZE_LIMIT = 100 * 1024 * 1024
LINE = "__line__"  # key of the physical line number in each row read; the engine pops it
REJECT_COLUMN = "iotask_error"  # the last column of a reject file; reading ignores it
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_LONE_CR = re.compile(r"(?<=\r)(?!\n)")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)")
CHUNK_BYTES = 64 * 1024


class CsvError(ConnectorError):
    """The file cannot be read or written as configured; the message names the file and line."""


class CsvConnector(Connector):
    type_name = "csv"
    description = "CSV file (delimited text), read or written"
    can_read = True
    can_write = True
    settings = (
        Setting("url", "url", required=True,
                help="file path or file: URL, e.g. /srv/hr/users.csv"),
        Setting("delimiter", default=",", help="one character separating fields"),
        Setting("quotechar", default='"', help="one character enclosing fields"),
        Setting("encoding", default="utf-8", choices=ENCODINGS,
                help="utf-8-sig for UTF-8 with a byte-order mark"),
        Setting("header", "bool", default=True, help="the first line names the columns"),
        Setting("columns", "list", help="column names when the file has no header line"),
    )
    _reading: IO[bytes] | None = None  # the file read() has open, for progress()

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        for key in ("delimiter", "quotechar"):
            if len(params[key]) != 1:
                raise SettingsError(f"setting {key!r} must be exactly one character")
        if not params["header"] and not params.get("columns"):
            raise SettingsError(
                "setting 'columns' is required when 'header' is false: name the columns, "
                "e.g. --set columns=userid,firstname,lastname"
            )
        columns = params.get("columns") or []
        twice = sorted({name for name in columns if columns.count(name) > 1})
        if twice:
            raise SettingsError(f"setting 'columns' names {', '.join(twice)} more than once")
        if LINE in columns:
            raise SettingsError(f"setting 'columns': the name {LINE!r} is reserved")

    def describe(self) -> str:
        path = file_path(self.params["url"])
        return f"{path} line 1 (header)" if self.params["header"] else str(path)

    def columns(self, context: RunContext) -> list[Column] | None:
        """The ``columns`` setting, else the file's header line; None while there is no file."""
        if self.params.get("columns"):
            return [Column(name) for name in self.params["columns"]]
        if not self.params["header"]:
            return None
        path = file_path(self.params["url"])
        try:
            raw = open(path, "rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CsvError(f"cannot open {path}: {exc.strerror}") from None
        if str(path) not in context.files:
            context.files.append(str(path))
        with raw:
            lines = _Lines(raw, path, self.params["encoding"])
            reader = csv.reader(lines, delimiter=self.params["delimiter"],
                                quotechar=self.params["quotechar"], strict=True)
            for line, record in _records(reader, path):
                return [Column(name) for name in _header(record, path, line)]
        return None

    def read(self, context: RunContext) -> Iterator[Batch]:
        """Yield the rows in batches of 1000, each row with its line number under ``__line__``.

        A missing file raises NothingToProcess (cron tries again later). A row with the wrong
        number of fields is a row error; a file that cannot be parsed raises CsvError.
        """
        path = file_path(self.params["url"])
        try:
            raw = open(path, "rb")
        except FileNotFoundError:
            raise NothingToProcess(f"no file {path}") from None
        except OSError as exc:
            raise CsvError(f"cannot open {path}: {exc.strerror}") from None
        if str(path) not in context.files:
            context.files.append(str(path))
        csv.field_size_limit(max(csv.field_size_limit(), FIELD_SIZE_LIMIT))
        self._reading = raw
        with raw:
            lines = _Lines(raw, path, self.params["encoding"])
            reader = csv.reader(lines, delimiter=self.params["delimiter"],
                                quotechar=self.params["quotechar"], strict=True)
            names = None if self.params["header"] else list(self.params["columns"])
            rejects = False  # a reject file fed back: its last column is the error, ignored
            batch: Batch = []
            for line, record in _records(reader, path):
                if names is None:
                    names = _header(record, path, line)
                    rejects = record[-1].strip() == REJECT_COLUMN
                    continue
                if len(record) != len(names):
                    if rejects and len(record) == len(names) + 1:
                        record = record[:-1]
                    else:
                        context.counts.read += 1
                        context.row_error(RowError(
                            row_index=line,
                            message=f"expected {len(names)} fields, found {len(record)}"))
                        continue
                row: Row = dict(zip(names, record, strict=True))
                row[LINE] = line
                batch.append(row)
                if len(batch) == BATCH_SIZE:
                    yield batch
                    batch = []
            if names is None:
                raise CsvError(f"{path} is empty: expected a header line naming the columns "
                               "(or set header=false and columns=...)")
            if batch:
                yield batch

    def write_rejects(self, rejected: Mapping[int, str], folder: Path, stem: str) -> Path:
        """The rejected records as they were, in this file's dialect and encoding, plus an
        ``iotask_error`` column when the file has a header; reading ignores that column, so the
        fixed file can be imported as it is."""
        source = file_path(self.params["url"])
        target = folder / f"{stem}.csv"
        dialect = {"delimiter": self.params["delimiter"], "quotechar": self.params["quotechar"]}
        with open(source, "rb") as raw, open(target, "w", encoding=self.params["encoding"],
                                             errors="replace", newline="") as out:
            reader = csv.reader(_Lines(raw, source, self.params["encoding"]), strict=True,
                                **dialect)
            writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, **dialect)
            header = self.params["header"]
            width = 0 if header else len(self.params["columns"])
            again = False  # the source is itself a reject file: its old errors are replaced
            for line, record in _records(reader, source):
                if header and not width:
                    names = _header(record, source, line)
                    width, again = len(names), record[-1].strip() == REJECT_COLUMN
                    writer.writerow([*names, REJECT_COLUMN])
                    continue
                if line in rejected:
                    if again and len(record) == width + 1:
                        record = record[:-1]
                    cells = record + [""] * (width - len(record))
                    writer.writerow([*cells, rejected[line]] if header else cells)
        return target

    def progress(self) -> tuple[int, int] | None:
        """How far read() is in the file, by bytes: the file's own position and its size now."""
        raw = self._reading
        if raw is None or raw.closed:
            return None
        return raw.tell(), os.fstat(raw.fileno()).st_size

    def write(self, batches: Iterable[Batch], context: RunContext) -> None:
        """Write every row to a temporary file, then put it in place of the target at once.

        The header is the ``columns`` setting when given, else the first row's keys; an empty
        export still gets its header when the columns are known. Text cells that a spreadsheet
        would run as a formula (starting with = + - @ tab or CR) get a leading ``'``.
        """
        target = file_path(self.params["url"])
        if not target.parent.is_dir():
            raise CsvError(f"cannot write {target}: folder {target.parent} does not exist")
        temp = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
        try:
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise CsvError(f"cannot write in folder {target.parent}: {exc.strerror}") from None
        try:
            with open(descriptor, "w", encoding=self.params["encoding"], newline="") as out:
                written = self._write_rows(out, batches, context)
                out.flush()
                os.fsync(out.fileno())
            if target.exists():
                shutil.copymode(target, temp)  # keep the permissions, as overwriting would
            if not context.review(ChangeSet(inserts=written)):
                temp.unlink()
                return
            context.check_lease()
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        context.counts.inserted += written

    def _write_rows(self, out: IO[str], batches: Iterable[Batch], context: RunContext) -> int:
        writer = csv.writer(out, delimiter=self.params["delimiter"],
                            quotechar=self.params["quotechar"], quoting=csv.QUOTE_MINIMAL)
        rows = enumerate(itertools.chain.from_iterable(batches), start=1)
        first = next(rows, None)
        columns = list(self.params.get("columns") or [])
        if not columns and first is not None:
            columns = [name for name in first[1] if name != LINE]
        if self.params["header"] and columns:
            writer.writerow(columns)
        known = {*columns, LINE}
        encoding = self.params["encoding"]
        written = 0
        for ordinal, row in itertools.chain([first] if first else [], rows):
            index = row.get(LINE, ordinal)
            extra = [name for name in row if name not in known]
            if extra:
                raise CsvError(
                    f"row {index} has column {extra[0]!r}, which is not among the file's "
                    f"columns ({', '.join(columns)}): every row must have the same columns")
            cells = [_cell(row.get(name)) for name in columns]
            problem = _unencodable(cells, columns, encoding)
            if problem:
                context.row_error(RowError(row_index=index, column=problem[0],
                                           message=problem[1]))
                continue
            writer.writerow(cells)
            written += 1
        return written


def file_path(url: str) -> Path:
    """The local path named by a plain path or a ``file:`` URL."""
    parts = urlsplit(url)
    if parts.scheme == "":
        return Path(url)
    if parts.scheme != "file":
        raise CsvError(f"cannot use {parts.scheme}: URLs ({url}): give a local path or a "
                       "file: URL; remote transfers are not supported yet")
    if parts.netloc not in ("", "localhost"):
        raise CsvError(f"file URL {url} names host {parts.netloc!r}: only local files "
                       "(file:///path) are supported")
    return Path(unquote(parts.path))


class _Lines:
    """The file's lines, decoded, with their line ends, for csv.reader (which counts them).

    Lines end at LF, CRLF or a lone CR, as Python's newline="" mode splits them. The file is
    read 64 KB at a time and split by a regular expression; only when a chunk holds a NUL
    byte or bytes the encoding cannot decode is it read again line by line, to name the line.
    """

    def __init__(self, raw: IO[bytes], path: Path, encoding: str) -> None:
        self.raw, self.path, self.encoding = raw, path, encoding

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._chunks()
        except _Locate:
            self.raw.seek(0)
            for _line in self._exactly():
                pass
            raise CsvError(f"{self.path}: the file is not text in {self.encoding}: save it "
                           "as UTF-8 CSV") from None

    def _start(self, chunk: bytes) -> None:
        if chunk.startswith(codecs.BOM_UTF8) and self.encoding not in ("utf-8", "utf-8-sig"):
            raise CsvError(f"{self.path} starts with a UTF-8 byte-order mark but encoding "
                           f"is {self.encoding}: set encoding=utf-8-sig")

    def _chunks(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder(self.encoding)()
        tail, first = "", True
        while True:
            chunk = self.raw.read(CHUNK_BYTES)
            if first:
                self._start(chunk)
            if b"\x00" in chunk:
                raise _Locate
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError:
                raise _Locate from None
            if first:
                text, first = text.removeprefix("\ufeff"), False
            text = tail + text
            if not chunk:
                if text:
                    yield text
                return
            end = len(text) - 1 if text.endswith("\r") else len(text)  # CR LF may be split
            cut = max(text.rfind("\n", 0, end), text.rfind("\r", 0, end)) + 1
            yield from _LINE.findall(text, 0, cut)
            tail = text[cut:]

    def _exactly(self) -> Iterator[str]:
        """Line by line, counting: raises CsvError naming the line of the first problem."""
        decoder = codecs.getincrementaldecoder(self.encoding)()
        number, first = 0, True
        for chunk in itertools.chain(self.raw, [b""]):
            if first:
                self._start(chunk)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                line = (number + 1 + chunk.count(b"\r", 0, exc.start) if chunk
                        else number)  # at the end: the last line was cut short
                raise CsvError(
                    f"{self.path} line {line}: bytes {exc.object[exc.start:exc.end]!r} are not "
                    f"valid {self.encoding}: set the connection's encoding to the file's "
                    "(utf-8, utf-8-sig, latin-1 or cp1252)") from None
            if first:
                text, first = text.removeprefix("\ufeff"), False
            for part in _LONE_CR.split(text) if "\r" in text else [text]:
                if not part:
                    continue
                number += 1
                if "\x00" in part:
                    raise CsvError(f"{self.path} line {number} contains a NUL byte: the file "
                                   "is not text in a supported encoding (UTF-16?): save it as "
                                   "UTF-8 CSV")
                yield part


class _Locate(Exception):
    """A chunk has a problem that only a line-by-line reading can place."""


def _records(reader: Iterator[list[str]], path: Path) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank record with the line it starts on."""
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if str(exc) == "unexpected end of data":
                raise CsvError(f"{path} line {start}: a quoted field in the record starting on "
                               "this line is never closed: check the quote characters") from None
            where = (f"line {start}" if reader.line_num == start else
                     f"the record starting on line {start} (error seen on line "
                     f"{reader.line_num})")
            raise CsvError(f"{path} {where}: {exc}: a field with the quote character must be "
                           "enclosed in quotes, its quotes doubled") from None
        if record:
            yield start, record


def _header(record: list[str], path: Path, line: int) -> list[str]:
    """The column names; a reject file's trailing error column is not one of them."""
    names = [name.strip() for name in record]
    if len(names) > 1 and names[-1] == REJECT_COLUMN:
        names.pop()
    unnamed = [str(number) for number, name in enumerate(names, start=1) if not name]
    if unnamed:
        raise CsvError(f"{path} line {line}: header column {', '.join(unnamed)} has no name: "
                       "name every column")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        shown = ", ".join(name if len(name) <= 60 else f"{name[:60]}... ({len(name)} characters)"
                          for name in duplicates)
        raise CsvError(f"{path} line {line}: header names {shown} more than once: column "
                       "names must be unique")
    if LINE in names:
        raise CsvError(f"{path} line {line}: column name {LINE!r} is reserved: rename it")
    return names


def _cell(value: Any) -> str:
    """The text of one cell: None is empty; text a spreadsheet would run gets a leading '."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return str(value)


def _unencodable(cells: list[str], columns: list[str], encoding: str) -> tuple[str, str] | None:
    """The first column whose text the file's encoding cannot hold, and why."""
    for name, cell in zip(columns, cells, strict=True):
        try:
            cell.encode(encoding)
        except UnicodeEncodeError as exc:
            return name, (f"{exc.object[exc.start]!r} cannot be written in {encoding}: "
                          "use encoding utf-8")
    return None


CONNECTOR = CsvConnector
