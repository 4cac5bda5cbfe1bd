"""What the forma-* connectors share about a forma.lms / Docebo database: its tables (reflected,
or declared for ``iotask lms init``), ids from ``core_st``, groups and memberships, zero dates,
and the readable words for Docebo's numeric codes.

forma.lms is the open-source continuation of Docebo CE; its tables are the ones a Docebo I/O
task writes. 3.x sites have ``NOT NULL DEFAULT '0000-00-00'`` dates and ``text NOT NULL``
columns without defaults; 4.x made the dates NULL-able. Everything here works with both: a
table is reflected from the site, and "no date" is written as the column allows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from iotask.connectors.base import Connector
from iotask.connectors.context import Batch, ChangeSet, Counts, RunContext
from iotask.connectors.databases import (
    check_database_setting,
    database_setting,
    make_engine,
    masked,
    reason,
    unreachable,
)
from iotask.connectors.errors import ConnectorError
from iotask.connectors.settings import Setting
from iotask.connectors.staging import Stage
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import DBAPIError, NoSuchTableError, OperationalError

ROOT_OC = "/oc_0"  # every imported user belongs to the org chart's root groups
ROOT_OCD = "/ocd_0"
LEVEL_USER = "/framework/level/user"  # ... and to the plain users' level group
OWNER_GROUP = "/iotask/{kind}/{owner}"  # members: the users or units a task's source owns
ZERO_DATE = "0000-00-00"
ZERO_DATETIME = "0000-00-00 00:00:00"

SETTINGS = (
    Setting("database", "url",
            help="SQLAlchemy URL of the forma.lms / Docebo database; default: the iotask "
                 "database (see iotask lms init)"),
    Setting("prefix", help="text before every table name, for sites whose tables are not "
                           "core_*/learning_* (e.g. site2_ for site2_core_user); default none"),
)

# Docebo's numbers and the words people write for them
LEVELS = {1: "guest", 2: "ghost", 3: "student", 4: "tutor", 5: "mentor", 6: "teacher",
          7: "admin"}
ENROLLMENT_STATUSES = {-2: "waiting", -1: "confirmed", 0: "subscribed", 1: "in_progress",
                       2: "completed", 3: "suspended", 4: "overbooking"}
COURSE_STATUSES = {0: "preparation", 1: "available", 2: "confirmed", 3: "concluded",
                   4: "cancelled"}
DIFFICULTIES = ("veryeasy", "easy", "medium", "difficult", "verydifficult")
_SYNONYMS = {"waiting_list": -2, "waitinglist": -2, "enrolled": 0, "inprogress": 1,
             "started": 1, "complete": 2, "done": 2, "canceled": 4, "instructor": 6}


class FormaError(ConnectorError):
    """A forma table, setting or value that cannot be used; the message says which and why."""


class FormaConnector(Connector):
    """Base of the forma-* connectors: the settings they share, checked when saved."""

    settings: ClassVar[tuple[Setting, ...]] = SETTINGS

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        check_database_setting(params)

    def database_url(self, context: RunContext) -> str:
        """The site's database: the ``database`` setting, else the iotask database."""
        return database_setting(self.params, context.database_url, FormaError)

    def open_site(self, context: RunContext, write: bool) -> AbstractContextManager[Site]:
        """``with`` the site on a fresh connection (no transaction begun yet)."""
        return _opened(self.database_url(context), self.params.get("prefix") or "", write)

    def check_write(self, context: RunContext) -> None:
        """What refuses a run before the site is opened (sync without an owner, ...)."""

    def write_in(self, site: Site, batches: Iterable[Batch], context: RunContext) -> Step:
        """Stage the rows and compute their change set in the caller's transaction on
        ``site``; nothing is applied before ``Step.apply``. The forma-lms destination runs
        several of these in one transaction."""
        raise NotImplementedError(f"connector {self.type_name!r} cannot write")

    def write(self, batches: Iterable[Batch], context: RunContext) -> None:
        """One transaction: ``write_in``, the guards' review, apply, check_lease, commit."""
        self.check_write(context)
        with self.open_site(context, write=True) as site, site.conn.begin() as transaction:
            step = self.write_in(site, batches, context)
            if not context.review(step.changes):
                transaction.rollback()
                return
            done = step.apply()
            context.check_lease(site.conn)
            transaction.commit()
        add_counts(context.counts, done)


@dataclass
class Step:
    """A computed write inside an open transaction: its change set for the guards, and
    ``apply`` that applies it and returns what it did (inserted, updated, unchanged,
    removed)."""

    changes: ChangeSet
    apply: Callable[[], ChangeSet]


def add_counts(counts: Counts, done: ChangeSet) -> None:
    counts.inserted += done.inserted
    counts.updated += done.updated
    counts.unchanged += done.unchanged
    counts.removed += done.removed


@contextmanager
def _opened(url: str, prefix: str, write: bool) -> Iterator[Site]:
    with connect(url, write) as conn:
        yield Site(conn, prefix, url)


def table_name(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


@contextmanager
def connect(url: str, write: bool) -> Iterator[sa.Connection]:
    """A connection to the site's database, in a transaction the caller commits.

    MariaDB reads under READ COMMITTED, so the set-based statements do not lock the rows
    they only read while the LMS keeps working (see the sql connector).
    """
    engine = make_engine(url, read_only=not write, local_infile=write)
    if engine.dialect.name in ("mysql", "mariadb"):
        engine = engine.execution_options(isolation_level="READ COMMITTED")
    try:
        try:
            conn = engine.connect()
        except OperationalError as exc:
            raise FormaError(unreachable(engine.url, exc)) from None
        except DBAPIError as exc:
            raise FormaError(f"cannot open database {masked(url)}: {reason(exc)}") from None
        with conn:
            yield conn
    finally:
        engine.dispose()


class Site:
    """The forma tables of one database as one connection sees them: reflected on first use."""

    def __init__(self, conn: sa.Connection, prefix: str = "", url: str = "") -> None:
        self.conn, self.prefix, self.url = conn, prefix, url
        self.backend = "mysql" if conn.dialect.name in ("mysql", "mariadb") else conn.dialect.name
        self._metadata = sa.MetaData()
        self._tables: dict[str, sa.Table] = {}

    def table(self, name: str) -> sa.Table:
        """The table ``name`` (without the prefix), e.g. ``core_user``."""
        if name not in self._tables:
            full = table_name(self.prefix, name)
            try:
                self._tables[name] = sa.Table(full, self._metadata, autoload_with=self.conn)
            except NoSuchTableError:
                raise FormaError(
                    f"table {full!r} does not exist in {masked(self.url) or 'the database'}: "
                    "is this a forma.lms database (check setting 'prefix'), or create the "
                    "tables with iotask lms init") from None
            except DBAPIError as exc:
                raise FormaError(f"cannot read table {full!r}: {reason(exc)}") from None
        return self._tables[name]

    def execute(self, statement: sa.Executable, what: str) -> Any:
        """Run one statement; a database error becomes a FormaError saying what was being done."""
        try:
            return self.conn.execute(statement, execution_options={"preserve_rowcount": True})
        except DBAPIError as exc:
            raise FormaError(f"{what} failed: {reason(exc)}") from exc

    def insert_many(self, table: sa.Table, rows: Sequence[dict[str, Any]], what: str) -> None:
        """``rows`` into ``table`` through the driver's executemany (SQLAlchemy's
        insertmanyvalues: multi-row INSERTs), 5000 at a time: compiling one VALUES statement of
        thousands of parameters is slow."""
        for start in range(0, len(rows), 5000):
            try:
                self.conn.execute(sa.insert(table), list(rows[start:start + 5000]))
            except DBAPIError as exc:
                raise FormaError(f"{what} failed: {reason(exc)}") from exc

    # --- ids and groups -----------------------------------------------------------------

    def allocate(self, count: int) -> list[int]:
        """``count`` new ids from ``core_st``, the sequence users, groups and roles share: one
        multi-row INSERT per 1000 ids, never MAX()+1; in increasing order."""
        st = self.table("core_st")
        into = f"INSERT INTO {self._quote(st.name)} ({self._quote('idst')}) VALUES "
        row = "(DEFAULT)" if self.backend == "postgresql" else "(NULL)"
        returning = self.backend != "mysql" or _has_returning(self.conn)
        ids: list[int] = []
        while len(ids) < count:
            part = min(1000, count - len(ids))
            sql = into + ", ".join([row] * part)
            try:
                if returning:
                    found = self.conn.exec_driver_sql(sql + f" RETURNING {self._quote('idst')}")
                    ids.extend(sorted(int(value) for (value,) in found))
                else:
                    # MySQL has no RETURNING: the rows of one multi-row INSERT whose count is
                    # known take consecutive values, the first being LAST_INSERT_ID()
                    self.conn.exec_driver_sql(sql)
                    first = int(self.conn.exec_driver_sql("SELECT LAST_INSERT_ID()").scalar_one())
                    ids.extend(range(first, first + part))
            except DBAPIError as exc:
                raise FormaError(f"allocating ids in {st.name!r} failed: {reason(exc)}") from exc
        return ids

    def group_ids(self, names: Iterable[str]) -> dict[str, int]:
        """The idst of each existing group in ``names`` (groupid: idst)."""
        group = self.table("core_group")
        wanted = sorted(set(names))
        found: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            rows = self.execute(
                sa.select(group.c.groupid, group.c.idst).where(group.c.groupid.in_(part)),
                "reading groups")
            found.update((row[0], int(row[1])) for row in rows)
        return found

    def seed_group(self, name: str) -> int:
        """The idst of one of forma's seed groups, looked up by its groupid."""
        found = self.group_ids([name]).get(name)
        if found is None:
            raise FormaError(f"the forma group {name!r} is missing from "
                             f"{table_name(self.prefix, 'core_group')}: it is created when "
                             "forma is installed (or by iotask lms init)")
        return found

    def ensure_groups(self, names: Sequence[str], type_: str = "free",
                      hidden: bool = False, description: str = "") -> dict[str, int]:
        """Each group in ``names``, created (with an id from ``core_st``) when missing."""
        found = self.group_ids(names)
        missing = [name for name in dict.fromkeys(names) if name not in found]
        if missing:
            ids = self.allocate(len(missing))
            group = self.table("core_group")
            rows = [{"idst": idst, "groupid": name, "description": description,
                     "hidden": "true" if hidden else "false", "type": type_,
                     "show_on_platform": ""}
                    for name, idst in zip(missing, ids, strict=True)]
            # executemany: one multi-row VALUES statement per batch, without compiling a
            # statement of thousands of parameters
            self.insert_many(group, rows, "creating groups")
            found.update(zip(missing, ids, strict=True))
        return found

    def owner_group(self, kind: str, owner: str) -> int:
        """The hidden group whose members are the ``kind`` records (users, units) that the
        source ``owner`` wrote: what a sync may remove. Created on first use."""
        name = OWNER_GROUP.format(kind=kind, owner=owner)
        return self.ensure_groups([name], type_="invisible", hidden=True,
                                  description=f"records imported by iotask from {owner}")[name]

    def no_date(self, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
        """What "no date" is in ``column``: NULL, or the zero date of a 3.x NOT NULL column."""
        if column.nullable or self.backend != "mysql":
            return sa.null()
        zero = ZERO_DATE if isinstance(column.type, sa.Date) and not isinstance(
            column.type, sa.DateTime) else ZERO_DATETIME
        return sa.literal_column(f"'{zero}'")

    def stage(self, columns: Sequence[sa.Column[Any]], keys: Sequence[str],
              name: str = "rows") -> Stage:
        """A staging table of ``columns`` (the line first is added by Stage): rows go in with
        ``Stage.add`` and out through set-based statements against the site's tables."""
        shape = sa.Table(f"iotask_{name}", sa.MetaData(),
                         *(sa.Column(c.name, c.type) for c in columns))
        return Stage(self.conn, shape, [c.name for c in columns], list(keys))

    def _quote(self, name: str) -> str:
        return self.conn.dialect.identifier_preparer.quote(name)


def _has_returning(conn: sa.Connection) -> bool:
    """MariaDB 10.5+ has INSERT ... RETURNING; MySQL has not."""
    return bool(getattr(conn.dialect, "is_mariadb", False)
                and conn.dialect.server_version_info is not None
                and conn.dialect.server_version_info >= (10, 5))


# --- values -----------------------------------------------------------------------------

def userid_absolute(text: str) -> str:
    """A login as forma stores it: ``jdoe`` is ``/jdoe``."""
    text = text.strip()
    return text if text.startswith("/") else f"/{text}"


def userid_relative(stored: str) -> str:
    """A stored userid as people and files write it: ``/jdoe`` is ``jdoe``."""
    return stored[1:] if stored.startswith("/") else stored


def code_of(text: str, codes: Mapping[int, str], what: str) -> int:
    """Docebo's number for a level or status, written as the number or the word."""
    word = text.strip().lower().replace(" ", "_").replace("-", "_")
    try:
        number = int(word)
    except ValueError:
        number = None
    if number is not None and number in codes:
        return number
    for value, name in codes.items():
        if word == name or word.replace("_", "") == name.replace("_", ""):
            return value
    if word in _SYNONYMS and _SYNONYMS[word] in codes:
        return _SYNONYMS[word]
    choices = ", ".join(f"{value} {name}" for value, name in codes.items())
    raise ValueError(f"{text!r} is not a {what} (one of {choices})")


def parse_date(text: str | None) -> date | None:
    """A date cell: ISO ``YYYY-MM-DD`` (a time after it is ignored); empty or a zero date is
    no date."""
    text = _date_text(text)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_datetime(text: str | None) -> datetime | None:
    """A date-and-time cell: ISO ``YYYY-MM-DD[ HH:MM[:SS]]``; empty or zero is no date."""
    text = _date_text(text)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("T", " ", 1))
    except ValueError:
        raise ValueError(f"{text!r} is not a date and time (YYYY-MM-DD HH:MM:SS)") from None


def _date_text(text: str | None) -> str | None:
    """A date cell's text, stripped; None when it is empty or a zero date."""
    text = text.strip() if text is not None else ""
    return None if not text or _is_zero(text) else text


def _is_zero(text: str) -> bool:
    return text.startswith("0000-00-00")


def is_no_date(value: Any) -> bool:
    """A date read from a site: NULL, or a zero date (which drivers return as text or None)."""
    return value is None or (isinstance(value, str) and _is_zero(value))


# --- the tables, for iotask lms init ------------------------------------------------------

def _enum(*values: str) -> sa.types.TypeEngine[Any]:
    """forma's ENUM on MariaDB; text with a CHECK elsewhere (no named types to manage)."""
    return sa.Enum(*values, native_enum=False, create_constraint=True, length=max(map(len, values))
                   ).with_variant(mysql.ENUM(*values), "mysql", "mariadb")


def declared(prefix: str = "") -> sa.MetaData:
    """The forma tables the connectors use, with forma 4's column types and defaults (NULL-able
    dates: zero dates exist on MariaDB only). ``iotask lms init`` creates them."""
    md = sa.MetaData()
    text = sa.Text().with_variant(mysql.TEXT(), "mysql", "mariadb")
    tiny = sa.SmallInteger().with_variant(mysql.TINYINT(1), "mysql", "mariadb")

    def t(name: str, *parts: Any, **kw: Any) -> sa.Table:
        return sa.Table(table_name(prefix, name), md, *parts,
                        mysql_charset="utf8", mysql_engine="InnoDB", **kw)

    def s(name: str, length: int = 255, default: str = "", **kw: Any) -> sa.Column[Any]:
        return sa.Column(name, sa.String(length), nullable=False, server_default=default, **kw)

    def n(name: str, default: int = 0, type_: Any = sa.Integer, **kw: Any) -> sa.Column[Any]:
        return sa.Column(name, type_, nullable=False, server_default=str(default), **kw)

    def k(name: str) -> sa.Column[Any]:  # a part of a primary key of ids
        return sa.Column(name, sa.Integer, primary_key=True, autoincrement=False,
                         server_default="0")

    t("core_st", sa.Column("idst", sa.Integer, primary_key=True, autoincrement=True),
      sqlite_autoincrement=True)
    t("core_user",
      sa.Column("idst", sa.Integer, primary_key=True, autoincrement=False),
      s("userid", unique=True), s("firstname"), s("lastname"), s("pass", 255), s("email"),
      s("avatar"), sa.Column("signature", text, nullable=False), n("level"),
      sa.Column("lastenter", sa.DateTime), n("valid", 1, tiny),
      sa.Column("pwd_expire_at", sa.DateTime), n("force_change", 0, tiny),
      sa.Column("register_date", sa.DateTime),
      *(sa.Column(f"{site}_id", sa.String(255), unique=True)
        for site in ("facebook", "twitter", "linkedin", "google")),
      n("privacy_policy", 0, tiny))
    t("core_group",
      sa.Column("idst", sa.Integer, primary_key=True, autoincrement=False),
      s("groupid", unique=True), sa.Column("description", text, nullable=False),
      sa.Column("hidden", _enum("true", "false"), nullable=False, server_default="false"),
      sa.Column("type", _enum("free", "moderate", "private", "invisible", "course", "company"),
                nullable=False, server_default="free"),
      sa.Column("show_on_platform", text, nullable=False))
    t("core_group_members",
      k("idst"), k("idstMember"),
      s("filter", 50), sa.Index(f"{prefix}core_group_members_member", "idstMember"))
    t("core_setting_user",
      sa.Column("path_name", sa.String(255), primary_key=True, server_default=""),
      k("id_user"),
      sa.Column("value", text, nullable=False))
    t("core_field",
      sa.Column("idField", sa.Integer, primary_key=True, autoincrement=True),
      n("id_common"), s("type_field"), s("lang_code"), s("translation"), n("sequence"),
      s("show_on_platform", default="framework,"), n("use_multilang", 0, tiny))
    t("core_field_userentry",
      k("id_common"), k("id_common_son"), k("id_user"),
      sa.Column("user_entry", text, nullable=False))
    t("core_org_chart_tree",
      sa.Column("idOrg", sa.Integer, primary_key=True, autoincrement=True),
      n("idParent"), sa.Column("path", text, nullable=False), n("lev"), n("iLeft"),
      n("iRight"), s("code"), n("idst_oc"), n("idst_ocd"),
      sa.Column("associated_policy", sa.Integer), sa.Column("associated_template",
                                                            sa.String(255)),
      sa.Index(f"{prefix}core_org_chart_tree_code", "code"))
    t("core_org_chart",
      k("id_dir"),
      sa.Column("lang_code", sa.String(50), primary_key=True, server_default=""),
      s("translation"))
    t("learning_course",
      sa.Column("idCourse", sa.Integer, primary_key=True, autoincrement=True),
      n("idCategory"), s("code", 50), s("name"), sa.Column("box_description", text,
                                                           nullable=False),
      sa.Column("description", text, nullable=False), s("lang_code", 100), n("status"),
      n("level_show_user"), n("subscribe_method", 0, tiny), s("linkSponsor"), s("imgSponsor"),
      s("img_course"), s("img_material"), s("img_othermaterial"), s("course_demo"),
      n("mediumTime"), n("permCloseLO", 0, tiny), n("userStatusOp"),
      sa.Column("difficult", _enum(*DIFFICULTIES), nullable=False, server_default="medium"),
      n("show_progress", 1, tiny), n("show_time", 0, tiny), n("show_who_online", 0, tiny),
      n("show_extra_info", 0, tiny), n("show_rules", 0, tiny),
      sa.Column("date_begin", sa.Date), sa.Column("date_end", sa.Date), s("hour_begin", 5),
      s("hour_end", 5), n("valid_time"), n("max_num_subscribe"), n("min_num_subscribe"),
      n("max_sms_budget", 0, sa.Float), n("selling", 0, tiny), s("prize"),
      s("course_type", default="elearning"), s("policy_point"), n("point_to_all"),
      n("course_edition", 0, tiny), s("classrooms"), s("certificates"),
      sa.Column("create_date", sa.DateTime), s("security_code"),
      sa.Column("imported_from_connection", sa.String(255)), s("course_quota", default="-1"),
      s("used_space", default="0"), n("course_vote", 0, sa.Float),
      n("allow_overbooking", 0, tiny), n("can_subscribe", 0, tiny),
      sa.Column("sub_start_date", sa.DateTime), sa.Column("sub_end_date", sa.DateTime),
      s("advance"), s("autoregistration_code"), n("direct_play", 0, tiny),
      n("use_logo_in_courselist", 0, tiny), n("show_result", 0, tiny),
      n("credits", 0, sa.Float), n("auto_unsubscribe", 0, tiny),
      sa.Column("unsubscribe_date_limit", sa.DateTime), n("sendCalendar", 0, tiny),
      sa.Column("calendarId", sa.String(255), nullable=False),
      sa.Index(f"{prefix}learning_course_code", "code"))
    t("learning_courseuser",
      k("idUser"), k("idCourse"), k("edition_id"),
      n("level"), sa.Column("date_inscr", sa.DateTime),
      sa.Column("date_first_access", sa.DateTime), sa.Column("date_complete", sa.DateTime),
      n("status"), n("waiting", 0, tiny), n("subscribed_by"), sa.Column("rule_log", sa.Integer),
      sa.Column("score_given", sa.Integer),
      sa.Column("imported_from_connection", sa.String(255)), n("absent", 0, tiny),
      n("cancelled_by"), n("new_forum_post"), sa.Column("date_begin_validity", sa.DateTime),
      sa.Column("date_expire_validity", sa.DateTime),
      sa.Index(f"{prefix}learning_courseuser_course", "idCourse"))
    t("learning_statuschangelog",
      n("idUser"), n("idCourse"), n("status_user"), sa.Column("when_do", sa.DateTime),
      sa.Index(f"{prefix}learning_statuschangelog_user", "idUser", "idCourse"))
    return md


SEED_GROUPS = (ROOT_OC, ROOT_OCD, "/framework/level/godadmin", "/framework/level/admin",
               "/framework/level/publicadmin", LEVEL_USER)
