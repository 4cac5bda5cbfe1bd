"""`iotask lms init`: a forma.lms database for sites (and demos, and tests) that have none."""

from __future__ import annotations

import click

from iotask import db, lms
from iotask.cli.app import CONTEXT, App, json_option, pass_app
from iotask.cli.output import emit_json


@click.group("lms", context_settings=CONTEXT)
def lms_group() -> None:
    """The forma.lms / Docebo database the forma-* connectors write."""


@lms_group.command("init")
@click.option("--prefix", default="", metavar="TEXT",
              help="Text before every table name (site2_ makes site2_core_user); default none.")
@json_option
@pass_app
def lms_init(app: App, prefix: str, as_json: bool) -> None:
    """Create the forma tables the forma-* connectors use (users, groups, org chart, courses,
    enrollments, custom fields) in the iotask database, or in the one --db names, with forma's
    column types, defaults and seed groups (/oc_0, /ocd_0, /framework/level/...).

    A database that already holds any of these tables is refused and left as it is: point the
    connectors' `database` setting at a real forma site instead.

    \b
    Example:
      iotask lms init --db sqlite:///lms.db
      iotask connection add hr-users --type forma-users --set database=sqlite:///lms.db
    """
    url = app.config.database_url
    created = lms.init(url, prefix)
    if as_json:
        emit_json({"database": db.masked(url), "prefix": prefix, "tables": created.tables,
                   "groups": created.groups})
        return
    app.tell(f"created {len(created.tables)} forma tables in {db.masked(url)}"
             f"{f' (prefix {prefix})' if prefix else ''}: {', '.join(created.tables)}")
