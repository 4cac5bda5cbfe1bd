"""Start-up: `iotask --help` and a run-due that finds nothing due import only what they use, the
command table lists every command as the command itself would, and the migration check knows
the schema revisions without Alembic yet agrees with it."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import sqlalchemy as sa
from alembic.command import upgrade
from alembic.script import ScriptDirectory
from conftest import add_waiting_task, assert_user_error, run_cli, write_csv

import iotask.cli
from iotask import db
from iotask.cli import COMMANDS, cli

# Heavy or optional libraries no start-up path needs: Alembic migrates, the others belong to
# connectors, transports, the web console and the columnar fast path.
NEVER_AT_START = ("alembic", "pyarrow", "requests", "flask", "paramiko", "lxml", "argon2",
                  "waitress", "jinja2", "tabulate", "tqdm")
CONNECTOR_MODULES = ("iotask.connectors.csv", "iotask.connectors.sql",
                     "iotask.connectors.staging", "iotask.connectors.forma",
                     "iotask.connectors.transports")

# Runs the CLI as the console script does, then writes the modules it had loaded.
PROBE = """
import json, os, sys
from iotask.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
with open(os.environ["PROBE_MODULES"], "w") as out:
    json.dump(sorted(sys.modules), out)
"""


def loaded_by(tmp_path: Path, *args: str) -> tuple[set[str], str]:
    """The modules `iotask ARGS` imports in a fresh interpreter, and what it printed."""
    modules = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120,
                          env={**os.environ, "PROBE_MODULES": str(modules),
                               "IOTASK_TIMEZONE": "UTC"})
    assert "Traceback" not in done.stderr, done.stderr
    return set(json.loads(modules.read_text())), done.stdout


def roots(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_help_imports_no_database_library_and_no_command_module(tmp_path):
    modules, out = loaded_by(tmp_path, "--help")
    assert "run-due" in out and "Commands:" in out
    assert roots(modules) & {"sqlalchemy", *NEVER_AT_START} == set()
    assert {name for name in modules if name.startswith("iotask.cli.")} == {"iotask.cli.app"}


def test_run_due_and_status_with_nothing_due_import_only_what_they_use(iotask, migrated_url,
                                                                       tmp_path):
    add_waiting_task(iotask, tmp_path)
    modules, out = loaded_by(tmp_path, "--db", migrated_url, "run-due", "--json")
    report = json.loads(out)
    assert [(task["task"], task["executed"]) for task in report["tasks"]] == [("daily", False)]
    assert roots(modules) & set(NEVER_AT_START) == set()
    assert {name for name in modules if name.startswith(CONNECTOR_MODULES)} == set()
    status, out = loaded_by(tmp_path, "--db", migrated_url, "status")
    assert "daily" in out
    assert roots(status) & set(NEVER_AT_START) == {"tabulate"}  # status prints a table
    assert {name for name in status if name.startswith(CONNECTOR_MODULES)} == set()


def _top_level_commands() -> set[click.Command]:
    """Every click command the modules of iotask.cli define that is no group's subcommand."""
    found: set[click.Command] = set()
    for info in pkgutil.iter_modules(iotask.cli.__path__):
        module = importlib.import_module(f"iotask.cli.{info.name}")
        found |= {value for value in vars(module).values() if isinstance(value, click.Command)}
    subcommands = {sub for command in found if isinstance(command, click.Group)
                   for sub in command.commands.values()}
    return found - subcommands


def test_the_command_table_names_every_command_with_its_own_first_sentence():
    context = click.Context(cli)
    lazy_help = cli.get_help(context)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert command is not None and command.name == name
        own = command.get_short_help_str(10_000)
        assert click.Command(name, help=COMMANDS[name][1]).get_short_help_str(10_000) == own
    assert set(cli.commands.values()) == _top_level_commands()
    assert cli.get_help(context) == lazy_help  # the same listing with every module loaded


def test_every_command_takes_the_global_options_after_its_name(migrated_url):
    result = run_cli("status", "--db", migrated_url, "-v")
    assert result.code == 0, result.err


def test_the_revisions_known_without_alembic_are_alembics():
    scripts = ScriptDirectory.from_config(db.alembic_config())
    assert db.known_revisions() == tuple(sorted(rev.revision for rev in scripts.walk_revisions()))
    assert scripts.get_heads() == [db.head_revision()]
    chain = [rev.down_revision for rev in sorted(scripts.walk_revisions(),
                                                 key=lambda rev: rev.revision)]
    assert chain == [None, *db.known_revisions()[:-1]]  # one line, in file-name order


def test_an_older_schema_is_told_to_upgrade(db_url):
    engine = db.make_engine(db_url)
    upgrade(db.alembic_config(engine), "0003")
    engine.dispose()
    result = run_cli("--db", db_url, "task", "list")
    assert_user_error(result, "is at revision 0003, this iotask needs "
                              f"{db.head_revision()}: run `iotask db upgrade`")
    state = run_cli("--db", db_url, "db", "current", "--json").json()
    assert (state["current"], state["head"], state["up_to_date"]) == (
        "0003", db.head_revision(), False)


def test_tables_without_alembic_version_are_not_an_iotask_database(db_url):
    engine = db.make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    assert_user_error(run_cli("--db", db_url, "status"),
                      "is not an iotask database: run `iotask db upgrade` first")


def test_an_empty_database_has_no_iotask_tables(db_url):
    engine = db.make_engine(db_url)
    with engine.connect():  # a SQLite file that is there, empty
        pass
    engine.dispose()
    assert_user_error(run_cli("--db", db_url, "status"),
                      "has no iotask tables: run `iotask db upgrade` first")


def test_an_up_to_date_schema_says_so(migrated_url):
    shown = run_cli("--db", migrated_url, "config", "--json")
    assert shown.code == 0, shown.err
    assert f"{db.head_revision()} (up to date)" in shown.out


def test_a_database_error_is_one_line(iotask, engine, tmp_path):
    """main tells SQLAlchemy's errors without importing SQLAlchemy itself: a table a DBA
    dropped is one line naming it, not a traceback."""
    feed = write_csv(tmp_path / "people.csv", ["userid", "name"], [["u1", "Anna"]])
    iotask("connection", "add", "people", "--type", "csv", "--set", f"url={feed}")
    iotask("connection", "add", "table", "--type", "sql", "--set", "table=people",
           "--set", "key=userid")
    iotask("task", "add", "daily", "--source", "people", "--destination", "table")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE core_task_run_error"))
        conn.execute(sa.text("DROP TABLE core_task_run"))
    result = run_cli("--db", engine.url.render_as_string(hide_password=False), "status")
    assert_user_error(result, "core_task_run")
    assert "database error" in result.err or "the database refused the command" in result.err
