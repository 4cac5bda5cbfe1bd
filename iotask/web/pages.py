"""The console's pages that read: the task list, a task with its run history and chart, and
the downloads of a run's reject file and report. Every list is a page of rows from the
database, never the whole table."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, send_file, url_for
from sqlalchemy import func, select, true
from sqlalchemy.orm import Session

from iotask import clock, connections, db, report, schedule, tasks
from iotask.errors import IotaskError
from iotask.models import Connection, Task, TaskRun
from iotask.run_status import RunStatus
from iotask.web import chart
from iotask.web.state import console

bp = Blueprint("pages", __name__)

TASKS_PER_PAGE = 50
RUNS_PER_PAGE = 20
CHART_RUNS = 30
FILTERS = ("running", "disabled", "never", *(s.value for s in RunStatus
                                               if s not in (RunStatus.RUNNING,)))


def page_number() -> int:
    try:
        return max(1, min(int(request.args.get("page", "1")), 10**6))
    except ValueError:
        return 1


def relative(when: datetime | None, now: datetime) -> str:
    """'in 3 h', '12 min ago': how far ``when`` is from now, as a person says it."""
    if when is None:
        return ""
    seconds = (when - now).total_seconds()
    size = abs(seconds)
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if size >= length:
            amount = f"{size / length:.0f} {unit}"
            break
    else:
        amount = f"{size:.0f} s"
    return f"in {amount}" if seconds >= 0 else f"{amount} ago"


def shown_time(value: str | None) -> str:
    """An ISO time of the report (already in the configured zone) as a person reads it."""
    if value is None:
        return ""
    local = datetime.fromisoformat(value).astimezone(console().config.timezone)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


def duration(run: TaskRun) -> float | None:
    return None if run.finished is None else (run.finished - run.started).total_seconds()


def _filtered(status: str, now: datetime) -> Any:
    query = select(Task)
    if status == "running":
        return query.where(Task.locked_until >= now)
    if status == "disabled":
        return query.where(Task.enabled != true())
    if status == "never":
        return query.where(Task.last_status.is_(None))
    if status:
        return query.where(Task.last_status == status)
    return query


def _last_runs(session: Session, names: list[str]) -> dict[str, TaskRun]:
    """The latest run (resets left out) of each of these tasks: one query for the page."""
    if not names:
        return {}
    latest = (select(func.max(TaskRun.id)).where(TaskRun.task.in_(names),
                                                 TaskRun.status != RunStatus.RESET)
              .group_by(TaskRun.task))
    return {run.task: run for run in session.scalars(select(TaskRun)
                                                     .where(TaskRun.id.in_(latest)))}


def _next_due(task: Task, now: datetime, running: bool) -> dict[str, str]:
    tz = console().config.timezone
    if running:
        return {"text": "running", "when": task.locked_by or ""}
    if not task.enabled:
        return {"text": "disabled", "when": ""}
    try:
        due = schedule.due_at(task, tz)
    except schedule.ScheduleError:
        return {"text": "unreadable schedule", "when": ""}
    if due is None or due <= now:
        return {"text": "now", "when": ""}
    if due == schedule.NEVER:
        return {"text": "parked", "when": ""}
    return {"text": relative(due, now), "when": clock.show(due, tz)}


def run_view(run: TaskRun | None, now: datetime) -> dict[str, Any] | None:
    if run is None:
        return None
    tz = console().config.timezone
    return {"id": run.id, "status": run.status, "started": clock.show(run.started, tz),
            "ago": relative(run.started, now), "duration": duration(run),
            "counts": {name: getattr(run, f"rows_{name}") for name in report.COUNT_NAMES}}


@bp.route("/")
def home() -> Any:
    return redirect(url_for("pages.task_list"))


@bp.route("/tasks")
def task_list() -> Any:
    state = console()
    status = request.args.get("status", "")
    if status and status not in FILTERS:
        abort(400, f"unknown status filter {status!r}: one of {', '.join(FILTERS)}")
    page = page_number()
    now = clock.utcnow()
    with Session(db.reader(state.engine)) as session:
        query = _filtered(status, now)
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = list(session.scalars(query.order_by(Task.sequence, Task.name)
                                    .offset((page - 1) * TASKS_PER_PAGE)
                                    .limit(TASKS_PER_PAGE)))
        last = _last_runs(session, [row.name for row in rows])
        shown = []
        for row in rows:
            running = (row.locked_until is not None and row.locked_until >= now) \
                or state.runs.running(row.name)
            parsed = tasks.schedule_of(row)
            shown.append({
                "name": row.name, "source": row.conn_source,
                "destination": row.conn_destination, "enabled": bool(row.enabled),
                "schedule": schedule.in_words(parsed) if parsed else "unreadable schedule",
                "next_due": _next_due(row, now, running), "running": running,
                "last_status": "running" if running else row.last_status,
                "last_run": run_view(last.get(row.name), now),
            })
    pages = max(1, -(-total // TASKS_PER_PAGE))
    return render_template("tasks.html", tasks=shown, status=status, filters=FILTERS,
                           page=page, pages=pages, total=total)


def _task_or_404(session: Session, name: str) -> Task:
    row = session.get(Task, name)
    if row is None:
        abort(404, f"no task named {name!r}")
    return row


def connection_view(session: Session, name: str) -> dict[str, Any]:
    """A connection as the console shows it: its settings through the connectors' masking
    (a secret is one fixed mask, whatever its value or length)."""
    row = session.get(Connection, name)
    if row is None:
        return {"name": name, "type": "missing", "params": {}}
    shown = connections.describe(session, row)
    shown["params"] = {key: json.dumps(value, ensure_ascii=False) if not isinstance(value, str)
                       else value for key, value in shown["params"].items()}
    return shown


@bp.route("/task")
def task_page() -> Any:
    state = console()
    tz = state.config.timezone
    name = request.args.get("name", "")
    page = page_number()
    now = clock.utcnow()
    with Session(db.reader(state.engine)) as session:
        row = _task_or_404(session, name)
        described = tasks.describe(row, tz)
        total = session.scalar(select(func.count()).select_from(TaskRun)
                               .where(TaskRun.task == name)) or 0
        recent = list(session.scalars(
            select(TaskRun).where(TaskRun.task == name, TaskRun.status != RunStatus.RESET,
                                  TaskRun.finished.is_not(None))
            .order_by(TaskRun.id.desc()).limit(CHART_RUNS)))
        source = connection_view(session, row.conn_source)
        destination = connection_view(session, row.conn_destination)
        running = (row.locked_until is not None and row.locked_until >= now) \
            or state.runs.running(name)
        next_due = _next_due(row, now, running)
    runs = report.history(state.engine, name, RUNS_PER_PAGE, tz,
                          offset=(page - 1) * RUNS_PER_PAGE)
    for run in runs:
        for key in ("started", "finished"):
            run[key] = shown_time(run[key])
    svg = chart.svg([(r.rows_read, duration(r) or 0.0, r.status) for r in reversed(recent)])
    pages = max(1, -(-total // RUNS_PER_PAGE))
    return render_template("task.html", task=described, runs=runs, page=page, pages=pages,
                           total=total, source=source, destination=destination,
                           running=running, next_due=next_due, chart=svg,
                           problem=state.runs.problem(name))


def _run_or_404(run_id: str) -> TaskRun:
    try:
        number = int(run_id)
    except ValueError:
        abort(404, "no such run")
    with Session(db.reader(console().engine)) as session:
        run = session.get(TaskRun, number)
    if run is None:
        abort(404, f"no run {number}")
    return run


@bp.route("/run/rejects")
def reject_file() -> Any:
    """A run's reject file, if it is still there and inside the configured reject folder."""
    run = _run_or_404(request.args.get("id", ""))
    if not run.reject_file:
        abort(404, f"run {run.id} rejected no rows into a file")
    folder = console().config.reject_dir.resolve()
    path = Path(run.reject_file).resolve()
    if not path.is_relative_to(folder):
        abort(404, f"run {run.id}'s reject file is outside the reject folder {folder}")
    if not path.is_file():
        abort(404, f"run {run.id}'s reject file is gone (moved or cleaned up?)")
    return send_file(path, mimetype="text/csv", as_attachment=True, download_name=path.name)


@bp.route("/run/report")
def run_report() -> Any:
    """One run as JSON: counts, times, files, notes and every stored rejected row."""
    run = _run_or_404(request.args.get("id", ""))
    tz = console().config.timezone
    found = report.history(console().engine, run.task, 1, tz, errors_per_run=100_000,
                           run_id=run.id)
    if not found:
        raise IotaskError(f"run {run.id} is gone")
    body = json.dumps(found[0], indent=2, ensure_ascii=False) + "\n"
    return body, 200, {"Content-Type": "application/json; charset=utf-8",
                       "Content-Disposition": f'attachment; filename="run-{run.id}.json"'}
