"""How a run ended, or stands: the values of ``core_task_run.status`` and ``last_status``.

A ``str`` enum, so the stored values, JSON and the Docebo XML stay the plain words they were.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    SUCCESS = "success"
    PARTIAL = "partial"  # applied, with some rows rejected (within max_errors)
    NOTHING_TO_PROCESS = "nothing_to_process"
    HELD = "held"  # a guard held the change set for a person to accept
    FAILED = "failed"
    ABANDONED = "abandoned"  # the runner died, or lost its lease
    RUNNING = "running"
    RESET = "reset"  # not a run: an operator's reset, recorded in history
    ADOPTED = "adopted"  # not an import: `task adopt` took over unowned records
    MISSING_INPUT = "missing_input"  # an expected feed had not come by its deadline

    @property
    def executed(self) -> bool:
        """Whether a run that ended so counts as executed (sets last_execution)."""
        return self in EXECUTED


EXECUTED = frozenset({RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.NOTHING_TO_PROCESS})
