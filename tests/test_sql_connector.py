"""The sql connector matches rows on their key, in one transaction, on all three databases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from iotask.connectors.context import Batch, MemoryContext
from iotask.connectors.csv import CsvConnector
from iotask.connectors.errors import LeaseLost
from iotask.connectors.sql import SqlConnector, SqlError

DATA = Path(__file__).parent / "data" / "csv"


@dataclass
class IotaskContext(MemoryContext):
    """Like the runner's: the iotask database's URL, and a lease check that takes a connection."""

    lease_checks: list[str] = field(default_factory=list)

    def check_lease(self, connection: sa.Connection | None = None) -> None:
        if connection is None:
            self.lease_checks.append("own connection")
        else:
            self.lease_checks.append("in transaction" if connection.in_transaction() else "idle")


@dataclass
class LostContext(MemoryContext):
    def check_lease(self, connection=None) -> None:
        raise LeaseLost("another runner took the task")


@pytest.fixture
def users(engine: sa.Engine) -> sa.Table:
    table = sa.Table(
        "lms_user", sa.MetaData(),
        sa.Column("userid", sa.String(50), primary_key=True),
        sa.Column("firstname", sa.String(100)),
        sa.Column("lastname", sa.String(100)),
        sa.Column("email", sa.String(200)),
        sa.Column("org_unit", sa.String(100)),
    )
    table.create(engine)
    return table


def user(userid: str, firstname: str = "First", lastname: str = "Last",
         org_unit: str | None = "Sales") -> dict:
    return {"userid": userid, "firstname": firstname, "lastname": lastname,
            "email": f"{userid}@example.com", "org_unit": org_unit}


def write(url: str, batches: list[Batch], context: MemoryContext | None = None,
          **settings) -> MemoryContext:
    context = context or MemoryContext()
    params = {"database": url, "table": "lms_user", "key": ["userid"], **settings}
    SqlConnector(params).write(iter(batches), context)
    return context


def content(engine: sa.Engine, table: sa.Table) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(table).order_by(*table.primary_key))]


def counts(context: MemoryContext) -> tuple[int, int, int, int]:
    c = context.counts
    return c.inserted, c.updated, c.unchanged, c.failed


# --- writing ---------------------------------------------------------------------------------


def test_first_write_inserts_then_the_same_rows_are_unchanged(migrated_url, engine, users):
    rows = [user("ann"), user("bob", org_unit=None), user("cid", lastname="")]
    assert counts(write(migrated_url, [rows[:2], rows[2:]])) == (3, 0, 0, 0)
    assert content(engine, users) == [
        ("ann", "First", "Last", "ann@example.com", "Sales"),
        ("bob", "First", "Last", "bob@example.com", None),
        ("cid", "First", "", "cid@example.com", "Sales"),
    ]
    assert counts(write(migrated_url, [rows])) == (0, 0, 3, 0)


def test_changed_rows_are_updated(migrated_url, engine, users):
    write(migrated_url, [[user("ann"), user("bob"), user("cid", org_unit=None)]])
    context = write(migrated_url, [[user("ann", lastname="Rossi"), user("bob"),
                                    user("cid", org_unit=""), user("dan")]])
    assert counts(context) == (1, 2, 1, 0)
    assert [(row[0], row[2], row[4]) for row in content(engine, users)] == [
        ("ann", "Rossi", "Sales"), ("bob", "Last", "Sales"), ("cid", "Last", ""),
        ("dan", "Last", "Sales")]


def test_only_the_columns_given_are_written(migrated_url, engine, users):
    write(migrated_url, [[user("ann")]])
    context = write(migrated_url, [[{"userid": "ann", "email": "new@example.com"}]])
    assert counts(context) == (0, 1, 0, 0)
    assert content(engine, users) == [("ann", "First", "Last", "new@example.com", "Sales")]


def test_an_empty_key_is_a_row_error(migrated_url, engine, users):
    context = write(migrated_url, [[user("ann"), {**user(""), "__line__": 3},
                                    {**user("x"), "userid": None}, {**user("  ")}]])
    assert counts(context) == (1, 0, 0, 3)
    assert [(e.row_index, e.column) for e in context.errors] == [
        (3, "userid"), (3, "userid"), (4, "userid")]
    assert "empty" in context.errors[0].message
    assert [row[0] for row in content(engine, users)] == ["ann"]


def test_a_key_seen_twice_in_one_run_is_a_row_error(migrated_url, engine, users):
    batches = [[{**user("ann"), "__line__": 2}, {**user("bob"), "__line__": 3}],
               [{**user("ann", lastname="Later"), "__line__": 7}]]
    context = write(migrated_url, batches)
    assert counts(context) == (2, 0, 0, 1)
    error = context.errors[0]
    assert (error.row_index, error.key_values) == (7, "userid=ann")
    assert "duplicate key userid=ann: also on line 2" in error.message
    assert content(engine, users)[0][2] == "Last"  # the first one wins


def test_an_unknown_column_stops_the_run_before_anything_is_applied(migrated_url, engine, users):
    write(migrated_url, [[user("ann")]])
    before = content(engine, users)
    with pytest.raises(SqlError, match="column 'nickname' .* not in table 'lms_user'"):
        write(migrated_url, [[user("bob")], [{**user("cid"), "nickname": "C"}]])
    with pytest.raises(SqlError, match="column 'nickname' .* not in table 'lms_user'"):
        write(migrated_url, [[{**user("cid"), "nickname": "C"}]])
    assert content(engine, users) == before


def test_a_lost_lease_applies_nothing(migrated_url, engine, users):
    write(migrated_url, [[user("ann"), user("bob")]])
    before = content(engine, users)
    context = LostContext()
    with pytest.raises(LeaseLost):
        write(migrated_url, [[user("ann", lastname="Changed"), user("cid")]], context=context)
    assert content(engine, users) == before
    assert counts(context) == (0, 0, 0, 0)


def test_a_failing_source_applies_nothing(migrated_url, engine, users):
    def batches():
        yield [user("ann")]
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        SqlConnector({"database": migrated_url, "table": "lms_user", "key": ["userid"]}).write(
            batches(), MemoryContext())
    assert content(engine, users) == []


def test_a_value_too_long_for_its_column_is_a_row_error(migrated_url, engine, users):
    context = write(migrated_url, [[user("ann", org_unit="x" * 101), user("bob")]])
    assert counts(context) == (1, 0, 0, 1)
    assert context.errors[0].column == "org_unit" and "101 characters" in context.errors[0].message


def test_without_a_key_setting_the_primary_key_is_used(migrated_url, engine, users):
    assert counts(write(migrated_url, [[user("ann"), user("bob")]], key=None)) == (2, 0, 0, 0)
    assert counts(write(migrated_url, [[user("ann", firstname="Anne")]], key=None)) == (
        0, 1, 0, 0)
    sa.Table("no_pk", sa.MetaData(), sa.Column("userid", sa.String(50))).create(engine)
    with pytest.raises(SqlError, match="no primary key: .*--set key=col1,col2"):
        write(migrated_url, [[{"userid": "ann"}]], key=None, table="no_pk")


def test_a_missing_table_is_named_without_the_password(migrated_url, engine):
    with pytest.raises(SqlError, match="table 'nope' does not exist in") as caught:
        write(migrated_url, [[user("ann")]], table="nope")
    password = engine.url.password
    assert not password or password not in str(caught.value)


def test_database_defaults_to_the_iotask_database(migrated_url, engine, users):
    context = IotaskContext(database_url=migrated_url)
    SqlConnector({"table": "lms_user", "key": ["userid"]}).write(iter([[user("ann")]]), context)
    assert [row[0] for row in content(engine, users)] == ["ann"]
    rows = [r for b in SqlConnector({"table": "lms_user"}).read(context) for r in b]
    assert [row["userid"] for row in rows] == ["ann"]


def test_the_lease_is_checked_inside_the_write_transaction(
        migrated_url, tmp_path, users):
    context = IotaskContext(database_url=migrated_url)
    write(migrated_url, [[user("ann")]], context=context)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    other_engine = sa.create_engine(other)
    sa.Table("lms_user", sa.MetaData(), sa.Column("userid", sa.String(50), primary_key=True)
             ).create(other_engine)
    other_engine.dispose()
    write(other, [[{"userid": "bob"}]], context=context)
    assert context.lease_checks == ["in transaction", "in transaction"]


def test_without_database_and_iotask_url_the_error_says_what_to_set():
    with pytest.raises(SqlError, match="--set database=URL"):
        list(SqlConnector({"table": "lms_user"}).read(MemoryContext()))


def test_a_composite_key(migrated_url, engine):
    table = sa.Table(
        "enrollment", sa.MetaData(),
        sa.Column("userid", sa.String(50), primary_key=True),
        sa.Column("course", sa.String(50), primary_key=True),
        sa.Column("status", sa.String(20)),
    )
    table.create(engine)
    settings = {"table": "enrollment", "key": ["userid", "course"]}
    rows = [{"userid": "ann", "course": "c1", "status": "enrolled"},
            {"userid": "ann", "course": "c2", "status": "enrolled"},
            {"userid": "bob", "course": "c1", "status": "enrolled"}]
    assert counts(write(migrated_url, [rows], **settings)) == (3, 0, 0, 0)
    rows[1] = {**rows[1], "status": "completed"}
    rows.append({"userid": "bob", "course": "c2", "status": "enrolled"})
    rows.append({"userid": "ann", "course": "c1", "status": "twice"})
    context = write(migrated_url, [rows], **settings)
    assert counts(context) == (1, 1, 2, 1)
    assert context.errors[0].key_values == "userid=ann, course=c1"
    assert content(engine, table) == [("ann", "c1", "enrolled"), ("ann", "c2", "completed"),
                                      ("bob", "c1", "enrolled"), ("bob", "c2", "enrolled")]


def test_text_is_converted_for_typed_columns(migrated_url, engine):
    table = sa.Table(
        "course", sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("hours", sa.Numeric(6, 2)),
        sa.Column("starts", sa.Date),
        sa.Column("active", sa.Boolean),
    )
    table.create(engine)
    settings = {"table": "course", "key": ["id"]}
    rows = [{"id": "1", "hours": "10.5", "starts": "2026-03-01", "active": "yes"},
            {"id": " 2 ", "hours": "", "starts": "", "active": "0"},
            {"id": "3", "hours": "ten", "starts": "2026-03-01", "active": "1", "__line__": 4},
            {"id": "4", "hours": "1", "starts": "01/03/2026", "active": "1", "__line__": 5}]
    context = write(migrated_url, [rows], **settings)
    assert counts(context) == (2, 0, 0, 2)
    assert [(e.row_index, e.column, e.key_values) for e in context.errors] == [
        (4, "hours", "id=3"), (5, "starts", "id=4")]
    assert "'ten' is not a number" in context.errors[0].message
    assert content(engine, table) == [(1, Decimal("10.50"), date(2026, 3, 1), True),
                                      (2, None, None, False)]
    assert counts(write(migrated_url, [rows[:2]], **settings)) == (0, 0, 2, 0)


def test_odd_column_names_and_names_like_bind_parameters(migrated_url, engine):
    table = sa.Table(
        "odd", sa.MetaData(),
        sa.Column("user id", sa.String(20), primary_key=True),
        sa.Column("p0", sa.String(20)),
        sa.Column("p1", sa.String(20)),
        sa.Column("select", sa.String(20)),
    )
    table.create(engine)
    settings = {"table": "odd", "key": ["user id"]}
    write(migrated_url, [[{"user id": "a b", "p0": "x", "p1": "y", "select": "%(z)s"}]],
          **settings)
    context = write(migrated_url, [[{"user id": "a b", "p0": "x2", "p1": "y", "select": ":z"}]],
                    **settings)
    assert counts(context) == (0, 1, 0, 0)
    assert content(engine, table) == [("a b", "x2", "y", ":z")]


def test_a_csv_file_into_a_table_with_line_numbers_in_errors(migrated_url, engine, users, tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes(DATA.joinpath("users.csv").read_bytes() + b",No,Key,none@example.com,HR\n")
    context = MemoryContext(file_roots=[tmp_path])
    source = CsvConnector({"url": str(path)})
    write(migrated_url, list(source.read(context)), context=context)
    assert counts(context) == (4, 0, 0, 1)
    assert (context.errors[0].row_index, context.errors[0].column) == (7, "userid")
    assert content(engine, users)[2] == ("carla", "Carla", "Bianchi\nDe Luca",
                                         "carla@example.com", "HR")


# --- reading ---------------------------------------------------------------------------------


def read(url: str, **settings) -> list[Batch]:
    return list(SqlConnector({"database": url, **settings}).read(MemoryContext()))


def test_read_a_table_ordered_by_key(migrated_url, users):
    write(migrated_url, [[user("cid"), user("ann"), user("bob", org_unit=None)]])
    batches = read(migrated_url, table="lms_user", key=["userid"])
    assert batches == [[
        {"userid": "ann", "firstname": "First", "lastname": "Last",
         "email": "ann@example.com", "org_unit": "Sales"},
        {"userid": "bob", "firstname": "First", "lastname": "Last",
         "email": "bob@example.com", "org_unit": None},
        {"userid": "cid", "firstname": "First", "lastname": "Last",
         "email": "cid@example.com", "org_unit": "Sales"},
    ]]


def test_read_in_batches_of_1000(migrated_url, users):
    write(migrated_url, [[user(f"u{n:04d}") for n in range(2500)]])
    batches = read(migrated_url, table="lms_user", key=["userid"])
    assert [len(batch) for batch in batches] == [1000, 1000, 500]
    assert batches[2][-1]["userid"] == "u2499"


def test_read_a_query(migrated_url, users):
    write(migrated_url, [[user("ann"), user("bob", org_unit="HR"), user("cid", org_unit="HR")]])
    query = ("SELECT userid, email, '50%' AS share, '12:30' AS at FROM lms_user "
             "WHERE org_unit = 'HR' ORDER BY userid DESC")
    assert read(migrated_url, query=query) == [[
        {"userid": "cid", "email": "cid@example.com", "share": "50%", "at": "12:30"},
        {"userid": "bob", "email": "bob@example.com", "share": "50%", "at": "12:30"},
    ]]


def test_a_query_that_changes_data_is_rolled_back(migrated_url, engine, users):
    write(migrated_url, [[user("ann")]])
    with pytest.raises(SqlError):
        read(migrated_url, query="DELETE FROM lms_user")
    assert [row[0] for row in content(engine, users)] == ["ann"]


def test_a_query_with_a_column_twice_is_refused(migrated_url, users):
    with pytest.raises(SqlError, match="column 'userid' more than once"):
        read(migrated_url, query="SELECT userid, userid FROM lms_user")


def test_a_broken_query_is_one_clear_error(migrated_url):
    with pytest.raises(SqlError, match="query failed on"):
        read(migrated_url, query="SELECT * FROM no_such_table")


def test_reading_a_missing_table_or_key_is_named(migrated_url, users):
    with pytest.raises(SqlError, match="table 'nope' does not exist"):
        read(migrated_url, table="nope")
    with pytest.raises(SqlError, match="key column 'id' is not in table 'lms_user'"):
        read(migrated_url, table="lms_user", key=["id"])


def test_sync_needs_an_ownership_column(migrated_url, engine, users):
    """Never a sync that could remove records nobody can tell it wrote."""
    with pytest.raises(SqlError, match="has no column 'imported_from_connection'.*owner_column"):
        write(migrated_url, [[user("ann")]],
              context=IotaskContext(import_type="sync", owner="hr-feed"))
    assert content(engine, users) == []


@pytest.mark.parametrize("backend", ["mariadb"])  # LOAD DATA LOCAL INFILE is MariaDB's
def test_a_server_refusing_local_files_is_loaded_with_inserts(backend, migrated_url, engine,
                                                              users):
    """MariaDB with local_infile=OFF: staging falls back to multi-row INSERT, same result."""
    with engine.connect() as conn:
        before = conn.exec_driver_sql("SELECT @@GLOBAL.local_infile").scalar()
        conn.exec_driver_sql("SET GLOBAL local_infile = 0")
    try:
        rows = [user(f"u{n}", lastname="O'Brien \"Q\"\tx\\y") for n in range(25_000)]
        context = write(migrated_url, [rows[i:i + 1000] for i in range(0, 25_000, 1000)])
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SET GLOBAL local_infile = {int(before)}")
    assert counts(context) == (25_000, 0, 0, 0)
    assert content(engine, users)[0][2] == "O'Brien \"Q\"\tx\\y"


def test_load_data_keeps_every_character_and_null(migrated_url, engine, users):
    """Quotes, commas, tabs, backslashes, line breaks, the word NULL and a real NULL."""
    odd = ["a,b", 'say "hi"', "tab\there", "back\\slash", "line\nbreak\r\nand CR\r",
           "NULL", "\\N", "", " padded "]
    rows = [user(f"u{n}", firstname=value, org_unit=None if n % 2 else value)
            for n, value in enumerate(odd)]
    write(migrated_url, [rows])
    stored = {row[0]: row for row in content(engine, users)}
    for n, value in enumerate(odd):
        assert stored[f"u{n}"][1] == value
        assert stored[f"u{n}"][4] == (None if n % 2 else value)
    assert counts(write(migrated_url, [rows])) == (0, 0, len(odd), 0)


def test_a_destination_declares_its_columns_types_defaults_and_key(migrated_url, engine):
    sa.Table("course", sa.MetaData(),
             sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
             sa.Column("code", sa.String(20), nullable=False),
             sa.Column("hours", sa.Integer, nullable=False, server_default="8"),
             sa.Column("title", sa.String(200))).create(engine)
    columns = {c.name: c for c in SqlConnector({"database": migrated_url, "table": "course",
                                                "key": ["code"]}).columns(MemoryContext())}
    assert [(c.required, c.key) for c in columns.values()] == [
        (False, False), (True, True), (False, False), (False, False)]
    assert "VARCHAR" in columns["code"].type and "20" in columns["code"].type
    assert "INT" in columns["hours"].type and "8" in columns["hours"].default
    assert columns["title"].default is None


# --- the change set through temporary key tables ----------------------------------------------


def test_a_dry_run_into_an_empty_table_shows_the_first_new_keys_in_file_order(migrated_url,
                                                                               engine, users):
    """An empty table skips the joins; the samples are still the first rows of the source."""
    rows = [user(f"u{n:02d}") for n in range(30, 0, -1)]
    context = write(migrated_url, [rows], context=MemoryContext(dry_run=True))
    changes = context.changes
    assert (changes.inserted, changes.updated, changes.unchanged) == (30, 0, 0)
    assert changes.samples == {"insert": [f"userid=u{n:02d}" for n in range(30, 20, -1)],
                               "update": []}
    assert content(engine, users) == []


def test_a_dry_run_samples_new_and_changed_keys_in_file_order(migrated_url, engine, users):
    write(migrated_url, [[user(f"u{n:02d}") for n in range(1, 21)]])
    rows = [user(f"u{n:02d}", lastname="New") for n in range(20, 0, -1)] + [user("x1"),
                                                                            user("a1")]
    context = write(migrated_url, [rows], context=MemoryContext(dry_run=True))
    changes = context.changes
    assert (changes.inserted, changes.updated, changes.unchanged) == (2, 20, 0)
    assert changes.samples == {"insert": ["userid=x1", "userid=a1"],
                               "update": [f"userid=u{n:02d}" for n in range(20, 10, -1)]}
    assert {row[2] for row in content(engine, users)} == {"Last"}


def test_sync_on_a_table_without_primary_key_or_unique_key(migrated_url, engine):
    """The key tables then take repeated keys; only the task's own records are removed."""
    table = sa.Table("lms_user", sa.MetaData(), sa.Column("userid", sa.String(50)),
                     sa.Column("firstname", sa.String(50)),
                     sa.Column("imported_from_connection", sa.String(50)))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(table), [
            {"userid": u, "firstname": "Old", "imported_from_connection": owner}
            for u, owner in [("ann", "feed"), ("ann", "feed"), ("bob", "feed"),
                             ("bob", "other"), ("cid", "feed"), ("dan", None)]])
    context = write(migrated_url, [[{"userid": "ann", "firstname": "New"},
                                    {"userid": "cid", "firstname": "Old"}]],
                    context=IotaskContext(import_type="sync", owner="feed"), key=["userid"])
    assert (context.counts.inserted, context.counts.updated, context.counts.removed) == (0, 2, 1)
    with engine.connect() as conn:
        rows = sorted(conn.execute(sa.select(table)).all(), key=lambda row: (row[0], row[2] or ""))
    assert rows == [("ann", "New", "feed"), ("ann", "New", "feed"), ("bob", "Old", "other"),
                    ("cid", "Old", "feed"), ("dan", "Old", None)]


def test_sync_removes_by_a_composite_primary_key(migrated_url, engine):
    table = sa.Table("enrolment", sa.MetaData(),
                     sa.Column("userid", sa.String(50), primary_key=True),
                     sa.Column("course", sa.String(50), primary_key=True),
                     sa.Column("status", sa.String(20)),
                     sa.Column("imported_from_connection", sa.String(50)))
    table.create(engine)
    rows = [{"userid": u, "course": c, "status": "open"}
            for u in ("ann", "bob") for c in ("c1", "c2")]
    sync = {"import_type": "sync", "owner": "feed"}
    write(migrated_url, [rows], context=IotaskContext(**sync), table="enrolment", key=None)
    dry = write(migrated_url, [rows[1:3]], context=IotaskContext(**sync, dry_run=True),
                table="enrolment", key=None)
    assert dry.changes.samples["remove"] == ["userid=ann, course=c1", "userid=bob, course=c2"]
    done = write(migrated_url, [rows[1:3]], context=IotaskContext(**sync), table="enrolment",
                 key=None)
    assert (done.counts.removed, done.counts.unchanged) == (2, 2)
    with engine.connect() as conn:
        assert conn.execute(sa.select(table.c.userid, table.c.course)
                            .order_by(table.c.userid, table.c.course)).all() == [
            ("ann", "c2"), ("bob", "c1")]


@pytest.mark.parametrize("backend", ["mariadb"])  # LOAD DATA LOCAL INFILE is MariaDB's
def test_a_value_the_server_refuses_in_a_later_chunk_names_its_line(backend, migrated_url,
                                                                     engine):
    from iotask.connectors.staging import StageError

    table = sa.Table("scores", sa.MetaData(), sa.Column("userid", sa.String(20), primary_key=True),
                     sa.Column("points", sa.Integer))
    table.create(engine)
    rows = [{"userid": f"u{n:05d}", "points": str(n), "__line__": n + 2} for n in range(25_000)]
    rows[23_456]["points"] = str(10 ** 12)  # parses as a whole number, too big for INT
    with pytest.raises(StageError, match=r"line 23458: .*Out of range"):
        write(migrated_url, [rows[i:i + 1000] for i in range(0, 25_000, 1000)], table="scores")
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(table)) == 0


@dataclass
class WritingMeanwhile(MemoryContext):
    """While the change set waits for review, the LMS updates a user the import read and found
    unchanged."""

    url: str = ""
    outcome: str = ""

    def review(self, changes) -> bool:
        other = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        try:
            with other.begin() as conn:
                if other.dialect.name in ("mysql", "mariadb"):
                    conn.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 2")
                elif other.dialect.name == "postgresql":
                    conn.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                conn.execute(sa.text("UPDATE lms_user SET email = 'new@x' WHERE userid = 'ann'"))
            self.outcome = "written"
        except sa.exc.OperationalError as exc:
            self.outcome = f"blocked: {exc.orig}"
        return super().review(changes)


@pytest.mark.parametrize("backend", ["mariadb", "postgresql"])
def test_the_lms_can_write_other_records_while_an_import_computes(backend, migrated_url, engine,
                                                                   users):
    write(migrated_url, [[user("ann"), user("bob")]])
    context = WritingMeanwhile(url=migrated_url)
    write(migrated_url, [[user("ann"), user("bob", firstname="Bobby"), user("cid")]],
          context=context)
    assert context.outcome == "written"
    assert counts(context) == (1, 1, 1, 0)
    assert {row[0]: row[3] for row in content(engine, users)}["ann"] == "new@x"
