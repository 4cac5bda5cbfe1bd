"""``forma-lms``: mixed rows (users, courses or org units, enrollments, placements) written into
a forma.lms / Docebo site in ONE transaction, all or nothing: what an IMS Enterprise file
(the ``ims-enterprise`` source) feeds.

Each row has ``record`` (``user``, ``course``, ``orgunit``, ``enrollment``, or ``placement``:
a user in an org unit) and ``action`` (``upsert``, the default, or ``delete``), and the columns
of the forma-* connector of its kind. The kinds are written in order — users, then org units,
then courses, then enrollments and placements — each by its forma-* connector's own logic
(``write_in``) inside the one transaction: a kind is applied before the next one is computed,
because the memberships name the users and courses of the same file. The guards review the
combined change set ONCE, after every kind is computed (counts summed, samples prefixed with
the kind); a dry run or a held change set rolls everything back, and so does any failure.

``action=delete`` applies the kind's removal to that record only: ``users_remove`` (suspend,
the default, or delete), ``courses_remove`` (status0, the default, or delete; only the
source's own courses, as updates), ``enrollments_remove`` (suspend, the default, or
unsubscribe), org units as forma-orgchart's sync removes them (empty leaf units only), a
placement's two memberships. The administrators and the anonymous user are never removed; a
delete naming nothing the site has changes nothing. The guards' max_remove weighs the deletes
against the records of their kinds (users, the source's courses, enrollments): a file
deleting too much is held like a truncated sync.

Rows of the later kinds wait in temporary files (``connectors/spool.py``): memory stays flat.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from typing import Any, cast

import sqlalchemy as sa
from iotask.connectors import forma, forma_courses, forma_enrollments, forma_orgchart, forma_users
from iotask.connectors.context import SAMPLE_KEYS, Batch, ChangeSet, Column, RowError, RunContext
from iotask.connectors.forma import FormaError, Site
from iotask.connectors.settings import Setting
from iotask.connectors.spool import Spool

LINE = "__line__"
KINDS = ("user", "orgunit", "course", "enrollment", "placement")
ACTIONS = ("upsert", "delete")
KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    "user": forma_users.COLUMNS,
    "orgunit": ("code", "parent_code", "name"),
    "course": tuple(forma_courses.NAMES),
    "enrollment": tuple(forma_enrollments.NAMES),
    "placement": ("userid", "code"),
}
KEYS = {"user": ("userid",), "orgunit": ("code",), "course": ("code",),
        "enrollment": ("userid", "code"), "placement": ("userid", "code")}


class FormaLmsConnector(forma.FormaConnector):
    type_name = "forma-lms"
    description = ("users, courses or org units and enrollments of a forma.lms / Docebo site "
                   "from one feed (IMS Enterprise), in one transaction")
    can_read = False
    can_write = True
    settings = forma.SETTINGS + (
        Setting("users_remove", choices=forma_users.REMOVALS, default="suspend",
                help="what action=delete (and a sync) does to a user: suspend (valid = 0, the "
                     "default) or delete"),
        Setting("courses_remove", choices=forma_courses.REMOVALS, default="status0",
                help="what action=delete (and a sync) does to one of the source's courses: "
                     "status0 (back to preparation, the default) or delete"),
        Setting("enrollments_remove", choices=forma_enrollments.REMOVALS, default="suspend",
                help="what action=delete (and a sync) does to an enrollment: suspend (status "
                     "3, the default) or unsubscribe"),
        Setting("language", default=forma_orgchart.DEFAULT_LANGUAGE,
                help="forma's language code of org unit names; default english"),
    )

    def location(self) -> str:
        return "the forma users, org units, courses and enrollments"

    def columns(self, context: RunContext) -> list[Column] | None:
        names = dict.fromkeys(name for kind in KINDS for name in KIND_COLUMNS[kind])
        return [Column("record", required=True), Column("action"),
                *(Column(name) for name in names)]

    def _parts(self) -> dict[str, forma.FormaConnector]:
        common = {key: self.params[key] for key in ("database", "prefix") if self.params.get(key)}
        return {
            "user": forma_users.FormaUsersConnector(
                {**common, "remove": self.params.get("users_remove") or "suspend"}),
            "orgunit": forma_orgchart.FormaOrgChartConnector(
                {**common, "language": self.params.get("language") or "english"}),
            "course": forma_courses.FormaCoursesConnector(
                {**common, "remove": self.params.get("courses_remove") or "status0"}),
            "enrollment": forma_enrollments.FormaEnrollmentsConnector(
                {**common, "remove": self.params.get("enrollments_remove") or "suspend"}),
        }

    def check_task(self, context: RunContext) -> None:
        for kind, part in self._parts().items():
            part.check_write(_part(context, kind))

    def write(self, batches: Iterable[Batch], context: RunContext) -> None:
        """Every kind computed and applied in order in one transaction; the combined change set
        reviewed once before the last kind is applied; commit, or roll everything back."""
        parts = self._parts()
        for kind, part in parts.items():
            part.check_write(_part(context, kind))
        with self.open_site(context, write=True) as site, site.conn.begin() as transaction:
            router = _Router(batches)
            try:
                total, done, last = self._write_all(site, router, parts, context)
            finally:
                router.close()
            if not context.review(total):
                transaction.rollback()
                return
            done.extend(step.apply() for step in last)
            context.check_lease(site.conn)
            transaction.commit()
        for applied in done:
            forma.add_counts(context.counts, applied)

    def _write_all(self, site: Site, router: _Router, parts: dict[str, forma.FormaConnector],
                   context: RunContext
                   ) -> tuple[ChangeSet, list[ChangeSet], list[forma.Step]]:
        """Users, org units, courses and placements applied; enrollments computed. The
        combined change set, what was applied, and the steps left to apply once reviewed."""
        hard = (self.params.get("users_remove") == "delete"
                or self.params.get("courses_remove") == "delete"
                or self.params.get("enrollments_remove") == "unsubscribe")
        total = ChangeSet(removal="delete" if hard else "deactivate")
        done: list[ChangeSet] = []
        owner = context.owner

        users = parts["user"].write_in(site, router.upserts("user"), _part(context, "user"))
        _add(total, users.changes, "user")
        done.append(users.apply())
        done.append(self._delete_users(site, router.deletes("user"), total))

        orgchart = cast(forma_orgchart.FormaOrgChartConnector, parts["orgunit"])
        dropped = [row["code"].strip() for batch in router.deletes("orgunit") for row in batch
                   if isinstance(row.get("code"), str) and row["code"].strip()]
        if router.has("orgunit") or dropped:
            units = orgchart.write_in(site, router.upserts("orgunit"),
                                      _part(context, "orgunit"), drop=dropped)
            _add(total, units.changes, "orgunit")
            done.append(units.apply())

        if router.has("course"):
            courses = parts["course"].write_in(site, router.upserts("course"),
                                               _part(context, "course"))
            _add(total, courses.changes, "course")
            done.append(courses.apply())
        done.append(self._delete_courses(site, router.deletes("course"), owner, total))

        done.append(self._placements(site, router, context, total))
        steps: list[forma.Step] = []
        if router.has("enrollment"):
            steps.append(parts["enrollment"].write_in(site, router.upserts("enrollment"),
                                                      _part(context, "enrollment")))
            _add(total, steps[-1].changes, "enrollment")
        deleting = self._delete_enrollments(site, router.deletes("enrollment"), context)
        _add(total, deleting.changes, "enrollment")
        steps.append(deleting)
        return total, done, steps

    # --- deletes ------------------------------------------------------------------------

    def _keys(self, site: Site, batches: Iterable[Batch], kind: str,
              columns: list[sa.Column[Any]]) -> tuple[sa.Table, int]:
        """The delete rows' keys staged (userids made absolute); how many."""
        stage = site.stage(columns, [c.name for c in columns], f"gone_{kind}")
        count = 0
        for batch in batches:
            tuples = []
            for row in batch:
                values = [_cell(row.get(c.name)) for c in columns]
                if not all(values):
                    continue
                if "userid" in KEYS[kind]:
                    values[0] = forma.userid_absolute(values[0])
                tuples.append((int(row.get(LINE) or 0), *values))
            stage.add(tuples)
            count += len(tuples)
        stage.finish()
        return stage.table, count

    def _delete_users(self, site: Site, batches: Iterable[Batch], total: ChangeSet
                      ) -> ChangeSet:
        done = ChangeSet()
        stage, count = self._keys(site, batches, "user", [sa.Column("userid", sa.String(255))])
        if not count:
            return done
        removal = self.params.get("users_remove") or "suspend"
        user, members, group = (site.table(name) for name in
                                ("core_user", "core_group_members", "core_group"))
        admins = (sa.select(members.c.idstMember)
                  .select_from(members.join(group, group.c.idst == members.c.idst))
                  .where(group.c.groupid.in_(forma_users.ADMIN_GROUPS)))
        where: list[sa.ColumnElement[bool]] = [
            user.c.userid.not_in(["", "/", forma_users.ANONYMOUS]), user.c.idst.not_in(admins)]
        if removal == "suspend":
            where.append(user.c.valid != 0)
        ids = _id_table(site, sa.select(user.c.idst).select_from(
            user.join(stage, stage.c.userid == user.c.userid)).where(*where).distinct(),
            "users")
        samples = [f"userid={forma.userid_relative(u)}" for (u,) in site.execute(
            sa.select(user.c.userid).where(user.c.idst.in_(sa.select(ids.c.id)))
            .order_by(user.c.userid).limit(SAMPLE_KEYS), "sampling users to remove")]
        owned = _count(site, sa.select(sa.func.count()).select_from(user).where(*where[:2]))
        done.removed = forma_users.remove_users(site, sa.select(ids.c.id), removal)
        _add(total, ChangeSet(removed=done.removed, unchanged=count - done.removed,
                              owned=owned, samples={"remove": samples}), "user")
        done.unchanged = count - done.removed
        return done

    def _delete_courses(self, site: Site, batches: Iterable[Batch], owner: str | None,
                        total: ChangeSet) -> ChangeSet:
        done = ChangeSet()
        stage, count = self._keys(site, batches, "course", [sa.Column("code", sa.String(255))])
        if not count or not owner:
            done.unchanged = count
            return done
        removal = self.params.get("courses_remove") or "status0"
        course = site.table("learning_course")
        gone: list[sa.ColumnElement[bool]] = [course.c.imported_from_connection == owner,
                course.c.code.in_(sa.select(stage.c.code))]
        if removal == "status0":
            gone.append(course.c.status != 0)
        samples = [f"code={code}" for (code,) in site.execute(
            sa.select(course.c.code).where(*gone).order_by(course.c.code).limit(SAMPLE_KEYS),
            "sampling courses to remove")]
        owned = _count(site, sa.select(sa.func.count()).select_from(course)
                       .where(course.c.imported_from_connection == owner))
        courses = cast(forma_courses.FormaCoursesConnector, self._parts()["course"])
        done.removed = courses._remove(site, course, gone, removal)
        done.unchanged = max(count - done.removed, 0)
        _add(total, ChangeSet(removed=done.removed, unchanged=done.unchanged, owned=owned,
                              samples={"remove": samples}), "course")
        return done

    def _delete_enrollments(self, site: Site, batches: Iterable[Batch],
                            context: RunContext) -> forma.Step:
        """The enrollments the delete rows name, removed once the change set is reviewed."""
        stage, count = self._keys(site, batches, "enrollment",
                                  [sa.Column("userid", sa.String(255)),
                                   sa.Column("code", sa.String(255))])
        changes = ChangeSet()
        if not count:
            return forma.Step(changes, lambda: ChangeSet())
        removal = self.params.get("enrollments_remove") or "suspend"
        user, course, cu = (site.table(name) for name in
                            ("core_user", "learning_course", "learning_courseuser"))
        pairs = _id_table(site, sa.select(user.c.idst, course.c.idCourse).select_from(
            stage.join(user, user.c.userid == stage.c.userid)
            .join(course, course.c.code == stage.c.code)).distinct(), "enrollments",
            ("idUser", "idCourse"))
        gone: list[sa.ColumnElement[bool]] = [cu.c.edition_id == 0,
                sa.exists().where(pairs.c.idUser == cu.c.idUser,
                                  pairs.c.idCourse == cu.c.idCourse)]
        if removal == "suspend":
            gone.append(cu.c.status != forma_enrollments.SUSPENDED)
        changes.removed = int(site.execute(sa.select(sa.func.count()).select_from(cu)
                                           .where(*gone), "counting enrollments to remove")
                              .scalar_one())
        changes.unchanged = max(count - changes.removed, 0)
        changes.owned = _count(site, sa.select(sa.func.count()).select_from(cu)
                               .where(cu.c.edition_id == 0))
        if context.dry_run:
            changes.samples = {"remove": [
                f"userid={forma.userid_relative(u)} code={c}" for u, c in site.execute(
                    sa.select(user.c.userid, course.c.code).select_from(
                        cu.join(user, user.c.idst == cu.c.idUser)
                        .join(course, course.c.idCourse == cu.c.idCourse)).where(*gone)
                    .order_by(user.c.userid, course.c.code).limit(SAMPLE_KEYS),
                    "sampling enrollments to remove")]}
        enrollments = cast(forma_enrollments.FormaEnrollmentsConnector,
                           self._parts()["enrollment"])
        now = forma_courses.now_in(context)

        def apply() -> ChangeSet:
            removed = enrollments._remove(site, cu, gone, removal, now) \
                if changes.removed else 0
            return ChangeSet(removed=removed, unchanged=changes.unchanged)

        return forma.Step(changes, apply)

    # --- placements (groups=orgchart) -----------------------------------------------------

    def _placements(self, site: Site, router: _Router, context: RunContext,
                    total: ChangeSet) -> ChangeSet:
        """Users placed in org units (their /oc_ and /ocd_ groups) or taken out of them."""
        done = ChangeSet()
        for action in ACTIONS:
            rows = router.upserts("placement") if action == "upsert" \
                else router.deletes("placement")
            stage, count = self._keys(site, rows, "placement",
                                      [sa.Column("userid", sa.String(255)),
                                       sa.Column("code", sa.String(255))])
            if not count:
                continue
            user, tree = site.table("core_user"), site.table("core_org_chart_tree")
            members = site.table("core_group_members")
            lines = stage.c["iotask_line"]
            for line, userid, code, idst, _unit in site.execute(
                    sa.select(lines, stage.c.userid, stage.c.code, user.c.idst, tree.c.idOrg)
                    .select_from(stage.outerjoin(user, user.c.userid == stage.c.userid)
                                 .outerjoin(tree, tree.c.code == stage.c.code))
                    .where(sa.or_(user.c.idst.is_(None), tree.c.idOrg.is_(None)))
                    .order_by(lines), "finding unknown users and units"):
                what = "user" if idst is None else "org unit"
                context.row_error(RowError(
                    row_index=int(line), column="userid" if idst is None else "code",
                    key_values=f"placement userid={forma.userid_relative(userid)} code={code}",
                    message=f"no {what} {forma.userid_relative(userid) if idst is None else code!r}"
                            ": create it first (or correct the file)"))
            resolved = stage.join(user, user.c.userid == stage.c.userid).join(
                tree, tree.c.code == stage.c.code)
            pairs = _id_table(site, sa.union(*(
                sa.select(tree.c[column], user.c.idst).select_from(resolved)
                .where(tree.c[column] != 0)
                for column in ("idst_oc", "idst_ocd"))), "placements", ("idst", "member"))
            placed = sa.exists().where(members.c.idst == tree.c.idst_oc,
                                       members.c.idstMember == user.c.idst)
            # a placement is counted once, by the unit's /oc_ group (its own members)
            counted = _count(site, sa.select(sa.func.count()).select_from(resolved).where(
                placed if action == "delete" else ~placed))
            if action == "upsert":
                existing = sa.exists().where(members.c.idst == pairs.c.idst,
                                             members.c.idstMember == pairs.c.member)
                site.execute(sa.insert(members).from_select(
                    ["idst", "idstMember", "filter"],
                    sa.select(pairs.c.idst, pairs.c.member, sa.literal("")).where(~existing)),
                    "placing users in org units")
                done.inserted += counted
            else:
                done.owned += _count(site, sa.select(sa.func.count()).select_from(
                    members.join(tree, tree.c.idst_oc == members.c.idst)))
                _delete_pairs(site, members, pairs)
                done.removed += counted
        _add(total, ChangeSet(inserted=done.inserted, removed=done.removed, owned=done.owned),
             "placement")
        return done


# --- the parts ----------------------------------------------------------------------------

def _part(context: RunContext, kind: str) -> RunContext:
    return cast(RunContext, _PartContext(context, kind))


class _PartContext:
    """The run's context as one kind's connector sees it: no map key (each connector has its
    own), and row errors prefixed with the kind."""

    def __init__(self, context: RunContext, kind: str) -> None:
        self._context, self._kind = context, kind
        self.key: list[str] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def row_error(self, error: RowError) -> None:
        error.key_values = f"{self._kind} {error.key_values}" if error.key_values \
            else self._kind
        self._context.row_error(error)

    def review(self, changes: ChangeSet) -> bool:
        raise AssertionError("forma-lms reviews the combined change set itself")


def _add(total: ChangeSet, part: ChangeSet, kind: str) -> None:
    total.inserted += part.inserted
    total.updated += part.updated
    total.unchanged += part.unchanged
    total.removed += part.removed
    total.owned += part.owned
    for change, keys in part.samples.items():
        total.samples.setdefault(change, []).extend(
            f"{kind} {key}" if kind else key for key in keys)


class _Router:
    """The incoming rows split by kind and action: users' upserts streamed to the users step
    as they come, everything else spooled to temporary files until its step."""

    def __init__(self, batches: Iterable[Batch]) -> None:
        self._batches: Iterator[Batch] | None = iter(batches)
        self._spool = Spool([f"{kind}:{action}" for kind in KINDS for action in ACTIONS])

    def upserts(self, kind: str) -> Iterator[Batch]:
        if kind == "user":
            yield from self._drain()
        else:
            yield from self._spool.batches(f"{kind}:upsert")

    def deletes(self, kind: str) -> Iterator[Batch]:
        self._finish()
        yield from self._spool.batches(f"{kind}:delete")

    def has(self, kind: str) -> bool:
        self._finish()
        return bool(self._spool.counts[f"{kind}:upsert"])

    def _finish(self) -> None:
        for _ in self._drain():
            pass

    def _drain(self) -> Iterator[Batch]:
        """The users' upsert rows; the other rows go to the spool."""
        if self._batches is None:
            return
        batches, self._batches = self._batches, None
        for batch in batches:
            users: Batch = []
            for row in batch:
                kind, action = _route(row)
                if kind == "user" and action == "upsert":
                    users.append(_only(row, kind))
                else:
                    self._spool.put(f"{kind}:{action}", _only(row, kind))
            if users:
                yield users

    def close(self) -> None:
        self._spool.close()


def _route(row: dict[str, Any]) -> tuple[str, str]:
    kind = _cell(row.get("record")).lower()
    action = _cell(row.get("action")).lower() or "upsert"
    if kind not in KINDS:
        raise FormaError(f"line {row.get(LINE, '?')}: record {kind[:40]!r} is not one of "
                         f"{', '.join(KINDS)}; nothing was applied")
    if action not in ACTIONS:
        raise FormaError(f"line {row.get(LINE, '?')}: action {action[:40]!r} is not upsert or "
                         "delete; nothing was applied")
    return kind, action


def _only(row: dict[str, Any], kind: str) -> dict[str, Any]:
    """The row with its kind's columns (those the feed has) and its line."""
    out = {name: row[name] for name in KIND_COLUMNS[kind] if name in row}
    if LINE in row:
        out[LINE] = row[LINE]
    return out


def _count(site: Site, query: sa.Select[Any]) -> int:
    return int(site.execute(query, "counting the records deletes may remove").scalar_one())


def _cell(value: Any) -> str:
    return value.strip() if isinstance(value, str) else "" if value is None else str(value)


def _id_table(site: Site, select: sa.Select[Any] | sa.CompoundSelect, what: str,
              names: tuple[str, ...] = ("id",)) -> sa.Table:
    """A temporary table of integer ids filled from ``select`` (a statement cannot delete from
    a table its own subquery reads, on MySQL)."""
    table = sa.Table(f"iotask_{what}_{secrets.token_hex(4)}", sa.MetaData(),
                     *(sa.Column(name, sa.Integer, nullable=False, autoincrement=False)
                       for name in names),
                     sa.PrimaryKeyConstraint(*names), prefixes=["TEMPORARY"])
    site.execute(sa.schema.CreateTable(table), f"creating the {what} table")
    site.execute(sa.insert(table).from_select(list(names), select),
                 f"listing the {what}")
    return table


def _delete_pairs(site: Site, members: sa.Table, pairs: sa.Table) -> int:
    if site.backend == "sqlite":
        found: sa.ColumnElement[bool] = sa.tuple_(members.c.idst, members.c.idstMember).in_(
            sa.select(pairs.c.idst, pairs.c.member))
    else:
        found = sa.and_(members.c.idst == pairs.c.idst, members.c.idstMember == pairs.c.member)
    return int(site.execute(sa.delete(members).where(found),
                            "taking users out of org units").rowcount)

CONNECTOR = FormaLmsConnector
