"""The runner side's exceptions: errors a user can cause and fix. The CLI prints them as one line,
never a traceback; a run that raises one fails with its message. (What a connector raises is in
``iotask.connectors.errors``.)"""


class IotaskError(Exception):
    """A user or configuration mistake: the message says what is wrong and what to do."""

    exit_code = 2


class NotFound(IotaskError):
    """A named task, connection or connector does not exist."""


class ConnectorLoadError(IotaskError):
    """A registered connector's module or class cannot be loaded."""


class MapError(IotaskError):
    """The map does not fit the task's source or destination; the message names the column."""


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message says why and shows a valid example."""
