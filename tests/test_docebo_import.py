"""`iotask docebo import-tasks`: a Docebo 3.6 / forma site's I/O tasks adopted.

The site's tables are built here, in a second database (a SQLite file, or MariaDB), with rows as
Docebo 3.6 writes them (URL-encoded PHP serialize(), from tests/phpwriter.py) and as forma
writes them (URL-encoded JSON); the iotask database is the backend under test.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from conftest import _fresh_server_database, aged, assert_user_error, run_cli
from phpwriter import serialize, stored, urlencode

from iotask import db as iotask_db
from iotask import docebo
from iotask.models import Connection, Connector, Task

PASSWORD = "Doc3bo-s3cret"
DDL = """
CREATE TABLE {p}connector (type varchar(25) NOT NULL PRIMARY KEY, file varchar(255) NOT NULL
  DEFAULT '', class varchar(50) NOT NULL DEFAULT '');
CREATE TABLE {p}connection (name varchar(50) NOT NULL PRIMARY KEY, description varchar(255)
  NOT NULL DEFAULT '', type varchar(50) NOT NULL DEFAULT '', params text NOT NULL);
CREATE TABLE {p}task (name varchar(50) NOT NULL PRIMARY KEY, description varchar(255) NOT NULL
  DEFAULT '', conn_source varchar(50) NOT NULL DEFAULT '', conn_destination varchar(50) NOT NULL
  DEFAULT '', schedule_type {enum} NOT NULL DEFAULT 'at', schedule varchar(50) NOT NULL
  DEFAULT '', import_type varchar(50) NOT NULL DEFAULT '', map text NOT NULL,
  last_execution datetime NULL, sequence {int} NOT NULL DEFAULT 0)
"""

CONNECTORS = [
    ("cvs-connector", "connector.csv.php", "DoceboConnectorCsv"),
    ("docebo-users", "connector.docebousers.php", "DoceboConnectorDoceboUsers"),
    ("docebo-courses", "connector.docebocourses.php", "DoceboConnectorDoceboCourses"),
    ("docebo-courseusers", "connector.docebocourseusers.php", "DoceboConnectorDoceboCourseUsers"),
    ("docebo-orgchart", "connector.doceboorgchart.php", "DoceboConnectorDoceboOrgChart"),
    ("docebo-admin", "connector.doceboadmin.php", "DoceboConnectorDoceboAdmin"),
]


def csv_params(name, pattern, readwrite, delimiter, columns, header="1"):
    return {"name": name, "description": "", "filepattern": pattern, "subpattern": "",
            "readwrite": readwrite, "first_row_header": header, "field_delimiter": delimiter,
            "field_enclosure": '"', "field_def": columns}


CONNECTIONS = [  # name, type, params as stored
    ("hr users csv", "cvs-connector",
     stored(csv_params("hr users csv", "users*.csv", "1", ";", ["userid", "first", "last"]))),
    ("users out", "cvs-connector",
     stored(csv_params("users out", "export.csv", "2", ",", ["userid", "name"]))),
    ("lms users", "docebo-users", stored({
        "name": "lms users", "description": "", "readwrite": 2, "sendnotify": "1",
        "canceled": "1", "org_chart_destination": "0", "pwd_force_change_policy": "by_setting",
        "use_default_password": "0", "default_password": "Welcome-123"})),
    ("lms courses", "docebo-courses", stored({"name": "lms courses", "on_delete": "2",
                                              "sendnotify": "2", "std_menu_to_assign": "3"})),
    ("lms enrollments", "docebo-courseusers", stored({"on_delete": "2", "sendnotify": "2"})),
    ("lms orgchart", "docebo-orgchart", stored({"name": "lms orgchart"})),
    ("admins", "docebo-admin", stored({"name": "admins"})),
    # forma since 2016: URL-encoded JSON
    ("forma courses csv", "cvs-connector", urlencode(json.dumps(
        csv_params("forma courses csv", "courses.csv", "1", ",", ["code", "title"])))),
    ("forma users", "forma-users", urlencode(json.dumps({"canceled": "2", "readwrite": "2"}))),
]

USERS_MAP = [{"map": "userid", "pk": "1"}, {"map": "firstname"}, {"map": "ignorefield"}]
COPY_MAP = [{"map": "userid", "pk": "1"}, {"map": "name"}, {"map": "ignorefield"}]
TASKS = [  # name, description, source, destination, schedule_type, schedule, import, map,
    #        last_execution (the PHP server's time: Europe/Rome here), sequence
    ("import users", "HR feed, nightly", "hr users csv", "lms users", "at", "02:30 hour", "2",
     stored(USERS_MAP), "2024-03-01 02:30:05", 1),
    ("copy users", "", "hr users csv", "users out", "", "6 hour", "1", stored(COPY_MAP), None, 2),
    ("forma courses", "forma style", "forma courses csv", "lms courses", "any", "1 day", "1",
     urlencode(json.dumps({"0": {"map": "code", "pk": "1"}, "1": {"map": "name"}})),
     "2024-06-30 23:15:00", 3),
    ("enrol", "", "hr users csv", "lms enrollments", "any", "1 day", "2",
     stored([{"map": "userid", "pk": "1"}, {"map": "code", "pk": "1"}, {"map": "ignorefield"}]),
     None, 4),
    ("admin task", "", "hr users csv", "admins", "any", "1 day", "1", stored(USERS_MAP), None, 5),
    ("php object", "", "hr users csv", "lms users", "any", "1 day", "1",
     urlencode('O:8:"stdClass":1:{s:3:"map";s:6:"userid";}'), None, 6),
    ("bad json", "", "hr users csv", "lms users", "any", "1 day", "1", "%7Bnot+json", None, 7),
    ("huge length", "", "hr users csv", "lms users", "any", "1 day", "1",
     urlencode('a:1:{i:0;s:999999999:"x";}'), None, 8),
    ("deep", "", "hr users csv", "lms users", "any", "1 day", "1",
     urlencode("a:1:{i:0;" * 50 + "N;" + "}" * 50), None, 9),
    ("not utf8", "", "hr users csv", "lms users", "any", "1 day", "1",
     urlencode(serialize([{"map": "userid"}])).replace("userid", "user%E9d"), None, 10),
    ("bad schedule", "", "hr users csv", "lms users", "at", "25:99 hour", "1",
     stored(USERS_MAP), None, 11),
    ("bad import type", "", "hr users csv", "lms users", "any", "1 day", "3",
     stored(USERS_MAP), None, 12),
    ("backwards", "", "users out", "lms users", "any", "1 day", "1", stored(USERS_MAP), None, 13),
]
SKIPPED_TASKS = {
    "admin task": "its destination connection 'admins' was not adopted",
    "php object": "a PHP object is not plain data and is refused",
    "bad json": "neither PHP-serialized nor valid JSON",
    "huge length": "declares 999,999,999 bytes",
    "deep": "nested more than 32 deep",
    "not utf8": "not valid utf-8",
    "bad schedule": "schedule at '25:99 hour'",
    "bad import type": "import type '3' is not 1",
    "backwards": "its source connection 'users out' is a csv connection for writing",
}


def build_site(url: str, prefix: str = "core_", connections=CONNECTIONS, tasks=TASKS) -> None:
    """The three Docebo tables with the rows above, as Docebo 3.6 / forma store them."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    mysql = engine.dialect.name in ("mysql", "mariadb")
    enum, int_ = ("enum('at','any')", "int(3)") if mysql else ("varchar(3)", "integer")
    with engine.begin() as conn:
        if mysql:  # Docebo ran without strict mode: 'interval' is stored as ''
            conn.exec_driver_sql("SET SESSION sql_mode = ''")
        for statement in DDL.format(p=prefix, enum=enum, int=int_).split(";"):
            conn.exec_driver_sql(statement + (" DEFAULT CHARSET=utf8" if mysql else ""))
        meta = sa.MetaData()
        table = {what: sa.Table(f"{prefix}{what}", meta, autoload_with=conn)
                 for what in ("connector", "connection", "task")}
        conn.execute(table["connector"].insert(), [
            {"type": t, "file": f, "class": c} for t, f, c in CONNECTORS])
        conn.execute(table["connection"].insert(), [
            {"name": n, "description": f"{n} (Docebo)", "type": t, "params": p}
            for n, t, p in connections])
        conn.execute(table["task"].insert(), [
            {"name": n, "description": d, "conn_source": s, "conn_destination": dest,
             "schedule_type": st, "schedule": sc, "import_type": it, "map": m,
             "last_execution": le and datetime.fromisoformat(le), "sequence": seq}
            for n, d, s, dest, st, sc, it, m, le, seq in tasks])
    engine.dispose()


def snapshot(url: str, prefix: str = "core_") -> list:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        rows = [list(conn.exec_driver_sql(f"SELECT * FROM {prefix}{what} ORDER BY 1"))
                for what in ("connector", "connection", "task")]
    engine.dispose()
    return rows


@pytest.fixture
def site(tmp_path) -> tuple[str, Path]:
    """A Docebo 3.6 site on a SQLite file, and its iofiles folder with one users file."""
    url = f"sqlite:///{tmp_path / 'docebo.db'}"
    build_site(url)
    files = tmp_path / "files" / "common" / "iofiles"
    files.mkdir(parents=True)
    (files / "users-2024.csv").write_text(
        "userid;first;last\njdoe;John;Doe\nmrossi;Mario;Rossi\n", encoding="utf-8")
    aged(files / "users-2024.csv")
    return url, files


def rows_of(engine: sa.Engine) -> tuple[dict, dict]:
    with sa.orm.Session(engine) as session:
        conns = {c.name: (c.type, c.description, json.loads(c.params))
                 for c in session.scalars(sa.select(Connection))}
        tasks = {t.name: t for t in session.scalars(sa.select(Task))}
        session.expunge_all()
    return conns, tasks


def test_a_docebo_site_is_adopted(iotask, engine, site, tmp_path):
    url, files = site
    before = snapshot(url)
    digest = hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest()

    dry = iotask("docebo", "import-tasks", "--from", url, "--files", str(files), "--dry-run",
                 ok=False)
    assert dry.code == 1, dry.err
    assert all(line.startswith("would be: ") for line in dry.out.splitlines())
    assert rows_of(engine) == ({}, {})

    result = iotask("docebo", "import-tasks", "--from", url, "--files", str(files), ok=False)
    assert result.code == 1 and result.err == ""
    lines = result.out.splitlines()
    assert [line.removeprefix("would be: ") for line in dry.out.splitlines()] == lines
    assert len(lines) == len(CONNECTIONS) + len(TASKS)
    by_name = {line.split(":")[0]: line for line in lines}
    assert by_name["connection hr users csv"] == "connection hr users csv: created (csv)"
    assert by_name["connection lms users"] == (
        "connection lms users: created (forma-users); not mapped: sendnotify (iotask sends no "
        "e-mail to the people it imports; run e-mails go to the task's --email), "
        "org_chart_destination (no iotask setting: org units come from the rows), "
        "pwd_force_change_policy (password policy is not an iotask setting), "
        "use_default_password (password policy is not an iotask setting), default_password "
        "(password policy is not an iotask setting; the password is not copied)")
    assert "Welcome-123" not in result.out
    assert by_name["connection admins"] == ("connection admins: skipped: connector type "
                                            "'docebo-admin' (file connector.doceboadmin.php) "
                                            "has no iotask equivalent")
    assert by_name["task import users"] == "task import users: created (hr users csv -> lms users)"
    for name, reason in SKIPPED_TASKS.items():
        line = by_name[f"task {name}"]
        assert line.startswith(f"task {name}: skipped: ") and reason in line, line
    for name in ("copy users", "forma courses", "enrol"):
        assert ": created (" in by_name[f"task {name}"]

    conns, tasks = rows_of(engine)
    folder = quote(str(files.absolute()))
    assert conns["hr users csv"] == ("csv", "hr users csv (Docebo)", {
        "url": f"file:{folder}/users*.csv", "consume": "rename", "delimiter": ";",
        "quotechar": '"', "header": True, "columns": ["userid", "first", "last"],
        "encoding": "utf-8", "formulas": True})
    assert conns["users out"][2]["url"] == f"file:{folder}/{{date:%Y%m%d}}export.csv"
    assert conns["users out"][2]["columns"] == ["userid", "name"]
    assert conns["users out"][2]["header"] is False  # Docebo never wrote one
    assert by_name["connection users out"] == (
        "connection users out: created (csv); not mapped: first_row_header (Docebo wrote no "
        "header line to a file it wrote: neither does iotask)")
    assert conns["lms users"] == ("forma-users", "lms users (Docebo)",
                                  {"database": url, "remove": "suspend"})
    assert conns["lms courses"][2] == {"database": url, "remove": "delete"}
    assert conns["lms enrollments"][2] == {"database": url, "remove": "unsubscribe"}
    assert conns["lms orgchart"] == ("forma-orgchart", "lms orgchart (Docebo)",
                                     {"database": url, "language": "english"})
    assert conns["forma users"][2] == {"database": url, "remove": "delete"}
    assert conns["forma courses csv"][2]["url"] == f"file:{folder}/courses.csv"
    assert "admins" not in conns

    assert set(tasks) == {"import users", "copy users", "forma courses", "enrol"}
    users = tasks["import users"]
    assert (users.description, users.conn_source, users.conn_destination) == (
        "HR feed, nightly", "hr users csv", "lms users")
    assert (users.schedule_type, users.schedule, users.import_type, users.sequence) == (
        "at", "02:30", "sync", 1)
    assert json.loads(users.map) == USERS_MAP
    assert users.last_execution == datetime(2024, 3, 1, 1, 30, 5)  # 02:30:05 CET
    copy = tasks["copy users"]
    assert (copy.schedule_type, copy.schedule, copy.import_type, copy.sequence,
            copy.last_execution) == ("any", "6 hour", "insert", 2, None)
    assert json.loads(copy.map) == COPY_MAP
    courses = tasks["forma courses"]
    assert (courses.schedule_type, courses.schedule, courses.sequence) == ("any", "1 day", 3)
    assert json.loads(courses.map) == [{"map": "code", "pk": "1"}, {"map": "name"}]
    assert courses.last_execution == datetime(2024, 6, 30, 21, 15)  # 23:15 CEST
    assert json.loads(tasks["enrol"].map)[1] == {"map": "code", "pk": "1"}

    again = iotask("docebo", "import-tasks", "--from", url, "--files", str(files), ok=False)
    adopted = [line for line in again.out.splitlines() if ": skipped: " not in line]
    assert len(adopted) == 8 + 4
    assert all(": unchanged" in line for line in adopted), again.out
    assert rows_of(engine)[1]["import users"].last_execution == users.last_execution

    assert snapshot(url) == before
    assert hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest() == digest

    run = iotask("run", "copy users")
    assert run.code == 0
    written = list(files.glob("*export.csv"))
    today = datetime.now(ZoneInfo("Europe/Rome"))  # the run's zone (the iotask fixture's)
    assert [path.name for path in written] == [f"{today:%Y%m%d}export.csv"]
    assert written[0].read_text(encoding="utf-8").splitlines() == ["jdoe,John", "mrossi,Mario"]
    assert (files / "users-2024.csv.imported").exists()


def test_json_output_and_an_all_adopted_site_exits_0(iotask, engine, tmp_path):
    url = f"sqlite:///{tmp_path / 'forma.db'}"
    build_site(url, connections=CONNECTIONS[:2],
               tasks=[t for t in TASKS if t[0] == "copy users"])
    files = tmp_path / "iofiles"
    files.mkdir()
    result = iotask("docebo", "import-tasks", "--from", url, "--files", str(files), "--json")
    assert result.json() == {"dry_run": False, "items": [
        {"kind": "connection", "name": "hr users csv", "outcome": "created", "detail": "csv",
         "not_mapped": []},
        {"kind": "connection", "name": "users out", "outcome": "created", "detail": "csv",
         "not_mapped": ["first_row_header (Docebo wrote no header line to a file it wrote: "
                        "neither does iotask)"]},
        {"kind": "task", "name": "copy users", "outcome": "created",
         "detail": "hr users csv -> users out", "not_mapped": []}]}


def test_unregistered_forma_types_and_csv_without_files_are_explained(iotask, engine, site):
    url, _ = site
    with engine.begin() as conn:  # a database whose forma-* connectors were unregistered
        conn.execute(Connector.__table__.delete().where(Connector.type.like("forma-%")))
    result = iotask("docebo", "import-tasks", "--from", url, ok=False)
    assert result.code == 1
    lines = result.out.splitlines()
    assert ("connection lms users: skipped: connector type forma-users is not registered: run "
            "`iotask db upgrade` (or `iotask connector register`)") in lines
    assert ("connection hr users csv: skipped: a csv connection needs --files DIR (the site's "
            "files/common/iofiles/ folder) to know where its files are") in lines
    assert ("task import users: skipped: its source connection 'hr users csv' was not "
            "adopted") in lines
    assert rows_of(engine) == ({}, {})


def test_a_differing_task_is_skipped_unless_update(iotask, engine, site):
    url, files = site
    iotask("docebo", "import-tasks", "--from", url, "--files", str(files), ok=False)
    iotask("task", "edit", "copy users", "--every", "2 hour")
    iotask("connection", "edit", "users out", "--description", "mine")
    kept = iotask("docebo", "import-tasks", "--from", url, "--files", str(files), ok=False)
    assert ("connection users out: skipped: an iotask connection of that name has other "
            "description: --update replaces them") in kept.out.splitlines()
    assert "task copy users: skipped: its destination connection 'users out' was not adopted" \
        in kept.out.splitlines()
    done = iotask("docebo", "import-tasks", "--from", url, "--files", str(files), "--update",
                  ok=False)
    lines = done.out.splitlines()
    assert any(line.startswith("connection users out: updated (description); not mapped: ")
               for line in lines)
    assert "task copy users: updated (schedule)" in lines
    assert rows_of(engine)[1]["copy users"].schedule == "6 hour"


def test_bad_from_and_missing_tables_are_one_line_errors(iotask, migrated_url, tmp_path):
    assert_user_error(iotask("docebo", "import-tasks", "--from", f"sqlite:///{tmp_path}/no.db",
                             ok=False), "no such SQLite database file")
    assert not (tmp_path / "no.db").exists()
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    sa.create_engine(empty).connect().close()
    assert_user_error(iotask("docebo", "import-tasks", "--from", empty, ok=False),
                      "has no table core_connector", "--prefix")
    assert_user_error(iotask("docebo", "import-tasks", "--from", "nonsense://x", ok=False),
                      "--from")
    assert_user_error(iotask("docebo", "import-tasks", "--from", migrated_url, ok=False),
                      "iotask's own database")
    assert_user_error(iotask("docebo", "import-tasks", "--from", empty, "--prefix", "a;b",
                             ok=False), "--prefix")


@pytest.fixture
def mariadb_site() -> Iterator[str]:
    """A Docebo site on MariaDB (tables prefixed docebo_core_), reached as a user with a
    password that must never be printed."""
    for base in _fresh_server_database("mariadb"):
        user = f"docebo_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(base, poolclass=sa.pool.NullPool)
        database = iotask_db.parse_url(base).database
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{PASSWORD}'")
            conn.exec_driver_sql(f"GRANT ALL ON {database}.* TO '{user}'@'localhost'")
        build_site(base, prefix="docebo_core_")
        parsed = iotask_db.parse_url(base)
        try:
            yield parsed.set(username=user, password=PASSWORD).render_as_string(
                hide_password=False)
        finally:
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP USER '{user}'@'localhost'")
            admin.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_mariadb_site_with_a_prefix(iotask, engine, mariadb_site, tmp_path):
    files = tmp_path / "iofiles"
    files.mkdir()
    before = snapshot(mariadb_site, "docebo_core_")
    result = iotask("docebo", "import-tasks", "--from", mariadb_site, "--prefix",
                    "docebo_core_", "--files", str(files), ok=False)
    assert result.code == 1
    assert PASSWORD not in result.out + result.err
    conns, tasks = rows_of(engine)
    assert conns["lms users"][2] == {"database": mariadb_site, "prefix": "docebo_",
                                     "remove": "suspend"}
    assert tasks["import users"].last_execution == datetime(2024, 3, 1, 1, 30, 5)
    assert (tasks["copy users"].schedule_type, tasks["copy users"].schedule) == ("any", "6 hour")
    assert set(tasks) == {"import users", "copy users", "forma courses", "enrol"}
    shown = iotask("connection", "show", "lms users")
    assert PASSWORD not in shown.out
    assert snapshot(mariadb_site, "docebo_core_") == before


def test_a_file_that_is_not_a_database_is_one_line(iotask, tmp_path):
    (tmp_path / "notes.db").write_text("not a database, just text\n" * 100)
    assert_user_error(iotask("docebo", "import-tasks", "--from",
                             f"sqlite:///{tmp_path / 'notes.db'}", ok=False), "cannot read")


def plan(params, files=Path("/srv/iofiles"), type_name="cvs-connector"):
    return docebo.plan_connection({"type": type_name, "params": stored(params)}, {}, "u",
                                  "core_", files)


def test_csv_plans(tmp_path):
    reader = plan({"filepattern": "*.csv", "readwrite": "1", "field_delimiter": "",
                   "field_enclosure": "", "first_row_header": "0", "field_def": ["a", "b"],
                   "subpattern": "hr", "mystery": "1"})
    assert reader.params == {"url": "file:/srv/iofiles/hr/*.csv", "consume": "rename",
                             "delimiter": ",", "quotechar": '"', "header": False,
                             "columns": ["a", "b"]}
    assert reader.not_mapped == [
        "field_delimiter (empty: iotask uses ',')", "field_enclosure (empty: iotask uses '\"')",
        "mystery (csv has no such setting)",
        "Docebo's skipping of processed* files (filepattern *.csv also matches the ones it "
        "left: move them away before the first run)"]
    for params, reason in [
        ({"filepattern": "out*.csv", "readwrite": "2", "field_def": ["a"]}, "not a glob"),
        ({"filepattern": "out.csv", "readwrite": "2"}, "field_def names: it has none"),
        ({"filepattern": "a.csv", "field_delimiter": ";;"}, "must be one character"),
        ({"filepattern": "a.csv", "subpattern": "../etc"}, "inside the iofiles folder"),
        ({"filepattern": "/etc/passwd"}, "inside the iofiles folder"),
        ({"filepattern": "a.csv", "readwrite": "3"}, "is not 1 (read) or 2 (write)"),
        ({"filepattern": ""}, "filepattern is empty"),
    ]:
        with pytest.raises(docebo.Skip) as caught:
            plan(params)
        assert reason in str(caught.value), params
    with pytest.raises(docebo.Skip, match="needs --files DIR"):
        plan({"filepattern": "a.csv"}, files=None)


def test_lms_plans_and_types_known_by_their_file():
    users = plan({"canceled": "7", "readwrite": "2"}, type_name="forma-users")
    assert (users.type_name, users.params) == ("forma-users", {"database": "u"})
    assert users.not_mapped == ["canceled ('7' is not 1 or 2)"]
    renamed = docebo.plan_connection({"type": "my-users", "params": ""},
                                     {"my-users": "connector.docebousers.php"}, "u", "x_core_",
                                     None)
    assert (renamed.type_name, renamed.params) == ("forma-users", {"database": "u",
                                                                   "prefix": "x_"})
    odd = docebo.plan_connection({"type": "my-users", "params": ""},
                                 {"my-users": "connector.docebousers.php"}, "u", "fw_", None)
    assert "prefix" not in odd.params and "fw_" in odd.not_mapped[0]
    with pytest.raises(docebo.Skip, match="params is not a key: value array"):
        docebo.plan_connection({"type": "docebo-users", "params": stored(["a"])}, {}, "u",
                               "core_", None)


@pytest.mark.parametrize(("text", "value"), [
    (stored({"a": "b c+d%"}), {"a": "b c+d%"}),
    (serialize({"a": "b c+d%"}), {"a": "b c+d%"}),  # stored without urlencode
    (urlencode(json.dumps({"a": "é"})), {"a": "é"}),
    ('{"a": 1}', {"a": 1}),
    ("", None),
    (stored({"a": "é"}).encode(), {"a": "é"}),  # a BLOB column
])
def test_decode(text, value):
    assert docebo.decode(text, "map") == value


def test_adopted_lms_tasks_run_against_the_site(iotask, site):
    """The site's users and courses tasks, adopted, import into the site's own forma tables."""
    url, files = site
    assert run_cli("--db", url, "lms", "init").code == 0  # forma's tables beside its task tables
    (files / "courses.csv").write_text("code,title\nSAF-1,Safety\nGDPR,Data protection\n",
                                       encoding="utf-8")
    aged(files / "courses.csv")
    iotask("docebo", "import-tasks", "--from", url, "--files", str(files), ok=False)
    iotask("run", "import users")
    iotask("run", "forma courses")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        users = dict(conn.execute(sa.text("SELECT userid, firstname FROM core_user")).all())
        courses = conn.execute(sa.text(
            "SELECT code, name, imported_from_connection FROM learning_course ORDER BY code"
        )).all()
    engine.dispose()
    assert users == {"/jdoe": "John", "/mrossi": "Mario"}
    assert [tuple(row) for row in courses] == [("GDPR", "Data protection", "forma courses csv"),
                                               ("SAF-1", "Safety", "forma courses csv")]
