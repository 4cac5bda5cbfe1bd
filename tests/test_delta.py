"""The bucketed diff (connectors/delta.py) on MariaDB, called directly: which rows it stages,
that unchanged content stages none, and that a file changed between its two reads is refused.
The CLI's results with it are compared with the exact path's in test_fast_path_differential."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import sqlalchemy as sa
from iotask.connectors import delta, fingerprint
from iotask.connectors.columnar import Unsupported

ROWS = 20_000


def _rows(count: int, changed: set[int] = frozenset(), gone: set[int] = frozenset(),
          new: int = 0) -> bytes:
    lines = ["userid,name,n"]
    for number in range(count):
        if number not in gone:
            lines.append(f"u{number:06d},{'Renamed' if number in changed else 'Name'} {number},"
                         f"{number}")
    lines += [f"n{number:06d},New {number},{number}" for number in range(new)]
    return ("\n".join(lines) + "\n").encode()


def _batches(path: Path):
    """The file's typed batches, of the rows a Select keeps."""
    def read(select):
        for batch in pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16),
                                    convert_options=pacsv.ConvertOptions(column_types={
                                        "userid": pa.string(), "name": pa.string(),
                                        "n": pa.int64()})):
            if select is not None:
                batch = batch.filter(select.keep(batch.select(sorted(select.columns))))
            yield batch
    return read


@pytest.fixture
def table(backend, db_url, tmp_path) -> tuple[sa.Engine, sa.Table, Path]:
    """A MariaDB table holding ROWS users, and the CSV file they came from."""
    engine = sa.create_engine(db_url, connect_args={"local_infile": True})
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE users (userid VARCHAR(20) NOT NULL PRIMARY KEY, "
                             "name VARCHAR(40) NOT NULL, n INTEGER NOT NULL)")
        conn.execute(sa.text("INSERT INTO users VALUES (:u, :m, :n)"),
                     [{"u": f"u{number:06d}", "m": f"Name {number}", "n": number}
                      for number in range(ROWS)])
    path = tmp_path / "users.csv"
    path.write_bytes(_rows(ROWS))
    yield engine, sa.Table("users", sa.MetaData(), autoload_with=engine), path
    engine.dispose()


def _diff(engine: sa.Engine, users: sa.Table, path: Path) -> delta.Delta:
    found = delta.diff(engine, users, ["userid", "name", "n"], 1, [], _batches(path), str(path))
    assert found is not None, "the bucketed diff did not apply"
    return found


def _keys(batches) -> set[str]:
    return {key for batch in batches for key in batch.column("userid").to_pylist()}


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_only_the_rows_of_dirty_buckets_are_staged(table):
    engine, users, path = table
    changed, gone = set(range(0, ROWS, 400)), set(range(7, ROWS, 400))
    path.write_bytes(_rows(ROWS, changed, gone, new=50))
    found = _diff(engine, users, path)
    assert (found.rows, found.owned) == (ROWS - len(gone) + 50, ROWS)
    staged = _keys(found.dirty_rows())
    wanted = {f"u{number:06d}" for number in changed} | {f"n{number:06d}" for number in range(50)}
    assert wanted <= staged
    assert len(staged) < ROWS // 4, "most buckets should be clean"
    with engine.connect() as conn:
        scoped = {key for (key,) in conn.execute(
            sa.select(users.c.userid).where(found.scope(conn, users)))}
    # every record the file no longer has is in a dirty bucket, so removal finds it there
    assert {f"u{number:06d}" for number in gone} <= scoped
    assert len(scoped) < ROWS // 4


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_the_same_rows_stage_nothing(table):
    engine, users, path = table
    path.write_bytes(_rows(ROWS).replace(b"\n", b"\r\n"))
    found = _diff(engine, users, path)
    assert len(found.dirty) == 0
    assert list(found.dirty_rows()) == []
    kinds = fingerprint.kinds(users, ["userid", "name", "n"], "mysql")
    with engine.connect() as conn:  # pass one hashed every row: the file's whole fingerprint
        assert fingerprint.Fingerprint(found.rows, found.total) == fingerprint.server(
            conn, users, kinds, [])
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(users)
                            .where(found.scope(conn, users))).scalar() == 0


@pytest.mark.parametrize("backend", ["mariadb"], indirect=True)
def test_a_file_changed_between_the_two_reads_is_refused(table):
    engine, users, path = table
    path.write_bytes(_rows(ROWS, changed={5}))
    found = _diff(engine, users, path)
    assert len(found.dirty) > 0
    data = path.read_bytes()
    path.write_bytes(data.replace(b"Renamed 5,", b"Ranamed 5,"))  # same size, another time
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(Unsupported, match="changed while it was read"):
        list(found.dirty_rows())
