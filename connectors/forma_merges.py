"""``forma-merges``: merge duplicate user accounts of a forma.lms / Docebo site into the account
that survives. Columns: ``userid`` (the duplicate) and ``survivor``.

For each pair, in one transaction for the whole file:

* the duplicate's enrollments (``learning_courseuser``, every edition) in courses the survivor
  is not enrolled in move to the survivor, with their completions, scores and dates;
* in a course both are enrolled in, the survivor's enrollment stays (its level, its date of
  subscription) and takes the duplicate's completion (status, ``date_complete``,
  ``score_given``) when that one is better: completed beats in progress beats subscribed beats
  anything else (waiting, suspended...); between two equal statuses the later completion date,
  then the higher score, wins; a tie keeps the survivor's. A status that changes is logged in
  ``learning_statuschangelog``. The duplicate's enrollment there is then deleted;
* the duplicate's group memberships (org units, groups, course level groups of the moved
  enrollments) move to the survivor, never twice; the user-level groups
  (``/framework/level/...``: a merge grants no one an administrator's rights) and iotask's owner
  groups (``/iotask/...``: which feed owns an account) stay with the duplicate;
* the duplicate is suspended (``valid = 0``), never deleted: its row and history stay.

Refused, each as a row error (the other pairs go on, and the guards decide): an unknown user, a
self-merge, a duplicate named in two pairs, a survivor that is itself merged away in the same
file (a chain a → b, b → c, or a cycle: merge a into c directly), a suspended survivor. The run
notes say, pair by pair, what moved. Merging a pair again finds nothing left to move.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from iotask.connectors import forma
from iotask.connectors.context import SAMPLE_KEYS, Batch, ChangeSet, Column, RowError, RunContext
from iotask.connectors.errors import ConnectorError
from iotask.connectors.forma_courses import check_columns, chunks, now_in

LINE = "__line__"
NAMES = ["userid", "survivor"]
RANK = {2: 3, 1: 2, 0: 1}  # completed > in progress > subscribed > the other statuses
STAYING = ("/framework/level/", "/iotask/")  # groups a merge does not move
COURSE_GROUP = "/lms/course/"


@dataclass
class _Pair:
    line: int
    userid: str
    survivor: str
    duplicate_id: int = 0
    survivor_id: int = 0


@dataclass
class _Plan:
    """What merging one pair does, computed before anything is written."""

    pair: _Pair
    moved: dict[int, list[int]] = field(default_factory=dict)  # edition: courses
    both: dict[int, list[int]] = field(default_factory=dict)  # edition: courses
    taken: list[tuple[int, int, Any, Any, Any]] = field(default_factory=list)
    groups_moved: list[int] = field(default_factory=list)
    groups_dropped: list[int] = field(default_factory=list)

    def note(self) -> str:
        moved = sum(map(len, self.moved.values()))
        both = sum(map(len, self.both.values()))
        kept = f", {both} kept on the survivor" if both else ""
        taken = f" ({len(self.taken)} with the duplicate's better completion)" \
            if self.taken else ""
        return (f"{self.pair.userid} → {self.pair.survivor}: {moved} enrollment"
                f"{'' if moved == 1 else 's'} moved{kept}{taken}, {len(self.groups_moved)} "
                f"group{'' if len(self.groups_moved) == 1 else 's'}; {self.pair.userid} "
                "suspended")


class FormaMergesConnector(forma.FormaConnector):
    type_name = "forma-merges"
    description = ("Merges duplicate users of a forma.lms / Docebo site into their survivors: "
                   "enrollments, completions and groups move, the duplicate is suspended")
    can_read = False
    can_write = True

    def location(self) -> str:
        return "the forma users to merge (core_user, learning_courseuser, core_group_members)"

    def columns(self, context: RunContext) -> list[Column] | None:
        return [Column("userid", required=True, key=True, type="login (the duplicate)"),
                Column("survivor", required=True, type="login (the account that stays)")]

    def check_task(self, context: RunContext) -> None:
        if context.import_type == "sync":
            raise ConnectorError("a forma-merges destination only merges the pairs it is "
                                 "given: use import type insert, not sync")

    def write(self, batches: Iterable[Batch], context: RunContext) -> None:
        url = self.database_url(context)
        pairs = _checked(_pairs(batches, context), context)
        now = now_in(context)
        with forma.connect(url, write=True) as conn, conn.begin() as transaction:
            site = forma.Site(conn, self.params.get("prefix") or "", url)
            pairs = _resolved(site, pairs, context)
            changes = ChangeSet(updated=len(pairs))
            if context.dry_run:
                changes.samples = {"update": [f"userid={pair.userid} → {pair.survivor}"
                                              for pair in pairs[:SAMPLE_KEYS]]}
            if not context.review(changes):
                transaction.rollback()
                return
            notes = []
            for pair in pairs:  # each planned once the one before is applied: two duplicates
                plan = _plan(site, pair)  # of one survivor may share a course or a group
                _apply(site, plan, now)
                notes.append(plan.note())
            context.check_lease(conn)
            transaction.commit()
        context.notes.extend(notes)
        context.counts.updated += len(pairs)


def _pairs(batches: Iterable[Batch], context: RunContext) -> list[_Pair]:
    """Every row as a pair of logins; an empty cell is a row error."""
    pairs: list[_Pair] = []
    ordinal = 0
    for batch in batches:
        for row in batch:
            ordinal += 1
            check_columns(row, NAMES, "forma-merges")
            line = row.get(LINE, ordinal)
            values = [forma.userid_relative(str(row.get(name) or "").strip()) for name in NAMES]
            empty = [name for name, value in zip(NAMES, values, strict=True) if not value]
            if empty:
                _reject(context, line, values, empty[0],
                        f"no {empty[0]}: each pair names the duplicate (userid) and the "
                        "survivor")
                continue
            pairs.append(_Pair(line, values[0], values[1]))
    return pairs


def _checked(pairs: list[_Pair], context: RunContext) -> list[_Pair]:
    """The pairs the file's own rules accept: no self-merge, a duplicate named once, no chain."""
    lines: dict[str, list[int]] = {}
    merges: list[_Pair] = []
    for pair in pairs:
        if pair.userid.casefold() == pair.survivor.casefold():
            _reject(context, pair.line, [pair.userid, pair.survivor], "survivor",
                    f"{pair.userid} is merged into itself: name another survivor")
            continue
        lines.setdefault(pair.userid.casefold(), []).append(pair.line)
        merges.append(pair)
    good: list[_Pair] = []
    for pair in merges:
        values = [pair.userid, pair.survivor]
        if len(lines[pair.userid.casefold()]) > 1:
            others = ", ".join(map(str, lines[pair.userid.casefold()]))
            _reject(context, pair.line, values, "userid",
                    f"{pair.userid} is the duplicate in several pairs (rows {others}): "
                    "merge it into one survivor")
        elif pair.survivor.casefold() in lines:
            further = lines[pair.survivor.casefold()]
            _reject(context, pair.line, values, "survivor",
                    f"the survivor {pair.survivor} is itself merged away in this file (row "
                    f"{', '.join(map(str, further))}): merge {pair.userid} directly into "
                    "the account that stays")
        else:
            good.append(pair)
    return good


def _resolved(site: forma.Site, pairs: list[_Pair], context: RunContext) -> list[_Pair]:
    """The pairs whose users both exist (their ids filled), the survivor active."""
    user = site.table("core_user")
    names = sorted({forma.userid_absolute(name) for pair in pairs
                    for name in (pair.userid, pair.survivor)})
    found: dict[str, tuple[int, int]] = {}
    for part in chunks(names):
        for userid, idst, valid in site.execute(
                sa.select(user.c.userid, user.c.idst, user.c.valid)
                .where(user.c.userid.in_(part)), "reading users"):
            found[str(userid).casefold()] = (int(idst), int(valid))
    good: list[_Pair] = []
    for pair in pairs:
        values = [pair.userid, pair.survivor]
        duplicate = found.get(forma.userid_absolute(pair.userid).casefold())
        survivor = found.get(forma.userid_absolute(pair.survivor).casefold())
        if duplicate is None or survivor is None:
            column, name = ("userid", pair.userid) if duplicate is None else \
                ("survivor", pair.survivor)
            _reject(context, pair.line, values, column,
                    f"{name} is not a user of the site: check the login")
        elif survivor[1] == 0:
            _reject(context, pair.line, values, "survivor",
                    f"the survivor {pair.survivor} is suspended: reactivate it first, or "
                    "merge into the account that is in use")
        elif duplicate[0] == survivor[0]:
            _reject(context, pair.line, values, "survivor",
                    f"{pair.userid} and {pair.survivor} are the same account")
        else:
            pair.duplicate_id, pair.survivor_id = duplicate[0], survivor[0]
            good.append(pair)
    return good


def _plan(site: forma.Site, pair: _Pair) -> _Plan:
    cu = site.table("learning_courseuser")
    members, group = site.table("core_group_members"), site.table("core_group")
    plan = _Plan(pair)

    def enrollments(idst: int) -> dict[tuple[int, int], tuple[Any, Any, Any]]:
        rows = site.execute(sa.select(cu.c.idCourse, cu.c.edition_id, cu.c.status,
                                      cu.c.date_complete, cu.c.score_given)
                            .where(cu.c.idUser == idst), "reading enrollments")
        return {(int(course), int(edition)): (int(status), complete, score)
                for course, edition, status, complete, score in rows}

    mine, theirs = enrollments(pair.duplicate_id), enrollments(pair.survivor_id)
    for (course, edition), completion in sorted(mine.items()):
        if (course, edition) not in theirs:
            plan.moved.setdefault(edition, []).append(course)
            continue
        plan.both.setdefault(edition, []).append(course)
        if _better(completion, theirs[(course, edition)]):
            plan.taken.append((course, edition, *completion))
    shared = {course for courses in plan.both.values() for course in courses} - \
        {course for courses in plan.moved.values() for course in courses}
    held = {int(idst) for (idst,) in site.execute(
        sa.select(members.c.idst).where(members.c.idstMember == pair.survivor_id),
        "reading group memberships")}
    for idst, groupid in site.execute(
            sa.select(members.c.idst, group.c.groupid)
            .select_from(members.outerjoin(group, group.c.idst == members.c.idst))
            .where(members.c.idstMember == pair.duplicate_id)
            .order_by(members.c.idst), "reading group memberships"):
        name = groupid or ""
        if name.startswith(STAYING):
            continue
        if int(idst) in held or _course_of(name) in shared:
            plan.groups_dropped.append(int(idst))
        else:
            plan.groups_moved.append(int(idst))
    return plan


def _apply(site: forma.Site, plan: _Plan, now: datetime) -> None:
    cu, user = site.table("learning_courseuser"), site.table("core_user")
    members, log = site.table("core_group_members"), site.table("learning_statuschangelog")
    duplicate, survivor = plan.pair.duplicate_id, plan.pair.survivor_id
    for edition, courses in plan.moved.items():
        for part in chunks(courses):
            site.execute(sa.update(cu).where(cu.c.idUser == duplicate,
                                             cu.c.edition_id == edition,
                                             cu.c.idCourse.in_(part))
                         .values(idUser=survivor), "moving enrollments")
    for course, edition, status, complete, score in plan.taken:
        old = site.execute(sa.select(cu.c.status).where(
            cu.c.idUser == survivor, cu.c.idCourse == course, cu.c.edition_id == edition),
            "reading an enrollment").scalar_one()
        when = site.no_date(cu.c.date_complete) if forma.is_no_date(complete) else complete
        site.execute(sa.update(cu).where(cu.c.idUser == survivor, cu.c.idCourse == course,
                                         cu.c.edition_id == edition)
                     .values(status=status, date_complete=when, score_given=score),
                     "taking the duplicate's completion")
        if int(old) != status:
            site.execute(sa.insert(log).values(idUser=survivor, idCourse=course,
                                               status_user=status, when_do=now),
                         "logging status changes")
    for edition, courses in plan.both.items():
        for part in chunks(courses):
            site.execute(sa.delete(cu).where(cu.c.idUser == duplicate,
                                             cu.c.edition_id == edition,
                                             cu.c.idCourse.in_(part)),
                         "deleting the duplicate's merged enrollments")
    for part in chunks(plan.groups_moved):
        site.execute(sa.update(members).where(members.c.idstMember == duplicate,
                                              members.c.idst.in_(part))
                     .values(idstMember=survivor), "moving group memberships")
    for part in chunks(plan.groups_dropped):
        site.execute(sa.delete(members).where(members.c.idstMember == duplicate,
                                              members.c.idst.in_(part)),
                     "deleting the duplicate's memberships the survivor has")
    site.execute(sa.update(user).where(user.c.idst == duplicate).values(valid=0),
                 "suspending the duplicate")


def _better(mine: tuple[Any, Any, Any], theirs: tuple[Any, Any, Any]) -> bool:
    """Whether the duplicate's completion beats the survivor's (see the module's rule)."""
    def weight(completion: tuple[Any, Any, Any]) -> tuple[int, str, int]:
        status, complete, score = completion
        when = "" if complete is None or forma.is_no_date(complete) else str(complete)
        return RANK.get(status, 0), when, -1 if score is None else int(score)
    return weight(mine) > weight(theirs)


def _course_of(groupid: str) -> int | None:
    """The course of a course group (``/lms/course/<id>/...``), else None."""
    if not groupid.startswith(COURSE_GROUP):
        return None
    number = groupid[len(COURSE_GROUP):].split("/", 1)[0]
    return int(number) if number.isdigit() else None


def _reject(context: RunContext, line: int, values: list[str], column: str,
            message: str) -> None:
    context.row_error(RowError(row_index=line, column=column, message=message,
                               key_values=f"userid={values[0]}, survivor={values[1]}"))


CONNECTOR = FormaMergesConnector
