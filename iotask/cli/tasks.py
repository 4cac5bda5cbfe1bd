"""`iotask task`: imports and exports, a source and a destination connection on a schedule."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from iotask import clock, schedule, tasks
from iotask.cli import tasktypes
from iotask.cli.app import CONTEXT, App, json_option, pass_app
from iotask.cli.output import emit_json, emit_table
from iotask.errors import IotaskError
from iotask.run_status import RunStatus


@click.group("task", context_settings=CONTEXT)
def task_group() -> None:
    """Imports and exports: a source connection, a destination connection, a schedule."""


def task_options(adding: bool):
    """The options `task add` and `task edit` share."""
    def decorate(func):
        options = [
            click.option("--source", metavar="CONNECTION",
                         help="Connection to read from" + (" (or give --type)." if adding
                                                           else ".")),
            click.option("--destination", metavar="CONNECTION",
                         help="Connection to write to" + (" (or give --type)." if adding
                                                          else ".")),
            click.option("--at", "at_time", metavar="HH:MM",
                         help="Run daily at this local time, e.g. --at 02:30."),
            click.option("--every", metavar="'N hour|N day'",
                         help="Run every N hours or days, e.g. --every '6 hour'."
                              + (" Default: '1 day'." if adding else "")),
            click.option("--cron", "cron_expr", metavar="EXPR",
                         help="Five-field cron expression or @daily, e.g. --cron '0 2 * * 1-5'."),
            click.option("--frequency", type=click.Choice(schedule.FREQUENCIES),
                         help="hourly (every hour), daily (at 02:00) or weekly (Mondays at "
                              "02:00); with --at, daily or weekly at that time."),
            click.option("--import-type", type=click.Choice(["insert", "sync", "1", "2"]),
                         help="insert: add and update (default); sync: also remove the "
                              "records this task's source wrote that it no longer has."),
            click.option("--map", "map_json", metavar="JSON",
                         help='Column map: [{"map": "userid", "pk": "1"}, ...] or '
                              '{"columns": {...}, "key": [...]}; default: by column name.'),
            click.option("--sequence", type=click.IntRange(-2**31, 2**31 - 1),
                         help="Run order among due tasks (low first)."),
            click.option("--email", metavar="ADDR[,ADDR]", help="Notify these addresses."),
            click.option("--expect", metavar="'daily by HH:MM'|'every N hours'",
                         help="When input must have come: until then a run that finds nothing "
                              "keeps looking at each run-due; past it the run is recorded as "
                              "missing_input and --email is told, once per window. '' for none."),
            click.option("--notify", type=click.Choice(["start,end", "end", "problems", ""]),
                         help="When to tell --email: start,end (the default), end, or problems "
                              "only (failed, held, partial, abandoned)."),
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


def changes_from(source, destination, at_time, every, cron_expr, frequency, import_type,
                 map_json, sequence, email, expect, notify, description, max_errors, max_remove,
                 allow_empty) -> tasks.TaskChanges:
    given = [(kind, value) for kind, value in
             (("at", at_time), ("any", every), ("cron", cron_expr)) if value is not None]
    if frequency is not None and not (len(given) == 1 and at_time is not None):
        given.append(("frequency", frequency))
    if len(given) > 1:
        raise IotaskError("give one schedule: --at, --every, --cron or --frequency (--at may "
                          "go with --frequency daily or weekly)")
    schedule_type, schedule_text = given[0] if given else (None, None)
    if frequency is not None:
        try:
            parsed = schedule.from_frequency(frequency, at_time)
        except schedule.ScheduleError as exc:
            raise IotaskError(str(exc)) from None
        schedule_type, schedule_text = parsed.type, parsed.text
    return tasks.TaskChanges(
        source=source, destination=destination, schedule_type=schedule_type,
        schedule=schedule_text, import_type=import_type, map=map_json, sequence=sequence,
        email=email, expect=expect, notify=notify, description=description,
        max_errors=max_errors,
        max_remove=max_remove,
        allow_empty=allow_empty)


@task_group.command("add")
@click.argument("name")
@tasktypes.type_options
@task_options(adding=True)
@click.option("--disabled", is_flag=True, help="Add it disabled (run-due skips it).")
@click.option("--now", "due_now", is_flag=True,
              help="Due at the next run-due. Without it a task with --at or --cron first runs "
                   "at its next slot; one with --every runs at the next run-due anyway.")
@pass_app
def task_add(app: App, name: str, disabled: bool, due_now: bool, task_type: str | None,
             url: str | None, lms_url: str | None, **options: Any) -> None:
    """Add task NAME. Examples:

    iotask task add "HR users" --source hr-users --destination lms-users --at 02:30

    iotask task add "HR users" --type usersCsv --url /srv/hr/users.csv --frequency daily
    """
    changes = changes_from(**options)
    changes.enabled = not disabled
    if task_type is not None or url is not None or lms_url is not None:
        tasktypes.add_typed(app, name, task_type, url, lms_url, changes, due_now)
        return
    with app.session() as session:
        tasks.add(session, name, changes, app.config.file_roots, now=due_now)
    app.say(f"added task {name}")


task_group.add_command(tasktypes.types_command)


@task_group.command("edit")
@click.argument("name")
@task_options(adding=False)
@pass_app
def task_edit(app: App, name: str, **options: Any) -> None:
    """Change task NAME; options not given stay as they are."""
    changes = changes_from(**options)
    with app.session() as session:
        if changes == tasks.TaskChanges():
            tasks.get(session, name)
            app.tell("nothing changed: give an option to change (see `iotask task edit --help`)")
            return
        tasks.edit(session, name, changes, app.config.file_roots)
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
@click.option("--yes", is_flag=True, help="Remove tasks that have run history without asking.")
@pass_app
def task_remove(app: App, names: tuple[str, ...], yes: bool) -> None:
    """Remove tasks and their run history. A task with history is removed only once a person
    at a terminal says yes, or with --yes."""
    with app.session(read_only=True) as session:
        runs = {name: tasks.run_count(session, name) for name in names}
    kept = {name: count for name, count in runs.items() if count}
    if kept and not yes:
        listed = ", ".join(f"{name} ({count} runs)" for name, count in kept.items())
        if not (sys.stdin.isatty() and app.at_terminal):
            raise IotaskError(f"{listed}: removing a task removes its history too; give --yes "
                              "to remove it")
        click.confirm(f"remove {listed} with the history of their runs?", abort=True)
    with app.session() as session:
        for name in names:
            tasks.remove(session, name)
    app.tell(f"removed {', '.join(names)}")


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
    preview = app.runner("manual").preview(name, limit)
    if preview.nothing is not None:
        click.echo(f"nothing to preview: {preview.nothing}")
        return
    columns = preview.columns
    errors = [{"row": e.row_index, "column": e.column, "message": e.message}
              for e in preview.row_errors]
    if as_json:
        emit_json({"columns": columns, "rows": [{"line": line, **values}
                                                for line, values in preview.rows],
                   "row_errors": errors})
        return
    emit_table(["LINE", *columns], [["" if line is None else line,
                                     *(values.get(c) for c in columns)]
                                    for line, values in preview.rows])
    for error in errors:
        click.echo(f"line {error['row']}: rejected: {error['message']}")


@task_group.command("adopt")
@click.argument("name")
@click.option("--all-unowned", "everything", is_flag=True,
              help="Adopt every record no source owns, not only those whose keys the source "
                   "holds now.")
@click.option("--dry-run", is_flag=True, help="Count the records it would adopt; change none.")
@json_option
@pass_app
def task_adopt(app: App, name: str, everything: bool, dry_run: bool, as_json: bool) -> None:
    """Let sync take over records that existed before task NAME (no owner yet): those whose
    keys its source holds now get the source as their owner, so that a later sync removes
    them once they leave the source. Recorded in the task's history."""
    result = app.runner("manual").adopt(name, everything=everything, dry_run=dry_run)
    if as_json:
        emit_json({"task": name, "dry_run": dry_run, "status": result.status,
                   "adopted": result.counts.updated, "read": result.counts.read,
                   "run_id": result.run_id, "error": result.error})
    elif result.status == RunStatus.ADOPTED:
        verb = "would adopt" if dry_run else "adopted"
        app.tell(f"{name}: {verb} {result.counts.updated} records no source owned")
    if result.status != RunStatus.ADOPTED:
        click.echo(f"iotask: task {name!r} adopt failed: {result.error}", err=True)
        raise SystemExit(1)


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
