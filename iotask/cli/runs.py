"""Running and watching: `iotask run`, `reset`, `status` and `history` (run-due: ``run_due``)."""

from __future__ import annotations

import click

from iotask import clock, db, report, runner, tasks
from iotask.cli.app import App, json_option, pass_app, xml_option
from iotask.cli.output import (
    emit_json,
    emit_results,
    emit_table,
    local_time,
    progress_bars,
    seconds,
)
from iotask.run_status import RunStatus


@click.command("run")
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
        results = [run.dry_run(name, reimport=reimport) for name in names]
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
    if any(result.status in (RunStatus.FAILED, RunStatus.HELD) or result.note
           for result in results):
        raise SystemExit(1)


@click.command("reset")
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
        names = tuple(tasks.failed_names(app.engine))
    elif all_tasks:
        names = tuple(tasks.all_names(app.engine))
    changes = tasks.reset(app.engine, app.config.timezone, names, to, force)
    for change in changes:
        click.echo(change.message, err=not change.changed)
    if not changes:
        app.tell("nothing to reset")
    if not all(change.changed for change in changes):
        raise SystemExit(1)


@click.command("status")
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
               [[d["name"], d["schedule"], local_time(d["next_due"], tz), d["last_status"] or "",
                 local_time(d["last_run"]["started"], tz) if d["last_run"] else "",
                 seconds(d["last_run"]["duration_seconds"]) if d["last_run"] else "",
                 d["fail_count"] or ""] for d in data])


@click.command("history")
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
               [[d["id"], d["trigger"], local_time(d["started"], tz),
                 seconds(d["duration_seconds"]), d["status"], *d["counts"].values(), d["runner"]]
                for d in data])
    for d in data:
        if d["error"]:
            click.echo(f"run {d['id']}: {d['error']}")
        for note in d["notes"]:
            click.echo(f"run {d['id']}: note: {note}")
        if d["reject_file"]:
            click.echo(f"run {d['id']}: rejected rows written to {d['reject_file']}")
        for e in d["row_errors"]:
            where = f"row {e['row']}" if e["row"] is not None else "row ?"
            key = f" ({e['key']})" if e["key"] else ""
            column = f" [{e['column']}]" if e["column"] else ""
            click.echo(f"run {d['id']}: {where}{key}{column}: {e['message']}")
