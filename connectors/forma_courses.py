"""``forma-courses``: the courses of a forma.lms / Docebo site (``learning_course``), read and
written by their ``code``.

A new course gets its 8 level groups (``/lms/course/<id>/group/alluser`` and
``/lms/course/<id>/subscribed/<1..7>``) and remembers the connection that created it in
``imported_from_connection``. As in Docebo's connector, a course that another connection owns,
or one made in the LMS (no owner), is left alone: counted as unchanged, and the run's notes say
how many were skipped. A sync "removes" the source's own courses that its file no longer has:
``remove=status0`` (the default) puts them back in preparation (status 0), ``remove=delete``
deletes them with their level groups, the groups' memberships and their enrollments. A course
put back in preparation that comes back in the file keeps status 0 unless the file gives its
status (an empty cell never changes a value).
"""

from __future__ import annotations

import logging
import math
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from iotask.connectors import forma
from iotask.connectors.context import SAMPLE_KEYS, Batch, ChangeSet, Column, RowError, RunContext
from iotask.connectors.settings import FALSE_WORDS, TRUE_WORDS, Setting
from iotask.connectors.sql import LINE
from iotask.connectors.staging import LINE_COLUMN, Stage
from sqlalchemy.dialects import mysql

log = logging.getLogger("iotask.forma")

BATCH_SIZE = 1000
CHUNK = 500  # ids per IN (...) list
LEVEL_CHUNK = 2_000  # courses whose level groups are made at a time (flat memory)
REMOVALS = ("status0", "delete")
LEVEL_GROUP = "/lms/course/{id}/subscribed/{level}"
ALLUSER_GROUP = "/lms/course/{id}/group/alluser"
TEXT_BYTES = 65535  # a MariaDB TEXT column; the same bound elsewhere, for the same data
MAX_INT = 2**31 - 1


# --- values ---------------------------------------------------------------------------------
# Each converter takes a cell (text from a file, or a typed value from a SQL source) and gives
# the value to stage; None is "not given" (an empty cell never blanks a value). A bad value
# raises ValueError with a message that says what is wrong and what would do.

_CONTROLS = {chr(c) for c in range(32)} | {chr(127)} | {chr(c) for c in range(0x80, 0xA0)}
_LINE_BREAKS = {"\t", "\n", "\r"}


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def text_converter(length: int | None, multiline: bool = False, narrow: bool = False,
                   strip: bool = True) -> Callable[[Any], str | None]:
    """Text of at most ``length`` characters (TEXT columns: 65535 UTF-8 bytes), without control
    characters (tabs and line breaks allowed in ``multiline`` text); ``narrow``: the site's
    3-byte utf8 column cannot hold characters beyond U+FFFF (emoji)."""
    refused = _CONTROLS - _LINE_BREAKS if multiline else _CONTROLS

    def convert(value: Any) -> str | None:
        if blank(value):
            return None
        text = value if isinstance(value, str) else str(value)
        if strip:
            text = text.strip()
        bad = next((ch for ch in text if ch in refused), None)
        if bad is not None:
            raise ValueError(f"the value holds the control character U+{ord(bad):04X} "
                             f"at position {text.index(bad) + 1}: remove it")
        if narrow:
            wide = next((ch for ch in text if ord(ch) > 0xFFFF), None)
            if wide is not None:
                raise ValueError(f"the value holds {unicodedata.name(wide, 'a character')} "
                                 f"(U+{ord(wide):X}), which the site's 3-byte utf8 column "
                                 "cannot store: remove it")
        if length is not None and len(text) > length:
            raise ValueError(f"the value is {len(text)} characters long, the column holds "
                             f"{length}: shorten it")
        if length is None and len(text.encode("utf-8")) > TEXT_BYTES:
            raise ValueError(f"the value is {len(text.encode('utf-8'))} bytes long, the column "
                             f"holds {TEXT_BYTES}: shorten it")
        return text

    return convert


def integer(value: Any, low: int = 0, high: int = MAX_INT, what: str = "a whole number"
            ) -> int | None:
    """A whole number between ``low`` and ``high``; "85.0" is 85, "85.5", NaN or 1e999 are
    refused."""
    if blank(value):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not {what}")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        try:
            parsed = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{text!r} is not {what}") from None
        if not parsed.is_finite() or parsed != parsed.to_integral_value() \
                or abs(parsed) > 10**12:
            raise ValueError(f"{text!r} is not {what}")
        number = int(parsed)
    if not low <= number <= high:
        raise ValueError(f"{number} is out of range: {what} from {low} to {high}")
    return number


def number(value: Any, what: str = "a number") -> float | None:
    """A finite number of at least 0 (NaN, infinities and 1e999 are refused)."""
    if blank(value):
        return None
    text = str(value).strip()
    try:
        parsed = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not {what}") from None
    if not parsed.is_finite() or abs(parsed) > Decimal(10) ** 15:
        raise ValueError(f"{text!r} is not {what}")
    if parsed < 0:
        raise ValueError(f"{text!r} is negative: {what} of 0 or more")
    result = float(parsed)
    if not math.isfinite(result):
        raise ValueError(f"{text!r} is not {what}")
    return result


def flag(value: Any) -> int | None:
    """1/0, true/false, yes/no, on/off."""
    if blank(value):
        return None
    if isinstance(value, bool):
        return int(value)
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return 1
    if word in FALSE_WORDS:
        return 0
    raise ValueError(f"{value!r} is not a yes/no value (1/0, true/false, yes/no)")


def coded(codes: dict[int, str], what: str) -> Callable[[Any], int | None]:
    def convert(value: Any) -> int | None:
        if blank(value):
            return None
        return forma.code_of(str(value), codes, what)
    return convert


def a_date(value: Any) -> date | None:
    """A date; empty is not given; a zero date is handled by the caller (it clears)."""
    if blank(value):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return forma.parse_date(str(value))


def a_datetime(value: Any) -> datetime | None:
    """A date and time, or a date (at 00:00:00)."""
    if blank(value):
        return None
    if isinstance(value, datetime):
        found = value
    elif isinstance(value, date):
        found = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        found_or_none = forma.parse_datetime(text) if len(text) > 10 else None
        if found_or_none is None:
            day = forma.parse_date(text)
            if day is None:
                return None
            found_or_none = datetime(day.year, day.month, day.day)
        found = found_or_none
    if found.tzinfo is not None:
        raise ValueError(f"{value!r} has a time zone offset: write the site's local time")
    if not 1900 <= found.year <= 9999:
        raise ValueError(f"{value!r} is out of range (years 1900 to 9999)")
    return found.replace(microsecond=0)


def is_zero(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith("0000-00-00")


def difficulty(value: Any) -> str | None:
    if blank(value):
        return None
    word = str(value).strip().lower().replace(" ", "").replace("_", "").replace("-", "")
    if word in forma.DIFFICULTIES:
        return word
    raise ValueError(f"{value!r} is not a difficulty (one of {', '.join(forma.DIFFICULTIES)})")


def now_in(context: RunContext) -> datetime:
    """Now in the run's zone, naive: forma stores local times."""
    return datetime.now(context.timezone).replace(tzinfo=None, microsecond=0)


def key_text(values: dict[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{name}={values.get(name) if values.get(name) is not None else ''}"
                     for name in keys)


def narrow_text(table: sa.Table, site: forma.Site) -> bool:
    """Whether the site's table is 3-byte utf8 (forma 3.x on MariaDB)."""
    if site.backend != "mysql":
        return False
    charset = str(table.dialect_options["mysql"].get("default charset") or "").lower()
    return charset in ("utf8", "utf8mb3")


def check_columns(row: dict[str, Any], known: Sequence[str], type_name: str) -> None:
    unknown = [name for name in row if name != LINE and name not in known]
    if unknown:
        raise forma.FormaError(
            f"column {unknown[0]!r} is not a {type_name} column (known: {', '.join(known)}): "
            "map it to one of those or leave it out; nothing was applied")


def check_key(context: RunContext, keys: Sequence[str], type_name: str) -> None:
    if context.key and set(context.key) != set(keys):
        raise forma.FormaError(f"a {type_name} destination matches records on "
                               f"{' and '.join(keys)}, not {', '.join(context.key)}: "
                               "fix the map's key")


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


# --- course look-ups the enrollments connector shares ---------------------------------------

def level_group_names(course: int) -> list[str]:
    return [ALLUSER_GROUP.format(id=course),
            *(LEVEL_GROUP.format(id=course, level=level) for level in forma.LEVELS)]


def ensure_level_groups(site: forma.Site, courses: Iterable[int]) -> dict[str, int]:
    """The 8 level groups of each course, created when missing (ids from core_st in bulk), the
    level groups members of the course's alluser group as forma makes them; groupid: idst."""
    ids = sorted(set(courses))
    if not ids:
        return {}
    found = site.group_ids(name for course in ids for name in level_group_names(course))
    missing = [(course, name) for course in ids for name in level_group_names(course)
               if name not in found]
    if not missing:
        return found
    made = dict(zip((name for _course, name in missing), site.allocate(len(missing)),
                    strict=True))
    site.insert_many(site.table("core_group"), [
        {"idst": idst, "groupid": name, "hidden": "true", "type": "course",
         "description": "all the user of a course" if name.endswith("/alluser")
         else "for course subscription", "show_on_platform": ""}
        for name, idst in made.items()], "creating the courses' level groups")
    found.update(made)
    pairs = [{"idst": found[ALLUSER_GROUP.format(id=course)],
              "idstMember": found[LEVEL_GROUP.format(id=course, level=level)], "filter": ""}
             for course in sorted({course for course, _name in missing})
             for level in forma.LEVELS
             if ALLUSER_GROUP.format(id=course) in made
             or LEVEL_GROUP.format(id=course, level=level) in made]
    site.insert_many(site.table("core_group_members"), pairs,
                "adding the level groups to their course's alluser group")
    return found


def course_index(site: forma.Site) -> sa.Table:
    """A temporary copy of the site's (code, idCourse, owner), indexed by code: forma 3.x has
    no index on learning_course.code, and joining the staged rows to it would compare every
    row with every course. The index is inline (CREATE INDEX would commit on MySQL)."""
    course = site.table("learning_course")
    index = sa.Table(f"iotask_codes_{secrets.token_hex(4)}", sa.MetaData(),
                     sa.Column("code", sa.String(255), nullable=False),
                     sa.Column("idCourse", sa.Integer, nullable=False, autoincrement=False),
                     sa.Column("owner", sa.String(255)),
                     sa.PrimaryKeyConstraint("code", "idCourse"), prefixes=["TEMPORARY"])
    site.execute(sa.schema.CreateTable(index), "creating the course codes table")
    site.execute(sa.insert(index).from_select(
        ["code", "idCourse", "owner"],
        sa.select(course.c.code, course.c.idCourse, course.c.imported_from_connection)
        .where(course.c.code != "")), "listing the course codes")
    if site.backend == "postgresql":  # never auto-analysed: the plans need the statistics
        site.execute(sa.text(f'ANALYZE "{index.name}"'), "analysing the course codes")
    return index


def ambiguous_codes(site: forma.Site, index: sa.Table) -> dict[str, list[int]]:
    """The codes that more than one course of the site holds: code: ids."""
    codes = [code for (code,) in site.execute(
        sa.select(index.c.code).group_by(index.c.code).having(sa.func.count() > 1),
        "finding course codes held twice")]
    found: dict[str, list[int]] = {}
    for part in chunks(codes):
        rows = site.execute(sa.select(index.c.code, index.c.idCourse)
                            .where(index.c.code.in_(list(part))).order_by(index.c.idCourse),
                            "listing course codes held twice")
        for code, course_id in rows:
            found.setdefault(code, []).append(int(course_id))
    return found


def held_twice(twice: dict[str, list[int]]) -> Callable[[str], str]:
    """The row error for a code that several courses hold (``ambiguous_codes``)."""
    folded = {code.casefold(): ids for code, ids in twice.items()}

    def message(code: str) -> str:
        ids = twice.get(code) or folded.get(code.casefold(), [])
        return (f"course code {code!r} is held by {len(ids)} courses in the site (idCourse "
                f"{', '.join(map(str, ids))}): give each its own code in the LMS, then import "
                "again")
    return message


# --- the connector --------------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One column of the file: how it is converted and which learning_course column it fills."""

    name: str
    target: str
    kind: str  # text, multiline, int, number, flag, date, status, difficult, prize
    key: bool = False
    required: bool = False


FIELDS = (
    Field("code", "code", "text", key=True),
    Field("name", "name", "text"),
    Field("description", "description", "multiline"),
    Field("box_description", "box_description", "multiline"),
    Field("lang_code", "lang_code", "text"),
    Field("status", "status", "status"),
    Field("course_type", "course_type", "text"),
    Field("date_begin", "date_begin", "date"),
    Field("date_end", "date_end", "date"),
    Field("difficult", "difficult", "difficult"),
    Field("max_num_subscribe", "max_num_subscribe", "int"),
    Field("min_num_subscribe", "min_num_subscribe", "int"),
    Field("valid_time", "valid_time", "int"),
    Field("subscribe_method", "subscribe_method", "method"),
    Field("selling", "selling", "flag"),
    Field("prize", "prize", "prize"),
    Field("credits", "credits", "number"),
)
NAMES = [f.name for f in FIELDS]
DATA = [f for f in FIELDS if not f.key]
DATES = [f.name for f in FIELDS if f.kind == "date"]
# what a new course gets for a column the file leaves empty (forma's own defaults)
DEFAULTS: dict[str, Any] = {"name": "", "description": "", "box_description": "",
                            "lang_code": "", "status": 0, "course_type": "elearning",
                            "difficult": "medium", "max_num_subscribe": 0,
                            "min_num_subscribe": 0, "valid_time": 0, "subscribe_method": 0,
                            "selling": 0, "prize": "", "credits": 0.0}
STAGE_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "text": sa.String(255), "multiline": sa.Text(), "int": sa.Integer(), "number": sa.Float(),
    "flag": sa.SmallInteger(), "date": sa.Date(), "status": sa.Integer(),
    "difficult": sa.String(20), "method": sa.SmallInteger(), "prize": sa.String(255)}
CLEAR = "clear_"  # staged 1 when a date cell holds a zero date: the course gets no date
OK = "iotask_ok"  # 0: a rejected row, staged only so that a sync does not remove its course
ID = "iotask_id"  # the course the code names, once looked up
OWNER = "iotask_owner"  # ... and its imported_from_connection


def prize(value: Any) -> str | None:
    if blank(value):
        return None
    text = str(value).strip()
    number(text, "a price")
    if len(text) > 255:
        raise ValueError(f"the value is {len(text)} characters long, the column holds 255")
    return text


class FormaCoursesConnector(forma.FormaConnector):
    type_name = "forma-courses"
    description = "The courses of a forma.lms / Docebo site (learning_course), by code"
    can_read = True
    can_write = True
    settings = forma.SETTINGS + (
        Setting("remove", choices=REMOVALS, default="status0",
                help="what sync does with the source's own courses its file no longer has: "
                     "status0 (default: back to preparation) or delete (the course, its level "
                     "groups and its enrollments)"),
    )

    def location(self) -> str:
        return "the forma courses (learning_course)"

    def columns(self, context: RunContext) -> list[Column] | None:
        """The columns a file may have; only ``code`` is required (``name`` too for a new
        course, which a row error says). Defaults: what a new course gets."""
        kinds = {"text": "VARCHAR", "multiline": "TEXT", "int": "INTEGER", "number": "NUMBER",
                 "flag": "YES/NO", "date": "DATE", "status": "STATUS (number or word)",
                 "difficult": "DIFFICULTY", "method": "0/1/2", "prize": "NUMBER"}
        return [Column(f.name, required=f.key, key=f.key, type=kinds[f.kind],
                       default=None if f.key or f.name == "name" or f.kind == "date"
                       else _default_text(f))
                for f in FIELDS]

    # --- reading ----------------------------------------------------------------------

    def read(self, context: RunContext) -> Iterator[Batch]:
        """Every course, by code, with the columns write() takes: status and words as words,
        dates as YYYY-MM-DD (empty: no date)."""
        url = self.database_url(context)
        with forma.connect(url, write=False) as conn:
            site = forma.Site(conn, self.params.get("prefix") or "", url)
            course = site.table("learning_course")
            query = (sa.select(*(course.c[f.target] for f in FIELDS))
                     .order_by(course.c.code, course.c.idCourse))
            result = conn.execution_options(stream_results=True, yield_per=BATCH_SIZE
                                            ).execute(query)
            for part in result.partitions(BATCH_SIZE):
                yield [{f.name: shown(f, value) for f, value in zip(FIELDS, row, strict=True)}
                       for row in part]

    # --- writing ----------------------------------------------------------------------

    def check_write(self, context: RunContext) -> None:
        check_key(context, ["code"], self.type_name)
        if context.import_type == "sync" and not context.owner:
            raise forma.FormaError("import type sync needs the name of the source connection "
                                   "to know which courses it owns")

    def write_in(self, site: forma.Site, batches: Iterable[Batch],
                 context: RunContext) -> forma.Step:
        self.check_write(context)
        removal = self.params.get("remove") or "status0"
        sync = context.import_type == "sync"
        owner = context.owner
        course = site.table("learning_course")
        converters = self._converters(course, site)
        stage = self._stage(site)
        rejected: set[int] = set()  # lines already reported
        for batch in batches:
            stage.add(list(self._convert(batch, converters, context, rejected)))
        stage.finish()
        st = stage.table
        for line, key, first in stage.duplicates():
            if line in rejected:
                continue
            context.row_error(RowError(row_index=line, key_values=f"code={key[0]}",
                                       column="code",
                                       message=f"duplicate key code={key[0]}: also on line "
                                               f"{first}; keep one row per course"))
        index = course_index(site)
        twice = ambiguous_codes(site, index)
        held = held_twice(twice)
        self._reject(site, st, st.c.code.in_(list(twice)) if twice else sa.false(),
                     context, "code", lambda code, _name: held(code))
        # the course each code names, and who owns it
        site.execute(sa.update(st).where(st.c.code == index.c.code, st.c[OK] == 1)
                     .values({ID: index.c.idCourse, OWNER: index.c.owner}),
                     "looking up the courses")
        self._reject(site, st, sa.and_(st.c[ID].is_(None), st.c.name.is_(None)), context,
                     "name", lambda code, _name: (
                         f"course {code!r} is new and has no name: a new course needs one"))

        ok = st.c[OK] == 1
        new = sa.and_(ok, st.c[ID].is_(None))
        mine = sa.and_(ok, st.c[ID].is_not(None), st.c[OWNER] == owner) \
            if owner else sa.false()
        foreign = sa.and_(ok, st.c[ID].is_not(None),
                          sa.or_(st.c[OWNER].is_(None), st.c[OWNER] != owner)
                          if owner else sa.true())
        changed = self._changed(site, course, st)
        owned_where = [course.c.imported_from_connection == owner]
        if removal == "status0":
            owned_where.append(course.c.status != 0)
        gone = [*owned_where, ~sa.exists().where(st.c.code == course.c.code)]

        changes = ChangeSet(removal="deactivate" if removal == "status0" else "delete")
        changes.inserted = self._count(site, st, new)
        changes.updated = self._count_changed(site, course, st, mine, changed)
        skipped = self._count(site, st, foreign)
        staged_ok = self._count(site, st, ok)
        changes.unchanged = staged_ok - changes.inserted - changes.updated
        if sync:
            changes.owned = int(site.execute(sa.select(sa.func.count()).select_from(course)
                                             .where(*owned_where), "counting owned courses")
                                .scalar_one())
            changes.removed = int(site.execute(
                sa.select(sa.func.count()).select_from(course).where(*gone),
                "finding courses to remove").scalar_one())
        if context.dry_run:
            changes.samples = self._samples(site, course, st, new, mine, changed,
                                            gone if sync else None)
        if skipped:
            self._note_skipped(site, st, foreign, skipped, context)

        def apply() -> ChangeSet:
            done = ChangeSet(removal=changes.removal, owned=changes.owned)
            if sync and changes.removed:
                done.removed = self._remove(site, course, gone, removal)
            if changes.updated:
                values = {course.c[f.target]: self._new_value(site, course, st, f)
                          for f in DATA}
                done.updated = site.execute(
                    sa.update(course).where(course.c.idCourse == st.c[ID], mine, changed)
                    .values(values), "updating courses").rowcount
            if changes.inserted:
                done.inserted = self._insert(site, course, st, new, owner,
                                             now_in(context))
            done.unchanged = staged_ok - done.inserted - done.updated
            return done

        return forma.Step(changes, apply)

    def adopt(self, batches: Iterable[Batch], context: RunContext, everything: bool) -> int:
        """Make the source the owner of the courses no connection owns (made in the LMS) whose
        codes the rows hold, or of every one of them (``everything``)."""
        url = self.database_url(context)
        with forma.connect(url, write=True) as conn, conn.begin() as transaction:
            site = forma.Site(conn, self.params.get("prefix") or "", url)
            course = site.table("learning_course")
            where: list[sa.ColumnElement[bool]] = [course.c.imported_from_connection.is_(None)]
            if not everything:
                codes = text_converter(50)
                stage = self._stage(site)
                for batch in batches:
                    rows = []
                    for index, row in enumerate(batch):
                        try:
                            code = codes(row.get("code"))
                        except ValueError:
                            continue
                        if code:
                            rows.append((row.get(LINE, index + 1), code,
                                         *([None] * (len(stage.columns) - 1))))
                    stage.add(rows)
                stage.finish()
                where.append(sa.exists().where(stage.table.c.code == course.c.code))
            found = int(site.execute(sa.select(sa.func.count()).select_from(course)
                                     .where(*where), "counting unowned courses").scalar_one())
            if context.dry_run or not found:
                transaction.rollback()
                return found
            site.execute(sa.update(course).where(*where)
                         .values(imported_from_connection=context.owner), "adopting courses")
            context.check_lease(conn)
            transaction.commit()
            return found

    # --- the parts ----------------------------------------------------------------------

    def _converters(self, course: sa.Table, site: forma.Site
                    ) -> list[tuple[Field, Callable[[Any], Any]]]:
        narrow = narrow_text(course, site)

        def length(name: str) -> int | None:
            found = getattr(course.c[name].type, "length", None) if name in course.c else None
            return int(found) if found else None

        made: list[tuple[Field, Callable[[Any], Any]]] = []
        for f in FIELDS:
            convert: Callable[[Any], Any]
            if f.kind == "text":
                convert = text_converter(length(f.target) or 255, narrow=narrow)
            elif f.kind == "multiline":
                convert = text_converter(None, multiline=True, narrow=narrow, strip=False)
            elif f.kind == "int":
                convert = integer
            elif f.kind == "number":
                convert = number
            elif f.kind == "flag":
                convert = flag
            elif f.kind == "date":
                convert = a_date
            elif f.kind == "status":
                convert = coded(forma.COURSE_STATUSES, "course status")
            elif f.kind == "difficult":
                convert = difficulty
            elif f.kind == "method":
                def convert(value: Any) -> int | None:
                    return integer(value, 0, 2, "a subscribe method (0 by the administrator, "
                                                "1 with moderation, 2 free)")
            else:
                convert = prize
            made.append((f, convert))
        return made

    def _stage(self, site: forma.Site) -> Stage:
        columns = [sa.Column(f.name, STAGE_TYPES[f.kind]) for f in FIELDS]
        columns[0] = sa.Column("code", sa.String(255))
        columns += [sa.Column(CLEAR + name, sa.SmallInteger()) for name in DATES]
        columns += [sa.Column(OK, sa.SmallInteger()), sa.Column(ID, sa.Integer()),
                    sa.Column(OWNER, sa.String(255))]
        return site.stage(columns, ["code"], name="courses")

    def _convert(self, batch: Batch, converters: list[tuple[Field, Callable[[Any], Any]]],
                 context: RunContext, rejected: set[int]) -> Iterator[tuple[Any, ...]]:
        """(line, code, values..., clear flags, ok, None, None) per row; a bad value is a row
        error, its row staged as rejected when its code is good (so a sync keeps its course)."""
        for index, row in enumerate(batch):
            check_columns(row, NAMES, self.type_name)
            line = row.get(LINE, context.counts.read - len(batch) + index + 1)
            values: list[Any] = []
            error: tuple[str, str] | None = None
            for f, convert in converters:
                cell = row.get(f.name)
                try:
                    values.append(None if f.kind == "date" and is_zero(cell) else convert(cell))
                except ValueError as exc:
                    values.append(None)
                    error = error or (f.name, f"column {f.name!r}: {exc}")
            code = values[0]
            if code is None and error is None:
                error = ("code", "key column 'code' is empty: every course needs its code")
            shown_key = f"code={code if code is not None else row.get('code') or ''}"
            if error is not None:
                context.row_error(RowError(row_index=line, key_values=shown_key[:300],
                                           column=error[0], message=error[1]))
                rejected.add(line)
                if code is None:
                    continue
                yield (line, code, *([None] * (len(values) - 1)),
                       *([None] * len(DATES)), 0, None, None)
                continue
            clears = [1 if is_zero(row.get(name)) else 0 for name in DATES]
            yield (line, *values, *clears, 1, None, None)

    def _reject(self, site: forma.Site, st: sa.Table, where: sa.ColumnElement[bool],
                context: RunContext, column: str,
                message: Callable[[str, str | None], str]) -> None:
        """Row errors for the staged rows ``where`` selects; they stay staged as rejected."""
        rows = site.execute(sa.select(st.c[LINE_COLUMN], st.c.code, st.c.name)
                            .where(where, st.c[OK] == 1).order_by(st.c[LINE_COLUMN]),
                            "checking the courses").all()
        for line, code, name in rows:
            context.row_error(RowError(row_index=line, key_values=f"code={code}", column=column,
                                       message=message(code, name)))
        if rows:
            site.execute(sa.update(st).where(where).values({OK: 0}), "marking rejected rows")

    def _new_value(self, site: forma.Site, course: sa.Table, st: sa.Table,
                   f: Field) -> sa.ColumnElement[Any]:
        """The value an owned course gets: the file's, or its own when the cell was empty;
        a zero date clears the date."""
        value: sa.ColumnElement[Any] = sa.func.coalesce(st.c[f.name], course.c[f.target])
        if f.kind == "date":
            value = sa.case((st.c[CLEAR + f.name] == 1, site.no_date(course.c[f.target])),
                            else_=value)
        return value

    def _changed(self, site: forma.Site, course: sa.Table,
                 st: sa.Table) -> sa.ColumnElement[bool]:
        parts = []
        for f in DATA:
            old: sa.ColumnElement[Any] = course.c[f.target]
            new: sa.ColumnElement[Any] = st.c[f.name]
            if site.backend == "mysql" and f.kind in ("text", "multiline", "difficult",
                                                       "prize"):
                old, new = sa.cast(old, mysql.BINARY()), sa.cast(new, mysql.BINARY())
            parts.append(sa.and_(st.c[f.name].is_not(None), new.is_distinct_from(old)))
            if f.kind == "date":
                empty = site.no_date(course.c[f.target])
                nothing = course.c[f.target].is_(None) if isinstance(empty, sa.Null) else \
                    sa.or_(course.c[f.target].is_(None), course.c[f.target] == empty)
                parts.append(sa.and_(st.c[CLEAR + f.name] == 1, ~nothing))
        return sa.or_(*parts)

    def _count(self, site: forma.Site, st: sa.Table, where: sa.ColumnElement[bool]) -> int:
        return int(site.execute(sa.select(sa.func.count()).select_from(st).where(where),
                                "counting the courses").scalar_one())

    def _count_changed(self, site: forma.Site, course: sa.Table, st: sa.Table,
                       mine: sa.ColumnElement[bool], changed: sa.ColumnElement[bool]) -> int:
        return int(site.execute(
            sa.select(sa.func.count()).select_from(st.join(course, course.c.idCourse == st.c[ID]))
            .where(mine, changed), "finding changed courses").scalar_one())

    def _samples(self, site: forma.Site, course: sa.Table, st: sa.Table,
                 new: sa.ColumnElement[bool], mine: sa.ColumnElement[bool],
                 changed: sa.ColumnElement[bool],
                 gone: list[sa.ColumnElement[bool]] | None) -> dict[str, list[str]]:
        def codes(query: sa.Select[Any]) -> list[str]:
            return [f"code={code}" for (code,) in site.execute(query.limit(SAMPLE_KEYS),
                                                               "sampling the changes")]
        samples = {
            "insert": codes(sa.select(st.c.code).where(new).order_by(st.c[LINE_COLUMN])),
            "update": codes(sa.select(st.c.code).select_from(
                st.join(course, course.c.idCourse == st.c[ID])).where(mine, changed)
                .order_by(st.c[LINE_COLUMN]))}
        if gone is not None:
            samples["remove"] = codes(sa.select(course.c.code).where(*gone)
                                      .order_by(course.c.code))
        return samples

    def _note_skipped(self, site: forma.Site, st: sa.Table, foreign: sa.ColumnElement[bool],
                      skipped: int, context: RunContext) -> None:
        codes = [code for (code,) in site.execute(
            sa.select(st.c.code).where(foreign).order_by(st.c[LINE_COLUMN]).limit(SAMPLE_KEYS),
            "listing skipped courses")]
        more = f" and {skipped - len(codes)} more" if skipped > len(codes) else ""
        note = (f"{skipped} courses left alone (counted unchanged): owned by another connection "
                f"or made in the LMS, as Docebo does ({', '.join(codes)}{more}); "
                f"`iotask task adopt` takes over the unowned ones")
        log.warning("task %s: %s", context.task, note)
        context.notes.append(note)

    def _remove(self, site: forma.Site, course: sa.Table,
                gone: list[sa.ColumnElement[bool]], removal: str) -> int:
        if removal == "status0":
            return int(site.execute(sa.update(course).where(*gone).values(status=0),
                                    "putting removed courses back in preparation").rowcount)
        ids = [int(i) for (i,) in site.execute(sa.select(course.c.idCourse).where(*gone),
                                               "finding courses to delete")]
        delete_courses(site, ids)
        return len(ids)

    def _insert(self, site: forma.Site, course: sa.Table, st: sa.Table,
                new: sa.ColumnElement[bool], owner: str | None, now: datetime) -> int:
        names: list[str] = []
        values: list[sa.ColumnElement[Any]] = []
        for f in FIELDS:
            names.append(f.target)
            if f.key:
                values.append(st.c.code)
            elif f.kind == "date":
                values.append(sa.func.coalesce(st.c[f.name], site.no_date(course.c[f.target])))
            else:
                default = sa.literal(DEFAULTS[f.name], type_=course.c[f.target].type)
                values.append(sa.func.coalesce(st.c[f.name], default))
        extra: dict[str, Any] = {"calendarId": "", "create_date": now,
                                 "imported_from_connection": owner}
        for name, value in extra.items():
            if name in course.c:
                names.append(name)
                values.append(sa.literal(value, type_=course.c[name].type))
        before = site.execute(sa.select(sa.func.max(course.c.idCourse)),
                              "reading the last course id").scalar_one()
        inserted = int(site.execute(
            sa.insert(course).from_select(names, sa.select(*values).where(new)
                                          .order_by(st.c[LINE_COLUMN])),
            "inserting courses").rowcount)
        # read back by code, among the ids after the last one (learning_course.code has no
        # index on forma 3.x: the range on the key keeps this join small)
        made = [int(i) for (i,) in site.execute(
            sa.select(course.c.idCourse).select_from(
                course.join(st, course.c.code == st.c.code))
            .where(new, course.c.idCourse > (before or 0)),
            "reading the new courses' ids")]
        for part in chunks(made, LEVEL_CHUNK):  # flat memory: 8 groups per course
            ensure_level_groups(site, part)
        return inserted


def delete_courses(site: forma.Site, ids: Sequence[int]) -> None:
    """Delete courses with their level groups, the groups' memberships and the enrollments."""
    course = site.table("learning_course")
    group = site.table("core_group")
    members = site.table("core_group_members")
    enrolled = site.table("learning_courseuser")
    for part in chunks(list(ids), 60):
        groups = list(site.group_ids(name for i in part for name in level_group_names(i))
                      .values())
        if groups:
            site.execute(sa.delete(members).where(sa.or_(members.c.idst.in_(groups),
                                                         members.c.idstMember.in_(groups))),
                         "deleting the courses' group memberships")
            site.execute(sa.delete(group).where(group.c.idst.in_(groups)),
                         "deleting the courses' level groups")
        site.execute(sa.delete(enrolled).where(enrolled.c.idCourse.in_(part)),
                     "deleting the courses' enrollments")
        site.execute(sa.delete(course).where(course.c.idCourse.in_(part)), "deleting courses")


def _default_text(f: Field) -> str:
    value = DEFAULTS[f.name]
    if f.kind == "status":
        return f"{value} {forma.COURSE_STATUSES[value]}"
    return shown(f, value) if value != "" else "''"


def shown(f: Field, value: Any) -> str:
    """A course's value as write() takes it back."""
    if value is None or forma.is_no_date(value) and f.kind == "date":
        return ""
    if f.kind == "status":
        return forma.COURSE_STATUSES.get(int(value), str(value))
    if f.kind == "date":
        return value.isoformat()[:10] if isinstance(value, date) else str(value)[:10]
    if f.kind == "number":
        as_float = float(value)
        return str(int(as_float)) if as_float.is_integer() else repr(as_float)
    if f.kind in ("int", "flag", "method"):
        return str(int(value))
    return str(value)


CONNECTOR = FormaCoursesConnector
