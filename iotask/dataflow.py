"""One run's data flow: rows from the source, through the task's map, into the destination.

The destination stages the rows, computes the change set, has it reviewed by the guards and
applies it in one transaction, checking the lease just before its commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from itertools import islice
from shlex import quote
from typing import Any

from iotask.connectors.base import Connector
from iotask.connectors.context import (
    Batch,
    Probe,
    Progress,
    Row,
    RunContext,
    Unit,
    UnitOutcome,
)
from iotask.connectors.errors import ConnectorError, FilesFailed, NothingToProcess, TooManyErrors
from iotask.errors import IotaskError
from iotask.mapping import LINE, Const, MapError, Mapping, OptionalColumn, resolve
from iotask.run_status import RunStatus

log = logging.getLogger("iotask.dataflow")


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
        raise MapError(f"{exc} (source: {source.location()}; destination: "
                       f"{destination.location()})") from None
    context.key = mapping.key or None
    return mapping


def execute(source: Connector, destination: Connector, context: RunContext,
            map_text: str | None = None, progress: Progress | None = None) -> RunStatus:
    """Move the source's rows, mapped, into the destination; return the run's status.

    A file source's files are each their own unit of work: mapped, applied in one transaction,
    then consumed (renamed to .imported); a file that fails is left where it was for the next
    run (or moved to quarantine) and the others go on (FilesFailed at the end). A file whose
    content this task already imported is consumed without being applied, unless the run
    re-imports. NothingToProcess, Held and LeaseLost raised by a connector pass through to the
    runner. ``progress`` is told how far the read has got, for a person watching a long import.
    """
    try:
        units = source.units(context)
        if units is None:
            _apply(source, destination, context, map_text, progress)
        else:
            _apply_files(units, source, destination, context, map_text, progress)
    finally:
        source.close()
    return RunStatus.PARTIAL if context.counts.failed else RunStatus.SUCCESS


def _apply(source: Connector, destination: Connector, context: RunContext,
           map_text: str | None, progress: Progress | None, precheck: bool = True) -> None:
    mapping = plan(source, destination, context, map_text)
    pairs: list[tuple[str, str | None, Any]] | None = None if mapping.pairs is None else [
        (dest, None, column.value) if isinstance(column, Const) else
        (dest, column.column if isinstance(column, OptionalColumn) else column, None)
        for dest, column in mapping.pairs]
    if precheck and _unchanged(source, destination, context, mapping, pairs, progress):
        return
    if destination.write_fast(source, pairs, context, progress):
        return
    destination.write(_mapped(source.read(context), mapping, context, source, progress), context)


def _unchanged(source: Connector, destination: Connector, context: RunContext,
               mapping: Mapping, pairs: list[tuple[str, str | None, Any]] | None,
               progress: Progress | None) -> bool:
    """Whether the destination's pre-check found that it holds the mapped rows already; then
    the run is reviewed and counted as "every row unchanged", and nothing is written.

    The pre-check reads the source through a Probe: when it finds a row error, a difference, or
    anything else (an error included), the answer is "no" and the normal path reads the
    source again, recording everything as if the pre-check had never looked.
    """
    if not source.rereadable:
        return False
    probe = Probe(context)
    opened: list[Iterator[Batch]] = []

    def read() -> Iterator[Batch]:
        batches = _mapped(source.read(probe), mapping, probe, source, progress)
        opened.append(batches)
        return batches

    try:
        changes = destination.precheck(read, probe, source, pairs)
    except Exception as exc:  # noqa: BLE001 - the normal path meets it again, and reports it
        log.debug("task %s: pre-check gave up: %s", context.task, exc)
        return False
    finally:
        for batches in opened:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
    if changes is None or probe.failed:
        return False
    context.counts.read += probe.counts.read
    if context.review(changes):
        context.check_lease()  # as a destination does before its commit
        context.counts.unchanged += changes.unchanged
    return True


def _apply_files(units: list[Unit], source: Connector, destination: Connector,
                 context: RunContext, map_text: str | None, progress: Progress | None) -> None:
    failed: list[str] = []
    stuck: list[str] = []  # applied, but not marked consumed
    skipped = 0
    for unit in units:
        outcome = UnitOutcome.KEPT
        try:
            source.open_unit(unit, context)
            earlier = context.imported_before(unit) if unit.once else None
            if earlier and not context.reimport:
                log.warning("task %s: %s skipped: the same content (SHA-256 %s) was imported "
                            "%s; `iotask run %s --reimport` to import it again", context.task,
                            unit.where, unit.sha256, earlier, quote(context.task))
                context.notes.append(f"{unit.name}: already imported {earlier}, skipped")
                outcome = UnitOutcome.KEPT if context.dry_run else UnitOutcome.CONSUMED
                skipped += 1
                continue
            # a content this task imported before may well be unchanged in the destination;
            # new content most likely is not, and pre-checking it would read it twice for nothing
            seen = earlier if unit.once else context.imported_before(unit)
            _apply(source, destination, context, map_text, progress, precheck=bool(seen))
            if not context.dry_run:
                context.record_import(unit)
                outcome = UnitOutcome.CONSUMED
        except (ConnectorError, IotaskError, TooManyErrors) as exc:
            outcome = UnitOutcome.FAILED
            if len(units) == 1:
                raise
            failed.append(f"{unit.name}: {exc}")
            log.warning("task %s: %s failed, left for the next run: %s", context.task,
                        unit.where, exc)
        finally:
            context.unit_done(source)
            try:
                done = source.close_unit(unit, UnitOutcome.KEPT if context.dry_run else outcome)
            except ConnectorError as exc:
                if outcome != UnitOutcome.CONSUMED:
                    raise
                done = None  # its rows are committed: the run's counts must say so
                stuck.append(f"{unit.name}: {exc}")
                log.warning("task %s: %s was applied but could not be marked imported: %s",
                            context.task, unit.where, exc)
            if done:
                context.notes.append(f"{unit.name}: {done}")
    if stuck:
        raise FilesFailed(
            f"{len(stuck)} of {len(units)} files were applied but could not be marked imported "
            f"({'; '.join(stuck)}); the next run skips their content as already imported "
            "and tries again" + (f"; {len(failed)} other files failed ({'; '.join(failed)})"
                                 if failed else ""))
    if skipped == len(units):
        raise NothingToProcess(f"every file was imported before ({'; '.join(context.notes)}): "
                               f"`iotask run {quote(context.task)} --reimport` to import again")
    if failed:
        raise FilesFailed(f"{len(failed)} of {len(units)} files failed ({'; '.join(failed)}); "
                          "the other files were applied")


def adopt(source: Connector, destination: Connector, context: RunContext,
          map_text: str | None, everything: bool) -> int:
    """Make the task's source the owner of the destination's unowned records whose keys the
    source holds now (``everything``: of all unowned records); how many."""
    try:
        mapping = plan(source, destination, context, map_text)
        rows = iter(()) if everything else _mapped(source.read(context), mapping, context,
                                                   source, None)
        return destination.adopt(rows, context, everything)
    finally:
        source.close()


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
        source.close()
    columns = mapping.destination_columns or [
        name for name in (rows[0] if rows else {}) if name != LINE]
    return columns, rows
