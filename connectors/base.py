"""The Connector interface: what every connector declares and implements.

A connector module exposes its class as the module attribute ``CONNECTOR``; iotask records the
module path and class name in ``core_connector`` and loads it back with importlib, never eval.
Its settings (``iotask.connectors.settings``) are declared on the class, and what it exchanges
with a run (``iotask.connectors.context``) is typed beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

from iotask.connectors.context import (
    Batch,
    ChangeSet,
    Column,
    Progress,
    RunContext,
    Unit,
    UnitOutcome,
)
from iotask.connectors.errors import ConnectorError, SettingsError
from iotask.connectors.masking import MASK, remember, remember_url
from iotask.connectors.settings import Setting


class Connector:
    """Base of every connector. Subclasses set the class attributes below."""

    type_name: ClassVar[str]
    description: ClassVar[str] = ""
    can_read: ClassVar[bool] = False
    can_write: ClassVar[bool] = False
    settings: ClassVar[tuple[Setting, ...]] = ()
    rereadable: ClassVar[bool] = False  # sources: read() gives the same rows again (a local
    # file, a query), so a destination's pre-check may read them before the real pass

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = self.validate(params)
        for setting in self.settings:  # masked in every output from now on
            value = self.params.get(setting.name)
            if setting.secret:
                remember(value)
            elif setting.kind == "url":
                remember_url(value)

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

    def location(self) -> str:
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

    def write_fast(self, source: Connector, pairs: list[tuple[str, str | None, Any]] | None,
                   context: RunContext, progress: Progress | None = None) -> bool:
        """Destinations with a fast path for some sources: apply the source's rows, mapped by
        ``pairs`` ((destination, source column or None, constant); None: the source's columns
        as they are), exactly as ``write`` would, telling ``progress`` how far the read has got,
        and return True; return False having kept nothing when only ``write`` can (then the run
        reads the source again for it)."""
        return False
    def precheck(self, read: Callable[[], Iterable[Batch]], context: RunContext,
                 source: Connector | None = None,
                 pairs: list[tuple[str, str | None, Any]] | None = None) -> ChangeSet | None:
        """Destinations that can tell cheaply that they already hold exactly the rows
        ``read()`` gives (``source``'s rows mapped by ``pairs``, as ``write_fast`` has them):
        the change set of such a run (every row unchanged), found without staging or writing
        anything; None when they may differ or cannot tell. ``context`` is a Probe: row errors
        seen make the caller ignore the answer. Default: cannot tell, and the rows are not
        read."""
        return None

    def check_task(self, context: RunContext) -> None:
        """Destinations: when a task is saved, refuse what no run of it could do here (sync
        without an ownership column, ...), raising ConnectorError; the destination is only
        read. Default: nothing to check."""

    def adopt(self, batches: Iterable[Batch], context: RunContext, everything: bool) -> int:
        """Destinations that remember ownership: make ``context.owner`` the owner of the records
        no source owns whose keys the rows hold (``everything``: of every record no source
        owns), so a sync may remove them later; how many. A dry run counts only."""
        raise ConnectorError(f"a {self.type_name} destination keeps no record of who wrote its "
                             "records: there is nothing to adopt")

    def units(self, context: RunContext) -> list[Unit] | None:
        """File sources: the files this run takes, oldest first, each applied and consumed on
        its own. Raise NothingToProcess when none is ready. None: the source is one stream."""
        return None

    def open_unit(self, unit: Unit, context: RunContext) -> None:
        """Make ``unit`` the one read() reads (fetching it if remote); fill its sha256, size."""

    def close_unit(self, unit: Unit, outcome: UnitOutcome) -> str | None:
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

