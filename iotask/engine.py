"""One run's data flow: rows from the source, through the destination, counted.

The destination applies everything in one transaction and checks the lease just before its
commit. Mapping, staging, change sets and guards come in here with the import engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from connectors.base import Batch, Connector, RunContext

SUCCESS = "success"
PARTIAL = "partial"
NOTHING_TO_PROCESS = "nothing_to_process"
HELD = "held"
FAILED = "failed"
ABANDONED = "abandoned"
RUNNING = "running"
RESET = "reset"

EXECUTED = (SUCCESS, PARTIAL, NOTHING_TO_PROCESS)  # statuses that set last_execution


def _counted(batches: Iterable[Batch], context: RunContext) -> Iterator[Batch]:
    for batch in batches:
        context.counts.read += len(batch)
        yield batch


def execute(source: Connector, destination: Connector, context: RunContext) -> str:
    """Move the source's rows into the destination; return the run's status.

    NothingToProcess, Held and LeaseLost raised by a connector pass through to the runner.
    """
    destination.write(_counted(source.read(context), context), context)
    return PARTIAL if context.counts.failed else SUCCESS
