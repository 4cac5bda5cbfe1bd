"""Where run logs go: stderr (default), syslog, or a file, chosen by IOTASK_LOG or the INI file;
and the masking every line of output and of the log passes through.

On stderr only warnings show unless -v, so cron stays quiet on success; a file or syslog gets
every run's start and end.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TextIO

from iotask.config import Config
from iotask.connectors.masking import mask
from iotask.errors import IotaskError

FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


class MaskedFormatter(logging.Formatter):
    """Log lines, tracebacks included, with every known secret masked; times in the configured
    zone with their offset (2026-12-01T21:40:00.123+01:00), as every other time is shown."""

    def __init__(self, fmt: str, tz: tzinfo | None = None) -> None:
        super().__init__(fmt)
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        moment = datetime.fromtimestamp(record.created, self.tz or UTC)
        return moment.isoformat(timespec="milliseconds")

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


class MaskedStream(io.TextIOBase):
    """A text stream whose every write is masked: what the CLI prints can never carry a
    configured secret, whichever code path printed it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(mask(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._stream, "errors", None)


@contextmanager
def masked_output() -> Iterator[None]:
    """stdout and stderr masked for the length of a command."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = MaskedStream(sys.stdout), MaskedStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _without_traceback(record: logging.LogRecord) -> bool:
    """On a person's terminal, an error logged with its traceback is left out: the command's
    problem line already says what failed, and the traceback is for the log file or syslog (or
    the terminal with IOTASK_LOG_LEVEL=DEBUG)."""
    return record.exc_info is None


def syslog_address(text: str) -> str | tuple[str, int]:
    """``syslog``: /dev/log, else UDP localhost:514; ``syslog:/path``: that socket;
    ``syslog:HOST:PORT``: UDP to that host."""
    where = text.removeprefix("syslog").removeprefix(":")
    if not where:
        return "/dev/log" if Path("/dev/log").exists() else ("localhost", 514)
    if where.startswith("/"):
        return where
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise IotaskError(f"log {text!r}: expected syslog, syslog:/path/to/socket or "
                          "syslog:HOST:PORT")
    return host, int(port)


def setup(config: Config, verbose: int) -> None:
    logger = logging.getLogger("iotask")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    logger.propagate = False
    handler: logging.Handler
    if config.log == "stderr":
        handler = logging.StreamHandler(sys.stderr)
        default = "INFO" if verbose > 1 else "WARNING"
        level = config.log_level or default
        handler.setFormatter(MaskedFormatter(FORMAT, config.timezone))
        if level != "DEBUG":
            handler.addFilter(_without_traceback)
    elif config.log == "syslog" or config.log.startswith("syslog:"):
        address = syslog_address(config.log)
        if isinstance(address, str) and not Path(address).is_socket():
            raise IotaskError(f"log {config.log!r}: {address} is not a syslog socket (no such "
                              "socket): check IOTASK_LOG, or use syslog:HOST:PORT")
        from logging.handlers import SysLogHandler  # here: socket and pickle, for syslog only

        handler = SysLogHandler(address=address)
        handler.setFormatter(MaskedFormatter("iotask[%(process)d]: %(message)s", config.timezone))
        level = config.log_level or "INFO"
    else:
        path = Path(config.log).expanduser()
        try:
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            raise IotaskError(f"cannot open log file {path}: {exc.strerror}") from None
        handler.setFormatter(MaskedFormatter(FORMAT, config.timezone))
        level = config.log_level or "INFO"
    logger.addHandler(handler)
    logger.setLevel(level)
