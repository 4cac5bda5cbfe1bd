"""CSV files: read and write.

Reading streams the file and numbers physical lines itself, so that every rejected row and every
broken file names the line a person opens in an editor. Writing goes to a temporary file that
replaces the target only when everything was written, so a failed export never leaves half a file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from iotask.connectors.base import Connector
from iotask.connectors.context import (
    Batch,
    Column,
    MemoryContext,
    Row,
    RowError,
    RunContext,
    Unit,
    UnitOutcome,
)
from iotask.connectors.errors import ConnectorError, NothingToProcess, NotReadyYet, SettingsError
from iotask.connectors.files import (
    INTAKE_SETTINGS,
    TRANSPORT_SETTINGS,
    dated,
    export,
    transport_options,
)
from iotask.connectors.masking import mask
from iotask.connectors.settings import Setting
from iotask.connectors.transports import (
    RemoteFile,
    Transport,
    TransportError,
    TransportOptions,
    confine,
    expand_name,
    open_transport,
)

ENCODINGS = ("utf-8", "utf-8-sig", "latin-1", "cp1252")
log = logging.getLogger("iotask.csv")
BATCH_SIZE = 1000
DEFAULT_MAX_FIELD = 8 * 1024 * 1024  # characters in one field or one physical line
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
    rereadable = True  # a local file, or a remote one fetched to a local copy by open_unit
    settings = (
        Setting("url", "url", required=True,
                help="path or file:, ftp:, ftps:, sftp:, https: URL; ending in / imports every "
                     "file in that folder; an export name may hold {date:%Y%m%d}"),
        Setting("delimiter", default=",", help="one character separating fields"),
        Setting("quotechar", default='"', help="one character enclosing fields"),
        Setting("encoding", default="utf-8", choices=ENCODINGS,
                help="utf-8-sig for UTF-8 with a byte-order mark"),
        Setting("header", "bool", default=True, help="the first line names the columns"),
        Setting("columns", "list", help="column names when the file has no header line"),
        *TRANSPORT_SETTINGS,
        Setting("formulas", "bool", default=True,
                help="exports: a cell starting with = + - @ gets a leading ' so a spreadsheet "
                     "shows it instead of running it; false for files read by programs only "
                     "(phone numbers such as +39...)"),
        Setting("skipinitialspace", "bool",
                help="spaces after a delimiter are not part of the next value, as in files "
                     'written a, b, "c" (default false: they are kept)'),
        Setting("max_field_size", "int",
                help="the longest field or line, in characters (default 8388608, 8 MB); a "
                     "longer one fails the file with its line number instead of filling the "
                     "memory"),
        *INTAKE_SETTINGS,
    )
    _reading: IO[bytes] | None = None  # the file read() has open, for progress()
    _open: tuple[Path, str] | None = None  # the unit being read: local copy, name for messages
    # its SHA-256 and its file's stat when the run took it (columnar.CsvFile.unchanged)
    open_content: tuple[str | None, os.stat_result] | None = None
    _transport: Transport | None = None
    _scratch: tempfile.TemporaryDirectory[str] | None = None
    _roots: list[Path] = []  # the roots the last transport was opened with (never changed)

    def _dialect(self) -> dict[str, Any]:
        return {"delimiter": self.params["delimiter"], "quotechar": self.params["quotechar"],
                "skipinitialspace": bool(self.params.get("skipinitialspace"))}

    @property
    def _max_field(self) -> int:
        return int(self.params.get("max_field_size") or DEFAULT_MAX_FIELD)

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        if not 1024 <= params.get("max_field_size", DEFAULT_MAX_FIELD) <= 2**31 - 1:
            raise SettingsError("setting 'max_field_size' must be between 1024 and 2147483647 "
                                f"characters, got {params['max_field_size']}")
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
        if params.get("quarantine") and ("/" in params["quarantine"]
                                         or params["quarantine"] in (".", "..")):
            raise SettingsError("setting 'quarantine' is the name of a subfolder of the import "
                                "folder, e.g. failed (without slashes)")
        for key, least, most in (("timeout", 1, 86_400), ("retries", 0, 100),
                                 ("stable_seconds", 0, 604_800)):
            value = params.get(key)
            if value is not None and not least <= value <= most:
                what = "tries" if key == "retries" else "seconds"
                raise SettingsError(f"setting {key!r} must be a number of {what} from {least} "
                                    f"to {most:,}, got {value}")

    @classmethod
    def check_location(cls, params: dict[str, Any], roots: list[Path]) -> None:
        """The URL as a transport reads it (scheme, host, file: confinement): no network I/O,
        and no secret read (an env: variable may be set only where cron runs)."""
        public = {key: value for key, value in params.items()
                  if key not in ("password", "auth_header")}
        try:
            transport = cls(public)._open_transport(roots)
            transport.close()
            if transport.target and "{" in transport.target:  # an export's dated name
                expand_name(transport.target, datetime.now())
        except TransportError as exc:
            raise SettingsError(str(exc)) from None

    def location(self) -> str:
        where = self._open[1] if self._open else mask(self.params["url"])
        return f"{where} line 1 (header)" if self.params["header"] else where

    # --- where the bytes are ------------------------------------------------------------

    def _options(self, roots: list[Path]) -> TransportOptions:
        return transport_options(self.params, roots, "text/csv; charset="
                                 + self.params["encoding"].removesuffix("-sig"))

    def _open_transport(self, roots: list[Path], url: str | None = None) -> Transport:
        self._roots = roots  # reject files are read back within the run's own roots
        return open_transport(url or self.params["url"], self._options(roots))

    def _consumes(self, transport: Transport) -> bool:
        default = "rename" if transport.mode != "file" and transport.can_rename else "keep"
        return (self.params.get("consume") or default) == "rename"

    def units(self, context: RunContext) -> list[Unit]:
        """The files ready now, oldest first. None listed, or only ones still being written
        (changed within stable_seconds, or without their done-marker): NothingToProcess."""
        transport = self._transport = self._open_transport(context.file_roots)
        files = transport.list()
        where = transport.where(transport.path)
        if not files:
            raise NothingToProcess(f"no file at {where}")
        ready, waiting = transport.ready(files)
        if waiting:
            why = (f"without their {self.params['done_marker']} marker"
                   if self.params.get("done_marker") else
                   f"changed within the last {transport.options.stable_seconds:g} s")
            message = (f"{len(waiting)} file(s) at {where} still being written ({why}): "
                       f"{', '.join(f.name for f in waiting[:5])}; the next run takes them")
            if not ready:
                raise NotReadyYet(message)
            log.warning("%s", message)
        local, once = transport.scheme == "file", self._consumes(transport)
        return [Unit(f.name, f.path if local else transport.where(f.path), f, once)
                for f in ready]

    def open_unit(self, unit: Unit, context: RunContext) -> None:
        """Read local files in place; fetch remote ones to a private temporary folder."""
        transport = self._transport
        assert transport is not None, "units() comes first"
        file: RemoteFile = unit.handle
        if transport.scheme == "file":
            local = confine(file.path, transport.options.file_roots)  # a symlink out: refused
            try:
                with open(local, "rb") as stream:
                    before = os.fstat(stream.fileno())  # a write while hashing moves its ctime
                    unit.sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
            except OSError as exc:
                raise CsvError(f"cannot open {local}: {exc.strerror}") from None
        else:
            if self._scratch is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="iotask-fetch-")
            local = Path(self._scratch.name) / "unit"
            with open(local, "wb") as out:
                unit.sha256 = transport.fetch(file, out)
            before = local.stat()
        unit.size = local.stat().st_size
        self._open = (local, unit.where)
        self.open_content = (unit.sha256, before)
        context.files.append(unit.where)

    def close_unit(self, unit: Unit, outcome: UnitOutcome) -> str | None:
        transport = self._transport
        self._open = self.open_content = None
        if transport is None or not self._consumes(transport):
            return None
        if outcome == UnitOutcome.CONSUMED:
            return f"renamed to {transport.mark_imported(unit.handle).name}"
        folder = self.params.get("quarantine")
        if outcome == UnitOutcome.FAILED and folder:
            moved = transport.quarantine(unit.handle, folder)
            return f"moved to {folder}/{moved.name}"
        return None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def _local(self, context: RunContext) -> tuple[Path, str] | None:
        """The file to read: the open unit, else the URL's own local file (previews, header
        checks); None when that is not a local file or does not exist yet."""
        if self._open is not None:
            return self._open
        transport = self._open_transport(context.file_roots)
        try:
            if transport.scheme != "file" or transport.mode != "file":
                return None
            return Path(transport.path), transport.path
        finally:
            transport.close()

    # --- reading ------------------------------------------------------------------------

    def columns(self, context: RunContext) -> list[Column] | None:
        """The ``columns`` setting, else the file's header line; None while there is no file
        (or it is remote, or one of a folder's: known when the run opens it)."""
        if self.params.get("columns"):
            return [Column(name) for name in self.params["columns"]]
        if not self.params["header"]:
            return None
        found = self._local(context)
        if found is None:
            return None
        path, label = found
        try:
            raw = open(path, "rb")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CsvError(f"cannot open {label}: {exc.strerror}") from None
        if label not in context.files:
            context.files.append(label)
        with raw:
            lines = _Lines(raw, label, self.params["encoding"], self._max_field)
            reader = csv.reader(lines, **self._dialect(), strict=True)
            for line, record in _records(reader, label):
                names = _header(record, label, line, self.params["quotechar"])
                return [Column(name) for name in names]
        return None

    def open_for_reading(self, context: RunContext,
                         error: type[ConnectorError]) -> tuple[IO[bytes], str]:
        """The file a read works on (the open unit, else the URL's own file) opened, listed in
        the run's files, and its name for messages; NothingToProcess when it is not there (cron
        tries again later). The file connectors that read through this one's units share it."""
        found = self._local(context)
        if found is None:
            units = self.units(context)
            self.open_unit(units[0], context)
            found = self._open
            assert found is not None
        path, label = found
        try:
            raw = open(path, "rb")
        except FileNotFoundError:
            raise NothingToProcess(f"no file {label}") from None
        except OSError as exc:
            raise error(f"cannot open {label}: {exc.strerror}") from None
        if label not in context.files:
            context.files.append(label)
        return raw, label

    def read(self, context: RunContext) -> Iterator[Batch]:
        """Yield the rows in batches of 1000, each row with its line number under ``__line__``.

        Reads the open unit, else the URL's own file. A missing file raises NothingToProcess
        (cron tries again later). A row with the wrong number of fields is a row error; a file
        that cannot be parsed raises CsvError.
        """
        raw, label = self.open_for_reading(context, CsvError)
        csv.field_size_limit(self._max_field)
        self._reading = raw
        with raw:
            lines = _Lines(raw, label, self.params["encoding"], self._max_field)
            reader = csv.reader(lines, **self._dialect(), strict=True)
            names = None if self.params["header"] else list(self.params["columns"])
            rejects = False  # a reject file fed back: its last column is the error, ignored
            batch: Batch = []
            width = len(names) if names is not None else 0
            end = 0  # the line the previous record ended on
            try:
                for record in reader:
                    line, end = end + 1, reader.line_num
                    if not record:
                        continue
                    if names is None:
                        names = _header(record, label, line, self.params["quotechar"])
                        width, rejects = len(names), record[-1].strip() == REJECT_COLUMN
                        continue
                    if len(record) != width:
                        if rejects and len(record) == width + 1:
                            record = record[:-1]
                        else:
                            context.counts.read += 1
                            context.row_error(RowError(
                                row_index=line,
                                message=f"expected {width} fields, found {len(record)}"))
                            continue
                    row: Row = dict(zip(names, record, strict=False))  # lengths checked above
                    row[LINE] = line
                    batch.append(row)
                    if len(batch) == BATCH_SIZE:
                        yield batch
                        batch = []
            except csv.Error as exc:
                raise _unparsable(exc, label, end + 1, reader.line_num) from None
            if names is None:
                raise CsvError(f"{label} is empty: expected a header line naming the columns "
                               "(or set header=false and columns=...)")
            if batch:
                yield batch

    def write_rejects(self, rejected: Mapping[int, str], folder: Path,
                      stem: str) -> Path | None:
        """The rejected records as they were, in this file's dialect and encoding, plus an
        ``iotask_error`` column when the file has a header; reading ignores that column, so the
        fixed file can be imported as it is."""
        found = self._open or self._local(MemoryContext(file_roots=self._roots))
        if found is None:
            return None
        source, label = found
        target = folder / f"{stem}.csv"
        dialect = self._dialect()
        with open(source, "rb") as raw, open(target, "w", encoding=self.params["encoding"],
                                             errors="replace", newline="") as out:
            lines = _Lines(raw, label, self.params["encoding"], self._max_field)
            reader = csv.reader(lines, strict=True, **dialect)
            writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL,
                                delimiter=dialect["delimiter"], quotechar=dialect["quotechar"])
            header = self.params["header"]
            width = 0 if header else len(self.params["columns"])
            again = False  # the source is itself a reject file: its old errors are replaced
            for line, record in _records(reader, label):
                if header and not width:
                    names = _header(record, label, line, self.params["quotechar"])
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

        A local target gets a temporary file beside it, renamed over it; a remote one is
        uploaded under a temporary name and renamed (https: POSTed), so no reader ever sees half
        a file. ``{date:%Y%m%d}`` in the file name is today's date. The header is the
        ``columns`` setting when given, else the first row's keys; an empty export still gets
        its header when the columns are known. Text cells that a spreadsheet would run as a
        formula (starting with = + - @ tab or CR) get a leading ``'``.
        """
        transport = self._open_transport(context.file_roots,
                                         dated(self.params["url"], context.timezone))
        try:
            export(transport, lambda out: self._write_text(out, batches, context), context,
                   CsvError, "users-{date:%Y%m%d}.csv")
        finally:
            transport.close()

    def _write_text(self, out: IO[bytes], batches: Iterable[Batch], context: RunContext) -> int:
        text = io.TextIOWrapper(out, encoding=self.params["encoding"], newline="")
        try:
            written = self._write_rows(text, batches, context)
            text.flush()
        finally:
            text.detach()
        return written

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
        cell = _cell if self.params["formulas"] else _plain_cell
        written = 0
        for ordinal, row in itertools.chain([first] if first else [], rows):
            index = row.get(LINE, ordinal)
            extra = [name for name in row if name not in known]
            if extra:
                raise CsvError(
                    f"row {index} has column {extra[0]!r}, which is not among the file's "
                    f"columns ({', '.join(columns)}): every row must have the same columns")
            cells = [cell(row.get(name)) for name in columns]
            problem = _unencodable(cells, columns, encoding)
            if problem:
                context.row_error(RowError(row_index=index, column=problem[0],
                                           message=problem[1]))
                continue
            writer.writerow(cells)
            written += 1
        return written


class _Lines:
    """The file's lines, decoded, with their line ends, for csv.reader (which counts them).

    Lines end at LF, CRLF or a lone CR, as Python's newline="" mode splits them. The file is
    read 64 KB at a time and split by a regular expression; only when a chunk holds a NUL
    byte or bytes the encoding cannot decode is it read again line by line, to name the line.
    """

    def __init__(self, raw: IO[bytes], path: Path | str, encoding: str,
                 max_line: int = DEFAULT_MAX_FIELD) -> None:
        self.raw, self.path, self.encoding, self.max_line = raw, path, encoding, max_line
        self.lines = 0  # physical lines yielded so far

    def __iter__(self) -> Iterator[str]:
        try:
            for lines in self._chunks():
                yield from lines
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

    def _chunks(self) -> Iterator[list[str]]:
        """Whole lines, a chunk at a time. A line that goes on over many chunks is kept as a
        list of parts, joined once its end comes: reading stays linear in the line's length,
        and a line longer than ``max_line`` stops the read before it fills the memory."""
        decoder = codecs.getincrementaldecoder(self.encoding)()
        parts: list[str] = []
        waiting, first = 0, True
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
            if not chunk:
                rest = "".join(parts) + text
                if rest:
                    self.lines += 1
                    yield [rest]
                return
            end = len(text) - 1 if text.endswith("\r") else len(text)  # CR LF may be split
            cut = max(text.rfind("\n", 0, end), text.rfind("\r", 0, end)) + 1
            if not cut:  # the line goes on
                parts.append(text)
                waiting += len(text)
                if waiting > self.max_line:
                    raise CsvError(
                        f"{self.path} line {self.lines + 1} is longer than {self.max_line:,} "
                        "characters (setting max_field_size): nothing was read past it; is the "
                        "file CSV with line ends? Raise max_field_size if such lines are right")
                continue
            if parts:
                text, cut = "".join(parts) + text, cut + waiting
                parts, waiting = [], 0
            lines = _LINE.findall(text, 0, cut)
            self.lines += len(lines)
            yield lines
            if cut < len(text):
                parts, waiting = [text[cut:]], len(text) - cut

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


class _Reader(Protocol):
    """What csv.reader returns: records, and the physical line it has read up to."""

    line_num: int

    def __next__(self) -> list[str]: ...


def _records(reader: _Reader,
             path: Path | str) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank record with the line it starts on."""
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _unparsable(exc, path, start, reader.line_num) from None
        if record:
            yield start, record


def _unparsable(exc: csv.Error, path: Path | str, start: int, seen: int) -> CsvError:
    """csv's complaint about the record starting on line ``start``, said for a person."""
    if str(exc) == "unexpected end of data":
        return CsvError(f"{path} line {start}: a quoted field in the record starting on this "
                        "line is never closed: check the quote characters")
    where = (f"line {start}" if seen == start else
             f"the record starting on line {start} (error seen on line {seen})")
    return CsvError(f"{path} {where}: {exc}: a field with the quote character must be enclosed "
                    "in quotes, its quotes doubled")


def _header(record: list[str], path: Path | str, line: int, quote: str = '"') -> list[str]:
    """The column names, trimmed, and unquoted when a space before the quote kept the quotes
    (``userid, "manageridnumber"``); a reject file's trailing error column is not one of them."""
    names = [_unquoted(name.strip(), quote) for name in record]
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


def _unquoted(name: str, quote: str) -> str:
    if len(name) >= 2 and name[0] == quote and name[-1] == quote:
        return name[1:-1].replace(quote * 2, quote).strip()
    return name


def _cell(value: Any) -> str:
    """The text of one cell: None is empty; text a spreadsheet would run gets a leading '."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    return str(value)


def _plain_cell(value: Any) -> str:
    return "" if value is None else str(value)


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
