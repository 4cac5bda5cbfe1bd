"""The ``forma-users`` connector: a forma.lms / Docebo site's users, read and written.

Columns: ``userid`` (the key, a login as people write it: ``jdoe``, stored ``/jdoe``),
``firstname``, ``lastname``, ``email``, ``language`` (``core_setting_user`` ``ui.language``),
``tree_code`` (the codes of the org units the user is placed in, separated by ``#``), ``valid``
(1/0, true/false, yes/no) and one ``field:<name>`` column per custom field (``core_field``'s
``translation`` in any language).

Writing follows Docebo's users connector, set-based:

* a new user gets an id from ``core_st`` (all new users' ids in one go, paired with the new
  userids in file order), ``pass = ''`` (no usable password: the site sends a reset),
  ``register_date`` now in the run's time zone, and the memberships of ``/oc_0``, ``/ocd_0``,
  ``/framework/level/user``, of each listed unit's ``/oc_N`` and ``/ocd_N`` groups, and of the
  hidden owner group ``/iotask/users/<source>`` (what a sync may remove);
* an existing user: an empty cell never blanks a value, a password is never touched, and a
  non-empty ``tree_code`` makes the user's ``/oc_%``/``/ocd_%`` memberships (the root's
  excepted) exactly those of the listed units; an empty one leaves them as they are;
* passwords are never imported: a ``pass`` column stops the run before anything is applied;
* sync removes the users the source owns that the file no longer has (a row rejected for a bad
  value is not "no longer there"): ``remove=suspend`` (the default) sets ``valid = 0``, and a
  user the file lists with an empty ``valid`` cell is active (``valid = 1``: who comes back is
  reactivated; ``valid=0`` in the file keeps someone suspended);
  ``remove=delete`` deletes the ``core_user`` row, its memberships (``core_group_members`` as a
  member), its ``core_setting_user`` and ``core_field_userentry`` rows. Enrollments
  (``learning_courseuser``) are left to the enrollments connector: deleting a user's training
  history as a side effect of an HR feed would lose completions no file can bring back.

Everything runs in one transaction: staged rows, the change set counted with joins, the
guards' review, then a few INSERT ... SELECT / joined UPDATE / DELETE statements.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from iotask.connectors import forma
from iotask.connectors.context import SAMPLE_KEYS, Batch, ChangeSet, Column, RowError, RunContext
from iotask.connectors.forma import FormaError, Site
from iotask.connectors.settings import FALSE_WORDS, TRUE_WORDS, Setting
from iotask.connectors.staging import LINE_COLUMN
from sqlalchemy.dialects import mysql

LINE = "__line__"  # the physical line of a row read from a file (sql.LINE)
FIELD = "field:"  # a custom field's column: field:<name>
COLUMNS = ("userid", "firstname", "lastname", "email", "language", "tree_code", "valid")
REMOVALS = ("suspend", "delete")
LANGUAGE = "ui.language"  # core_setting_user.path_name of the user's language
ANONYMOUS = "/Anonymous"
ADMIN_GROUPS = ("/framework/level/godadmin", "/framework/level/admin")
OWNERS = "/iotask/users/"  # the owner groups' common start (forma.OWNER_GROUP)
PASSWORDS = ("passwords are never imported: a new user gets no usable password (the site sends "
             "a password reset) and an existing user's password is never overwritten; leave "
             "the column out of the file or the map")
BATCH_SIZE = 1000
TEXT_BYTES = 65_535  # a MySQL TEXT column (core_field_userentry.user_entry)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # a field may hold lines
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
log = logging.getLogger("iotask.forma_users")


class FormaUsersConnector(forma.FormaConnector):
    type_name = "forma-users"
    description = "The users of a forma.lms / Docebo site: names, e-mail, language, org units"
    can_read = True
    can_write = True
    settings = forma.SETTINGS + (
        Setting("remove", choices=REMOVALS, default="suspend",
                help="what sync does with the users its source owns that the file no longer "
                     "has: suspend (valid = 0, the default) or delete (the user, its "
                     "memberships, settings and custom fields; enrollments are kept)"),
    )

    def location(self) -> str:
        prefix = self.params.get("prefix") or ""
        return f"table {forma.table_name(prefix, 'core_user')}"

    def columns(self, context: RunContext) -> list[Column] | None:
        """The fixed columns, ``field:<name>`` for each custom field the site defines, and
        ``pass`` refused (passwords are never imported)."""
        with self.open_site(context, write=False) as site:
            fields = _fields(site)
        return [Column("userid", required=True, key=True, type="login"),
                *(Column(name) for name in COLUMNS[1:]),
                *(Column(FIELD + name) for name in sorted(fields)),
                Column("pass", refused=PASSWORDS)]

    # --- reading ------------------------------------------------------------------------

    def read(self, context: RunContext) -> Iterator[Batch]:
        """Every user but the anonymous one, by userid: the columns ``write`` takes."""
        with self.open_site(context, write=False) as site:
            user, setting = site.table("core_user"), site.table("core_setting_user")
            members, tree = site.table("core_group_members"), site.table("core_org_chart_tree")
            entries = site.table("core_field_userentry")
            names = _field_names(site)
            codes: dict[int, list[str]] = {}
            for member, code in site.execute(
                    sa.select(members.c.idstMember, tree.c.code)
                    .select_from(members.join(tree, tree.c.idst_oc == members.c.idst)),
                    "reading org unit memberships"):
                codes.setdefault(int(member), []).append(code)
            values: dict[int, dict[str, str]] = {}
            for id_user, id_common, entry in site.execute(
                    sa.select(entries.c.id_user, entries.c.id_common, entries.c.user_entry)
                    .where(entries.c.id_common_son == 0), "reading custom field values"):
                name = names.get(int(id_common))
                if name is not None:
                    values.setdefault(int(id_user), {})[name] = entry
            rows = site.execute(
                sa.select(user.c.idst, user.c.userid, user.c.firstname, user.c.lastname,
                          user.c.email, setting.c.value, user.c.valid)
                .select_from(user.outerjoin(setting, sa.and_(
                    setting.c.id_user == user.c.idst, setting.c.path_name == LANGUAGE)))
                .where(user.c.userid.not_in(["", "/", ANONYMOUS]))
                .order_by(user.c.userid), "reading users")
            columns = [FIELD + name for name in sorted(set(names.values()))]
            batch: Batch = []
            for idst, userid, first, last, email, language, valid in rows:
                own = values.get(int(idst), {})
                batch.append({"userid": forma.userid_relative(userid), "firstname": first,
                              "lastname": last, "email": email, "language": language or "",
                              "tree_code": "#".join(sorted(set(codes.get(int(idst), [])))),
                              "valid": int(valid),
                              **{column: own.get(column[len(FIELD):], "")
                                 for column in columns}})
                if len(batch) >= BATCH_SIZE:
                    yield batch
                    batch = []
            if batch:
                yield batch

    # --- writing ------------------------------------------------------------------------

    def check_task(self, context: RunContext) -> None:
        if context.import_type == "sync" and not context.owner:
            raise FormaError("import type sync needs the name of the source connection to "
                             "know which users it owns")

    def check_write(self, context: RunContext) -> None:
        self.check_task(context)

    def write_in(self, site: Site, batches: Iterable[Batch], context: RunContext) -> forma.Step:
        """Stage the rows and count the change set (see the module); apply applies it."""
        self.check_task(context)
        plan = _Plan(site, context, self.params.get("remove") or "suspend")
        for batch in batches:
            plan.add(batch)
        plan.finish()
        changes = plan.change_set()
        return forma.Step(changes, lambda: plan.apply(changes))

    def adopt(self, batches: Iterable[Batch], context: RunContext, everything: bool) -> int:
        """Make the source the owner (a member of its owner group) of existing users no source
        owns: those whose userids the rows hold, or (``everything``) every user except the
        anonymous one and the administrators; how many."""
        if not context.owner:
            raise FormaError("adopting needs the name of the source connection")
        with self.open_site(context, write=True) as site, site.conn.begin() as transaction:
            user, members = site.table("core_user"), site.table("core_group_members")
            group = site.table("core_group")
            owned = (sa.select(members.c.idstMember)
                     .select_from(members.join(group, group.c.idst == members.c.idst))
                     .where(group.c.groupid.startswith(OWNERS, autoescape=True)))
            where: list[sa.ColumnElement[bool]] = [
                user.c.userid.not_in(["", "/", ANONYMOUS]), user.c.idst.not_in(owned)]
            source: sa.FromClause = user
            if everything:
                admins = (sa.select(members.c.idstMember)
                          .select_from(members.join(group, group.c.idst == members.c.idst))
                          .where(group.c.groupid.in_(ADMIN_GROUPS)))
                where.append(user.c.idst.not_in(admins))
            else:
                stage = site.stage([sa.Column("userid", _text(site, user, "userid"))],
                                   ["userid"], "adopt")
                ordinal = 0
                for batch in batches:
                    tuples = []
                    for row in batch:
                        ordinal += 1
                        text = row.get("userid")
                        if isinstance(text, str) and text.strip():
                            tuples.append((row.get(LINE, ordinal), forma.userid_absolute(text)))
                    stage.add(tuples)
                stage.finish()
                list(stage.duplicates())
                source = user.join(stage.table, stage.table.c.userid == user.c.userid)
            found = int(site.execute(sa.select(sa.func.count()).select_from(source)
                                     .where(*where), "counting users to adopt").scalar_one())
            if context.dry_run or not found:
                transaction.rollback()
                return found
            owner = site.owner_group("users", context.owner)
            site.execute(sa.insert(members).from_select(
                ["idst", "idstMember", "filter"],
                sa.select(sa.literal(owner), user.c.idst, sa.literal(""))
                .select_from(source).where(*where)), "adopting users")
            context.check_lease(site.conn)
            transaction.commit()
            return found

    def open_site(self, context: RunContext, write: bool) -> _Opened:
        return _Opened(self.database_url(context), self.params.get("prefix") or "", write)


class _Opened:
    """``with`` a Site on a fresh connection (forma.connect)."""

    def __init__(self, url: str, prefix: str, write: bool) -> None:
        self.url, self.prefix, self.write = url, prefix, write

    def __enter__(self) -> Site:
        self._connection = forma.connect(self.url, self.write)
        conn = self._connection.__enter__()
        return _TimedSite(conn, self.prefix, self.url)

    def __exit__(self, *exc: Any) -> None:
        self._connection.__exit__(*exc)


class _TimedSite(Site):
    """A Site whose statements are timed in the debug log, like the staging steps."""

    def execute(self, statement: sa.Executable, what: str) -> Any:
        started = time.perf_counter()
        result = super().execute(statement, what)
        log.debug("%s: %.2fs", what, time.perf_counter() - started)
        return result

    def allocate(self, count: int) -> list[int]:
        started = time.perf_counter()
        ids = super().allocate(count)
        log.debug("allocating %d ids: %.2fs", count, time.perf_counter() - started)
        return ids


# --- the site's custom fields and units ---------------------------------------------------

def _fields(site: Site) -> dict[str, set[int]]:
    """Each custom field's name (its translation in any language): the id_common it names."""
    field = site.table("core_field")
    found: dict[str, set[int]] = {}
    for name, id_common in site.execute(sa.select(field.c.translation, field.c.id_common),
                                        "reading custom fields"):
        if name:
            found.setdefault(name, set()).add(int(id_common))
    return found


def _field_names(site: Site) -> dict[int, str]:
    """The name ``read`` gives each custom field: its first translation (the lowest idField),
    unless another field already has that name."""
    field = site.table("core_field")
    names: dict[int, str] = {}
    for id_common, name in site.execute(
            sa.select(field.c.id_common, field.c.translation).order_by(field.c.idField),
            "reading custom fields"):
        if name and int(id_common) not in names and name not in names.values():
            names[int(id_common)] = name
    return names


def _units(site: Site) -> dict[str, list[tuple[int, int]]]:
    """Each org unit code: the (idst_oc, idst_ocd) of the units that have it."""
    tree = site.table("core_org_chart_tree")
    found: dict[str, list[tuple[int, int]]] = {}
    for code, oc, ocd in site.execute(
            sa.select(tree.c.code, tree.c.idst_oc, tree.c.idst_ocd), "reading org units"):
        if code:
            found.setdefault(code.strip(), []).append((int(oc), int(ocd)))
    return found


def _text(site: Site, table: sa.Table, name: str, length: int | None = None) -> Any:
    """A staging column type for text compared with ``table.name``: on MySQL in the table's
    character set and collation, so that joins use its index and match as forma does."""
    column = table.c[name]
    length = length or getattr(column.type, "length", None)
    if site.backend != "mysql":
        return sa.String(length) if length else sa.Text()
    charset = getattr(column.type, "charset", None) or table.dialect_options["mysql"].get(
        "default charset")
    collation = getattr(column.type, "collation", None)
    if length:
        return mysql.VARCHAR(length, charset=charset, collation=collation)
    return mysql.TEXT(charset=charset, collation=collation)


def _three_byte(site: Site, table: sa.Table) -> bool:
    """A MySQL table in 3-byte utf8, which cannot hold characters beyond U+FFFF (emoji)."""
    if site.backend != "mysql":
        return False
    charset = str(table.dialect_options["mysql"].get("default charset") or "").lower()
    return charset in ("utf8", "utf8mb3")


def _binary(site: Site, value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """Text compared byte for byte: a case-insensitive collation would call "Renamed" and
    "renamed" the same."""
    return sa.cast(value, mysql.BINARY()) if site.backend == "mysql" else value


def _differs(site: Site, new: sa.ColumnElement[Any],
             old: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """A value given (not NULL: an empty cell changes nothing) and not the stored one."""
    return sa.and_(new.is_not(None), _binary(site, old).is_distinct_from(_binary(site, new)))


# --- one write ----------------------------------------------------------------------------

class _Plan:
    """One run's rows staged in temporary tables, its change set, and its application."""

    def __init__(self, site: Site, context: RunContext, removal: str) -> None:
        self.reactivate = context.import_type == "sync" and removal == "suspend"
        self.site, self.context, self.removal = site, context, removal
        self.user = site.table("core_user")
        self.members = site.table("core_group_members")
        self.setting = site.table("core_setting_user")
        self.entries = site.table("core_field_userentry")
        self.group = site.table("core_group")
        user = self.user
        self.lengths = {name: getattr(user.c[name].type, "length", None) or 255
                        for name in ("userid", "firstname", "lastname", "email")}
        self.narrow = _three_byte(site, user)
        self.narrow_entries = _three_byte(site, self.entries)
        self.fields = _fields(site)
        self.units = _units(site)
        uid = _text(site, user, "userid")
        self.users = site.stage(
            [sa.Column("userid", uid),
             *(sa.Column(name, _text(site, user, name))
               for name in ("firstname", "lastname", "email")),
             sa.Column("valid", sa.SmallInteger),
             sa.Column("language", _text(site, self.setting, "value", 255)),
             sa.Column("has_tree", sa.SmallInteger)], ["userid"], "users")
        self.places = site.stage([sa.Column("userid", uid), sa.Column("idst", sa.Integer)],
                                 ["userid", "idst"], "places")
        self.values = site.stage([sa.Column("userid", uid), sa.Column("id_common", sa.Integer),
                                  sa.Column("entry", _text(site, self.entries, "user_entry"))],
                                 ["userid", "id_common"], "values")
        self.kept = site.stage([sa.Column("userid", uid)], ["userid"], "kept")
        self.fresh = site.stage([sa.Column("userid", uid), sa.Column("idst", sa.Integer)],
                                ["userid"], "fresh")
        self.token = secrets.token_hex(4)
        self.columns: list[str] | None = None
        self.shape: set[str] = set()  # the first row's columns, which every row must have
        self.shape_lined: set[str] = set()
        self.field_columns: dict[str, int] = {}
        self.ordinal = 0
        self.owner_id: int | None = None
        self.plus: sa.Table | None = None  # (group, user) memberships to add
        self.minus: sa.Table | None = None  # ... and to remove
        self.touched: sa.Table | None = None  # existing users with any change (repeated)
        self.gone: sa.Table | None = None  # users a sync removes

    # --- rows in ----------------------------------------------------------------------

    def _start(self, row: dict[str, Any]) -> None:
        """The first row's columns checked once: an unknown one stops the run."""
        names = [name for name in row if name != LINE]
        known_fields = sorted(self.fields)
        for name in names:
            if name == "pass":
                raise FormaError(f"column 'pass' is not taken: {PASSWORDS}")
            if name.startswith(FIELD):
                field = name[len(FIELD):]
                ids = self.fields.get(field)
                if not ids:
                    raise FormaError(
                        f"column {name!r}: the site has no custom field {field!r} (its fields: "
                        f"{', '.join(known_fields) or 'none'}); nothing was applied")
                if len(ids) > 1:
                    raise FormaError(
                        f"column {name!r}: {len(ids)} different custom fields are named "
                        f"{field!r} (id_common {', '.join(map(str, sorted(ids)))}): rename one "
                        "in forma; nothing was applied")
                self.field_columns[name] = next(iter(ids))
            elif name not in COLUMNS:
                known = [*COLUMNS, *(FIELD + field for field in known_fields)]
                raise FormaError(f"column {name!r} is not a forma-users column (known: "
                                 f"{', '.join(known)}); nothing was applied")
        if "userid" not in names:
            raise FormaError("the rows have no column 'userid', the key of a user: map one")
        self.columns = names
        self.shape, self.shape_lined = set(names), {*names, LINE}

    def add(self, batch: Batch) -> None:
        users: list[tuple[Any, ...]] = []
        places: list[tuple[Any, ...]] = []
        values: list[tuple[Any, ...]] = []
        kept: list[tuple[Any, ...]] = []
        for row in batch:
            if self.columns is None:
                self._start(row)
            self.ordinal += 1
            line = int(row.get(LINE, self.ordinal))
            try:
                user, units, fields = self._convert(row)
            except _Bad as bad:
                userid = row.get("userid")
                shown = f"userid={userid}" if userid is not None else None
                self.context.row_error(RowError(row_index=line, key_values=shown,
                                                column=bad.column, message=bad.message))
                if bad.userid is not None:
                    kept.append((line, bad.userid))
                continue
            users.append((line, *user))
            places.extend((line, user[0], idst) for idst in units)
            values.extend((line, user[0], id_common, text) for id_common, text in fields)
        self.users.add(users)
        self.places.add(places)
        self.values.add(values)
        self.kept.add(kept)

    def _convert(self, row: dict[str, Any]) -> tuple[tuple[Any, ...], list[int],
                                                    list[tuple[int, str]]]:
        keys = row.keys()
        if keys != self.shape and keys != self.shape_lined:
            extra = sorted(keys - {LINE} - set(self.columns or ()))
            if extra:
                self._start(row)  # an unknown column stops the run
            raise _Bad("userid", None, "the row does not have the columns of the first row")
        raw = _cell(row.get("userid"))
        if not raw:
            raise _Bad("userid", None, "the key column 'userid' is empty: every user needs one")
        userid = forma.userid_absolute(raw)
        self._check_line(userid, "userid", None)
        if userid in ("/", ANONYMOUS):
            raise _Bad("userid", None, f"userid {raw!r} cannot be imported: it is forma's "
                       "anonymous user")
        if len(userid) > self.lengths["userid"]:
            raise _Bad("userid", None, f"userid {raw[:40]!r}... is {len(raw)} characters long, "
                       f"the site holds {self.lengths['userid'] - 1}")
        values: list[Any] = [userid]
        for name in ("firstname", "lastname", "email"):
            text = _cell(row.get(name))
            if text:
                self._check_line(text, name, userid)
                if len(text) > self.lengths[name]:
                    raise _Bad(name, userid, f"{name} is {len(text)} characters long, the "
                               f"site holds {self.lengths[name]}: shorten it")
                if name == "email" and not _EMAIL.fullmatch(text):
                    raise _Bad(name, userid, f"{text!r} is not an e-mail address "
                               "(name@domain)")
            values.append(text or None)
        valid = _cell(row.get("valid"))
        if not valid:
            # a sync's file lists who is there now: someone it lists is active, so an employee
            # a sync suspended is active again when she comes back
            values.append(1 if self.reactivate else None)
        elif valid.lower() in TRUE_WORDS:
            values.append(1)
        elif valid.lower() in FALSE_WORDS:
            values.append(0)
        else:
            raise _Bad("valid", userid, f"valid {valid[:40]!r} is not 1/0, true/false or "
                       "yes/no")
        language = _cell(row.get("language"))
        if language:
            self._check_line(language, "language", userid)
            if len(language) > 255:
                raise _Bad("language", userid, f"language is {len(language)} characters long: "
                           "a forma language name is short (english, italian, ...)")
        values.append(language or None)
        tree = _cell(row.get("tree_code"))
        units: list[int] = []
        codes = [code.strip() for code in tree.split("#") if code.strip()] if tree else []
        for code in dict.fromkeys(codes):
            found = self.units.get(code)
            if not found:
                raise _Bad("tree_code", userid, f"no org unit has code {code[:80]!r}: create "
                           "the unit first (or correct the code)")
            if len(found) > 1:
                raise _Bad("tree_code", userid, f"{len(found)} org units have code "
                           f"{code[:80]!r}: give each its own code in forma")
            oc, ocd = found[0]
            if not oc or not ocd:
                raise _Bad("tree_code", userid, f"org unit {code[:80]!r} has no groups "
                           "(idst_oc/idst_ocd 0): repair it in forma")
            units.extend(idst for idst in (oc, ocd) if idst not in units)
        values.append(1 if codes else 0)
        fields = []
        for column, id_common in self.field_columns.items():
            text = _cell(row.get(column))
            if not text:
                continue
            if _CONTROL_TEXT.search(text) or (self.narrow_entries and _ASTRAL.search(text)):
                raise _Bad(column, userid, f"{column} holds a control character or one the "
                           "site's 3-byte utf8 cannot store (emoji): remove it")
            if len(text.encode("utf-8")) > TEXT_BYTES:
                raise _Bad(column, userid, f"{column} is {len(text)} characters long, more "
                           "than the site holds (64 KB)")
            fields.append((id_common, text))
        return tuple(values), units, fields

    def _check_line(self, text: str, column: str, userid: str | None) -> None:
        if _CONTROL.search(text):
            raise _Bad(column, userid, f"{column} holds a control character (a line break, "
                       "tab, ...): remove it")
        if self.narrow and _ASTRAL.search(text):
            raise _Bad(column, userid, f"{column} holds a character the site's 3-byte utf8 "
                       "cannot store (an emoji, ...): remove it")

    def finish(self) -> None:
        for stage in (self.users, self.places, self.values, self.kept):
            stage.finish()
        repeated = []
        for line, key, first in self.users.duplicates():
            repeated.append(line)
            userid = forma.userid_relative(str(key[0]))
            self.context.row_error(RowError(
                row_index=line, key_values=f"userid={userid}", column="userid",
                message=f"duplicate key userid={userid}: also on line {first}"))
        for start in range(0, len(repeated), 1000):
            part = repeated[start:start + 1000]
            for stage in (self.places, self.values):
                self.site.execute(sa.delete(stage.table).where(
                    stage.table.c[LINE_COLUMN].in_(part)), "dropping duplicate rows")

    # --- the change set ---------------------------------------------------------------

    def _temp(self, kind: str, *names: str, unique: bool = True) -> sa.Table:
        parts: list[Any] = [sa.Column(name, sa.Integer, nullable=False, autoincrement=False)
                            for name in names]
        if unique:
            parts.append(sa.PrimaryKeyConstraint(*names))
        table = sa.Table(f"iotask_{self.token}_{kind}", sa.MetaData(), *parts,
                         prefixes=["TEMPORARY"])
        self.site.execute(sa.schema.CreateTable(table), f"creating the {kind} table")
        return table

    def _count(self, statement: sa.Executable, what: str) -> int:
        return int(self.site.execute(statement, what).rowcount)

    def change_set(self) -> ChangeSet:
        site, user, members = self.site, self.user, self.members
        stage, places, values = self.users.table, self.places.table, self.values.table
        setting, entries, group = self.setting, self.entries, self.group
        matched = user.c.userid == stage.c.userid
        changes = ChangeSet(removal="deactivate" if self.removal == "suspend" else "delete")
        changes.inserted = int(site.execute(
            sa.select(sa.func.count()).select_from(stage.outerjoin(user, matched))
            .where(user.c.idst.is_(None)), "counting new users").scalar_one())

        orgs = self._temp("orgs", "idst")
        site.execute(sa.insert(orgs).from_select(["idst"], sa.select(group.c.idst).where(
            sa.or_(group.c.groupid.startswith("/oc_", autoescape=True),
                   group.c.groupid.startswith("/ocd_", autoescape=True)),
            group.c.groupid.not_in([forma.ROOT_OC, forma.ROOT_OCD]))), "finding org groups")
        self.plus = plus = self._temp("plus", "idst", "member")
        site.execute(sa.insert(plus).from_select(
            ["idst", "member"],
            sa.select(places.c.idst, user.c.idst)
            .select_from(places.join(user, user.c.userid == places.c.userid)
                         .outerjoin(members, sa.and_(members.c.idst == places.c.idst,
                                                     members.c.idstMember == user.c.idst)))
            .where(members.c.idst.is_(None))), "finding memberships to add")
        self.minus = minus = self._temp("minus", "idst", "member")
        site.execute(sa.insert(minus).from_select(
            ["idst", "member"],
            sa.select(members.c.idst, members.c.idstMember)
            .select_from(stage.join(user, matched)
                         .join(members, members.c.idstMember == user.c.idst)
                         .join(orgs, orgs.c.idst == members.c.idst)
                         .outerjoin(places, sa.and_(places.c.userid == stage.c.userid,
                                                    places.c.idst == members.c.idst)))
            .where(stage.c.has_tree == 1, places.c.userid.is_(None))),
            "finding memberships to remove")

        self.touched = touched = self._temp("touched", "idst", unique=False)
        finds = [
            sa.select(user.c.idst).select_from(stage.join(user, matched)).where(sa.or_(
                *(_differs(site, stage.c[name], user.c[name])
                  for name in ("firstname", "lastname", "email")),
                sa.and_(stage.c.valid.is_not(None), stage.c.valid != user.c.valid))),
            sa.select(user.c.idst).select_from(
                stage.join(user, matched).outerjoin(setting, sa.and_(
                    setting.c.path_name == LANGUAGE, setting.c.id_user == user.c.idst)))
            .where(stage.c.language.is_not(None), sa.or_(
                setting.c.id_user.is_(None),
                _differs(site, stage.c.language, setting.c.value))),
            sa.select(user.c.idst).select_from(
                values.join(user, user.c.userid == values.c.userid).outerjoin(entries, sa.and_(
                    entries.c.id_common == values.c.id_common, entries.c.id_common_son == 0,
                    entries.c.id_user == user.c.idst)))
            .where(sa.or_(entries.c.id_user.is_(None),
                          _differs(site, values.c.entry, entries.c.user_entry))),
            sa.select(plus.c.member),
            sa.select(minus.c.member),
        ]
        for find in finds:
            site.execute(sa.insert(touched).from_select(["idst"], find), "finding changes")
        changes.updated = int(site.execute(
            sa.select(sa.func.count(sa.distinct(touched.c.idst))), "counting changed users")
            .scalar_one())
        changes.unchanged = self.users.staged - changes.inserted - changes.updated

        if self.context.import_type == "sync":
            self._find_gone(changes)
        if self.context.dry_run:
            changes.samples = self._samples()
        return changes

    def _find_gone(self, changes: ChangeSet) -> None:
        """The users the source owns that the file no longer has (its rejected rows kept)."""
        site, user, members = self.site, self.user, self.members
        stage, kept = self.users.table, self.kept.table
        name = forma.OWNER_GROUP.format(kind="users", owner=self.context.owner)
        self.owner_id = site.group_ids([name]).get(name)
        self.gone = gone = self._temp("gone", "idst")
        if self.owner_id is None:
            return
        owned = members.join(user, user.c.idst == members.c.idstMember)
        changes.owned = int(site.execute(
            sa.select(sa.func.count()).select_from(owned)
            .where(members.c.idst == self.owner_id), "counting owned users").scalar_one())
        where = [members.c.idst == self.owner_id, stage.c.userid.is_(None),
                 kept.c.userid.is_(None)]
        if self.removal == "suspend":
            where.append(user.c.valid != 0)
        changes.removed = self._count(sa.insert(gone).from_select(
            ["idst"], sa.select(user.c.idst).select_from(
                owned.outerjoin(stage, stage.c.userid == user.c.userid)
                .outerjoin(kept, kept.c.userid == user.c.userid)).where(*where)),
            "finding users to remove")

    def _samples(self) -> dict[str, list[str]]:
        site, user, stage = self.site, self.user, self.users.table
        assert self.touched is not None
        queries = {
            "insert": sa.select(stage.c.userid).select_from(
                stage.outerjoin(user, user.c.userid == stage.c.userid))
            .where(user.c.idst.is_(None)).order_by(stage.c[LINE_COLUMN]),
            "update": sa.select(user.c.userid).where(
                user.c.idst.in_(sa.select(self.touched.c.idst))).order_by(user.c.userid),
        }
        if self.gone is not None:
            queries["remove"] = sa.select(user.c.userid).where(
                user.c.idst.in_(sa.select(self.gone.c.idst))).order_by(user.c.userid)
        return {kind: [f"userid={forma.userid_relative(userid)}" for (userid,) in
                       site.execute(query.limit(SAMPLE_KEYS), "sampling changes")]
                for kind, query in queries.items()}

    # --- applying ---------------------------------------------------------------------

    def apply(self, changes: ChangeSet) -> ChangeSet:
        done = ChangeSet(removal=changes.removal, owned=changes.owned,
                         updated=changes.updated)
        if changes.removed and self.gone is not None:
            done.removed = self._remove(self.gone)
        self._update()
        done.inserted = self._insert(changes.inserted)
        self._settings()
        self._memberships()
        done.unchanged = self.users.staged - done.inserted - done.updated
        return done

    def _remove(self, gone: sa.Table) -> int:
        return remove_users(self.site, sa.select(gone.c.idst), self.removal)

    def _update(self) -> None:
        site, user, stage = self.site, self.user, self.users.table
        matched = user.c.userid == stage.c.userid
        for name in ("firstname", "lastname", "email"):
            site.execute(sa.update(user).where(matched, _differs(site, stage.c[name],
                                                                 user.c[name]))
                         .values({user.c[name]: stage.c[name]}), f"updating {name}")
        site.execute(sa.update(user).where(matched, stage.c.valid.is_not(None),
                                           stage.c.valid != user.c.valid)
                     .values({user.c.valid: stage.c.valid}), "updating valid")

    def _insert(self, count: int) -> int:
        """New users: ids from core_st paired with the new userids in file order, 20,000 at a
        time (flat memory), staged, then one INSERT ... SELECT."""
        if not count:
            return 0
        site, user, stage = self.site, self.user, self.users.table
        line, userid = stage.c[LINE_COLUMN], _binary(site, stage.c.userid)
        query = (sa.select(line, stage.c.userid)
                 .select_from(stage.outerjoin(user, user.c.userid == stage.c.userid))
                 .where(user.c.idst.is_(None)).order_by(line, userid).limit(20_000))
        part: list[tuple[int, str]] = []
        while True:
            after = query if not part else query.where(sa.or_(
                line > part[-1][0], sa.and_(line == part[-1][0],
                                            userid > _binary(site, sa.literal(part[-1][1])))))
            part = [(int(n), u) for n, u in site.execute(after, "listing new users")]
            if not part:
                break
            ids = site.allocate(len(part))
            self.fresh.add([(n, u, idst) for (n, u), idst in zip(part, ids, strict=True)])
        self.fresh.finish()
        fresh = self.fresh.table
        now = datetime.now(self.context.timezone).replace(tzinfo=None, microsecond=0)
        columns = {
            "idst": fresh.c.idst, "userid": stage.c.userid,
            "firstname": sa.func.coalesce(stage.c.firstname, ""),
            "lastname": sa.func.coalesce(stage.c.lastname, ""),
            "email": sa.func.coalesce(stage.c.email, ""),
            "pass": sa.literal(""), "signature": sa.literal(""),
            "valid": sa.func.coalesce(stage.c.valid, 1),
            "register_date": sa.literal(now, type_=user.c.register_date.type),
        }
        return self._count(sa.insert(user).from_select(
            list(columns), sa.select(*columns.values()).select_from(
                stage.join(fresh, fresh.c.userid == stage.c.userid))), "inserting users")

    def _settings(self) -> None:
        """Language and custom fields: changed values updated, missing ones inserted (new and
        existing users alike)."""
        site, user, stage = self.site, self.user, self.users.table
        setting, entries, values = self.setting, self.entries, self.values.table
        site.execute(sa.update(setting).where(
            setting.c.path_name == LANGUAGE, setting.c.id_user == user.c.idst,
            user.c.userid == stage.c.userid, _differs(site, stage.c.language, setting.c.value))
            .values({setting.c.value: stage.c.language}), "updating languages")
        site.execute(sa.insert(setting).from_select(
            ["path_name", "id_user", "value"],
            sa.select(sa.literal(LANGUAGE), user.c.idst, stage.c.language).select_from(
                stage.join(user, user.c.userid == stage.c.userid).outerjoin(setting, sa.and_(
                    setting.c.path_name == LANGUAGE, setting.c.id_user == user.c.idst)))
            .where(stage.c.language.is_not(None), setting.c.id_user.is_(None))),
            "inserting languages")
        site.execute(sa.update(entries).where(
            entries.c.id_common == values.c.id_common, entries.c.id_common_son == 0,
            entries.c.id_user == user.c.idst, user.c.userid == values.c.userid,
            _differs(site, values.c.entry, entries.c.user_entry))
            .values({entries.c.user_entry: values.c.entry}), "updating custom fields")
        site.execute(sa.insert(entries).from_select(
            ["id_common", "id_common_son", "id_user", "user_entry"],
            sa.select(values.c.id_common, sa.literal(0), user.c.idst, values.c.entry)
            .select_from(values.join(user, user.c.userid == values.c.userid)
                         .outerjoin(entries, sa.and_(
                             entries.c.id_common == values.c.id_common,
                             entries.c.id_common_son == 0, entries.c.id_user == user.c.idst)))
            .where(entries.c.id_user.is_(None))), "inserting custom fields")

    def _memberships(self) -> None:
        """The org unit memberships that go, then those that come: the existing users' found
        by change_set, the new users' root, level, owner and unit groups."""
        site, members = self.site, self.members
        plus, minus = self.plus, self.minus
        assert plus is not None and minus is not None
        if site.backend == "sqlite":
            found: sa.ColumnElement[bool] = sa.tuple_(
                members.c.idst, members.c.idstMember).in_(sa.select(minus.c.idst, minus.c.member))
        else:
            found = sa.and_(members.c.idst == minus.c.idst, members.c.idstMember == minus.c.member)
        site.execute(sa.delete(members).where(found), "removing org unit memberships")
        fresh, places = self.fresh.table, self.places.table
        if self.fresh.staged:
            site.execute(sa.insert(plus).from_select(
                ["idst", "member"], sa.select(places.c.idst, fresh.c.idst).select_from(
                    places.join(fresh, fresh.c.userid == places.c.userid))),
                "placing new users in their units")
            groups = [site.seed_group(forma.ROOT_OC), site.seed_group(forma.ROOT_OCD),
                      site.seed_group(forma.LEVEL_USER)]
            if self.context.owner:
                groups.append(self.owner_id or site.owner_group("users", self.context.owner))
            for idst in dict.fromkeys(groups):
                site.execute(sa.insert(plus).from_select(
                    ["idst", "member"], sa.select(sa.literal(idst), fresh.c.idst)),
                    "placing new users in the root groups")
        site.execute(sa.insert(members).from_select(
            ["idst", "idstMember", "filter"],
            sa.select(plus.c.idst, plus.c.member, sa.literal("")).select_from(
                plus.outerjoin(members, sa.and_(members.c.idst == plus.c.idst,
                                                members.c.idstMember == plus.c.member)))
            .where(members.c.idst.is_(None))), "adding memberships")


def remove_users(site: Site, ids: sa.Select[Any], removal: str) -> int:
    """The users ``ids`` selects removed as ``removal`` says: suspended (valid = 0) or deleted
    with their memberships, settings and custom fields (enrollments kept); how many."""
    user, members = site.table("core_user"), site.table("core_group_members")
    if removal == "suspend":
        return int(site.execute(sa.update(user).where(user.c.idst.in_(ids)).values(valid=0),
                                "suspending users").rowcount)
    site.execute(sa.delete(members).where(members.c.idstMember.in_(ids)),
                 "deleting the removed users' memberships")
    site.execute(sa.delete(site.table("core_setting_user")).where(
        site.table("core_setting_user").c.id_user.in_(ids)),
        "deleting the removed users' settings")
    site.execute(sa.delete(site.table("core_field_userentry")).where(
        site.table("core_field_userentry").c.id_user.in_(ids)),
        "deleting the removed users' custom fields")
    return int(site.execute(sa.delete(user).where(user.c.idst.in_(ids)),
                            "deleting users").rowcount)


class _Bad(Exception):
    """A row that cannot be applied: its column, its userid (when it has one) and why."""

    def __init__(self, column: str, userid: str | None, message: str) -> None:
        super().__init__(message)
        self.column, self.userid, self.message = column, userid, message


def _cell(value: Any) -> str:
    """A cell as text, spaces around cut; None is empty."""
    if isinstance(value, str):
        return value.strip()
    return "" if value is None else str(value).strip()


CONNECTOR = FormaUsersConnector
