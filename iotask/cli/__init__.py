"""The `iotask` command. Cron-friendly: silent on success unless -v, errors as one line on stderr.

Exit codes: 0 success, 1 a task failed or was held, 2 a usage or configuration error. Each
command group is a module of this package; this one holds the top-level group and ``main``.
A command's module is imported only when that command runs (``COMMANDS``), so that
`iotask --help` and a cron line that finds nothing due do not pay for what they do not use.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Sequence

import click

from iotask import __version__
from iotask.cli.app import CONTEXT, App
from iotask.errors import IotaskError
from iotask.log import masked_output

NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())

# Every command: its name, "module:attribute" in this package, and the first sentence of its
# help as `iotask --help` lists it (tests/test_console_script.py checks it against the command).
# A new command or group is one line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "config": ("config:config_command",
               "The configuration in use: the INI file read (and the places looked in), the "
               "database and where its URL came from, its schema revision, the time zone, the "
               "log, the folders."),
    "connection": ("connections:connection_group",
                   "Configured endpoints: a connector type plus its settings."),
    "connector": ("connectors:connector_group",
                  "Kinds of endpoint: list them, show their settings, register a new one."),
    "db": ("db:db_group", "Create or upgrade the iotask tables (wraps Alembic)."),
    "demo": ("demo:demo_command",
             "Build the demo LMS and list its tasks (idempotent): forma's tables in the iotask "
             "database (lms init) when missing, an HR system's files (org chart, 200 people, a "
             "catalogue, enrollments with completions) in the demo folder, and the connections "
             "and tasks that import them in sequence and export the completions."),
    "docebo": ("docebo:docebo_group",
               "Moving from Docebo or forma.lms: adopt the site's I/O tasks."),
    "history": ("runs:history_command",
                "The runs of task NAME: trigger, runner, times, status, counts, errors, "
                "rejected rows."),
    "lms": ("lms:lms_group", "The forma.lms / Docebo database the forma-* connectors write."),
    "notify": ("notify:notify_group",
               "E-mail to task addresses (--email, --notify) through the configured SMTP "
               "server."),
    "reset": ("runs:reset_command",
              "Make tasks due at the next run-due: last_execution cleared (or --to), "
              "fail_count 0."),
    "run": ("runs:run_command", "Run these tasks now, whatever their schedule or enabled flag."),
    "run-due": ("run_due:run_due_command",
                "Run every enabled task that is due, in sequence order."),
    "schedule": ("schedules:schedule_group",
                 "Task schedules as OPML files (PeopleFluent's form): export, edit, import "
                 "elsewhere."),
    "serve": ("web:serve_command",
              "Serve the run-due URL and the web console with waitress, until stopped."),
    "status": ("runs:status_command",
               "Every task: its schedule in words, when it is next due, how its last run went."),
    "task": ("tasks:task_group",
             "Imports and exports: a source connection, a destination connection, a schedule."),
    "user": ("web:user_group",
             "Console users: admin (runs and changes tasks) or viewer (reads only)."),
}


class LazyGroup(click.Group):
    """The top-level group: a command's module is imported the first time it is asked for;
    the command list of `--help` comes from ``COMMANDS`` without importing any."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, _, attribute = COMMANDS[cmd_name][0].partition(":")
            command = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
            _accept_global_options(command)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click lists commands, each shortened from its first sentence in ``COMMANDS``."""
        commands = [(name, self.commands.get(name)
                     or click.Command(name, help=COMMANDS[name][1]))
                    for name in self.list_commands(ctx)]
        commands = [(name, command) for name, command in commands if not command.hidden]
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit))
                                    for name, command in commands])


@click.group(cls=LazyGroup, context_settings=CONTEXT)
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


# pyarrow's jemalloc (the fast path's pool, connectors/columnar.py) with one arena instead of
# four a CPU, and blocks of 1 MB or more from an arena of their own that keeps no freed pages
# (pyarrow's build turns that off). A batch is made in one thread and freed in another: with
# an arena a thread, an unchanged SQLite re-import of 1 M rows took 1.69 s instead of 1.13 s
# and 2.53 s of CPU instead of 1.51 s, a MariaDB sync 3.0 s of CPU instead of 2.0 s; one arena
# alone raised that sync's peak RSS from 137 to 147 MB, the big blocks' arena brings it to 139
# (3 alternating runs each). jemalloc reads it once, when pyarrow loads: the console script sets
# it first thing (a value already in the environment is kept).
ARROW_ALLOCATOR = ("JE_ARROW_MALLOC_CONF", "narenas:1,oversize_threshold:1048576")


def script() -> None:
    """The console script: ``main``, then out as soon as the output is flushed. Python's own
    exit frees every module and object one by one: 0.45 s after a 1 M-row import, for nothing,
    since files and connections are closed by then. The usual exit when a thread other than a
    daemon is still running, which it then waits for."""
    os.environ.setdefault(*ARROW_ALLOCATOR)
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    if any(thread.is_alive() and not thread.daemon for thread in threading.enumerate()
           if thread is not threading.main_thread()):
        sys.exit(code)
    os._exit(code)


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
    except Exception as exc:
        message = _database_error(exc)
        if message is None:
            raise
        click.echo(f"iotask: error: {message}", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


def _database_error(exc: Exception) -> str | None:
    """One line for a database error, None for anything else. SQLAlchemy is looked at only if
    the command loaded it: a command that never opened a database raised none of its errors."""
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import DBAPIError, OperationalError

    from iotask.db import reason

    if isinstance(exc, OperationalError):  # the database went away or stayed locked
        return f"database error: {reason(exc)}"
    if isinstance(exc, DBAPIError):  # the driver's message only: never the statement's values
        return f"the database refused the command: {reason(exc)}"
    return None
