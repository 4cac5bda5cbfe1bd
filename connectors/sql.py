"""Any SQL table (or query) on any SQLAlchemy URL: read and write.

Tables are reflected and every statement is a SQLAlchemy Core construct with bound parameters, so
no name or value from a connection or a file is ever pasted into SQL text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import partial
from itertools import chain, repeat
from operator import eq, itemgetter, methodcaller
from typing import Any

import sqlalchemy as sa
from iotask.connectors import fingerprint
from iotask.connectors.base import Connector
from iotask.connectors.context import (
    SAMPLE_KEYS,
    Batch,
    ChangeKind,
    ChangeSet,
    Column,
    Progress,
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
from iotask.connectors.staging import LINE_COLUMN, Removal, Stage
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

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self._tables: dict[tuple[str, str], sa.Table] = {}

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
                table = self._table(conn, self.params["table"], url)
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
                    table = self._table(conn, self.params["table"], url)
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
                table = self._table(conn, name, url)
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

    def write_fast(self, source: Connector, pairs: list[tuple[str, str | None, Any]] | None,
                   context: RunContext, progress: Progress | None = None) -> bool:
        """The columnar fast path of a local CSV file (connectors/columnar.py and bulk.py):
        into a table without records the rows go straight in, into one with records they fill
        the stage; the change set, the guards, the lease and the commit are ``write``'s.

        False, with nothing kept, as soon as anything might come out otherwise than through
        ``write`` (a row error above all): the run then reads the file again the exact way.
        """
        name = self.params.get("table")
        if not name:
            return False
        from iotask.connectors import columnar  # pyarrow, imported only for a run that writes

        if not columnar.enabled():
            return False
        file = columnar.csv_file(source, context)
        if file is None:
            return False
        url = self._database_url(context)
        engine = make_engine(url, local_infile=True)
        if engine.dialect.name in ("mysql", "mariadb"):
            engine = engine.execution_options(isolation_level="READ COMMITTED")  # see write
        try:
            with _connect(engine) as conn, conn.begin() as transaction:
                try:
                    loaded = self._load_fast(conn, name, url, file, pairs, context, progress)
                except Exception as exc:  # noqa: BLE001 - the exact path says what is wrong
                    transaction.rollback()
                    log.debug("columnar fast path not taken for %s: %s", file.label, exc)
                    return False
                log.debug("columnar fast path: %d rows of %s %s", loaded.rows, file.label,
                          "staged" if loaded.stage else "loaded straight into the empty table")
                context.counts.read += loaded.rows
                if loaded.stage is None:
                    changes = ChangeSet(removal=loaded.removal.action if loaded.removal
                                        else "delete", inserted=loaded.rows)
                    if context.dry_run:
                        changes.samples = loaded.samples
                    done = ChangeSet(removal=changes.removal, inserted=loaded.rows)
                    if not context.review(changes):
                        transaction.rollback()
                        return True
                else:
                    changes = loaded.stage.change_set(loaded.removal, samples=context.dry_run)
                    if not context.review(changes):
                        transaction.rollback()
                        return True
                    done = loaded.stage.apply(changes, loaded.removal, loaded.owner_column,
                                              context.owner)
                context.check_lease(conn)
                transaction.commit()
        finally:
            engine.dispose()
        context.counts.inserted += done.inserted
        context.counts.updated += done.updated
        context.counts.unchanged += done.unchanged
        context.counts.removed += done.removed
        return True

    def fast_plan(self, conn: sa.Connection, name: str, url: str, file: Any,
                  pairs: list[tuple[str, str | None, Any]] | None,
                  context: RunContext) -> FastPlan:
        """What the fast path writes into table ``name``, checked as ``write`` checks it:
        ``columnar.typed_batches(file, plan.specs)`` gives its rows, as often as needed (a
        pre-check's second pass). Raises (Unsupported, SqlError) where ``write`` might
        differ."""
        from iotask.connectors import columnar

        table = self._table(conn, name, url)
        keys = list(context.key or self._keys() or [c.name for c in table.primary_key.columns])
        if not keys:
            raise columnar.Unsupported("no key")
        owner_column, removal = self._ownership(table, context, url)
        constants = ({removal.status_column: removal.active}
                     if removal is not None and removal.status_column else {})
        if pairs is None:
            pairs = [(column, column, None) for column in columnar.file_columns(file)]
        mapped = [dest for dest, _, _ in pairs]
        reserved = [*([owner_column] if owner_column else []), *constants]
        if (not mapped or any(dest not in table.c for dest in mapped)
                or any(key not in mapped for key in keys)
                or any(column in mapped for column in reserved)):
            raise columnar.Unsupported("the columns are not the table's: write says why")
        sources = {dest: (column, const) for dest, column, const in pairs}
        order = keys + [dest for dest in mapped if dest not in keys] + list(constants)
        backend = conn.dialect.name
        specs = [_spec(table.c[column], sources.get(column, (None, constants.get(column))),
                       column in keys, column in constants, backend) for column in order]
        return FastPlan(table, keys, order, specs, removal, owner_column)

    def _load_fast(self, conn: sa.Connection, name: str, url: str, file: Any,
                   pairs: list[tuple[str, str | None, Any]] | None, context: RunContext,
                   progress: Progress | None) -> _Loaded:
        """The file loaded, in the transaction of ``conn``, into the empty target or a stage.
        Raises (Unsupported, LoadFailed, SqlError, ...) whenever ``write`` might differ."""
        from iotask.connectors import bulk, columnar

        plan = self.fast_plan(conn, name, url, file, pairs, context)
        table, keys, order, removal, owner_column = (plan.table, plan.keys, plan.order,
                                                     plan.removal, plan.owner_column)
        specs = list(plan.specs)
        empty = conn.scalar(sa.select(sa.literal(1)).select_from(table).limit(1)) is None
        if not empty:
            stage = Stage(conn, table, order, keys, unique=True)  # duplicates: the exact path
            found = self._delta(conn, plan, file, context, progress)
            stage.staged = bulk.load(conn, stage.table, specs,
                                     found.dirty_rows() if found is not None else
                                     columnar.typed_batches(file, specs, progress),
                                     LINE_COLUMN,
                                     None if found is not None else columnar.estimated_rows(file))
            rows = stage.staged if found is None else found.rows
            if not rows:
                raise columnar.Unsupported("no rows")
            stage.finish()
            if next(iter(stage.duplicates()), None) is not None:
                raise columnar.Unsupported("duplicate keys")
            if found is not None:
                if stage.respelled():
                    raise columnar.Unsupported("a key spelled otherwise than in the table")
                stage.unstaged = found.rows - stage.staged
                stage.known_owned = found.owned
                stage.scope = [found.scope(conn, table)]
                log.debug("bucketed diff: %d of %d rows in dirty buckets staged", stage.staged,
                          found.rows)
                remember = _rememberer(file, _memory_key(conn, file, plan), context)
                if remember is not None:  # pass one hashed every row: the file's fingerprint
                    remember(fingerprint.Fingerprint(found.rows, found.total))
            return _Loaded(rows, stage, removal, owner_column)
        if owner_column is not None and owner_column not in order:
            specs.append(_spec(table.c[owner_column], (None, context.owner), False, False,
                               conn.dialect.name))
        samples: list[str] = []
        tap = _Tap.for_plan(conn, file, plan, context)
        batches = _sampled(columnar.typed_batches(file, specs, progress), keys, samples)
        rows = bulk.load(conn, table, specs, batches if tap is None else tap.hashed(batches),
                         rows_hint=columnar.estimated_rows(file))
        if not rows:
            raise columnar.Unsupported("no rows")
        if not Stage.unique(table, keys):
            repeated = (sa.select(*(table.c[key] for key in keys)).group_by(
                *(table.c[key] for key in keys)).having(sa.func.count() > 1).limit(1))
            if conn.execute(repeated).first() is not None:
                raise columnar.Unsupported("duplicate keys")
        if tap is not None:
            tap.done()
        shown: dict[str, list[str]] = {ChangeKind.INSERT.value: samples}
        if any(column not in keys for column in order):
            shown[ChangeKind.UPDATE.value] = []
        if removal is not None:
            shown[ChangeKind.REMOVE.value] = []
        return _Loaded(rows, None, removal, owner_column, shown)

    def _delta(self, conn: sa.Connection, plan: FastPlan, file: Any, context: RunContext,
               progress: Progress | None) -> Any:
        """The bucketed diff of the file against the records the task answers for
        (connectors/delta.py), or None: then every row is staged."""
        from iotask.connectors import columnar, delta

        table = plan.table
        where, _ = _owned(table, plan.owner_column, context.owner, plan.removal)
        passes = [progress]  # the first pass is the one a progress bar shows

        def batches(select: columnar.Select | None) -> Iterator[Any]:
            return columnar.typed_batches(file, plan.specs, passes.pop() if passes else None,
                                          select)

        return delta.diff(conn.engine, table, plan.order, len(plan.keys), where, batches,
                          str(file.path), columnar.unit_free_columns(file, plan.specs))

    def precheck(self, read: Callable[[], Iterable[Batch]], context: RunContext,
                 source: Connector | None = None,
                 pairs: list[tuple[str, str | None, Any]] | None = None) -> ChangeSet | None:
        """The change set "every row unchanged" when the table already holds exactly the rows
        ``read()`` gives, else None: the database's fingerprint (count and sum of row hashes,
        ``connectors/fingerprint.py``) of the records this task owns (its ownership column;
        without one, the whole table), computed in a thread while the rows are converted and
        hashed here — columnar when the fast path can read ``source`` (mapped by ``pairs``),
        else through ``read()``. Nothing is staged or written. An empty table, a key that is
        not unique in the table, or a type the fingerprint cannot compare exactly: None."""
        name = self.params.get("table")
        if not name:
            return None
        url = self._database_url(context)
        engine = make_engine(url, read_only=True)
        try:
            with _connect(engine) as conn:
                table = self._table(conn, name, url)
                keys = list(context.key or self._keys()
                            or [c.name for c in table.primary_key.columns])
                owner_column, removal = self._ownership(table, context, url)
                if not keys or not Stage.unique(table, keys) or conn.scalar(
                        sa.select(sa.literal(1)).select_from(table).limit(1)) is None:
                    return None
                feed = self._columnar_feed(conn, name, url, source, pairs, context)
                if feed is None:
                    constants = ({removal.status_column: removal.active}
                                 if removal is not None and removal.status_column else {})
                    rows = _Rows(table, keys, url, context, constants, owner_column)
                    feed = _tuple_feed(rows, read())
                if feed is None:
                    return None
                where, whose = _owned(table, owner_column, context.owner, removal)
                return _compare(engine, table, feed, (where, whose), context, removal)
        finally:
            engine.dispose()

    def _columnar_feed(self, conn: sa.Connection, name: str, url: str,
                       source: Connector | None, pairs: list[tuple[str, str | None, Any]] | None,
                       context: RunContext) -> _Feed | None:
        """The pre-check's rows as the fast path converts them, when it can read the source;
        with no rows at all when the fingerprint of this content was remembered."""
        if source is None:
            return None
        from iotask.connectors import bulk, columnar

        if not columnar.enabled():
            return None
        file = columnar.csv_file(source, context)
        if file is None:
            return None
        try:
            plan = self.fast_plan(conn, name, url, file, pairs, context)
            key = _memory_key(conn, file, plan)
            known = (fingerprint.from_text(context.remembered(file.sha256, key) or "")
                     if key is not None and file.sha256 else None)
            if known is not None:
                log.info("task %s: pre-check of %s: the fingerprint of its content is "
                         "remembered (%s): the file is not read", context.task, file.label, known)
                return _Feed(plan.order, len(plan.keys), iter(()), columnar=True,
                             remembered=known, remember=_rememberer(file, key, context))
            batches = columnar.typed_batches(file, plan.specs)
            if conn.dialect.name != "sqlite":
                # read and converted in a second thread while this one hashes: the server's
                # side (0.5 s per 1 M rows on MariaDB) leaves most of the other core free;
                # SQLite's is a thread of this process already (a third one costs 0.4-0.8 s)
                batches = bulk.ahead(batches)
            first = next(batches, None)  # the file's own checks come first
            unit_free = columnar.unit_free_columns(file, plan.specs)
        except (columnar.Unsupported, ConnectorError) as exc:
            log.debug("pre-check of %s reads the exact way: %s", file.label, exc)
            return None
        return _Feed(plan.order, len(plan.keys), chain([] if first is None else [first], batches),
                     columnar=True, unit_free=unit_free,
                     remember=_rememberer(file, key, context))

    def check_task(self, context: RunContext) -> None:
        """The key columns exist; for sync, the ownership column too. Reads the table only."""
        if not self.params.get("table"):
            return
        url = self._database_url(context)
        engine = make_engine(url, read_only=True)
        try:
            with _connect(engine) as conn:
                table = self._table(conn, self.params["table"], url)
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
                table = self._table(conn, name, url)
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

    def _table(self, conn: sa.Connection, name: str, url: str) -> sa.Table:
        """``name`` as reflected the first time this connector (one run) asked: the plan, the
        pre-check and the write each need it, and each reflection is several catalog queries
        (30-80 ms on PostgreSQL). A run changes no table's columns."""
        if (url, name) not in self._tables:
            self._tables[url, name] = _reflect(conn, name, url)
        return self._tables[url, name]

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


@dataclass
class FastPlan:
    """The fast path's plan for one table: ``specs`` (one columnar.Spec per written column, in
    ``order``: keys first), and how ``write`` would own and remove records."""

    table: sa.Table
    keys: list[str]
    order: list[str]
    specs: list[Any]
    removal: Removal | None
    owner_column: str | None


@dataclass
class _Loaded:
    """What the fast path loaded: into a stage, or (stage None) straight into the table."""

    rows: int
    stage: Stage | None
    removal: Removal | None
    owner_column: str | None
    samples: dict[str, list[str]] = field(default_factory=dict)


def _sampled(batches: Iterator[Any], keys: list[str], samples: list[str]) -> Iterator[Any]:
    """The batches as they are, the first SAMPLE_KEYS rows' keys kept as a dry run shows them."""
    for batch in batches:
        if len(samples) < SAMPLE_KEYS:
            head = batch.slice(0, SAMPLE_KEYS - len(samples)).select(keys).to_pylist()
            samples.extend(", ".join(f"{key}={row[key]}" for key in keys) for row in head)
        yield batch


def _spec(column: sa.Column[Any], source: tuple[str | None, Any], key: bool, typed: bool,
          backend: str) -> Any:
    """The fast path's Spec of ``column``, from the converter ``write`` gives it: the same
    rules, never a second copy of them. Unsupported for a converter it does not know."""
    from iotask.connectors.columnar import Spec, Unsupported

    converter = _converter(column)
    length = precision = scale = None
    kind = None
    if isinstance(converter, partial) and converter.func is _text:
        kind, length = "text", converter.args[0]
    elif isinstance(converter, partial) and converter.func is _parsed:
        parse = converter.args[0]
        if parse == _parse_flag:
            kind = "flag"
        else:
            kind = next((_KIND_NAMES[python_type] for python_type, (known, _) in PARSERS.items()
                         if known == parse), None)
        if kind in ("float", "decimal") and isinstance(column.type, sa.Float):
            # a float column, even one read as Decimal (MySQL's DOUBLE): a double parsed from
            # the text either way; a single-precision one could round twice, so not here
            kind = ("float" if isinstance(column.type, sa.Double) or backend == "sqlite"
                    else None)
        elif kind == "decimal":
            precision = getattr(column.type, "precision", None)
            scale = getattr(column.type, "scale", None)
    if kind is None:
        raise Unsupported(f"column {column.name!r} of type {_type_name(column)}")
    value = source[1]
    if typed and isinstance(value, bool) and kind in ("int", "flag"):
        value = int(value)
    return Spec(column.name, kind, source=source[0], const=value, length=length,
                precision=precision, scale=scale, key=key, typed=typed)
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


@dataclass
class _Feed:
    """The pre-check's rows: the written columns (keys first, ``keys`` of them) and their
    batches, arrow RecordBatches (``columnar``) or the exact path's typed tuples."""

    columns: list[str]
    keys: int
    batches: Iterator[Any]
    columnar: bool = False
    unit_free: frozenset[str] = frozenset()  # see fingerprint.Hasher
    remembered: fingerprint.Fingerprint | None = None  # the rows' own, from an earlier run
    remember: Callable[[fingerprint.Fingerprint], None] | None = None  # once all are hashed


_Both = tuple[fingerprint.Fingerprint, fingerprint.Fingerprint]  # the table's, the rows'


def _memory_key(conn: sa.Connection, file: Any, plan: FastPlan) -> str | None:
    """The key of a remembered fingerprint of ``file``'s rows as ``plan`` writes them into this
    database (``fingerprint.memory_key``); None where nothing is remembered."""
    from iotask.connectors import columnar

    backend = "mysql" if conn.dialect.name in ("mysql", "mariadb") else conn.dialect.name
    kinds = fingerprint.kinds(plan.table, plan.order, backend)
    if kinds is None:
        return None
    how = [file.delimiter, file.quotechar, file.encoding, file.header, file.columns,
           file.skipinitialspace, file.max_field, *map(astuple, plan.specs)]
    return fingerprint.memory_key(fingerprint.scheme(conn.dialect), kinds, how, [columnar])


def _rememberer(file: Any, key: str | None, context: RunContext
                ) -> Callable[[fingerprint.Fingerprint], None] | None:
    """What keeps the fingerprint of all of ``file``'s rows with its import, when the file is
    still the content whose SHA-256 the run took."""
    if key is None or not file.sha256:
        return None

    def remember(found: fingerprint.Fingerprint) -> None:
        if file.unchanged():
            context.remember(key, fingerprint.as_text(found))

    return remember


class _Tap:
    """A first import's rows hashed as they are loaded (scheme CRC: about 0.4 s of CPU per 1 M
    rows in the thread that feeds LOAD DATA, which waits for the server most of the time), so
    that the first pre-check of the same content computes only the server's side."""

    def __init__(self, kinds: list[fingerprint.Kind], scheme: str,
                 remember: Callable[[fingerprint.Fingerprint], None]) -> None:
        self.hasher: fingerprint.Hasher | None = fingerprint.Hasher(kinds, "mysql", scheme)
        self._remember = remember

    @classmethod
    def for_plan(cls, conn: sa.Connection, file: Any, plan: FastPlan,
                 context: RunContext) -> _Tap | None:
        scheme = fingerprint.scheme(conn.dialect)
        if scheme != fingerprint.CRC:  # MD5 would cost PostgreSQL's load; SipHash is per process
            return None
        kinds = fingerprint.kinds(plan.table, plan.order, "mysql")
        remember = _rememberer(file, _memory_key(conn, file, plan), context)
        if kinds is None or remember is None:
            return None
        return cls(kinds, scheme, remember)

    def hashed(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            if self.hasher is not None:
                try:
                    self.hasher.add_batch(batch)
                except fingerprint.Unknown:
                    self.hasher = None  # nothing to remember: the pre-check will not apply
            yield batch

    def done(self) -> None:
        """Every row is loaded: remember their fingerprint."""
        if self.hasher is not None:
            try:
                self._remember(self.hasher.fingerprint())
            except fingerprint.Unknown:
                pass


def _tuple_feed(rows: _Rows, batches: Iterable[Batch]) -> _Feed | None:
    """The exact path's typed tuples; their columns are known once the first row is seen."""
    batches = iter(batches)
    first = next(batches, None)
    if not first:
        return None
    converted = rows.convert(first)
    return _Feed(rows.columns, len(rows.keys), chain([converted], map(rows.convert, batches)))


def _compare(engine: sa.Engine, table: sa.Table, feed: _Feed,
             owned: tuple[list[sa.ColumnElement[bool]], str], context: RunContext,
             removal: Removal | None) -> ChangeSet | None:
    """The change set "all unchanged" when the database's fingerprint of its records and the
    rows' agree (SQLite, columnar: ``_match_here``; else ``_hash_both``)."""
    where, whose = owned
    backend = "mysql" if engine.dialect.name in ("mysql", "mariadb") else engine.dialect.name
    kinds = fingerprint.kinds(table, feed.columns, backend)
    if kinds is None or getattr(context, "failed", False):
        return None
    how = _match_here if feed.columnar and backend == "sqlite" else _hash_both
    try:
        both = how(engine, table, kinds, backend, where, feed, context)
    except fingerprint.Unknown as exc:
        log.debug("pre-check on table %r does not apply: %s", table.name, exc)
        return None
    if both is None:
        return None
    server, here = both
    if getattr(context, "failed", False) or server != here:
        log.debug("pre-check on table %r: the table has %s, the rows %s", table.name,
                  server, here)
        return None
    log.info("task %s: pre-check matched: table %r already holds these %d rows (count and sum "
             "of 64-bit row hashes (%s) over columns %s, %s, read %s): nothing staged",
             context.task, table.name, here.rows, fingerprint.scheme(engine.dialect),
             ", ".join(feed.columns), whose, "the exact way" if not feed.columnar else
             "columnar" if feed.remembered is None else "earlier")
    if feed.columnar:
        context.counts.read += here.rows
    changes = ChangeSet(unchanged=here.rows, removal=removal.action if removal else "delete",
                        owned=server.rows if removal is not None else 0)
    if context.dry_run:
        changes.samples = {ChangeKind.INSERT.value: []}
        if len(feed.columns) > feed.keys:
            changes.samples[ChangeKind.UPDATE.value] = []
        if removal is not None:
            changes.samples[ChangeKind.REMOVE.value] = []
    return changes


def _hash_both(engine: sa.Engine, table: sa.Table, kinds: list[fingerprint.Kind],
               backend: str, where: list[sa.ColumnElement[bool]], feed: _Feed,
               context: RunContext) -> _Both | None:
    """The database's fingerprint of its records, computed in a thread while the rows are
    hashed here; None when it has none, or fewer rows than these (raises Unknown)."""

    def on_server() -> fingerprint.Fingerprint | None:
        with _connect(engine) as conn, conn.begin():
            return fingerprint.server(conn, table, kinds, where)

    if feed.remembered is not None:  # kept with this import too, as the latest of its content
        server = on_server()
        if feed.remember is not None:
            feed.remember(feed.remembered)
        return None if server is None else (server, feed.remembered)
    hasher = fingerprint.Hasher(kinds, backend, fingerprint.scheme(engine.dialect),
                                feed.unit_free)
    add = hasher.add_batch if feed.columnar else hasher.add_tuples
    with ThreadPoolExecutor(1) as pool:
        stored = pool.submit(on_server)
        for batch in feed.batches:
            if getattr(context, "failed", False):
                return None
            add(batch)
            if stored.done():
                known = stored.result()
                if known is None or hasher.rows > known.rows:
                    return None  # more rows than the table holds: no need to read on
        here = hasher.fingerprint()
        if feed.remember is not None and not getattr(context, "failed", False):
            feed.remember(here)
        server = stored.result()
    return None if server is None else (server, here)


def _match_here(engine: sa.Engine, table: sa.Table, kinds: list[fingerprint.Kind],
                backend: str, where: list[sa.ColumnElement[bool]], feed: _Feed,
                context: RunContext) -> _Both | None:
    """SQLite: the stored rows read in a second thread and compared with the file's as both
    come (``fingerprint.Matcher``), the stored side kept level with the file's; None when the
    file has more rows than the table (raises Unknown)."""
    from iotask.connectors import bulk

    matcher = fingerprint.Matcher(kinds, feed.unit_free)
    with _connect(engine) as conn:
        stored = bulk.ahead(fingerprint.stored_texts(conn, table, kinds, where))
    file, kept = fingerprint.Matcher.FILE, fingerprint.Matcher.STORED
    ended = False
    try:
        for batch in feed.batches:
            if getattr(context, "failed", False):
                return None
            matcher.add_file(batch)
            while not ended and matcher.read[kept] < matcher.read[file]:
                texts = next(stored, None)
                if texts is None:
                    ended = True
                else:
                    matcher.add_stored(texts)
            if ended and matcher.read[file] > matcher.read[kept]:
                return None  # more rows than the table holds: no need to read on
        for texts in stored:
            matcher.add_stored(texts)
    finally:
        stored.close()
    here, server = matcher.fingerprints()
    log.debug("pre-check on table %r: %d rows compared directly, %d and %d hashed", table.name,
              matcher.same, here.rows - matcher.same, server.rows - matcher.same)
    return server, here


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


_KIND_NAMES = {bool: "bool", int: "int", float: "float", Decimal: "decimal", date: "date",
               datetime: "datetime"}  # the fast path's name of each parsed type
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
