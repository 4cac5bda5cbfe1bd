"""Staging: a destination's incoming rows bulk-loaded into a temporary table, so that the change
set is computed and applied by a few set-based statements inside the destination's transaction.

Each database loads the way it is fastest: MariaDB/MySQL ``LOAD DATA LOCAL INFILE`` (multi-row
INSERT when the server refuses local files), PostgreSQL ``COPY``, SQLite ``executemany``. Every
statement is built from the reflected table and quoted by SQLAlchemy; values are bound or streamed,
never pasted into SQL text. The temporary table lives in the destination's session only, so a
crash leaves nothing behind.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import DBAPIError

from connectors.base import SAMPLE_KEYS, ChangeSet, ConnectorError
from iotask.db import reason

LINE_COLUMN = "iotask_line"  # the row's physical line (or ordinal): for errors, never written
CHUNK_ROWS = {"mysql": 20_000, "postgresql": 20_000, "sqlite": 5_000}  # flat memory
NO_LOCAL_INFILE = {1148, 2068, 3948, 4166}  # the server or client refuses LOAD DATA LOCAL
_WARNING_ROW = re.compile(r"\bat row (\d+)")
log = logging.getLogger("iotask.staging")


class StageError(ConnectorError):
    """Staging or applying failed; nothing was applied. The message names the table and cause."""


class _Null(float):
    """NULL for LOAD DATA: csv writes a number unquoted, and this number prints as NULL."""

    def __repr__(self) -> str:
        return "NULL"


NULL = _Null()


@dataclass(frozen=True)
class Removal:
    """How a sync removes the task's own records that its source no longer has."""

    owner_column: str
    owner: str
    action: str = "delete"  # or "deactivate"
    status_column: str | None = None
    inactive: Any = None


class Stage:
    """A temporary table shaped like the destination's written columns plus the row's line."""

    def __init__(self, conn: sa.Connection, target: sa.Table, columns: list[str],
                 keys: list[str]) -> None:
        self.conn, self.target, self.columns, self.keys = conn, target, columns, keys
        self.backend = "mysql" if conn.dialect.name in ("mysql", "mariadb") else conn.dialect.name
        self.name = f"iotask_stage_{secrets.token_hex(4)}"
        indexable = self.backend != "mysql" or all(
            not isinstance(target.c[k].type, sa.Text | sa.LargeBinary) for k in keys)
        parts: list[Any] = [sa.Column(LINE_COLUMN, sa.BigInteger, nullable=False,
                                      autoincrement=False)]
        parts += [sa.Column(name, target.c[name].type, autoincrement=False,
                            nullable=name not in keys) for name in columns]
        if self.backend == "mysql" and indexable:  # CREATE INDEX would commit on MySQL
            parts.append(sa.PrimaryKeyConstraint(*keys, LINE_COLUMN))
        self.table = sa.Table(self.name, sa.MetaData(), *parts, prefixes=["TEMPORARY"])
        self._execute(lambda: self.table.create(conn), "creating the staging table")
        self._indexed = self.backend == "mysql"
        self._buffer: list[tuple[Any, ...]] = []
        self._chunk = CHUNK_ROWS.get(self.backend, 5_000)
        self._local_infile = True
        self.staged = 0

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
            index = sa.Index(f"{self.name}_key", *(self.table.c[k] for k in self.keys))
            self._execute(lambda: index.create(self.conn), "indexing the staging table")
            if self.backend == "postgresql":  # temporary tables are never auto-analysed
                self._execute(lambda: self.conn.exec_driver_sql(
                    f"ANALYZE {self._quote(self.name)}"), "analysing the staging table")
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

    def _names(self) -> list[str]:
        return [LINE_COLUMN, *self.columns]

    def _quote(self, name: str) -> str:
        return self.conn.dialect.identifier_preparer.quote(name)

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        """executemany: SQLite's fastest path, and PyMySQL's multi-row INSERT rewrite.

        The driver gets the values as SQLAlchemy would bind them (Decimal and dates as text on
        SQLite), since this bypasses SQLAlchemy's own conversions.
        """
        dialect = self.conn.dialect
        processors = [(position, processor) for position, column in enumerate(self.table.c)
                      if (processor := column.type.dialect_impl(dialect).bind_processor(dialect))]
        if processors:
            columns = list(zip(*rows, strict=True))
            for position, processor in processors:
                columns[position] = tuple(map(processor, columns[position]))
            rows = list(zip(*columns, strict=True))
        marker = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        sql = (f"INSERT INTO {self._quote(self.name)} "
               f"({', '.join(self._quote(n) for n in self._names())}) "
               f"VALUES ({', '.join([marker] * (len(self.columns) + 1))})")
        self._execute(lambda: self.conn.exec_driver_sql(sql, rows), "staging rows",
                      lines=[row[0] for row in rows])

    def _copy(self, rows: list[tuple[Any, ...]]) -> None:
        from psycopg import sql

        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(self.name), sql.SQL(", ").join(map(sql.Identifier, self._names())))
        raw = self.conn.connection.dbapi_connection

        def work() -> None:
            with raw.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)

        self._execute(work, "staging rows (COPY)")

    def _load_data(self, rows: list[tuple[Any, ...]]) -> None:
        """Write the chunk as CSV to a temporary file and LOAD DATA LOCAL it.

        LOCAL turns data errors into warnings, so any warning fails the run, naming its line.
        """
        handle, path = tempfile.mkstemp(prefix="iotask-stage-", suffix=".csv")
        try:
            with open(handle, "w", encoding="utf-8", newline="") as out:
                writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n",
                                    doublequote=True)
                writer.writerows(_mysql_row(row) for row in rows)
            sql = (f"LOAD DATA LOCAL INFILE %s INTO TABLE {self._quote(self.name)} "
                   "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
                   "ESCAPED BY '' LINES TERMINATED BY '\\n' "
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
        taken out of the stage, so the first row with a key is the one applied."""
        stage = self.table
        keys = [stage.c[k] for k in self.keys]
        groups = (sa.select(*keys, sa.func.min(stage.c[LINE_COLUMN]))
                  .group_by(*keys).having(sa.func.count() > 1))
        found = self._execute(lambda: self.conn.execute(groups).all(), "finding duplicate keys")
        for start in range(0, len(found), 500):
            part = {tuple(row[:-1]): row[-1] for row in found[start:start + 500]}
            match = (keys[0].in_([k[0] for k in part]) if len(keys) == 1
                     else sa.tuple_(*keys).in_(list(part)))
            rows = self.conn.execute(sa.select(stage.c[LINE_COLUMN], *keys).where(match)
                                     .order_by(stage.c[LINE_COLUMN])).all()
            repeated = [(row[0], tuple(row[1:])) for row in rows
                        if row[0] != part[tuple(row[1:])]]
            lines = [line for line, _key in repeated]
            for at in range(0, len(lines), 1000):
                self.conn.execute(sa.delete(stage).where(
                    stage.c[LINE_COLUMN].in_(lines[at:at + 1000])))
            self.staged -= len(lines)
            for line, key in repeated:
                yield line, key, part[key]

    def _match(self) -> sa.ColumnElement[bool]:
        return sa.and_(*(self.target.c[k] == self.table.c[k] for k in self.keys))

    def _changed(self) -> sa.ColumnElement[bool] | None:
        data = [name for name in self.columns if name not in self.keys]
        if not data:
            return None
        return sa.or_(*(self._distinct(name) for name in data))

    def _distinct(self, name: str) -> sa.ColumnElement[bool]:
        old, new = self.target.c[name], self.table.c[name]
        if self.backend == "mysql" and isinstance(old.type, sa.String):
            # compare bytes: a case-insensitive or space-padding collation would call a
            # corrected name "unchanged"
            old, new = sa.cast(old, mysql.BINARY()), sa.cast(new, mysql.BINARY())
        return old.is_distinct_from(new)

    def _new(self, *columns: Any) -> sa.Select[Any]:
        """SELECT ``columns`` of the staged rows whose key the target does not have yet.

        An outer join, not NOT EXISTS: MariaDB materialises NOT EXISTS and takes ten times
        longer; PostgreSQL and SQLite plan both alike.
        """
        return (sa.select(*columns).select_from(self.table.outerjoin(self.target, self._match()))
                .where(self.target.c[self.keys[0]].is_(None)))

    def _gone(self, removal: Removal, *columns: Any) -> sa.Select[Any]:
        """SELECT ``columns`` of the task's own records that this run's rows no longer have."""
        return (sa.select(*columns).select_from(self.target.outerjoin(self.table, self._match()))
                .where(*self._owned(removal), self.table.c[LINE_COLUMN].is_(None)))

    def _owned(self, removal: Removal) -> list[sa.ColumnElement[bool]]:
        owned = [self.target.c[removal.owner_column] == removal.owner]
        if removal.action == "deactivate":
            owned.append(self.target.c[removal.status_column].is_distinct_from(removal.inactive))
        return owned

    def change_set(self, removal: Removal | None, samples: bool) -> ChangeSet:
        """Count each kind of change with one statement each; no row is fetched or written."""
        stage, target = self.table, self.target
        count = sa.func.count()
        changes = ChangeSet(removal=removal.action if removal else "delete")
        run = self.conn.scalar
        changes.inserts = self._execute(lambda: run(self._new(count)), "counting new records")
        changed = self._changed()
        if changed is not None:
            changes.updates = self._execute(lambda: run(
                sa.select(count).select_from(stage.join(target, self._match())).where(changed)),
                "counting changed records")
        changes.unchanged = self.staged - changes.inserts - changes.updates
        if removal is not None:
            changes.owned = self._execute(lambda: run(
                sa.select(count).select_from(target).where(*self._owned(removal))),
                "counting owned records")
            changes.removes = self._execute(lambda: run(self._gone(removal, count)),
                                            "counting records to remove")
        if samples:
            changes.samples = self._samples(removal, changed)
        return changes

    def _samples(self, removal: Removal | None,
                 changed: sa.ColumnElement[bool] | None) -> dict[str, list[str]]:
        stage, target = self.table, self.target
        order = stage.c[LINE_COLUMN]
        queries = {"insert": self._new(*(stage.c[k] for k in self.keys)).order_by(order)}
        if changed is not None:
            queries["update"] = (sa.select(*(stage.c[k] for k in self.keys))
                                 .select_from(stage.join(target, self._match()))
                                 .where(changed).order_by(order))
        if removal is not None:
            queries["remove"] = (self._gone(removal, *(target.c[k] for k in self.keys))
                                 .order_by(*(target.c[k] for k in self.keys)))
        return {kind: [", ".join(f"{k}={v}" for k, v in zip(self.keys, row, strict=True))
                       for row in self.conn.execute(query.limit(SAMPLE_KEYS))]
                for kind, query in queries.items()}

    def apply(self, changes: ChangeSet, removal: Removal | None,
              owner_column: str | None, owner: str | None) -> ChangeSet:
        """Remove, update and insert with one statement each; return what was done."""
        stage, target = self.table, self.target
        done = ChangeSet(removal=changes.removal, owned=changes.owned)
        if removal is not None and changes.removes:
            done.removes = self._execute(lambda: self._remove(removal), "removing records")
        changed = self._changed()
        if changed is not None and changes.updates:
            data = [name for name in self.columns if name not in self.keys]
            update = (sa.update(target).where(self._match(), changed)
                      .values({target.c[name]: stage.c[name] for name in data}))
            done.updates = self._execute(lambda: self._count(update),
                                         "updating records")
        if changes.inserts:
            names = list(self.columns)
            values: list[Any] = [stage.c[name] for name in names]
            if owner_column is not None and owner_column not in names:
                names.append(owner_column)
                values.append(sa.literal(owner, type_=target.c[owner_column].type))
            insert = sa.insert(target).from_select(names, self._new(*values))
            done.inserts = self._execute(lambda: self._count(insert),
                                         "inserting records")
        done.unchanged = self.staged - done.inserts - done.updates
        return done

    def _remove(self, removal: Removal) -> int:
        """Delete or deactivate the records gone from the source; how many.

        MariaDB/MySQL cannot outer-join in a DELETE that SQLAlchemy builds, and materialises
        NOT EXISTS slowly, so there the keys go to a second temporary table first.
        """
        target = self.target
        if self.backend == "mysql":
            gone = sa.Table(f"{self.name}_gone", sa.MetaData(),
                            *(sa.Column(k, target.c[k].type, primary_key=True,
                                        autoincrement=False) for k in self.keys),
                            prefixes=["TEMPORARY"])
            gone.create(self.conn)
            self.conn.execute(sa.insert(gone).from_select(
                self.keys, self._gone(removal, *(target.c[k] for k in self.keys))))
            where = [target.c[k] == gone.c[k] for k in self.keys]
        else:
            where = [*self._owned(removal), ~sa.exists().where(self._match())]
        if removal.action == "delete":
            return self._count(sa.delete(target).where(*where))
        return self._count(sa.update(target).where(*where)
                           .values({removal.status_column: removal.inactive}))

    def _count(self, statement: sa.Executable) -> int:
        """Execute a DML statement; the rows it touched (psycopg forgets unless asked)."""
        return self.conn.execute(statement,
                                 execution_options={"preserve_rowcount": True}).rowcount


def _mysql_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(NULL if value is None else int(value) if value is True or value is False
                 else value for value in row)
