"""``forma-enrollments``: who is enrolled in which course of a forma.lms / Docebo site
(``learning_courseuser``), and their completions, by ``userid`` and course ``code``.

Unlike Docebo's own connector this one writes completions: ``status`` completed (2) with
``date_complete`` (now when the file leaves it empty) and ``score``. The enrolled user is a
member of the course's ``/lms/course/<id>/subscribed/<level>`` group, moved when the level
changes; each status change appends a ``learning_statuschangelog`` row. The feed updates every
enrollment it names (enrolled by hand or by another feed too: HR is the reference for
completions), but a sync removes only the enrollments this task's source created
(``imported_from_connection``) that its file no longer has — Docebo's connector suspended every
enrollment there was. Removal: ``remove=suspend`` (the default, status 3) or ``unsubscribe``
(the enrollment and its level-group membership are deleted). With suspend, an enrollment the
sync suspended that comes back in the file without a status is subscribed again (0); one
suspended by hand or by another feed keeps its status.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from iotask.connectors import forma
from iotask.connectors.context import SAMPLE_KEYS, Batch, ChangeSet, Column, RowError, RunContext
from iotask.connectors.errors import SettingsError
from iotask.connectors.forma_courses import (
    BATCH_SIZE,
    LEVEL_CHUNK,
    LEVEL_GROUP,
    MAX_INT,
    a_datetime,
    ambiguous_codes,
    check_columns,
    check_key,
    chunks,
    coded,
    course_index,
    ensure_level_groups,
    held_twice,
    integer,
    narrow_text,
    now_in,
    text_converter,
)
from iotask.connectors.settings import Setting
from iotask.connectors.sql import LINE
from iotask.connectors.staging import LINE_COLUMN, Stage

REMOVALS = ("suspend", "unsubscribe")
SUSPENDED = 3
COMPLETED = 2
STUDENT = 3
SUBSCRIBED = 0
KEYS = ("userid", "code")
NAMES = ["userid", "code", "level", "date_subscription", "status", "date_complete", "score"]
OK, UID, CID, EXISTS, MEMBER = "iotask_ok", "iotask_uid", "iotask_cid", "iotask_exists", \
    "iotask_member"
OLD_OWNER = "iotask_old_owner"
VALUES = ("level", "date_inscr", "status", "date_complete", "score_given")  # courseuser columns
OLD, NEW = "old_", "new_"


def score(value: Any) -> int | None:
    return integer(value, -MAX_INT - 1, MAX_INT, "a whole-number score")


class FormaEnrollmentsConnector(forma.FormaConnector):
    type_name = "forma-enrollments"
    description = ("Enrollments and completions in the courses of a forma.lms / Docebo site "
                   "(learning_courseuser), by userid and course code")
    can_read = True
    can_write = True
    settings = forma.SETTINGS + (
        Setting("remove", choices=REMOVALS, default="suspend",
                help="what sync does with the enrollments its source created that the file no "
                     "longer has: suspend (default: status 3) or unsubscribe (delete them)"),
        Setting("only_status",
                help="reading: only the enrollments in this status, as a word or number "
                     "(e.g. completed, for an export of completions); default: every one"),
    )

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        super().check_settings(params)
        if params.get("only_status") is not None:
            try:
                forma.code_of(params["only_status"], forma.ENROLLMENT_STATUSES, "status")
            except ValueError as exc:
                raise SettingsError(f"setting 'only_status': {exc}") from None

    def location(self) -> str:
        return "the forma enrollments (learning_courseuser)"

    def columns(self, context: RunContext) -> list[Column] | None:
        types = {"userid": "VARCHAR", "code": "VARCHAR", "level": "INTEGER",
                 "date_subscription": "DATETIME", "status": "INTEGER",
                 "date_complete": "DATETIME", "score": "INTEGER"}
        return [Column(name, required=name in KEYS, key=name in KEYS, type=types[name],
                       default={"level": "3 student", "status": "0 subscribed"}.get(name))
                for name in NAMES]

    # --- reading ----------------------------------------------------------------------

    def read(self, context: RunContext) -> Iterator[Batch]:
        """Every enrollment (edition 0; with ``only_status``, those in that status), by userid
        and code: levels and statuses as words, times as YYYY-MM-DD HH:MM:SS (empty: none)."""
        url = self.database_url(context)
        with forma.connect(url, write=False) as conn:
            site = forma.Site(conn, self.params.get("prefix") or "", url)
            cu, user, course = (site.table(name) for name in
                                ("learning_courseuser", "core_user", "learning_course"))
            query = (sa.select(user.c.userid, course.c.code, cu.c.level, cu.c.date_inscr,
                               cu.c.status, cu.c.date_complete, cu.c.score_given)
                     .select_from(cu.join(user, user.c.idst == cu.c.idUser)
                                  .join(course, course.c.idCourse == cu.c.idCourse))
                     .where(cu.c.edition_id == 0)
                     .order_by(user.c.userid, course.c.code, course.c.idCourse))
            if self.params.get("only_status") is not None:
                query = query.where(cu.c.status == forma.code_of(
                    self.params["only_status"], forma.ENROLLMENT_STATUSES, "status"))
            result = conn.execution_options(stream_results=True, yield_per=BATCH_SIZE
                                            ).execute(query)
            for part in result.partitions(BATCH_SIZE):
                yield [{"userid": forma.userid_relative(userid), "code": code,
                        "level": forma.LEVELS.get(int(level), str(level)),
                        "date_subscription": _time(inscr),
                        "status": forma.ENROLLMENT_STATUSES.get(int(status), str(status)),
                        "date_complete": _time(complete),
                        "score": "" if given is None else str(int(given))}
                       for userid, code, level, inscr, status, complete, given in part]

    # --- writing ----------------------------------------------------------------------

    def check_write(self, context: RunContext) -> None:
        check_key(context, KEYS, self.type_name)
        if context.import_type == "sync" and not context.owner:
            raise forma.FormaError("import type sync needs the name of the source connection "
                                   "to know which enrollments it owns")

    def write_in(self, site: forma.Site, batches: Iterable[Batch],
                 context: RunContext) -> forma.Step:
        self.check_write(context)
        removal = self.params.get("remove") or "suspend"
        sync = context.import_type == "sync"
        owner = context.owner
        now = now_in(context)
        cu = site.table("learning_courseuser")
        stage = self._load(site, batches, context)
        st = stage.table
        self._resolve(site, st, context)
        groups = self._level_groups(site, sa.select(st.c[CID]).where(st.c[OK] == 1))
        # a sync suspends the source's enrollments its file no longer has: back in the file
        # without a status, such an enrollment is subscribed again
        revive = owner if sync and removal == "suspend" else None
        self._compare(site, cu, st, groups, now, revive)

        ok = st.c[OK] == 1
        new = sa.and_(ok, st.c[EXISTS].is_(None))
        values_changed = sa.or_(*(st.c[NEW + name].is_distinct_from(st.c[OLD + name])
                                  for name in VALUES))
        changed = sa.and_(ok, st.c[EXISTS] == 1,
                          sa.or_(values_changed, st.c[MEMBER].is_(None)))
        owned_where = [cu.c.imported_from_connection == owner]
        if removal == "suspend":
            owned_where.append(cu.c.status != SUSPENDED)
        seen = _seen(site, st)
        gone = [*owned_where, ~sa.exists().where(seen.c.idUser == cu.c.idUser,
                                                 seen.c.idCourse == cu.c.idCourse)]

        changes = ChangeSet(removal="deactivate" if removal == "suspend" else "delete")
        changes.inserted = _count(site, st, new)
        changes.updated = _count(site, st, changed)
        staged_ok = _count(site, st, ok)
        changes.unchanged = staged_ok - changes.inserted - changes.updated
        if sync:
            changes.owned = _count(site, cu, sa.and_(*owned_where))
            changes.removed = _count(site, cu, sa.and_(*gone))
        if context.dry_run:
            changes.samples = self._samples(site, cu, st, new, changed,
                                            gone if sync else None)

        def apply() -> ChangeSet:
            done = ChangeSet(removal=changes.removal, owned=changes.owned)
            done.removed = self._remove(site, cu, gone, removal, now) \
                if sync and changes.removed else 0
            self._log_status(site, st, sa.and_(ok, sa.or_(
                st.c[EXISTS].is_(None),
                st.c[NEW + "status"].is_distinct_from(st.c[OLD + "status"]))), now)
            self._move_memberships(site, st, groups, changed, new)
            if changes.updated:
                site.execute(sa.update(cu).where(
                    cu.c.idUser == st.c[UID], cu.c.idCourse == st.c[CID], cu.c.edition_id == 0,
                    ok, st.c[EXISTS] == 1, values_changed)
                    .values({cu.c[name]: st.c[NEW + name] for name in VALUES}),
                    "updating enrollments")
                done.updated = changes.updated
            if changes.inserted:
                names = ["idUser", "idCourse", "edition_id", "imported_from_connection",
                         *VALUES]
                complete = cu.c.date_complete
                rows = sa.select(st.c[UID], st.c[CID], sa.literal(0, sa.Integer()),
                                 sa.literal(owner, cu.c.imported_from_connection.type),
                                 *(sa.func.coalesce(st.c[NEW + name], site.no_date(complete))
                                   if name == "date_complete" else st.c[NEW + name]
                                   for name in VALUES)).where(new)
                done.inserted = int(site.execute(sa.insert(cu).from_select(names, rows),
                                                 "inserting enrollments").rowcount)
            done.unchanged = staged_ok - done.inserted - done.updated
            return done

        return forma.Step(changes, apply)

    def adopt(self, batches: Iterable[Batch], context: RunContext, everything: bool) -> int:
        """Make the source the owner of the enrollments no connection owns (made in the LMS)
        whose userid and code the rows hold, or of every one of them (``everything``)."""
        url = self.database_url(context)
        with forma.connect(url, write=True) as conn, conn.begin() as transaction:
            site = forma.Site(conn, self.params.get("prefix") or "", url)
            cu = site.table("learning_courseuser")
            where: list[sa.ColumnElement[bool]] = [cu.c.imported_from_connection.is_(None)]
            if not everything:
                stage = self._load(site, batches, None)
                st = stage.table
                self._lookup(site, st, course_index(site))
                where.append(sa.exists().where(st.c[UID] == cu.c.idUser,
                                               st.c[CID] == cu.c.idCourse))
            found = _count(site, cu, sa.and_(*where))
            if context.dry_run or not found:
                transaction.rollback()
                return found
            site.execute(sa.update(cu).where(*where)
                         .values(imported_from_connection=context.owner),
                         "adopting enrollments")
            context.check_lease(conn)
            transaction.commit()
            return found

    # --- the parts ----------------------------------------------------------------------

    def _load(self, site: forma.Site, batches: Iterable[Batch],
              context: RunContext | None) -> Stage:
        """Every row converted and staged; a bad value is a row error, and its row is staged
        as rejected (ok 0) when its keys are good, so that a sync keeps its enrollment.
        ``context`` None (adopt): bad rows are left out silently."""
        course, user = site.table("learning_course"), site.table("core_user")
        narrow = narrow_text(user, site)
        userids = text_converter(int(getattr(user.c.userid.type, "length", None) or 255) - 1,
                                 narrow=narrow)
        codes = text_converter(int(getattr(course.c.code.type, "length", None) or 50),
                               narrow=narrow)
        converters: list[tuple[str, Callable[[Any], Any]]] = [
            ("userid", userids), ("code", codes),
            ("level", coded(forma.LEVELS, "level")),
            ("date_subscription", a_datetime),
            ("status", coded(forma.ENROLLMENT_STATUSES, "enrollment status")),
            ("date_complete", a_datetime), ("score", score)]
        stage = site.stage(_stage_columns(), list(KEYS), name="enrollments")
        rest = [None] * (len(stage.columns) - len(converters) - 1)  # filled in SQL
        rejected: set[int] = set()
        ordinal = 0
        for batch in batches:
            rows = []
            for row in batch:
                ordinal += 1
                check_columns(row, NAMES, self.type_name)
                line = row.get(LINE, ordinal)
                values: list[Any] = []
                error: tuple[str, str] | None = None
                for name, convert in converters:
                    try:
                        values.append(convert(row.get(name)))
                    except ValueError as exc:
                        values.append(None)
                        error = error or (name, f"column {name!r}: {exc}")
                userid = None if values[0] is None else values[0].lstrip("/")
                if userid == "" and error is None:
                    error = ("userid", "key column 'userid' is empty")
                    userid = None
                for position, name in enumerate(KEYS):
                    if error is None and values[position] is None:
                        error = (name, f"key column {name!r} is empty: every row needs the "
                                       "userid and the course code")
                absolute = None if not userid else forma.userid_absolute(userid)
                if error is not None:
                    if context is not None:
                        context.row_error(RowError(
                            row_index=line, column=error[0], message=error[1],
                            key_values=f"userid={userid or row.get('userid') or ''}, "
                                       f"code={values[1] or row.get('code') or ''}"[:300]))
                        rejected.add(line)
                    if absolute is None or values[1] is None:
                        continue
                    rows.append((line, absolute, values[1], *([None] * (len(values) - 2)),
                                 0, *rest))
                    continue
                rows.append((line, absolute, *values[1:], 1, *rest))
            stage.add(rows)
        stage.finish()
        for line, key, first in stage.duplicates():
            if context is None or line in rejected:
                continue
            shown = f"userid={forma.userid_relative(key[0])}, code={key[1]}"
            context.row_error(RowError(
                row_index=line, key_values=shown, column="userid",
                message=f"duplicate key {shown}: also on line {first}; keep one row per "
                        "enrollment"))
        return stage

    def _lookup(self, site: forma.Site, st: sa.Table, index: sa.Table) -> None:
        """The user and the course each row names (every staged row: a rejected one still keeps
        its enrollment from a sync's removal); ``index``: the site's course codes."""
        user = site.table("core_user")
        site.execute(sa.update(st).where(st.c.userid == user.c.userid)
                     .values({UID: user.c.idst}), "looking up the users")
        site.execute(sa.update(st).where(st.c.code == index.c.code)
                     .values({CID: index.c.idCourse}), "looking up the courses")

    def _resolve(self, site: forma.Site, st: sa.Table, context: RunContext) -> None:
        """Look the users and courses up; a code two courses hold, an unknown user or course
        is a row error (the row stays staged as rejected)."""
        index = course_index(site)
        twice = ambiguous_codes(site, index)
        self._lookup(site, st, index)
        if twice:
            held = held_twice(twice)
            self._reject(site, st, st.c.code.in_(list(twice)), context, "code",
                         lambda _u, code: held(code))
        unknown = sa.or_(st.c[UID].is_(None), st.c[CID].is_(None))
        rows = site.execute(sa.select(st.c[LINE_COLUMN], st.c.userid, st.c.code, st.c[UID])
                            .where(unknown, st.c[OK] == 1).order_by(st.c[LINE_COLUMN]),
                            "finding unknown users and courses").all()
        for line, userid, code, uid in rows:
            relative = forma.userid_relative(userid)
            if uid is None:
                message = f"no user {relative} in the site: create the user first (or fix " \
                          "the userid)"
            else:
                message = f"no course {code} in the site: create the course first (or fix " \
                          "the code)"
            context.row_error(RowError(row_index=line, key_values=f"userid={relative}, "
                                                                  f"code={code}",
                                       column="userid" if uid is None else "code",
                                       message=message))
        if rows:
            site.execute(sa.update(st).where(unknown).values({OK: 0}), "marking rejected rows")

    def _reject(self, site: forma.Site, st: sa.Table, where: sa.ColumnElement[bool],
                context: RunContext, column: str, message: Callable[[str, str], str]) -> None:
        rows = site.execute(sa.select(st.c[LINE_COLUMN], st.c.userid, st.c.code)
                            .where(where, st.c[OK] == 1).order_by(st.c[LINE_COLUMN]),
                            "checking the enrollments").all()
        for line, userid, code in rows:
            relative = forma.userid_relative(userid)
            context.row_error(RowError(row_index=line, key_values=f"userid={relative}, "
                                                                  f"code={code}",
                                       column=column, message=message(relative, code)))
        if rows:
            site.execute(sa.update(st).where(where).values({OK: 0}), "marking rejected rows")

    def _level_groups(self, site: forma.Site, courses: sa.Select[Any],
                      create: bool = True) -> sa.Table:
        """A temporary table (course, level, idst) of the level groups of ``courses``, made
        when missing (``create``) or the existing ones only."""
        ids = sorted({int(i) for (i,) in site.execute(courses.distinct(), "listing courses")
                      if i is not None})
        table = sa.Table(f"iotask_levels_{secrets.token_hex(4)}",
                         sa.MetaData(),
                         sa.Column("course", sa.Integer, primary_key=True, autoincrement=False),
                         sa.Column("level", sa.Integer, primary_key=True, autoincrement=False),
                         sa.Column("idst", sa.Integer, nullable=False),
                         prefixes=["TEMPORARY"])
        site.execute(sa.schema.CreateTable(table), "creating the level groups table")
        for part in chunks(ids, LEVEL_CHUNK):  # flat memory: 8 groups per course
            if create:
                found = ensure_level_groups(site, part)
            else:
                found = site.group_ids(LEVEL_GROUP.format(id=i, level=level) for i in part
                                       for level in forma.LEVELS)
            rows = [{"course": i, "level": level,
                     "idst": found[LEVEL_GROUP.format(id=i, level=level)]}
                    for i in part for level in forma.LEVELS
                    if LEVEL_GROUP.format(id=i, level=level) in found]
            site.insert_many(table, rows, "listing the level groups")
        return table

    def _compare(self, site: forma.Site, cu: sa.Table, st: sa.Table, groups: sa.Table,
                 now: datetime, revive: str | None) -> None:
        """Put each staged row's enrollment as it is (old_*) and as it will be (new_*) beside
        it, and whether the user is already in the level group the new level names."""
        site.execute(sa.update(st).where(cu.c.idUser == st.c[UID], cu.c.idCourse == st.c[CID],
                                         cu.c.edition_id == 0)
                     .values({EXISTS: 1, OLD_OWNER: cu.c.imported_from_connection,
                              **{OLD + name: cu.c[name] for name in VALUES}}),
                     "reading the enrollments")
        at = sa.literal(now, sa.DateTime())
        exists = st.c[EXISTS] == 1
        kept: sa.ColumnElement[Any] = st.c[OLD + "status"]
        if revive is not None:
            kept = sa.case((sa.and_(kept == SUSPENDED, st.c[OLD_OWNER] == revive), SUBSCRIBED),
                           else_=kept)
        status = sa.func.coalesce(st.c.status, kept, SUBSCRIBED)
        completion = sa.case((status == COMPLETED, at), else_=sa.null())
        site.execute(sa.update(st).where(st.c[OK] == 1).values({
            NEW + "level": sa.func.coalesce(st.c.level, st.c[OLD + "level"], STUDENT),
            NEW + "status": status,
            NEW + "date_inscr": sa.case(
                (exists, sa.func.coalesce(st.c.date_subscription, st.c[OLD + "date_inscr"])),
                else_=sa.func.coalesce(st.c.date_subscription, at)),
            NEW + "date_complete": sa.func.coalesce(st.c.date_complete,
                                                    st.c[OLD + "date_complete"], completion),
            NEW + "score_given": sa.func.coalesce(st.c.score, st.c[OLD + "score_given"]),
        }), "working out the enrollments")
        members = site.table("core_group_members")
        site.execute(sa.update(st).where(st.c[OK] == 1, sa.exists().where(
            groups.c.course == st.c[CID], groups.c.level == st.c[NEW + "level"],
            members.c.idst == groups.c.idst, members.c.idstMember == st.c[UID]))
            .values({MEMBER: 1}), "reading the level-group memberships")

    def _samples(self, site: forma.Site, cu: sa.Table, st: sa.Table,
                 new: sa.ColumnElement[bool], changed: sa.ColumnElement[bool],
                 gone: list[sa.ColumnElement[bool]] | None) -> dict[str, list[str]]:
        def keys(query: sa.Select[Any]) -> list[str]:
            return [f"userid={forma.userid_relative(userid)}, code={code}" for userid, code in
                    site.execute(query.limit(SAMPLE_KEYS), "sampling the changes")]
        samples = {kind: keys(sa.select(st.c.userid, st.c.code).where(where)
                              .order_by(st.c[LINE_COLUMN]))
                   for kind, where in (("insert", new), ("update", changed))}
        if gone is not None:
            user, course = site.table("core_user"), site.table("learning_course")
            samples["remove"] = keys(
                sa.select(user.c.userid, course.c.code)
                .select_from(cu.join(user, user.c.idst == cu.c.idUser)
                             .join(course, course.c.idCourse == cu.c.idCourse))
                .where(*gone).order_by(user.c.userid, course.c.code))
        return samples

    def _log_status(self, site: forma.Site, st: sa.Table, where: sa.ColumnElement[bool],
                    now: datetime) -> None:
        log = site.table("learning_statuschangelog")
        site.execute(sa.insert(log).from_select(
            ["idUser", "idCourse", "status_user", "when_do"],
            sa.select(st.c[UID], st.c[CID], st.c[NEW + "status"],
                      sa.literal(now, sa.DateTime())).where(where)),
            "logging status changes")

    def _move_memberships(self, site: forma.Site, st: sa.Table, groups: sa.Table,
                          changed: sa.ColumnElement[bool], new: sa.ColumnElement[bool]) -> None:
        """Out of the course's other level groups when the level changed; into the new
        level's group when not there yet."""
        members = site.table("core_group_members")
        _delete_memberships(site, groups.c.idst, st.c[UID], [
            groups.c.course == st.c[CID], changed,
            st.c[NEW + "level"].is_distinct_from(st.c[OLD + "level"]),
            groups.c.level != st.c[NEW + "level"]], "moving level-group memberships")
        joining = (sa.select(groups.c.idst, st.c[UID], sa.literal("", members.c.filter.type))
                   .select_from(st.join(groups, sa.and_(groups.c.course == st.c[CID],
                                                        groups.c.level == st.c[NEW + "level"])))
                   .where(sa.or_(changed, new), st.c[MEMBER].is_(None)))
        site.execute(sa.insert(members).from_select(["idst", "idstMember", "filter"], joining),
                     "adding level-group memberships")

    def _remove(self, site: forma.Site, cu: sa.Table, gone: list[sa.ColumnElement[bool]],
                removal: str, now: datetime) -> int:
        if removal == "suspend":
            log = site.table("learning_statuschangelog")
            site.execute(sa.insert(log).from_select(
                ["idUser", "idCourse", "status_user", "when_do"],
                sa.select(cu.c.idUser, cu.c.idCourse, sa.literal(SUSPENDED, sa.Integer()),
                          sa.literal(now, sa.DateTime())).where(*gone)),
                "logging suspensions")
            return int(site.execute(sa.update(cu).where(*gone).values(status=SUSPENDED),
                                    "suspending enrollments").rowcount)
        groups = self._level_groups(site, sa.select(cu.c.idCourse).where(*gone), create=False)
        _delete_memberships(site, groups.c.idst, cu.c.idUser,
                            [groups.c.course == cu.c.idCourse, *gone],
                            "removing level-group memberships")
        return int(site.execute(sa.delete(cu).where(*gone), "unsubscribing").rowcount)


def _stage_columns() -> list[sa.Column[Any]]:
    return [sa.Column("userid", sa.String(255)), sa.Column("code", sa.String(255)),
            sa.Column("level", sa.Integer()), sa.Column("date_subscription", sa.DateTime()),
            sa.Column("status", sa.Integer()), sa.Column("date_complete", sa.DateTime()),
            sa.Column("score", sa.Integer()), sa.Column(OK, sa.SmallInteger()),
            sa.Column(UID, sa.Integer()), sa.Column(CID, sa.Integer()),
            sa.Column(EXISTS, sa.SmallInteger()), sa.Column(MEMBER, sa.SmallInteger()),
            sa.Column(OLD_OWNER, sa.String(255)),
            *(sa.Column(prefix + name, sa.DateTime() if name.startswith("date") else
                        sa.Integer()) for prefix in (OLD, NEW) for name in VALUES)]


def _delete_memberships(site: forma.Site, group: sa.ColumnElement[Any],
                        member: sa.ColumnElement[Any], where: list[sa.ColumnElement[bool]],
                        what: str) -> None:
    """Delete the memberships (``group``, ``member``) of the rows ``where`` selects: a joined
    DELETE (MariaDB runs a row-value IN (SELECT ...) as a scan per row), IN on SQLite, which
    has no DELETE ... USING."""
    members = site.table("core_group_members")
    if site.backend == "sqlite":
        pairs = sa.select(group, member).where(*where)
        statement = sa.delete(members).where(
            sa.tuple_(members.c.idst, members.c.idstMember).in_(pairs))
    else:
        statement = sa.delete(members).where(members.c.idst == group,
                                             members.c.idstMember == member, *where)
    site.execute(statement, what)


def _seen(site: forma.Site, st: sa.Table) -> sa.Table:
    """The (user, course) pairs the rows name, rejected rows too, indexed (inline: CREATE INDEX
    would commit on MySQL): what a sync keeps."""
    seen = sa.Table(f"iotask_seen_{secrets.token_hex(4)}", sa.MetaData(),
                    sa.Column("idUser", sa.Integer, nullable=False, autoincrement=False),
                    sa.Column("idCourse", sa.Integer, nullable=False, autoincrement=False),
                    sa.Column("line", sa.BigInteger, nullable=False, autoincrement=False),
                    sa.PrimaryKeyConstraint("idUser", "idCourse", "line"),
                    prefixes=["TEMPORARY"])
    site.execute(sa.schema.CreateTable(seen), "creating the kept enrollments table")
    site.execute(sa.insert(seen).from_select(
        ["idUser", "idCourse", "line"],
        sa.select(st.c[UID], st.c[CID], st.c[LINE_COLUMN])
        .where(st.c[UID].is_not(None), st.c[CID].is_not(None))),
        "listing the kept enrollments")
    if site.backend == "postgresql":  # never auto-analysed: the plans need the statistics
        site.execute(sa.text(f'ANALYZE "{seen.name}"'), "analysing the kept enrollments")
    return seen


def _count(site: forma.Site, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    return int(site.execute(sa.select(sa.func.count()).select_from(table).where(where),
                            "counting enrollments").scalar_one())


def _time(value: Any) -> str:
    if forma.is_no_date(value):
        return ""
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat(sep=" ")
    if isinstance(value, date):
        return f"{value.isoformat()} 00:00:00"
    return str(value)[:19]


CONNECTOR = FormaEnrollmentsConnector
