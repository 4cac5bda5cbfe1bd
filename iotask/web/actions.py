"""What an admin does to a task from the console: Run now, Dry run, Accept held changes,
Reset, Enable and Disable. Each is a POST with the session's CSRF token; viewers get 403.
Runs go to the background (``state.BackgroundRuns``) so the page answers at once."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session

from iotask import claims, db, report, tasks
from iotask.models import Task
from iotask.runner import Runner
from iotask.web.auth import admin_required, current_user
from iotask.web.state import console

log = logging.getLogger("iotask.web.actions")

bp = Blueprint("actions", __name__)

ACTIONS = ("run", "accept", "dry-run", "reset", "enable", "disable")


@bp.route("/task/action", methods=["POST"])
@admin_required
def task_action() -> Any:
    state = console()
    name = request.form.get("name", "")
    action = request.form.get("action", "")
    if action not in ACTIONS:
        abort(400, f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
    with Session(db.reader(state.engine)) as session:
        if session.get(Task, name) is None:
            abort(404, f"no task named {name!r}")
    user = current_user().name
    log.info("console: %s asked to %s task %s", user, action, name)
    if action in ("run", "accept"):
        if not state.runs.start(name, accept_changes=action == "accept"):
            flash(f"{name} is already running from this console")
    elif action == "dry-run":
        result = Runner(state.engine, state.config, "console").dry_run(name)
        return render_template("dry_run.html", task=name, dry=report.dry_run(result))
    elif action == "reset":
        for change in tasks.reset(state.engine, state.config.timezone, [name],
                                  who=f"console:{user}@{claims.runner_name()}"):
            flash(change.message)
    else:
        with Session(state.engine) as session, session.begin():
            tasks.edit(session, name, tasks.TaskChanges(enabled=action == "enable"))
        flash(f"{name} {action}d")
    return redirect(url_for("pages.task_page", name=name))
