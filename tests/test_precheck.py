"""The unchanged re-import pre-check, on SQLite, MariaDB and PostgreSQL: the database's
fingerprint of a table agrees with iotask's over the same rows (typed tuples and arrow batches
alike) and differs for any change; through `iotask run`, an unchanged file is found without
staging, and every change made behind iotask's back is still applied by the next run."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from conftest import write_csv
from iotask.connectors import fingerprint

OWNER = "hr-csv"
MATCHED = "pre-check matched"

# --- the fingerprint itself ---------------------------------------------------------------

WIDE = ["code", "name", "note", "n", "big", "flag", "born", "amount"]
ROWS = [
    ("a1", "Ann", "", 0, 2**62, True, date(2024, 1, 5), Decimal("1.50")),
    ("a2", None, "tab\there\nnew line \"q\" 'single' back\\slash\r", -5, None, False, None,
     Decimal("-0.25")),
    ("a3", "Zoë 日本 😀", None, None, -2**63, None, date(1000, 1, 1), None),
    ("a4", "ann ", "\\N", 7, 0, True, date(2099, 12, 31), Decimal("0")),
    ("a5", "", "2:ab", 1, 1, False, date(2000, 2, 29), Decimal("9999999999.99")),
    ("a6", "3:abc", "\\", 2**31 - 1, -1, True, date(1999, 12, 31), Decimal("-7")),
]


def wide_table(backend: str) -> sa.Table:
    columns = [sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
               sa.Column("code", sa.String(40), nullable=False, unique=True),
               sa.Column("name", sa.String(200)), sa.Column("note", sa.Text),
               sa.Column("n", sa.Integer), sa.Column("big", sa.BigInteger),
               sa.Column("flag", sa.Boolean), sa.Column("born", sa.Date)]
    if backend != "sqlite":  # SQLite keeps decimals as floating point: not compared
        columns.append(sa.Column("amount", sa.Numeric(12, 2)))
    return sa.Table("wide", sa.MetaData(), *columns)


def names(backend: str) -> list[str]:
    return WIDE if backend != "sqlite" else WIDE[:-1]


def fit(rows: list[tuple], backend: str) -> list[tuple]:
    return [row[:len(names(backend))] for row in rows]


def arrow(rows: list[tuple], backend: str) -> pa.RecordBatch:
    types = [pa.string(), pa.string(), pa.string(), pa.int64(), pa.int64(), pa.bool_(),
             pa.date32(), pa.decimal128(12, 2)]
    wanted = names(backend)
    return pa.RecordBatch.from_arrays(
        [pa.array([row[i] for row in rows], types[i]) for i in range(len(wanted))], wanted)


def tuples_print(kinds, rows: list[tuple], backend: str) -> fingerprint.Fingerprint:
    hasher = fingerprint.Hasher(kinds, backend)
    hasher.add_tuples([(line, *row) for line, row in enumerate(rows, 2)])
    return hasher.fingerprint()


def arrow_print(kinds, rows: list[tuple], backend: str) -> fingerprint.Fingerprint:
    hasher = fingerprint.Hasher(kinds, backend)
    hasher.add_batch(arrow(rows, backend))
    return hasher.fingerprint()


def stored_wide(backend: str, engine: sa.Engine
                ) -> tuple[sa.Table, list[tuple], list[fingerprint.Kind]]:
    """The wide table holding ROWS, reflected as the connector sees it, and its kinds."""
    wide_table(backend).create(engine)
    rows = fit(ROWS, backend)
    with engine.begin() as conn:
        conn.execute(sa.insert(wide_table(backend)),
                     [dict(zip(names(backend), row, strict=True)) for row in rows])
    table = sa.Table("wide", sa.MetaData(), autoload_with=engine)
    kinds = fingerprint.kinds(table, names(backend), "mysql" if backend == "mariadb"
                              else backend)
    assert kinds is not None
    return table, rows, kinds


def test_server_and_both_client_entry_points_agree_and_any_change_differs(backend, engine):
    table, rows, kinds = stored_wide(backend, engine)
    with engine.connect() as conn:
        stored = fingerprint.server(conn, table, kinds, [])
    assert stored is not None and stored.rows == len(rows)
    assert tuples_print(kinds, rows, backend) == stored
    assert arrow_print(kinds, rows, backend) == stored

    def changed(at: int, column: str, value) -> list[tuple]:
        position = WIDE.index(column)
        return [row if i != at else (*row[:position], value, *row[position + 1:])
                for i, row in enumerate(rows)]

    variants = {
        "one value": changed(3, "n", 8),
        "case": changed(0, "name", "ann"),
        "a trailing space": changed(3, "name", "ann"),
        "NULL instead of ''": changed(0, "note", None),
        "'' instead of NULL": changed(1, "name", ""),
        "a date": changed(0, "born", date(2024, 1, 6)),
        "a boolean": changed(0, "flag", False),
        "one missing row": rows[:-1],
        "one extra row": [*rows, fit([("a7", "x", "y", 1, 1, True, date(2024, 1, 1),
                                        Decimal("1.00"))], backend)[0]],
        "two values swapped between rows": changed(0, "n", 1)[:4] + [changed(4, "n", 0)[4]]
        + rows[5:],
        "texts of one length swapped between rows": swapped(rows, 1, 2, "code"),
        "dates swapped between rows": swapped(rows, 0, 3, "born"),
        "two columns swapped in rows": [(row[0], row[2], row[1], *row[3:]) if i < 2 else row
                                        for i, row in enumerate(rows)],
        "one changed character": changed(2, "name", "Zoë 日本 😁"),
        "'\\N' instead of NULL": changed(1, "name", "\\N"),
        "NULL instead of '\\N'": changed(3, "note", None),
        "'' instead of '\\N'": changed(3, "note", ""),
    }
    if backend != "sqlite":
        variants["a decimal"] = changed(0, "amount", Decimal("1.51"))
    for what, variant in variants.items():
        assert tuples_print(kinds, variant, backend) != stored, what
        assert arrow_print(kinds, variant, backend) == tuples_print(kinds, variant, backend), what


def swapped(rows: list[tuple], first: int, second: int, column: str) -> list[tuple]:
    """``column``'s values of rows ``first`` and ``second`` exchanged."""
    position = WIDE.index(column)
    result = list(rows)
    for here, there in ((first, second), (second, first)):
        row = rows[here]
        result[here] = (*row[:position], rows[there][position], *row[position + 1:])
    return result


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_row_hash_is_not_linear_as_a_crc_is(backend):
    """A CRC of texts of one length is affine: crc(a) ^ crc(b) ^ crc(c) == crc(a ^ b ^ c), so
    values swapped between rows change both rows' CRCs by one XOR delta, which a sum of CRCs can
    miss. The row hash (the product of the two CRCs) is not: swaps change the sum."""
    import zlib

    def row_hash(text: str) -> int:
        hasher = fingerprint.Hasher([fingerprint.Kind("v", fingerprint.TEXT)], "mysql")
        hasher.add_rows([(text,)])
        return hasher.fingerprint().total

    texts = ["alpha-01", "bravo-22", "charl-93"]
    mixed = bytes(x ^ y ^ z for x, y, z in zip(*(text.encode() for text in texts), strict=True))
    crcs = [zlib.crc32(text.encode()) for text in texts]
    assert crcs[0] ^ crcs[1] ^ crcs[2] == zlib.crc32(mixed)  # what the test guards against
    hashes = [row_hash(text) for text in texts]
    assert hashes[0] ^ hashes[1] ^ hashes[2] != row_hash(mixed.decode())
    assert len(set(hashes)) == 3 and all(value >= 1 << 32 for value in hashes)  # 64 bits

    def total(pairs: list[tuple[str, str]]) -> int:
        hasher = fingerprint.Hasher([fingerprint.Kind("k", fingerprint.TEXT),
                                     fingerprint.Kind("v", fingerprint.TEXT)], "mysql")
        hasher.add_rows(pairs)
        return hasher.fingerprint().total

    rows = [(f"k{n}", f"value{n:03d}") for n in range(40)]
    for first in range(0, 40, 2):  # twenty swaps of values of one length between two rows
        changed = list(rows)
        changed[first], changed[first + 1] = ((rows[first][0], rows[first + 1][1]),
                                              (rows[first + 1][0], rows[first][1]))
        assert total(changed) != total(rows)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_database_without_crc32c_keeps_md5(backend):
    """MySQL and MariaDB before 10.8 have no CRC32C: their side hashes with MD5, and so must
    iotask's."""
    from types import SimpleNamespace

    def scheme(name: str, mariadb: bool, version: tuple[int, ...]) -> str:
        return fingerprint.scheme(SimpleNamespace(name=name, is_mariadb=mariadb,
                                                  server_version_info=version))

    assert scheme("mysql", False, (8, 0, 36)) == fingerprint.MD5
    assert scheme("mysql", True, (10, 6, 18)) == fingerprint.MD5
    assert scheme("mysql", True, (10, 11, 9)) == fingerprint.CRC
    assert scheme("postgresql", False, (15, 4)) == fingerprint.MD5
    assert scheme("sqlite", False, (3, 40, 1)) == fingerprint.SIPHASH
    kinds = [fingerprint.Kind("v", fingerprint.TEXT)]
    prints = set()
    for row_hash in (fingerprint.CRC, fingerprint.MD5):
        hasher = fingerprint.Hasher(kinds, "mysql", row_hash)
        hasher.add_rows([("Ann",)])
        prints.add(hasher.fingerprint())
    assert len(prints) == 2


def test_values_the_database_would_not_store_exactly_are_not_compared(backend, engine):
    table = wide_table(backend)
    kinds = fingerprint.kinds(table, names(backend), backend)
    assert kinds is not None
    for column, value in [("n", 1.0), ("born", "2024-01-05"), ("name", 5)]:
        position = WIDE.index(column)
        row = (*ROWS[0][:position], value, *ROWS[0][position + 1:])
        with pytest.raises(fingerprint.Unknown):
            tuples_print(kinds, fit([row], backend), backend)
    if backend != "sqlite":
        with pytest.raises(fingerprint.Unknown):  # the database would round it
            tuples_print(kinds, [(*ROWS[0][:-1], Decimal("1.234"))], backend)
    floats = sa.Table("floats", sa.MetaData(), sa.Column("code", sa.String(10)),
                      sa.Column("ratio", sa.Float))
    assert fingerprint.kinds(floats, ["code", "ratio"], backend) is None


def matched(table, kinds, rows, backend, engine, batch_rows: int = 2):
    """The Matcher's two fingerprints of ``rows`` (fed ``batch_rows`` at a time) against the
    stored table, and how many rows it compared directly."""
    matcher = fingerprint.Matcher(kinds)
    with engine.connect() as conn:
        for texts in fingerprint.stored_texts(conn, table, kinds, []):
            matcher.add_stored(texts)
    for start in range(0, len(rows), batch_rows):
        matcher.add_file(arrow(rows[start:start + batch_rows], backend))
    return (*matcher.fingerprints(), matcher.same)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_matcher_compares_rows_in_order_and_hashes_the_rest(backend, engine):
    table, rows, kinds = stored_wide(backend, engine)
    with engine.connect() as conn:
        stored = fingerprint.server(conn, table, kinds, [])
    here, there, same = matched(table, kinds, rows, backend, engine)
    assert here == there and here.rows == len(rows) and same == len(rows)
    swapped = [rows[0], rows[2], rows[1], *rows[3:]]  # same rows, another order: hashed
    here, there, same = matched(table, kinds, swapped, backend, engine, batch_rows=1)
    assert here == there and same == 1 and here.rows == len(rows)
    assert (here.total, there.total) != (stored.total, stored.total)  # the rows after row 1
    for variant in (rows[:-1], [*rows, ("a7", *rows[0][1:])],
                    [*rows[:3], ("a4", "Ann ", *rows[3][2:]), *rows[4:]],
                    [rows[1], rows[0], *rows[2:4], (*rows[4][:2], None, *rows[4][3:]),
                     rows[5]]):
        here, there, _ = matched(table, kinds, variant, backend, engine)
        assert here != there


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_sqlite_values_of_another_storage_class_are_not_compared(backend, engine):
    """SQLite stores what it is given as the column's affinity converts it: a REAL in an
    integer column, an INTEGER in a date column read as texts iotask never writes there, so
    they never match; a BLOB reads as its bytes (b'Ann' as 'Ann') and makes the pre-check not
    apply."""
    table, rows, kinds = stored_wide(backend, engine)
    with engine.connect() as conn:
        assert fingerprint.server(conn, table, kinds, []) == tuples_print(kinds, rows, backend)
    for column, value in [("n", 0.5), ("name", b"Ann"), ("born", 20240105), ("note", b"")]:
        with engine.begin() as conn:  # written behind iotask's back: SQLite takes anything
            before = conn.execute(sa.text(f"SELECT {column} FROM wide WHERE code = 'a1'")).scalar()
            conn.execute(sa.text(f"UPDATE wide SET {column} = :value WHERE code = 'a1'"),
                         {"value": value})
        with engine.connect() as conn:
            stored = fingerprint.server(conn, table, kinds, [])
        if isinstance(value, bytes):
            assert stored is None, column
            with pytest.raises(fingerprint.Unknown):
                matched(table, kinds, rows, backend, engine)
        else:
            assert stored is not None and stored != tuples_print(kinds, rows, backend), column
            here, there, _ = matched(table, kinds, rows, backend, engine)
            assert here != there, column
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE wide SET {column} = :value WHERE code = 'a1'"),
                         {"value": before})


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"], indirect=True)  # PostgreSQL: MD5
def test_the_unit_separator_and_a_null_where_none_can_be_are_not_compared(backend, engine):
    """CRC and SipHash's row text puts U+001F before each value and escapes nothing: a file
    value holding it is Unknown (so a file row's text splits one way only), and a stored one
    never matches. A NULL in a NOT NULL column has no place in the NULL map: Unknown."""
    table, rows, kinds = stored_wide(backend, engine)
    assert not kinds[0].nullable and kinds[1].nullable
    held = [(*rows[0][:1], "An" + fingerprint.UNIT + "n", *rows[0][2:]), *rows[1:]]
    for bad in (held, [(None, *rows[0][1:]), *rows[1:]]):
        with pytest.raises(fingerprint.Unknown):
            tuples_print(kinds, bad, backend)
        with pytest.raises(fingerprint.Unknown):
            arrow_print(kinds, bad, backend)
    with engine.begin() as conn:  # a DBA's edit: the value's UNIT makes one more separator
        conn.execute(sa.update(table).where(table.c.code == "a1").values(
            name="Ann" + fingerprint.UNIT, note=None))
    with engine.connect() as conn:
        stored = fingerprint.server(conn, table, kinds, [])
    assert stored is not None and stored.rows == len(rows)
    assert stored != tuples_print(kinds, rows, backend)
    if backend == "sqlite":
        here, there, _ = matched(table, kinds, rows, backend, engine)
        assert here != there


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_mariadb_text_in_other_character_sets_and_collations(backend, engine):
    from sqlalchemy.dialects import mysql

    table = sa.Table("legacy", sa.MetaData(),
                     sa.Column("code", sa.String(10), primary_key=True),
                     sa.Column("name", mysql.VARCHAR(50, collation="utf8mb4_general_ci")),
                     sa.Column("old", mysql.VARCHAR(50, charset="latin1")))
    table.create(engine)
    rows = [("a", "Ann", "café"), ("b", "ann ", "naïve"), ("c", "ÀÉÎ", None)]
    with engine.begin() as conn:
        conn.execute(sa.insert(table), [dict(zip(["code", "name", "old"], row, strict=True))
                                        for row in rows])
    reflected = sa.Table("legacy", sa.MetaData(), autoload_with=engine)
    kinds = fingerprint.kinds(reflected, ["code", "name", "old"], "mysql")
    assert kinds is not None
    with engine.connect() as conn:
        stored = fingerprint.server(conn, reflected, kinds, [])

    def client(values: list[tuple]) -> fingerprint.Fingerprint:
        hasher = fingerprint.Hasher(kinds, "mysql")
        hasher.add_rows(values)
        return hasher.fingerprint()

    assert client(rows) == stored
    for changed in ([("a", "ann", "café"), *rows[1:]], [rows[0], ("b", "ann", "naïve"), rows[2]],
                    [*rows[:2], ("c", "àéî", None)], [rows[0], ("b", "ann ", "naive"), rows[2]]):
        assert client(changed) != stored, changed


# --- through `iotask run` -----------------------------------------------------------------

HEADER = ["userid", "firstname", "lastname", "born", "birth_year"]


def people(count: int, start: int = 0) -> list[list[str]]:
    return [[f"u{n:04d}", f"First{n}", f"Last {n}", f"19{60 + n % 40}-01-0{1 + n % 9}",
             str(1960 + n % 40) if n % 7 else ""] for n in range(start, start + count)]


class Site:
    """An lms_user table, a CSV source named OWNER and a task "users" writing to it."""

    def __init__(self, iotask, engine: sa.Engine, folder: Path, import_type: str,
                 **destination: str) -> None:
        self.iotask, self.engine = iotask, engine
        self.table = sa.Table(
            "lms_user", sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("userid", sa.String(50), nullable=False, unique=True),
            sa.Column("firstname", sa.String(100)),
            sa.Column("lastname", sa.String(100)),
            sa.Column("born", sa.Date),
            sa.Column("birth_year", sa.Integer),
            sa.Column("active", sa.Integer, nullable=False, server_default="1"),
            sa.Column("imported_from_connection", sa.String(255)),
        )
        self.table.create(engine)
        self.file = folder / "users.csv"
        iotask("connection", "add", OWNER, "--type", "csv", "--set", f"url={self.file}")
        settings = {"table": "lms_user", "key": "userid", **destination}
        iotask("connection", "add", "lms", "--type", "sql",
               *[part for key, value in settings.items() for part in ("--set", f"{key}={value}")])
        iotask("task", "add", "users", "--source", OWNER, "--destination", "lms",
               "--import-type", import_type)

    def run(self, *options: str, ok: bool = True) -> tuple[dict, bool]:
        """The run's JSON, and whether the pre-check matched."""
        result = self.iotask("-vv", "run", "users", "--json", *options, ok=ok)
        return result.json()["tasks"][0], MATCHED in result.err

    def content(self) -> list[tuple]:
        t = self.table
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(
                sa.select(t.c.userid, t.c.firstname, t.c.lastname, t.c.born, t.c.birth_year,
                          t.c.active, t.c.imported_from_connection).order_by(t.c.userid))]

    def change(self, userid: str, **values) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(self.table).where(self.table.c.userid == userid)
                         .values(**values))


def counts(task: dict) -> tuple[int, int, int, int, int, int]:
    c = task["counts"]
    return c["read"], c["inserted"], c["updated"], c["unchanged"], c["removed"], c["failed"]


@pytest.mark.parametrize("import_type", ["insert", "sync"])
def test_an_unchanged_reimport_is_found_by_the_precheck(iotask, engine, tmp_path, import_type):
    site = Site(iotask, engine, tmp_path, import_type)
    write_csv(site.file, HEADER, people(50) + [["zz", "Zoë 日本", "tab\tand \"quote\"", "", ""]])
    first, matched = site.run()
    assert counts(first) == (51, 51, 0, 0, 0, 0) and not matched  # an empty table: no pre-check
    before = site.content()

    again, matched = site.run()
    assert counts(again) == (51, 0, 0, 51, 0, 0) and matched
    assert again["status"] == "success" and site.content() == before

    dry = site.iotask("-vv", "run", "users", "--dry-run", "--json")
    data = dry.json()[0]
    assert MATCHED in dry.err
    assert data["changes"] == {"insert": 0, "update": 0, "unchanged": 51, "remove": 0,
                               "owned": 51 if import_type == "sync" else 0,
                               "removal": "delete"}
    assert data["samples"] == {"insert": [], "update": [],
                               **({"remove": []} if import_type == "sync" else {})}
    assert site.content() == before


@pytest.mark.parametrize("import_type", ["insert", "sync"])
def test_the_precheck_reads_a_plain_file_columnar(iotask, engine, tmp_path, import_type,
                                                  monkeypatch):
    """A file the fast path can read is hashed from its arrow batches, and still tells a
    change made behind iotask's back; with IOTASK_EXACT_PATH=1 the exact reader hashes it."""
    site = Site(iotask, engine, tmp_path, import_type)
    write_csv(site.file, HEADER, people(40))
    site.run()
    before = site.content()
    with engine.begin() as conn:  # nothing remembered (MariaDB's first import keeps it)
        conn.execute(sa.text("UPDATE core_task_file SET fingerprint = NULL"))
    result = site.iotask("-vv", "run", "users", "--json")
    assert counts(result.json()["tasks"][0]) == (40, 0, 0, 40, 0, 0)
    assert MATCHED in result.err and "read columnar" in result.err
    assert site.content() == before

    site.change("u0007", firstname="first7")
    task, matched = site.run()
    assert not matched and counts(task) == (40, 0, 1, 39, 0, 0)
    assert site.content() == before

    monkeypatch.setenv("IOTASK_EXACT_PATH", "1")
    exact = site.iotask("-vv", "run", "users", "--json")
    assert MATCHED in exact.err and "read the exact way" in exact.err


@pytest.mark.parametrize("change, back", [
    ({"firstname": "Changed"}, "First3"),  # one value
    ({"firstname": "first3"}, "First3"),  # case only
    ({"firstname": "First3 "}, "First3"),  # a trailing space
    ({"lastname": None}, "Last 3"),
    ({"born": date(1963, 1, 5)}, None),
    ({"birth_year": None}, None),
])
def test_a_change_behind_iotasks_back_is_applied_by_the_next_run(iotask, engine, tmp_path,
                                                                 change, back):
    site = Site(iotask, engine, tmp_path, "sync")
    write_csv(site.file, HEADER, people(20))
    site.run()
    before = site.content()
    site.change("u0003", **change)
    task, matched = site.run()
    assert not matched and counts(task) == (20, 0, 1, 19, 0, 0)
    assert site.content() == before
    assert site.run()[1]  # and now it matches again


def test_a_value_holding_the_unit_separator_is_never_matched(iotask, engine, tmp_path):
    """The file's "x<U+001F>y" then "z" and a DBA's "x" then "y<U+001F>z" make the same row
    text: the pre-check must step aside for a file holding U+001F, so the run puts the file's
    values back."""
    site = Site(iotask, engine, tmp_path, "sync")
    write_csv(site.file, HEADER, [["u1", "x\x1fy", "z", "", ""], *people(5)])
    site.run()
    before = site.content()
    site.change("u1", firstname="x", lastname="y\x1fz")
    task, matched = site.run()
    assert not matched and counts(task) == (6, 0, 1, 5, 0, 0)
    assert site.content() == before


def test_a_run_reflects_its_table_once(iotask, engine, tmp_path, monkeypatch):
    """The plan, the pre-check, the fast path and the exact path share one reflection."""
    site = Site(iotask, engine, tmp_path, "sync")
    write_csv(site.file, HEADER, people(20))
    site.run()
    site.change("u0003", firstname="changed")
    reflected: list[str] = []

    def seen(inspector, table, column_info) -> None:
        if table.name == "lms_user" and column_info["name"] == "userid":
            reflected.append(table.name)

    sa.event.listen(sa.Table, "column_reflect", seen)
    try:
        task, matched = site.run()  # pre-checked (seen content), then written: fast path
        assert not matched and counts(task) == (20, 0, 1, 19, 0, 0)
        assert reflected == ["lms_user"]
        reflected.clear()
        site.change("u0003", firstname="again")
        monkeypatch.setenv("IOTASK_EXACT_PATH", "1")
        task, matched = site.run()  # pre-checked, then written the exact way
    finally:
        sa.event.remove(sa.Table, "column_reflect", seen)
    assert not matched and counts(task) == (20, 0, 1, 19, 0, 0)
    assert reflected == ["lms_user"]


def test_null_against_an_empty_text_and_a_deleted_row_are_applied(iotask, engine, tmp_path):
    site = Site(iotask, engine, tmp_path, "sync")
    rows = people(10)
    rows[2][2] = ""  # an empty lastname: stored as ''
    write_csv(site.file, HEADER, rows)
    site.run()
    before = site.content()
    assert before[2][2] == ""

    site.change("u0002", lastname=None)
    task, matched = site.run()
    assert not matched and counts(task) == (10, 0, 1, 9, 0, 0) and site.content() == before

    with engine.begin() as conn:
        conn.execute(sa.delete(site.table).where(site.table.c.userid == "u0007"))
    task, matched = site.run()
    assert not matched and counts(task) == (10, 1, 0, 9, 0, 0)
    assert [row[:6] for row in site.content()] == [row[:6] for row in before]


def test_records_of_other_sources(iotask, engine, tmp_path):
    site = Site(iotask, engine, tmp_path, "sync")
    write_csv(site.file, HEADER, people(10))
    site.run()
    with engine.begin() as conn:  # another feed's record, not in this file: not this task's
        conn.execute(sa.insert(site.table).values(userid="other", firstname="O",
                                                  imported_from_connection="other-feed"))
    assert site.run()[1]

    site.change("u0004", imported_from_connection="other-feed")  # the file has it: counted
    task, matched = site.run()
    assert not matched and counts(task) == (10, 0, 0, 10, 0, 0)


def test_sync_with_deactivate(iotask, engine, tmp_path):
    site = Site(iotask, engine, tmp_path, "sync", remove="deactivate", status_column="active")
    write_csv(site.file, HEADER, people(20))
    site.run()
    write_csv(site.file, HEADER, people(19, start=1))
    task, matched = site.run()
    assert not matched and counts(task) == (19, 0, 0, 19, 1, 0)

    task, matched = site.run()  # the deactivated record is not this run's business
    assert matched and counts(task) == (19, 0, 0, 19, 0, 0)

    site.change("u0005", active=0)  # deactivated by hand: the file brings it back
    task, matched = site.run()
    assert not matched and counts(task) == (19, 0, 1, 18, 0, 0)

    write_csv(site.file, HEADER, people(20))  # the removed record returns
    task, matched = site.run()
    assert not matched and counts(task) == (20, 0, 1, 19, 0, 0)
    assert all(row[5] == 1 for row in site.content())


def test_a_file_with_a_row_error_takes_the_normal_path(iotask, engine, tmp_path):
    site = Site(iotask, engine, tmp_path, "insert")
    rows = people(30)
    write_csv(site.file, HEADER, rows)
    site.run()
    before = site.content()
    write_csv(site.file, HEADER, [*rows, ["u0100", "Bad", "Year", "2000-01-01", "not a year"]])
    for _ in range(2):  # new content: no pre-check; then the same content again: pre-checked
        task, matched = site.run(ok=False)
        assert not matched and counts(task) == (31, 0, 0, 30, 0, 1)
        assert task["status"] == "partial" and task["row_errors"] == [
            {"row": 32, "key": "userid=u0100", "column": "birth_year",
             "message": "column 'birth_year': 'not a year' is not a whole number"}]

    write_csv(site.file, HEADER, [*rows, ["u0101", "Short", "Row"]])
    for _ in range(2):
        task, matched = site.run(ok=False)
        assert not matched and counts(task) == (31, 0, 0, 30, 0, 1)
        assert task["row_errors"] == [{"row": 32, "key": None, "column": None,
                                       "message": "expected 5 fields, found 3"}]
    assert site.content() == before


def test_a_repeated_row_is_still_a_duplicate_key(iotask, engine, tmp_path):
    site = Site(iotask, engine, tmp_path, "insert")
    rows = people(30)
    write_csv(site.file, HEADER, rows)
    site.run()
    write_csv(site.file, HEADER, [*rows, rows[4]])
    for _ in range(2):
        task, matched = site.run(ok=False)
        assert not matched and counts(task) == (31, 0, 0, 30, 0, 1)
        assert task["row_errors"] == [{"row": 32, "key": "userid=u0004", "column": "userid",
                                       "message": "duplicate key userid=u0004: also on line 6"}]


def test_new_content_is_not_pre_checked_then_the_same_content_is(iotask, engine, tmp_path):
    site = Site(iotask, engine, tmp_path, "sync")
    rows = people(40)
    write_csv(site.file, HEADER, rows)
    site.run()
    write_csv(site.file, HEADER, rows[::-1])  # the same rows, other bytes: most likely a change
    task, matched = site.run()
    assert not matched and counts(task) == (40, 0, 0, 40, 0, 0)
    task, matched = site.run()  # this content was imported before: pre-checked
    assert matched and counts(task) == (40, 0, 0, 40, 0, 0)


REMEMBERED = "the fingerprint of its content is remembered"


def fingerprints(engine: sa.Engine) -> list[str | None]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT fingerprint FROM core_task_file ORDER BY id"))
                    .scalars())


def test_a_remembered_fingerprint_spares_reading_the_file(iotask, engine, tmp_path, backend):
    """The file side of a pre-check is kept with the import of its content (MariaDB: computed
    while the first import loads; PostgreSQL: by the first pre-check; never on SQLite, whose
    hash is keyed per process) and used by the next pre-check of the same content, against a
    fresh fingerprint of the table: a change behind iotask's back is still applied."""
    site = Site(iotask, engine, tmp_path, "sync")
    write_csv(site.file, HEADER, people(30))
    site.run()
    first = fingerprints(engine)[-1]
    assert (first is not None) == (backend == "mariadb")
    task, matched = site.run()
    assert matched and counts(task) == (30, 0, 0, 30, 0, 0)
    remembered = fingerprints(engine)[-1]
    if backend == "sqlite":
        assert remembered is None
        return
    assert remembered is not None and remembered.endswith(" 30:" + remembered[-16:])
    assert first in (None, remembered)
    result = site.iotask("-vv", "run", "users", "--json")
    assert REMEMBERED in result.err and MATCHED in result.err
    assert counts(result.json()["tasks"][0]) == (30, 0, 0, 30, 0, 0)
    assert fingerprints(engine)[-1] == remembered  # kept again, as the latest of this content

    before = site.content()
    site.change("u0004", lastname="Changed")
    result = site.iotask("-vv", "run", "users", "--json")
    assert REMEMBERED in result.err and MATCHED not in result.err
    assert counts(result.json()["tasks"][0]) == (30, 0, 1, 29, 0, 0)
    assert site.content() == before

    # another way of reading the same bytes is another key: computed again, then kept
    iotask("connection", "edit", OWNER, "--set", "skipinitialspace=true")
    result = site.iotask("-vv", "run", "users", "--json")
    assert REMEMBERED not in result.err and MATCHED in result.err
    assert fingerprints(engine)[-1] not in (None, remembered)

    with engine.begin() as conn:  # a hand edit that is no fingerprint: computed as if none
        conn.execute(sa.text("UPDATE core_task_file SET fingerprint = :bad"),
                     {"bad": fingerprints(engine)[-1].split()[0] + " 30:nonsense"})
    result = site.iotask("-vv", "run", "users", "--json")
    assert REMEMBERED not in result.err and MATCHED in result.err


def test_a_file_written_after_its_sha256_was_taken_is_not_remembered(tmp_path):
    from iotask.connectors import columnar

    path = tmp_path / "users.csv"
    write_csv(path, HEADER, people(3))
    state = os.stat(path)
    file = columnar.CsvFile(path, "users.csv", ",", '"', "utf-8", True, None, False, 1 << 20,
                            "0" * 64, columnar._state(state))
    assert file.unchanged()
    os.utime(path, ns=(state.st_atime_ns, state.st_mtime_ns))  # even with its mtime put back
    with open(path, "r+b") as raw:
        raw.write(b"u")
    os.utime(path, ns=(state.st_atime_ns, state.st_mtime_ns))
    assert not file.unchanged()
    assert not replace(file, state=None).unchanged()


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_a_bucketed_diff_remembers_the_file_it_hashed(iotask, engine, tmp_path):
    site = Site(iotask, engine, tmp_path, "sync")
    rows = people(12_000)
    write_csv(site.file, HEADER, rows)
    site.run()
    rows[5][1] = "Changed"
    write_csv(site.file, HEADER, rows[:-3])  # new content: diffed by buckets, not pre-checked
    result = site.iotask("-vv", "run", "users", "--json")
    assert counts(result.json()["tasks"][0]) == (11_997, 0, 1, 11_996, 3, 0)
    assert fingerprints(engine)[-1].endswith(" 11997:" + fingerprints(engine)[-1][-16:])
    result = site.iotask("-vv", "run", "users", "--json")
    assert REMEMBERED in result.err and MATCHED in result.err
