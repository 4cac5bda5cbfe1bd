"""`iotask schedule export | import`: every task and its connections as an OPML 2.0 file."""

from __future__ import annotations

from pathlib import Path

import click

from iotask import opml
from iotask.cli.app import CONTEXT, App, pass_app
from iotask.errors import IotaskError


@click.group("schedule", context_settings=CONTEXT)
def schedule_group() -> None:
    """Task schedules as OPML files (PeopleFluent's form): export, edit, import elsewhere."""


@schedule_group.command("export")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def schedule_export(app: App, file: Path | None) -> None:
    """Write every task, with its source and destination connections, as OPML to FILE (default:
    stdout). Secrets stay out: env: references are kept, typed secrets are left out with a
    comment saying how to set them again."""
    with app.session(read_only=True) as session:
        text = opml.export(session)
    if file is None:
        click.echo(text)
        return
    try:
        file.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise IotaskError(f"cannot write {file}: {exc.strerror}") from None
    app.tell(f"wrote {file}")


@schedule_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@click.option("--prune", is_flag=True, help="Also remove the tasks the file does not hold.")
@pass_app
def schedule_import(app: App, file: Path, dry_run: bool, prune: bool) -> None:
    """Create or update the tasks (and connections) FILE holds, printing each change. Importing
    the same file again changes nothing; a task is removed only with --prune."""
    try:
        with open(file, "rb") as handle:
            data = handle.read(opml.MAX_BYTES + 1)
    except OSError as exc:
        raise IotaskError(f"cannot read {file}: {exc.strerror}") from None
    with app.session() as session:
        done = opml.import_(session, data, str(file), app.config.file_roots, prune)
        if dry_run:
            session.rollback()
    for line in done.lines:
        if dry_run or app.verbose or app.at_terminal or not line.startswith("unchanged"):
            click.echo(("would be: " if dry_run else "") + line)
