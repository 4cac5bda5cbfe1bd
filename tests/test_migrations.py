"""The migrations build the schema the models describe, on all three databases."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import assert_user_error, run_cli

from iotask import db
from iotask.models import metadata

CORE_TABLES = {"core_connector", "core_connection", "core_task", "core_task_run",
               "core_task_run_error"}


def test_models_and_migrations_agree(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "compare_server_default": False})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_upgrade_creates_docebo_tables_and_seeds_connectors(engine):
    inspector = sa.inspect(engine)
    assert CORE_TABLES <= set(inspector.get_table_names())
    task_columns = {c["name"] for c in inspector.get_columns("core_task")}
    assert {"name", "description", "conn_source", "conn_destination", "schedule_type",
            "schedule", "import_type", "map", "last_execution", "sequence"} <= task_columns
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT type, file, class FROM core_connector ORDER BY type")).all()
    assert [tuple(r) for r in rows] == [
        ("csv", "iotask.connectors.csv", "CsvConnector"),
        ("forma-courses", "iotask.connectors.forma_courses", "FormaCoursesConnector"),
        ("forma-enrollments", "iotask.connectors.forma_enrollments", "FormaEnrollmentsConnector"),
        ("forma-lms", "iotask.connectors.forma_lms", "FormaLmsConnector"),
        ("forma-merges", "iotask.connectors.forma_merges", "FormaMergesConnector"),
        ("forma-orgchart", "iotask.connectors.forma_orgchart", "FormaOrgChartConnector"),
        ("forma-users", "iotask.connectors.forma_users", "FormaUsersConnector"),
        ("ims-enterprise", "iotask.connectors.ims_enterprise", "ImsEnterpriseConnector"),
        ("sql", "iotask.connectors.sql", "SqlConnector"),
        ("xml", "iotask.connectors.xml", "XmlConnector")]


def test_a_forma_connector_registered_by_hand_keeps_its_row(db_url):
    engine = db.make_engine(db_url)
    command.upgrade(db.alembic_config(engine), "0007")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO core_connector (type, file, class) VALUES "
                             "('forma-users', 'site.users', 'SiteUsers')"))
    db.upgrade(engine)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT type, file FROM core_connector")).all())
    engine.dispose()
    assert rows["forma-users"] == "site.users"
    assert rows["forma-orgchart"] == "iotask.connectors.forma_orgchart"


def test_downgrade_and_upgrade_again(engine):
    command.downgrade(db.alembic_config(engine), "base")
    assert not (CORE_TABLES & set(sa.inspect(engine).get_table_names()))
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()


def test_db_upgrade_command_and_current(db_url):
    before = run_cli("--db", db_url, "db", "current", "--json")
    assert before.code == 0 and before.json()["current"] is None
    assert run_cli("--db", db_url, "db", "upgrade").code == 0
    again = run_cli("--db", db_url, "db", "upgrade")  # idempotent, and silent without -v
    assert again.code == 0 and again.out == ""
    after = run_cli("--db", db_url, "db", "current", "--json").json()
    assert after["current"] == after["head"] and after["up_to_date"]


def test_unmigrated_database_is_one_line_with_the_fix(db_url):
    result = run_cli("--db", db_url, "task", "list")
    assert_user_error(result, "iotask db upgrade")


def test_database_at_an_unknown_revision(engine):
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    result = run_cli("--db", engine.url.render_as_string(hide_password=False), "task", "list")
    assert_user_error(result, "ffff", "newer than this iotask")


def test_alembic_ini_works_like_db_upgrade(tmp_path):
    root = Path(__file__).resolve().parent.parent
    target = tmp_path / "via-alembic.db"
    env = {**os.environ, "IOTASK_DATABASE_URL": f"sqlite:///{target}"}
    subprocess.run([sys.executable, "-m", "alembic", "-c", str(root / "alembic.ini"),
                    "upgrade", "head"], check=True, env=env, cwd=tmp_path,
                   capture_output=True)
    result = run_cli("--db", f"sqlite:///{target}", "db", "current", "--json")
    assert result.json()["up_to_date"] is True


def test_upgrade_moves_builtin_connectors_into_the_iotask_namespace(db_url, monkeypatch,
                                                                     tmp_path):
    """A database created before 0004 names connectors.csv; after the upgrade every built-in row
    names an importable iotask.connectors module, and a third-party connector registered before
    the upgrade keeps its module and still runs."""
    engine = db.make_engine(db_url)
    command.upgrade(db.alembic_config(engine), "0003")
    with engine.begin() as conn:
        assert dict(conn.execute(sa.text("SELECT type, file FROM core_connector")).all()) == {
            "csv": "connectors.csv", "sql": "connectors.sql"}
        conn.execute(sa.text("INSERT INTO core_connector (type, file, class) VALUES "
                             "('test-source', 'sample_source', 'SampleSource'), "
                             "('test-ledger', 'sample_ledger', 'SampleLedger')"))
    db.upgrade(engine)
    with engine.connect() as conn:
        files = dict(conn.execute(sa.text("SELECT type, file FROM core_connector")).all())
    engine.dispose()
    assert files == {"csv": "iotask.connectors.csv", "sql": "iotask.connectors.sql",
                     "test-source": "sample_source", "test-ledger": "sample_ledger",
                     **{f"forma-{kind}": f"iotask.connectors.forma_{kind}"
                        for kind in ("users", "orgchart", "courses", "enrollments", "lms",
                                     "merges")},
                     "xml": "iotask.connectors.xml",
                     "ims-enterprise": "iotask.connectors.ims_enterprise"}
    for module in files.values():
        importlib.import_module(module)
    monkeypatch.chdir(tmp_path)
    for args in (("connection", "add", "src", "--type", "test-source", "--set", "rows=4"),
                 ("connection", "add", "ledger", "--type", "test-ledger"),
                 ("task", "add", "t", "--source", "src", "--destination", "ledger")):
        assert run_cli("--db", db_url, *args).code == 0
    ran = run_cli("--db", db_url, "run", "t", "--json")
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["tasks"][0]["counts"]["read"] == 4


def test_downgrade_restores_the_old_module_names(engine):
    command.downgrade(db.alembic_config(engine), "0003")
    with engine.connect() as conn:
        files = dict(conn.execute(sa.text("SELECT type, file FROM core_connector")).all())
    assert files == {"csv": "connectors.csv", "sql": "connectors.sql"}
