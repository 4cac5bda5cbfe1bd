"""Any SQL table (or query) on any SQLAlchemy URL: read and write.

Tables are reflected and every statement is a SQLAlchemy Core construct with bound parameters, so
no name or value from a connection or a file is ever pasted into SQL text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, NoSuchTableError, OperationalError

from connectors.base import (
    FALSE_WORDS,
    TRUE_WORDS,
    Batch,
    Column,
    Connector,
    ConnectorError,
    Counts,
    Row,
    RowError,
    RunContext,
    Setting,
    SettingsError,
)
from iotask.db import connect_error, make_engine, masked, reason

BATCH_SIZE = 1000
LINE = "__line__"  # the physical line of a row read from a file: for errors, never data


class SqlError(ConnectorError):
    """A table, key, column or query that cannot be used as configured; the message says which."""


class SqlConnector(Connector):
    type_name = "sql"
    description = "A table or query in any SQL database SQLAlchemy can reach"
    can_read = True
    can_write = True
    settings = (
        Setting("database", "url",
                help="SQLAlchemy URL of the database; default: the iotask database"),
        Setting("table", help="table to read or write"),
        Setting("query", help="SELECT to read from (source only), instead of a table"),
        Setting("key", "list", help="key columns that identify a record"),
    )

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        if not params.get("table") and not params.get("query"):
            raise SettingsError(
                "connector type 'sql' needs setting 'table' (or 'query' for a source), "
                "e.g. --set table=lms_user"
            )

    def describe(self) -> str:
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
                       and c.server_default is None and not _generated(c))
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
        """Insert new records and update changed ones, matched on ``key``, in one transaction.

        Rows with an empty or repeated key, or a value the column cannot hold, are row errors;
        a column the table does not have stops the run before anything is applied.
        """
        name = self.params.get("table")
        if not name:
            raise SqlError("writing needs setting 'table', the table to write: "
                           "--set table=lms_user")
        if context.import_type == "sync":
            raise SqlError(f"import type sync (also removing the task's records missing from "
                           f"the source) is not supported yet for table {name!r}: nothing was "
                           "applied; use --import-type insert until removal lands")
        url = self._database_url(context)
        engine = make_engine(url)
        try:
            with _connect(engine) as conn, conn.begin() as transaction:
                table = _reflect(conn, name, url)
                keys = list(context.key or self._keys()
                            or [c.name for c in table.primary_key.columns])
                if not keys:
                    raise SqlError(f"table {name!r} has no primary key: name the columns that "
                                   "identify a record with --set key=col1,col2 (or in the map)")
                writer = _TableWriter(table, keys, url, context)
                for batch in batches:
                    for start in range(0, len(batch), BATCH_SIZE):
                        writer.apply(conn, batch[start:start + BATCH_SIZE])
                context.check_lease(conn)
                transaction.commit()
        finally:
            engine.dispose()
        context.counts.inserted += writer.counts.inserted
        context.counts.updated += writer.counts.updated
        context.counts.unchanged += writer.counts.unchanged

    def _keys(self) -> list[str]:
        return list(self.params.get("key") or [])

    def _database_url(self, context: RunContext) -> str:
        """The ``database`` setting, else the iotask database the runner names in the context."""
        url = self.params.get("database") or context.database_url
        if not url:
            raise SqlError("setting 'database' is not set and there is no iotask database to "
                           "default to: --set database=URL")
        return url


class _TableWriter:
    """Applies rows to one table within the caller's transaction, counting what it did."""

    insert: sa.Insert  # both built for the first row's columns
    update: sa.Update

    def __init__(self, table: sa.Table, keys: list[str], url: str, context: RunContext) -> None:
        for name in keys:
            _column(table, name, "key", url)
        self.table, self.keys, self.url, self.context = table, keys, url, context
        self.counts = Counts()
        self.seen: dict[tuple[Any, ...], int] = {}
        self.ordinal = 0
        self.columns: list[str] = []  # keys first, then the other columns of the first row
        self.converters: dict[str, Callable[[Any], Any]] = {}
        self.binds: dict[str, str] = {}

    def apply(self, conn: sa.Connection, rows: Batch) -> None:
        accepted: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in rows:
            self.ordinal += 1
            index = row.get(LINE, self.ordinal)
            values = self._values(row, index)
            if values is None:
                continue
            key = tuple(values[name] for name in self.keys)
            shown = _key_text(self.keys, values)
            empty = next((name for name in self.keys if _blank(values[name])), None)
            if empty:
                self.context.row_error(RowError(row_index=index, key_values=shown, column=empty,
                                                message=f"key column {empty!r} is empty"))
                continue
            if key in self.seen:
                where = "line" if LINE in row else "row"
                self.context.row_error(RowError(
                    row_index=index, key_values=shown, column=self.keys[0],
                    message=f"duplicate key {shown}: also on {where} {self.seen[key]}"))
                continue
            self.seen[key] = index
            accepted[key] = values
        if not accepted:
            return
        existing = self._existing(conn, list(accepted))
        data = self.columns[len(self.keys):]
        inserts, updates = [], []
        for key, values in accepted.items():
            old = existing.get(key)
            if old is None:
                inserts.append(values)
            elif all(_same(values[name], old[name]) for name in data):
                self.counts.unchanged += 1
            else:
                updates.append(values)
        if inserts:
            self._execute(conn, self.insert, self._parameters(inserts))
            self.counts.inserted += len(inserts)
        if updates:
            self._execute(conn, self.update, self._parameters(updates))
            self.counts.updated += len(updates)

    def _values(self, row: Row, index: int) -> dict[str, Any] | None:
        """The row's values converted for their columns; None after reporting a bad value."""
        if not self.columns:
            self._start([name for name in row if name != LINE], index)
        elif row.keys() - {LINE} != self.converters.keys():
            self._refuse_unknown([name for name in row if name != LINE], index)
            raise SqlError(f"row {index} has columns {_names(row)}, unlike the first row "
                           f"({', '.join(self.columns)}): every row must have the same columns")
        values = {}
        for name in self.columns:
            try:
                values[name] = self.converters[name](row[name])
            except ValueError as exc:
                self.context.row_error(RowError(
                    row_index=index, key_values=_key_text(self.keys, row), column=name,
                    message=f"column {name!r}: {exc}"))
                return None
        return values

    def _start(self, names: list[str], index: int) -> None:
        """Check the first row's columns against the table, once for the whole run."""
        self._refuse_unknown(names, index)
        missing = [name for name in self.keys if name not in names]
        if missing:
            raise SqlError(f"the rows have no column {missing[0]!r}, which setting 'key' names: "
                           "every row must carry the key")
        self.columns = self.keys + [name for name in names if name not in self.keys]
        self.converters = {name: _converter(self.table.c[name]) for name in self.columns}
        self.binds = dict(zip(self.columns, _bind_names(len(self.columns), self.table),
                              strict=True))
        column, bind = self.table.c, {name: sa.bindparam(self.binds[name]) for name in names}
        self.insert = sa.insert(self.table).values({column[name]: bind[name] for name in names})
        self.update = (
            sa.update(self.table)
            .where(*(column[name] == bind[name] for name in self.keys))
            .values({column[name]: bind[name] for name in self.columns[len(self.keys):]}))

    def _parameters(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{self.binds[name]: value for name, value in values.items()} for values in rows]

    def _refuse_unknown(self, names: list[str], index: int) -> None:
        unknown = [name for name in names if name not in self.table.c]
        if unknown:
            raise SqlError(f"column {unknown[0]!r} (row {index}) is not in table "
                           f"{self.table.name!r} in {masked(self.url)}: add it to the table or "
                           "leave it out of the source")

    def _existing(self, conn: sa.Connection,
                  keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
        """The stored rows among ``keys``, fetched in one SELECT."""
        key_columns = [self.table.c[name] for name in self.keys]
        if len(key_columns) == 1:
            match = key_columns[0].in_([key[0] for key in keys])
        else:
            match = sa.tuple_(*key_columns).in_(keys)
        statement = sa.select(*(self.table.c[name] for name in self.columns)).where(match)
        result = self._execute(conn, statement)
        return {tuple(row[name] for name in self.keys): dict(row) for row in result.mappings()}

    def _execute(self, conn: sa.Connection, statement: sa.Executable,
                 parameters: list[dict[str, Any]] | None = None) -> sa.CursorResult:
        try:
            return conn.execute(statement, parameters)
        except DBAPIError as exc:
            raise SqlError(f"writing table {self.table.name!r} in {masked(self.url)} failed, "
                           f"nothing was applied: {reason(exc)}") from exc


def _generated(column: sa.Column[Any]) -> bool:
    """An auto-increment primary key: the database gives it a value."""
    return (column.primary_key and column.autoincrement in (True, "auto")
            and isinstance(column.type, sa.Integer)
            and len(column.table.primary_key.columns) == 1)


def _connect(engine: sa.Engine) -> sa.Connection:
    try:
        return engine.connect()
    except OperationalError as exc:
        raise connect_error(engine.url, exc) from None


def _reflect(conn: sa.Connection, name: str, url: str) -> sa.Table:
    try:
        return sa.Table(name, sa.MetaData(), autoload_with=conn)
    except NoSuchTableError:
        raise SqlError(f"table {name!r} does not exist in {masked(url)}") from None


def _column(table: sa.Table, name: str, role: str, url: str) -> sa.Column[Any]:
    if name not in table.c:
        raise SqlError(f"{role} column {name!r} is not in table {table.name!r} in "
                       f"{masked(url)}: check setting {role!r}")
    return table.c[name]


def _bind_names(count: int, table: sa.Table) -> list[str]:
    """Parameter names that are no column's name (SQLAlchemy reserves those in INSERT/UPDATE)."""
    prefix = "p"
    while any(f"{prefix}{number}" in table.c for number in range(count)):
        prefix = "_" + prefix
    return [f"{prefix}{number}" for number in range(count)]


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


def _same(new: Any, old: Any) -> bool:
    """Whether a stored value already equals the incoming one.

    None equals only None; otherwise the values are the same when they compare equal (so
    Decimal 10.5 and 10.50 match) or print the same (so 5 and "5" match when no type applied).
    """
    if new is None or old is None:
        return new is None and old is None
    return bool(new == old) or str(new) == str(old)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _key_text(keys: list[str], values: Row) -> str:
    return ", ".join(f"{name}={values.get(name)}" for name in keys)


def _names(row: Row) -> str:
    return ", ".join(name for name in row if name != LINE)


CONNECTOR = SqlConnector
