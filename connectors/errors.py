"""The exceptions a connector may raise, or see pass through it from the run's context.

The runner turns each into a run status (``iotask.runner.outcome``); their messages are shown to
people as they are, so they say what is wrong and where.
"""

from __future__ import annotations


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



class TooManyErrors(Exception):
    """More rows were rejected than the task allows: the run fails and nothing is applied.

    Raised by the context's ``review`` inside a destination's write, before anything is applied.
    """


class SettingsError(ValueError):
    """A connection's settings do not fit its connector's schema; the message names the key."""
