"""Errors a user can cause and fix. The CLI prints them as one line, never a traceback."""


class IotaskError(Exception):
    """A user or configuration mistake: the message says what is wrong and what to do."""

    exit_code = 2


class NotFound(IotaskError):
    """A named task, connection or connector does not exist."""
