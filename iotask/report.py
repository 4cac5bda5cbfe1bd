"""What a run-due, run, status or history call tells people and scripts: lines, JSON, XML.

The XML is Docebo's cron report made well-formed: one ``<iotasks>`` root, every value escaped.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from shlex import quote
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from iotask import clock, db, schedule
from iotask.connectors.context import ChangeKind
from iotask.models import Task, TaskRun, TaskRunError
from iotask.run_status import RunStatus
from iotask.runner import TaskResult
from iotask.tasks import next_due_text

COUNT_NAMES = ("read", "inserted", "updated", "unchanged", "removed", "failed")


def counts_text(counts: Any) -> str:
    return ", ".join(f"{name} {getattr(counts, name)}" for name in COUNT_NAMES)


def summary_line(result: TaskResult) -> str:
    """One line per executed task, as -v prints it."""
    if not result.executed:
        return f"{result.task}: not executed ({result.error or result.note})"
    line = (f"{result.task}: {result.status} in {result.duration or 0:.1f}s "
            f"(run {result.run_id}): {counts_text(result.counts)}")
    if result.reject_file:
        line += f"; rejected rows in {result.reject_file}"
    if result.error:
        line += f": {result.error}"
    return line + "".join(f"\n  {note}" for note in result.notes)


def problem_line(result: TaskResult) -> str | None:
    """The stderr line cron mails: failures, holds, rejected rows. None when all is well."""
    if result.executed and result.status in (RunStatus.FAILED, RunStatus.HELD,
                                             RunStatus.ABANDONED, RunStatus.MISSING_INPUT):
        return f"task {result.task!r} {result.status} (run {result.run_id}): {result.error}"
    if not result.executed and result.status == RunStatus.FAILED:
        return f"task {result.task!r} not run: {result.error}"
    if result.executed and result.counts.failed:
        rejects = f", fix and resubmit {result.reject_file}" if result.reject_file else ""
        return (f"task {result.task!r}: {result.counts.failed} rows rejected "
                f"(run {result.run_id}; see `iotask history {quote(result.task)}`{rejects})")
    return None


def dry_run(result: TaskResult) -> dict[str, Any]:
    """A dry run for scripts: the change set, sample keys, rejected rows, the guards' verdict."""
    changes = result.changes
    return {
        "task": result.task,
        "status": result.status,
        "read": result.counts.read,
        "rejected": result.counts.failed,
        "changes": None if changes is None else {
            **{kind: getattr(changes, kind.counted) for kind in ChangeKind},
            "owned": changes.owned, "removal": changes.removal},
        "samples": changes.samples if changes is not None else {},
        "verdict": result.note,
        "error": result.error,
        "row_errors": [{"row": e.row_index, "key": e.key_values, "column": e.column,
                        "message": e.message} for e in result.row_errors[:10]],
    }


def dry_run_text(result: TaskResult) -> str:
    """A dry run for a person: what would change, a few keys of each kind, and the verdict."""
    changes = result.changes
    if changes is None:
        return f"{result.task}: dry run {result.status}: {result.error or 'no change set'}"
    removal = "deactivate" if changes.removal == "deactivate" else "delete"
    lines = [f"{result.task}: dry run, nothing applied: read {result.counts.read}, "
             f"would insert {changes.inserted}, update {changes.updated}, leave "
             f"{changes.unchanged} unchanged, {removal} {changes.removed} of "
             f"{changes.owned} owned; {result.counts.failed} rows rejected"]
    for kind, keys in changes.samples.items():
        if keys:
            lines.append(f"  {kind}: " + "; ".join(keys))
    for error in result.row_errors[:10]:
        lines.append(f"  rejected row {error.row_index}: {error.message}")
    lines.append(f"  guards: {result.note}" if result.note else
                 "  guards: pass, a real run would apply this")
    return "\n".join(lines)


def result_dict(result: TaskResult, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "task": result.task,
        "executed": result.executed,
        "status": result.status,
        "run_id": result.run_id,
        "started": clock.iso(result.started, tz),
        "finished": clock.iso(result.finished, tz),
        "duration_seconds": result.duration,
        "scheduled": clock.iso(result.scheduled, tz),
        "counts": {name: getattr(result.counts, name) for name in COUNT_NAMES},
        "error": result.error,
        "note": result.note,
        "reject_file": result.reject_file,
        "notes": result.notes,
        "row_errors": [{"row": e.row_index, "key": e.key_values, "column": e.column,
                        "message": e.message} for e in result.row_errors],
    }


def to_json(results: Sequence[TaskResult], tz: ZoneInfo) -> str:
    return json.dumps({"ok": all(r.ok for r in results),
                       "tasks": [result_dict(r, tz) for r in results]},
                      indent=2, ensure_ascii=False)


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    """``value`` with each character XML 1.0 cannot hold written as ``\\xNN``, so the report
    stays well-formed and still says what the data held."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                        else f"\\u{ord(m.group()):04x}", value)


def _xml_time(value, tz: ZoneInfo) -> str:
    return clock.to_local(value, tz).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def to_xml(results: Sequence[TaskResult], tz: ZoneInfo) -> str:
    """Docebo's ``<iotask>`` report, well-formed and escaped, under one ``<iotasks>`` root."""
    root = ET.Element("iotasks")
    for result in results:
        node = ET.SubElement(root, "iotask", {
            "name": xml_text(result.task),
            "executed": "TRUE" if result.executed else "FALSE",
            "executionDate": _xml_time(result.started, tz),
            "scheduledDate": _xml_time(result.scheduled, tz),
            "inserted": str(result.counts.inserted),
            "removed": str(result.counts.removed),
            "updated": str(result.counts.updated),
            "unchanged": str(result.counts.unchanged),
            "failed": str(result.counts.failed),
            "status": result.status or "not_due",
        })
        if result.error:
            node.set("error", xml_text(result.error))
        for error in result.row_errors:
            row = ET.SubElement(node, "row", {"index": str(error.row_index or "")})
            ET.SubElement(row, "pk").text = xml_text(error.key_values or "")
            ET.SubElement(row, "error").text = xml_text(error.message)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


# --- status and history ---------------------------------------------------------------------

def _last_run(session: Session, name: str) -> TaskRun | None:
    return session.scalars(select(TaskRun).where(TaskRun.task == name,
                                                 TaskRun.status != RunStatus.RESET)
                           .order_by(TaskRun.id.desc()).limit(1)).first()


def status(engine: Engine, tz: ZoneInfo) -> list[dict[str, Any]]:
    """Every task: schedule in words, when it is next due, how its last run went."""
    now = clock.utcnow()
    rows = []
    with Session(db.reader(engine)) as session:
        for task in session.scalars(select(Task).order_by(Task.sequence, Task.name)):
            last = _last_run(session, task.name)
            try:
                words = schedule.in_words(schedule.parse(task.schedule_type, task.schedule))
            except schedule.ScheduleError as exc:
                words = f"unreadable: {exc}"
            next_due = next_due_text(task, tz, now)
            if task.locked_until is not None and task.locked_until >= now:
                next_due = f"running ({task.locked_by})"
            elif not task.enabled:
                next_due = "disabled"
            rows.append({
                "name": task.name,
                "enabled": bool(task.enabled),
                "schedule": words,
                "next_due": next_due,
                "last_execution": clock.iso(task.last_execution, tz),
                "last_status": task.last_status,
                "fail_count": task.fail_count,
                "last_run": None if last is None else {
                    "id": last.id, "status": last.status,
                    "started": clock.iso(last.started, tz),
                    "duration_seconds": _duration(last),
                },
                "last_error": task.last_error,
            })
    return rows


def _duration(run: TaskRun) -> float | None:
    return None if run.finished is None else (run.finished - run.started).total_seconds()


def history(engine: Engine, name: str, limit: int, tz: ZoneInfo,
            errors_per_run: int = 10, offset: int = 0,
            run_id: int | None = None) -> list[dict[str, Any]]:
    """The task's latest runs, newest first, each with its first row errors: a page of them
    from ``offset`` (the console's history), or the one run ``run_id``."""
    query = select(TaskRun).where(TaskRun.task == name)
    if run_id is not None:
        query = query.where(TaskRun.id == run_id)
    with Session(db.reader(engine)) as session:
        runs = list(session.scalars(query.order_by(TaskRun.id.desc()).offset(offset)
                                    .limit(limit)))
        error_counts = dict(session.execute(
            select(TaskRunError.run_id, func.count()).where(
                TaskRunError.run_id.in_([r.id for r in runs])).group_by(TaskRunError.run_id)
        ).all()) if runs else {}
        result = []
        for run in runs:
            row_errors = []
            if error_counts.get(run.id):
                row_errors = list(session.scalars(
                    select(TaskRunError).where(TaskRunError.run_id == run.id)
                    .order_by(TaskRunError.id).limit(errors_per_run)))
            result.append({
                "id": run.id, "trigger": run.triggered_by, "runner": run.runner,
                "started": clock.iso(run.started, tz), "finished": clock.iso(run.finished, tz),
                "duration_seconds": _duration(run),
                "status": run.status,
                "counts": {name: getattr(run, f"rows_{name}") for name in COUNT_NAMES},
                "files": json.loads(run.files) if run.files else [],
                "error": run.error,
                "notes": json.loads(run.notes) if run.notes else [],
                "reject_file": run.reject_file,
                "row_errors": [{"row": e.row_index, "key": e.key_values,
                                "column": e.column_name, "message": e.message}
                               for e in row_errors],
                "row_errors_stored": error_counts.get(run.id, 0),
            })
    return result
