"""Staging: a destination's incoming rows bulk-loaded into a temporary table, so that the change
set is computed and applied by a few set-based statements inside the destination's transaction.

Each database loads the way it is fastest: MariaDB/MySQL ``LOAD DATA LOCAL INFILE`` (multi-row
INSERT when the server refuses local files), PostgreSQL ``COPY``, SQLite ``executemany``. Every
statement is built from the reflected table and quoted by SQLAlchemy; values are bound or streamed,
never pasted into SQL text. The temporary table lives in the destination's session only, so a
crash leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from iotask.connectors.context import SAMPLE_KEYS, ChangeKind, ChangeSet
from iotask.connectors.databases import reason
from iotask.connectors.errors import ConnectorError
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import DBAPIError

LINE_COLUMN = "iotask_line"  # the row's physical line (or ordinal): for errors, never written
NEW_COLUMN = "iotask_new"  # in the pending rows: 1 for a new record, 0 for a changed one
CHUNK_ROWS = {"mysql": 20_000, "postgresql": 20_000, "sqlite": 5_000}  # flat memory
NO_LOCAL_INFILE = {1148, 2068, 3948, 4166}  # the server or client refuses LOAD DATA LOCAL
_WARNING_ROW = re.compile(r"\bat row (\d+)")
log = logging.getLogger("iotask.staging")


class StageError(ConnectorError):
    """Staging or applying failed; nothing was applied. The message names the table and cause."""


# LOAD DATA's own text format: tab-separated, backslash escapes, \N for NULL
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r",
                          "\0": "\\0"})
_SPECIAL = ("\\", "\t", "\n", "\r", "\0")


@dataclass(frozen=True)
class Removal:
    """How a sync removes the task's own records that its source no longer has."""

    owner_column: str
    owner: str
    action: str = "delete"  # or "deactivate"
    status_column: str | None = None
    inactive: Any = None
    active: Any = None  # what every row the source still has gets, so it comes back to life


class Stage:
    """A temporary table shaped like the destination's written columns plus the row's line."""

    def __init__(self, conn: sa.Connection, target: sa.Table, columns: list[str],
                 keys: list[str], unique: bool = False) -> None:
        """``unique``: a repeated key may fail the loading (or ``finish``) instead of becoming
        a row error, so the stage is keyed on the keys alone and ``duplicates`` has nothing to
        look for: for a caller that would refuse such rows anyway (the columnar fast path)."""
        self.conn, self.target, self.columns, self.keys = conn, target, columns, keys
        self.backend = "mysql" if conn.dialect.name in ("mysql", "mariadb") else conn.dialect.name
        self.name = f"iotask_stage_{secrets.token_hex(4)}"
        indexable = self.backend != "mysql" or all(
            not isinstance(target.c[k].type, sa.Text | sa.LargeBinary) for k in keys)
        self.unique_keys = unique and indexable
        parts: list[Any] = [sa.Column(LINE_COLUMN, sa.BigInteger, nullable=False,
                                      autoincrement=False)]
        parts += [sa.Column(name, target.c[name].type, autoincrement=False,
                            nullable=name not in keys) for name in columns]
        if self.backend == "mysql" and indexable:  # CREATE INDEX would commit on MySQL
            line = [] if self.unique_keys else [LINE_COLUMN]
            parts.append(sa.PrimaryKeyConstraint(*keys, *line))
        self.table = sa.Table(self.name, sa.MetaData(), *parts, prefixes=["TEMPORARY"])
        self._execute(lambda: self.table.create(conn), "creating the staging table")
        self._indexed = self.backend == "mysql"
        self._buffer: list[tuple[Any, ...]] = []
        self._chunk = CHUNK_ROWS.get(self.backend, 5_000)
        self._local_infile = True
        self._pending: sa.Table | None = None  # the new and changed rows, whole;
        # None when the target had no records, so that every staged row is new
        self._removed: sa.Table | None = None  # identities of the records to remove
        self.staged = 0
        # what a bucketed diff (connectors/delta.py) found instead of the joins: the rows known
        # unchanged and so never staged, the records compared, and which of them the stage's
        # rows answer for (the others are known to be in the file)
        self.unstaged = 0
        self.known_owned: int | None = None
        self.scope: list[sa.ColumnElement[bool]] = []

    # --- loading ----------------------------------------------------------------------

    def add(self, rows: list[tuple[Any, ...]]) -> None:
        """Rows as tuples: the line first, then the values in ``columns`` order."""
        self._buffer.extend(rows)
        if len(self._buffer) >= self._chunk:
            self._flush()

    def finish(self) -> None:
        """Load what is buffered, then index the keys for the joins ahead."""
        self._flush()
        if not self._indexed:
            index = sa.Index(f"{self.name}_key", *(self.table.c[k] for k in self.keys),
                             unique=self.unique_keys)
            self._execute(lambda: index.create(self.conn), "indexing the staging table")
            self._analyse(self.table, "the staging table")
            self._indexed = True

    def _flush(self) -> None:
        rows, self._buffer = self._buffer, []
        if not rows:
            return
        if self.backend == "mysql" and self._local_infile:
            self._load_data(rows)
        elif self.backend == "postgresql":
            self._copy(rows)
        else:
            self._insert(rows)
        self.staged += len(rows)
        log.debug("staged %d rows in all", self.staged)

    def _analyse(self, table: sa.Table, what: str) -> None:
        """PostgreSQL never auto-analyses temporary tables; its plans need the statistics."""
        if self.backend == "postgresql":
            self._execute(lambda: self.conn.exec_driver_sql(f"ANALYZE {self._quote(table.name)}"),
                          f"analysing {what}")

    def _names(self) -> list[str]:
        return [LINE_COLUMN, *self.columns]

    def _quote(self, name: str) -> str:
        return self.conn.dialect.identifier_preparer.quote(name)

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        """executemany: SQLite's fastest path, and PyMySQL's multi-row INSERT rewrite.

        The driver gets the values as SQLAlchemy would bind them (Decimal and dates as text on
        SQLite), since this bypasses SQLAlchemy's own conversions.
        """
        processors = self._processors()
        if processors:
            columns = list(zip(*rows, strict=True))
            for position, processor, iso in processors:
                values = columns[position]
                if iso and set(map(type, values)) == {date}:
                    columns[position] = tuple(map(date.isoformat, values))
                else:
                    columns[position] = tuple(map(processor, values))
            rows = list(zip(*columns, strict=True))
        marker = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        sql = (f"INSERT INTO {self._quote(self.name)} "
               f"({', '.join(self._quote(n) for n in self._names())}) "
               f"VALUES ({', '.join([marker] * (len(self.columns) + 1))})")
        self._execute(lambda: self.conn.exec_driver_sql(sql, rows), "staging rows",
                      lines=[row[0] for row in rows])

    def _processors(self) -> list[tuple[int, Callable[[Any], Any], bool]]:
        """The staged columns' bind processors by position, each with whether it is SQLite's
        default DATE processor, whose text ``date.isoformat`` gives in C, for a column of dates
        alone."""
        dialect = self.conn.dialect
        found = []
        for position, column in enumerate(self.table.c):
            impl = column.type.dialect_impl(dialect)
            processor = impl.bind_processor(dialect)
            if processor is not None:
                iso = (isinstance(impl, sqlite.DATE)
                       and getattr(impl, "_storage_format", None) == sqlite.DATE._storage_format)
                found.append((position, processor, iso))
        return found

    def _copy(self, rows: list[tuple[Any, ...]]) -> None:
        from psycopg import sql

        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(self.name), sql.SQL(", ").join(map(sql.Identifier, self._names())))
        raw: Any = self.conn.connection.dbapi_connection

        def work() -> None:
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)

        self._execute(work, "staging rows (COPY)")

    def _load_data(self, rows: list[tuple[Any, ...]]) -> None:
        """Write the chunk to a temporary file in LOAD DATA's own text format and LOAD DATA
        LOCAL it.

        LOCAL turns data errors into warnings, so any warning fails the run, naming its line.
        """
        path = _write_load_file(rows)
        try:
            sql = (f"LOAD DATA LOCAL INFILE %s INTO TABLE {self._quote(self.name)} "
                   "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
                   "LINES TERMINATED BY '\\n' "
                   f"({', '.join(self._quote(n) for n in self._names())})")
            started = time.perf_counter()
            try:
                self.conn.exec_driver_sql(sql, (path,))
                log.debug("LOAD DATA of %d rows: %.2fs", len(rows),
                          time.perf_counter() - started)
            except DBAPIError as exc:
                code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
                if code not in NO_LOCAL_INFILE:
                    raise StageError(f"staging rows in {self.target.name!r} failed: "
                                     f"{reason(exc)}") from exc
                self._local_infile = False
                self._insert(rows)
                return
            warning = self.conn.exec_driver_sql("SHOW WARNINGS LIMIT 1").first()
            if warning is not None:
                raise StageError(self._at_line(f"staging rows in {self.target.name!r}: "
                                               f"{warning[2]}", [row[0] for row in rows]))
        finally:
            os.unlink(path)

    def _at_line(self, message: str, lines: list[int]) -> str:
        found = _WARNING_ROW.search(message)
        if found and 0 < int(found.group(1)) <= len(lines):
            return f"line {lines[int(found.group(1)) - 1]}: {message}"
        return message

    def _execute(self, work: Any, what: str, lines: list[int] | None = None) -> Any:
        started = time.perf_counter()
        try:
            result = work()
            log.debug("%s: %.2fs", what, time.perf_counter() - started)
            return result
        except DBAPIError as exc:
            message = f"{what} for table {self.target.name!r} failed: {reason(exc)}"
            raise StageError(self._at_line(message, lines or [])) from exc

    # --- the change set -----------------------------------------------------------------

    def duplicates(self) -> Iterator[tuple[int, tuple[Any, ...], int]]:
        """Each row whose key an earlier row already had: (line, key, first line). They are
        taken out of the stage, so the first row with a key is the one applied.

        The repeated keys go to a table of their own, joined back in the database: its
        collation says which keys are equal (``ann`` and ``ANN`` under a case-insensitive
        one), not Python. A ``unique`` stage's index already refused them."""
        if self.unique_keys:
            return
        stage = self.table
        keys = [stage.c[k] for k in self.keys]
        groups = (sa.select(*keys, sa.func.min(stage.c[LINE_COLUMN]))
                  .group_by(*keys).having(sa.func.count() > 1))
        if self._execute(lambda: self.conn.execute(groups.limit(1)).first(),
                         "finding duplicate keys") is None:
            return
        first = "iotask_first"
        repeated = self._key_table("repeated", self.keys, False,
                                   sa.Column(first, sa.BigInteger, nullable=False))
        self._execute(lambda: self.conn.execute(
            sa.insert(repeated).from_select([*self.keys, first], groups)),
            "finding duplicate keys")
        rows = self._execute(lambda: self.conn.execute(
            sa.select(stage.c[LINE_COLUMN], *keys, repeated.c[first])
            .select_from(stage.join(repeated, sa.and_(
                *(repeated.c[k] == stage.c[k] for k in self.keys))))
            .where(stage.c[LINE_COLUMN] != repeated.c[first])
            .order_by(stage.c[LINE_COLUMN])).all(), "finding duplicate keys")
        lines = [row[0] for row in rows]
        for at in range(0, len(lines), 1000):
            self.conn.execute(sa.delete(stage).where(
                stage.c[LINE_COLUMN].in_(lines[at:at + 1000])))
        self.staged -= len(lines)
        for row in rows:
            yield row[0], tuple(row[1:-1]), row[-1]

    def _match(self) -> sa.ColumnElement[bool]:
        return sa.and_(*(self.target.c[k] == self.table.c[k] for k in self.keys))

    def _changed(self, rows: sa.Table | None = None) -> sa.ColumnElement[bool] | None:
        """Whether a target record differs from its row in ``rows`` (the stage by default)."""
        data = self._data()
        if not data:
            return None
        return sa.or_(*(self._distinct(name, self.table if rows is None else rows)
                        for name in data))

    def _data(self) -> list[str]:
        return [name for name in self.columns if name not in self.keys]

    def _distinct(self, name: str, rows: sa.Table) -> sa.ColumnElement[bool]:
        old: sa.ColumnElement[Any] = self.target.c[name]
        new: sa.ColumnElement[Any] = rows.c[name]
        if self.backend == "mysql" and isinstance(old.type, sa.String):
            # compare bytes: a case-insensitive or space-padding collation would call a
            # corrected name "unchanged"
            old, new = sa.cast(old, mysql.BINARY()), sa.cast(new, mysql.BINARY())
        return old.is_distinct_from(new)

    def _gone(self, removal: Removal, *columns: Any) -> sa.Select[Any]:
        """SELECT ``columns`` of the task's own records that this run's rows no longer have.

        An outer join, not NOT EXISTS: MariaDB materialises NOT EXISTS and takes ten times
        longer; PostgreSQL and SQLite plan both alike.
        """
        return (sa.select(*columns).select_from(self.target.outerjoin(self.table, self._match()))
                .where(*self._owned(removal), *self.scope,
                       self.table.c[LINE_COLUMN].is_(None)))

    def _owned(self, removal: Removal) -> list[sa.ColumnElement[bool]]:
        owned = [self.target.c[removal.owner_column] == removal.owner]
        if removal.action == "deactivate" and removal.status_column is not None:
            owned.append(self.target.c[removal.status_column].is_distinct_from(removal.inactive))
        return owned

    def change_set(self, removal: Removal | None, samples: bool) -> ChangeSet:
        """Count each kind of change; nothing in the target is written.

        Each join is made once: the keys of the new and changed rows, and the identities of the
        records to remove, go to small temporary tables that ``apply`` then works through. A
        target without records needs no join at all: every row is new.
        """
        changes = ChangeSet(removal=removal.action if removal else "delete")
        empty = self._execute(lambda: self.conn.scalar(
            sa.select(sa.literal(1)).select_from(self.target).limit(1)) is None,
            "looking for records in the table")
        if empty:
            changes.inserted = self.staged
        else:
            changes.inserted, changes.updated = self._find_pending()
        changes.unchanged = self.staged + self.unstaged - changes.inserted - changes.updated
        if removal is not None and not empty:
            changes.owned = self.known_owned if self.known_owned is not None else self._execute(
                lambda: self.conn.scalar(sa.select(sa.func.count()).select_from(self.target)
                                         .where(*self._owned(removal))),
                "counting owned records")
            changes.removed = self._find_removed(removal)
        if samples:
            changes.samples = self._samples(removal)
        return changes

    def _find_pending(self) -> tuple[int, int]:
        """Copy the new and the changed staged rows, whole, to a table of their own, so that
        ``apply`` reads these few rows instead of probing the big stage for each (on MariaDB,
        10 000 updates took 0.9 s, most of it in stage pages read back); (new, changed)."""
        stage, target = self.table, self.target
        data = self._data()
        pending = self._key_table("pending", self.keys, self._unique_in_target(self.keys),
                                  *(sa.Column(name, target.c[name].type, autoincrement=False)
                                    for name in data),
                                  sa.Column(LINE_COLUMN, sa.BigInteger, nullable=False),
                                  sa.Column(NEW_COLUMN, sa.SmallInteger, nullable=False))
        new = target.c[self.keys[0]].is_(None)
        changed = self._changed()
        found = (sa.select(*(stage.c[k] for k in self.keys), *(stage.c[n] for n in data),
                           stage.c[LINE_COLUMN], sa.case((new, 1), else_=0))
                 .select_from(stage.outerjoin(target, self._match()))
                 .where(new if changed is None else sa.or_(new, changed)))
        self._execute(lambda: self.conn.execute(
            sa.insert(pending).from_select([c.name for c in pending.c], found)),
            "finding new and changed records")
        self._analyse(pending, "the new and changed keys")
        self._pending = pending
        counted = sa.select(pending.c[NEW_COLUMN], sa.func.count()).group_by(pending.c[NEW_COLUMN])
        kinds: dict[int, int] = {new: count for new, count in self.conn.execute(counted)}
        return kinds.get(1, 0), kinds.get(0, 0)

    def _find_removed(self, removal: Removal) -> int:
        """Keep the identities (primary key, else key) of the records to remove; how many."""
        target = self.target
        names = [c.name for c in target.primary_key.columns] or self.keys
        removed = self._key_table("removed", names, bool(target.primary_key.columns))
        count = self._execute(lambda: self._count(sa.insert(removed).from_select(
            names, self._gone(removal, *(target.c[n] for n in names)))),
            "finding records to remove")
        self._analyse(removed, "the keys to remove")
        self._removed = removed
        return count

    def _key_table(self, kind: str, names: list[str], unique: bool,
                   *extra: sa.Column[Any]) -> sa.Table:
        """A temporary table of the target's ``names`` columns, their primary key when
        ``unique`` (defined inline: CREATE INDEX would commit on MySQL)."""
        parts: list[Any] = [sa.Column(n, self.target.c[n].type, nullable=not unique,
                                      autoincrement=False) for n in names]
        parts += extra
        if unique and (self.backend != "mysql" or not any(
                isinstance(self.target.c[n].type, sa.Text | sa.LargeBinary) for n in names)):
            parts.append(sa.PrimaryKeyConstraint(*names))
        table = sa.Table(f"{self.name}_{kind}", sa.MetaData(), *parts, prefixes=["TEMPORARY"])
        self._execute(lambda: table.create(self.conn), f"creating the {kind} table")
        return table

    def respelled(self) -> bool:
        """Whether a staged key matches a record whose key is spelled otherwise (``ANN`` for
        ``ann``: equal under the column's collation, or its padding, only)."""
        spelled = [sa.cast(self.target.c[k], mysql.BINARY()) != sa.cast(self.table.c[k],
                                                                           mysql.BINARY())
                   for k in self.keys if isinstance(self.target.c[k].type, sa.String)]
        if self.backend != "mysql" or not spelled:
            return False
        return self._execute(lambda: self.conn.execute(
            sa.select(sa.literal(1)).select_from(self.table.join(self.target, self._match()))
            .where(sa.or_(*spelled)).limit(1)).first() is not None, "comparing keys")

    def _unique_in_target(self, names: list[str]) -> bool:
        return Stage.unique(self.target, names)

    @staticmethod
    def unique(target: sa.Table, names: list[str]) -> bool:
        """Whether ``target`` holds at most one record per value of ``names``."""
        wanted = set(names)
        unique = [{c.name for c in target.primary_key.columns}]
        unique += [{c.name for c in index.columns} for index in target.indexes if index.unique]
        unique += [{c.name for c in constraint.columns} for constraint in target.constraints
                   if isinstance(constraint, sa.UniqueConstraint)]
        return any(columns and columns <= wanted for columns in unique)

    def _samples(self, removal: Removal | None) -> dict[str, list[str]]:
        stage, target, pending = self.table, self.target, self._pending
        queries: dict[ChangeKind, sa.Select[Any] | None] = {}
        if pending is None:
            queries[ChangeKind.INSERT] = (sa.select(*(stage.c[k] for k in self.keys))
                                 .order_by(stage.c[LINE_COLUMN]))
        else:
            queries[ChangeKind.INSERT] = (sa.select(*(pending.c[k] for k in self.keys))
                                 .where(pending.c[NEW_COLUMN] == 1)
                                 .order_by(pending.c[LINE_COLUMN]))
        if self._changed() is not None:
            queries[ChangeKind.UPDATE] = None if pending is None else (
                sa.select(*(pending.c[k] for k in self.keys))
                .where(pending.c[NEW_COLUMN] == 0).order_by(pending.c[LINE_COLUMN]))
        if removal is not None:
            removed = self._removed
            keys = [target.c[k] for k in self.keys]
            queries[ChangeKind.REMOVE] = None if removed is None else (
                sa.select(*keys).select_from(target.join(removed, self._identity(removed)))
                .order_by(*keys))
        return {kind.value: [] if query is None else
                [", ".join(f"{k}={v}" for k, v in zip(self.keys, row, strict=True))
                 for row in self.conn.execute(query.limit(SAMPLE_KEYS))]
                for kind, query in queries.items()}

    def _identity(self, removed: sa.Table) -> sa.ColumnElement[bool]:
        return sa.and_(*(self.target.c[c.name] == c for c in removed.c))

    def apply(self, changes: ChangeSet, removal: Removal | None,
              owner_column: str | None, owner: str | None) -> ChangeSet:
        """Remove, update and insert with one statement each, through the tables
        ``change_set`` filled (the pending rows; the stage itself only when the target had no
        records); return what was done."""
        target, pending = self.target, self._pending
        done = ChangeSet(removal=changes.removal, owned=changes.owned)
        removed = self._removed
        if removal is not None and changes.removed and removed is not None:
            done.removed = self._execute(lambda: self._remove(removal, removed),
                                         "removing records")
        changed = None if pending is None else self._changed(pending)
        if changed is not None and changes.updated and pending is not None:
            update = (sa.update(target)
                      .where(*(target.c[k] == pending.c[k] for k in self.keys),
                             pending.c[NEW_COLUMN] == 0, changed)
                      .values({target.c[name]: pending.c[name] for name in self._data()}))
            done.updated = self._execute(lambda: self._count(update), "updating records")
        if changes.inserted:
            source = self.table if pending is None else pending
            names = list(self.columns)
            values: list[Any] = [source.c[name] for name in names]
            if owner_column is not None and owner_column not in names:
                names.append(owner_column)
                values.append(sa.literal(owner, type_=target.c[owner_column].type))
            rows = sa.select(*values)
            if pending is not None:
                rows = rows.where(pending.c[NEW_COLUMN] == 1)
            insert = sa.insert(target).from_select(names, rows)
            done.inserted = self._execute(lambda: self._count(insert), "inserting records")
        done.unchanged = self.staged + self.unstaged - done.inserted - done.updated
        return done

    def _remove(self, removal: Removal, removed: sa.Table) -> int:
        """Delete or deactivate the records ``change_set`` found gone from the source; how many.

        SQLite has no DELETE ... USING, so there the identities are matched with IN.
        """
        target = self.target
        found: sa.ColumnElement[bool]
        if self.backend == "sqlite":
            ids = [target.c[c.name] for c in removed.c]
            found = (ids[0].in_(sa.select(*removed.c)) if len(ids) == 1
                     else sa.tuple_(*ids).in_(sa.select(*removed.c)))
        else:
            found = self._identity(removed)
        where = [found, *self._owned(removal)]
        if removal.action == "delete":
            return self._count(sa.delete(target).where(*where))
        return self._count(sa.update(target).where(*where)
                           .values({removal.status_column: removal.inactive}))

    def _count(self, statement: sa.Executable) -> int:
        """Execute a DML statement; the rows it touched (psycopg forgets unless asked)."""
        return self.conn.execute(statement,
                                 execution_options={"preserve_rowcount": True}).rowcount


def _write_load_file(rows: list[tuple[Any, ...]]) -> str:
    """The chunk in LOAD DATA's text format in a temporary file; its path."""
    columns = [_texts(values) for values in zip(*rows, strict=True)]
    handle, path = tempfile.mkstemp(prefix="iotask-stage-", suffix=".tsv")
    with open(handle, "w", encoding="utf-8", newline="") as out:
        out.write("\n".join(map("\t".join, zip(*columns, strict=True))))
        out.write("\n")
    return path


def _texts(values: tuple[Any, ...]) -> Sequence[str]:
    """One column's values as LOAD DATA fields, a whole column at a time so that the common
    case (text or dates without NULL, nothing to escape) runs in C loops only."""
    kinds = set(map(type, values))
    texts: Sequence[Any] = values
    if not kinds <= {str, type(None)}:
        if kinds & {bool, type(None)}:
            texts = [None if value is None else str(int(value)) if isinstance(value, bool)
                     else str(value) for value in values]
        else:
            texts = list(map(str, values))
    joined = "".join(filter(None, texts))
    if any(special in joined for special in _SPECIAL):
        texts = [text.translate(_ESCAPES) if text else text for text in texts]
    if type(None) in kinds:
        texts = ["\\N" if text is None else text for text in texts]
    return texts
