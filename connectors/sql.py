"""Any SQL table (or query) on any SQLAlchemy URL: read and write.

Tables are reflected and every statement is a SQLAlchemy Core construct with bound parameters, so
no name or value from a connection or a file is ever pasted into SQL text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from itertools import repeat
from operator import eq, itemgetter, methodcaller
from typing import Any

import sqlalchemy as sa
from iotask.connectors import fingerprint
from iotask.connectors.base import Connector
from iotask.connectors.context import (
    Batch,
    ChangeKind,
    ChangeSet,
    Column,
    Row,
    RowError,
    RunContext,
)
from iotask.connectors.databases import (
    check_database_setting,
    database_setting,
    make_engine,
    masked,
    reason,
    unreachable,
)
from iotask.connectors.errors import ConnectorError, SettingsError
from iotask.connectors.settings import FALSE_WORDS, TRUE_WORDS, Setting
from iotask.connectors.staging import Removal, Stage
from sqlalchemy.exc import DBAPIError, NoSuchTableError, OperationalError

BATCH_SIZE = 1000
LINE = "__line__"  # the physical line of a row read from a file: for errors, never data
OWNER_COLUMN = "imported_from_connection"  # Docebo's name for "the connection that wrote it"
REMOVALS = ("delete", "deactivate")
_KEYS = methodcaller("keys")
log = logging.getLogger("iotask.sql")


class SqlError(ConnectorError):
    """A table, key, column or query that cannot be used as configured; the message says which."""


class SqlConnector(Connector):
    type_name = "sql"
    description = "A table or query in any SQL database SQLAlchemy can reach"
    can_read = True
    can_write = True
    rereadable = True  # a query runs again
    settings = (
        Setting("database", "url",
                help="SQLAlchemy URL of the database; default: the iotask database"),
        Setting("table", help="table to read or write"),
        Setting("query", help="SELECT to read from (source only), instead of a table"),
        Setting("key", "list", help="key columns that identify a record"),
        Setting("owner_column", help=f"destination column remembering which source wrote a "
                f"record; default {OWNER_COLUMN} when the table has it"),
        Setting("remove", choices=REMOVALS,
                help="what sync does with the source's records it no longer has: delete "
                     "(default) or deactivate"),
        Setting("status_column", help="column that remove=deactivate sets to inactive_value"),
        Setting("active_value", help="status of a record in the source; default 1"),
        Setting("inactive_value", help="status of a removed (deactivated) record; default 0"),
    )

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        check_database_setting(params)
        if not params.get("table") and not params.get("query"):
            raise SettingsError(
                "connector type 'sql' needs setting 'table' (or 'query' for a source), "
                "e.g. --set table=lms_user"
            )
        if params.get("remove") == "deactivate" and not params.get("status_column"):
            raise SettingsError("remove=deactivate needs setting 'status_column', the column "
                                "that says whether a record is active, e.g. --set "
                                "status_column=active")

    def location(self) -> str:
        if self.params.get("table"):
            return f"table {self.params['table']}"
        return "a query"

    def columns(self, context: RunContext) -> list[Column] | None:
        """The table's columns: required when NOT NULL without a default, key by ``key`` (else
        the primary key). None for a query, whose columns are known only once it runs."""
        if not self.params.get("table"):
            return None
        url = self._database_url(context)
        engine = make_engine(url, read_only=True)
        try:
            with _connect(engine) as conn:
                table = _reflect(conn, self.params["table"], url)
        finally:
            engine.dispose()
        keys = set(self._keys() or [c.name for c in table.primary_key.columns])
        return [Column(c.name, key=c.name in keys,
                       required=not c.nullable and c.default is None
                       and c.server_default is None and not _generated(c),
                       type=_type_name(c), default=_default_text(c))
                for c in table.columns]

    def read(self, context: RunContext) -> Iterator[Batch]:
        """Yield the rows of ``query`` (when set) or of ``table`` by ``key``, 1000 at a time.

        The reading runs in a transaction that is rolled back, so a query that is not a SELECT
        leaves nothing behind (except DDL on MariaDB, which commits by itself).
        """
        url = self._database_url(context)
        engine = make_engine(url, read_only=True)
        try:
            with _connect(engine) as conn, conn.begin() as transaction:
                if self.params.get("query"):
                    # no parameters: a colon is text, not a bind placeholder
                    statement: sa.Executable = sa.text(self.params["query"].replace(":", "\\:"))
                    what = "query"
                else:
                    table = _reflect(conn, self.params["table"], url)
                    order = [_column(table, name, "key", url) for name in self._keys()]
                    statement = sa.select(table).order_by(*order)
                    what = f"reading table {table.name!r}"
                try:
                    result = conn.execution_options(
                        stream_results=True, yield_per=BATCH_SIZE).execute(statement)
                    if not result.returns_rows:
                        raise SqlError("the query returns no rows: setting 'query' must be a "
                                       "SELECT (its changes were rolled back)")
                    names = list(result.keys())
                    twice = sorted({name for name in names if names.count(name) > 1})
                    if twice:
                        raise SqlError(f"the query returns column {twice[0]!r} more than once: "
                                       "give each column its own name (AS ...)")
                    for part in result.mappings().partitions(BATCH_SIZE):
                        yield [dict(row) for row in part]
                except DBAPIError as exc:
                    raise SqlError(f"{what} failed on {masked(url)}: {reason(exc)}") from exc
                transaction.rollback()
        finally:
            engine.dispose()

    def write(self, batches: Iterable[Batch], context: RunContext) -> None:
        """Stage every row, compute the change set, have it reviewed, apply it in one go.

        New records are inserted and changed ones updated, matched on the key; with import type
        sync, the records this task's source owns that are no longer in it are removed (deleted
        or deactivated). Rows with an empty or repeated key, or a value the column cannot hold,
        are row errors; a column the table does not have stops the run before anything is
        applied. Everything happens in one transaction, committed only after the guards passed.
        """
        name = self.params.get("table")
        if not name:
            raise SqlError("writing needs setting 'table', the table to write: "
                           "--set table=lms_user")
        url = self._database_url(context)
        engine = make_engine(url, local_infile=True)
        if engine.dialect.name in ("mysql", "mariadb"):
            # InnoDB's REPEATABLE READ locks every target row an INSERT ... SELECT reads, so
            # the LMS could not write its users until the import commits; READ COMMITTED reads
            # them as a snapshot instead
            engine = engine.execution_options(isolation_level="READ COMMITTED")
        try:
            with _connect(engine) as conn, conn.begin() as transaction:
                table = _reflect(conn, name, url)
                keys = list(context.key or self._keys()
                            or [c.name for c in table.primary_key.columns])
                if not keys:
                    raise SqlError(f"table {name!r} has no primary key: name the columns that "
                                   "identify a record with --set key=col1,col2 (or in the map)")
                owner_column, removal = self._ownership(table, context, url)
                constants = ({removal.status_column: removal.active}
                             if removal is not None and removal.status_column else {})
                rows = _Rows(table, keys, url, context, constants, owner_column)
                stage: Stage | None = None
                for batch in batches:
                    tuples = rows.convert(batch)
                    if stage is None and rows.columns:
                        stage = Stage(conn, table, rows.columns, keys)
                    if tuples and stage is not None:
                        stage.add(tuples)
                if stage is None:  # no rows: an empty stage still tells what a sync removes
                    stage = Stage(conn, table, keys, keys)
                stage.finish()
                for line, key, first in stage.duplicates():
                    shown = _key_text(keys, dict(zip(keys, key, strict=True)))
                    where = "line" if rows.from_file else "row"
                    context.row_error(RowError(
                        row_index=line, key_values=shown, column=keys[0],
                        message=f"duplicate key {shown}: also on {where} {first}"))
                changes = stage.change_set(removal, samples=context.dry_run)
                if not context.review(changes):
                    transaction.rollback()
                    return
                done = stage.apply(changes, removal, owner_column, context.owner)
                context.check_lease(conn)
                transaction.commit()
        finally:
            engine.dispose()
        context.counts.inserted += done.inserted
        context.counts.updated += done.updated
        context.counts.unchanged += done.unchanged
        context.counts.removed += done.removed

    def precheck(self, read: Callable[[], Iterable[Batch]],
                 context: RunContext) -> ChangeSet | None:
        """The change set "every row unchanged" when the table already holds exactly the rows
        ``read()`` gives, else None: the database's fingerprint (count and sum of row hashes,
        ``connectors/fingerprint.py``) of the records this task owns (its ownership column;
        without one, the whole table), computed in a thread while the rows are converted and
        hashed here. Nothing is staged or written. An empty table, a key that is not unique in
        the table, or a type the fingerprint cannot compare exactly: None without reading."""
        name = self.params.get("table")
        if not name:
            return None
        url = self._database_url(context)
        engine = make_engine(url, read_only=True)
        try:
            with _connect(engine) as conn:
                table = _reflect(conn, name, url)
                keys = list(context.key or self._keys()
                            or [c.name for c in table.primary_key.columns])
                owner_column, removal = self._ownership(table, context, url)
                if not keys or not _unique(table, keys) or conn.scalar(
                        sa.select(sa.literal(1)).select_from(table).limit(1)) is None:
                    return None
                constants = ({removal.status_column: removal.active}
                             if removal is not None and removal.status_column else {})
                rows = _Rows(table, keys, url, context, constants, owner_column)
                where, whose = _owned(table, owner_column, context.owner, removal)
                return _compare(engine, table, rows, (where, whose), read(), context, removal)
        finally:
            engine.dispose()

    def check_task(self, context: RunContext) -> None:
        """The key columns exist; for sync, the ownership column too. Reads the table only."""
        if not self.params.get("table"):
            return
        url = self._database_url(context)
        engine = make_engine(url, read_only=True)
        try:
            with _connect(engine) as conn:
                table = _reflect(conn, self.params["table"], url)
        except SqlError:
            return  # unreachable, or no table yet: the run checks again
        finally:
            engine.dispose()
        for name in context.key or self._keys():
            _column(table, name, "key", url)
        self._ownership(table, context, url)

    def adopt(self, batches: Iterable[Batch], context: RunContext, everything: bool) -> int:
        """Set the ownership column of unowned records (NULL) to the task's source, for the
        keys the source holds now (staged, then one UPDATE), or for every unowned record."""
        name = self.params.get("table")
        if not name:
            raise SqlError("adopting needs setting 'table': --set table=lms_user")
        url = self._database_url(context)
        engine = make_engine(url, local_infile=True)
        try:
            with _connect(engine) as conn, conn.begin() as transaction:
                table = _reflect(conn, name, url)
                column = self.params.get("owner_column") or OWNER_COLUMN
                owner = _column(table, column, "owner_column", url)
                where: list[sa.ColumnElement[bool]] = [owner.is_(None)]
                if not everything:
                    keys = list(context.key or self._keys()
                                or [c.name for c in table.primary_key.columns])
                    rows = _Rows(table, keys, url, context, {}, None)
                    stage = Stage(conn, table, keys, keys)
                    for batch in batches:
                        tuples = rows.convert(batch)
                        if tuples:
                            stage.add([row[:len(keys) + 1] for row in tuples])
                    stage.finish()
                    where.append(sa.exists().where(
                        *(stage.table.c[key] == table.c[key] for key in keys)))
                found = conn.execute(sa.select(sa.func.count()).select_from(table)
                                     .where(*where)).scalar_one()
                if context.dry_run or not found:
                    transaction.rollback()
                    return int(found)
                conn.execute(sa.update(table).where(*where).values({column: context.owner}))
                context.check_lease(conn)
                transaction.commit()
                return int(found)
        finally:
            engine.dispose()

    def _ownership(self, table: sa.Table, context: RunContext,
                   url: str) -> tuple[str | None, Removal | None]:
        """The ownership column to fill on insert, and for sync how removal works."""
        column = self.params.get("owner_column") or OWNER_COLUMN
        present = column in table.c
        if self.params.get("owner_column") and not present:
            raise SqlError(f"owner column {column!r} is not in table {table.name!r} in "
                           f"{masked(url)}: check setting 'owner_column'")
        if context.import_type != "sync":
            return (column if present and context.owner else None), None
        if not present:
            raise SqlError(
                f"import type sync removes only the records this task's source wrote, and table "
                f"{table.name!r} has no column {column!r} to remember that: add it (e.g. "
                f"VARCHAR(255) NULL) or name another with --set owner_column=COLUMN; nothing "
                "was applied")
        if not context.owner:
            raise SqlError("import type sync needs the name of the source connection to know "
                           "which records it owns")
        action = self.params.get("remove") or "delete"
        if action == "delete":
            return column, Removal(column, context.owner)
        status = self.params["status_column"]
        inactive = _convert_setting(table, status, self.params.get("inactive_value") or "0", url)
        active = _convert_setting(table, status, self.params.get("active_value") or "1", url)
        return column, Removal(column, context.owner, action, status, inactive, active)

    def _keys(self) -> list[str]:
        return list(self.params.get("key") or [])

    def _database_url(self, context: RunContext) -> str:
        return database_setting(self.params, context.database_url, SqlError)


class _Rows:
    """Turns mapped rows into typed tuples for staging: (line, value, ...), in ``columns`` order.

    A value a column cannot hold, or an empty key, is a row error; the other rows go on.
    """

    def __init__(self, table: sa.Table, keys: list[str], url: str, context: RunContext,
                 constants: dict[str, Any], owner_column: str | None) -> None:
        for name in keys:
            _column(table, name, "key", url)
        self.table, self.keys, self.url, self.context = table, keys, url, context
        self.constants = constants
        self.reserved = [*([owner_column] if owner_column else []), *constants]
        self.ordinal = 0
        self.from_file = False
        self.columns: list[str] = []  # keys first, then the other columns of the first row
        self.shape: set[str] = set()  # the first row's keys, which every row must have
        self.converters: list[tuple[str, Callable[[Any], Any]]] = []
        self.plans: list[tuple[str, int | None, Callable[[Any], Any] | None,
                               Callable[[Any], Any]]] = []
        self.key_positions: list[int] = []

    def convert(self, batch: Batch) -> list[tuple[Any, ...]]:
        if batch and not self.columns:
            self._start(batch[0])
        fast = self._fast(batch)
        if fast is not None:
            return fast
        converters, shape, constants = self.converters, self.shape, self.constants
        out = []
        for row in batch:
            self.ordinal += 1
            index = row.get(LINE, self.ordinal)
            if row.keys() != shape and row.keys() - {LINE} != shape - {LINE}:
                self._refuse_unknown([name for name in row if name != LINE], index)
                raise SqlError(f"row {index} has columns {_names(row)}, unlike the first row "
                               f"({', '.join(sorted(self.shape - {LINE}))}): every row must "
                               "have the same columns")
            if constants:
                row = row | constants
            try:
                values = [convert(row[name]) for name, convert in converters]
            except ValueError:
                self._report(row, index)
                continue
            empty = next((self.keys[i] for i, position in enumerate(self.key_positions)
                          if _blank(values[position])), None)
            if empty:
                self.context.row_error(RowError(
                    row_index=index, key_values=_key_text(self.keys, row), column=empty,
                    message=f"key column {empty!r} is empty"))
                continue
            out.append((index, *values))
        return out

    def _fast(self, batch: Batch) -> list[tuple[Any, ...]] | None:
        """The batch converted column by column, in C loops where Python allows; None when any
        row needs a closer look (another shape, a value to report, a value not text), which the
        row-by-row path then gives."""
        count = len(batch)
        if not count or not all(map(eq, map(_KEYS, batch), repeat(self.shape))):
            return None
        if self.from_file:
            lines: list[Any] = list(map(itemgetter(LINE), batch))
        else:
            lines = list(range(self.ordinal + 1, self.ordinal + count + 1))
        columns = []
        for position, (name, length, parse, convert) in enumerate(self.plans):
            if name in self.constants:
                columns.append([self.constants[name]] * count)
                continue
            values = list(map(itemgetter(name), batch))
            if set(map(type, values)) != {str}:
                return None
            if parse is not None:
                try:  # the parser straight on the text, in C for most types
                    values = list(map(parse, values))
                except (ValueError, ArithmeticError):
                    try:  # blanks are NULL, spaces around are fine: the converter knows
                        values = list(map(convert, values))
                    except ValueError:
                        return None
                if position < len(self.keys) and None in values:
                    return None
            else:
                if length is not None and max(map(len, values)) > length:
                    return None
                if position < len(self.keys) and not all(map(str.strip, values)):
                    return None
            columns.append(values)
        self.ordinal += count
        return list(zip(lines, *columns, strict=True))

    def _report(self, row: Row, index: int) -> None:
        """The first value of the row its column cannot hold, as a row error."""
        for name, convert in self.converters:
            try:
                convert(row.get(name, self.constants.get(name)))
            except ValueError as exc:
                self.context.row_error(RowError(
                    row_index=index, key_values=_key_text(self.keys, row), column=name,
                    message=f"column {name!r}: {exc}"))
                return

    def _start(self, first: Row) -> None:
        """Check the first row's columns against the table, once for the whole run."""
        names = [name for name in first if name != LINE]
        index = first.get(LINE, 1)
        self.from_file = LINE in first
        self._refuse_unknown(names, index)
        missing = [name for name in self.keys if name not in names]
        if missing:
            raise SqlError(f"the rows have no column {missing[0]!r}, which setting 'key' names: "
                           "every row must carry the key")
        taken = [name for name in self.reserved if name in names]
        if taken:
            raise SqlError(f"column {taken[0]!r} is filled by iotask (the ownership or status "
                           "of imported records): leave it out of the source or the map")
        self.shape = set(first)
        self.columns = self.keys + [name for name in names if name not in self.keys]
        self.columns += [name for name in self.constants if name not in self.columns]
        self.converters = [(name, _converter(self.table.c[name])) for name in self.columns]
        self.plans = [(name, *_plan(self.table.c[name], converter), converter)
                      for name, converter in self.converters]
        self.key_positions = list(range(len(self.keys)))

    def _refuse_unknown(self, names: list[str], index: int) -> None:
        unknown = [name for name in names if name not in self.table.c]
        if unknown:
            raise SqlError(f"column {unknown[0]!r} (row {index}) is not in table "
                           f"{self.table.name!r} in {masked(self.url)}: add it to the table or "
                           "leave it out of the source")


def _unique(table: sa.Table, keys: list[str]) -> bool:
    """Whether the table holds at most one record per key: then a file repeating a key can
    never match it, and the duplicate is reported by the normal path."""
    wanted = set(keys)
    unique = [{c.name for c in table.primary_key.columns}]
    unique += [{c.name for c in index.columns} for index in table.indexes if index.unique]
    unique += [{c.name for c in constraint.columns} for constraint in table.constraints
               if isinstance(constraint, sa.UniqueConstraint)]
    return any(columns and columns <= wanted for columns in unique)


def _owned(table: sa.Table, owner_column: str | None, owner: str | None,
           removal: Removal | None) -> tuple[list[sa.ColumnElement[bool]], str]:
    """The records a run of this task answers for: its own (all of them without an ownership
    column), and for remove=deactivate only those not deactivated already; and in words."""
    where: list[sa.ColumnElement[bool]] = []
    words = []
    if owner_column is not None:
        where.append(table.c[owner_column] == owner)
        words.append(f"{owner_column} = {owner!r}")
    if removal is not None and removal.action == "deactivate" and removal.status_column:
        where.append(table.c[removal.status_column].is_distinct_from(removal.inactive))
        words.append(f"{removal.status_column} is not {removal.inactive!r}")
    return where, " and ".join(words) or "every record"


def _compare(engine: sa.Engine, table: sa.Table, rows: _Rows,
             owned: tuple[list[sa.ColumnElement[bool]], str], batches: Iterable[Batch],
             context: RunContext, removal: Removal | None) -> ChangeSet | None:
    """Hash the rows here while the database fingerprints its records in a thread; the
    change set "all unchanged" when both agree."""
    where, whose = owned
    backend = "mysql" if engine.dialect.name in ("mysql", "mariadb") else engine.dialect.name
    batches = iter(batches)
    first = next(batches, None)
    if not first:
        return None
    tuples = rows.convert(first)
    kinds = fingerprint.kinds(table, rows.columns, backend)
    if kinds is None or getattr(context, "failed", False):
        return None

    def on_server() -> fingerprint.Fingerprint | None:
        with _connect(engine) as conn, conn.begin():
            return fingerprint.server(conn, table, kinds, where)

    hasher = fingerprint.Hasher(kinds, backend)
    with ThreadPoolExecutor(1) as pool:
        stored = pool.submit(on_server)
        try:
            hasher.add_tuples(tuples)
            for batch in batches:
                if getattr(context, "failed", False):
                    return None
                hasher.add_tuples(rows.convert(batch))
                if stored.done():
                    known = stored.result()
                    if known is None or hasher.rows > known.rows:
                        return None  # more rows than the table holds: no need to read on
        except fingerprint.Unknown as exc:
            log.debug("pre-check on table %r does not apply: %s", table.name, exc)
            return None
        server = stored.result()
    here = hasher.fingerprint()
    if getattr(context, "failed", False) or server is None or server != here:
        log.debug("pre-check on table %r: the table has %s, the rows %s", table.name,
                  server, here)
        return None
    log.info("task %s: pre-check matched: table %r already holds these %d rows (count and sum "
             "of 64-bit %s row hashes over columns %s, %s): nothing staged", context.task,
             table.name, here.rows, "SipHash" if hasher.in_process else "MD5",
             ", ".join(rows.columns), whose)
    changes = ChangeSet(unchanged=here.rows, removal=removal.action if removal else "delete",
                        owned=server.rows if removal is not None else 0)
    if context.dry_run:
        changes.samples = {ChangeKind.INSERT.value: []}
        if len(rows.columns) > len(rows.keys):
            changes.samples[ChangeKind.UPDATE.value] = []
        if removal is not None:
            changes.samples[ChangeKind.REMOVE.value] = []
    return changes


def _convert_setting(table: sa.Table, column: str, value: str, where: str) -> Any:
    if column not in table.c:
        raise SqlError(f"status column {column!r} is not in table {table.name!r} in "
                       f"{masked(where)}: check setting 'status_column'")
    try:
        return _converter(table.c[column])(value)
    except ValueError as exc:
        raise SqlError(f"status column {column!r}: {exc}: check settings 'active_value' and "
                       "'inactive_value'") from None


def _type_name(column: sa.Column[Any]) -> str | None:
    try:
        return str(column.type)
    except sa.exc.CompileError:  # a type only its own dialect can name
        return type(column.type).__name__


def _default_text(column: sa.Column[Any]) -> str | None:
    default = column.server_default
    if default is None:
        return None
    return str(getattr(default, "arg", default))


def _generated(column: sa.Column[Any]) -> bool:
    """An auto-increment primary key: the database gives it a value."""
    return (column.primary_key and column.autoincrement in (True, "auto")
            and isinstance(column.type, sa.Integer)
            and len(column.table.primary_key.columns) == 1)


def _connect(engine: sa.Engine) -> sa.Connection:
    try:
        return engine.connect()
    except OperationalError as exc:
        raise SqlError(unreachable(engine.url, exc)) from None
    except DBAPIError as exc:  # e.g. a file that is not a database
        raise SqlError(f"cannot open database {masked(engine.url)}: {reason(exc)}") from None


def _reflect(conn: sa.Connection, name: str, url: str) -> sa.Table:
    try:
        return sa.Table(name, sa.MetaData(), autoload_with=conn)
    except NoSuchTableError:
        raise SqlError(f"table {name!r} does not exist in {masked(url)}") from None
    except DBAPIError as exc:  # e.g. a file that is not a database
        raise SqlError(f"cannot read table {name!r} in {masked(url)}: {reason(exc)}") from None


def _column(table: sa.Table, name: str, role: str, url: str) -> sa.Column[Any]:
    if name not in table.c:
        raise SqlError(f"{role} column {name!r} is not in table {table.name!r} in "
                       f"{masked(url)}: check setting {role!r}")
    return table.c[name]


def _parse_bool(text: str) -> bool:
    word = text.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(text)


def _parse_flag(text: str) -> bool | int:
    try:
        return _parse_bool(text)
    except ValueError:
        return int(text)


PARSERS: dict[type, tuple[Callable[[str], Any], str]] = {
    bool: (_parse_bool, "true/false value"),
    int: (int, "whole number"),
    float: (float, "number"),
    Decimal: (Decimal, "number"),
    date: (date.fromisoformat, "date (YYYY-MM-DD)"),
    datetime: (datetime.fromisoformat, "date and time (YYYY-MM-DD HH:MM:SS)"),
}


def _converter(column: sa.Column[Any]) -> Callable[[Any], Any]:
    """How a value reaches ``column``: text as text, and text parsed for a few simple types.

    Values that are already typed (from a SQL source) pass through for the driver to bind. In a
    column that is not text an empty string is NULL.
    """
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return _as_is
    if python_type is str:
        return partial(_text, getattr(column.type, "length", None))
    if python_type is int and getattr(column.type, "display_width", None) == 1:
        # MySQL and MariaDB store BOOLEAN as TINYINT(1): reflection reports only that
        return partial(_parsed, _parse_flag, "true/false value")
    if python_type in PARSERS:
        return partial(_parsed, *PARSERS[python_type])
    return _as_is


def _plan(column: sa.Column[Any],
          converter: Callable[[Any], Any]) -> tuple[int | None, Callable[[Any], Any] | None]:
    """For the fast path: (the text's maximum length, None) for text columns, else (None, a
    parser). A column that parses text gets the bare parser: it gives the converter's value
    whenever it accepts the text, and the fast path calls the converter when it does not."""
    if isinstance(converter, partial) and converter.func is _text:
        return converter.args[0], None
    if isinstance(converter, partial) and converter.func is _parsed:
        return None, converter.args[0]
    return None, converter


def _as_is(value: Any) -> Any:
    return value


def _text(length: int | None, value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if length is not None and len(text) > length:
        raise ValueError(f"the value is {len(text)} characters long, the column holds {length}")
    return text


def _parsed(parse: Callable[[str], Any], words: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    try:
        return parse(text)
    except (ValueError, ArithmeticError):
        raise ValueError(f"{value!r} is not a {words}") from None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _key_text(keys: list[str], values: Row) -> str:
    return ", ".join(f"{name}={values.get(name)}" for name in keys)


def _names(row: Row) -> str:
    return ", ".join(name for name in row if name != LINE)


CONNECTOR = SqlConnector
