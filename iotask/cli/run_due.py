"""`iotask run-due`, what cron calls every minute.

Most minutes nothing is due: then ``iotask.nothing_due`` says so from the task rows without
SQLAlchemy, the models or the runner, and the command ends as the full run would have. When a
task is or may be due, the runner judges every task again and runs what is due.
"""

from __future__ import annotations

import click

from iotask import log, nothing_due
from iotask.cli.app import App, json_option, pass_app, xml_option


@click.command("run-due")
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
    if not (as_json or as_xml) and nothing_due.nothing_due(app.config):
        log.setup(app.config, app.verbose)  # as the runner would: a log file is opened
        if app.verbose or app.at_terminal:
            click.echo("nothing due")
        return
    from iotask.cli.output import emit_results

    results = app.runner("cron").run_due()
    emit_results(app, results, as_json, as_xml)
