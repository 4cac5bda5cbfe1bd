"""What every connector declares: its type name, whether it reads and/or writes, its settings.

A connector module exposes its class as the module attribute ``CONNECTOR``; iotask records the
module path and class name in ``core_connector`` and loads it back with importlib, never eval.
Settings are declared here so that a connection is validated before it is saved, and so that
secrets are known and masked in every output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from sqlalchemy import Connection

MASK = "********"

KINDS = ("str", "int", "bool", "list", "url")
ENV_PREFIX = "env:"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


Row = dict[str, Any]
Batch = list[Row]


class ConnectorError(Exception):
    """The endpoint cannot be read or written as configured; the message says what and where."""


class NothingToProcess(Exception):
    """The source has nothing new (no file yet): the run ends without counting as a failure."""


class NotReadyYet(NothingToProcess):
    """Files are there but still being written: the task stays due, so the next run-due (a
    minute later under cron) takes them once they are complete, not the next day."""


class Held(Exception):
    """A guard stopped the run before anything was applied; a person must look at it."""


class LeaseLost(Exception):
    """Another runner took the task over (this one was presumed dead): do not commit."""


class FilesFailed(ConnectorError):
    """Some files of a run failed (kept for the next run); the others were applied."""


@dataclass
class Unit:
    """One file a source reads as its own unit of work: applied, then consumed.

    ``where`` names it for people (never with a password); ``sha256`` and ``size`` are known
    once the source has opened it. A file read in place every run (``once`` False: a fixed
    file the sender overwrites) is imported whatever its content.
    """

    name: str
    where: str
    handle: Any = None  # the source's own reference (a listed remote file)
    once: bool = True  # consumed after import: the same content is not imported twice
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Column:
    """A column an endpoint has: whether a destination needs a value, whether it is a key, and
    (when known) its type and default as the database states them, for people reading a map."""

    name: str
    required: bool = False
    key: bool = False
    type: str | None = None
    default: str | None = None


@dataclass
class Counts:
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0


SAMPLE_KEYS = 10  # keys shown per kind of change by a dry run


@dataclass
class ChangeSet:
    """What applying the staged rows would do, computed before anything is applied.

    ``owned`` is how many records the task's source owned before the run: the base of the
    removal guard. ``samples`` holds up to SAMPLE_KEYS keys per kind, filled for dry runs.
    """

    inserts: int = 0
    updates: int = 0
    unchanged: int = 0
    removes: int = 0
    owned: int = 0
    removal: str = "delete"  # or "deactivate"
    samples: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class RowError:
    """One rejected row: where it was (the physical line for files), its key, and why."""

    row_index: int | None
    message: str
    key_values: str | None = None
    column: str | None = None


class RunContext(Protocol):
    """What the runner gives a connector during one run."""

    task: str
    run_id: int
    import_type: str  # "insert" or "sync"
    database_url: str | None  # the iotask database, the default for SQL connectors
    key: list[str] | None  # the key columns the task's map names, over the destination's own
    owner: str | None  # what a destination writes in its ownership column: the source's name
    dry_run: bool  # compute and review the change set, then discard it
    file_roots: list[Path] | None  # folders file: URLs must stay in; None: not confined
    reimport: bool  # apply files whose content was imported before
    counts: Counts
    files: list[str]
    notes: list[str]  # what happened to each file, for the run's record

    def row_error(self, error: RowError) -> None:
        """Record a rejected row; the run goes on. A source counts the rows it rejects as read."""

    def review(self, changes: ChangeSet) -> bool:
        """Called by a destination with its change set before applying anything.

        True: apply it. False: discard it (a dry run). Raises Held, or a ConnectorError for too
        many rejected rows, when a guard stops the run.
        """

    def imported_before(self, unit: Unit) -> str | None:
        """When (and as what) this task imported a file with ``unit``'s SHA-256; None if never."""

    def record_import(self, unit: Unit) -> None:
        """Remember ``unit``'s name, size and SHA-256 as imported by this task."""

    def unit_done(self, source: Connector) -> None:
        """A file is finished (applied or not): its rejected rows go to its reject file."""

    def check_lease(self, connection: Connection | None = None) -> None:
        """Raise LeaseLost unless this runner still owns the task. Call right before commit.

        A destination writing to a database passes its connection: when that is the iotask
        database the check runs in the same transaction and commits with the data.
        """


@dataclass
class MemoryContext:
    """A RunContext outside the runner (previews, tests): row errors kept in a list."""

    task: str = "preview"
    run_id: int = 0
    import_type: str = "insert"
    database_url: str | None = None
    key: list[str] | None = None
    owner: str | None = None
    dry_run: bool = False
    file_roots: list[Path] | None = None
    reimport: bool = False
    counts: Counts = field(default_factory=Counts)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    changes: ChangeSet | None = None
    imported: dict[str, str] = field(default_factory=dict)  # SHA-256: name

    def imported_before(self, unit: Unit) -> str | None:
        name = self.imported.get(unit.sha256 or "")
        return f"as {name}" if name else None

    def record_import(self, unit: Unit) -> None:
        if unit.sha256:
            self.imported[unit.sha256] = unit.name

    def unit_done(self, source: Connector) -> None:
        return None

    def row_error(self, error: RowError) -> None:
        self.errors.append(error)
        self.counts.failed += 1

    def review(self, changes: ChangeSet) -> bool:
        self.changes = changes
        return not self.dry_run

    def check_lease(self, connection: Connection | None = None) -> None:
        return None


class SettingsError(ValueError):
    """A connection's settings do not fit its connector's schema; the message names the key."""


@dataclass(frozen=True)
class Setting:
    """One declared setting of a connector."""

    name: str
    kind: str = "str"
    required: bool = False
    default: Any = None
    secret: bool = False
    choices: tuple[str, ...] = ()
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"setting {self.name}: kind must be one of {', '.join(KINDS)}")

    def from_text(self, text: str) -> Any:
        """Turn a command-line ``KEY=VALUE`` value into this setting's type.

        A secret may be ``env:NAME``: read from that environment variable at run time, so the
        password never sits in ``core_connection``.
        """
        if self.secret and text.startswith(ENV_PREFIX) and ENV_NAME.match(text[len(ENV_PREFIX):]):
            return {"env": text[len(ENV_PREFIX):]}
        if self.kind == "int":
            try:
                return int(text)
            except ValueError:
                got = MASK if self.secret else repr(text)
                raise SettingsError(
                    f"setting {self.name!r} must be a whole number, got {got}"
                ) from None
        if self.kind == "bool":
            word = text.strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
            got = MASK if self.secret else repr(text)
            raise SettingsError(f"setting {self.name!r} must be true or false, got {got}")
        if self.kind == "list":
            return [item.strip() for item in text.split(",") if item.strip()]
        return text

    def check(self, value: Any) -> Any:
        """Validate a typed value (from JSON or from_text); return it normalised."""
        if self.secret and isinstance(value, dict):
            if set(value) != {"env"} or not isinstance(value["env"], str) \
                    or not ENV_NAME.match(value["env"]):
                raise SettingsError(f'setting {self.name!r}: a secret from the environment is '
                                    '{"env": "VARIABLE_NAME"} (or --set KEY=env:VARIABLE_NAME)')
            return value
        expected = {"str": str, "url": str, "int": int, "bool": bool, "list": list}[self.kind]
        if (self.kind == "int" and isinstance(value, bool)) or not isinstance(value, expected):
            got = "a secret of another type" if self.secret else json.dumps(value)
            raise SettingsError(
                f"setting {self.name!r} must be {_kind_words(self.kind)}, got {got}"
            )
        if self.kind == "list" and not all(isinstance(item, str) for item in value):
            raise SettingsError(f"setting {self.name!r} must be a list of strings")
        if self.choices and value not in self.choices:
            got = MASK if self.secret else repr(value)
            raise SettingsError(
                f"setting {self.name!r} must be one of {', '.join(self.choices)}, got {got}"
            )
        return value

    def shown(self, value: Any) -> Any:
        """The value as it may appear in output: secrets masked, URL passwords hidden."""
        if value is None or value == "":
            return value
        if self.secret:
            return value if isinstance(value, dict) else MASK  # a variable's name is no secret
        if self.kind == "url":
            return mask_url_password(value)
        return value


def _kind_words(kind: str) -> str:
    return {
        "str": "a string",
        "url": "a URL string",
        "int": "a whole number",
        "bool": "true or false",
        "list": "a list of strings",
    }[kind]


def mask_url_password(url: str) -> str:
    """Hide the password part of any ``scheme://user:password@host/...`` URL."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


class Connector:
    """Base of every connector. Subclasses set the class attributes below."""

    type_name: ClassVar[str]
    description: ClassVar[str] = ""
    can_read: ClassVar[bool] = False
    can_write: ClassVar[bool] = False
    settings: ClassVar[tuple[Setting, ...]] = ()

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = self.validate(params)

    @classmethod
    def setting(cls, name: str) -> Setting:
        for item in cls.settings:
            if item.name == name:
                return item
        known = ", ".join(s.name for s in cls.settings) or "none"
        raise SettingsError(
            f"unknown setting {name!r} for connector type {cls.type_name!r} (known: {known})"
        )

    @classmethod
    def validate(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check every key and type; fill defaults; return the settings as they will be stored."""
        if not isinstance(params, Mapping):
            raise SettingsError("settings must be a JSON object of key: value pairs")
        result: dict[str, Any] = {}
        for key, value in params.items():
            setting = cls.setting(key)
            if value is not None:
                result[key] = setting.check(value)
        for setting in cls.settings:
            if setting.name not in result:
                if setting.required:
                    raise SettingsError(
                        f"missing required setting {setting.name!r} for connector type "
                        f"{cls.type_name!r}" + (f": {setting.help}" if setting.help else "")
                    )
                if setting.default is not None:
                    result[setting.name] = setting.default
        cls.check_settings(result)
        return result

    @classmethod
    def check_settings(cls, params: dict[str, Any]) -> None:
        """Rules that involve more than one setting; raise SettingsError to refuse."""

    @classmethod
    def check_location(cls, params: dict[str, Any], roots: list[Path]) -> None:
        """When a connection is saved: refuse a location no run could use (a file: path outside
        ``roots``, an unknown scheme), without network I/O; raise SettingsError."""

    def describe(self) -> str:
        """Where the data is, for messages: a file and line, a table."""
        return f"the {self.type_name} connection"

    def columns(self, context: RunContext) -> list[Column] | None:
        """The columns, in order; None when they cannot be known now (no file yet) or when any
        column is accepted. The map is checked against them when a task is saved and run."""
        return None

    def read(self, context: RunContext) -> Iterator[Batch]:
        """Sources: yield the rows in batches. Raise NothingToProcess when there is nothing new."""
        raise NotImplementedError(f"connector {self.type_name!r} cannot read")

    def progress(self) -> tuple[int, int] | None:
        """Sources that know their size: (bytes read so far, total bytes) during read, so a
        progress bar can show a percentage and an ETA; None shows rows and rate only."""
        return None

    def write(self, batches: Iterable[Batch], context: RunContext) -> None:
        """Destinations: apply every row in one transaction, counting into context.counts.

        Bad rows go to context.row_error and the rest goes on. Call context.check_lease() right
        before committing, so a runner presumed dead never commits over its successor.
        """
        raise NotImplementedError(f"connector {self.type_name!r} cannot write")

    def units(self, context: RunContext) -> list[Unit] | None:
        """File sources: the files this run takes, oldest first, each applied and consumed on
        its own. Raise NothingToProcess when none is ready. None: the source is one stream."""
        return None

    def open_unit(self, unit: Unit, context: RunContext) -> None:
        """Make ``unit`` the one read() reads (fetching it if remote); fill its sha256, size."""

    def close_unit(self, unit: Unit, outcome: str) -> str | None:
        """Done with ``unit``. ``outcome``: "consumed" (applied, or a copy of a file already
        applied): mark it so that it is not taken again (rename to .imported); "failed": leave
        it for the next run, or move it to a quarantine folder when one is configured; "kept"
        (held, dry run): leave it. Returns what was done to it, for the run's record, or None."""
        return None

    def close(self) -> None:
        """Drop connections and temporary copies; called once the run is done with the source."""

    def write_rejects(self, rejected: Mapping[int, str], folder: Path, stem: str) -> Path | None:
        """Sources: write the rows numbered in ``rejected`` (row index: message) again, in the
        source's own format plus an error column, as ``folder/stem.<ext>``; return the path.
        None when this source cannot (the errors are in the run's history all the same)."""
        return None

    @classmethod
    def shown(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Settings as they may be printed: every secret masked."""
        shown: dict[str, Any] = {}
        for key, value in params.items():
            try:
                shown[key] = cls.setting(key).shown(value)
            except SettingsError:
                shown[key] = MASK
        return shown

