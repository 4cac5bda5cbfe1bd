"""XML files in iotask's documented formats, read and written: ``users``, ``training-records``,
``courses`` and ``user-merge`` (docs/xml-formats.md; an XSD for each ships in
``iotask/connectors/schemas/``).

Each format is a root element holding one element per record, whose child elements are named
after the forma-* connector columns (``<user><userid>jdoe</userid>...``), so a task from this
connection to forma-users (or from forma-enrollments to it) needs no map. Users' custom fields
are ``<field name="...">value</field>`` (the ``field:<name>`` columns).

Reading streams the file (``safe_iterparse``: no DTD, no entity expansion, no network; a
DOCTYPE is refused) and checks each record's shape: an unknown element or one holding elements
stops the file with its line; a record without its key is a row error. Writing streams too
(lxml's incremental writer, one record in memory at a time) and validates every record against
the format's XSD before writing it, so every export validates: a value the format cannot hold
(a control character XML 1.0 has no way to write, a date that is not a date) is a row error.
Files move as the csv connector's do (any transport, temporary file then atomic replace, dated
names): listing, fetching and consuming are delegated to a csv connection on the same URL.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

from iotask.connectors.base import Connector
from iotask.connectors.context import (
    Batch,
    Column,
    MemoryContext,
    RowError,
    RunContext,
    Unit,
    UnitOutcome,
)
from iotask.connectors.csv import CsvConnector
from iotask.connectors.errors import ConnectorError
from iotask.connectors.files import (
    INTAKE_SETTINGS,
    TRANSPORT_SETTINGS,
    dated,
    export,
    transport_options,
)
from iotask.connectors.masking import mask
from iotask.connectors.settings import Setting
from iotask.connectors.transports import Transport, open_transport
from lxml import etree

LINE = "__line__"  # the record's line, as the csv connector gives a row's
FIELD = "field:"  # users: a custom field's column, written <field name="...">
BATCH_SIZE = 1000
MAX_CHILDREN = 10_000  # elements in one record: more is not a record of these formats
ENCODINGS = ("utf-8", "iso-8859-1", "windows-1252")
# what XML 1.0 cannot hold, even as a character reference
_ELEMENT = re.compile(r"Element '([^']+)'")  # how libxml2's schema errors start
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


class XmlError(ConnectorError):
    """The file is not XML of the format, or cannot be written; the message says where."""


@dataclass(frozen=True)
class Format:
    """One documented XML format: its root, record element and columns (keys first)."""

    name: str
    root: str
    record: str
    columns: tuple[str, ...]
    keys: tuple[str, ...]
    fields: bool = False  # records may hold <field name="..."> custom fields

    @property
    def schema_file(self) -> str:
        return f"{self.name}.xsd"


FORMATS = {f.name: f for f in (
    Format("users", "users", "user",
           ("userid", "firstname", "lastname", "email", "language", "tree_code", "valid"),
           ("userid",), fields=True),
    Format("training-records", "training-records", "training-record",
           ("userid", "code", "level", "date_subscription", "status", "date_complete", "score"),
           ("userid", "code")),
    Format("courses", "courses", "course",
           ("code", "name", "description", "box_description", "lang_code", "status",
            "course_type", "date_begin", "date_end", "difficult", "max_num_subscribe",
            "min_num_subscribe", "valid_time", "subscribe_method", "selling", "prize",
            "credits"), ("code",)),
    Format("user-merge", "user-merges", "merge", ("userid", "survivor"),
           ("userid", "survivor")),
)}


def schema_text(name: str) -> bytes:
    """The XSD of format ``name``, as shipped in the package."""
    return resources.files("iotask.connectors").joinpath(
        "schemas", FORMATS[name].schema_file).read_bytes()


@functools.cache
def schema(name: str) -> etree.XMLSchema:
    """The compiled XSD of format ``name``."""
    return etree.XMLSchema(etree.fromstring(schema_text(name)))


def safe_iterparse(source: IO[bytes] | str, label: str,
                   events: tuple[str, ...] = ("start", "end")) -> Iterator[tuple[str, Any]]:
    """lxml's ``iterparse`` with nothing that reads past the file or multiplies it: no DTD
    loaded, no entity expanded, no network, libxml2's size limits kept (no huge_tree), and a
    DOCTYPE refused outright (entity declarations live there: billion laughs, external
    entities). Comments and processing instructions are dropped. A file that is not
    well-formed raises XmlError naming ``label``, the line and the column."""
    _refuse_doctype(source, label)
    parser = etree.iterparse(source, events=events, resolve_entities=False, no_network=True,
                             load_dtd=False, huge_tree=False, remove_comments=True,
                             remove_pis=True)
    first = True
    try:
        for event, element in parser:
            if first:
                first = False
                if element.getroottree().docinfo.doctype:
                    raise XmlError(f"{label}: the file has a DOCTYPE declaration (before line "
                                   f"{element.sourceline}), which is refused: its entities "
                                   "could expand without bound or read other files; remove it")
            yield event, element
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        if line < 1:
            raise XmlError(f"{label} holds no XML element (is it empty?): {exc.msg}") from None
        raise XmlError(f"{label} line {line} column {column}: not well-formed XML: "
                       f"{exc.msg}") from None


_PROLOG_BYTES = 1 << 20  # a DOCTYPE is looked for in the file's first megabyte
_MARKUP = re.compile(rb"<(\?|!--|!DOCTYPE|[^?!])", re.IGNORECASE)
_ROOT_START = re.compile(rb"<[A-Za-z_:]")


def _refuse_doctype(source: IO[bytes] | str, label: str) -> None:
    """Raise XmlError when the prolog holds a DOCTYPE, before libxml2 reads it: libxml2 2.14
    (lxml 6.2) parses the entity declarations even when told not to expand them, and stops at
    billion laughs with its own amplification error, far from saying why. Reads the first
    megabyte and puts the stream back (a file not seekable is left to the check after the
    first element)."""
    if isinstance(source, str):
        with open(source, "rb") as raw:
            head = raw.read(_PROLOG_BYTES)
    else:
        if not source.seekable():
            return
        start = source.tell()
        head = source.read(_PROLOG_BYTES)
        source.seek(start)
    if not isinstance(head, bytes):  # a text stream: left to the check after the first element
        return
    at = 0
    while (found := _MARKUP.search(head, at)) is not None:
        kind = found.group(1)
        if kind == b"?":
            end = head.find(b"?>", found.end())
        elif kind == b"!--":
            end = head.find(b"-->", found.end())
        elif kind.upper() == b"!DOCTYPE":
            root = _ROOT_START.search(head, found.end())  # the root element, after the DTD
            line = head.count(b"\n", 0, root.start() if root else found.start()) + 1
            raise XmlError(f"{label}: the file has a DOCTYPE declaration (before line {line}), "
                           "which is refused: its entities could expand without bound or read "
                           "other files; remove it")
        else:
            return  # the root element: no DOCTYPE before it
        if end < 0:
            return
        at = end


class XmlConnector(Connector):
    type_name = "xml"
    description = ("XML file in one of iotask's documented formats (users, training-records, "
                   "courses, user-merge), read or written")
    can_read = True
    can_write = True
    settings = (
        Setting("url", "url", required=True,
                help="path or file:, ftp:, ftps:, sftp:, https: URL; ending in / imports every "
                     "file in that folder; an export name may hold {date:%Y%m%d}"),
        Setting("format", required=True, choices=tuple(FORMATS),
                help="the XML format (docs/xml-formats.md)"),
        Setting("encoding", default="utf-8", choices=ENCODINGS,
                help="exports: the file's encoding (reading follows the file's XML "
                     "declaration)"),
        *TRANSPORT_SETTINGS,
        *INTAKE_SETTINGS,
    )
    _reading: IO[bytes] | None = None

    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.format = FORMATS[self.params["format"]]
        self._files = CsvConnector(_file_settings(self.params))

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        CsvConnector.validate(_file_settings(params))

    @classmethod
    def check_location(cls, params: dict[str, Any], roots: list[Path]) -> None:
        CsvConnector.check_location(_file_settings(params), roots)

    def location(self) -> str:
        found = self._files._open
        return found[1] if found else mask(self.params["url"])

    def columns(self, context: RunContext) -> list[Column] | None:
        """The format's columns; None for users, whose custom fields (``field:<name>``) any
        site may have."""
        if self.format.fields:
            return None
        return [Column(name, required=name in self.format.keys, key=name in self.format.keys)
                for name in self.format.columns]

    # --- files: as the csv connector takes them ---------------------------------------

    def units(self, context: RunContext) -> list[Unit]:
        return self._files.units(context)

    def open_unit(self, unit: Unit, context: RunContext) -> None:
        self._files.open_unit(unit, context)

    def close_unit(self, unit: Unit, outcome: UnitOutcome) -> str | None:
        return self._files.close_unit(unit, outcome)

    def close(self) -> None:
        self._files.close()

    def progress(self) -> tuple[int, int] | None:
        raw = self._reading
        if raw is None or raw.closed:
            return None
        return raw.tell(), os.fstat(raw.fileno()).st_size

    # --- reading ----------------------------------------------------------------------

    def read(self, context: RunContext) -> Iterator[Batch]:
        """Yield the records in batches of 1000, each with its element's line under
        ``__line__``; every column of the format is there (empty when the record has no such
        element), and users' custom fields as ``field:<name>``."""
        raw, label = self._files.open_for_reading(context, XmlError)
        self._reading = raw
        with raw:
            batch: Batch = []
            for row in _Records(self.format, label).rows(safe_iterparse(raw, label), context):
                batch.append(row)
                if len(batch) == BATCH_SIZE:
                    yield batch
                    batch = []
            if batch:
                yield batch

    def write_rejects(self, rejected: Mapping[int, str], folder: Path,
                      stem: str) -> Path | None:
        """The rejected records as they were, each after a comment saying why: the reader
        drops comments, so the fixed file imports as it is."""
        files = self._files
        found = files._open or files._local(MemoryContext(file_roots=files._roots))
        if found is None:
            return None
        source, label = found
        target = folder / f"{stem}.xml"
        fmt = self.format
        with open(source, "rb") as raw, open(target, "wb") as out:
            with etree.xmlfile(out, encoding="utf-8") as xf:
                xf.write_declaration()
                with xf.element(fmt.root, version="1"):
                    xf.write("\n")
                    depth = 0
                    for event, element in safe_iterparse(raw, label):
                        depth += 1 if event == "start" else -1
                        if event != "end" or depth != 1:
                            continue
                        line = element.sourceline
                        if line in rejected:
                            why = _NOT_XML.sub("?", f" line {line}: {rejected[line]} ")
                            xf.write("  ", etree.Comment(why.replace("--", "- -")), "\n  ")
                            element.tail = "\n"
                            xf.write(element)
                        element.clear(keep_tail=False)
                        while element.getprevious() is not None:
                            del element.getparent()[0]
            out.write(b"\n")
        return target

    # --- writing ----------------------------------------------------------------------

    def write(self, batches: Iterable[Batch], context: RunContext) -> None:
        """Write the rows as the format's records to a temporary file put in place of the
        target at once (see ``connectors/files.py``). Each record is checked against the XSD
        first: one it would refuse is a row error, and the export goes on without it."""
        transport = self._transport(context.file_roots,
                                    dated(self.params["url"], context.timezone))
        try:
            export(transport, lambda out: self._write_records(out, batches, context), context,
                   XmlError, f"{self.format.name}-{{date:%Y%m%d}}.xml")
        finally:
            transport.close()

    def _transport(self, roots: list[Path], url: str) -> Transport:
        encoding = self.params["encoding"]
        return open_transport(url, transport_options(
            self.params, roots, f"application/xml; charset={encoding}"))

    def _write_records(self, out: IO[bytes], batches: Iterable[Batch],
                       context: RunContext) -> int:
        fmt, checker = self.format, schema(self.format.name)
        known = {*fmt.columns, LINE}
        written = 0
        with etree.xmlfile(out, encoding=self.params["encoding"]) as xf:
            xf.write_declaration()
            with xf.element(fmt.root, version="1"):
                xf.write("\n")
                ordinal = 0
                for batch in batches:
                    for row in batch:
                        ordinal += 1
                        index = row.get(LINE, ordinal)
                        extra = [name for name in row if name not in known
                                 and not (fmt.fields and name.startswith(FIELD))]
                        if extra:
                            raise XmlError(
                                f"row {index} has column {extra[0]!r}, which the "
                                f"{fmt.name} XML format does not have ({_known(fmt)}): map "
                                "the source's columns onto the format's")
                        record = self._record(row, index, context)
                        if record is None:
                            continue
                        wrapper = etree.Element(fmt.root)
                        wrapper.append(record)
                        if not checker.validate(wrapper):
                            column, message = _refusal(checker, fmt)
                            context.row_error(RowError(row_index=index, column=column,
                                                       key_values=_key(row, fmt),
                                                       message=message))
                            continue
                        xf.write("  ", record)
                        written += 1
        out.write(b"\n")  # the writer ends with the root element: the file, with its line
        return written

    def _record(self, row: dict[str, Any], index: int, context: RunContext) -> Any:
        """The row as a record element (indented as it is written); None after a row error
        when a value holds a character XML 1.0 cannot hold."""
        fmt = self.format
        cells: list[tuple[str, str | None, str]] = [(name, None, _text(row.get(name)))
                                                     for name in fmt.columns]
        cells += [("field", name[len(FIELD):], _text(value)) for name, value in row.items()
                  if fmt.fields and name.startswith(FIELD)]
        for tag, attribute, value in cells:
            for text in (value, attribute or ""):
                bad = _NOT_XML.search(text)
                if bad:
                    column = f"{FIELD}{attribute}" if attribute else tag
                    context.row_error(RowError(
                        row_index=index, key_values=_key(row, fmt), column=column,
                        message=f"character U+{ord(bad.group()):04X} cannot be written in XML "
                                "1.0 (a control character): remove it at the source"))
                    return None
        record = etree.Element(fmt.record)
        record.text = "\n    "
        child = None
        for tag, attribute, value in cells:
            child = etree.SubElement(record, tag, name=attribute) if attribute else \
                etree.SubElement(record, tag)
            child.text = value or None
            child.tail = "\n    "
        if child is not None:
            child.tail = "\n  "
        record.tail = "\n"
        return record


class _Records:
    """The rows of one file of format ``fmt``, from ``safe_iterparse``'s events."""

    def __init__(self, fmt: Format, label: str) -> None:
        self.fmt, self.label = fmt, label

    def _fail(self, line: int | None, message: str) -> XmlError:
        return XmlError(f"{self.label} line {line}: {message}")

    def rows(self, events: Iterator[tuple[str, Any]],
             context: RunContext) -> Iterator[dict[str, Any]]:
        fmt = self.fmt
        depth, children = 0, 0
        root: Any = None
        for event, element in events:
            if event == "start":
                depth += 1
                if depth == 1:
                    root = element
                    self._check_root(element)
                elif depth == 2:
                    if element.tag != fmt.record:
                        raise self._fail(element.sourceline, f"unknown element <{element.tag}> "
                                         f"in <{fmt.root}>: it holds <{fmt.record}> elements "
                                         "only")
                    children = 0
                elif depth == 3:
                    children += 1
                    if children > MAX_CHILDREN:
                        raise self._fail(element.sourceline, f"<{fmt.record}> has more than "
                                         f"{MAX_CHILDREN:,} elements: not a {fmt.name} record")
                else:  # refused at once: nothing nested in a value is ever kept in memory
                    raise self._fail(element.sourceline, f"<{element.getparent().tag}> holds "
                                     f"the element <{element.tag}>: a value is text only "
                                     "(escape < as &lt;)")
                continue
            depth -= 1
            if depth == 1:
                while element.getprevious() is not None:  # done with: keep the memory flat
                    self._check_tail(root[0])
                    del root[0]
                row = self._row(element, context)
                if row is not None:
                    yield row
                element.clear(keep_tail=True)
            elif depth == 0:
                if not _blank(element.text):
                    raise self._fail(element.sourceline, f"<{fmt.root}> holds text outside "
                                     f"its <{fmt.record}> elements")
                for record in element:
                    self._check_tail(record)

    def _check_tail(self, record: Any) -> None:
        if not _blank(record.tail):
            raise self._fail(record.sourceline, f"text after this <{self.fmt.record}>, outside "
                             "any record: each value goes in its own element")

    def _check_root(self, element: Any) -> None:
        fmt = self.fmt
        if element.tag != fmt.root:
            shown = f"<{element.tag}>"
            if element.tag.startswith("{"):
                namespace, _, local = element.tag[1:].partition("}")
                shown = f"<{local}> in namespace {namespace!r}"
            raise self._fail(element.sourceline, f"the root element is {shown}, expected "
                             f"<{fmt.root}> (format {fmt.name}, without a namespace): is the "
                             "connection's format right?")
        version = element.get("version")
        if version not in (None, "1"):
            raise self._fail(element.sourceline, f"<{fmt.root} version={version!r}>: this "
                             "iotask reads version 1 of the format")

    def _row(self, record: Any, context: RunContext) -> dict[str, Any] | None:
        fmt, line = self.fmt, record.sourceline
        if not _blank(record.text) or any(not _blank(child.tail) for child in record):
            raise self._fail(line, f"<{fmt.record}> holds text outside its elements: each "
                             "value goes in its own element")
        row: dict[str, Any] = dict.fromkeys(fmt.columns, "")
        seen: set[str] = set()
        for child in record:
            tag, where = child.tag, child.sourceline
            if fmt.fields and tag == "field":
                name = (child.get("name") or "").strip()
                if not name:
                    raise self._fail(where, '<field> needs a name attribute: <field name="Employee '
                                     'number">...</field>')
                column = FIELD + name
                allowed = {"name"}
            elif tag in fmt.columns:
                column, allowed = tag, set()
            else:
                raise self._fail(where, f"unknown element <{tag}> in <{fmt.record}> (known: "
                                 f"{_known(fmt)})")
            unknown = sorted(set(child.attrib) - allowed)
            if unknown:
                raise self._fail(where, f"<{tag}> has attribute {unknown[0]!r}: values are the "
                                 "elements' text, without attributes")
            if column in seen:
                raise self._fail(where, f"<{fmt.record}> has "
                                 f"{'<' + tag + '>' if tag != 'field' else 'field ' + repr(name)}"
                                 " twice")
            seen.add(column)
            row[column] = child.text or ""
        missing = [key for key in fmt.keys if not row[key].strip()]
        if missing:
            context.counts.read += 1
            context.row_error(RowError(
                row_index=line, column=missing[0], key_values=_key(row, fmt),
                message=f"<{fmt.record}> has no <{missing[0]}>: every record needs its "
                        f"{' and '.join(fmt.keys)}"))
            return None
        row[LINE] = line
        return row


def _file_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The settings the csv connector takes files with: the URL and the transport's."""
    names = {"url", *(s.name for s in TRANSPORT_SETTINGS), *(s.name for s in INTAKE_SETTINGS)}
    return {key: value for key, value in params.items() if key in names}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def _known(fmt: Format) -> str:
    return ", ".join(fmt.columns) + (", field" if fmt.fields else "")


def _key(row: dict[str, Any], fmt: Format) -> str:
    return ", ".join(f"{key}={_text(row.get(key))}" for key in fmt.keys)


def _refusal(checker: etree.XMLSchema, fmt: Format) -> tuple[str | None, str]:
    """The column the XSD refuses in a record (when it names one), and its complaint."""
    error = checker.error_log.last_error
    message = error.message if error is not None else "the record does not fit the format"
    named = _ELEMENT.match(message)
    return (named.group(1) if named else None,
            f"not valid in the {fmt.name} XML format ({fmt.schema_file}): {message}")


CONNECTOR = XmlConnector
