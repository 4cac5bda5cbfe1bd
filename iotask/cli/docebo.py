"""`iotask docebo import-tasks`: adopt a Docebo or forma.lms site's I/O tasks."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from iotask import docebo
from iotask.cli.app import CONTEXT, App, json_option, pass_app
from iotask.cli.output import emit_json


@click.group("docebo", context_settings=CONTEXT)
def docebo_group() -> None:
    """Moving from Docebo or forma.lms: adopt the site's I/O tasks."""


@docebo_group.command("import-tasks")
@click.option("--from", "from_url", required=True, metavar="URL",
              help="The site's database URL, e.g. mysql://forma@db/forma (it is only read).")
@click.option("--prefix", default=docebo.DEFAULT_PREFIX, show_default=True,
              help="The prefix of the site's framework tables (core_task, ...).")
@click.option("--files", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="The site's files/common/iofiles/ folder: where its csv connections read "
                   "and write (it must be in IOTASK_FILE_ROOTS). Without it csv connections "
                   "and their tasks are skipped.")
@click.option("--update", is_flag=True,
              help="Replace an iotask connection or task of the same name whose content differs "
                   "(its last_execution included); without it such a one is skipped.")
@click.option("--dry-run", is_flag=True, help="Print the same lines; change nothing.")
@json_option
@pass_app
def import_tasks(app: App, from_url: str, prefix: str, files: Path | None, update: bool,
                 dry_run: bool, as_json: bool) -> None:
    """Create the iotask connections and tasks equivalent to the site's core_connection and
    core_task rows, one line each: created, updated, unchanged, or skipped with the reason.
    Names, maps (key columns and ignored columns), schedules, import types, sequence and
    last_execution (read as local time in IOTASK_TIMEZONE) are kept; users, orgchart,
    courses and course-users connections become forma-* connections writing the same
    database, and csv ones csv connections under --files. Settings with no iotask
    equivalent are listed as "not mapped".

    Running it again changes nothing ("unchanged"); an iotask connection or task of the same
    name with other content is skipped unless --update. The site's database is opened read
    only. Exit status 1 when anything was skipped.
    """
    url = docebo.site_url(from_url)
    site = docebo.read_site(from_url, prefix, app.config.database_url)
    with app.session() as session:
        done = docebo.adopt(session, site, url, app.config.timezone, app.config.file_roots,
                            prefix, files, update)
        if dry_run:
            session.rollback()
    if as_json:
        emit_json({"dry_run": dry_run, "items": [line.as_json() for line in done.lines]})
    else:
        for line in done.lines:
            click.echo(("would be: " if dry_run else "") + line.text())
    if done.skipped:
        sys.exit(1)
