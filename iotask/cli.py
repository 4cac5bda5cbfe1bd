"""The `iotask` command. Cron-friendly: silent on success unless -v, errors as one line on stderr.

Exit codes: 0 success, 1 a task failed or was held, 2 a usage or configuration error.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from connectors.base import ConnectorError, MemoryContext, NothingToProcess
from iotask import __version__, clock, connections, db, demo, log, registry, report, runner, tasks
from iotask import config as config_module
from iotask import engine as data_engine
from iotask.errors import IotaskError
from iotask.mapping import LINE

if TYPE_CHECKING:
    from tqdm import tqdm

NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class App:
    """What every command needs: configuration and a database, opened on first use."""

    def __init__(self, db_option: str | None, verbose: int) -> None:
        self.db_option = db_option
        self.verbose = verbose
        self._config: config_module.Config | None = None
        self._engine: Engine | None = None

    @property
    def config(self) -> config_module.Config:
        if self._config is None:
            self._config = config_module.load(self.db_option)
        return self._config

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = db.make_engine(self.config.database_url)
        return self._engine

    @contextmanager
    def session(self, read_only: bool = False) -> Iterator[Session]:
        """A session on a migrated database, committed when the block succeeds."""
        db.check_migrated(self.engine)
        bind = db.reader(self.engine) if read_only else self.engine
        with Session(bind, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except OperationalError as exc:
                session.rollback()
                raise db.connect_error(self.engine.url, exc) from None
            except IntegrityError as exc:
                session.rollback()
                raise IotaskError(
                    f"the database refused the change (another process changed the same rows?): "
                    f"{db.reason(exc)}"
                ) from None

    def runner(self, trigger: str) -> runner.Runner:
        """A runner on a migrated database, with logging set up as configured."""
        db.check_migrated(self.engine)
        log.setup(self.config, self.verbose)
        return runner.Runner(self.engine, self.config, trigger)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def say(self, message: str) -> None:
        """Progress for people: shown only with -v."""
        if self.verbose:
            click.echo(message)


pass_app = click.make_pass_decorator(App)


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def emit_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    text_rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text_rows]) for i, h in enumerate(headers)]
    for row in [list(headers), *text_rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                   .rstrip())


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(context_settings=CONTEXT)
@click.option("--db", "db_option", metavar="URL",
              help="Database URL. Default: $IOTASK_DATABASE_URL, else database_url in "
                   "$IOTASK_CONFIG or ./iotask.ini, else sqlite:///iotask.db.")
@click.option("-v", "--verbose", count=True, help="Say what was done (silent otherwise).")
@click.version_option(__version__, prog_name="iotask")
@click.pass_context
def cli(ctx: click.Context, db_option: str | None, verbose: int) -> None:
    """Scheduled imports and exports for learning and HR systems.

    Connectors are kinds of endpoint (csv, sql, ...); connections are configured endpoints; tasks
    move data from a source connection to a destination connection on a schedule. Times are
    shown in IOTASK_TIMEZONE (default: the machine's zone) and stored in UTC.
    """
    ctx.obj = App(db_option, verbose)
    ctx.call_on_close(ctx.obj.close)


# --- db ---------------------------------------------------------------------------------------

@cli.group("db", context_settings=CONTEXT)
def db_group() -> None:
    """Create or upgrade the iotask tables (wraps Alembic)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_app
def db_upgrade(app: App, revision: str) -> None:
    """Create or upgrade the iotask tables. Safe to run again."""
    db.upgrade(app.engine, revision)
    revision = db.current_revision(app.engine)
    app.say(f"database {db.masked(app.engine.url)} is at revision {revision}")


@db_group.command("current")
@json_option
@pass_app
def db_current(app: App, as_json: bool) -> None:
    """Show the database's schema revision and whether it is up to date."""
    current, head = db.current_revision(app.engine), db.head_revision()
    if as_json:
        emit_json({"database": db.masked(app.engine.url), "current": current, "head": head,
                   "up_to_date": current == head})
        return
    state = "up to date" if current == head else f"needs `iotask db upgrade` to {head}"
    click.echo(f"{db.masked(app.engine.url)}: revision {current or 'none'} ({state})")


# --- connectors -------------------------------------------------------------------------------

@cli.group("connector", context_settings=CONTEXT)
def connector_group() -> None:
    """Kinds of endpoint: list them, show their settings, register a new one."""


@connector_group.command("list")
@json_option
@pass_app
def connector_list(app: App, as_json: bool) -> None:
    """Registered connectors: type, module, class and whether each reads and writes."""
    with app.session(read_only=True) as session:
        infos = registry.list_connectors(session)
    data = [{
        "type": info.type, "module": info.module, "class": info.class_name,
        "read": bool(info.cls and info.cls.can_read),
        "write": bool(info.cls and info.cls.can_write),
        "description": info.cls.description if info.cls else "",
        "error": info.error,
    } for info in infos]
    if as_json:
        emit_json(data)
        return
    emit_table(["TYPE", "MODULE", "CLASS", "READ", "WRITE", "DESCRIPTION"], [
        [d["type"], d["module"], d["class"], "yes" if d["read"] else "no",
         "yes" if d["write"] else "no", d["error"] or d["description"]] for d in data])


@connector_group.command("show")
@click.argument("type_name", metavar="TYPE")
@json_option
@pass_app
def connector_show(app: App, type_name: str, as_json: bool) -> None:
    """The settings a connector type takes (use them with `connection add --set KEY=VALUE`)."""
    with app.session(read_only=True) as session:
        cls = registry.connector_class(session, type_name)
    settings = [{"name": s.name, "kind": s.kind, "required": s.required, "default": s.default,
                 "secret": s.secret, "choices": list(s.choices), "help": s.help}
                for s in cls.settings]
    if as_json:
        emit_json({"type": cls.type_name, "read": cls.can_read, "write": cls.can_write,
                   "description": cls.description, "settings": settings})
        return
    click.echo(f"{cls.type_name}: {cls.description}")
    emit_table(["SETTING", "KIND", "REQUIRED", "DEFAULT", "HELP"], [
        [s["name"], s["kind"] + (" (secret)" if s["secret"] else ""),
         "yes" if s["required"] else "", "" if s["default"] is None else json.dumps(s["default"]),
         s["help"] + (f" [{', '.join(s['choices'])}]" if s["choices"] else "")]
        for s in settings])


@connector_group.command("register")
@click.argument("module")
@pass_app
def connector_register(app: App, module: str) -> None:
    """Register a connector MODULE (an importable dotted name) that sets CONNECTOR = its class."""
    with app.session() as session:
        row = registry.register(session, module)
    app.say(f"registered connector type {row.type} ({row.file}.{row.class_})")


# --- connections ------------------------------------------------------------------------------

@cli.group("connection", context_settings=CONTEXT)
def connection_group() -> None:
    """Configured endpoints: a connector type plus its settings."""


set_option = click.option(
    "--set", "assignments", multiple=True, metavar="KEY=VALUE",
    help="A setting (repeatable). See `iotask connector show TYPE` for the keys.")
params_json_option = click.option(
    "--params-json", metavar="JSON", help="All settings as one JSON object (replaces them).")


@connection_group.command("add")
@click.argument("name")
@click.option("--type", "type_name", required=True, help="Connector type, e.g. csv or sql.")
@click.option("--description", default="", help="Free text.")
@set_option
@params_json_option
@pass_app
def connection_add(app: App, name: str, type_name: str, description: str,
                   assignments: tuple[str, ...], params_json: str | None) -> None:
    """Add connection NAME. Example:

    iotask connection add hr-users --type csv --set url=/srv/hr/users.csv --set delimiter=;
    """
    with app.session() as session:
        connections.add(session, name, type_name, description,
                        connections.parse_assignments(assignments), params_json,
                        app.config.file_roots)
    app.say(f"added connection {name}")


@connection_group.command("edit")
@click.argument("name")
@click.option("--type", "type_name", help="Change the connector type.")
@click.option("--description", help="Free text.")
@set_option
@click.option("--unset", multiple=True, metavar="KEY", help="Remove a setting (repeatable).")
@params_json_option
@pass_app
def connection_edit(app: App, name: str, type_name: str | None, description: str | None,
                    assignments: tuple[str, ...], unset: tuple[str, ...],
                    params_json: str | None) -> None:
    """Change connection NAME's type, description or settings."""
    with app.session() as session:
        connections.edit(session, name, description, type_name,
                         connections.parse_assignments(assignments), unset, params_json,
                         app.config.file_roots)
    app.say(f"changed connection {name}")


@connection_group.command("remove")
@click.argument("name")
@pass_app
def connection_remove(app: App, name: str) -> None:
    """Remove connection NAME (refused while a task uses it)."""
    with app.session() as session:
        connections.remove(session, name)
    app.say(f"removed connection {name}")


@connection_group.command("list")
@json_option
@pass_app
def connection_list(app: App, as_json: bool) -> None:
    """Every connection, with the tasks that use it. Secrets are masked."""
    with app.session(read_only=True) as session:
        data = [connections.describe(session, row) for row in connections.list_all(session)]
    if as_json:
        emit_json(data)
        return
    emit_table(["NAME", "TYPE", "DESCRIPTION", "USED BY"],
               [[d["name"], d["type"], d["description"], ", ".join(d["used_by"])] for d in data])


@connection_group.command("show")
@click.argument("name")
@json_option
@pass_app
def connection_show(app: App, name: str, as_json: bool) -> None:
    """One connection and its settings. Secrets are masked."""
    with app.session(read_only=True) as session:
        data = connections.describe(session, connections.get(session, name))
    if as_json:
        emit_json(data)
        return
    click.echo(f"name:        {data['name']}")
    click.echo(f"type:        {data['type']}")
    click.echo(f"description: {data['description']}")
    click.echo(f"used by:     {', '.join(data['used_by'])}")
    for key, value in data["params"].items():
        click.echo(f"  {key} = {json.dumps(value, ensure_ascii=False)}")


# --- tasks ------------------------------------------------------------------------------------

@cli.group("task", context_settings=CONTEXT)
def task_group() -> None:
    """Imports and exports: a source connection, a destination connection, a schedule."""


def task_options(adding: bool):
    """The options `task add` and `task edit` share."""
    def decorate(func):
        options = [
            click.option("--source", required=adding, metavar="CONNECTION",
                         help="Connection to read from."),
            click.option("--destination", required=adding, metavar="CONNECTION",
                         help="Connection to write to."),
            click.option("--at", "at_time", metavar="HH:MM",
                         help="Run daily at this local time, e.g. --at 02:30."),
            click.option("--every", metavar="'N hour|N day'",
                         help="Run every N hours or days, e.g. --every '6 hour'."
                              + (" Default: '1 day'." if adding else "")),
            click.option("--cron", "cron_expr", metavar="EXPR",
                         help="Five-field cron expression or @daily, e.g. --cron '0 2 * * 1-5'."),
            click.option("--import-type", type=click.Choice(["insert", "sync", "1", "2"]),
                         help="insert: add and update (default); sync: also remove the "
                              "records this task's source wrote that it no longer has."),
            click.option("--map", "map_json", metavar="JSON",
                         help='Column map: [{"map": "userid", "pk": "1"}, ...] or '
                              '{"columns": {...}, "key": [...]}; default: by column name.'),
            click.option("--sequence", type=int, help="Run order among due tasks (low first)."),
            click.option("--email", metavar="ADDR[,ADDR]", help="Notify these addresses."),
            click.option("--description", help="Free text."),
            click.option("--max-errors", metavar="N|P%",
                         help="Most rejected rows before the run fails and applies nothing: "
                              "a count or a percent of the rows read. Default 5% for insert, "
                              "0% for sync; '' restores the default."),
            click.option("--max-remove", metavar="N|P%",
                         help="Most removals (sync) before the run is held, applying nothing: "
                              "a count or a percent of the records the task owns. Default 10%."),
            click.option("--allow-empty/--no-allow-empty", default=None,
                         help="Whether a source with no data rows may remove every record "
                              "the task owns (sync). Default: no, such a run is held."),
        ]
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def changes_from(source, destination, at_time, every, cron_expr, import_type, map_json,
                 sequence, email, description, max_errors, max_remove,
                 allow_empty) -> tasks.TaskChanges:
    given = [(kind, value) for kind, value in
             (("at", at_time), ("any", every), ("cron", cron_expr)) if value is not None]
    if len(given) > 1:
        raise IotaskError("give one schedule: --at, --every or --cron")
    schedule_type, schedule_text = given[0] if given else (None, None)
    return tasks.TaskChanges(
        source=source, destination=destination, schedule_type=schedule_type,
        schedule=schedule_text, import_type=import_type, map=map_json, sequence=sequence,
        email=email, description=description, max_errors=max_errors, max_remove=max_remove,
        allow_empty=allow_empty)


@task_group.command("add")
@click.argument("name")
@task_options(adding=True)
@click.option("--disabled", is_flag=True, help="Add it disabled (run-due skips it).")
@pass_app
def task_add(app: App, name: str, disabled: bool, **options: Any) -> None:
    """Add task NAME. Example:

    iotask task add "HR users" --source hr-users --destination lms-users --at 02:30
    """
    changes = changes_from(**options)
    changes.enabled = not disabled
    with app.session() as session:
        tasks.add(session, name, changes, app.config.file_roots)
    app.say(f"added task {name}")


@task_group.command("edit")
@click.argument("name")
@task_options(adding=False)
@pass_app
def task_edit(app: App, name: str, **options: Any) -> None:
    """Change task NAME; options not given stay as they are."""
    with app.session() as session:
        tasks.edit(session, name, changes_from(**options), app.config.file_roots)
    app.say(f"changed task {name}")


def _set_enabled(app: App, names: Sequence[str], enabled: bool) -> None:
    with app.session() as session:
        for name in names:
            tasks.edit(session, name, tasks.TaskChanges(enabled=enabled))
    app.say(f"{'enabled' if enabled else 'disabled'} {', '.join(names)}")


@task_group.command("enable")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@pass_app
def task_enable(app: App, names: tuple[str, ...]) -> None:
    """Let run-due run these tasks on their schedule."""
    _set_enabled(app, names, True)


@task_group.command("disable")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@pass_app
def task_disable(app: App, names: tuple[str, ...]) -> None:
    """Make run-due skip these tasks (a manual `iotask run` still works)."""
    _set_enabled(app, names, False)


@task_group.command("remove")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@pass_app
def task_remove(app: App, names: tuple[str, ...]) -> None:
    """Remove tasks and their run history."""
    with app.session() as session:
        for name in names:
            tasks.remove(session, name)
    app.say(f"removed {', '.join(names)}")


@task_group.command("list")
@json_option
@pass_app
def task_list(app: App, as_json: bool) -> None:
    """Every task in run order: schedule, connections, last execution and status."""
    tz = app.config.timezone
    with app.session(read_only=True) as session:
        rows = tasks.list_all(session)
    data = [tasks.describe(row, tz) for row in rows]
    if as_json:
        emit_json(data)
        return
    emit_table(["SEQ", "NAME", "SOURCE", "DESTINATION", "SCHEDULE", "ENABLED",
                "LAST EXECUTION", "STATUS"],
               [[d["sequence"], d["name"], d["source"], d["destination"], d["schedule_words"],
                 "yes" if d["enabled"] else "no", clock.show(row.last_execution, tz),
                 d["last_status"] or ""] for d, row in zip(data, rows, strict=True)])


@task_group.command("preview")
@click.argument("name")
@click.option("--rows", "limit", default=10, show_default=True, type=click.IntRange(1, 1000),
              help="How many source rows.")
@json_option
@pass_app
def task_preview(app: App, name: str, limit: int, as_json: bool) -> None:
    """The first source rows as task NAME's map turns them into destination columns.

    Reads the source and checks the map; the destination is never created, changed or
    truncated. Rejected rows are listed with their line numbers.
    """
    with app.session(read_only=True) as session:
        task = tasks.get(session, name)
        source = connections.endpoint(session, task.conn_source, "source")
        destination = connections.endpoint(session, task.conn_destination, "destination")
    context = MemoryContext(task=name, import_type=tasks.import_type_name(task.import_type),
                            database_url=app.config.database_url,
                            file_roots=list(app.config.file_roots))
    try:
        columns, rows = data_engine.preview(source, destination, context, task.map, limit)
    except NothingToProcess as exc:
        click.echo(f"nothing to preview: {exc}")
        return
    except ConnectorError as exc:
        raise IotaskError(str(exc)) from None
    errors = [{"row": e.row_index, "column": e.column, "message": e.message}
              for e in context.errors]
    if as_json:
        emit_json({"columns": columns, "rows": [
            {"line": row.get(LINE), **{c: row.get(c) for c in columns}} for row in rows],
            "row_errors": errors})
        return
    emit_table(["LINE", *columns], [[row.get(LINE, ""), *(row.get(c) for c in columns)]
                                    for row in rows])
    for error in errors:
        click.echo(f"line {error['row']}: rejected: {error['message']}")


@task_group.command("show")
@click.argument("name")
@json_option
@pass_app
def task_show(app: App, name: str, as_json: bool) -> None:
    """One task in full."""
    tz = app.config.timezone
    with app.session(read_only=True) as session:
        row = tasks.get(session, name)
        data = tasks.describe(row, tz)
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        if key in ("last_execution", "locked_until"):
            value = clock.show(getattr(row, key), tz)
        elif key == "map":
            value = "" if value is None else json.dumps(value, ensure_ascii=False)
        click.echo(f"{key + ':':16} {'' if value is None else value}")


# --- running ----------------------------------------------------------------------------------

xml_option = click.option("--xml", "as_xml", is_flag=True,
                          help="Print Docebo's cron report as well-formed XML.")


def emit_results(app: App, results: list[runner.TaskResult], as_json: bool,
                 as_xml: bool) -> None:
    """Report on stdout as asked; problems on stderr; exit 1 when any task failed or was held."""
    tz = app.config.timezone
    if as_json:
        click.echo(report.to_json(results, tz))
    elif as_xml:
        click.echo(report.to_xml(results, tz))
    elif app.verbose:
        executed = [r for r in results if r.executed or r.error]
        for result in executed:
            click.echo(report.summary_line(result))
        if not executed:
            click.echo("nothing due")
    for result in results:
        problem = report.problem_line(result)
        if problem:
            click.echo(f"iotask: {problem}", err=True)
    if not all(r.ok for r in results):
        raise SystemExit(1)


@cli.command("run-due")
@json_option
@xml_option
@pass_app
def run_due_command(app: App, as_json: bool, as_xml: bool) -> None:
    """Run every enabled task that is due, in sequence order. This is what cron calls.

    Due-ness is computed from last_execution every time, so `UPDATE core_task SET
    last_execution = NULL` makes a task due. A task is claimed before it runs, so several
    run-due processes (or hosts sharing one database) never run a task twice. A failed task
    is retried after a backoff (5 minutes, doubling, at most 6 hours or its own period).
    Silent on success unless -v. Exit 0: every executed task succeeded (or nothing was due);
    1: a task failed or was held; 2: usage or configuration error.
    """
    results = app.runner("cron").run_due()
    emit_results(app, results, as_json, as_xml)


class ProgressBar:
    """One task's progress on stderr, drawn from its first batch and cleared when it ends.

    By bytes, with a percentage and an ETA, when the source knows its size; else rows and rate.
    """

    def __init__(self, task: str) -> None:
        self.task = task
        self.bar: tqdm | None = None

    def update(self, rows: int, done: int | None, total: int | None) -> None:
        if done is None or total is None:
            position, total, postfix = rows, None, None
        else:
            position, postfix = done, f"{rows:,} rows"
        if self.bar is None:
            from tqdm import tqdm  # here, not at the top: cron's run-due never pays for it

            self.bar = tqdm(desc=self.task, total=total, initial=position, postfix=postfix,
                            unit=" rows" if total is None else "B", unit_scale=total is not None,
                            unit_divisor=1024, leave=False, file=sys.stderr)
            return
        if postfix is not None:
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(position - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextmanager
def progress_bars(run: runner.Runner, as_json: bool, as_xml: bool) -> Iterator[None]:
    """Progress bars for a person at a terminal; never under cron, in a pipe or for scripts.

    Log lines on stderr (-vv) are written around the bar instead of through it.
    """
    if as_json or as_xml or not (sys.stdout.isatty() and sys.stderr.isatty()):
        yield
        return
    from tqdm.contrib.logging import logging_redirect_tqdm

    run.progress = ProgressBar
    with logging_redirect_tqdm(loggers=[logging.getLogger("iotask")]):
        yield


@cli.command("run")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--dry-run", is_flag=True,
              help="Compute what each task would change (counts, up to 10 keys per kind, the "
                   "guards' verdict) and apply nothing; not recorded in history.")
@click.option("--accept-changes", is_flag=True,
              help="Apply a change set the removal guards held (max_remove, empty source), "
                   "once a person has looked at it (see --dry-run).")
@click.option("--reimport", is_flag=True,
              help="Import files even when this task imported the same content before "
                   "(same SHA-256, under any name).")
@json_option
@xml_option
@pass_app
def run_command(app: App, names: tuple[str, ...], dry_run: bool, accept_changes: bool,
                reimport: bool, as_json: bool, as_xml: bool) -> None:
    """Run these tasks now, whatever their schedule or enabled flag.

    Still claims each task: if it is running elsewhere, says where and since when, and exits 1.
    At a terminal, shows each task's progress while it reads. Exit 0: every task succeeded;
    1: a task failed or was held (with --dry-run: would fail or be held).
    """
    if dry_run and accept_changes:
        raise click.UsageError("--dry-run applies nothing; --accept-changes applies: pick one")
    run = app.runner("manual")
    if dry_run:
        if as_xml:
            raise click.UsageError("--dry-run reports as text or --json, not --xml")
        results = [run.dry_run(name) for name in names]
        emit_dry_runs(results, as_json)
        return
    with progress_bars(run, as_json, as_xml):
        results = run.run(names, accept_changes=accept_changes, reimport=reimport)
    emit_results(app, results, as_json, as_xml)


def emit_dry_runs(results: list[runner.TaskResult], as_json: bool) -> None:
    """What each task would do; exit 1 when one would fail or be held."""
    if as_json:
        emit_json([report.dry_run(result) for result in results])
    else:
        for result in results:
            click.echo(report.dry_run_text(result))
    if any(result.status == data_engine.FAILED or result.note for result in results):
        raise SystemExit(1)


@cli.command("reset")
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.option("--failed", "failed", is_flag=True, help="Every task whose last run failed.")
@click.option("--all", "all_tasks", is_flag=True, help="Every task.")
@click.option("--to", "to_time", metavar="'YYYY-MM-DD HH:MM'",
              help="Set last_execution to this local time instead of clearing it.")
@click.option("--force", is_flag=True,
              help="Reset a task that looks running (its runner died): its run is abandoned.")
@pass_app
def reset_command(app: App, names: tuple[str, ...], failed: bool, all_tasks: bool,
                  to_time: str | None, force: bool) -> None:
    """Make tasks due at the next run-due: last_execution cleared (or --to), fail_count 0.

    The safe way to do what Docebo operators did by editing last_execution by hand. Prints
    what changed; every reset is recorded in the task's history.
    """
    if sum([bool(names), failed, all_tasks]) != 1:
        raise click.UsageError("name the tasks, or give --failed or --all (one of them)")
    to = clock.parse_local(to_time, app.config.timezone) if to_time else None
    db.check_migrated(app.engine)
    if failed:
        names = tuple(runner.failed_task_names(app.engine))
    elif all_tasks:
        names = tuple(runner.all_task_names(app.engine))
    changes = runner.reset(app.engine, app.config, names, to, force)
    for change in changes:
        click.echo(change.message, err=not change.changed)
    if not changes:
        app.say("nothing to reset")
    if not all(change.changed for change in changes):
        raise SystemExit(1)


@cli.command("status")
@json_option
@pass_app
def status_command(app: App, as_json: bool) -> None:
    """Every task: its schedule in words, when it is next due, how its last run went."""
    db.check_migrated(app.engine)
    data = report.status(app.engine, app.config.timezone)
    if as_json:
        emit_json(data)
        return
    tz = app.config.timezone
    emit_table(["NAME", "SCHEDULE", "NEXT DUE", "LAST STATUS", "LAST RUN", "DURATION", "FAILS"],
               [[d["name"], d["schedule"], _local(d["next_due"], tz), d["last_status"] or "",
                 _local(d["last_run"]["started"], tz) if d["last_run"] else "",
                 _seconds(d["last_run"]["duration_seconds"]) if d["last_run"] else "",
                 d["fail_count"] or ""] for d in data])


def _local(value: str | None, tz) -> str:
    """An ISO time from the report as a person reads it; other words unchanged."""
    if not value or not value[:4].isdigit():
        return value or ""
    return datetime.fromisoformat(value).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


@cli.command("history")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000),
              help="How many runs, newest first.")
@json_option
@pass_app
def history_command(app: App, name: str, limit: int, as_json: bool) -> None:
    """The runs of task NAME: trigger, runner, times, status, counts, errors, rejected rows."""
    with app.session(read_only=True) as session:
        tasks.get(session, name)
    tz = app.config.timezone
    data = report.history(app.engine, name, limit, tz)
    if as_json:
        emit_json(data)
        return
    emit_table(["RUN", "TRIGGER", "STARTED", "DURATION", "STATUS", "READ", "INS", "UPD", "SAME",
                "REM", "FAIL", "RUNNER"],
               [[d["id"], d["trigger"], _local(d["started"], tz), _seconds(d["duration_seconds"]),
                 d["status"], *d["counts"].values(), d["runner"]] for d in data])
    for d in data:
        if d["error"]:
            click.echo(f"run {d['id']}: {d['error']}")
        if d["reject_file"]:
            click.echo(f"run {d['id']}: rejected rows written to {d['reject_file']}")
        for e in d["row_errors"]:
            where = f"row {e['row']}" if e["row"] is not None else "row ?"
            key = f" ({e['key']})" if e["key"] else ""
            column = f" [{e['column']}]" if e["column"] else ""
            click.echo(f"run {d['id']}: {where}{key}{column}: {e['message']}")


# --- demo -------------------------------------------------------------------------------------

@cli.command("demo")
@click.option("--folder", type=click.Path(),
              help="Where the sample files go (inside IOTASK_FILE_ROOTS); default: a demo "
                   "folder in the first of them, ./iofiles/demo.")
@pass_app
def demo_command(app: App, folder: str | None) -> None:
    """Create sample connections and tasks (idempotent) and list the tasks."""
    roots = app.config.file_roots
    with app.session() as session:
        created = demo.set_up(session, Path(folder).resolve() if folder else roots[0] / "demo",
                              roots)
    app.say(f"created: {', '.join(created)}" if created else "demo already set up")
    task_list.callback(as_json=False)


# --- entry point ------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; user mistakes become one line on stderr, never a traceback."""
    try:
        code = cli.main(args=argv, prog_name="iotask", standalone_mode=False)
    except NO_ARGS_IS_HELP as exc:
        click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        sys.exit(2)
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        click.echo(f"iotask: error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.Abort:
        click.echo("iotask: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"iotask: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except IotaskError as exc:
        click.echo(f"iotask: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OperationalError as exc:  # the database went away or stayed locked mid-command
        click.echo(f"iotask: error: database error: {db.reason(exc)}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
