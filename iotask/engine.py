"""One run's data flow: rows from the source, through the task's map, into the destination.

The destination applies everything in one transaction and checks the lease just before its
commit. Staging, change sets and guards come in here with the rest of the import engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from connectors.base import Batch, Connector, Row, RunContext
from iotask.mapping import LINE, MapError, Mapping, resolve

SUCCESS = "success"
PARTIAL = "partial"
NOTHING_TO_PROCESS = "nothing_to_process"
HELD = "held"
FAILED = "failed"
ABANDONED = "abandoned"
RUNNING = "running"
RESET = "reset"

EXECUTED = (SUCCESS, PARTIAL, NOTHING_TO_PROCESS)  # statuses that set last_execution

Progress = Callable[[int, int | None, int | None], None]
"""Told after each batch: rows read so far, then bytes read and total when the source knows."""


def _mapped(batches: Iterable[Batch], mapping: Mapping, context: RunContext, source: Connector,
            progress: Progress | None) -> Iterator[Batch]:
    for batch in batches:
        context.counts.read += len(batch)
        if progress is not None:
            done, total = source.progress() or (None, None)
            progress(context.counts.read, done, total)
        yield mapping.apply_batch(batch)


def plan(source: Connector, destination: Connector, context: RunContext,
         map_text: str | None) -> Mapping:
    """The task's map checked against both endpoints' columns as they are now."""
    try:
        mapping = resolve(map_text, source.columns(context), destination.columns(context),
                          context.import_type)
    except MapError as exc:
        raise MapError(f"{exc} (source: {source.describe()}; destination: "
                       f"{destination.describe()})") from None
    context.key = mapping.key or None
    return mapping


def execute(source: Connector, destination: Connector, context: RunContext,
            map_text: str | None = None, progress: Progress | None = None) -> str:
    """Move the source's rows, mapped, into the destination; return the run's status.

    NothingToProcess, Held and LeaseLost raised by a connector pass through to the runner.
    ``progress`` is told how far the read has got, for a person watching a long import.
    """
    mapping = plan(source, destination, context, map_text)
    destination.write(_mapped(source.read(context), mapping, context, source, progress), context)
    return PARTIAL if context.counts.failed else SUCCESS


def preview(source: Connector, destination: Connector, context: RunContext,
            map_text: str | None, limit: int) -> tuple[list[str], list[Row]]:
    """The first ``limit`` source rows as the map makes them: (columns, rows).

    Reads the source only; the destination is asked for its columns and nothing else.
    """
    mapping = plan(source, destination, context, map_text)
    batches = source.read(context)
    rows: list[Row] = []
    try:
        for batch in batches:
            rows.extend(mapping.apply(row) for row in islice(batch, limit - len(rows)))
            if len(rows) >= limit:
                break
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    columns = mapping.destination_columns or [
        name for name in (rows[0] if rows else {}) if name != LINE]
    return columns, rows
