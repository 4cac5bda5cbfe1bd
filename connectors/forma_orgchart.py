"""forma-orgchart: the org chart of a forma.lms / Docebo site (``core_org_chart_tree``), read and
written as rows of ``code``, ``parent_code`` and names.

A row is one unit: ``code`` (the key), ``parent_code`` (empty: a unit at the top, a child of
forma's virtual root) and its name, ``name`` in the ``language`` setting's language (default
english) or ``name:<language>`` (``name:italian``) for others. Parents and children may come in
any order. A new unit gets its tree row, its names in ``core_org_chart``, its two groups
``/oc_<idOrg>`` (its members) and ``/ocd_<idOrg>`` (it and its descendants) with their
memberships as forma makes them, and becomes the task's source's own (its ``/oc_`` group a
member of ``/iotask/orgchart/<source>``). A changed ``parent_code`` moves a unit (its ``/ocd_``
group moves from the old parent's ``/ocd_`` group to the new one's); a changed name is updated,
and an empty name cell never blanks a name. A new unit needs a name in some language.

The tree as a whole is read into Python: the new parents, a cycle (``a`` below ``b`` below
``a``), an unknown parent or a code two units of the site share are checked there, each a row
error naming the codes. The rows below a rejected NEW unit are row errors too (it will not
exist), while the rows below a rejected unit of the site go on (it stays where it was); in a
cycle, the rows that close it (new units, moves) are rejected. The other rows go on.

Whenever the tree changed, the nested set (``iLeft``/``iRight``), ``lev`` and ``path`` of the
WHOLE tree are computed again from ``idParent``, as forma numbers them: siblings keep their
order (by their current path), units moved in come after them and new units last (in file
order); ``path`` is ``/root/`` and one 8-digit sibling number per level
(``/root/00000001/00000003``), ``lev`` the depth (1 at the top) and the nested set a standard one
over the root's children starting at 1 (forma's root is virtual: its limits are MIN(iLeft) - 1
and MAX(iRight) + 1). Only the rows whose numbers changed are updated, through a staging table.
A site unit that is not below the root (a parent that does not exist, a loop) stops the run.

A sync (``remove=delete``, the only way) removes only LEAF units the source owns that hold no
users and that the file no longer has (a unit whose children are all removed in the same run is
a leaf by then; a rejected row's unit is still in the file): the tree row, its names, both
groups and every membership naming them. An owned unit the file no longer has that is not
removable (a child still there, or users in it) is kept, counted as unchanged and named in a
warning in the log.

Codes are compared exactly (case and all) on every database. forma's other tables about units
(custom fields of units, admins' trees) are not written.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from iotask.connectors import forma
from iotask.connectors.context import SAMPLE_KEYS, Batch, ChangeSet, Column, RowError, RunContext
from iotask.connectors.databases import masked
from iotask.connectors.errors import SettingsError
from iotask.connectors.settings import Setting
from iotask.connectors.staging import Stage

log = logging.getLogger("iotask.forma.orgchart")

LINE = "__line__"  # sql.LINE: the physical line of a row read from a file
NAME = "name"
NAME_PREFIX = "name:"
ROOT = 0  # forma's virtual root: idParent of the units at the top; it has no row
BATCH = 1000
CHUNK = 500  # ids per IN list
DEFAULT_LANGUAGE = "english"
_LANGUAGE = re.compile(r"^[a-z][a-z0-9_\-]{0,49}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
OWNER_KIND = "orgchart"


class OrgChartError(forma.FormaError):
    """The org chart cannot be written as asked; the message says what and what to do."""


@dataclass
class _Unit:
    """One row of core_org_chart_tree as the site has it."""

    id: int
    parent: int
    path: str
    lev: int
    left: int
    right: int
    code: str
    oc: int
    ocd: int


@dataclass
class _Row:
    """One accepted-so-far file row."""

    line: int
    code: str
    parent_code: str | None  # None: the file has no parent_code column
    names: dict[str, str]  # language: name (non-empty cells only)
    error: str | None = None
    column: str | None = None


@dataclass
class _Plan:
    """What the run does, computed in Python before anything is written."""

    new: list[_Row] = field(default_factory=list)  # in file order
    updated: list[_Row] = field(default_factory=list)
    unchanged: int = 0
    parents: dict[int, int] = field(default_factory=dict)  # final idParent of every unit
    moved: dict[int, tuple[int, int]] = field(default_factory=dict)  # id: (old, new parent)
    names_update: list[tuple[int, str, str]] = field(default_factory=list)  # id, lang, name
    names_insert: list[tuple[int, str, str]] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    owned: int = 0
    temp: dict[str, int] = field(default_factory=dict)  # a new unit's code: its temporary id


class FormaOrgChartConnector(forma.FormaConnector):
    type_name = "forma-orgchart"
    description = ("forma.lms / Docebo org chart units: code, parent_code, names per language; "
                   "the nested set kept whole")
    can_read = True
    can_write = True
    settings = forma.SETTINGS + (
        Setting("language", default=DEFAULT_LANGUAGE,
                help="forma's language code for column 'name' (name:<language> for the "
                     "others, e.g. name:italian); default english"),
        Setting("remove", choices=("delete",),
                help="what sync does with the units the source owns and no longer has: "
                     "delete (the only choice), and only empty leaf units"),
    )

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        super().check_settings(params)
        language = str(params.get("language") or DEFAULT_LANGUAGE)
        if not _LANGUAGE.match(language.strip().lower()):
            raise SettingsError(f"setting 'language' must be a forma language code such as "
                                f"english or italian, got {language!r}")

    def location(self) -> str:
        url = self.params.get("database")
        return f"the org chart in {masked(url)}" if url else "the org chart in the iotask database"

    @property
    def language(self) -> str:
        return str(self.params.get("language") or DEFAULT_LANGUAGE).strip().lower()

    @property
    def prefix(self) -> str:
        return str(self.params.get("prefix") or "")

    # --- columns ------------------------------------------------------------------------

    def columns(self, context: RunContext) -> list[Column] | None:
        """None: the columns are code (the key), parent_code, name and name:<language> for any
        language, which no fixed list can hold (and a source's columns are its units'
        languages). ``write`` checks the columns itself, before anything is applied, naming the
        known ones; ``read`` yields the languages the site's units have."""
        return None

    # --- reading ------------------------------------------------------------------------

    def read(self, context: RunContext) -> Iterator[Batch]:
        """Every unit with a code, parents before children (depth first, siblings in their
        order): code, parent_code, name (in ``language``) and name:<language> for every other
        language the units have. A unit without a code cannot be named in a file: it and the
        units below it are left out, with a warning."""
        url = self.database_url(context)
        with forma.connect(url, write=False) as conn:
            site = forma.Site(conn, self.prefix, url)
            units = _read_units(site)
            names = _read_names(site, set(units))
        order = _depth_first({u.id: u.parent for u in units.values()},
                             {u.id: (u.path,) for u in units.values()})
        left_out = 0
        exported: dict[int, str] = {}
        for unit_id in order:
            unit = units[unit_id]
            if not unit.code or (unit.parent != ROOT and unit.parent not in exported):
                left_out += 1
                continue
            exported[unit_id] = unit.code
        if left_out:
            log.warning("%d org chart units are left out of the export: they have no code, or "
                        "are below a unit that has none; give them codes in forma", left_out)
        others = sorted({lang for unit_id in exported for lang in names.get(unit_id, {})}
                        - {self.language})
        batch: Batch = []
        for unit_id, code in exported.items():
            unit, own = units[unit_id], names.get(unit_id, {})
            row = {"code": code, "parent_code": exported.get(unit.parent, ""),
                   NAME: own.get(self.language, "")}
            row.update({f"{NAME_PREFIX}{lang}": own.get(lang, "") for lang in others})
            batch.append(row)
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    # --- writing ------------------------------------------------------------------------

    def check_task(self, context: RunContext) -> None:
        """A sync knows its source; a map's key, when it names one, is code."""
        if context.key and list(context.key) != ["code"]:
            raise OrgChartError(f"forma-orgchart matches units on code, not on "
                                f"{', '.join(context.key)}: mark only code as the map's key")
        if context.import_type == "sync" and not context.owner:
            raise OrgChartError("import type sync needs the name of the source connection to "
                                "know which units it owns")

    def check_write(self, context: RunContext) -> None:
        self.check_task(context)

    def write_in(self, site: forma.Site, batches: Iterable[Batch],
                 context: RunContext, drop: Collection[str] = ()) -> forma.Step:
        """Check every row and plan the whole tree in Python, counting the change set; apply
        writes it (see the module's description). ``drop``: the codes of units to remove
        besides (the forma-lms destination's deletes), as a sync would: empty leaves only."""
        self.check_task(context)
        tree, chart = site.table("core_org_chart_tree"), site.table("core_org_chart")
        limits = _Limits(site, tree, chart)
        rows, present = self._rows(batches, context, limits)
        units = _read_units(site)
        names = _read_names(site, set(units))
        owner_name = forma.OWNER_GROUP.format(kind=OWNER_KIND, owner=context.owner or "")
        owner = site.group_ids([owner_name]).get(owner_name) if context.owner else None
        plan = _plan(rows, units, names, context)
        if context.import_type == "sync":
            _plan_removal(plan, site, units, present, owner)
        if drop:
            _plan_removable(plan, site, units,
                            {unit.id for unit in units.values() if unit.code in drop})
        changes = ChangeSet(inserted=len(plan.new), updated=len(plan.updated),
                            unchanged=plan.unchanged + len(plan.kept),
                            removed=len(plan.removed), owned=plan.owned)
        if context.dry_run:
            changes.samples = {
                "insert": [f"code={row.code}" for row in plan.new[:SAMPLE_KEYS]],
                "update": [f"code={row.code}" for row in plan.updated[:SAMPLE_KEYS]],
                "remove": [f"code={units[i].code}" for i in plan.removed[:SAMPLE_KEYS]]}

        def apply() -> ChangeSet:
            _apply(site, plan, units, context)
            return changes

        return forma.Step(changes, apply)

    def _rows(self, batches: Iterable[Batch], context: RunContext,
              limits: _Limits) -> tuple[list[_Row], set[str]]:
        """The rows checked one by one: a bad value or a repeated code is a row error; an
        unknown column stops the run before anything is applied. Also every code the rows
        have, the rejected rows' too: a sync never removes a unit whose row failed."""
        rows: list[_Row] = []
        present: set[str] = set()
        seen: dict[str, int] = {}
        columns: dict[str, str] | None = None  # column: language, for the name columns
        ordinal = 0
        for batch in batches:
            for raw in batch:
                ordinal += 1
                line = int(raw.get(LINE, ordinal))
                if columns is None or any(name not in columns and name not in (
                        "code", "parent_code", LINE) for name in raw):
                    columns = self._name_columns(raw, line)
                code = _text(raw.get("code"))
                present.add(code)
                key = f"code={code}"

                def reject(column: str, message: str, key: str = key, line: int = line) -> None:
                    context.row_error(RowError(row_index=line, key_values=key, column=column,
                                               message=message))

                if not code:
                    reject("code", "key column 'code' is empty: every unit needs its code")
                    continue
                problem = limits.check("code", code, limits.code)
                if problem:
                    reject("code", problem)
                    continue
                parent_code = None if "parent_code" not in raw else _text(raw["parent_code"])
                if parent_code:
                    problem = limits.check("parent_code", parent_code, limits.code)
                    if problem:
                        reject("parent_code", problem)
                        continue
                unit_names: dict[str, str] = {}
                for column, language in columns.items():
                    value = _text(raw.get(column))
                    if not value:
                        continue  # an empty cell never blanks a name
                    problem = limits.check(column, value, limits.name)
                    if problem:
                        reject(column, problem)
                        break
                    unit_names[language] = value
                else:
                    if code in seen:
                        reject("code", f"duplicate key code={code}: also on line {seen[code]}; "
                                       "the first row is the one applied")
                        continue
                    seen[code] = line
                    rows.append(_Row(line, code, parent_code, unit_names))
        return rows, present

    def _name_columns(self, row: dict[str, Any], line: int) -> dict[str, str]:
        """The row's name columns and their languages; any other unknown column stops the run."""
        found: dict[str, str] = {}
        for column in row:
            if column in ("code", "parent_code", LINE):
                continue
            if column == NAME:
                language = self.language
            elif column.startswith(NAME_PREFIX) and _LANGUAGE.match(
                    column[len(NAME_PREFIX):].strip().lower()):
                language = column[len(NAME_PREFIX):].strip().lower()
            else:
                raise OrgChartError(
                    f"column {column!r} (line {line}) is not a forma-orgchart column: the "
                    f"columns are code, parent_code, name (in {self.language}) and "
                    "name:<language> (e.g. name:italian); nothing was applied")
            twice = next((other for other, lang in found.items() if lang == language), None)
            if twice:
                raise OrgChartError(f"columns {twice!r} and {column!r} both give the name in "
                                    f"{language}: keep one of them; nothing was applied")
            found[column] = language
        if "code" not in row:
            raise OrgChartError("the rows have no column 'code', the key of a unit: map a "
                                "source column to it; nothing was applied")
        return found

    # --- adopting -----------------------------------------------------------------------

    def adopt(self, batches: Iterable[Batch], context: RunContext, everything: bool) -> int:
        """Make the source the owner of the units no source owns whose codes the rows hold
        (``everything``: of every unit no source owns); how many."""
        if not context.owner:
            raise OrgChartError("adopting needs the name of the source connection")
        codes = set() if everything else {
            code for batch in batches for row in batch if (code := _text(row.get("code")))}
        url = self.database_url(context)
        with forma.connect(url, write=True) as conn, conn.begin() as transaction:
            site = forma.Site(conn, self.prefix, url)
            units = _read_units(site)
            owned = _owned_by_anyone(site)
            targets = sorted({unit.oc for unit in units.values()
                              if unit.oc and unit.oc not in owned
                              and (everything or unit.code in codes)})
            if context.dry_run or not targets:
                transaction.rollback()
                return len(targets)
            owner = site.owner_group(OWNER_KIND, context.owner)
            _add_members(site, [(owner, oc) for oc in targets])
            context.check_lease(conn)
            transaction.commit()
            return len(targets)


# --- values -------------------------------------------------------------------------------

def _text(value: Any) -> str:
    if value is None:
        return ""
    return (value if isinstance(value, str) else str(value)).strip()


class _Limits:
    """What the site's columns hold: lengths, and 3-byte UTF-8 on a MariaDB utf8 table."""

    def __init__(self, site: forma.Site, tree: sa.Table, chart: sa.Table) -> None:
        self.code = (getattr(tree.c.code.type, "length", None) or 255,
                     _three_byte(site, tree))
        self.name = (getattr(chart.c.translation.type, "length", None) or 255,
                     _three_byte(site, chart))

    @staticmethod
    def check(column: str, value: str, limit: tuple[int, bool]) -> str | None:
        length, three_byte = limit
        control = _CONTROL.search(value)
        if control:
            return (f"column {column!r}: {value[:40]!r} holds the control character "
                    f"U+{ord(control.group()):04X}: remove it from the source")
        if len(value) > length:
            return (f"column {column!r}: the value is {len(value)} characters long, forma's "
                    f"column holds {length}: shorten it")
        if three_byte and any(ord(char) > 0xFFFF for char in value):
            return (f"column {column!r}: {value[:40]!r} has a character beyond U+FFFF (an "
                    "emoji?), which this site's 3-byte utf8 tables cannot store: remove it")
        return None


def _three_byte(site: forma.Site, table: sa.Table) -> bool:
    if site.backend != "mysql":
        return False
    charset = str(table.dialect_options["mysql"].get("default charset") or "").lower()
    return charset in ("utf8", "utf8mb3")


# --- the site -----------------------------------------------------------------------------

def _read_units(site: forma.Site) -> dict[int, _Unit]:
    tree = site.table("core_org_chart_tree")
    rows = site.execute(sa.select(tree.c.idOrg, tree.c.idParent, tree.c.path, tree.c.lev,
                                  tree.c.iLeft, tree.c.iRight, tree.c.code, tree.c.idst_oc,
                                  tree.c.idst_ocd), "reading the org chart")
    return {int(r[0]): _Unit(int(r[0]), int(r[1] or 0), r[2] or "", int(r[3] or 0),
                             int(r[4] or 0), int(r[5] or 0), r[6] or "", int(r[7] or 0),
                             int(r[8] or 0)) for r in rows}


def _read_names(site: forma.Site, ids: set[int]) -> dict[int, dict[str, str]]:
    chart = site.table("core_org_chart")
    names: dict[int, dict[str, str]] = defaultdict(dict)
    for id_dir, lang, translation in site.execute(
            sa.select(chart.c.id_dir, chart.c.lang_code, chart.c.translation),
            "reading the units' names"):
        if int(id_dir) in ids:
            names[int(id_dir)][str(lang)] = translation or ""
    return names


def _members(site: forma.Site, group: int) -> set[int]:
    members = site.table("core_group_members")
    return {int(value) for (value,) in site.execute(
        sa.select(members.c.idstMember).where(members.c.idst == group),
        "reading a group's members")}


def _owned_by_anyone(site: forma.Site) -> set[int]:
    """The /oc_ groups that are members of any source's ownership group."""
    members, group = site.table("core_group_members"), site.table("core_group")
    prefix = forma.OWNER_GROUP.format(kind=OWNER_KIND, owner="")
    return {int(value) for (value,) in site.execute(
        sa.select(members.c.idstMember).join(group, group.c.idst == members.c.idst)
        .where(group.c.groupid.startswith(prefix, autoescape=True)),
        "reading the owned units")}


def _with_users(site: forma.Site) -> set[int]:
    """The groups of units (/oc_ and /ocd_) that have a user as a member."""
    members, user = site.table("core_group_members"), site.table("core_user")
    tree = site.table("core_org_chart_tree")
    groups = sa.union(sa.select(tree.c.idst_oc), sa.select(tree.c.idst_ocd))
    return {int(value) for (value,) in site.execute(
        sa.select(members.c.idst).distinct().join(user, user.c.idst == members.c.idstMember)
        .where(members.c.idst.in_(groups)), "reading the units' users")}


# --- the plan -----------------------------------------------------------------------------

def _plan(rows: list[_Row], units: dict[int, _Unit], names: dict[int, dict[str, str]],
          context: RunContext) -> _Plan:
    """Resolve every row against the site and the other rows; reject what cannot be placed."""
    by_code: dict[str, list[int]] = defaultdict(list)
    for unit in units.values():
        if unit.code:
            by_code[unit.code].append(unit.id)
    in_file = {row.code: row for row in rows}
    temp: dict[str, int] = {}  # new units' codes: temporary (negative) ids
    node: dict[str, int] = {}
    for row in rows:
        found = by_code.get(row.code, [])
        if len(found) > 1:
            row.error, row.column = _shared(row.code, found, "code"), "code"
        elif found:
            node[row.code] = found[0]
        else:
            temp[row.code] = node[row.code] = -(len(temp) + 1)
    # each row's parent: a unit of the site or another row
    wanted: dict[str, str | None] = {}  # code: the parent's code ("" the root, None unchanged)
    for row in rows:
        if row.error:
            continue
        parent = row.parent_code
        if parent and parent == row.code:
            row.error = f"unit {row.code!r} is its own parent_code: correct parent_code"
        elif parent and len(by_code.get(parent, [])) > 1:
            row.error = _shared(parent, by_code[parent], "parent_code")
        elif parent and parent not in in_file and parent not in by_code:
            row.error = (f"parent_code {parent!r} is not a unit: no row of the file and no unit "
                         "of the site has this code; add the parent's row (in any order) or "
                         "correct parent_code")
        elif row.code in temp and not row.names:
            row.error = (f"unit {row.code!r} is new and has no name: fill column name (or a "
                         "name:<language> column)")
            row.column = NAME
        if row.error:
            row.column = row.column or "parent_code"
        else:
            wanted[row.code] = parent
    parents = {unit.id: unit.parent for unit in units.values()}

    def settle() -> None:
        """Reject the rows below a rejected new unit (it will not exist), until none is left.
        Rows below a rejected unit of the site still go on: it is there, where it was."""
        changed = True
        while changed:
            changed = False
            for row in rows:
                if row.error or not row.parent_code or row.parent_code not in temp:
                    continue
                above = in_file[row.parent_code]
                if above.error:
                    row.error = (f"parent {above.code!r} was rejected (line {above.line}): a "
                                 "new unit that does not exist yet, so this unit cannot go "
                                 "below it; correct that row")
                    row.column = "parent_code"
                    changed = True

    settle()
    while True:
        final = dict(parents)
        for row in rows:
            if row.error:
                continue
            parent = wanted[row.code]
            own = node[row.code]
            if parent is None:
                final[own] = final.get(own, ROOT) if own > 0 else ROOT
            elif not parent:
                final[own] = ROOT
            else:
                final[own] = node[parent] if parent in node else by_code[parent][0]
        cycle = _find_cycle(final, {node[row.code] for row in rows if not row.error})
        if not cycle:
            break
        codes = {v: k for k, v in node.items()}
        shown = " → ".join(codes.get(i) or units[i].code or f"idOrg {i}" for i in cycle)
        on_cycle = [hit for hit in (in_file.get(codes.get(i, "")) for i in cycle[:-1])
                    if hit is not None and not hit.error]
        # the rows that close the loop: new units and moves (the site's own tree has none)
        closing = [hit for hit in on_cycle
                   if node[hit.code] < 0 or final[node[hit.code]] != parents[node[hit.code]]]
        on_cycle = closing or on_cycle
        if not on_cycle:
            break  # a loop in the site itself, above the rows: the layout names it
        for row in on_cycle:
            row.error = (f"cycle in the org chart: {shown}: a unit cannot be below itself; "
                         "correct parent_code")
            row.column = "parent_code"
        settle()
    for row in rows:
        if row.error:
            context.row_error(RowError(row_index=row.line, key_values=f"code={row.code}",
                                       column=row.column, message=row.error))
    plan = _Plan(parents=final, temp=temp)
    for row in rows:
        if row.error:
            continue
        own = node[row.code]
        if own < 0:
            plan.new.append(row)
            plan.names_insert.extend((own, lang, name) for lang, name in row.names.items())
            continue
        changed = False
        if final[own] != parents[own]:
            plan.moved[own] = (parents[own], final[own])
            changed = True
        have = names.get(own, {})
        for lang, name in row.names.items():
            if lang not in have:
                plan.names_insert.append((own, lang, name))
                changed = True
            elif have[lang] != name:
                plan.names_update.append((own, lang, name))
                changed = True
        if changed:
            plan.updated.append(row)
        else:
            plan.unchanged += 1
    _layout(plan.parents, units, set(plan.moved))  # refuses a broken tree, before review
    return plan


def _shared(code: str, ids: list[int], column: str) -> str:
    listed = ", ".join(str(i) for i in sorted(ids)[:5])
    return (f"{column} {code!r} is shared by {len(ids)} units of the site (idOrg {listed}): "
            "iotask cannot tell which one is meant; give them distinct codes in forma")


def _find_cycle(parents: dict[int, int], starts: set[int]) -> list[int] | None:
    """A cycle reachable from ``starts`` going up, as [a, b, ..., a]; None when there is none."""
    done: set[int] = set()
    for start in sorted(starts):
        trail: dict[int, int] = {}
        at = start
        while at != ROOT and at not in done and at in parents:
            if at in trail:
                loop = list(trail)[trail[at]:]
                return [*loop, at]
            trail[at] = len(trail)
            at = parents[at]
        done.update(trail)
    return None


def _plan_removal(plan: _Plan, site: forma.Site, units: dict[int, _Unit], present: set[str],
                  owner: int | None) -> None:
    """The owned units the file no longer has (``present``: every code of the file, rejected
    rows' too) that are empty leaves once their own children are removed, and those kept."""
    if owner is None:
        return
    owned_groups = _members(site, owner)
    owned = [unit for unit in units.values() if unit.oc and unit.oc in owned_groups]
    plan.owned = len(owned)
    _plan_removable(plan, site, units, {unit.id for unit in owned if unit.code not in present})


def _plan_removable(plan: _Plan, site: forma.Site, units: dict[int, _Unit],
                    gone: set[int]) -> None:
    """Of the units ``gone``, those that are empty leaves once their own children are removed
    go to ``plan.removed``, the others to ``plan.kept`` (with a warning)."""
    gone -= set(plan.removed)
    if not gone:
        return
    peopled = _with_users(site)
    candidates = {i for i in gone if units[i].oc not in peopled and units[i].ocd not in peopled}
    children: dict[int, list[int]] = defaultdict(list)
    for child, parent in plan.parents.items():
        children[parent].append(child)
    removable: dict[int, bool] = {}
    for unit_id in reversed(_depth_first(plan.parents, {})):  # children before parents
        removable[unit_id] = unit_id in candidates and all(
            removable.get(child, False) for child in children.get(unit_id, []))
    removed = sorted(i for i in gone if removable.get(i))
    plan.removed += removed
    plan.kept += sorted(gone - set(removed))
    peopled_kept = [units[i].code for i in plan.kept if i not in candidates]
    parents_kept = [units[i].code for i in plan.kept if i in candidates]
    for codes, why in ((peopled_kept, "they hold users"),
                       (parents_kept, "units below them stay")):
        if codes:
            log.warning("%d org chart units the source no longer has are kept, as %s: %s%s",
                        len(codes), why, ", ".join(map(repr, codes[:10])),
                        ", ..." if len(codes) > 10 else "")


# --- the layout ---------------------------------------------------------------------------

def _children(parents: dict[int, int], key: Any) -> dict[int, list[int]]:
    children: dict[int, list[int]] = defaultdict(list)
    for child, parent in parents.items():
        children[parent].append(child)
    for kids in children.values():
        kids.sort(key=key)
    return children


def _depth_first(parents: dict[int, int], order: dict[int, tuple[Any, ...]]) -> list[int]:
    """The units reachable from the root, parents first, siblings by ``order`` then id."""
    children = _children(parents, lambda i: (order.get(i, ()), i))
    found: list[int] = []
    stack = list(reversed(children.get(ROOT, [])))
    seen: set[int] = set()
    while stack:
        at = stack.pop()
        if at in seen:
            continue
        seen.add(at)
        found.append(at)
        stack.extend(reversed(children.get(at, [])))
    return found


@dataclass(frozen=True)
class _Place:
    parent: int
    path: str
    lev: int
    left: int
    right: int


def _layout(parents: dict[int, int], units: dict[int, _Unit],
            moved: set[int]) -> dict[int, _Place]:
    """path, lev and the nested set of every unit from ``parents``: siblings in their order
    (current path, then idOrg), the units ``moved`` in after them, the new ones (not in
    ``units``; negative ids before they are inserted) last, in id order. A unit that is not
    below the root (its parent does not exist, or a loop) stops the run."""
    def key(i: int) -> tuple[Any, ...]:
        if i < 0 or i not in units:
            return (2, "", abs(i))
        if i in moved:
            return (1, "", i)
        return (0, units[i].path, i)

    children = _children(parents, key)
    places: dict[int, _Place] = {}
    counter = 0
    # frames: [unit, path, lev, its children still to place, iLeft, children placed so far]
    stack: list[list[Any]] = [[ROOT, "/root", 0, iter(children.get(ROOT, [])), 0, 0]]
    while stack:
        frame = stack[-1]
        child = next(frame[3], None)
        if child is None:
            stack.pop()
            if frame[0] != ROOT:
                counter += 1
                places[frame[0]] = _Place(parents[frame[0]], frame[1], frame[2], frame[4],
                                          counter)
            continue
        frame[5] += 1
        counter += 1
        stack.append([child, f"{frame[1]}/{frame[5]:08d}", frame[2] + 1,
                      iter(children.get(child, [])), counter, 0])
    lost = sorted(i for i in parents if i not in places)
    if lost:
        shown = "; ".join(
            f"idOrg {i} (code {units[i].code!r}) has idParent {parents[i]}"
            + (", which does not exist" if parents[i] not in parents else ", in a loop")
            for i in lost[:5] if i in units)
        raise OrgChartError(
            f"the site's org chart cannot be laid out: {len(lost)} units are not below the root "
            f"({shown}): correct idParent in core_org_chart_tree, or give the units rows with "
            "their parent_code in the file; nothing was applied")
    return places


# --- applying -----------------------------------------------------------------------------

def _chunks(values: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _add_members(site: forma.Site, pairs: list[tuple[int, int]]) -> None:
    """Memberships (group, member) the site lacks: one multi-row INSERT per 1000."""
    members = site.table("core_group_members")
    wanted = sorted({pair for pair in pairs if pair[0] and pair[1]})
    if not wanted:
        return
    have: set[tuple[int, int]] = set()
    for part in _chunks(sorted({member for _, member in wanted})):
        have.update((int(a), int(b)) for a, b in site.execute(
            sa.select(members.c.idst, members.c.idstMember)
            .where(members.c.idstMember.in_(part)), "reading memberships"))
    site.insert_many(members, [{"idst": group, "idstMember": member, "filter": ""}
                                 for group, member in wanted if (group, member) not in have],
                 "adding memberships")


def _apply(site: forma.Site, plan: _Plan, units: dict[int, _Unit], context: RunContext) -> None:
    """Remove, insert, move and rename with a few statements each, then number the tree."""
    tree, chart = site.table("core_org_chart_tree"), site.table("core_org_chart")
    members = site.table("core_group_members")
    if plan.removed:
        _remove(site, plan.removed, units)
        for unit_id in plan.removed:
            plan.parents.pop(unit_id, None)
    ids = _insert(site, plan, units) if plan.new else {}
    real = {**{i: i for i in plan.parents if i > 0}, **ids, ROOT: ROOT}
    parents = {real[child]: real[parent] for child, parent in plan.parents.items()}
    groups: dict[int, tuple[int, int]] = {u.id: (u.oc, u.ocd) for u in units.values()}
    root_ocd = site.seed_group(forma.ROOT_OCD) if plan.new or plan.moved else 0

    def ocd(unit_id: int) -> int:
        return root_ocd if unit_id == ROOT else groups[unit_id][1]

    if ids:
        names = [name for unit_id in sorted(ids.values())
                 for name in (f"/oc_{unit_id}", f"/ocd_{unit_id}")]
        made = site.ensure_groups(names, hidden=True)
        for unit_id in ids.values():
            groups[unit_id] = (made[f"/oc_{unit_id}"], made[f"/ocd_{unit_id}"])
        owner = site.owner_group(OWNER_KIND, context.owner) if context.owner else None
        pairs = []
        for unit_id in ids.values():
            oc = groups[unit_id][0]
            pairs += [(ocd(parents[unit_id]), ocd(unit_id)), (ocd(unit_id), oc)]
            if owner is not None:
                pairs.append((owner, oc))
        _add_members(site, pairs)
    if plan.moved:
        moving = sorted(ocd(i) for i in plan.moved if ocd(i))
        org_groups = sa.union(sa.select(tree.c.idst_ocd), sa.select(sa.literal(root_ocd)))
        for part in _chunks(moving):
            site.execute(sa.delete(members).where(members.c.idstMember.in_(part),
                                                  members.c.idst.in_(org_groups)),
                         "moving units out of their old parents")
        _add_members(site, [(ocd(real[new]), ocd(i)) for i, (_, new) in plan.moved.items()])
    site.insert_many(chart, [{"id_dir": real[unit_id], "lang_code": lang, "translation": name}
                               for unit_id, lang, name in plan.names_insert],
                 "adding the units' names")
    if plan.names_update:
        stage = site.stage([sa.Column("id_dir", sa.Integer), sa.Column("lang_code", sa.String(50)),
                            sa.Column("translation", sa.String(255))],
                           ["id_dir", "lang_code"], name="orgchart_names")
        stage.add([(n, unit_id, lang, name)
                   for n, (unit_id, lang, name) in enumerate(plan.names_update, 1)])
        stage.finish()
        s = stage.table
        site.execute(sa.update(chart).where(chart.c.id_dir == s.c.id_dir,
                                            chart.c.lang_code == s.c.lang_code)
                     .values({chart.c.translation: s.c.translation}), "renaming units")
    if plan.new or plan.moved or plan.removed:
        _renumber(site, parents, units, set(plan.moved), groups, set(ids.values()))


def _insert(site: forma.Site, plan: _Plan, units: dict[int, _Unit]) -> dict[int, int]:
    """The new units' rows, placeholders until _renumber; their idOrg read back by code:
    {temporary id: idOrg}."""
    tree = site.table("core_org_chart_tree")
    site.insert_many(tree, [{"idParent": 0, "path": "", "lev": 0, "iLeft": 0, "iRight": 0,
                               "code": row.code, "idst_oc": 0, "idst_ocd": 0}
                              for row in plan.new], "adding org chart units")
    ids: dict[int, int] = {}
    for part in _chunks([row.code for row in plan.new]):
        for unit_id, code in site.execute(
                sa.select(tree.c.idOrg, tree.c.code)
                .where(tree.c.code.in_(part), tree.c.path == "", tree.c.iLeft == 0),
                "reading the new units' ids"):
            if int(unit_id) in units or code not in plan.temp:
                continue  # an older unit, or another case of the code (MariaDB's collation)
            if plan.temp[code] in ids:
                raise OrgChartError(f"two units with code {code!r} appeared while this run added "
                                    "one: is another import running? nothing was applied")
            ids[plan.temp[code]] = int(unit_id)
    if len(ids) != len(plan.new):
        raise OrgChartError("the new units could not be read back after inserting them; "
                            "nothing was applied")
    return ids


def _remove(site: forma.Site, removed: list[int], units: dict[int, _Unit]) -> None:
    """The units' tree rows, names, groups and every membership naming those groups."""
    tree, chart = site.table("core_org_chart_tree"), site.table("core_org_chart")
    members, group = site.table("core_group_members"), site.table("core_group")
    groups = sorted({g for i in removed for g in (units[i].oc, units[i].ocd) if g})
    for part in _chunks(groups):
        site.execute(sa.delete(members).where(sa.or_(members.c.idst.in_(part),
                                                     members.c.idstMember.in_(part))),
                     "removing the units' memberships")
        site.execute(sa.delete(group).where(group.c.idst.in_(part)), "removing the units' groups")
    for part in _chunks(removed):
        site.execute(sa.delete(chart).where(chart.c.id_dir.in_(part)),
                     "removing the units' names")
        site.execute(sa.delete(tree).where(tree.c.idOrg.in_(part)), "removing units")


def _renumber(site: forma.Site, parents: dict[int, int], units: dict[int, _Unit],
              moved: set[int], groups: dict[int, tuple[int, int]], new: set[int]) -> None:
    """path, lev, iLeft and iRight of the whole tree again; only the rows that differ (and the
    new ones) are written, through a staging table and one UPDATE."""
    places = _layout(parents, {i: u for i, u in units.items() if i not in new}, moved)
    rows: list[tuple[Any, ...]] = []
    for unit_id, place in places.items():
        unit = units.get(unit_id)
        if unit is not None and unit_id not in new and (
                unit.parent, unit.path, unit.lev, unit.left, unit.right) == (
                place.parent, place.path, place.lev, place.left, place.right):
            continue
        oc, ocd = groups.get(unit_id, (0, 0))
        rows.append((len(rows) + 1, unit_id, place.parent, place.path, place.lev, place.left,
                     place.right, oc, ocd))
    if not rows:
        return
    tree = site.table("core_org_chart_tree")
    stage: Stage = site.stage(
        [sa.Column("idOrg", sa.Integer), sa.Column("idParent", sa.Integer),
         sa.Column("path", sa.Text), sa.Column("lev", sa.Integer),
         sa.Column("iLeft", sa.Integer), sa.Column("iRight", sa.Integer),
         sa.Column("idst_oc", sa.Integer), sa.Column("idst_ocd", sa.Integer)],
        ["idOrg"], name="orgchart_layout")
    stage.add(rows)
    stage.finish()
    s = stage.table
    site.execute(sa.update(tree).where(tree.c.idOrg == s.c.idOrg).values(
        {tree.c.idParent: s.c.idParent, tree.c.path: s.c.path, tree.c.lev: s.c.lev,
         tree.c.iLeft: s.c.iLeft, tree.c.iRight: s.c.iRight, tree.c.idst_oc: s.c.idst_oc,
         tree.c.idst_ocd: s.c.idst_ocd}), "numbering the org chart")


CONNECTOR = FormaOrgChartConnector
