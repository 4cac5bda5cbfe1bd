"""`iotask demo`: sample connections and tasks for a first look."""

from __future__ import annotations

from pathlib import Path

import click

from iotask import demo
from iotask.cli.app import App, pass_app
from iotask.cli.tasks import task_list


@click.command("demo")
@click.option("--folder", type=click.Path(),
              help="Where the sample files go (inside IOTASK_FILE_ROOTS); default: a demo "
                   "folder in the first of them, ./iofiles/demo.")
@pass_app
def demo_command(app: App, folder: str | None) -> None:
    """Build the demo LMS and list its tasks (idempotent): forma's tables in the iotask database
    (lms init) when missing, an HR system's files (org chart, 200 people, a catalogue,
    enrollments with completions) in the demo folder, and the connections and tasks that import
    them in sequence and export the completions. `iotask run-due` then runs them."""
    roots = app.config.file_roots
    with app.session() as session:
        created = demo.set_up(session, Path(folder).resolve() if folder else roots[0] / "demo",
                              roots)
    app.say(f"created: {', '.join(created)}" if created else "demo already set up")
    click.get_current_context().invoke(task_list, as_json=False)
