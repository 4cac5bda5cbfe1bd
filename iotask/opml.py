"""Task schedules as OPML 2.0 files, as PeopleFluent keeps them: `iotask schedule export` writes
every task with its two connections; `iotask schedule import` creates or updates them, the same
file twice changing nothing the second time.

Secrets never leave in a file: a setting read from the environment stays ``env:NAME``; a secret
typed into the connection is left out, with a comment saying how to set it again.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from iotask import connections, registry, tasks
from iotask.connectors.masking import mask_url
from iotask.errors import IotaskError
from iotask.models import Connection, Task

MAX_BYTES = 10 * 1024 * 1024  # a schedule file is small; a larger one is refused unread
TASK_FIELDS = ("description", "schedule_type", "schedule", "import_type", "sequence", "enabled",
               "notify_email", "notify", "expect", "max_errors", "max_remove", "allow_empty",
               "map")


class OpmlError(IotaskError):
    """A schedule file that cannot be imported; the message says where and why."""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _public(session: Session, row: Connection) -> tuple[dict[str, Any], list[str]]:
    """The connection's settings as a file may hold them, and the secrets left out."""
    cls = registry.connector_class(session, row.type)
    params, left_out = {}, []
    for key, value in connections.stored_params(row).items():
        setting = next((s for s in cls.settings if s.name == key), None)
        if setting is not None and setting.secret and not isinstance(value, dict):
            left_out.append(key)
            continue
        if setting is not None and setting.kind == "url" and isinstance(value, str):
            masked = mask_url(value)
            if masked != value:
                left_out.append(f"{key} (its password)")
                value = masked.replace(":***@", "@")
        params[key] = value
    return params, left_out


def export(session: Session) -> str:
    """Every task, in run order, as an OPML 2.0 document."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = "iotask schedules"
    ET.SubElement(head, "dateCreated").text = formatdate(usegmt=True)
    body = ET.SubElement(root, "body")
    for task in tasks.list_all(session):
        outline = ET.SubElement(body, "outline", {"text": task.name, "type": "iotask-task"})
        for name in TASK_FIELDS:
            outline.set(name, _text(getattr(task, name)))
        for role, name in (("source", task.conn_source), ("destination", task.conn_destination)):
            row = connections.get(session, name)
            params, left_out = _public(session, row)
            if left_out:  # "--" may not appear in an XML comment, names included
                note = (f"connection {name}: {', '.join(left_out)} left out (secret); after "
                        "importing, set it with iotask connection edit, giving KEY=env:VARIABLE")
                outline.append(ET.Comment(" " + note.replace("--", "- -") + " "))
            ET.SubElement(outline, "outline", {
                "text": name, "type": "iotask-connection", "role": role,
                "connector": row.type, "description": row.description or "",
                "params": json.dumps(params, ensure_ascii=False, sort_keys=True)})
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


@dataclass
class Imported:
    """What an import did (or, in a dry run, would do), a line per change."""

    lines: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(not line.startswith("unchanged") for line in self.lines)


def _parse(data: bytes, where: str) -> ET.Element:
    if len(data) > MAX_BYTES:
        raise OpmlError(f"{where} is {len(data):,} bytes: a schedule file is at most "
                        f"{MAX_BYTES:,}; nothing was imported")
    if re.search(rb"<!(DOCTYPE|ENTITY)", data, re.IGNORECASE):
        raise OpmlError(f"{where} declares a DOCTYPE or entities, which a schedule file never "
                        "needs: refused, nothing was imported")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise OpmlError(f"{where} is not well-formed XML ({exc}): nothing was imported") from None
    if root.tag != "opml" or root.find("body") is None:
        raise OpmlError(f"{where} is not an OPML file (<opml><body>...): nothing was imported")
    return root


def _task_changes(outline: ET.Element, where: str) -> tasks.TaskChanges:
    values = {name: outline.get(name, "") for name in TASK_FIELDS}
    try:
        sequence = int(values["sequence"] or 0)
    except ValueError:
        raise OpmlError(f"{where}: sequence {values['sequence']!r} is not a number") from None
    return tasks.TaskChanges(
        description=values["description"], schedule_type=values["schedule_type"] or None,
        schedule=values["schedule"] or None, import_type=values["import_type"] or None,
        sequence=sequence, enabled=values["enabled"] != "false",
        email=values["notify_email"], notify=values["notify"], expect=values["expect"],
        map=values["map"] or None,
        max_errors=values["max_errors"], max_remove=values["max_remove"],
        allow_empty=values["allow_empty"] == "true")


def _connection(session: Session, outline: ET.Element, where: str, file_roots: Any,
                done: Imported, seen: set[str]) -> str:
    name = outline.get("text", "")
    if name in seen:
        return name
    seen.add(name)
    type_name = outline.get("connector", "")
    try:
        params = json.loads(outline.get("params") or "{}")
    except json.JSONDecodeError as exc:
        raise OpmlError(f"{where}: connection {name!r}: params is not JSON ({exc.msg})") from None
    if not isinstance(params, dict):
        raise OpmlError(f"{where}: connection {name!r}: params must be a JSON object")
    existing = session.get(Connection, name)
    if existing is None:
        connections.add(session, name, type_name, outline.get("description", ""),
                        params_json=json.dumps(params), file_roots=file_roots)
        done.lines.append(f"added connection {name}")
        return name
    stored = connections.stored_params(existing)
    merged = {**{k: v for k, v in stored.items() if k not in params}, **params}
    if existing.type == type_name and merged == stored and \
            (existing.description or "") == outline.get("description", ""):
        done.lines.append(f"unchanged connection {name}")
        return name
    connections.edit(session, name, outline.get("description", ""), type_name,
                     params_json=json.dumps(merged), file_roots=file_roots)
    done.lines.append(f"changed connection {name}")
    return name


def _differs(row: Task, changes: tasks.TaskChanges) -> list[str]:
    probe = Task(name=row.name, description="", import_type="insert", sequence=0, enabled=True,
                 fail_count=0, allow_empty=False)
    for name in ("conn_source", "conn_destination", *TASK_FIELDS):
        setattr(probe, name, getattr(row, name))
    before = {name: getattr(probe, name) for name in TASK_FIELDS}
    tasks.apply_fields(probe, changes)
    return [name for name in TASK_FIELDS if getattr(probe, name) != before[name]]


def _task(session: Session, name: str, changes: tasks.TaskChanges, file_roots: Any,
          checked: tasks.MapChecks) -> str:
    """Add or change one task; what was done, as a line of the report."""
    row = session.get(Task, name)
    if row is None:
        tasks.add(session, name, changes, file_roots, now=True, checked=checked)
        return f"added task {name}"
    differences = _differs(row, changes)
    if row.conn_source != changes.source or row.conn_destination != changes.destination:
        differences.insert(0, "connections")
    if not differences:
        return f"unchanged task {name}"
    tasks.edit(session, name, changes, file_roots, checked)
    return f"changed task {name}: {', '.join(differences)}"


def import_(session: Session, data: bytes, where: str, file_roots: Any,
            prune: bool = False) -> Imported:
    """Create or update every task the file holds (and its connections); with ``prune``,
    remove the tasks it does not hold. The caller commits (or, for a dry run, rolls back)."""
    root = _parse(data, where)
    done, seen_connections, named = Imported(), set[str](), []
    checked: tasks.MapChecks = set()
    for number, outline in enumerate(root.iter("outline"), start=1):
        if outline.get("type") != "iotask-task":
            continue
        name = outline.get("text", "")
        at = f"{where} task outline {number} ({name!r})"
        ends = {child.get("role"): child for child in outline
                if child.tag == "outline" and child.get("type") == "iotask-connection"}
        if set(ends) != {"source", "destination"}:
            raise OpmlError(f"{at}: needs a source and a destination connection outline")
        changes = _task_changes(outline, at)
        changes.source = _connection(session, ends["source"], at, file_roots, done,
                                     seen_connections)
        changes.destination = _connection(session, ends["destination"], at, file_roots, done,
                                          seen_connections)
        named.append(name)
        try:
            done.lines.append(_task(session, name, changes, file_roots, checked))
        except IotaskError as exc:  # which of thousands of tasks, then what is wrong with it
            raise OpmlError(f"{at}: {exc}: nothing was imported") from None
    if prune:
        for name in session.scalars(select(Task.name).order_by(Task.name)):
            if name not in named:
                tasks.remove(session, name)
                done.lines.append(f"removed task {name} (not in {where})")
    return done
