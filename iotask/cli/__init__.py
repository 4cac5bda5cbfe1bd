"""The `iotask` command. Cron-friendly: silent on success unless -v, errors as one line on stderr.

Exit codes: 0 success, 1 a task failed or was held, 2 a usage or configuration error. Each
command group is a module of this package; this one holds the top-level group and ``main``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
from sqlalchemy.exc import DBAPIError, OperationalError

from iotask import __version__
from iotask.cli import (
    config,
    connections,
    connectors,
    db,
    demo,
    docebo,
    lms,
    notify,
    runs,
    schedules,
    tasks,
    web,
)
from iotask.cli.app import CONTEXT, App
from iotask.db import reason
from iotask.errors import IotaskError
from iotask.log import masked_output

NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


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



def _later_db(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    app = ctx.find_object(App)
    if value is not None and app is not None:
        app.db_option = value


def _later_verbose(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    app = ctx.find_object(App)
    if value and app is not None:
        app.verbose += value


def _accept_global_options(command: click.Command) -> None:
    """`iotask db upgrade -v` as well as `iotask -v db upgrade`: every command also takes the
    global options after its name."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_global_options(sub)
        return
    command.params += [
        click.Option(["--db"], metavar="URL", expose_value=False, callback=_later_db,
                     help="Database URL (as `iotask --db`)."),
        click.Option(["-v", "--verbose"], count=True, expose_value=False,
                     callback=_later_verbose, help="Say what was done (as `iotask -v`)."),
    ]


for command in (db.db_group, connectors.connector_group, connections.connection_group,
                tasks.task_group, runs.run_due_command, runs.run_command, runs.reset_command,
                runs.status_command, runs.history_command, demo.demo_command,
                config.config_command, notify.notify_group, schedules.schedule_group,
                lms.lms_group, docebo.docebo_group, web.serve_command, web.user_group):
    _accept_global_options(command)
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI; user mistakes become one line on stderr, never a traceback. Everything it
    prints is masked: no configured secret reaches the terminal or cron's mail."""
    with masked_output():
        _main(argv)


def _main(argv: Sequence[str] | None) -> None:
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
        click.echo(f"iotask: error: database error: {reason(exc)}", err=True)
        sys.exit(2)
    except DBAPIError as exc:  # the driver's message only: never the statement's parameters
        click.echo(f"iotask: error: the database refused the command: {reason(exc)}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
