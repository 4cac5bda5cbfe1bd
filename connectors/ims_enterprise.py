"""``ims-enterprise``: an IMS Enterprise 1.1 XML file (what Banner, Colleague, PowerSchool
deliver) read as rows for the ``forma-lms`` destination.

Each ``<person>`` becomes a ``user`` row, each ``<group>`` a ``course`` row (or an ``orgunit``
row with ``groups=orgchart``), each ``<member>`` of a ``<membership>`` an ``enrollment`` row
(a ``placement`` of the user in the unit with ``groups=orgchart``). Every row has ``record``
(that kind), ``action`` (``upsert`` for recstatus 1, 2 or none, ``delete`` for 3 and for a role
whose status is 0) and the forma-* columns of its kind; ``__line__`` is the element's line.
Rows come persons first, then groups, then memberships, whatever the file's order: the groups
and memberships wait in temporary files, so memory stays flat.

The XML is read by ``SafeXmlReader``: lxml ``iterparse`` streaming the file, elements cleared
as they are done, no network, no DTD loaded, no entity expanded; a DOCTYPE with an internal
subset (where entities are declared: billion laughs, external entities) is refused before the
parser starts. A malformed file fails with its line and column.

Keys: a person's ``sourcedid/id`` is its forma ``userid`` (memberships name persons by it), or
with ``userid=userid`` its ``<userid>`` (the members are then translated through a temporary
SQLite file of sourcedid: userid); a group's ``sourcedid/id`` is its course or unit ``code``.
Vendors' habits tolerated: no namespace, a default or prefixed namespace, ISO-8859-1 or UTF-8
(from the XML declaration), a file on one line, comments, ids padded with spaces, ``idtype`` as
an attribute or an element, timeframe dates as YYYY-MM-DD, YYYYMMDD, with a time or a zone (the
zone is dropped: forma stores local time), a missing ``recstatus``.
"""

from __future__ import annotations

import codecs
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from iotask.connectors import forma
from iotask.connectors.context import Batch, Column, Row, RowError, RunContext
from iotask.connectors.csv import CsvConnector
from iotask.connectors.errors import ConnectorError, SettingsError
from iotask.connectors.files import transport_options
from iotask.connectors.masking import mask
from iotask.connectors.settings import Setting
from iotask.connectors.spool import BATCH_SIZE, Spool
from iotask.connectors.transports import TransportOptions
from lxml import etree

LINE = "__line__"
GROUPS = ("courses", "orgchart")
USERIDS = ("sourcedid", "userid")
# IMS Enterprise 1.1 role types and the forma course level each becomes
ROLES = {"01": "student", "02": "teacher", "03": "teacher", "04": "student", "05": "admin",
         "06": "mentor", "07": "admin", "08": "tutor"}
ROLE_NAMES = {"01": "Learner", "02": "Instructor", "03": "Content Developer", "04": "Member",
              "05": "Manager", "06": "Mentor", "07": "Administrator", "08": "Teaching Assistant"}
USER_COLUMNS = ("userid", "firstname", "lastname", "email")
COURSE_COLUMNS = ("code", "name", "description", "date_begin", "date_end")
ORGUNIT_COLUMNS = ("code", "parent_code", "name")
ENROLLMENT_COLUMNS = ("userid", "code", "level", "date_subscription")
COLUMNS = ("record", "action", *dict.fromkeys(
    USER_COLUMNS + COURSE_COLUMNS + ORGUNIT_COLUMNS + ENROLLMENT_COLUMNS))
TRANSPORT_SETTINGS = ("username", "password", "private_key", "known_hosts", "ca_bundle",
                      "allow_http", "auth_header", "timeout", "retries", "stable_seconds",
                      "done_marker", "pattern", "quarantine", "consume")
PROLOG_LIMIT = 1024 * 1024  # bytes before the root element: declaration, comments, DOCTYPE
_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})(?:[T ](\d{2}):?(\d{2})(?::?(\d{2})(?:[.,]\d+)?)?)?"
                   r"\s*(?:Z|[+-]\d{2}(?::?\d{2})?)?")


class ImsError(ConnectorError):
    """The file cannot be read as IMS Enterprise XML; the message names the file, line and
    column."""


# --- the safe streaming XML reader ----------------------------------------------------------

class SafeXmlReader:
    """Elements of an XML file streamed with constant memory and without any access outside
    the file: no network, no DTD, no entity expanded, a DOCTYPE with an internal subset refused
    before parsing. ``elements(names)`` yields each element whose local name (namespace
    ignored) is in ``names`` at its end; the caller reads it, then it is cleared."""

    def __init__(self, raw: IO[bytes], label: str) -> None:
        self.raw, self.label = raw, label

    def elements(self, names: set[str]) -> Iterator[tuple[str, Any]]:
        self._check_prolog()
        parser = etree.iterparse(
            self.raw, events=("end",), resolve_entities=False, no_network=True,
            load_dtd=False, dtd_validation=False, attribute_defaults=False,
            huge_tree=False, remove_comments=True, remove_pis=True, recover=False)
        try:
            for _, element in parser:
                name = local(element.tag)
                if name in names:
                    yield name, element
                    _release(element, name)
        except etree.XMLSyntaxError as exc:
            line, column = exc.position if exc.position else (exc.lineno, 0)
            message = str(exc.msg or exc).split(", line ")[0]
            raise ImsError(f"{self.label} line {line} column {column}: not well-formed XML: "
                           f"{message}; nothing was applied") from None

    def _check_prolog(self) -> None:
        """Refuse a DOCTYPE with an internal subset, read from the bytes before the root
        element (decoded as far as markup needs: ASCII, or UTF-16 by its byte order)."""
        start = self.raw.tell()
        head = self.raw.read(PROLOG_LIMIT)
        self.raw.seek(start)
        text = _prolog_text(head)
        pos = 0
        while True:
            while pos < len(text) and text[pos] in " \t\r\n\ufeff":
                pos += 1
            if text.startswith("<?", pos):
                end = _after(text, "?>", pos)
            elif text.startswith("<!--", pos):
                end = _after(text, "-->", pos)
            elif text[pos:pos + 9].upper() == "<!DOCTYPE":
                close, subset = text.find(">", pos), text.find("[", pos)
                if subset != -1 and (close == -1 or subset < close):
                    line = text.count("\n", 0, pos) + 1
                    raise ImsError(
                        f"{self.label} line {line}: the DOCTYPE declares its own entities or "
                        "elements (an internal subset [...]), which is refused: entities can "
                        "expand without end or read other files; send the file without them "
                        "(nothing was applied, and no entity was read)")
                end = close if close == -1 else close + 1
            else:
                return  # the root element (or something the parser will name)
            if end == -1:
                if len(head) >= PROLOG_LIMIT:
                    raise ImsError(f"{self.label}: no root element in the first "
                                   f"{PROLOG_LIMIT // 1024} KB (comments or declarations "
                                   "only): is this an IMS Enterprise file?")
                return  # unterminated: the parser names the line and column
            pos = end


def _after(text: str, end: str, start: int) -> int:
    """Where the text after the next ``end`` from ``start`` begins; -1 when there is none."""
    found = text.find(end, start)
    return -1 if found == -1 else found + len(end)


def _prolog_text(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return head.decode("utf-32", errors="replace")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="replace")
    if head.startswith(b"<\x00"):
        return head.decode("utf-16-le", errors="replace")
    if head.startswith(b"\x00<"):
        return head.decode("utf-16-be", errors="replace")
    return head.decode("latin-1")


def local(tag: Any) -> str:
    """An element's name without its namespace; '' for what is not an element."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _release(element: Any, name: str) -> None:
    """Free a handled element: emptied, and the handled siblings before it dropped. A
    ``member``'s earlier siblings are its membership's ``sourcedid``, still needed: only the
    members before it go."""
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is None:
        return
    previous = element.getprevious()
    while previous is not None and (name != "member" or local(previous.tag) == "member"):
        parent.remove(previous)
        previous = element.getprevious()


def child(element: Any, name: str) -> Any:
    for item in element:
        if local(item.tag) == name:
            return item
    return None


def text_at(element: Any, *path: str) -> str:
    """The stripped text of the first element at ``path`` below ``element``; '' when none."""
    for name in path:
        if element is None:
            return ""
        element = child(element, name)
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def ims_date(text: str) -> str:
    """A timeframe date as forma's columns take it: YYYY-MM-DD, or YYYY-MM-DD HH:MM:SS."""
    found = _DATE.fullmatch(text.strip())
    if not found:
        raise ValueError(f"{text[:40]!r} is not a date (YYYY-MM-DD, YYYYMMDD, with a time or "
                         "not)")
    year, month, day, hour, minute, second = found.groups()
    if hour is None:
        return f"{year}-{month}-{day}"
    return f"{year}-{month}-{day} {hour}:{minute}:{second or '00'}"


# --- the connector -----------------------------------------------------------------------

class _Bad(Exception):
    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column, self.message = column, message


class ImsEnterpriseConnector(CsvConnector):
    """The csv connector's transports, units and consumption (file, folder, ftp:, sftp:,
    https:), with an IMS Enterprise reader instead of the CSV one."""

    type_name = "ims-enterprise"
    description = ("IMS Enterprise 1.1 XML (persons, groups, memberships) for the forma-lms "
                   "destination")
    can_read = True
    can_write = False
    settings = (  # type: ignore[assignment]  # csv's settings are a tuple of 23
        Setting("url", "url", required=True,
                help="path or file:, ftp:, ftps:, sftp:, https: URL of the XML file; ending in "
                     "/ imports every file in that folder"),
        *(s for name in TRANSPORT_SETTINGS for s in CsvConnector.settings if s.name == name),
        Setting("groups", choices=GROUPS, default="courses",
                help="what a <group> becomes: courses (the default) or orgchart (org units; "
                     "memberships then place users in them)"),
        Setting("userid", choices=USERIDS, default="sourcedid",
                help="what becomes a person's forma userid (login): sourcedid (its "
                     "<sourcedid><id>, the default) or userid (its <userid>, else its "
                     "sourcedid; memberships still name persons by sourcedid, so a person "
                     "must then be in the same file as its memberships)"),
        Setting("roles", "list",
                help="IMS role type to forma course level, over the defaults "
                     + ", ".join(f"{code} {ROLE_NAMES[code]}={level}"
                                 for code, level in ROLES.items())
                     + "; e.g. roles=01=student,03=admin"),
    )

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        # the transport settings follow the csv connector's rules
        CsvConnector.check_settings({"delimiter": ",", "quotechar": '"', "header": True,
                                     **params})
        _roles(params.get("roles"))

    def location(self) -> str:
        return self._open[1] if self._open else mask(self.params["url"])

    def _options(self, roots: list[Path]) -> TransportOptions:
        return transport_options(self.params, roots, "application/xml")

    def columns(self, context: RunContext) -> list[Column] | None:
        return [Column(name) for name in COLUMNS]

    def write_rejects(self, rejected: Any, folder: Path, stem: str) -> Path | None:
        return None

    def read(self, context: RunContext) -> Iterator[Batch]:
        """Persons as they come; groups and memberships spooled, then yielded in that order."""
        raw, label = self.open_for_reading(context, ImsError)
        self._reading = raw
        logins = _Logins() if self.params.get("userid") == "userid" else None
        reading = _Reading(context, _roles(self.params.get("roles")),
                           self.params.get("groups") or "courses", logins)
        spool = Spool(["group", "membership"])
        try:
            with raw:
                batch: Batch = []
                reader = SafeXmlReader(raw, label)
                # a membership is named only to be freed once its members are read
                for name, element in reader.elements({"person", "group", "member",
                                                      "membership"}):
                    if name == "person":
                        row = reading.person(element)
                        if row is not None:
                            batch.append(row)
                            if len(batch) >= BATCH_SIZE:
                                yield batch
                                batch = []
                    elif name == "group":
                        for row in reading.group(element):
                            spool.put("group", row)
                    elif name == "member":
                        for row in reading.member(element):
                            spool.put("membership", row)
                if batch:
                    yield batch
            yield from spool.batches("group")
            for part in spool.batches("membership"):
                yield logins.translate(part) if logins else part
        finally:
            spool.close()
            if logins:
                logins.close()


class _Reading:
    """One file's elements turned into rows; a bad element is a row error naming its line."""

    def __init__(self, context: RunContext, roles: dict[str, str], groups: str,
                 logins: _Logins | None) -> None:
        self.context, self.roles, self.groups = context, roles, groups
        self.logins = logins

    def _reject(self, line: int, key: str | None, bad: _Bad) -> None:
        self.context.counts.read += 1
        self.context.row_error(RowError(row_index=line, key_values=key, column=bad.column,
                                        message=bad.message))

    def person(self, element: Any) -> Row | None:
        line = element.sourceline
        userid = text_at(element, "sourcedid", "id")
        try:
            if not userid:
                raise _Bad("userid", "the <person> has no <sourcedid><id>: every person "
                                     "needs one")
            action = _action(element.get("recstatus"))
        except _Bad as bad:
            self._reject(line, f"userid={userid}" if userid else None, bad)
            return None
        if self.logins is not None:
            login = text_at(element, "userid") or userid
            self.logins.add(userid, login)
            userid = login
        first = text_at(element, "name", "n", "given")
        last = text_at(element, "name", "n", "family")
        if not first and not last:
            first, _, last = text_at(element, "name", "fn").rpartition(" ")
        return {"record": "user", "action": action, "userid": userid, "firstname": first,
                "lastname": last, "email": text_at(element, "email"), LINE: line}

    def group(self, element: Any) -> list[Row]:
        line = element.sourceline
        code = text_at(element, "sourcedid", "id")
        short = text_at(element, "description", "short")
        name = text_at(element, "description", "long") or short
        try:
            if not code:
                raise _Bad("code", "the <group> has no <sourcedid><id>: every group needs one")
            action = _action(element.get("recstatus"))
            if self.groups == "orgchart":
                parent = ""
                for item in element:
                    if local(item.tag) == "relationship" and item.get("relation", "1") == "1":
                        parent = text_at(item, "sourcedid", "id")
                return [{"record": "orgunit", "action": action, "code": code,
                         "parent_code": parent, "name": short or name, LINE: line}]
            dates = {}
            for column, part in (("date_begin", "begin"), ("date_end", "end")):
                when = text_at(element, "timeframe", part)
                try:
                    dates[column] = ims_date(when) if when else ""
                except ValueError as exc:
                    raise _Bad(column, str(exc)) from None
        except _Bad as bad:
            self._reject(line, f"code={code}" if code else None, bad)
            return []
        return [{"record": "course", "action": action, "code": code, "name": name,
                 "description": text_at(element, "description", "full"), **dates,
                 LINE: line}]

    def member(self, element: Any) -> list[Row]:
        line = element.sourceline
        membership = element.getparent()
        code = text_at(membership, "sourcedid", "id") if membership is not None else ""
        userid = text_at(element, "sourcedid", "id")
        key = f"userid={userid} code={code}"
        sourcedid = child(element, "sourcedid")
        idtype = (text_at(element, "idtype") or element.get("idtype")
                  or (sourcedid.get("idtype") if sourcedid is not None else None) or "1")
        try:
            if not code:
                raise _Bad("code", "the <membership> has no <sourcedid><id> naming its group")
            if not userid:
                raise _Bad("userid", "the <member> has no <sourcedid><id> naming its person")
            if idtype.strip() != "1":
                raise _Bad(None, f"idtype {idtype.strip()!r}: only persons (idtype 1) are "
                                 "imported as members, not groups in groups")
            roles = [item for item in element if local(item.tag) == "role"]
            rows: list[Row] = []
            for role in roles or [None]:
                rows.append(self._membership(role, element, userid, code, line))
        except _Bad as bad:
            self._reject(line, key, bad)
            return []
        return rows

    def _membership(self, role: Any, member: Any, userid: str, code: str, line: int) -> Row:
        status = member.get("recstatus")
        if role is None:
            roletype, level, begin = "01", self.roles["01"], ""
        else:
            roletype = (role.get("roletype") or text_at(role, "roletype") or "01").strip()
            if roletype not in self.roles:
                raise _Bad("level", f"role type {roletype!r} is not an IMS role (01-08) nor "
                                    "one of setting 'roles'")
            level = self.roles[roletype]
            status = role.get("recstatus") or status
            begin = text_at(role, "timeframe", "begin")
        action = _action(status)
        if role is not None and text_at(role, "status") == "0":
            action = "delete"  # an inactive role: the enrollment goes as a delete would
        if self.groups == "orgchart":
            return {"record": "placement", "action": action, "userid": userid, "code": code,
                    LINE: line}
        try:
            subscribed = ims_date(begin) if begin else ""
        except ValueError as exc:
            raise _Bad("date_subscription", str(exc)) from None
        return {"record": "enrollment", "action": action, "userid": userid, "code": code,
                "level": level, "date_subscription": subscribed, LINE: line}


class _Logins:
    """Persons' sourcedid: userid, in a temporary SQLite file (flat memory), to name the
    members of memberships by their logins."""

    def __init__(self) -> None:
        self._file = tempfile.NamedTemporaryFile(prefix="iotask-logins-", suffix=".db")
        self._db = sqlite3.connect(self._file.name)
        self._db.execute("CREATE TABLE login (sourcedid TEXT PRIMARY KEY, userid TEXT)")

    def add(self, sourcedid: str, userid: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO login VALUES (?, ?)", (sourcedid, userid))

    def translate(self, batch: Batch) -> Batch:
        wanted = list({row["userid"] for row in batch if row.get("userid")})
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            found.update(self._db.execute(
                f"SELECT sourcedid, userid FROM login WHERE sourcedid IN "
                f"({', '.join('?' * len(part))})", part).fetchall())
        for row in batch:
            row["userid"] = found.get(row.get("userid") or "", row.get("userid"))
        return batch

    def close(self) -> None:
        self._db.close()
        self._file.close()


def _action(recstatus: str | None) -> str:
    value = (recstatus or "").strip()
    if value in ("", "1", "2"):
        return "upsert"
    if value == "3":
        return "delete"
    raise _Bad("action", f"recstatus {value[:20]!r} is not 1 (add), 2 (update) or 3 (delete)")


def _roles(items: list[str] | None) -> dict[str, str]:
    """The role map: the defaults with setting 'roles' (``01=student``) over them."""
    roles = dict(ROLES)
    for item in items or []:
        code, sep, level = item.partition("=")
        code = code.strip().zfill(2)
        if not sep or not code.isdigit():
            raise SettingsError(f"setting 'roles': {item!r} is not ROLETYPE=LEVEL, e.g. "
                                "01=student")
        try:
            roles[code] = forma.LEVELS[forma.code_of(level, forma.LEVELS, "course level")]
        except ValueError as exc:
            raise SettingsError(f"setting 'roles': {exc}") from None
    return roles


CONNECTOR = ImsEnterpriseConnector
